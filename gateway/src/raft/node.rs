//! One gateway's seat in the control plane: the Raft handle, writes that
//! find the leader, linearizable reads, membership changes, and shard
//! leases.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use openraft::{
    ChangeMembers, ServerState, SnapshotPolicy,
    error::{ClientWriteError, RaftError},
};
use serde::{Deserialize, Serialize};
use store::shard::ShardId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::peer::{PeerError, PeerHandlers, Topic};

use super::{
    Applied, Command, ControlState, Member, NodeId, Raft,
    log_store::LogStore,
    network::{ForwardReply, Forwarded, Network, Rpc, Transport, WriteError, decode, encode},
    state_machine::StateMachine,
};

/// Timing of the control plane.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// How long a shard lease lasts unless renewed (renewed every third).
    pub lease_ttl: Duration,
    /// Build a snapshot (and purge the log behind it) every this many
    /// entries.
    pub snapshot_every: u64,
    /// Give up a write or linearizable read after this long.
    pub write_timeout: Duration,
}

impl Default for PlaneConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(750),
            election_timeout_max: Duration::from_millis(1_500),
            lease_ttl: Duration::from_secs(6),
            snapshot_every: 1_000,
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error("cannot open the raft state in {dir}: {source}")]
    Storage {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("raft failed to start: {0}")]
    Start(String),
}

/// A lease this node holds, as it judges it by its own clock.
#[derive(Debug, Clone, Copy)]
struct HeldLease {
    fence: u64,
    /// The renewal was sent at `sent`; the leader's expiry is at least
    /// `sent + ttl`, so this node stops acting a margin before that.
    valid_until: Instant,
}

/// What `GET /api/v1/admin/raft` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RaftStatus {
    pub node_id: NodeId,
    pub leader_id: Option<NodeId>,
    pub state: String,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub members: BTreeMap<NodeId, Member>,
}

/// A message on the Forward RPC: relayed at most once, so two nodes that
/// each believe the other leads cannot bounce a request forever.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    relayed: bool,
    msg: Forwarded,
}

/// How long [`ControlPlane::shutdown`] waits for the Raft core.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// This gateway's control-plane node.
pub struct ControlPlane {
    id: NodeId,
    member: Member,
    raft: Raft,
    transport: Arc<dyn Transport>,
    state: watch::Receiver<Arc<ControlState>>,
    held: Mutex<BTreeMap<ShardId, HeldLease>>,
    config: PlaneConfig,
    /// Handlers of non-Raft messages from peers ([`crate::peer`]).
    peers: PeerHandlers,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("id", &self.id)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ControlPlane {
    /// Opens the Raft state under `dir` (creating it) and starts the node.
    /// It takes part in the cluster once initialized or added.
    pub async fn open(
        id: NodeId,
        member: Member,
        dir: &Path,
        transport: Arc<dyn Transport>,
        config: PlaneConfig,
    ) -> Result<Arc<Self>, PlaneError> {
        let storage = |source| PlaneError::Storage {
            dir: dir.display().to_string(),
            source,
        };
        let log = LogStore::open(dir).map_err(storage)?;
        let sm = StateMachine::open(dir).map_err(storage)?;
        let state = sm.subscribe();
        let raft_config = openraft::Config {
            cluster_name: "meridian".into(),
            heartbeat_interval: ms(config.heartbeat),
            election_timeout_min: ms(config.election_timeout_min),
            election_timeout_max: ms(config.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 2,
            ..Default::default()
        }
        .validate()
        .map_err(|e| PlaneError::Config(e.to_string()))?;
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            Network::new(Arc::clone(&transport)),
            log,
            sm,
        )
        .await
        .map_err(|e| PlaneError::Start(e.to_string()))?;
        Ok(Arc::new(Self {
            id,
            member,
            raft,
            transport,
            state,
            held: Mutex::new(BTreeMap::new()),
            config,
            peers: PeerHandlers::default(),
        }))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state as this node has applied it (may lag the leader).
    pub fn state(&self) -> Arc<ControlState> {
        Arc::clone(&self.state.borrow())
    }

    /// Every change this node applies.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ControlState>> {
        self.state.clone()
    }

    /// This node leads and a quorum acknowledged it within an election
    /// timeout. A leader cut off from the majority steps down here: it
    /// refuses writes and reads and stops leader-only work (alert
    /// evaluation), although openraft 0.9 keeps it in its Leader state until
    /// it hears of a newer term (0.9 has no check-quorum step-down, and
    /// ignores an election triggered on a leader).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader || m.current_leader != Some(self.id) {
            return false;
        }
        let alone = m.membership_config.membership().voter_ids().count() <= 1;
        alone
            || m.millis_since_quorum_ack
                .is_some_and(|ack| ack <= ms(self.config.election_timeout_max))
    }

    fn leader(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    pub fn status(&self) -> RaftStatus {
        // Before the metrics are borrowed: `is_leader` borrows them too, and
        // a second read lock taken while openraft waits to publish new
        // metrics deadlocks (the writer waits for the first read, the
        // second read waits behind the writer).
        let leads = self.is_leader();
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners = membership.learner_ids().collect();
        let state = self.state();
        let members = membership
            .nodes()
            .map(|(id, n)| {
                (
                    *id,
                    state.members.get(id).cloned().unwrap_or_else(|| n.clone()),
                )
            })
            .collect();
        let cut_off = m.state == ServerState::Leader && !leads;
        RaftStatus {
            node_id: self.id,
            leader_id: m.current_leader.filter(|_| !cut_off),
            state: if cut_off {
                "SteppedDown".to_owned()
            } else {
                format!("{:?}", m.state)
            },
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            voters: voters.into_iter().collect(),
            learners,
            members,
        }
    }

    /// Forms a new cluster of `members` (ids and Raft addresses). Does
    /// nothing on a node that already has a log.
    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> Result<bool, WriteError> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| WriteError::Raft(e.to_string()))?
        {
            return Ok(false);
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(WriteError::Raft(e.to_string())),
        }
    }

    /// Proposes a command; on a follower it is forwarded to the leader.
    pub async fn write(&self, command: Command) -> Result<Applied, WriteError> {
        match self.ask_leader(Forwarded::Propose(command)).await? {
            ForwardReply::Applied(a) => Ok(a),
            other => Err(WriteError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    /// Adds a node: as a learner first, then (once it caught up) a voter.
    pub async fn add_node(&self, id: NodeId, member: Member) -> Result<(), WriteError> {
        self.ask_leader(Forwarded::AddNode { id, member })
            .await
            .map(|_| ())
    }

    /// Removes a node (voter or learner) from the cluster.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), WriteError> {
        self.ask_leader(Forwarded::RemoveNode { id })
            .await
            .map(|_| ())
    }

    /// The state after every write committed before this call: the leader
    /// confirms it still leads and names the log index to wait for.
    pub async fn read_linearizable(&self) -> Result<Arc<ControlState>, WriteError> {
        let ForwardReply::ReadIndex(index) = self.ask_leader(Forwarded::ReadIndex).await? else {
            return Err(WriteError::Raft("unexpected reply to a read index".into()));
        };
        if let Some(index) = index {
            self.raft
                .wait(Some(self.config.write_timeout))
                .applied_index_at_least(Some(index.index), "linearizable read")
                .await
                .map_err(|e| WriteError::Raft(e.to_string()))?;
        }
        Ok(self.state())
    }

    /// Joins a cluster through any of its members' Raft address.
    pub async fn join(&self, via: &str) -> Result<(), WriteError> {
        let env = Envelope {
            relayed: false,
            msg: Forwarded::AddNode {
                id: self.id,
                member: self.member.clone(),
            },
        };
        let bytes = self
            .transport
            .call(0, via, Rpc::Forward, encode(&env), Duration::from_secs(120))
            .await
            .map_err(|e| WriteError::LeaderUnreachable {
                leader: 0,
                reason: e.to_string(),
            })?;
        let reply: Result<ForwardReply, WriteError> =
            decode(&bytes).map_err(|e| WriteError::Raft(format!("undecodable reply: {e}")))?;
        reply.map(|_| ())
    }

    async fn ask_leader(&self, msg: Forwarded) -> Result<ForwardReply, WriteError> {
        let deadline = Instant::now() + self.config.write_timeout;
        let timeout = match msg {
            // Waits for the learner to catch up.
            Forwarded::AddNode { .. } => Duration::from_secs(120),
            _ => self.config.write_timeout,
        };
        loop {
            let res = match self.leader() {
                Some((leader, _)) if leader == self.id => {
                    if self.is_leader() {
                        self.lead_bounded(msg.clone(), timeout).await
                    } else {
                        Err(WriteError::NoLeader)
                    }
                }
                Some((leader, member)) => {
                    let env = Envelope {
                        relayed: true,
                        msg: msg.clone(),
                    };
                    self.send_forward(leader, &member, &env, timeout).await
                }
                None => Err(WriteError::NoLeader),
            };
            match res {
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    tokio::time::sleep(self.config.heartbeat).await;
                }
                other => return other,
            }
        }
    }

    async fn send_forward(
        &self,
        to: NodeId,
        member: &Member,
        env: &Envelope,
        timeout: Duration,
    ) -> Result<ForwardReply, WriteError> {
        let bytes = self
            .transport
            .call(to, &member.raft_addr, Rpc::Forward, encode(env), timeout)
            .await
            .map_err(|e| WriteError::LeaderUnreachable {
                leader: to,
                reason: e.to_string(),
            })?;
        let reply: Result<ForwardReply, WriteError> =
            decode(&bytes).map_err(|e| WriteError::LeaderUnreachable {
                leader: to,
                reason: format!("undecodable reply: {e}"),
            })?;
        reply
    }

    /// [`Self::lead`] within `timeout`: a leader that lost its quorum
    /// cannot commit, and the caller hears so instead of waiting forever.
    async fn lead_bounded(
        &self,
        msg: Forwarded,
        timeout: Duration,
    ) -> Result<ForwardReply, WriteError> {
        tokio::time::timeout(timeout, self.lead(msg))
            .await
            .unwrap_or(Err(WriteError::Timeout))
    }

    /// Carries out a request as the leader.
    async fn lead(&self, msg: Forwarded) -> Result<ForwardReply, WriteError> {
        let not_leader = |e: RaftError<NodeId, ClientWriteError<NodeId, Member>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => WriteError::NoLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                WriteError::Membership(e.to_string())
            }
            RaftError::Fatal(f) => WriteError::Raft(f.to_string()),
        };
        match msg {
            Forwarded::Propose(command) => {
                let command = match command {
                    // The leader's clock judges leases (DESIGN: apply is pure).
                    Command::AcquireLease {
                        shard,
                        node,
                        ttl_ms,
                        ..
                    } => Command::AcquireLease {
                        shard,
                        node,
                        now_ms: wall_ms(),
                        ttl_ms,
                    },
                    other => other,
                };
                let r = self.raft.client_write(command).await.map_err(not_leader)?;
                Ok(ForwardReply::Applied(r.data))
            }
            Forwarded::AddNode { id, member } => {
                if id == 0 {
                    return Err(WriteError::BadRequest("node ids start at 1".into()));
                }
                let current = self.raft.metrics().borrow().membership_config.clone();
                let membership = current.membership();
                if membership.voter_ids().any(|v| v == id) {
                    let known = membership.get_node(&id);
                    if known.is_some_and(|k| k.raft_addr != member.raft_addr) {
                        return Err(WriteError::Membership(format!(
                            "node {id} is already a voter at another address; remove it first"
                        )));
                    }
                    return Ok(ForwardReply::Done);
                }
                self.raft
                    .add_learner(id, member.clone(), true)
                    .await
                    .map_err(not_leader)?;
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
                    .await
                    .map_err(not_leader)?;
                Ok(ForwardReply::Done)
            }
            Forwarded::RemoveNode { id } => {
                let current = self.raft.metrics().borrow().membership_config.clone();
                let membership = current.membership();
                let change = if membership.voter_ids().any(|v| v == id) {
                    ChangeMembers::RemoveVoters([id].into())
                } else if membership.learner_ids().any(|v| v == id) {
                    ChangeMembers::RemoveNodes([id].into())
                } else {
                    return Ok(ForwardReply::Done);
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(not_leader)?;
                Ok(ForwardReply::Done)
            }
            Forwarded::ReadIndex => match self.raft.ensure_linearizable().await {
                Ok(index) => Ok(ForwardReply::ReadIndex(index)),
                Err(RaftError::APIError(_)) => Err(WriteError::NoLeader),
                Err(RaftError::Fatal(f)) => Err(WriteError::Raft(f.to_string())),
            },
        }
    }

    /// Serves one incoming RPC from a peer. `Err` is a transport-level
    /// refusal (undecodable request); Raft's own errors travel inside the
    /// reply.
    pub async fn handle(&self, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        let bad = |e: serde_json::Error| format!("undecodable {rpc:?} request: {e}");
        Ok(match rpc {
            Rpc::AppendEntries => {
                encode(&self.raft.append_entries(decode(body).map_err(bad)?).await)
            }
            Rpc::InstallSnapshot => {
                encode(&self.raft.install_snapshot(decode(body).map_err(bad)?).await)
            }
            Rpc::Vote => encode(&self.raft.vote(decode(body).map_err(bad)?).await),
            Rpc::Forward => {
                let env: Envelope = decode(body).map_err(bad)?;
                let res = if self.is_leader() {
                    let timeout = match env.msg {
                        Forwarded::AddNode { .. } => Duration::from_secs(120),
                        _ => self.config.write_timeout,
                    };
                    self.lead_bounded(env.msg, timeout).await
                } else if env.relayed {
                    Err(WriteError::NoLeader)
                } else {
                    match self.leader() {
                        Some((leader, member)) if leader != self.id => {
                            let env = Envelope {
                                relayed: true,
                                msg: env.msg,
                            };
                            self.send_forward(leader, &member, &env, Duration::from_secs(120))
                                .await
                        }
                        _ => Err(WriteError::NoLeader),
                    }
                };
                encode(&res)
            }
            Rpc::Peer => return self.peers.deliver(body).await.map_err(|e| e.to_string()),
        })
    }

    /// The handlers of [`Rpc::Peer`] messages on this node.
    pub fn peer_handlers(&self) -> &PeerHandlers {
        &self.peers
    }

    /// Sends a [`crate::peer`] message to node `to` (delivered locally when
    /// `to` is this node) and returns its handler's answer.
    pub async fn send_peer(
        &self,
        to: NodeId,
        topic: Topic,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let body = crate::peer::frame(topic, self.id, payload);
        if to == self.id {
            return self.peers.deliver(&body).await;
        }
        let addr = self
            .state()
            .members
            .get(&to)
            .map(|m| m.raft_addr.clone())
            .ok_or(PeerError::UnknownNode(to))?;
        self.transport
            .call(to, &addr, Rpc::Peer, body, timeout)
            .await
            .map_err(|e| PeerError::Transport(e.to_string()))
    }

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
        if Instant::now() >= held.valid_until {
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
    pub async fn run_leases(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.config.lease_ttl / 3;
        let mut free_since: HashMap<ShardId, Instant> = HashMap::new();
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

    async fn lease_round(&self, free_since: &mut HashMap<ShardId, Instant>) {
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
        let now = wall_ms();
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
                    let since = *free_since.entry(shard).or_insert_with(Instant::now);
                    mine < fair || since.elapsed() > ttl
                }
            };
            if !want {
                continue;
            }
            let sent = Instant::now();
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

    /// Stops Raft (the log and state stay on disk).
    pub async fn shutdown(&self) {
        // Bounded: a stop must not wait forever on a Raft core that does
        // not answer (its tasks end with the runtime anyway).
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "raft did not shut down cleanly"),
            Err(_) => tracing::warn!(
                timeout_secs = SHUTDOWN_TIMEOUT.as_secs(),
                "raft did not shut down in time; leaving it"
            ),
        }
    }
}
