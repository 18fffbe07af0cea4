//! Alert rules evaluated once, on the Raft leader, with notifications.
//!
//! The rule grammar and the pure per-alert state machine are replicated
//! types, so they live in `control_state::alert` (the admin API validates
//! rules with them).
//!
//! - [`anomaly`]: the EWMA deviation-band baseline of anomaly rules.
//! - [`runner`]: every `interval`, on the leader only
//!   (`ControlReader::is_leader`): evaluate every rule over the store,
//!   replicate status changes through Raft, then notify.
//! - [`notify`]: the bounded notification queue and its webhook sender
//!   (Alertmanager webhook JSON or a generic JSON body).
//! - [`explain`]: why a firing alert fires, for its notification.
//! - [`api`]: `GET /api/v1/alerts`.

pub mod anomaly;
pub mod api;
pub mod explain;
pub mod notify;
pub mod runner;

use std::time::Duration;

pub use notify::{Webhook, WebhookFormat};

/// Alert evaluation and notification settings.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// How often the leader evaluates every rule.
    pub interval: Duration,
    /// Where notifications go (none: they are only recorded).
    pub webhooks: Vec<Webhook>,
    /// The UI's base URL, for links in notifications.
    pub ui_url: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            webhooks: Vec::new(),
            ui_url: "http://localhost:16686".into(),
        }
    }
}
