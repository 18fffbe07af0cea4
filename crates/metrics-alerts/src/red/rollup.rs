//! Rollups 10 s → 1 min → 1 h and per-resolution retention, on the Raft
//! leader only (one writer; a pass is idempotent, so two overlapping ones
//! around a leader change write the same records).

use std::{collections::BTreeMap, sync::Arc};

use model::red::{Aggregate, Selector, SeriesKey, window_start};
use store::{Record, SpanStore};
use tokio_util::sync::CancellationToken;

use super::{
    RedConfig,
    keys::{self, Resolution},
    query::{self, QueryError},
};
use control_plane::ControlReader;

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

/// Recomputes the `to` buckets overlapping the last [`REWORK_MS`] from the
/// `from` records, one target bucket at a time and each in six slices, so a
/// read stays far below [`query::MAX_ROWS`] whatever the series and agent
/// counts (a slice of a minute bucket is one 10 s window: series × agents
/// rows; of an hour bucket, ten 1 min buckets: series × 10 rows), and memory
/// holds one bucket's series at a time.
async fn roll(
    store: &Arc<dyn SpanStore>,
    from: Resolution,
    to: Resolution,
    now_ms: i64,
) -> Result<u64, QueryError> {
    let width = to.width_ms();
    let slice = (width / 6).max(from.width_ms());
    let mut written = 0u64;
    let mut bucket = window_start(now_ms - REWORK_MS, width);
    while bucket <= now_ms {
        let end = (bucket + width).min(now_ms + 1);
        let mut merged: BTreeMap<SeriesKey, Aggregate> = BTreeMap::new();
        let mut t = bucket;
        while t < end {
            let upto = (t + slice).min(end);
            for (series, _, agg) in query::load(store, from, &Selector::default(), t, upto).await? {
                merged.entry(series).or_default().merge(&agg);
            }
            t = upto;
        }
        let records: Vec<Record> = merged
            .iter()
            .map(|(series, agg)| Record {
                kind: to.kind(),
                key: keys::key(series, bucket, ""),
                time_ms: bucket,
                value: keys::encode_value(agg),
                trace: None,
            })
            .collect();
        for chunk in records.chunks(PUT_CHUNK) {
            store.put_records(chunk).await?;
        }
        written += records.len() as u64;
        bucket += width;
    }
    Ok(written)
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
#[inline(never)]
pub fn run(
    plane: Arc<dyn ControlReader>,
    store: Arc<dyn SpanStore>,
    cfg: RedConfig,
    token: CancellationToken,
) -> futures::future::BoxFuture<'static, ()> {
    // Boxed, so that crates awaiting it do not compile its call tree
    // again (ARCHITECTURE.md, "Build time").
    Box::pin(async move {
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
            match pass(&store, &cfg, cfg.clock.unix_ms()).await {
                Ok(r) => tracing::debug!(
                    minutes = r.minutes_written,
                    hours = r.hours_written,
                    deleted = r.deleted,
                    "red rollup pass"
                ),
                Err(error) => tracing::warn!(%error, "red rollup pass failed; next pass retries"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(op: &str) -> SeriesKey {
        SeriesKey {
            cluster: "eu".into(),
            service: "api".into(),
            operation: op.into(),
            span_kind: "server".into(),
            status_code: "OK".into(),
        }
    }

    #[tokio::test]
    async fn a_pass_rolls_every_minute_and_hour_bucket_up_whole() {
        let store: Arc<dyn SpanStore> = Arc::new(
            store::sqlite::SqliteStore::open("sqlite::memory:")
                .await
                .expect("store"),
        );
        let hour = 3_600_000;
        let now = 100 * hour + 5 * 60_000 + 1_000;
        // Two agents, two series, every 10 s window of the last 8 minutes.
        let mut records = Vec::new();
        let mut t = now - 8 * 60_000;
        let mut windows = 0;
        while t <= now {
            let start = window_start(t, 10_000);
            for agent in ["agent-1", "agent-2"] {
                for op in ["GET /a", "GET /b"] {
                    let mut agg = Aggregate::default();
                    agg.observe(2_000_000, op == "GET /b", None);
                    records.push(Record {
                        kind: Resolution::S10.kind(),
                        key: keys::key(&series(op), start, agent),
                        time_ms: start,
                        value: keys::encode_value(&agg),
                        trace: None,
                    });
                }
            }
            windows += 1;
            t += 10_000;
        }
        store.put_records(&records).await.expect("put");
        let report = pass(&store, &RedConfig::default(), now)
            .await
            .expect("pass");
        assert!(report.minutes_written > 0 && report.hours_written > 0);
        // Minute and hour records together hold every 10 s count, once.
        for res in [Resolution::M1, Resolution::H1] {
            let rows = query::load(&store, res, &Selector::default(), 0, now + hour)
                .await
                .expect("load");
            let calls: u64 = rows.iter().map(|(_, _, a)| a.count).sum();
            let errors: u64 = rows.iter().map(|(_, _, a)| a.errors).sum();
            assert_eq!(calls, windows * 4, "{res:?}");
            assert_eq!(errors, windows * 2, "{res:?}");
        }
        // A second pass rewrites the same buckets: nothing is counted twice.
        pass(&store, &RedConfig::default(), now)
            .await
            .expect("pass");
        let rows = query::load(&store, Resolution::M1, &Selector::default(), 0, now + hour)
            .await
            .expect("load");
        assert_eq!(
            rows.iter().map(|(_, _, a)| a.count).sum::<u64>(),
            windows * 4
        );
    }
}
