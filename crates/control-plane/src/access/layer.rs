//! The axum side of [`super::resolve`]: the layer in front of every API
//! route, and the admin guard.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};
use telemetry::clock::SharedClock;

use super::{AccessError, AccessPolicy, AuthMode, Principal, PrincipalKind, resolve};
use crate::ports::ControlReader;

/// What the access layer needs: the policy, this node's applied state and
/// the wall clock expiry is judged by. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    policy: Arc<AccessPolicy>,
    reader: Arc<dyn ControlReader>,
    clock: SharedClock,
}

impl Access {
    pub fn new(policy: AccessPolicy, reader: Arc<dyn ControlReader>, clock: SharedClock) -> Self {
        Self {
            policy: Arc::new(policy),
            reader,
            clock,
        }
    }

    /// The caller of a request with these headers, now.
    pub fn principal(&self, headers: &axum::http::HeaderMap) -> Result<Principal, AccessError> {
        let state = self.reader.state();
        let now_ms = u64::try_from(self.clock.unix_ms()).unwrap_or(0);
        resolve(headers, &self.policy, &state, now_ms)
    }

    /// How this gateway identifies callers.
    pub fn mode(&self) -> AuthMode {
        self.policy.mode
    }
}

/// `router` with every route behind the access layer: a request without a
/// valid principal is refused before its handler (and its body) runs; a
/// passing one carries [`Principal`], [`model::access::Scope`] and
/// [`AuthMode`] extensions. A refusal's body names the mode.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>, access: Access) -> Router<S> {
    router.layer(middleware::from_fn_with_state(access, identify))
}

async fn identify(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    match access.principal(req.headers()) {
        Ok(principal) => {
            req.extensions_mut().insert(principal.scope.clone());
            req.extensions_mut().insert(principal);
            req.extensions_mut().insert(access.mode());
            next.run(req).await
        }
        Err(refusal) => {
            // The path and the reason only: never the header.
            tracing::debug!(
                target: "meridian::access",
                reason = refusal.reason(),
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
    refusal.response(req.extensions().get::<AuthMode>().copied())
}
