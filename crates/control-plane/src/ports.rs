//! The interfaces the other gateway crates use instead of the concrete
//! [`ControlPlane`]: each asks for the narrowest one it needs, so stitching,
//! tail decisions, metrics and alerts can be tested against an in-memory
//! fake and never reach into openraft.
//!
//! - [`ControlReader`]: who this node is, whether it leads, the replicated
//!   state and its changes (the state feed);
//! - [`Placement`]: which node works on which shard (leases);
//! - [`Proposer`]: proposing a [`Command`];
//! - [`PeerBus`]: messages to other gateways (by topic), on top of
//!   placement, since every peer message goes to a shard's worker.

use std::{fmt, sync::Arc, time::Duration};

use control_state::{Applied, Command, ControlState, NodeId};
use futures::future::BoxFuture;
use store::shard::ShardId;
use tokio::sync::watch;

use crate::{
    peer::{PeerError, PeerHandlers, Topic},
    raft::{network::WriteError, node::ControlPlane},
};

/// Leadership and the state feed.
pub trait ControlReader: Send + Sync + fmt::Debug + 'static {
    /// This node's id.
    fn id(&self) -> NodeId;
    /// This node leads and a quorum acknowledged it recently (leader-only
    /// work runs only while this holds).
    fn is_leader(&self) -> bool;
    /// The state as this node has applied it (may lag the leader).
    fn state(&self) -> Arc<ControlState>;
    /// Every change this node applies (latest wins).
    fn subscribe(&self) -> watch::Receiver<Arc<ControlState>>;
}

/// Shard placement: who does per-shard work.
pub trait Placement: ControlReader {
    /// The node that works on `shard`: its lease holder, else the leader.
    fn worker_of(&self, shard: ShardId) -> Option<NodeId>;
    /// Whether this node may work on `shard` now.
    fn works_on(&self, shard: ShardId) -> bool;
    /// The fence of `shard`'s lease while this node holds it.
    fn holds_lease(&self, shard: ShardId) -> Option<u64>;
    /// The shards whose lease this node holds now.
    fn held_shards(&self) -> Vec<ShardId>;
}

/// Proposing changes to the replicated state.
pub trait Proposer: ControlReader {
    /// Proposes `command` (forwarded to the leader from a follower).
    fn write(&self, command: Command) -> BoxFuture<'_, Result<Applied, WriteError>>;
}

/// Messages between gateways that are not Raft.
pub trait PeerBus: Placement {
    /// This node's handlers, by topic.
    fn peer_handlers(&self) -> &PeerHandlers;
    /// Sends `payload` on `topic` to node `to` and returns its answer.
    fn send_peer<'a>(
        &'a self,
        to: NodeId,
        topic: Topic,
        payload: &'a [u8],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, PeerError>>;
}

/// All of it: what a gateway node's [`ControlPlane`] is.
pub trait Plane: PeerBus + Proposer {}

impl<T: PeerBus + Proposer> Plane for T {}

impl ControlReader for ControlPlane {
    fn id(&self) -> NodeId {
        ControlPlane::id(self)
    }
    fn is_leader(&self) -> bool {
        ControlPlane::is_leader(self)
    }
    fn state(&self) -> Arc<ControlState> {
        ControlPlane::state(self)
    }
    fn subscribe(&self) -> watch::Receiver<Arc<ControlState>> {
        ControlPlane::subscribe(self)
    }
}

impl Placement for ControlPlane {
    fn worker_of(&self, shard: ShardId) -> Option<NodeId> {
        ControlPlane::worker_of(self, shard)
    }
    fn works_on(&self, shard: ShardId) -> bool {
        ControlPlane::works_on(self, shard)
    }
    fn holds_lease(&self, shard: ShardId) -> Option<u64> {
        ControlPlane::holds_lease(self, shard)
    }
    fn held_shards(&self) -> Vec<ShardId> {
        ControlPlane::held_shards(self)
    }
}

impl Proposer for ControlPlane {
    fn write(&self, command: Command) -> BoxFuture<'_, Result<Applied, WriteError>> {
        Box::pin(ControlPlane::write(self, command))
    }
}

impl PeerBus for ControlPlane {
    fn peer_handlers(&self) -> &PeerHandlers {
        ControlPlane::peer_handlers(self)
    }
    fn send_peer<'a>(
        &'a self,
        to: NodeId,
        topic: Topic,
        payload: &'a [u8],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, PeerError>> {
        Box::pin(ControlPlane::send_peer(self, to, topic, payload, timeout))
    }
}
