//! meridian-agent: the per-cluster edge agent.
//!
//! Flow: [`receiver`] (OTLP gRPC/HTTP, Zipkin) →
//! [`sampling::pipeline::SamplingSink`] (RED tap over every span, consistent
//! head sampling, optional tail sampling; encodes the kept spans once) →
//! [`buffer`] (WAL or memory, bounded; full → retryable refusal upstream) →
//! [`forward`] (pipelined batches to the gateway over mTLS gRPC, zstd, and
//! optionally to an OTLP endpoint; jittered backoff, failover) → the
//! gateway's ack after the store committed → buffer release once every
//! destination acknowledged.
//!
//! Beside the flow, [`control`] follows the gateway cluster's `Control`
//! stream: its member list becomes the forwarder's endpoints, its sampling
//! policy for this cluster replaces the local one.
//!
//! This crate never depends on `store`, `gateway`, `sqlx` or `openraft`
//! (checked in CI): the per-node binary stays small.

pub mod admin;
pub mod app;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod control;
pub mod decide;
pub mod forward;
pub mod sampling;
pub mod tls;

pub use app::{Agent, AgentError};
pub use config::AgentConfig;
