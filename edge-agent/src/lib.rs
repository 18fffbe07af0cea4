//! meridian-agent: the per-cluster edge agent.
//!
//! Flow: [`receiver`] (OTLP gRPC/HTTP, Zipkin) → [`sink::BufferSink`]
//! (encodes the validated request once) → [`buffer`] (bounded; full →
//! retryable refusal upstream) → [`forward`] (batches, zstd, mTLS gRPC to a
//! gateway, retries with jittered backoff, fails over between gateways) →
//! the gateway's ack after the store committed → buffer release.
//!
//! This crate never depends on `store`, `gateway`, `sqlx` or `openraft`
//! (checked in CI): the per-node binary stays small.

pub mod admin;
pub mod app;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod forward;
pub mod sink;
pub mod tls;

pub use app::{Agent, AgentError};
pub use config::AgentConfig;
