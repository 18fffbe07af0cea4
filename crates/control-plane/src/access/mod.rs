//! Who is calling the `--http` port, and what they may see.
//!
//! [`resolve`] (pure) turns a request's `Authorization: Bearer` header into
//! a [`Principal`] under the gateway's [`AccessPolicy`]:
//!
//! - the `--admin-token` is the bootstrap admin (role admin, every
//!   cluster);
//! - an API token is found by the SHA-256 digest of what was sent, in the
//!   state this node applied ([`control_state::state::tokens`]): one map
//!   lookup, no byte-by-byte comparison of secrets. A revoke takes effect
//!   on a node as soon as it applies it; an expired token is refused from
//!   its expiry on;
//! - with [`AuthMode::Proxy`], a trusted SSO proxy's user and groups
//!   headers ([`proxy`]): honoured only from a peer inside a trusted
//!   network (else 401, even with a token), the role and scope from the
//!   replicated group mappings (no mapped group: 403). From a trusted
//!   proxy the user header wins over an `Authorization` header (oauth2-proxy
//!   may pass its own bearer token along);
//! - without a credential, [`AuthMode::Tokens`] and [`AuthMode::Proxy`]
//!   refuse (401) and [`AuthMode::Open`] lets the caller in as anonymous,
//!   every cluster in scope (loopback without `--auth`, or `--auth none`).
//!
//! A header that is sent is always checked: an unknown, revoked or expired
//! token is a 401 in every mode. [`layer`] runs this before every API
//! route and inserts the [`Principal`], its [`Scope`] and the gateway's
//! [`AuthMode`] as request extensions; [`require_admin`] guards the admin
//! API; [`whoami`] answers the caller who it is (the UI's header and
//! sign-in). A refusal's JSON body names the mode (`"auth"`), so a client
//! knows how to sign in. Secrets are never logged nor answered.

mod layer;
pub mod proxy;
pub mod secret;
pub mod whoami;

use std::{net::IpAddr, sync::Arc};

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use control_state::{ControlState, Role};
use model::access::Scope;

pub use layer::{Access, layer, require_admin};
pub use proxy::ProxyAuth;

/// How the caller was identified. More kinds may come (sessions, mTLS
/// clients): match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// No credential ([`AuthMode::Open`] only).
    Anonymous,
    /// The `--admin-token`.
    Bootstrap,
    /// An API token.
    Token,
    /// A user a trusted SSO proxy vouched for ([`AuthMode::Proxy`]); the
    /// principal's name is the proxy's user header.
    Proxy,
}

impl PrincipalKind {
    /// A stable lowercase label (`anonymous`, `admin-token`, `token`,
    /// `proxy`) for APIs, logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Bootstrap => "admin-token",
            Self::Token => "token",
            Self::Proxy => "proxy",
        }
    }
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name, `admin-token`, `anonymous`, or the proxy's user.
    pub name: Arc<str>,
    pub role: Role,
    pub scope: Scope,
    pub kind: PrincipalKind,
    /// Wall time (unix ms) from which the credential is refused; `None`:
    /// it does not expire.
    pub expires_at_ms: Option<u64>,
}

impl Principal {
    /// May use the admin API: role admin over every cluster (an admin
    /// token of a narrower scope could otherwise mint itself a wider one).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.scope.is_all()
    }

    fn anonymous(admin: bool) -> Self {
        Self {
            name: Arc::from("anonymous"),
            role: if admin { Role::Admin } else { Role::Read },
            scope: Scope::All,
            kind: PrincipalKind::Anonymous,
            expires_at_ms: None,
        }
    }
}

/// Whether API requests need a credential, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// A caller without a credential is anonymous with every cluster in
    /// scope, and an admin when `anonymous_admin` (no `--admin-token`, and
    /// a loopback `--http`).
    Open { anonymous_admin: bool },
    /// Every API request needs a token (`--auth tokens`).
    Tokens,
    /// Every API request needs a trusted proxy's identity headers or a
    /// token (`--auth proxy`).
    Proxy(ProxyAuth),
}

impl AuthMode {
    /// The mode as refusals and [`whoami`] name it, so a client can tell
    /// how to sign in: `tokens` (paste an API token) or `none` (no
    /// credential needed to read; a token adds rights). A mode added later
    /// (a trusted proxy: `proxy`, "sign in through your proxy") names
    /// itself here.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open { .. } => "none",
            Self::Tokens => "tokens",
            Self::Proxy(_) => "proxy",
        }
    }
}

/// The gateway's mode as [`AuthMode::as_str`] names it: the request
/// extension the access layer adds, for refusals and [`whoami`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeName(pub &'static str);

/// How this gateway identifies callers.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub mode: AuthMode,
    /// The digest of `--admin-token` (the secret itself is not kept).
    admin_digest: Option<[u8; 32]>,
}

impl AccessPolicy {
    /// An empty `admin_token` is none.
    pub fn new(mode: AuthMode, admin_token: Option<&str>) -> Self {
        Self {
            mode,
            admin_digest: admin_token.filter(|t| !t.is_empty()).map(secret::digest_of),
        }
    }

    /// Everything open, anonymous callers are admins (tests, loopback).
    pub fn open() -> Self {
        Self::new(
            AuthMode::Open {
                anonymous_admin: true,
            },
            None,
        )
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No bearer token where one is needed.
    #[error("this endpoint needs `Authorization: Bearer <token>`")]
    Missing,
    /// A token that is unknown, revoked or expired.
    #[error("the token is not valid (unknown, revoked or expired)")]
    Invalid,
    /// A valid token without the rights the endpoint needs.
    #[error("this endpoint needs an admin token whose scope is every cluster")]
    Forbidden,
    /// Proxy identity headers from a peer outside `--auth-proxy-trusted`.
    #[error("identity headers are only accepted from a trusted proxy")]
    UntrustedProxy,
    /// A trusted proxy's user header that is empty, too long or not text.
    #[error("the proxy's user header is not a valid user name")]
    ProxyUser,
    /// A proxy user none of whose groups is mapped (`admin groups set`).
    #[error("none of this user's groups is mapped to a role (admin groups set)")]
    NoMappedGroup,
}

impl AccessError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid | Self::UntrustedProxy | Self::ProxyUser => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden | Self::NoMappedGroup => StatusCode::FORBIDDEN,
        }
    }

    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Forbidden => "forbidden",
            Self::UntrustedProxy => "untrusted_proxy",
            Self::ProxyUser => "proxy_user",
            Self::NoMappedGroup => "no_mapped_group",
        }
    }
}

/// The JSON body of a refusal: the admin API's `{"error"}` and, when the
/// refusal came through [`layer`], the gateway's mode (`"auth"`).
#[derive(Debug, Clone, serde::Serialize)]
struct RefusalBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<&'static str>,
}

impl AccessError {
    /// The refusal as an answer, naming the gateway's `mode` when known.
    pub fn response(self, mode: Option<ModeName>) -> Response {
        let challenge = match self {
            Self::Missing => "Bearer realm=\"meridian\"",
            Self::Invalid | Self::UntrustedProxy | Self::ProxyUser => {
                "Bearer realm=\"meridian\", error=\"invalid_token\""
            }
            Self::Forbidden | Self::NoMappedGroup => {
                "Bearer realm=\"meridian\", error=\"insufficient_scope\""
            }
        };
        let body = RefusalBody {
            error: self.to_string(),
            auth: mode.map(|m| m.0),
        };
        let mut response = (self.status(), Json(body)).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

impl IntoResponse for AccessError {
    fn into_response(self) -> Response {
        self.response(None)
    }
}

/// The bearer token of `headers`: `None` without an `Authorization` header
/// or with another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AccessError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AccessError::Invalid)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Ok(None),
    }
}

/// Compares two digests without stopping at the first difference.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The caller of a request with `headers` from the TCP peer `peer` (`None`:
/// unknown, never trusted), judged against `state` (as this node applied
/// it) at wall time `now_ms` (pure).
pub fn resolve(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    policy: &AccessPolicy,
    state: &ControlState,
    now_ms: u64,
) -> Result<Principal, AccessError> {
    if let AuthMode::Proxy(proxy) = &policy.mode
        && let Some(answer) = proxy::resolve(proxy, headers, peer, state)
    {
        return answer;
    }
    let Some(token) = bearer(headers)? else {
        return match policy.mode {
            AuthMode::Open { anonymous_admin } => Ok(Principal::anonymous(anonymous_admin)),
            AuthMode::Tokens | AuthMode::Proxy(_) => Err(AccessError::Missing),
        };
    };
    if token.is_empty() {
        return Err(AccessError::Invalid);
    }
    let digest = secret::digest_of(token);
    if policy
        .admin_digest
        .as_ref()
        .is_some_and(|admin| same_digest(admin, &digest))
    {
        return Ok(Principal {
            name: Arc::from("admin-token"),
            role: Role::Admin,
            scope: Scope::All,
            kind: PrincipalKind::Bootstrap,
            expires_at_ms: None,
        });
    }
    match state.tokens.get(&hex::encode(digest)) {
        Some(t) if t.valid_at(now_ms) => Ok(Principal {
            name: Arc::from(t.name.as_str()),
            role: t.role,
            scope: if t.all_clusters() {
                Scope::All
            } else {
                Scope::Only(t.clusters.clone())
            },
            kind: PrincipalKind::Token,
            expires_at_ms: t.expires_at_ms,
        }),
        _ => Err(AccessError::Invalid),
    }
}

#[cfg(test)]
mod tests;
