//! Stitching traces that cross clusters: trace summaries, service edges
//! (in-cluster and cross-cluster) and clock-skew estimates, kept by the
//! worker of each trace's shard (the holder of the shard's lease, else the
//! Raft leader).
//!
//! Flow: every gateway, after the store committed a batch
//! (the ingest crate), turns each span into a [`Note`] and routes it to
//! the worker of the span's shard: locally into the worker's queue, or over
//! the Raft port's `Peer` RPC (`Topic::Stitch`) in batches.
//! The worker keeps hot per-trace state in a `moka` cache (time-to-idle),
//! pairs parents with children whichever arrives first, and every
//! [`StitchConfig::flush_every`] writes to the store: the summaries of the
//! traces that changed, the per-minute edge aggregates (merged with what is
//! stored), and its clock-offset estimates.
//!
//! Everything here is derived from stored spans: a full queue or an
//! unreachable worker drops notes (counted in
//! `meridian_gateway_stitch_notes_dropped_total{reason}`), never spans. A
//! worker that dies loses the edges of at most one flush interval, and the
//! trace state it held: the new worker starts those traces afresh (their
//! summaries then count only what arrives after the handover, and pairs
//! across the handover are not formed). Summaries shown by the API are
//! completed from the stored trace, so they stay right for what is stored.

//!
//! Modules: [`trace_state`] (the pure part: a trace's state, pairing,
//! aggregates), [`route`] (notes to workers), [`worker`] (the per-node
//! worker), [`records`] (the derived record formats), [`tail`] (cross-
//! cluster tail decisions, routed the same way).
//!
//! Must not know: openraft (it takes the control plane's [`PeerBus`]
//! trait), ingest or the query API (they depend on this crate).

pub mod config;
pub mod metrics;
pub mod names;
pub mod records;
pub mod route;
pub mod tail;
pub mod trace_state;
pub mod worker;

pub use config::StitchConfig;
pub use control_plane::PeerBus;
pub use metrics::StitchMetrics;
pub use records::{Backlink, StoredOffset, backlinks, offsets, stored_summary};
pub use route::{Batch, DROP_REPORTS, DroppedReport, Stitcher};
pub use trace_state::{EdgeAgg, Histogram, Note, Summary, TraceState};
pub use worker::bench_worker;
