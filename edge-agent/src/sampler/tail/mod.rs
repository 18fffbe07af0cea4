//! Tail sampling: hold each trace's spans for a decision window, then keep
//! or drop the whole trace by policy (like the OTel Collector's
//! `tail_sampling` processor). Pure: no I/O, no tasks, time from an injected
//! [`telemetry::clock::Clock`], so every policy is tested table-driven.
//!
//! - [`held`]: the held-span encoding. Spans are held *encoded* (one
//!   fragment per trace and incoming scope, trace ids removed), with a
//!   small summary per trace; on release the trace ids are written back.
//! - [`engine`]: the [`TailSampler`] deciding over those summaries:
//!
//! - **Window**: a trace is decided `decision_wait_ms` after its first span.
//! - **Caps**: above `max_traces` or `max_bytes`, the oldest trace is decided
//!   early with what has arrived (not dropped undecided: its spans were
//!   accepted).
//! - **Order**: policies are tried in order; the first that keeps names the
//!   trace (`meridian.sampling.policy` on every resource of the trace, added
//!   by appending an encoded `Resource` that protobuf merges into the
//!   fragment's). Rate-limiting budgets are consumed only by the policy that
//!   keeps.
//! - **Late spans** of a decided trace follow the cached decision (a bounded
//!   FIFO of recent decisions).
//! - **Durability**: held spans are in memory; the client was answered on
//!   receipt, as in the Collector. A crash loses undecided traces.
//! - **Cross-cluster verdicts** ([`TailSampler::set_verdicts`]): each
//!   decision also yields a [`Digest`] for the gateway. A local keep is
//!   final (a trace kept anywhere is kept everywhere); a local drop holds
//!   the trace (and its later spans) until [`TailSampler::verdict`] or the
//!   verdict timeout, when the local drop stands. Waiting traces count
//!   toward the caps; when full, the oldest waiting trace takes its local
//!   verdict first ([`Released::forced_local`]).
//!
//! Policies are compiled and judged by [`sampling::tail::Judge`], which the
//! gateway's combiner shares.

mod engine;
mod held;

use sampling::tail::TraceFacts;

pub use engine::TailSampler;
pub use held::{Fragment, Released};

/// The attribute naming the policy that kept a trace.
pub const POLICY_ATTRIBUTE: &str = "meridian.sampling.policy";

/// Per-trace bookkeeping counted on top of the encoded spans.
const TRACE_OVERHEAD: usize = 160;

/// A point-in-time view for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailUsage {
    /// Traces held: in their window, or waiting for a verdict.
    pub traces: usize,
    pub spans: u64,
    pub bytes: usize,
    pub decided_cached: usize,
    /// Of `traces`, those whose local verdict (drop) waits for the
    /// gateway's.
    pub awaiting: usize,
}

/// What this cluster saw of a trace when its local decision was due; sent
/// to the gateway for the cross-cluster decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub facts: TraceFacts,
    /// Encoded span bytes held for the trace.
    pub bytes: u64,
    /// The local policy that kept it; `None`: the local verdict is drop.
    pub kept_by: Option<String>,
    /// A report, not a vote: no verdict came in time and the spans were
    /// dropped for good.
    pub dropped: bool,
}

#[cfg(test)]
mod tests;
