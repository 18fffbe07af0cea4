//! [`ControlState::apply`], the one transition function (pure).

use std::collections::BTreeMap;

use model::shard::{ShardId, ShardMap};

use super::{
    command::{Applied, Command},
    types::{ControlState, Lease, MAX_NOTIFICATIONS, Member, NodeId, Shard},
};

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
            Command::RevokeCertificate { serial } => self.revoke(&serial),
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
            Command::CreateToken { digest, token } => {
                super::tokens::create(&mut self.tokens, digest, token)
            }
            Command::RevokeToken { name } => super::tokens::revoke(&mut self.tokens, &name),
            Command::SetGroup { name, mapping } => {
                super::groups::set(&mut self.groups, name, mapping)
            }
            Command::DeleteGroup { name } => super::groups::delete(&mut self.groups, &name),
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
            None => ShardMap::new(vec![model::shard::Epoch {
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

impl ControlState {
    fn revoke(&mut self, serial: &str) -> Applied {
        let Some(serial) = super::types::normalize_serial(serial) else {
            return Applied::Refused(format!(
                "{:?} is not a certificate serial (hex, at most 20 bytes)",
                serial.chars().take(64).collect::<String>()
            ));
        };
        if self.revoked_serials.contains(&serial) {
            return Applied::Unchanged;
        }
        if self.revoked_serials.len() >= super::types::MAX_REVOKED_SERIALS {
            return Applied::Refused(format!(
                "the deny list holds {} serials, its limit; rotate the CA",
                super::types::MAX_REVOKED_SERIALS
            ));
        }
        self.revoked_serials.insert(serial);
        Applied::Done
    }
}

fn removed<T>(old: Option<T>) -> Applied {
    match old {
        Some(_) => Applied::Done,
        None => Applied::Unchanged,
    }
}
