//! API tokens: `POST tokens` makes one and answers its secret, the only
//! time it is shown; `GET tokens` lists them (never a secret or digest);
//! `DELETE tokens/{name}` revokes one. Only the secret's SHA-256 digest is
//! replicated ([`control_state::state::tokens`]).

use std::sync::Arc;

use axum::{Json, extract::State};
use control_state::{ApiToken, Role};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, Outcome, Refusal, WriteAnswer, answer},
    extract::{Consistency, JsonBody, Param},
    read,
};
use crate::{
    access::secret,
    raft::{Command, node::ControlPlane},
};

type Plane = State<Arc<ControlPlane>>;

/// Longest `ttl_secs`: ten years.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// `POST tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
    /// Cluster names, or `["*"]` for every cluster.
    pub clusters: Vec<String>,
    /// Valid for this long from now; without it, until revoked.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A token as listed: everything but its secret and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub clusters: Vec<String>,
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

impl From<&ApiToken> for TokenInfo {
    fn from(t: &ApiToken) -> Self {
        Self {
            name: t.name.clone(),
            role: t.role,
            clusters: t.clusters.iter().cloned().collect(),
            expires_at_ms: t.expires_at_ms,
            created_at_ms: t.created_at_ms,
        }
    }
}

/// The answer to `POST tokens`: the record and, once, its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub result: Outcome,
    #[serde(flatten)]
    pub info: TokenInfo,
    /// `Authorization: Bearer <token>`; not stored, not shown again.
    pub token: String,
}

/// The record to store for `req` created at `now_ms` (pure).
pub fn token_record(req: CreateToken, now_ms: u64) -> Result<ApiToken, ApiError> {
    let expires_at_ms = match req.ttl_secs {
        None => None,
        Some(s) if s == 0 || s > MAX_TTL_SECS => {
            return Err(ApiError::BadRequest(format!(
                "ttl_secs: 1 to {MAX_TTL_SECS} (or none: valid until revoked)"
            )));
        }
        Some(s) => Some(
            s.checked_mul(1_000)
                .and_then(|ms| now_ms.checked_add(ms))
                .ok_or_else(|| ApiError::BadRequest("ttl_secs: too large".into()))?,
        ),
    };
    let token = ApiToken {
        name: req.name,
        role: req.role,
        clusters: req
            .clusters
            .into_iter()
            .map(|c| c.trim().to_owned())
            .collect(),
        expires_at_ms,
        created_at_ms: now_ms,
    };
    token.check().map_err(ApiError::BadRequest)?;
    Ok(token)
}

pub async fn create(
    State(plane): Plane,
    JsonBody(req): JsonBody<CreateToken>,
) -> Result<Json<CreatedToken>, ApiError> {
    let now_ms = u64::try_from(plane.clock().unix_ms()).unwrap_or(0);
    let token = token_record(req, now_ms)?;
    let secret = secret::generate_os().map_err(|e| ApiError::Internal(e.to_string()))?;
    let info = TokenInfo::from(&token);
    let command = Command::CreateToken {
        digest: secret::digest_hex(&secret),
        token,
    };
    // A name already taken is a conflict.
    answer(plane.write(command).await?, Refusal::Conflict)?;
    Ok(Json(CreatedToken {
        result: Outcome::Done,
        info,
        token: secret,
    }))
}

pub async fn list(
    State(plane): Plane,
    consistency: Consistency,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let state = read(&plane, consistency).await?;
    let mut tokens: Vec<TokenInfo> = state.tokens.values().map(TokenInfo::from).collect();
    tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(tokens))
}

pub async fn revoke(
    State(plane): Plane,
    Param(name): Param,
) -> Result<Json<WriteAnswer>, ApiError> {
    let applied = plane.write(Command::RevokeToken { name }).await?;
    answer(applied, Refusal::Invalid).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(clusters: &[&str], ttl_secs: Option<u64>) -> CreateToken {
        CreateToken {
            name: "ci".into(),
            role: Role::Read,
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
            ttl_secs,
        }
    }

    #[test]
    fn a_token_record_carries_its_expiry_and_a_valid_scope() {
        let t = token_record(req(&["a", " b"], Some(60)), 1_000).expect("valid");
        assert_eq!(t.expires_at_ms, Some(61_000));
        assert_eq!(t.created_at_ms, 1_000);
        assert_eq!(t.clusters.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            token_record(req(&["*"], None), 5)
                .expect("all")
                .expires_at_ms,
            None
        );
        for bad in [
            req(&["a"], Some(0)),
            req(&["a"], Some(MAX_TTL_SECS + 1)),
            req(&[], None),
            req(&["*", "a"], None),
            req(&["A"], None),
        ] {
            assert!(
                matches!(token_record(bad.clone(), 0), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let json = r#"{"name":"x","role":"owner","clusters":["*"]}"#;
        assert!(serde_json::from_str::<CreateToken>(json).is_err());
    }
}
