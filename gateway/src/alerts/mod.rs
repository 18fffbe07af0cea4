//! Alert rules evaluated on the Raft leader, with notifications.

use std::time::Duration;

/// Alert evaluation and notification settings.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// How often the leader evaluates every rule.
    pub interval: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
        }
    }
}
