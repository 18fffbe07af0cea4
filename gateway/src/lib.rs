//! meridian-gateway: federation ingest, store routing, query APIs, web UI.
//!
//! Ingest: [`tls`] (mTLS accept) → [`federation`] (identity from the client
//! certificate, admission, decode, cluster stamp) → [`ingest`] (model spans,
//! idempotent store write) → ack after commit. The plain OTLP ports use the
//! same [`ingest`] through [`ingest::DirectSink`].
//! Control: [`federation`] `Control` streams [`control::ControlView`]s
//! (gateway members, per-cluster sampling policies) to agents.
//! Query: [`http`] → [`query`] (Jaeger v1 JSON, `/api/v1/storage`) →
//! `store::SpanStore`. Background: [`retention`] expires old spans.
//! Control plane: [`raft`] (replicated state), [`admin`] (its HTTP API and
//! the `admin` CLI).

pub mod admin;
pub mod agents;
pub mod alerts;
pub mod app;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod federation;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod peer;
pub mod query;
pub mod raft;
pub mod red;
pub mod retention;
pub mod stitch;
pub mod tail;
#[cfg(test)]
mod testing;
pub mod tls;

pub use app::{Gateway, GatewayError};
pub use config::GatewayConfig;
