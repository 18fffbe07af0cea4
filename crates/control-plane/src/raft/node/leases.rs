//! Shard leases: which node does per-shard work (stitching, tail
//! decisions, retention). Each node asks for a fair share every third of
//! the lease TTL; it acts on a lease only until 80 % of the TTL after it
//! *sent* the renewal, by its own monotonic clock (the injected
//! [`telemetry::clock::Clock`]).

use std::{collections::HashMap, sync::Arc, time::Duration};

use store::shard::ShardId;
use tokio_util::sync::CancellationToken;

use super::{ControlPlane, HeldLease, ms};
use crate::raft::{Applied, Command, NodeId};

impl ControlPlane {
    /// The node that does per-shard work for `shard` (stitching, tail
    /// decisions): the holder of its lease as the replicated state says,
    /// else the leader. `None` while neither is known.
    pub fn worker_of(&self, shard: ShardId) -> Option<NodeId> {
        let state = self.state();
        if let Some(lease) = state.leases.get(&shard)
            && state.members.contains_key(&lease.holder)
        {
            return Some(lease.holder);
        }
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node may do per-shard work for `shard` now: it holds
    /// the lease, or no lease is granted and it leads (a one-node cluster
    /// before its first lease round).
    pub fn works_on(&self, shard: ShardId) -> bool {
        if self.holds_lease(shard).is_some() {
            return true;
        }
        let state = self.state();
        !state.leases.contains_key(&shard) && self.is_leader()
    }

    /// The fence of `shard`'s lease if this node holds it now; per-shard
    /// work runs only while this answers `Some`.
    pub fn holds_lease(&self, shard: ShardId) -> Option<u64> {
        let held = self.held.lock().ok()?.get(&shard).copied()?;
        if self.config.clock.monotonic() >= held.valid_until {
            return None;
        }
        let state = self.state();
        let lease = state.leases.get(&shard)?;
        (lease.holder == self.id && lease.fence == held.fence).then_some(held.fence)
    }

    /// The shards whose lease this node holds now.
    pub fn held_shards(&self) -> Vec<ShardId> {
        let shards: Vec<ShardId> = self.state().shards.keys().copied().collect();
        shards
            .into_iter()
            .filter(|s| self.holds_lease(*s).is_some())
            .collect()
    }

    /// Keeps this node's member record current and its share of shard
    /// leases held, until `cancel`.
    #[inline(never)]
    pub fn run_leases(
        self: Arc<Self>,
        cancel: CancellationToken,
    ) -> futures::future::BoxFuture<'static, ()> {
        // Boxed, so that crates awaiting it do not compile its call tree
        // again (ARCHITECTURE.md, "Build time").
        Box::pin(self.leases_loop(cancel))
    }

    async fn leases_loop(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.config.lease_ttl / 3;
        let mut free_since: HashMap<ShardId, Duration> = HashMap::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if self.raft.metrics().borrow().running_state.is_err() {
                return;
            }
            // A round can wait on a write; shutdown does not wait for it.
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = self.lease_round(&mut free_since) => {}
            }
        }
    }

    pub(super) async fn lease_round(&self, free_since: &mut HashMap<ShardId, Duration>) {
        let state = self.state();
        match state.members.get(&self.id) {
            None => return,
            Some(m) if *m != self.member => {
                let announce = Command::AnnounceMember {
                    id: self.id,
                    member: self.member.clone(),
                };
                if let Err(error) = self.write(announce).await {
                    tracing::debug!(%error, "cannot announce this node's addresses yet");
                }
            }
            Some(_) => {}
        }
        if state.shards.is_empty() {
            return;
        }
        let ttl = self.config.lease_ttl;
        let now = u64::try_from(self.config.clock.unix_ms()).unwrap_or(0);
        let fair = state.shards.len().div_ceil(state.members.len().max(1));
        let mut mine = state
            .leases
            .values()
            .filter(|l| l.holder == self.id && l.expires_at_ms > now)
            .count();
        for shard in state.shards.keys().copied() {
            let want = match state.leases.get(&shard) {
                Some(l) if l.holder == self.id => true,
                Some(l) if l.expires_at_ms > now => {
                    free_since.remove(&shard);
                    false
                }
                // Free or expired: take it if under a fair share, or if
                // nobody did for a whole lease time.
                _ => {
                    let now_mono = self.config.clock.monotonic();
                    let since = *free_since.entry(shard).or_insert(now_mono);
                    mine < fair || now_mono.saturating_sub(since) > ttl
                }
            };
            if !want {
                continue;
            }
            let sent = self.config.clock.monotonic();
            let acquire = Command::AcquireLease {
                shard,
                node: self.id,
                now_ms: now,
                ttl_ms: ms(ttl),
            };
            match self.write(acquire).await {
                Ok(Applied::Lease(l)) if l.holder == self.id => {
                    let newly = self
                        .held
                        .lock()
                        .map(|mut h| {
                            h.insert(
                                shard,
                                HeldLease {
                                    fence: l.fence,
                                    valid_until: sent + ttl.mul_f64(0.8),
                                },
                            )
                            .is_none_or(|old| old.fence != l.fence)
                        })
                        .unwrap_or(false);
                    free_since.remove(&shard);
                    if newly {
                        mine += 1;
                        tracing::info!(shard, fence = l.fence, "acquired the shard lease");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(shard, %error, "lease renewal failed"),
            }
        }
    }
}
