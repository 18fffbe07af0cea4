//! What the control plane replicates: members, shards, leases, clusters,
//! policies, alert rules and their status, retention, API tokens.

use std::collections::BTreeMap;

use model::shard::{ShardId, ShardMap};
use model::{RetentionPolicy, sampling::SamplingConfig};
use serde::{Deserialize, Serialize};

use super::{groups::GroupMapping, tokens::ApiToken};
use crate::alert::AlertStatus;

/// A gateway node's Raft id.
pub type NodeId = u64;

/// A gateway node: where peers, agents and admins reach it. This is the
/// openraft `Node` type, so it travels inside membership log entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the Raft (mTLS gRPC) port.
    pub raft_addr: String,
    /// `host:port` of the federation port agents dial.
    pub federation_addr: String,
    /// `host:port` of the HTTP (query, admin) port.
    #[serde(default)]
    pub http_addr: String,
    /// The node name of its certificate (`spiffe://meridian/node/<name>`),
    /// announced by the node itself: the Raft port refuses a call for this
    /// member made with another node certificate. Empty until announced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
}

/// Who runs per-shard background work (retention now; stitching and tail
/// decisions later). `fence` grows with every change of holder, so work
/// started under an older fence can be refused by whoever checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: NodeId,
    pub fence: u64,
    pub expires_at_ms: u64,
}

/// A store shard known to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The store URL, as `--store` takes it.
    pub url: String,
}

/// A cluster allowed to send spans, and the certificate identity it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredCluster {
    /// The URI SAN of its agents' certificates.
    pub identity: String,
}

/// An alert rule (data only until the alerting issue evaluates it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub expr: String,
    pub for_secs: u64,
}

/// Everything replicated.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControlState {
    pub members: BTreeMap<NodeId, Member>,
    pub shards: BTreeMap<ShardId, Shard>,
    /// `None` until the first shards are registered.
    pub shard_map: Option<ShardMap>,
    pub leases: BTreeMap<ShardId, Lease>,
    /// Incremented on every lease change; the next fence handed out.
    pub next_fence: u64,
    pub clusters: BTreeMap<String, RegisteredCluster>,
    /// Sampling policy per cluster (`"*"` for every cluster).
    pub policies: BTreeMap<String, SamplingConfig>,
    pub alert_rules: BTreeMap<String, AlertRule>,
    pub retention: RetentionPolicy,
    /// Each alert rule's evaluation status (written by the leader's
    /// evaluator, see the metrics-alerts crate).
    #[serde(default)]
    pub alert_states: BTreeMap<String, AlertStatus>,
    /// The most recent notifications, newest last, at most
    /// [`MAX_NOTIFICATIONS`].
    #[serde(default)]
    pub notifications: std::collections::VecDeque<Notification>,
    /// Revoked certificate serials ([`normalize_serial`] form), at most
    /// [`MAX_REVOKED_SERIALS`]: agents and nodes presenting one are
    /// refused on every call.
    #[serde(default)]
    pub revoked_serials: std::collections::BTreeSet<String>,
    /// API tokens by the SHA-256 hex digest of their secret (see
    /// [`super::tokens`]).
    #[serde(default)]
    pub tokens: BTreeMap<String, ApiToken>,
    /// `--auth proxy` group mappings by group name (see
    /// [`super::groups`]).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupMapping>,
}

/// Revoked serials kept in the replicated state (a CA that needs more
/// should rotate).
pub const MAX_REVOKED_SERIALS: usize = 100_000;

/// A certificate serial as `admin certs revoke --serial` takes it (hex,
/// with or without `:` separators or a `0x` prefix, either case), in the
/// form the deny list holds: lowercase hex without leading zeros. `None`
/// when it is not a serial (RFC 5280: at most 20 octets).
pub fn normalize_serial(serial: &str) -> Option<String> {
    let s = serial.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || hex.len() > 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    })
}

/// Notifications kept in the replicated state.
pub const MAX_NOTIFICATIONS: usize = 100;

/// A notification the leader sent (or gave up sending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub rule: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub transition: u64,
    pub at_ms: i64,
    /// Receivers that accepted it, out of those configured.
    pub delivered: u32,
    pub receivers: u32,
    #[serde(default)]
    pub error: Option<String>,
}
