//! Jaeger remote sampling: `GET /sampling?service=NAME` on `--sampling`
//! (default :5778), answered from the agent's current head policy in
//! Jaeger's JSON, so Jaeger and OTel SDKs with a remote sampler follow it.
//!
//! A rule with `max_traces_per_second` (and no operation) for the service →
//! `RATE_LIMITING`; rules with an `operation` → per-operation strategies
//! under `operationSampling`; otherwise `PROBABILISTIC` with the service's
//! probability.

use std::sync::{Arc, RwLock};

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use model::sampling::{HeadConfig, SamplingConfig};
use serde_json::{Value, json};

use sampling::head;

/// The strategy for `service` in this `cluster`.
pub fn strategy(cfg: &HeadConfig, cluster: &str, service: &str) -> Value {
    let rules: Vec<_> = cfg
        .rules
        .iter()
        .filter(|r| r.cluster.as_deref().is_none_or(|c| c == cluster))
        .filter(|r| r.service.as_deref().is_none_or(|s| s == service))
        .collect();
    if let Some(rate) = rules
        .iter()
        .filter(|r| r.operation.is_none())
        .find_map(|r| r.max_traces_per_second)
    {
        return json!({
            "strategyType": "RATE_LIMITING",
            "rateLimitingSampling": {"maxTracesPerSecond": rate},
        });
    }
    let default = head::probability(cfg, cluster, service, "\u{0}no-operation");
    let per_op: Vec<Value> = rules
        .iter()
        .filter_map(|r| Some((r.operation.as_ref()?, r.probability?)))
        .map(|(op, p)| json!({"operation": op, "probabilisticSampling": {"samplingRate": p}}))
        .collect();
    let mut out = json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": default},
    });
    if !per_op.is_empty() {
        out["operationSampling"] = json!({
            "defaultSamplingProbability": default,
            "defaultLowerBoundTracesPerSecond": 0.0,
            "defaultUpperBoundTracesPerSecond": 0.0,
            "perOperationStrategies": per_op,
        });
    }
    out
}

#[derive(Debug, Clone)]
struct RemoteState {
    cluster: String,
    policy: Arc<RwLock<Arc<SamplingConfig>>>,
}

/// `GET /sampling` serving the current policy (which the gateway-cluster
/// issue updates at run time through `policy`).
pub fn router(cluster: String, policy: Arc<RwLock<Arc<SamplingConfig>>>) -> Router {
    Router::new()
        .route("/sampling", get(sampling))
        .route("/", get(sampling))
        .with_state(RemoteState { cluster, policy })
}

async fn sampling(State(st): State<RemoteState>, RawQuery(q): RawQuery) -> Response {
    let service = form_urlencoded_service(q.as_deref());
    let Some(service) = service else {
        return (
            StatusCode::BAD_REQUEST,
            "'service' parameter must be provided",
        )
            .into_response();
    };
    let cfg = st
        .policy
        .read()
        .map(|p| Arc::clone(&p))
        .unwrap_or_else(|p| Arc::clone(&p.into_inner()));
    Json(strategy(&cfg.head, &st.cluster, &service)).into_response()
}

fn form_urlencoded_service(q: Option<&str>) -> Option<String> {
    form_urlencoded::parse(q?.as_bytes())
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::sampling::HeadRule;

    fn rule(
        service: Option<&str>,
        op: Option<&str>,
        p: Option<f64>,
        rate: Option<f64>,
    ) -> HeadRule {
        HeadRule {
            cluster: None,
            service: service.map(Into::into),
            operation: op.map(Into::into),
            probability: p,
            max_traces_per_second: rate,
        }
    }

    #[test]
    fn jaeger_strategies() {
        let cfg = HeadConfig {
            default_probability: 0.5,
            rules: vec![
                rule(Some("limited"), None, None, Some(5.0)),
                rule(Some("ops"), Some("GET /health"), Some(0.0), None),
                rule(Some("ops"), None, Some(0.2), None),
            ],
        };
        assert_eq!(
            strategy(&cfg, "c", "limited"),
            json!({"strategyType":"RATE_LIMITING","rateLimitingSampling":{"maxTracesPerSecond":5.0}})
        );
        assert_eq!(
            strategy(&cfg, "c", "plain"),
            json!({"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":0.5}})
        );
        let ops = strategy(&cfg, "c", "ops");
        assert_eq!(ops["probabilisticSampling"]["samplingRate"], 0.2);
        assert_eq!(ops["operationSampling"]["defaultSamplingProbability"], 0.2);
        assert_eq!(
            ops["operationSampling"]["perOperationStrategies"],
            json!([{"operation":"GET /health","probabilisticSampling":{"samplingRate":0.0}}])
        );
        assert_eq!(
            form_urlencoded_service(Some("service=my%20svc")),
            Some("my svc".into())
        );
        assert_eq!(form_urlencoded_service(Some("x=1")), None);
    }
}
