//! Jaeger remote sampling: `GET /sampling?service=NAME` on `--sampling`
//! (default :5778), answered from the agent's current head policy in
//! Jaeger's JSON, so Jaeger and OTel SDKs with a remote sampler follow it.
//!
//! The same strategies over gRPC: [`super::remote_grpc`].
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

/// The strategy an SDK gets for one service: one value rendered as
/// Jaeger's JSON here and as `SamplingStrategyResponse` by
/// [`super::remote_grpc`], so both endpoints always agree.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `RATE_LIMITING`: at most this many traces per second.
    RateLimiting { max_traces_per_second: f64 },
    /// `PROBABILISTIC` with the service's probability, and per-operation
    /// probabilities when rules name operations.
    Probabilistic {
        rate: f64,
        per_operation: Vec<(String, f64)>,
    },
}

/// The strategy for `service` in this `cluster`.
pub fn strategy(cfg: &HeadConfig, cluster: &str, service: &str) -> Strategy {
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
        return Strategy::RateLimiting {
            max_traces_per_second: rate,
        };
    }
    let rate = head::probability(cfg, cluster, service, "\u{0}no-operation");
    let per_operation = rules
        .iter()
        .filter_map(|r| Some((r.operation.clone()?, r.probability?)))
        .collect();
    Strategy::Probabilistic {
        rate,
        per_operation,
    }
}

impl Strategy {
    /// Jaeger's JSON (`GET /sampling`).
    pub fn to_json(&self) -> Value {
        match self {
            Self::RateLimiting {
                max_traces_per_second,
            } => json!({
                "strategyType": "RATE_LIMITING",
                "rateLimitingSampling": {"maxTracesPerSecond": max_traces_per_second},
            }),
            Self::Probabilistic {
                rate,
                per_operation,
            } => {
                let mut out = json!({
                    "strategyType": "PROBABILISTIC",
                    "probabilisticSampling": {"samplingRate": rate},
                });
                if !per_operation.is_empty() {
                    let per_op: Vec<Value> = per_operation
                        .iter()
                        .map(|(op, p)| json!({"operation": op, "probabilisticSampling": {"samplingRate": p}}))
                        .collect();
                    out["operationSampling"] = json!({
                        "defaultSamplingProbability": rate,
                        "defaultLowerBoundTracesPerSecond": 0.0,
                        "defaultUpperBoundTracesPerSecond": 0.0,
                        "perOperationStrategies": per_op,
                    });
                }
                out
            }
        }
    }
}

/// The policy in force now (a poisoned lock still holds the last one).
pub fn current(policy: &RwLock<Arc<SamplingConfig>>) -> Arc<SamplingConfig> {
    policy
        .read()
        .map(|p| Arc::clone(&p))
        .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
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
    let cfg = current(&st.policy);
    Json(strategy(&cfg.head, &st.cluster, &service).to_json()).into_response()
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
            strategy(&cfg, "c", "limited").to_json(),
            json!({"strategyType":"RATE_LIMITING","rateLimitingSampling":{"maxTracesPerSecond":5.0}})
        );
        assert_eq!(
            strategy(&cfg, "c", "plain").to_json(),
            json!({"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":0.5}})
        );
        let ops = strategy(&cfg, "c", "ops").to_json();
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
