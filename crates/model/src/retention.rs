//! How long each cluster's spans are kept.
//!
//! Configuration data today (`[retention]` in the gateway config); the
//! gateway-cluster issue replicates it. Pure: the storage backends ask it
//! for a cutoff and enforce it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const HOUR_NANOS: u64 = 3_600 * 1_000_000_000;

/// Time to live per cluster, in hours. A cluster without an entry uses
/// `default_hours`; `None` there keeps spans forever (no default that loses
/// data a user did not choose to lose).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    pub default_hours: Option<u64>,
    #[serde(default)]
    pub clusters: BTreeMap<String, u64>,
}

impl RetentionPolicy {
    /// The TTL of `cluster` in hours, `None` when kept forever.
    pub fn ttl_hours(&self, cluster: &str) -> Option<u64> {
        self.clusters.get(cluster).copied().or(self.default_hours)
    }

    /// Spans of `cluster` that started before this instant (Unix nanos)
    /// are expired at `now`; `None` when the cluster keeps everything.
    pub fn cutoff(&self, cluster: &str, now_unix_nano: u64) -> Option<u64> {
        self.ttl_hours(cluster)
            .map(|h| now_unix_nano.saturating_sub(h.saturating_mul(HOUR_NANOS)))
    }

    /// The instant before which every cluster's spans are expired,
    /// whatever their cluster: the cutoff of the longest TTL. `None` when
    /// some cluster (or the default) keeps spans forever.
    pub fn global_cutoff(&self, now_unix_nano: u64) -> Option<u64> {
        let default = self.default_hours?;
        let hours = self.clusters.values().copied().fold(default, u64::max);
        Some(now_unix_nano.saturating_sub(hours.saturating_mul(HOUR_NANOS)))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.default_hours == Some(0) || self.clusters.values().any(|h| *h == 0) {
            return Err("retention hours must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000 * HOUR_NANOS;

    #[test]
    fn cluster_ttl_overrides_default() {
        let p = RetentionPolicy {
            default_hours: Some(48),
            clusters: [("eu".to_owned(), 24)].into(),
        };
        assert_eq!(p.cutoff("eu", NOW), Some(NOW - 24 * HOUR_NANOS));
        assert_eq!(p.cutoff("us", NOW), Some(NOW - 48 * HOUR_NANOS));
        assert_eq!(p.global_cutoff(NOW), Some(NOW - 48 * HOUR_NANOS));
    }

    #[test]
    fn no_default_keeps_unknown_clusters_forever() {
        let p = RetentionPolicy {
            default_hours: None,
            clusters: [("eu".to_owned(), 24)].into(),
        };
        assert_eq!(p.cutoff("eu", NOW), Some(NOW - 24 * HOUR_NANOS));
        assert_eq!(p.cutoff("us", NOW), None);
        assert_eq!(p.global_cutoff(NOW), None, "partitions cannot be dropped");
        assert_eq!(RetentionPolicy::default().global_cutoff(NOW), None);
    }

    #[test]
    fn longest_cluster_ttl_bounds_the_global_cutoff() {
        let p = RetentionPolicy {
            default_hours: Some(24),
            clusters: [("archive".to_owned(), 720)].into(),
        };
        assert_eq!(
            p.global_cutoff(NOW),
            Some(NOW.saturating_sub(720 * HOUR_NANOS))
        );
        assert!(p.validate().is_ok());
        assert!(
            RetentionPolicy {
                default_hours: Some(0),
                ..p
            }
            .validate()
            .is_err()
        );
    }
}
