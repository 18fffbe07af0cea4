//! Rollups 10 s → 1 min → 1 h and per-resolution retention, on the Raft
//! leader only (one writer; a pass is idempotent, so two overlapping ones
//! around a leader change write the same records).

use std::{collections::BTreeMap, sync::Arc};

use model::red::{Aggregate, SeriesKey, window_start};
use store::{Record, SpanStore};
use tokio_util::sync::CancellationToken;

use super::{
    RedConfig,
    keys::{self, Resolution},
    query::{self, QueryError, Selector},
};
use crate::raft::node::ControlPlane;

/// Each pass recomputes the buckets overlapping the last 10 minutes: a
/// window arriving up to this late (an agent replaying its buffer) is in
/// the rollups; a later one only in the 10 s resolution.
pub const REWORK_MS: i64 = 10 * 60_000;
/// Records written per store call.
const PUT_CHUNK: usize = 1_000;

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupReport {
    pub minutes_written: u64,
    pub hours_written: u64,
    pub deleted: u64,
}

async fn roll(
    store: &Arc<dyn SpanStore>,
    from: Resolution,
    to: Resolution,
    now_ms: i64,
) -> Result<u64, QueryError> {
    let start = window_start(now_ms - REWORK_MS, to.width_ms());
    let rows = query::load(store, from, &Selector::default(), start, now_ms + 1).await?;
    let mut merged: BTreeMap<(SeriesKey, i64), Aggregate> = BTreeMap::new();
    for (series, t, agg) in rows {
        merged
            .entry((series, window_start(t, to.width_ms())))
            .or_default()
            .merge(&agg);
    }
    let records: Vec<Record> = merged
        .iter()
        .map(|((series, t), agg)| Record {
            kind: to.kind(),
            key: keys::key(series, *t, ""),
            time_ms: *t,
            value: keys::encode_value(agg),
            trace: None,
        })
        .collect();
    for chunk in records.chunks(PUT_CHUNK) {
        store.put_records(chunk).await?;
    }
    Ok(records.len() as u64)
}

/// One pass at `now_ms`.
pub async fn pass(
    store: &Arc<dyn SpanStore>,
    cfg: &RedConfig,
    now_ms: i64,
) -> Result<RollupReport, QueryError> {
    let minutes_written = roll(store, Resolution::S10, Resolution::M1, now_ms).await?;
    let hours_written = roll(store, Resolution::M1, Resolution::H1, now_ms).await?;
    let mut deleted = 0;
    for r in Resolution::ALL {
        let cutoff = now_ms - i64::try_from(cfg.retention(r).as_millis()).unwrap_or(i64::MAX);
        deleted += store.delete_records(r.kind(), cutoff).await?;
    }
    Ok(RollupReport {
        minutes_written,
        hours_written,
        deleted,
    })
}

/// Runs passes on the leader until `token` is cancelled.
pub async fn run(
    plane: Arc<ControlPlane>,
    store: Arc<dyn SpanStore>,
    cfg: RedConfig,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.rollup_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = token.cancelled() => return,
        }
        if !plane.is_leader() {
            continue;
        }
        match pass(&store, &cfg, cfg.clock.now_ms()).await {
            Ok(r) => tracing::debug!(
                minutes = r.minutes_written,
                hours = r.hours_written,
                deleted = r.deleted,
                "red rollup pass"
            ),
            Err(error) => tracing::warn!(%error, "red rollup pass failed; next pass retries"),
        }
    }
}
