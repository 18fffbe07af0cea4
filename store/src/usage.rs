//! Storage usage: what each shard and cluster takes on disk, and how a
//! shard's total is shared out among its clusters.

use serde::Serialize;

/// Stored data of one cluster on one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterUsage {
    pub cluster: String,
    pub spans: u64,
    /// Compressed span bodies of this cluster.
    pub body_bytes: u64,
    /// This cluster's share of the shard's total bytes (bodies, summaries,
    /// indexes, TOAST), apportioned by body bytes.
    pub estimated_bytes: u64,
}

/// Storage used by one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardUsage {
    /// The shard's name: its index and database, never its credentials.
    pub shard: String,
    /// Everything the shard's tables take on disk, indexes included.
    pub total_bytes: u64,
    pub spans: u64,
    pub clusters: Vec<ClusterUsage>,
    /// Set when the shard could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `part`'s share of `total`, proportional to `weight / weights`.
pub(crate) fn apportion(total: u64, weight: i64, weights: i64) -> u64 {
    if weights <= 0 || weight <= 0 {
        return 0;
    }
    let share = u128::from(total) * weight as u128 / weights as u128;
    u64::try_from(share).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_splits_by_weight() {
        assert_eq!(apportion(1_000, 1, 4), 250);
        assert_eq!(apportion(1_000, 0, 0), 0);
    }
}
