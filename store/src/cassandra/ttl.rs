//! Retention as cell TTLs: the TTL of a write, the TTL of the name rows,
//! and which daily usage rows are still live.

use model::RetentionPolicy;

use super::rows::clamp_i64;

const DAY_SECS: u64 = 86_400;
/// Cassandra's largest TTL (20 years).
pub(crate) const MAX_TTL_SECS: u64 = 630_720_000;
/// Before Cassandra 5.0 an expiration past 2038-01-19 (i32 seconds) is
/// rejected; TTLs are cut to end a day before it.
const EXPIRY_LIMIT_SECS: u64 = i32::MAX as u64 - DAY_SECS;

/// The CQL TTL (seconds, `0` = never expires) for a retention of `hours`,
/// written at `now_secs`. Capped at Cassandra's 20-year maximum and so the
/// expiry stays before 2038-01-19 (older Cassandra rejects later ones);
/// past that date the cap is Cassandra 5's own maximum.
pub(crate) fn ttl_seconds(hours: Option<u64>, now_secs: u64) -> i32 {
    let Some(hours) = hours else { return 0 };
    let mut secs = hours.saturating_mul(3_600).min(MAX_TTL_SECS);
    if let Some(room) = EXPIRY_LIMIT_SECS.checked_sub(now_secs).filter(|r| *r > 0) {
        secs = secs.min(room);
    }
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

/// The longest retention of any cluster: the TTL of the service and
/// operation name rows, which must outlive every span they describe.
/// `None` (keep forever) when the default keeps spans forever.
pub(crate) fn names_ttl_hours(policy: &RetentionPolicy) -> Option<u64> {
    let default = policy.default_hours?;
    Some(policy.clusters.values().copied().fold(default, u64::max))
}

/// Whether a usage row of `day` (UTC days since the epoch) may still hold
/// live spans of a cluster retained `ttl_hours` at `now_secs`.
pub(crate) fn usage_day_live(day: i64, ttl_hours: Option<u64>, now_secs: u64) -> bool {
    let Some(hours) = ttl_hours else { return true };
    let Ok(day) = u64::try_from(day) else {
        return false;
    };
    let day_end = day.saturating_add(1).saturating_mul(DAY_SECS);
    day_end > now_secs.saturating_sub(hours.saturating_mul(3_600))
}

pub(crate) fn day_bucket(now_secs: u64) -> i64 {
    clamp_i64(now_secs / DAY_SECS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ttls() {
        let now = 1_700_000_000; // 2023-11-14
        assert_eq!(ttl_seconds(None, now), 0);
        assert_eq!(ttl_seconds(Some(24), now), 86_400);
        assert_eq!(ttl_seconds(Some(0), now), 1, "never 0 (= forever)");
        // 20 years from 2023 would expire after 2038: cut to end before it.
        let long = ttl_seconds(Some(20 * 365 * 24), now);
        assert!(u64::try_from(long).unwrap() + now < i32::MAX as u64);
        assert!(u64::try_from(long).unwrap() > 14 * 365 * 86_400);
        // 10 years fits.
        assert_eq!(ttl_seconds(Some(10 * 365 * 24), now), 10 * 365 * 86_400);
        // Huge values saturate instead of overflowing.
        assert!(ttl_seconds(Some(u64::MAX), now) > 0);
        assert!(u64::try_from(ttl_seconds(Some(u64::MAX), 0)).unwrap() <= MAX_TTL_SECS);
        // After 2038 the 20-year maximum applies.
        assert_eq!(
            ttl_seconds(Some(u64::MAX), 3_000_000_000),
            MAX_TTL_SECS as i32
        );
        assert_eq!(ttl_seconds(Some(1), 3_000_000_000), 3_600);
    }

    #[test]
    fn names_outlive_every_cluster() {
        let p = RetentionPolicy {
            default_hours: Some(24),
            clusters: [("a".to_owned(), 720), ("b".to_owned(), 1)].into(),
        };
        assert_eq!(names_ttl_hours(&p), Some(720));
        assert_eq!(
            names_ttl_hours(&RetentionPolicy {
                default_hours: None,
                ..p
            }),
            None
        );
    }

    #[test]
    fn usage_days() {
        let now = 100 * DAY_SECS + 3_600;
        assert!(usage_day_live(100, Some(1), now));
        assert!(usage_day_live(99, Some(2), now), "day 99 ended 1h ago");
        assert!(!usage_day_live(99, Some(1), now));
        assert!(!usage_day_live(0, Some(24), now));
        assert!(usage_day_live(0, None, now));
        assert!(usage_day_live(0, Some(u64::MAX), now));
        assert!(!usage_day_live(-1, Some(1), now));
        assert_eq!(day_bucket(now), 100);
    }
}
