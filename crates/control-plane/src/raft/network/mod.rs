//! How gateways talk to each other: openraft's `RaftNetwork` over a
//! byte-level [`Transport`].
//!
//! Every message is JSON (openraft's own serde types, and Meridian's
//! [`Forwarded`] requests); the transport moves bytes. Two transports:
//! [`grpc::GrpcTransport`] (mTLS gRPC, production) and
//! [`memory::MemoryTransport`] (in-process clusters with injected faults,
//! for tests). Both deliver to the same [`super::node::ControlPlane::handle`],
//! so tests exercise the production codec.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use openraft::{
    LogId, RaftNetwork, RaftNetworkFactory,
    error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable},
    network::RPCOption,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{Applied, Command, Member, NodeId, TypeConfig};

pub mod grpc;
#[cfg(feature = "testkit")]
pub mod memory;

/// The RPCs between gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rpc {
    AppendEntries,
    InstallSnapshot,
    Vote,
    Forward,
    /// A [`crate::peer`] message (not Raft).
    Peer,
}

/// A message could not be delivered (or its answer not received).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Not connected, refused, timed out: try later.
    #[error("node {to} at {addr} is unreachable: {reason}")]
    Unreachable {
        to: NodeId,
        addr: String,
        reason: String,
    },
    /// The peer answered with a transport-level refusal.
    #[error("node {to} refused the call: {reason}")]
    Refused { to: NodeId, reason: String },
}

/// Moves request bytes to a peer and its reply back.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    fn call(
        &self,
        to: NodeId,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>>;
}

/// What a node asks of the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forwarded {
    /// A control command.
    Propose(Command),
    /// Add a node as learner, wait until it caught up, then make it a voter.
    AddNode { id: NodeId, member: Member },
    /// Remove a node from the cluster (voter or learner).
    RemoveNode { id: NodeId },
    /// The log id a linearizable read must wait for.
    ReadIndex,
}

/// The leader's answer to [`Forwarded`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Applied(Applied),
    Done,
    ReadIndex(Option<LogId<NodeId>>),
}

/// Why a control-plane write or read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// No leader is known right now (an election is running, or this node
    /// is cut off from the majority). Retry.
    #[error("no leader is known (election in progress or this node is cut off); retry")]
    NoLeader,
    /// The leader could not be reached.
    #[error("the leader (node {leader}) is unreachable: {reason}")]
    LeaderUnreachable { leader: NodeId, reason: String },
    /// The leader did not commit in time (it may have lost its quorum).
    /// The write may or may not take effect later.
    #[error("the write was not committed in time (the leader may be cut off from the majority)")]
    Timeout,
    /// A membership change that cannot be done.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Raft failed (storage, shutdown).
    #[error("raft: {0}")]
    Raft(String),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl WriteError {
    /// Worth retrying after a short wait.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::NoLeader | Self::LeaderUnreachable { .. })
    }
}

/// Encodes a value as the JSON body of a message.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these types cannot fail: no maps with non-string keys
    // reach here unencoded (serde_json encodes integer keys as strings).
    serde_json::to_vec(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a raft message");
        Vec::new()
    })
}

/// Decodes a JSON body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// openraft's network factory over a [`Transport`].
#[derive(Debug, Clone)]
pub struct Network {
    transport: Arc<dyn Transport>,
}

impl Network {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }
}

/// A connection to one peer (stateless: the transport pools connections).
#[derive(Debug)]
pub struct Peer {
    transport: Arc<dyn Transport>,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            transport: Arc::clone(&self.transport),
            target,
            addr: node.raft_addr.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl Peer {
    async fn roundtrip<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req);
        let bytes = self
            .transport
            .call(self.target, &self.addr, rpc, body, option.hard_ttl())
            .await
            .map_err(|e| match e {
                TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                TransportError::Refused { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        let reply: Result<Resp, RaftError<NodeId, E>> =
            decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.roundtrip(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.roundtrip(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.roundtrip(Rpc::Vote, &rpc, &option).await
    }
}

/// Parses `--peers id=host:port,…`.
pub fn parse_peers(spec: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: the node id must be a positive integer"))?;
        if id == 0 {
            return Err(format!("`{part}`: node ids start at 1"));
        }
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("`{part}`: expected HOST:PORT after `=`"));
        }
        if out.insert(id, addr.to_owned()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return Err("no peers given".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_refuse_mistakes() {
        let p = parse_peers("1=a:4321, 2=10.0.0.2:4321,3=[::1]:4321").expect("valid");
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "[::1]:4321");
        for bad in [
            "",
            "1",
            "x=a:1",
            "0=a:1",
            "1=a",
            "1=a:1,1=b:2",
            "1=:80",
            "1=a:99999",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_round_trip_as_json() {
        let e: Result<ForwardReply, WriteError> = Err(WriteError::NoLeader);
        let back: Result<ForwardReply, WriteError> = decode(&encode(&e)).expect("decode");
        assert_eq!(back.err(), Some(WriteError::NoLeader));
    }
}
