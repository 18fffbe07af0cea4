//! One gateway's seat in the control plane: the Raft handle, its status,
//! and the write and read API. The rest of the handle is split by concern:
//! [`forward`] (requests that find the leader, and what the leader does
//! with them), [`leases`] (shard leases and who works on which shard),
//! [`peers`] (the peer bus between gateways).

mod forward;
mod leases;
mod peers;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use openraft::{ServerState, SnapshotPolicy, error::RaftError};
use serde::{Deserialize, Serialize};
use store::shard::ShardId;
use telemetry::clock::{SharedClock, SystemClock};
use tokio::sync::watch;

use crate::peer::PeerHandlers;

use super::{
    Applied, Command, ControlState, Member, NodeId, Raft,
    log_store::{LogStore, LogStoreError},
    network::{ForwardReply, Forwarded, Network, Transport, WriteError},
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
    /// Wall time stamps lease commands (on the leader); monotonic time
    /// judges how long this node may act on a lease it holds. Tests use a
    /// `ManualClock` or tokio's paused time.
    pub clock: SharedClock,
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
            clock: SystemClock::shared(),
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
    /// The Raft log could not be opened (its message names the recovery
    /// steps when the log is corrupt).
    #[error(transparent)]
    Log(#[from] LogStoreError),
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("raft failed to start: {0}")]
    Start(String),
}

/// A lease this node holds, as it judges it by its own clock.
#[derive(Debug, Clone, Copy)]
struct HeldLease {
    fence: u64,
    /// The renewal was sent at `sent` (monotonic); the leader's expiry is
    /// at least `sent + ttl`, so this node stops acting a margin before
    /// that.
    valid_until: Duration,
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
    /// The admin writes and refused credentials this node answered.
    audit: crate::audit::AuditLog,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("id", &self.id)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
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
        let log = LogStore::open(dir)?;
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
            audit: crate::audit::AuditLog::new(id),
        }))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's audit trail ([`crate::audit`]).
    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state as this node has applied it (may lag the leader).
    /// The wall and monotonic clock this node judges time by.
    pub fn clock(&self) -> &SharedClock {
        &self.config.clock
    }

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
    #[inline(never)]
    pub fn write(
        &self,
        command: Command,
    ) -> futures::future::BoxFuture<'_, Result<Applied, WriteError>> {
        Box::pin(self.write_inner(command))
    }

    async fn write_inner(&self, command: Command) -> Result<Applied, WriteError> {
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

    /// Stops Raft (the log and state stay on disk).
    #[inline(never)]
    pub fn shutdown(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.shutdown_inner())
    }

    async fn shutdown_inner(&self) {
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
