//! Reading RED records back: pick a resolution, scan a time range, merge.

use std::{collections::BTreeMap, sync::Arc};

use model::{
    access::Scope,
    red::{Aggregate, Selector, SeriesKey},
};
use store::{RecordScan, SpanStore, StoreError};

use super::{
    RedConfig,
    keys::{self, Resolution},
};

/// Most records one query reads (per shard); a query hitting it is told
/// to narrow its range or coarsen its step.
pub const MAX_ROWS: usize = 500_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the query reads more than {MAX_ROWS} records; narrow the time range or use a larger step"
    )]
    TooLarge,
}

/// The coarsest resolution that still resolves `step`, made finer when
/// the coarse one might lag (the last 2 rollup intervals) and coarser when
/// the finer one's retention no longer covers `from`.
pub fn choose(cfg: &RedConfig, now_ms: i64, from_ms: i64, to_ms: i64, step_ms: i64) -> Resolution {
    let lag = 2 * cfg.rollup_interval.as_millis() as i64 + Resolution::M1.width_ms();
    let mut pick = Resolution::S10;
    for r in Resolution::ALL {
        if r.width_ms() <= step_ms && step_ms % r.width_ms() == 0 && to_ms <= now_ms - lag {
            pick = r;
        }
    }
    for r in Resolution::ALL {
        let kept_from = now_ms - cfg.retention(r).as_millis() as i64;
        if r >= pick && from_ms >= kept_from {
            return r;
        }
    }
    Resolution::H1
}

/// Every stored bucket in `[from, to)` that `sel` matches.
pub async fn load(
    store: &Arc<dyn SpanStore>,
    res: Resolution,
    sel: &Selector,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(SeriesKey, i64, Aggregate)>, QueryError> {
    let service = (sel.services.len() == 1).then(|| sel.services[0].as_str());
    let prefix = keys::prefix(sel.cluster.as_deref(), service, sel.operation.as_deref());
    let rows = store
        .scan_records(&RecordScan {
            kind: res.kind(),
            prefix,
            time: Some((from_ms, to_ms.saturating_sub(1))),
            limit: MAX_ROWS,
            trace: None,
        })
        .await?;
    if rows.len() >= MAX_ROWS {
        return Err(QueryError::TooLarge);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some((series, start, _)) = keys::parse(&r.key) else {
            tracing::warn!(key = %r.key, "skipping a malformed red record key");
            continue;
        };
        if !sel.matches(&series) {
            continue;
        }
        let Some(agg) = keys::decode_value(&r.value) else {
            tracing::warn!(key = %r.key, "skipping an undecodable red record");
            continue;
        };
        out.push((series, start, agg));
    }
    Ok(out)
}

/// [`load`] for a caller's scope: only series of clusters in `scope`,
/// read by key prefix per cluster (the cluster leads every RED key), so
/// other clusters' records are never read.
pub async fn load_scoped(
    store: &Arc<dyn SpanStore>,
    res: Resolution,
    sel: &Selector,
    from_ms: i64,
    to_ms: i64,
    scope: &Scope,
) -> Result<Vec<(SeriesKey, i64, Aggregate)>, QueryError> {
    let Some(clusters) = scope.clusters() else {
        return load(store, res, sel, from_ms, to_ms).await;
    };
    if let Some(c) = &sel.cluster {
        if !clusters.contains(c) {
            return Ok(Vec::new());
        }
        return load(store, res, sel, from_ms, to_ms).await;
    }
    let mut out = Vec::new();
    for c in clusters {
        let one = Selector {
            cluster: Some(c.clone()),
            ..sel.clone()
        };
        out.extend(load(store, res, &one, from_ms, to_ms).await?);
    }
    Ok(out)
}

/// Merges rows into `group(series)` × bucket (`floor((t − from) / step)`).
pub fn bucket<G: Ord>(
    rows: Vec<(SeriesKey, i64, Aggregate)>,
    from_ms: i64,
    step_ms: i64,
    group: impl Fn(&SeriesKey) -> G,
) -> BTreeMap<G, BTreeMap<i64, Aggregate>> {
    let mut out: BTreeMap<G, BTreeMap<i64, Aggregate>> = BTreeMap::new();
    let step = step_ms.max(1);
    for (series, start, agg) in rows {
        // Saturating: `start` comes from a stored key, not from the window.
        let b = from_ms.saturating_add(
            start
                .saturating_sub(from_ms)
                .div_euclid(step)
                .saturating_mul(step),
        );
        out.entry(group(&series))
            .or_default()
            .entry(b)
            .or_default()
            .merge(&agg);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn resolution_follows_step_lag_and_retention() {
        let cfg = RedConfig {
            rollup_interval: Duration::from_secs(30),
            ..Default::default()
        };
        let now = 100 * 86_400_000;
        let h = 3_600_000;
        assert_eq!(choose(&cfg, now, now - h, now, 10_000), Resolution::S10);
        // Recent data at 1 min step: the rollup may lag, read 10 s.
        assert_eq!(choose(&cfg, now, now - h, now, 60_000), Resolution::S10);
        assert_eq!(
            choose(&cfg, now, now - 2 * h, now - h, 60_000),
            Resolution::M1
        );
        assert_eq!(
            choose(&cfg, now, now - 2 * h, now - h, 7_200_000),
            Resolution::H1
        );
        // 10 s records are gone after a day: 1 min even at a 10 s step.
        assert_eq!(
            choose(&cfg, now, now - 48 * h, now - 47 * h, 10_000),
            Resolution::M1
        );
    }
}
