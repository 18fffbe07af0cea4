//! The replicated control state and its one transition function.
//!
//! [`ControlState::apply`] is pure: every input it depends on, including
//! the time a lease is judged by, travels in the [`Command`] (the leader
//! stamps it when proposing), so every node applying the same log reaches
//! the same state. Refusals are answers ([`Applied::Refused`]), not
//! errors: a refused command is still a log entry every node skips alike.

use std::collections::BTreeMap;

use model::{RetentionPolicy, sampling::SamplingConfig};
use serde::{Deserialize, Serialize};
use store::shard::{ShardId, ShardMap};

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
    /// evaluator, see `crate::alerts`).
    #[serde(default)]
    pub alert_states: BTreeMap<String, crate::alerts::eval::AlertStatus>,
    /// The most recent notifications, newest last, at most
    /// [`MAX_NOTIFICATIONS`].
    #[serde(default)]
    pub notifications: std::collections::VecDeque<Notification>,
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
        status: crate::alerts::eval::AlertStatus,
    },
    /// The notification for `transition` of an alert was sent.
    AlertNotified {
        notification: Notification,
    },
    SetRetention {
        policy: RetentionPolicy,
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

impl ControlState {
    pub fn apply(&mut self, command: Command) -> Applied {
        match command {
            Command::AnnounceMember { id, member } => match self.members.get_mut(&id) {
                None => Applied::Refused(format!("node {id} is not a member")),
                Some(m) if *m == member => Applied::Unchanged,
                Some(m) => {
                    *m = member;
                    Applied::Done
                }
            },
            Command::AddShards {
                shards,
                start_unix_nano,
            } => self.add_shards(shards, start_unix_nano),
            Command::AcquireLease {
                shard,
                node,
                now_ms,
                ttl_ms,
            } => self.acquire(shard, node, now_ms, ttl_ms),
            Command::ReleaseLease { shard, node, fence } => match self.leases.get(&shard) {
                Some(l) if l.holder == node && l.fence == fence => {
                    self.leases.remove(&shard);
                    Applied::Done
                }
                Some(_) => Applied::Refused(format!(
                    "shard {shard}: the lease is not held by node {node} under fence {fence}"
                )),
                None => Applied::Unchanged,
            },
            Command::PutCluster { name, cluster } => {
                if let Err(e) = model::ClusterId::new(&name) {
                    return Applied::Refused(e.to_string());
                }
                self.clusters.insert(name, cluster);
                Applied::Done
            }
            Command::DeleteCluster { name } => removed(self.clusters.remove(&name)),
            Command::PutPolicy { cluster, policy } => {
                if let Err(e) = policy.validate() {
                    return Applied::Refused(e);
                }
                self.policies.insert(cluster, policy);
                Applied::Done
            }
            Command::DeletePolicy { cluster } => removed(self.policies.remove(&cluster)),
            Command::PutAlertRule { name, rule } => {
                self.alert_rules.insert(name, rule);
                Applied::Done
            }
            Command::DeleteAlertRule { name } => {
                self.alert_states.remove(&name);
                removed(self.alert_rules.remove(&name))
            }
            Command::SetAlertStatus { name, status } => {
                if !self.alert_rules.contains_key(&name) {
                    return Applied::Refused(format!("no alert rule {name:?}"));
                }
                self.alert_states.insert(name, status);
                Applied::Done
            }
            Command::AlertNotified { notification } => {
                let Some(st) = self.alert_states.get_mut(&notification.rule) else {
                    return Applied::Unchanged;
                };
                if notification.transition <= st.notified {
                    // A second sender after a leader change: keep one record.
                    return Applied::Unchanged;
                }
                st.notified = notification.transition;
                self.notifications.push_back(notification);
                while self.notifications.len() > MAX_NOTIFICATIONS {
                    self.notifications.pop_front();
                }
                Applied::Done
            }
            Command::SetRetention { policy } => {
                if let Err(e) = policy.validate() {
                    return Applied::Refused(e);
                }
                self.retention = policy;
                Applied::Done
            }
        }
    }

    /// A membership log entry: the members are Raft's (voters and
    /// learners). A node that left loses its leases at once.
    /// What a member announced of itself is kept while it stays a member.
    pub fn set_members(&mut self, members: BTreeMap<NodeId, Member>) {
        self.leases.retain(|_, l| members.contains_key(&l.holder));
        let old = std::mem::take(&mut self.members);
        self.members = members
            .into_iter()
            .map(|(id, m)| match old.get(&id) {
                Some(known) if known.raft_addr == m.raft_addr => (id, known.clone()),
                _ => (id, m),
            })
            .collect();
    }

    fn add_shards(&mut self, shards: BTreeMap<ShardId, Shard>, start: u64) -> Applied {
        if shards.is_empty() {
            return Applied::Refused("no shards to add".into());
        }
        if shards.iter().all(|(id, s)| self.shards.get(id) == Some(s)) {
            // A retried write of the same shards.
            return Applied::Unchanged;
        }
        if let Some(id) = shards.keys().find(|id| self.shards.contains_key(id)) {
            return Applied::Refused(format!("shard {id} is already registered"));
        }
        let mut all: Vec<ShardId> = self.shards.keys().copied().collect();
        all.extend(shards.keys().copied());
        let map = match &self.shard_map {
            None => ShardMap::new(vec![store::shard::Epoch {
                epoch: 0,
                start_unix_nano: 0,
                shards: all,
            }]),
            Some(map) => map.with_epoch(start, all),
        };
        match map {
            Ok(map) => {
                self.shard_map = Some(map);
                self.shards.extend(shards);
                Applied::Done
            }
            Err(e) => Applied::Refused(e.to_string()),
        }
    }

    fn acquire(&mut self, shard: ShardId, node: NodeId, now_ms: u64, ttl_ms: u64) -> Applied {
        if !self.shards.contains_key(&shard) {
            return Applied::Refused(format!("shard {shard} is not registered"));
        }
        if !self.members.contains_key(&node) {
            return Applied::Refused(format!("node {node} is not a member"));
        }
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        match self.leases.get_mut(&shard) {
            Some(l) if l.holder == node => {
                l.expires_at_ms = l.expires_at_ms.max(expires_at_ms);
                Applied::Lease(l.clone())
            }
            Some(l) if l.expires_at_ms > now_ms => Applied::Refused(format!(
                "shard {shard}: held by node {} until {}",
                l.holder, l.expires_at_ms
            )),
            _ => {
                self.next_fence += 1;
                let lease = Lease {
                    holder: node,
                    fence: self.next_fence,
                    expires_at_ms,
                };
                self.leases.insert(shard, lease.clone());
                Applied::Lease(lease)
            }
        }
    }
}

fn removed<T>(old: Option<T>) -> Applied {
    match old {
        Some(_) => Applied::Done,
        None => Applied::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[NodeId]) -> BTreeMap<NodeId, Member> {
        ids.iter()
            .map(|n| {
                let m = Member {
                    raft_addr: format!("10.0.0.{n}:4321"),
                    federation_addr: format!("10.0.0.{n}:4320"),
                    http_addr: format!("10.0.0.{n}:16686"),
                };
                (*n, m)
            })
            .collect()
    }

    fn shards(ids: &[ShardId]) -> BTreeMap<ShardId, Shard> {
        ids.iter()
            .map(|id| {
                (
                    *id,
                    Shard {
                        url: format!("postgres://pg-{id}/traces"),
                    },
                )
            })
            .collect()
    }

    fn cluster_of_three() -> ControlState {
        let mut s = ControlState::default();
        s.set_members(members(&[1, 2, 3]));
        let add = Command::AddShards {
            shards: shards(&[0, 1]),
            start_unix_nano: 0,
        };
        assert_eq!(s.apply(add), Applied::Done);
        s
    }

    fn acquire(shard: ShardId, node: NodeId, now_ms: u64) -> Command {
        Command::AcquireLease {
            shard,
            node,
            now_ms,
            ttl_ms: 10_000,
        }
    }

    #[test]
    fn the_same_log_gives_the_same_state() {
        // Membership entries and commands, as the log interleaves them.
        let log: Vec<Result<Vec<NodeId>, Command>> = vec![
            Ok(vec![1]),
            Ok(vec![1, 2]),
            Err(Command::AddShards {
                shards: shards(&[0]),
                start_unix_nano: 0,
            }),
            Err(acquire(0, 1, 1_000)),
            Err(acquire(0, 2, 2_000)),
            Err(Command::SetRetention {
                policy: RetentionPolicy {
                    default_hours: Some(72),
                    clusters: BTreeMap::new(),
                },
            }),
            Ok(vec![2]),
            Err(acquire(0, 2, 3_000)),
        ];
        let run = || {
            let mut s = ControlState::default();
            let answers: Vec<Applied> = log
                .iter()
                .cloned()
                .map(|step| match step {
                    Ok(ids) => {
                        s.set_members(members(&ids));
                        Applied::Done
                    }
                    Err(c) => s.apply(c),
                })
                .collect();
            (s, answers)
        };
        let (a, answers) = run();
        assert_eq!(run(), (a.clone(), answers.clone()));
        assert!(matches!(answers[4], Applied::Refused(_)), "node 2 waits");
        // Node 1 left: its lease ended, node 2 takes it with a new fence.
        assert_eq!(
            a.leases[&0],
            Lease {
                holder: 2,
                fence: 2,
                expires_at_ms: 13_000
            }
        );
        // The state survives serialisation (snapshots).
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<ControlState>(&json).unwrap(), a);
    }

    #[test]
    fn one_holder_per_shard_and_fences_grow() {
        let mut s = cluster_of_three();
        let Applied::Lease(first) = s.apply(acquire(0, 1, 0)) else {
            panic!("free lease granted")
        };
        // Another node is refused until the lease expires.
        assert!(matches!(s.apply(acquire(0, 2, 9_999)), Applied::Refused(_)));
        // The holder renews without a new fence.
        let Applied::Lease(renewed) = s.apply(acquire(0, 1, 5_000)) else {
            panic!("renewal")
        };
        assert_eq!(
            (renewed.fence, renewed.expires_at_ms),
            (first.fence, 15_000)
        );
        // Expired: another node takes over with a larger fence.
        let Applied::Lease(taken) = s.apply(acquire(0, 2, 15_000)) else {
            panic!("expired lease taken")
        };
        assert!(taken.fence > first.fence);
        // The old holder can no longer release (or act) under its fence.
        assert!(matches!(
            s.apply(Command::ReleaseLease {
                shard: 0,
                node: 1,
                fence: first.fence
            }),
            Applied::Refused(_)
        ));
        assert_eq!(
            s.apply(Command::ReleaseLease {
                shard: 0,
                node: 2,
                fence: taken.fence
            }),
            Applied::Done
        );
        // Shards and nodes must exist.
        assert!(matches!(s.apply(acquire(9, 1, 0)), Applied::Refused(_)));
        assert!(matches!(s.apply(acquire(1, 9, 0)), Applied::Refused(_)));
    }

    #[test]
    fn adding_shards_starts_an_epoch_and_keeps_old_traces_routed() {
        let mut s = cluster_of_three();
        let before = s.shard_map.clone().unwrap();
        assert_eq!(
            s.apply(Command::AddShards {
                shards: shards(&[2]),
                start_unix_nano: 5_000,
            }),
            Applied::Done
        );
        let after = s.shard_map.clone().unwrap();
        assert_eq!(after.epochs().len(), 2);
        assert_eq!(after.all_shards(), [0, 1, 2]);
        for n in 1..500u128 {
            let id = model::TraceId::from_bytes(&(n * 7_919).to_be_bytes()).unwrap();
            assert_eq!(after.route(id, 4_999), before.route(id, 4_999));
        }
        // Re-adding a shard, or an epoch not after the last, is refused and
        // changes nothing.
        let snapshot = s.clone();
        // A retried add of the same shard changes nothing and is no error.
        assert_eq!(
            s.apply(Command::AddShards {
                shards: shards(&[2]),
                start_unix_nano: 9_000,
            }),
            Applied::Unchanged
        );
        let mut moved = shards(&[1]);
        if let Some(shard) = moved.get_mut(&1) {
            shard.url = "postgres://elsewhere/traces".into();
        }
        for bad in [
            Command::AddShards {
                shards: moved,
                start_unix_nano: 9_000,
            },
            Command::AddShards {
                shards: shards(&[3]),
                start_unix_nano: 5_000,
            },
            Command::AddShards {
                shards: BTreeMap::new(),
                start_unix_nano: 9_000,
            },
        ] {
            assert!(matches!(s.apply(bad), Applied::Refused(_)));
        }
        assert_eq!(s, snapshot);
    }

    #[test]
    fn invalid_data_is_refused_without_changing_anything() {
        let mut s = cluster_of_three();
        let snapshot = s.clone();
        let mut bad_policy = SamplingConfig::default();
        bad_policy.head.default_probability = 2.0;
        for bad in [
            Command::PutPolicy {
                cluster: "eu".into(),
                policy: bad_policy,
            },
            Command::SetRetention {
                policy: RetentionPolicy {
                    default_hours: Some(0),
                    clusters: BTreeMap::new(),
                },
            },
            Command::PutCluster {
                name: "not a cluster name!".into(),
                cluster: RegisteredCluster {
                    identity: "spiffe://meridian/cluster/x".into(),
                },
            },
        ] {
            assert!(matches!(s.apply(bad), Applied::Refused(_)));
        }
        assert_eq!(s, snapshot);
        assert_eq!(
            s.apply(Command::DeleteCluster {
                name: "nope".into()
            }),
            Applied::Unchanged
        );
        assert_eq!(
            s.apply(Command::PutPolicy {
                cluster: "*".into(),
                policy: SamplingConfig::default(),
            }),
            Applied::Done
        );
        assert_eq!(
            s.apply(Command::DeletePolicy {
                cluster: "*".into()
            }),
            Applied::Done
        );
    }
}
