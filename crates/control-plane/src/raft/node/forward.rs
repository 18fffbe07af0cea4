//! Requests that must reach the leader (writes, membership changes, read
//! indexes): a follower relays them once over the Forward RPC; the leader
//! carries them out. Also the Raft port's dispatch of incoming RPCs.

use std::time::Duration;

use openraft::{
    ChangeMembers,
    error::{ClientWriteError, RaftError},
};

use super::{
    ControlPlane, Envelope,
    admit::{self, Caller, Refusal},
};
use crate::raft::{
    Command, Member, NodeId, TypeConfig,
    network::{ForwardReply, Forwarded, Rpc, WriteError, decode, encode},
};

/// Why an incoming RPC was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// The request does not decode (or a peer message has no handler).
    #[error("{0}")]
    Undecodable(String),
    /// The caller may not make it ([`admit`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl ControlPlane {
    /// Joins a cluster through any of its members' Raft address.
    pub async fn join(&self, via: &str) -> Result<(), WriteError> {
        let env = Envelope {
            relayed: false,
            msg: Forwarded::AddNode {
                id: self.id,
                member: self.member.clone(),
            },
            from: self.id,
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

    pub(super) async fn ask_leader(&self, msg: Forwarded) -> Result<ForwardReply, WriteError> {
        // Request deadlines run on tokio time (a manual clock that tests hold
        // still must not make a write retry forever).
        let deadline = tokio::time::Instant::now() + self.config.write_timeout;
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
                        from: self.id,
                    };
                    self.send_forward(leader, &member, &env, timeout).await
                }
                None => Err(WriteError::NoLeader),
            };
            match res {
                Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.config.heartbeat).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn send_forward(
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
    pub(super) async fn lead_bounded(
        &self,
        msg: Forwarded,
        timeout: Duration,
    ) -> Result<ForwardReply, WriteError> {
        tokio::time::timeout(timeout, self.lead(msg))
            .await
            .unwrap_or(Err(WriteError::Timeout))
    }

    /// Carries out a request as the leader.
    pub(super) async fn lead(&self, msg: Forwarded) -> Result<ForwardReply, WriteError> {
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
                        now_ms: u64::try_from(self.config.clock.unix_ms()).unwrap_or(0),
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
    pub async fn handle(
        &self,
        rpc: Rpc,
        body: &[u8],
        caller: Caller<'_>,
    ) -> Result<Vec<u8>, HandleError> {
        let bad = |e: serde_json::Error| {
            HandleError::Undecodable(format!("undecodable {rpc:?} request: {e}"))
        };
        let admit = |vote: &openraft::Vote<NodeId>| match admit::sender_of(vote) {
            Some(from) => self.admit(caller, from, false),
            None => Ok(()),
        };
        Ok(match rpc {
            Rpc::AppendEntries => {
                let req: openraft::raft::AppendEntriesRequest<TypeConfig> =
                    decode(body).map_err(bad)?;
                admit(&req.vote)?;
                encode(&self.raft.append_entries(req).await)
            }
            Rpc::InstallSnapshot => {
                let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
                    decode(body).map_err(bad)?;
                admit(&req.vote)?;
                encode(&self.raft.install_snapshot(req).await)
            }
            Rpc::Vote => {
                let req: openraft::raft::VoteRequest<NodeId> = decode(body).map_err(bad)?;
                admit(&req.vote)?;
                encode(&self.raft.vote(req).await)
            }
            Rpc::Forward => {
                let env: Envelope = decode(body).map_err(bad)?;
                self.admit_forward(caller, env.from, &env.msg)?;
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
                                from: self.id,
                            };
                            self.send_forward(leader, &member, &env, Duration::from_secs(120))
                                .await
                        }
                        _ => Err(WriteError::NoLeader),
                    }
                };
                encode(&res)
            }
            Rpc::Peer => {
                if let Some(from) = crate::peer::sender_of(body) {
                    self.admit(caller, from, false)?;
                }
                return self
                    .peers
                    .deliver(body)
                    .await
                    .map_err(|e| HandleError::Undecodable(e.to_string()));
            }
        })
    }
}
