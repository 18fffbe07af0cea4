//! The control plane's admin HTTP API (`/api/v1/admin/…`, JSON, on the
//! `--http` port) and its client, `meridian-gateway admin …` ([`cli`]).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `raft` | this node's [`RaftStatus`](crate::raft::node::RaftStatus) (always local) |
//! | GET | `members` | leader and every node with its role and addresses |
//! | POST | `members` | `{"id","raft_addr"[,"federation_addr","http_addr"]}`: learner, then voter |
//! | DELETE | `members/{id}` | remove a voter or learner |
//! | GET | `shards` | registered shards (passwords masked), shard map epochs, leases |
//! | POST | `shards` | `{"url"[,"id","start_in_secs"]}`: register, new epoch in the future |
//! | GET | `clusters` | registered clusters and their identities |
//! | PUT / DELETE | `clusters/{name}` | `{"identity"}` (default `spiffe://meridian/cluster/<name>`) |
//! | GET | `policies`, `policies/{cluster}` | sampling policies (`*` = every cluster) |
//! | PUT / DELETE | `policies/{cluster}` | a `SamplingConfig` |
//! | GET / PUT | `retention` | a `RetentionPolicy` |
//! | GET | `alert-rules` | alert rules by name |
//! | PUT / DELETE | `alert-rules/{name}` | `{"expr","for_secs"}` |
//! | GET | `certs/revoked` | revoked certificate serials (lowercase hex) |
//! | POST | `certs/revoked` | `{"serial"}`: deny a certificate (agents and nodes) |
//! | GET | `tokens` | API tokens: name, role, clusters, expiry (never a secret or digest) |
//! | POST | `tokens` | `{"name","role":"read"\|"admin","clusters":[…]\|["*"][,"ttl_secs"]}`: the new token's secret, shown once |
//! | DELETE | `tokens/{name}` | revoke (refused from the moment a node applies it) |
//! | GET | `groups` | `--auth proxy` group mappings: `{"GROUP":{"role","clusters"}}` |
//! | PUT / DELETE | `groups/{group}` | `{"role":"read"\|"admin","clusters":[…]\|["*"]}` |
//! | GET | `audit[?limit=N]` | this node's last admin writes, newest first ([`crate::audit`]) |
//!
//! Reads are linearizable unless `?consistency=local`. Writes go through
//! the leader and answer `{"result":"done"}` or `{"result":"unchanged"}`;
//! deleting what is absent is `unchanged`, not 404 (idempotent, like
//! `kubectl delete --ignore-not-found`). Errors are `{"error":"…"}` with
//! the statuses listed in [`error`]. Every endpoint needs an admin
//! principal ([`crate::access`]): the `--admin-token` or an admin API token
//! over every cluster, sent as `Authorization: Bearer <token>` (401
//! without one, 403 for a read token). Only a loopback gateway without
//! `--auth` and without `--admin-token` leaves the API open.

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{any, get, put},
};

use crate::raft::{ControlState, node::ControlPlane};

pub mod certs;
pub mod error;
mod extract;
pub mod groups;
pub mod members;
pub mod settings;
pub mod shards;
pub mod tokens;

pub use error::{ApiError, ErrorBody, Outcome, WriteAnswer};
pub use extract::Consistency;

/// Largest admin request body (a sampling policy is a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The admin routes, to merge into the `--http` router behind
/// [`crate::access::layer`]: every route needs an admin principal (a route
/// reached without the layer refuses, fail closed).
pub fn router(plane: Arc<ControlPlane>) -> Router {
    const P: &str = "/api/v1/admin";
    let audit = plane.audit().clone();
    let trail = Router::new()
        .route(&format!("{P}/audit"), get(crate::audit::list))
        .with_state(audit.clone());
    let api = Router::new()
        .route(&format!("{P}/raft"), get(members::raft))
        .route(
            &format!("{P}/members"),
            get(members::list).post(members::add),
        )
        .route(
            &format!("{P}/members/{{id}}"),
            axum::routing::delete(members::remove),
        )
        .route(&format!("{P}/shards"), get(shards::list).post(shards::add))
        .route(&format!("{P}/clusters"), get(settings::clusters))
        .route(
            &format!("{P}/clusters/{{name}}"),
            put(settings::put_cluster).delete(settings::delete_cluster),
        )
        .route(&format!("{P}/policies"), get(settings::policies))
        .route(
            &format!("{P}/policies/{{cluster}}"),
            get(settings::policy)
                .put(settings::put_policy)
                .delete(settings::delete_policy),
        )
        .route(
            &format!("{P}/retention"),
            get(settings::retention).put(settings::put_retention),
        )
        .route(&format!("{P}/alert-rules"), get(settings::alert_rules))
        .route(
            &format!("{P}/alert-rules/{{name}}"),
            put(settings::put_alert_rule).delete(settings::delete_alert_rule),
        )
        .route(
            &format!("{P}/certs/revoked"),
            get(certs::revoked).post(certs::revoke),
        )
        .route(
            &format!("{P}/tokens"),
            get(tokens::list).post(tokens::create),
        )
        .route(
            &format!("{P}/tokens/{{name}}"),
            axum::routing::delete(tokens::revoke),
        )
        .route(&format!("{P}/groups"), get(groups::list))
        .route(
            &format!("{P}/groups/{{group}}"),
            put(groups::put).delete(groups::delete),
        )
        // A route, not a fallback: the router is merged into another.
        .route(&format!("{P}/{{*rest}}"), any(unknown_path))
        .with_state(plane)
        .merge(trail)
        .route_layer(middleware::map_response(json_method_not_allowed))
        .route_layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // The principal is checked before the body is read; every write is
    // recorded once answered, the guard's refusals included.
    api.route_layer(middleware::from_fn(crate::access::require_admin))
        .route_layer(middleware::from_fn_with_state(audit, crate::audit::record))
}

async fn unknown_path() -> ApiError {
    ApiError::NotFound("no such admin endpoint (see /api/v1/admin/ in the README)".into())
}

/// axum answers a method a path does not serve with an empty 405 (and adds
/// `Allow` after this layer); give it a JSON body like every other admin
/// error.
async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let error = ErrorBody {
        error: "this method is not allowed on this path (see the Allow header)".into(),
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(error)).into_response()
}

/// The state at the requested consistency.
async fn read(
    plane: &ControlPlane,
    consistency: Consistency,
) -> Result<Arc<ControlState>, ApiError> {
    match consistency {
        Consistency::Local => Ok(plane.state()),
        Consistency::Linearizable => Ok(plane.read_linearizable().await?),
    }
}
