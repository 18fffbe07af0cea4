//! The gateway's ingest (DESIGN.md §3, gateway side).
//!
//! Flow: an agent's mTLS connection (accepted by `mtls`) →
//! [`service::FederationService`] (identity from the client certificate,
//! admission by in-flight bytes, decode, the cluster stamp) →
//! [`write::Ingest`] (model spans, idempotent store write, backlinks, the
//! stitching notes) → the ack after the store committed. The plain OTLP
//! ports use the same [`write::Ingest`] through [`write::DirectSink`].
//!
//! Beside it, on the same service: the agents' `Control` stream
//! ([`control_stream`], fed by the [`view::ControlView`] the replicated
//! state yields) and the `Decide` stream of cross-cluster tail decisions
//! (served by `stitch::tail`); the registry of agents each node hears from
//! ([`agents`]) with its cluster-wide HTTP view (`GET /api/v1/agents`).
//!
//! Must not know: openraft (it reads the control plane through
//! `ControlReader` and the state feed), SQL, the query API.

pub mod agents;
pub mod control_stream;
pub mod metrics;
pub mod service;
pub mod view;
pub mod write;

pub use agents::AgentRegistry;
pub use metrics::GatewayMetrics;
pub use service::FederationService;
pub use view::{ControlFeed, ControlView, Registration};
pub use write::{DirectSink, Ingest};
