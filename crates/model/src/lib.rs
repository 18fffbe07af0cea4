//! Meridian's domain types.
//!
//! Everything here is plain data plus pure functions: no I/O, no async, no
//! wire formats. `proto` converts wire messages into these types, `store`
//! persists them and `gateway` serves them.

pub mod access;
mod cluster;
mod error;
mod ids;
mod query;
pub mod red;
pub mod retention;
pub mod sampling;
pub mod shard;
pub mod skew;
mod span;
mod value;

pub use cluster::{ClusterId, ClusterIdError};
pub use error::ServiceErrorCode;
pub use ids::{IdError, SpanId, TraceId};
pub use query::{TagFilter, Trace, TraceQuery, span_has_tag};
pub use retention::RetentionPolicy;
pub use span::{Event, Link, Resource, Span, SpanKind, StatusCode};
pub use value::{AttrValue, KeyValue};

/// Resource attribute carrying the cluster identity that the gateway stamps.
pub const CLUSTER_ATTRIBUTE: &str = "k8s.cluster.name";
/// Resource attribute naming the service.
pub const SERVICE_ATTRIBUTE: &str = "service.name";
/// Service name used when a resource carries none (same as the OTel SDKs).
pub const UNKNOWN_SERVICE: &str = "unknown_service";
