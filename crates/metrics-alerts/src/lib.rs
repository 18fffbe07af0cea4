//! RED metrics and alerts on the gateway (DESIGN.md, the metrics issue).
//!
//! - [`red`]: agents' 10 s RED windows stored idempotently
//!   ([`red::ingest`], the `Metrics.ForwardWindows` RPC), rolled up
//!   10 s → 1 min → 1 h on the leader ([`red::rollup`]), read back
//!   ([`red::query`]) for Jaeger SPM and `/api/v1/metrics/red`
//!   ([`red::api`]) and bounded `/metrics` series ([`red::prom`]);
//! - [`alerts`]: rules evaluated on the leader over those series, status
//!   replicated through Raft before notifying, webhooks from a bounded
//!   queue, `GET /api/v1/alerts`.
//!
//! Arrows: `alerts` uses `red`, never the reverse. Must not know: openraft
//! (the control plane is reached through `ControlReader`/`Proposer`),
//! ingest, stitching, SQL.

pub mod alerts;
pub mod red;

pub use alerts::AlertsConfig;
pub use red::RedConfig;
