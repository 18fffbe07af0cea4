//! RED metrics on the gateway: agents' 10 s windows in, rollups, queries,
//! `/metrics`.
//!
//! - [`ingest`]: the `metrics.proto` `ForwardWindows` RPC (same mTLS
//!   identity rule as `Forward`): each series of each window becomes a
//!   `Red10s` record whose key holds the agent and its process epoch
//!   ([`keys`]), so a replay replaces and never adds; the agent is
//!   answered after the store committed.
//! - [`rollup`]: on the Raft leader, every `rollup_interval`: the last
//!   [`rollup::REWORK_MS`] of 10 s records are merged into 1 min records
//!   and those into 1 h records (recomputed and replaced, so a window that
//!   arrives late is included if it is at most that late), and each
//!   resolution's retention is applied.
//! - [`query`]: reads a resolution over a time range, merges series.
//! - [`api`]: Jaeger SPM `/api/metrics/*` and `/api/v1/metrics/red`.
//! - [`prom`]: the RED series on `/metrics`, cardinality-bounded.

pub mod api;
pub mod ingest;
pub mod keys;
pub mod prom;
pub mod query;
pub mod rollup;

use std::time::Duration;

use telemetry::clock::{SharedClock, SystemClock};

/// RED metrics settings.
#[derive(Debug, Clone)]
pub struct RedConfig {
    /// How long each resolution is kept.
    pub retention_10s: Duration,
    pub retention_1m: Duration,
    pub retention_1h: Duration,
    /// How often the leader rolls up and applies retention.
    pub rollup_interval: Duration,
    /// Distinct (cluster, service, operation) series on `/metrics` before
    /// new ones are folded into `operation="other"`.
    pub prom_max_series: usize,
    /// The time rollups, queries' defaults and alert evaluation go by
    /// (wall time; tests inject a manual clock).
    pub clock: SharedClock,
}

impl Default for RedConfig {
    fn default() -> Self {
        Self {
            retention_10s: Duration::from_secs(24 * 3600),
            retention_1m: Duration::from_secs(8 * 24 * 3600),
            retention_1h: Duration::from_secs(400 * 24 * 3600),
            rollup_interval: Duration::from_secs(30),
            prom_max_series: 5_000,
            clock: SystemClock::shared(),
        }
    }
}

impl RedConfig {
    /// The longest window a RED query may cover: the longest retention
    /// of any resolution, in ms (nothing older is kept).
    pub fn horizon_ms(&self) -> i64 {
        let longest = keys::Resolution::ALL
            .iter()
            .map(|r| self.retention(*r))
            .max()
            .unwrap_or_default();
        i64::try_from(longest.as_millis()).unwrap_or(i64::MAX)
    }

    pub fn retention(&self, r: keys::Resolution) -> Duration {
        match r {
            keys::Resolution::S10 => self.retention_10s,
            keys::Resolution::M1 => self.retention_1m,
            keys::Resolution::H1 => self.retention_1h,
        }
    }
}
