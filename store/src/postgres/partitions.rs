//! Day partitions: the day a span is filed under, the days a search
//! window covers, and creating the partitions a write needs.

use std::collections::BTreeSet;

use super::{PgStore, backend_error};
use crate::StoreError;

pub(crate) const DAY_NANOS: u64 = 86_400 * 1_000_000_000;
/// Spans starting more than this many days before today, or after
/// tomorrow, are filed under the edge day: a client with a broken clock
/// cannot make the writer create a partition per day of its fantasy.
const PAST_DAYS: i32 = 62;
const FUTURE_DAYS: i32 = 2;

/// Unix day of a span start, kept within the partition window around
/// `today`.
pub(crate) fn day_of(start_unix_nano: u64, today: i32) -> i32 {
    let day = i32::try_from(start_unix_nano / DAY_NANOS).unwrap_or(i32::MAX);
    day.clamp(today - PAST_DAYS, today + FUTURE_DAYS)
}

/// The day range a search window covers. A bound beyond the partition
/// window is opened up, as spans out there are filed under the edge day.
pub(crate) fn day_range(min_ns: u64, max_ns: u64, today: i32) -> (i32, i32) {
    let lo = i32::try_from(min_ns / DAY_NANOS).unwrap_or(i32::MAX);
    let hi = i32::try_from(max_ns / DAY_NANOS).unwrap_or(i32::MAX);
    let lo = if lo <= today - PAST_DAYS {
        i32::MIN
    } else {
        lo.min(today + FUTURE_DAYS)
    };
    let hi = if hi >= today + FUTURE_DAYS {
        i32::MAX
    } else {
        hi.max(today - PAST_DAYS)
    };
    (lo, hi)
}

pub(crate) fn today(now_unix_nano: u64) -> i32 {
    i32::try_from(now_unix_nano / DAY_NANOS).unwrap_or(i32::MAX)
}

impl PgStore {
    /// Creates the day partitions of `days` that do not exist yet.
    pub(crate) async fn ensure_partitions(&self, days: &BTreeSet<i32>) -> Result<(), StoreError> {
        let mut known = self.partitions.lock().await;
        let missing: Vec<i32> = days
            .iter()
            .copied()
            .filter(|d| !known.contains(d))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(backend_error)?;
        // One creator at a time across gateways: CREATE … IF NOT EXISTS
        // alone can still collide on the catalog.
        sqlx::query("SELECT pg_advisory_xact_lock(7210001)")
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        for day in &missing {
            for table in ["traces", "chunks"] {
                let ddl = format!(
                    "CREATE TABLE IF NOT EXISTS {table}_p{day} PARTITION OF {table} FOR VALUES FROM ({day}) TO ({})",
                    i64::from(*day) + 1
                );
                sqlx::query(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
            }
        }
        tx.commit().await.map_err(backend_error)?;
        known.extend(missing);
        Ok(())
    }

    /// Forgets known partitions (after retention dropped some, or a write
    /// found one missing).
    pub(crate) async fn forget_partitions(&self, days: impl IntoIterator<Item = i32>) {
        let mut known = self.partitions.lock().await;
        for d in days {
            known.remove(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_clamped_to_the_partition_window() {
        let today = 20_000;
        let at = |d: i64| u64::try_from(d).unwrap_or(0) * DAY_NANOS + 5;
        assert_eq!(day_of(at(20_000), today), 20_000);
        assert_eq!(day_of(at(19_990), today), 19_990);
        assert_eq!(day_of(0, today), today - PAST_DAYS);
        assert_eq!(day_of(u64::MAX, today), today + FUTURE_DAYS);
        assert_eq!(day_range(at(19_990), at(20_000), today), (19_990, 20_000));
        assert_eq!(day_range(0, at(20_000), today), (i32::MIN, 20_000));
        assert_eq!(day_range(at(19_990), u64::MAX, today), (19_990, i32::MAX));
    }
}
