//! Jaeger remote sampling over gRPC: `jaeger.api_v2.SamplingManager/
//! GetSamplingStrategy` on `--sampling-grpc` (default :5779, Jaeger's
//! port), the transport OTel Java's `jaeger_remote` sampler uses. It
//! answers the strategy `GET /sampling` (:5778, [`super::remote`]) serves,
//! from the same [`Strategy`] value, so the two never disagree.
//!
//! The wire is jaeger-idl's `proto/api_v2/sampling.proto` (vendored in
//! `crates/proto/proto/jaeger/api_v2`). Its `maxTracesPerSecond` is an
//! int32: a fractional rate is rounded (at least 1 when the rate is
//! positive, so a small limit does not become "sample nothing").

use std::sync::{Arc, RwLock};

use model::sampling::SamplingConfig;
use proto::jaeger_sampling::{
    OperationSamplingStrategy, PerOperationSamplingStrategies, ProbabilisticSamplingStrategy,
    RateLimitingSamplingStrategy, SamplingStrategyParameters, SamplingStrategyResponse,
    SamplingStrategyType,
    sampling_manager_server::{SamplingManager, SamplingManagerServer},
};
use telemetry::{Shutdown, serve::grpc as settings};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, transport::Server};

use super::remote::{Strategy, current, strategy};

/// The strategy in Jaeger's protobuf form.
pub fn to_proto(s: &Strategy) -> SamplingStrategyResponse {
    match s {
        Strategy::RateLimiting {
            max_traces_per_second,
        } => {
            let rate = max_traces_per_second
                .round()
                .clamp(0.0, f64::from(i32::MAX)) as i32;
            let rate = if *max_traces_per_second > 0.0 {
                rate.max(1)
            } else {
                rate
            };
            SamplingStrategyResponse {
                strategy_type: SamplingStrategyType::RateLimiting as i32,
                rate_limiting_sampling: Some(RateLimitingSamplingStrategy {
                    max_traces_per_second: rate,
                }),
                ..Default::default()
            }
        }
        Strategy::Probabilistic {
            rate,
            per_operation,
        } => SamplingStrategyResponse {
            strategy_type: SamplingStrategyType::Probabilistic as i32,
            probabilistic_sampling: Some(ProbabilisticSamplingStrategy {
                sampling_rate: *rate,
            }),
            operation_sampling: (!per_operation.is_empty()).then(|| {
                PerOperationSamplingStrategies {
                    default_sampling_probability: *rate,
                    default_lower_bound_traces_per_second: 0.0,
                    default_upper_bound_traces_per_second: 0.0,
                    per_operation_strategies: per_operation
                        .iter()
                        .map(|(op, p)| OperationSamplingStrategy {
                            operation: op.clone(),
                            probabilistic_sampling: Some(ProbabilisticSamplingStrategy {
                                sampling_rate: *p,
                            }),
                        })
                        .collect(),
                }
            }),
            ..Default::default()
        },
    }
}

/// The `SamplingManager` service over the agent's current head policy.
#[derive(Debug, Clone)]
pub struct GrpcSampling {
    cluster: String,
    policy: Arc<RwLock<Arc<SamplingConfig>>>,
}

impl GrpcSampling {
    pub fn new(cluster: String, policy: Arc<RwLock<Arc<SamplingConfig>>>) -> Self {
        Self { cluster, policy }
    }
}

#[tonic::async_trait]
impl SamplingManager for GrpcSampling {
    async fn get_sampling_strategy(
        &self,
        request: Request<SamplingStrategyParameters>,
    ) -> Result<Response<SamplingStrategyResponse>, Status> {
        let service = request.into_inner().service_name;
        if service.is_empty() {
            // The HTTP endpoint's 400, in gRPC.
            return Err(Status::invalid_argument("'serviceName' must be provided"));
        }
        let cfg = current(&self.policy);
        Ok(Response::new(to_proto(&strategy(
            &cfg.head,
            &self.cluster,
            &service,
        ))))
    }
}

/// Serves [`GrpcSampling`] on `listener` as a task of `owner` until it is
/// cancelled. Requests are tiny; the server has the shared gRPC settings
/// (keepalive, streams per connection, request timeout).
pub fn serve(owner: &Shutdown, listener: TcpListener, service: GrpcSampling) {
    let token = owner.token().clone();
    owner.spawn(async move {
        let res = Server::builder()
            .http2_keepalive_interval(Some(settings::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(settings::KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(settings::MAX_STREAMS_PER_CONNECTION)
            .timeout(settings::REQUEST_TIMEOUT)
            .add_service(SamplingManagerServer::new(service).max_decoding_message_size(64 << 10))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), token.cancelled_owned())
            .await;
        if let Err(error) = res {
            tracing::error!(%error, "sampling grpc server failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proto_carries_the_same_strategy() {
        let r = to_proto(&Strategy::RateLimiting {
            max_traces_per_second: 0.2,
        });
        assert_eq!(r.strategy_type, SamplingStrategyType::RateLimiting as i32);
        assert_eq!(
            r.rate_limiting_sampling.map(|s| s.max_traces_per_second),
            Some(1)
        );
        let r = to_proto(&Strategy::Probabilistic {
            rate: 0.25,
            per_operation: vec![("GET /health".into(), 0.0)],
        });
        assert_eq!(
            r.probabilistic_sampling.map(|p| p.sampling_rate),
            Some(0.25)
        );
        let ops = r.operation_sampling.expect("per operation");
        assert_eq!(ops.default_sampling_probability, 0.25);
        assert_eq!(ops.per_operation_strategies[0].operation, "GET /health");
        let plain = to_proto(&Strategy::Probabilistic {
            rate: 1.0,
            per_operation: Vec::new(),
        });
        assert!(plain.operation_sampling.is_none() && plain.rate_limiting_sampling.is_none());
    }
}
