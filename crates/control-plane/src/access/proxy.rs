//! `--auth proxy`: the caller's identity from a trusted SSO proxy's
//! headers (oauth2-proxy and the like, in front of the UI).
//!
//! The proxy authenticates the user and sends their name in
//! [`ProxyAuth::user_header`] (`X-Forwarded-User`) and their groups,
//! comma-separated, in [`ProxyAuth::groups_header`] (`X-Forwarded-Groups`).
//! Those headers are honoured only when the TCP peer of the connection is
//! inside a [`ProxyAuth::trusted`] network: from any other peer a request
//! carrying either header is refused (401) and never taken for that user,
//! whatever else it carries. The proxy must overwrite (not append to)
//! both headers on every request it forwards.
//!
//! A user's groups map to roles and cluster scopes through the replicated
//! group mappings ([`control_state::state::groups`], `admin groups set`):
//! the user's role is the highest of their mapped groups' roles, their
//! scope the union of those groups' clusters (`*` in any: every cluster).
//! A user none of whose groups is mapped is authenticated but may see
//! nothing: 403.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use axum::http::{HeaderMap, HeaderName};
use control_state::{ControlState, Role};
use ipnet::IpNet;
use model::access::Scope;

use super::{AccessError, Principal, PrincipalKind};

/// The header oauth2-proxy sends the user's name in.
pub const DEFAULT_USER_HEADER: &str = "x-forwarded-user";
/// The header oauth2-proxy sends the user's groups in (comma-separated).
pub const DEFAULT_GROUPS_HEADER: &str = "x-forwarded-groups";
/// Longest user name taken from the header (longer: 401).
pub const MAX_USER_LEN: usize = 256;
/// Most groups of one request looked up; the rest are ignored.
pub const MAX_REQUEST_GROUPS: usize = 256;
/// Most trusted networks (`--auth-proxy-trusted`).
pub const MAX_TRUSTED: usize = 64;

/// How to read a trusted proxy's identity headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    pub user_header: HeaderName,
    pub groups_header: HeaderName,
    /// The networks proxies connect from; never empty.
    pub trusted: Vec<IpNet>,
}

impl ProxyAuth {
    /// Whether a connection from `peer` may speak for its users. An
    /// IPv4-mapped IPv6 peer (a dual-stack listener) is judged as IPv4.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// Whether the request carries either identity header.
    fn sent(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(&self.user_header) || headers.contains_key(&self.groups_header)
    }
}

/// What the proxy headers of a request say: `None` when they are absent
/// (the caller may still present a token), the principal or the refusal
/// otherwise.
pub(super) fn resolve(
    proxy: &ProxyAuth,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    state: &ControlState,
) -> Option<Result<Principal, AccessError>> {
    if !proxy.sent(headers) {
        return None;
    }
    // A peer we cannot see (no connection info) is not trusted.
    if !peer.is_some_and(|p| proxy.trusts(p)) {
        return Some(Err(AccessError::UntrustedProxy));
    }
    // Groups without a user from a trusted proxy: no identity claimed.
    let user = headers.get(&proxy.user_header)?;
    Some(principal(proxy, user, headers, state))
}

fn principal(
    proxy: &ProxyAuth,
    user: &axum::http::HeaderValue,
    headers: &HeaderMap,
    state: &ControlState,
) -> Result<Principal, AccessError> {
    let user = user
        .to_str()
        .map(str::trim)
        .map_err(|_| AccessError::ProxyUser)?;
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(AccessError::ProxyUser);
    }
    let names = headers
        .get_all(&proxy.groups_header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .take(MAX_REQUEST_GROUPS);
    let mut role: Option<Role> = None;
    let mut all = false;
    let mut clusters = BTreeSet::new();
    for name in names {
        let Some(mapping) = state.groups.get(name) else {
            continue;
        };
        role = role.max(Some(mapping.role));
        if mapping.all_clusters() {
            all = true;
        } else {
            clusters.extend(mapping.clusters.iter().cloned());
        }
    }
    let role = role.ok_or(AccessError::NoMappedGroup)?;
    Ok(Principal {
        name: Arc::from(user),
        role,
        scope: if all {
            Scope::All
        } else {
            Scope::Only(clusters)
        },
        kind: PrincipalKind::Proxy,
        // The proxy's session decides how long the user is signed in.
        expires_at_ms: None,
    })
}
