//! Span receivers shared by the agent and the gateway.
//!
//! - [`grpc`]: OTLP `TraceService/Export` (gzip accepted).
//! - [`http`]: OTLP/HTTP `POST /v1/traces` (protobuf or JSON, gzip) and
//!   Zipkin v2 `POST /api/v2/spans` (JSON, gzip).
//!
//! Every request goes through the same steps: size limits (compressed and
//! decompressed), decode limits checked before decoding
//! ([`proto::bounds`]: spans, attributes, events, links, decoded bytes),
//! decode, [`proto::validate::sanitize`] (invalid spans are
//! refused, valid ones of the same batch kept: OTLP partial success),
//! [`Sink::screen`] (what the sink refuses outright, e.g. the agent's
//! foreign cluster claims: partial success too), then [`Sink::accept`],
//! whose answer decides the reply: `Full`/`Unavailable` become
//! retryable statuses with a retry hint (HTTP 429/503 + `Retry-After`, gRPC
//! RESOURCE_EXHAUSTED/UNAVAILABLE + `RetryInfo`).
//!
//! OTLP metrics and logs are not taken: [`absent`] answers them as the
//! OTel Collector does without such a pipeline (HTTP 404, gRPC
//! UNIMPLEMENTED), with a message.
//!
//! [`config::ReceiverFlags`] is the receivers' flag block both binaries
//! flatten into their settings; [`grpc::serve`] starts the gRPC receiver
//! (HTTP ones are served with `telemetry::serve::http`).

pub mod absent;
pub mod config;
pub mod grpc;
pub mod http;
mod limits;
mod metrics;
mod outcome;
mod sink;
mod trace_server;

#[cfg(test)]
mod encoded_tests;
#[cfg(test)]
mod tests;

pub use limits::{InflightLimit, Limits, MAX_INFLIGHT_REQUESTS, decoded_budget, reading_budget};
pub use metrics::ReceiverMetrics;
pub use outcome::{ReceiveError, Received};
pub use sink::{Prepared, Screened, Sink, SinkError};
