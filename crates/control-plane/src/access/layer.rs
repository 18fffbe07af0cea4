//! The axum side of [`super::resolve`]: the layer in front of every API
//! route, and the admin guard.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    middleware::{self, Next},
    response::Response,
};
use telemetry::clock::SharedClock;

use super::{AccessError, AccessPolicy, ModeName, Principal, PrincipalKind, resolve};
use crate::{audit::AuditLog, ports::ControlReader};

/// What the access layer needs: the policy, this node's applied state and
/// the wall clock expiry is judged by. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    policy: Arc<AccessPolicy>,
    reader: Arc<dyn ControlReader>,
    clock: SharedClock,
    audit: Option<AuditLog>,
}

impl Access {
    pub fn new(policy: AccessPolicy, reader: Arc<dyn ControlReader>, clock: SharedClock) -> Self {
        Self {
            policy: Arc::new(policy),
            reader,
            clock,
            audit: None,
        }
    }

    /// Records refused credentials in `audit` ([`crate::audit`]).
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The caller of a request with these headers from `peer`, now.
    pub fn principal(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, AccessError> {
        let state = self.reader.state();
        let now_ms = u64::try_from(self.clock.unix_ms()).unwrap_or(0);
        resolve(headers, peer, &self.policy, &state, now_ms)
    }

    /// How this gateway identifies callers.
    pub fn mode(&self) -> ModeName {
        ModeName(self.policy.mode.as_str())
    }
}

/// `router` with every route behind the access layer: a request without a
/// valid principal is refused before its handler (and its body) runs (the
/// peer address for `--auth proxy` is the request's
/// `ConnectInfo<SocketAddr>`, absent: untrusted); a passing one carries
/// [`Principal`], [`model::access::Scope`] and [`ModeName`] extensions. A
/// refusal's body names the mode.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>, access: Access) -> Router<S> {
    router.layer(middleware::from_fn_with_state(access, identify))
}

async fn identify(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    // The TCP peer, as `telemetry::serve` records it on every request.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match access.principal(req.headers(), peer) {
        Ok(principal) => {
            req.extensions_mut().insert(principal.scope.clone());
            req.extensions_mut().insert(principal);
            req.extensions_mut().insert(access.mode());
            next.run(req).await
        }
        Err(refusal) => {
            // The path and the reason only: never the header.
            if let Some(audit) = &access.audit {
                audit.refused_credential(
                    req.method(),
                    req.uri().path(),
                    refusal.reason(),
                    refusal.status().as_u16(),
                );
            }
            tracing::debug!(
                target: "meridian::access",
                reason = refusal.reason(),
                peer = ?peer,
                method = %req.method(),
                path = req.uri().path(),
                "request refused"
            );
            refusal.response(Some(access.mode()))
        }
    }
}

/// Refuses a request whose principal may not use the admin API: 401 for
/// an anonymous caller (it should present a token) or a route assembled
/// without [`layer`] (fail closed), 403 for a token without the rights.
pub async fn require_admin(req: Request, next: Next) -> Response {
    let refusal = match req.extensions().get::<Principal>() {
        Some(p) if p.is_admin() => return next.run(req).await,
        Some(p) if p.kind == PrincipalKind::Anonymous => AccessError::Missing,
        Some(_) => AccessError::Forbidden,
        None => AccessError::Missing,
    };
    refusal.response(req.extensions().get::<ModeName>().copied())
}
