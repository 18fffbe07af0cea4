//! The changes that can be proposed to the cluster, and what applying one
//! did.

use std::collections::BTreeMap;

use model::shard::ShardId;
use model::{RetentionPolicy, sampling::SamplingConfig};
use serde::{Deserialize, Serialize};

use super::types::{AlertRule, Lease, Member, NodeId, Notification, RegisteredCluster, Shard};
use super::{groups::GroupMapping, tokens::ApiToken};
use crate::alert::AlertStatus;

/// A change proposed to the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A member tells the cluster where its federation and HTTP ports are
    /// (membership entries from `--peers` carry only the Raft address).
    AnnounceMember {
        id: NodeId,
        member: Member,
    },
    /// Registers `shards` and starts a new epoch spreading traces that
    /// start from `start_unix_nano` over every registered shard.
    AddShards {
        shards: BTreeMap<ShardId, Shard>,
        start_unix_nano: u64,
    },
    /// Takes or renews the lease of `shard` for `node` until
    /// `now_ms + ttl_ms`; granted when free, expired or already `node`'s.
    AcquireLease {
        shard: ShardId,
        node: NodeId,
        now_ms: u64,
        ttl_ms: u64,
    },
    /// Gives a lease up, if `node` holds it under `fence`.
    ReleaseLease {
        shard: ShardId,
        node: NodeId,
        fence: u64,
    },
    PutCluster {
        name: String,
        cluster: RegisteredCluster,
    },
    DeleteCluster {
        name: String,
    },
    PutPolicy {
        cluster: String,
        policy: SamplingConfig,
    },
    DeletePolicy {
        cluster: String,
    },
    PutAlertRule {
        name: String,
        rule: AlertRule,
    },
    DeleteAlertRule {
        name: String,
    },
    /// The evaluator's new status for an alert rule.
    SetAlertStatus {
        name: String,
        status: AlertStatus,
    },
    /// The notification for `transition` of an alert was sent.
    AlertNotified {
        notification: Notification,
    },
    SetRetention {
        policy: RetentionPolicy,
    },
    /// Adds a certificate serial to the deny list (any form
    /// [`normalize_serial`](super::types::normalize_serial) takes).
    RevokeCertificate {
        serial: String,
    },
    /// Adds an API token under the SHA-256 hex `digest` of its secret
    /// (refused when its name is taken).
    CreateToken {
        digest: String,
        token: ApiToken,
    },
    /// Removes the API token named `name`.
    RevokeToken {
        name: String,
    },
    /// Maps the SSO group `name` to a role and clusters (`--auth proxy`),
    /// replacing its mapping if it has one.
    SetGroup {
        name: String,
        mapping: GroupMapping,
    },
    /// Removes the mapping of the group `name`.
    DeleteGroup {
        name: String,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Done,
    /// Nothing to do (deleting what is not there).
    Unchanged,
    /// The lease as it stands after the command.
    Lease(Lease),
    Refused(String),
}
