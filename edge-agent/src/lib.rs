//! meridian-agent: the per-cluster edge agent.
//!
//! Flow: [`receiver`] (OTLP gRPC/HTTP, Zipkin) → [`red_tap`] (RED metrics
//! over every span) → [`sampler::pipeline::SamplingSink`] (consistent head
//! sampling, optional tail sampling, by the `sampling` crate's policy
//! language; encodes the kept spans once) → [`buffer`] (WAL or memory,
//! bounded; full → retryable refusal upstream) → [`forward`] (pipelined
//! batches to the gateway over mTLS gRPC, zstd, and optionally to an OTLP
//! endpoint; jittered backoff, failover) → the gateway's ack after the store
//! committed → buffer release once every destination acknowledged.
//!
//! Beside the flow, two streams follow the gateway cluster, each on one
//! gateway at a time ([`reconnect`]): [`control`] (the `Control` stream:
//! its member list becomes the forwarder's endpoints, its sampling policy
//! for this cluster replaces the local one) and [`verdict_stream`] (the
//! `Decide` stream: tail digests up, cross-cluster verdicts down).
//!
//! This crate never depends on `store`, `gateway`, `sqlx` or `openraft`
//! (checked in CI): the per-node binary stays small.

pub mod admin;
pub mod app;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod control;
pub mod forward;
pub mod reconnect;
pub mod red_tap;
pub mod sampler;
pub mod tls;
pub mod verdict_stream;

pub use app::{Agent, AgentError};
pub use config::AgentConfig;
