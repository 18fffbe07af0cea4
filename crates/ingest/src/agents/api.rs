//! `GET /api/v1/agents`: the agents of the whole gateway cluster.
//!
//! Each node knows only the agents that talk to it ([`super`]).
//! `?scope=local` answers with this node's registry; without it the node
//! also asks every other member (its `http_addr` from the replicated
//! state) for `?scope=local`, concurrently, each within [`PEER_TIMEOUT`]
//! and [`MAX_PEER_BODY`]. A member that does not answer is listed in
//! `errors`; the answer is still 200.
//!
//! An agent seen by several nodes (it failed over) is one row: the
//! gateway, connection, last-seen time and buffer of the freshest report
//! (a connected one first), with the span totals and rates of all nodes
//! added up ([`merge`]).
//!
//! The caller's access scope (`Extension<model::access::Scope>`, required:
//! a route without the access layer answers 500) keeps only the agents of
//! its clusters, in both the local and the cluster-wide answer. The
//! caller's `Authorization` header goes along to the members (tokens are
//! replicated, so the same credential is valid on each of them); each
//! member applies the scope again.
//!
//! ```json
//! {"data":[{"cluster":"eu","agentId":"…","gateway":1,"connected":true,
//!   "lastSeenMs":…,"spansPerSec":12.5,"spansTotal":900,
//!   "buffer":{"usedBytes":0,"capacityBytes":67108864,"spans":0}}],
//!  "errors":[{"gateway":2,"error":"…"}]}
//! ```

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};

use control_plane::ControlReader;
use control_state::NodeId;
use model::access::Scope;
use telemetry::clock::unix_ms_u64;

use crate::agents::{AgentRegistry, AgentView};

/// How long a member has to answer `?scope=local`.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `?scope=local` answer read from a member (10,000 agents fit).
pub const MAX_PEER_BODY: usize = 16 << 20;

#[derive(Clone)]
struct AgentsApi {
    registry: AgentRegistry,
    plane: Arc<dyn ControlReader>,
    http: reqwest::Client,
}

pub fn router(registry: AgentRegistry, plane: Arc<dyn ControlReader>) -> Router {
    Router::new()
        .route("/api/v1/agents", get(list))
        .with_state(AgentsApi {
            registry,
            plane,
            http: reqwest::Client::new(),
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    scope: Option<String>,
}

/// A member that did not answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerError {
    pub gateway: NodeId,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AgentsResponse {
    pub data: Vec<AgentView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PeerError>,
}

/// Why a member's list could not be had.
#[derive(Debug, thiserror::Error)]
enum PeerFetchError {
    #[error("no http address announced")]
    NoAddress,
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than {MAX_PEER_BODY} bytes")]
    TooLarge,
    #[error("unreadable answer: {0}")]
    Decode(#[from] serde_json::Error),
}

async fn list(
    State(api): State<AgentsApi>,
    Extension(access): Extension<Scope>,
    headers: axum::http::HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let credential = headers.get(axum::http::header::AUTHORIZATION).cloned();
    let me = api.plane.id();
    let mut local = api.registry.with(|a| a.list(me, unix_ms_u64()));
    local.retain(|a| access.allows(&a.cluster));
    match p.scope.as_deref() {
        Some("local") => {
            return Json(AgentsResponse {
                data: local,
                errors: Vec::new(),
            })
            .into_response();
        }
        None | Some("cluster") => {}
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": format!("unknown scope {other:?}: use \"local\" or \"cluster\"")
                })),
            )
                .into_response();
        }
    }
    let state = api.plane.state();
    let peers = state.members.iter().filter(|(id, _)| **id != me);
    let fetches = peers.map(|(id, m)| {
        let (id, addr, http) = (*id, m.http_addr.clone(), api.http.clone());
        let credential = credential.clone();
        async move { (id, fetch(&http, &addr, credential).await) }
    });
    let mut rows = local;
    let mut errors = Vec::new();
    for (id, res) in futures::future::join_all(fetches).await {
        match res {
            Ok(mut r) => {
                r.data.retain(|a| access.allows(&a.cluster));
                rows.append(&mut r.data);
            }
            Err(e) => {
                tracing::warn!(gateway = id, error = %e, "member did not list its agents");
                errors.push(PeerError {
                    gateway: id,
                    error: e.to_string(),
                });
            }
        }
    }
    Json(AgentsResponse {
        data: merge(rows),
        errors,
    })
    .into_response()
}

async fn fetch(
    http: &reqwest::Client,
    addr: &str,
    credential: Option<axum::http::HeaderValue>,
) -> Result<AgentsResponse, PeerFetchError> {
    if addr.is_empty() {
        return Err(PeerFetchError::NoAddress);
    }
    let mut req = http
        .get(format!("http://{addr}/api/v1/agents?scope=local"))
        .timeout(PEER_TIMEOUT);
    if let Some(value) = credential {
        req = req.header(reqwest::header::AUTHORIZATION, value);
    }
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        return Err(PeerFetchError::Status(resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_PEER_BODY {
            return Err(PeerFetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&body)?)
}

/// One row per (cluster, agent id): the freshest report (connected first,
/// then the latest `lastSeenMs`) with the span totals and rates of every
/// report added up. Sorted by cluster and id.
pub fn merge(rows: Vec<AgentView>) -> Vec<AgentView> {
    let mut by_agent: BTreeMap<(String, String), AgentView> = BTreeMap::new();
    for r in rows {
        match by_agent.entry((r.cluster.clone(), r.agent_id.clone())) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(r);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let cur = o.get_mut();
                let total = cur.spans_total.saturating_add(r.spans_total);
                let rate = cur.spans_per_sec + r.spans_per_sec;
                if (r.connected, r.last_seen_ms) > (cur.connected, cur.last_seen_ms) {
                    let buffer = r.buffer.clone().or_else(|| cur.buffer.take());
                    *cur = AgentView { buffer, ..r };
                }
                cur.spans_total = total;
                cur.spans_per_sec = rate;
            }
        }
    }
    by_agent.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::BufferState;

    fn row(gw: u64, connected: bool, seen: u64, total: u64, used: Option<u64>) -> AgentView {
        AgentView {
            cluster: "eu".into(),
            agent_id: "a".into(),
            gateway: gw,
            connected,
            last_seen_ms: seen,
            spans_per_sec: total as f64 / 10.0,
            spans_total: total,
            buffer: used.map(|u| BufferState {
                used_bytes: u,
                capacity_bytes: 100,
                spans: None,
                oldest_age_ms: None,
            }),
            version: None,
        }
    }

    /// A one-member control plane: `list` asks no peer.
    #[derive(Debug)]
    struct Alone(tokio::sync::watch::Sender<Arc<control_state::ControlState>>);

    impl ControlReader for Alone {
        fn id(&self) -> NodeId {
            1
        }
        fn is_leader(&self) -> bool {
            true
        }
        fn state(&self) -> Arc<control_state::ControlState> {
            self.0.borrow().clone()
        }
        fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<control_state::ControlState>> {
            self.0.subscribe()
        }
    }

    async fn listed(api: &AgentsApi, scope: Scope, local: bool) -> Vec<String> {
        let params = Params {
            scope: local.then(|| "local".to_owned()),
        };
        let resp = list(
            State(api.clone()),
            Extension(scope),
            Default::default(),
            Query(params),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let parsed: AgentsResponse = serde_json::from_slice(&body).expect("json");
        parsed.data.into_iter().map(|a| a.cluster).collect()
    }

    #[tokio::test]
    async fn only_the_agents_of_the_scope_are_listed() {
        let registry = AgentRegistry::new(100);
        let now = unix_ms_u64();
        for cluster in ["a", "b"] {
            let key = crate::agents::AgentKey::new(
                model::ClusterId::new(cluster).expect("cluster"),
                "agent-1",
            );
            registry.with(|a| a.forwarded(&key, 10, 100, None, now));
        }
        let api = AgentsApi {
            registry,
            plane: Arc::new(Alone(tokio::sync::watch::channel(Arc::default()).0)),
            http: reqwest::Client::new(),
        };
        for local in [true, false] {
            assert_eq!(listed(&api, Scope::only(["a"]), local).await, ["a"]);
            assert_eq!(listed(&api, Scope::All, local).await, ["a", "b"]);
            assert!(listed(&api, Scope::only(["c"]), local).await.is_empty());
        }
    }

    #[test]
    fn an_agent_that_failed_over_is_one_row_from_its_current_gateway() {
        let mut other = row(3, false, 1, 5, None);
        other.agent_id = "b".into();
        let got = merge(vec![
            row(1, false, 900, 100, Some(7)),
            other.clone(),
            row(2, true, 500, 20, None),
        ]);
        assert_eq!(got.len(), 2);
        let a = &got[0];
        assert_eq!((a.gateway, a.connected, a.last_seen_ms), (2, true, 500));
        assert_eq!(a.spans_total, 120);
        assert!((a.spans_per_sec - 12.0).abs() < 1e-9);
        assert_eq!(
            a.buffer.as_ref().map(|b| b.used_bytes),
            Some(7),
            "the older node's buffer report stands in for a missing one"
        );
        assert_eq!(got[1], other);
    }
}
