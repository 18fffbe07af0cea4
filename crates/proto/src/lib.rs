//! Wire types and their conversions. The only crate that knows prost types.
//!
//! - [`otlp`]: re-exports of the OTLP trace types (opentelemetry-proto) and
//!   helpers to decode OTLP protobuf and OTLP/JSON.
//! - [`bounds`]: what a message may decode into, checked before decoding.
//! - [`validate`]: drops spans with invalid ids, for OTLP partial success.
//! - [`zipkin`]: Zipkin v2 JSON → OTLP.
//! - [`convert`]: OTLP → [`model::Span`], and stamping the cluster identity.
//! - [`federation`]: Meridian's agent → gateway protocol (`federation.proto`).
//! - [`raft`]: gateway ↔ gateway control-plane transport (`raft.proto`).
//! - [`jaeger_sampling`]: Jaeger's `SamplingManager` (`sampling.proto`).

pub mod bounds;
pub mod codec;
pub mod columns;
pub mod convert;
pub mod corpus;
pub mod corpus_prod;
pub mod otlp;
pub mod payload;
pub mod raw;
pub mod red;
pub mod validate;
pub mod view;
pub mod zipkin;

/// Generated from `proto/meridian/federation/v1/federation.proto`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod federation {
    include!("generated/meridian.federation.v1.rs");
}

/// Generated from `proto/meridian/metrics/v1/metrics.proto`: RED windows,
/// agent → gateway (conversions in [`red`]).
#[allow(missing_debug_implementations, clippy::all)]
pub mod metrics {
    include!("generated/meridian.metrics.v1.rs");
}

/// Generated from `proto/meridian/raft/v1/raft.proto`: the gateways'
/// control-plane transport.
#[allow(missing_debug_implementations, clippy::all)]
pub mod raft {
    include!("generated/meridian.raft.v1.rs");
}

/// Generated from `proto/jaeger/api_v2/sampling.proto`: Jaeger remote
/// sampling over gRPC (`jaeger.api_v2.SamplingManager`), the agent's
/// `--sampling-grpc`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod jaeger_sampling {
    include!("generated/jaeger.api_v2.rs");
}

/// `google.rpc.Status` (code, message), the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
