//! `GET /api/v1/whoami`: the caller as the access layer resolved it, for
//! the UI's header and its sign-in view (and for scripts checking a
//! token).
//!
//! ```json
//! {"name":"reader","kind":"token","role":"read","clusters":["a"],
//!  "expires_at_ms":1765000000000,"admin":false,"auth":"tokens"}
//! ```
//!
//! `kind` is `token`, `admin-token` or `anonymous`; `clusters` is a list
//! or `"*"` (every cluster); `admin` whether the admin API would serve the
//! caller; `auth` the gateway's mode ([`AuthMode::as_str`]). Nothing of
//! the credential itself (secret, digest) is ever answered. The answer is
//! `Cache-Control: no-store`: it is about one credential.
//!
//! Behind [`super::layer`] like every API route: without a valid
//! principal the layer answers 401 with `{"error","auth"}` first, and a
//! route assembled without the layer answers 500 (the extractors are
//! required), never a made-up principal.

use axum::{
    Extension, Json, Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use control_state::Role;
use model::access::Scope;
use serde::{Deserialize, Serialize};

use super::{ModeName, Principal};

/// The route's path.
pub const PATH: &str = "/api/v1/whoami";

/// A caller's clusters: every one, or these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Clusters {
    /// `"*"`.
    All(String),
    Only(Vec<String>),
}

/// The answer of [`PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    /// `token`, `admin-token` or `anonymous`.
    pub kind: String,
    pub role: Role,
    pub clusters: Clusters,
    /// Wall time (unix ms) from which the credential is refused.
    pub expires_at_ms: Option<u64>,
    /// Whether the admin API serves this caller.
    pub admin: bool,
    /// The gateway's mode: `tokens` or `none`.
    pub auth: String,
}

impl WhoAmI {
    /// The answer for `principal` on a gateway in `mode` (pure).
    pub fn of(principal: &Principal, mode: ModeName) -> Self {
        let clusters = match &principal.scope {
            Scope::All => Clusters::All(control_state::state::tokens::ALL_CLUSTERS.to_owned()),
            Scope::Only(set) => Clusters::Only(set.iter().cloned().collect()),
        };
        Self {
            name: principal.name.to_string(),
            kind: principal.kind.as_str().to_owned(),
            role: principal.role,
            clusters,
            expires_at_ms: principal.expires_at_ms,
            admin: principal.is_admin(),
            auth: mode.0.to_owned(),
        }
    }
}

/// The whoami route, to merge with the other API routes behind
/// [`super::layer`].
pub fn router() -> Router {
    Router::new().route(PATH, get(whoami))
}

async fn whoami(
    Extension(principal): Extension<Principal>,
    Extension(mode): Extension<ModeName>,
) -> Response {
    let mut response = Json(WhoAmI::of(&principal, mode)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use axum::{
        body::Body,
        http::{Request, StatusCode},
        middleware,
    };
    use control_state::{ApiToken, Command, ControlState};
    use serde_json::{Value, json};
    use telemetry::clock::ManualClock;
    use tokio::sync::watch;
    use tower::ServiceExt;

    use super::*;
    use crate::access::AuthMode;
    use crate::{
        ControlReader,
        access::{Access, AccessPolicy, layer, require_admin, secret},
    };

    const ADMIN: &str = "whoami-bootstrap";
    const READ: &str = "mrd_whoami_reader";

    #[derive(Debug)]
    struct Applied(watch::Sender<Arc<ControlState>>);

    impl ControlReader for Applied {
        fn id(&self) -> u64 {
            1
        }
        fn is_leader(&self) -> bool {
            true
        }
        fn state(&self) -> Arc<ControlState> {
            self.0.borrow().clone()
        }
        fn subscribe(&self) -> watch::Receiver<Arc<ControlState>> {
            self.0.subscribe()
        }
    }

    /// whoami and one admin-guarded route behind the access layer, with a
    /// read token for cluster `a` that expires at 9,000 ms.
    fn app(mode: AuthMode, admin_token: Option<&str>) -> Router {
        let mut state = ControlState::default();
        let token = ApiToken {
            name: "reader".into(),
            role: Role::Read,
            clusters: ["a".to_owned()].into(),
            expires_at_ms: Some(9_000),
            created_at_ms: 1_000,
        };
        let digest = secret::digest_hex(READ);
        assert_eq!(
            state.apply(Command::CreateToken { digest, token }),
            control_state::Applied::Done
        );
        let reader = Arc::new(Applied(watch::channel(Arc::new(state)).0));
        let clock = Arc::new(ManualClock::at(Duration::from_secs(5)));
        let access = Access::new(AccessPolicy::new(mode, admin_token), reader, clock);
        let admin_only = Router::new()
            .route("/api/v1/admin/x", get(|| async { "ok" }))
            .route_layer(middleware::from_fn(require_admin));
        layer(router().merge(admin_only), access)
    }

    async fn call(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Response) {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        (resp.status(), resp)
    }

    async fn json_of(resp: Response) -> Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn answers_the_caller_and_never_the_secret() {
        let app = app(AuthMode::Tokens, Some(ADMIN));
        let (status, resp) = call(&app, PATH, Some(READ)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        let body = json_of(resp).await;
        assert_eq!(
            body,
            json!({"name": "reader", "kind": "token", "role": "read", "clusters": ["a"],
                   "expires_at_ms": 9_000, "admin": false, "auth": "tokens"})
        );
        let (status, resp) = call(&app, PATH, Some(ADMIN)).await;
        assert_eq!(status, StatusCode::OK);
        let body = json_of(resp).await;
        assert_eq!(
            body,
            json!({"name": "admin-token", "kind": "admin-token", "role": "admin", "clusters": "*",
                   "expires_at_ms": null, "admin": true, "auth": "tokens"})
        );
        assert!(!body.to_string().contains(ADMIN));
    }

    #[tokio::test]
    async fn refusals_name_the_mode_so_a_client_knows_how_to_sign_in() {
        let app = app(AuthMode::Tokens, Some(ADMIN));
        for token in [None, Some("mrd_wrong"), Some(&ADMIN[1..])] {
            let (status, resp) = call(&app, PATH, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
            assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
            let body = json_of(resp).await;
            assert_eq!(body["auth"], "tokens", "{body}");
            assert!(body["error"].is_string(), "{body}");
        }
        // The admin guard's refusals name it too: 403 for a read token.
        let (status, resp) = call(&app, "/api/v1/admin/x", Some(READ)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(json_of(resp).await["auth"], "tokens");
    }

    #[tokio::test]
    async fn an_open_gateway_answers_anonymous() {
        let open = AuthMode::Open {
            anonymous_admin: false,
        };
        let app = app(open, Some(ADMIN));
        let (status, resp) = call(&app, PATH, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json_of(resp).await,
            json!({"name": "anonymous", "kind": "anonymous", "role": "read", "clusters": "*",
                   "expires_at_ms": null, "admin": false, "auth": "none"})
        );
        // A token that is sent is checked, and a scoped one is answered.
        let (status, resp) = call(&app, PATH, Some("mrd_wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(resp).await["auth"], "none");
        let (_, resp) = call(&app, PATH, Some(READ)).await;
        assert_eq!(json_of(resp).await["clusters"], json!(["a"]));
        // Anonymous callers need a token for the admin API: 401, naming
        // the mode.
        let (status, resp) = call(&app, "/api/v1/admin/x", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(resp).await["auth"], "none");
    }

    #[tokio::test]
    async fn without_the_layer_it_fails_closed() {
        let (status, _) = call(&router(), PATH, Some(READ)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
