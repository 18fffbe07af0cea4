//! API tokens: who may call the `--http` port with `Authorization: Bearer`.
//!
//! Only the SHA-256 digest of a token's secret is replicated (64 lowercase
//! hex digits), and the tokens are keyed by it, so the access layer finds
//! a caller's token with one map lookup of the digest of what it sent:
//! nothing compares a secret byte by byte. The secret itself is drawn and
//! hashed outside this crate (it has no randomness and no clock); expiry
//! travels in the record as a wall time the leader computed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::Applied;

/// Most tokens kept (each is a few hundred bytes of replicated state).
pub const MAX_TOKENS: usize = 1_000;
/// Longest token name.
pub const MAX_TOKEN_NAME: usize = 64;
/// Most clusters one token may name.
pub const MAX_TOKEN_CLUSTERS: usize = 256;
/// The cluster scope entry that means every cluster.
pub const ALL_CLUSTERS: &str = "*";

/// What a token's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the data of the clusters in scope.
    Read,
    /// Read everything in scope and use the admin API.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!("role {other:?}: expected read or admin")),
        }
    }
}

/// One API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Unique among tokens; what `tokens revoke` names.
    pub name: String,
    pub role: Role,
    /// Cluster names, or `["*"]` for every cluster.
    pub clusters: BTreeSet<String>,
    /// Wall time (unix ms) from which the token is refused; `None`: never.
    pub expires_at_ms: Option<u64>,
    /// Wall time (unix ms) the leader created it at.
    pub created_at_ms: u64,
}

impl ApiToken {
    /// Whether the token's scope is every cluster.
    pub fn all_clusters(&self) -> bool {
        self.clusters.contains(ALL_CLUSTERS)
    }

    /// Whether the token is still valid at `now_ms`.
    pub fn valid_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// Why the record cannot be stored, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_TOKEN_NAME
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_ok {
            return Err(format!(
                "token name {:?}: 1 to {MAX_TOKEN_NAME} of a-z A-Z 0-9 - . _",
                self.name.chars().take(80).collect::<String>()
            ));
        }
        if self.clusters.is_empty() || self.clusters.len() > MAX_TOKEN_CLUSTERS {
            return Err(format!(
                "clusters: name 1 to {MAX_TOKEN_CLUSTERS} clusters, or * for every cluster"
            ));
        }
        if self.all_clusters() && self.clusters.len() > 1 {
            return Err("clusters: * means every cluster and stands alone".into());
        }
        if !self.all_clusters() {
            for c in &self.clusters {
                model::ClusterId::new(c).map_err(|e| format!("clusters: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Whether `digest` is a SHA-256 digest in lowercase hex.
pub fn is_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `CreateToken`: refuses a second token of the same name; the same
/// command applied again (a retried write) is `Unchanged`.
pub(super) fn create(
    tokens: &mut BTreeMap<String, ApiToken>,
    digest: String,
    token: ApiToken,
) -> Applied {
    if !is_digest(&digest) {
        return Applied::Refused("a token digest is 64 lowercase hex digits".into());
    }
    if let Err(e) = token.check() {
        return Applied::Refused(e);
    }
    if tokens.get(&digest) == Some(&token) {
        return Applied::Unchanged;
    }
    if tokens.contains_key(&digest) {
        return Applied::Refused("that token secret is already in use".into());
    }
    if tokens.values().any(|t| t.name == token.name) {
        return Applied::Refused(format!("a token named {:?} exists", token.name));
    }
    if tokens.len() >= MAX_TOKENS {
        return Applied::Refused(format!(
            "at most {MAX_TOKENS} tokens; revoke unused ones first"
        ));
    }
    tokens.insert(digest, token);
    Applied::Done
}

/// `RevokeToken`: removes the token named `name` (absent: `Unchanged`).
pub(super) fn revoke(tokens: &mut BTreeMap<String, ApiToken>, name: &str) -> Applied {
    let before = tokens.len();
    tokens.retain(|_, t| t.name != name);
    if tokens.len() == before {
        Applied::Unchanged
    } else {
        Applied::Done
    }
}
