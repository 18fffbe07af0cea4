//! Who may call this node's Raft port, checked on every call once the
//! message is decoded: the node it comes from must be a current member,
//! and the certificate must be the one that node announced.
//!
//! - **Membership.** The sender (the leader of an `AppendEntries` or
//!   `InstallSnapshot`, the candidate of a `Vote`, the `from` of a
//!   `Forward` or `Peer` message) must be in this node's membership (voters
//!   and learners, as last appended), or be the leader this node follows
//!   (a leader that removes itself commits that change as a non-member).
//!   A removed node is refused from the moment this node appended its
//!   removal. Two exceptions: a node whose membership is still empty (it
//!   is joining, and learns the cluster from the leader's calls) admits
//!   every node certificate, and a `Forward` of `AddNode` for the sender
//!   itself (`--join`) is admitted from a non-member.
//! - **Binding.** A member's [`Member::node_name`] is the node name of its
//!   certificate, which it announces itself; a call for that member made
//!   with another node certificate is refused, and a node may announce
//!   only itself. A member that has not announced a name yet (a new or
//!   upgraded node, for its first seconds) is not bound.
//!
//! Callers that predate the `from` field of `Forward` (0) are admitted:
//! a rolling upgrade keeps working, and their Raft calls are still checked.

use super::ControlPlane;
use crate::raft::{Command, Member, NodeId, network::Forwarded};

/// Why a call to the Raft port was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("node {0} is not a member of this gateway cluster (removed, or never added)")]
    NotAMember(NodeId),
    #[error("this certificate names node {cert:?}, but node {node} announced {recorded:?}")]
    WrongCertificate {
        cert: String,
        node: NodeId,
        recorded: String,
    },
    #[error("node {from} cannot announce the addresses of node {id}")]
    ForeignAnnouncement { from: NodeId, id: NodeId },
}

/// The caller of an incoming RPC, as its transport knows it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The node name of the caller's certificate; `None` on a transport
    /// without certificates (the in-memory test network).
    pub cert_name: Option<&'a str>,
}

impl ControlPlane {
    /// Whether this node was removed: its membership (as last appended)
    /// lists other nodes but not this one, or is a joint change whose new
    /// voters leave this voter out (a removed node often never sees the
    /// final config). A node whose membership is empty (starting, joining)
    /// and a learner being added are not removed.
    pub fn is_removed(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        if membership.nodes().next().is_none() {
            return false;
        }
        if membership.get_node(&self.id).is_none() {
            return true;
        }
        let configs = membership.get_joint_config();
        let was_voter = configs.iter().any(|c| c.contains(&self.id));
        let stays_voter = configs.last().is_some_and(|c| c.contains(&self.id));
        was_voter && !stays_voter
    }

    /// Admits a call from node `from`; `joining` for a `Forward` that adds
    /// `from` itself.
    pub(crate) fn admit(
        &self,
        caller: Caller<'_>,
        from: NodeId,
        joining: bool,
    ) -> Result<(), Refusal> {
        // Read under the metrics watch's lock, without cloning the metrics.
        let (initialised, member, followed): (bool, Option<Member>, bool) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            (
                membership.nodes().next().is_some(),
                membership.get_node(&from).cloned(),
                m.current_leader == Some(from),
            )
        };
        if initialised && member.is_none() && !joining && !followed {
            return Err(Refusal::NotAMember(from));
        }
        let Some(cert) = caller.cert_name else {
            return Ok(());
        };
        let state = self.state();
        let recorded = state
            .members
            .get(&from)
            .map(|m| m.node_name.as_str())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                member
                    .as_ref()
                    .map(|m| m.node_name.as_str())
                    .filter(|n| !n.is_empty())
            });
        match recorded {
            Some(name) if name != cert => Err(Refusal::WrongCertificate {
                cert: cert.to_owned(),
                node: from,
                recorded: name.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Admits a `Forward` from node `from` (0: a caller from before the
    /// field, admitted).
    pub(crate) fn admit_forward(
        &self,
        caller: Caller<'_>,
        from: NodeId,
        msg: &Forwarded,
    ) -> Result<(), Refusal> {
        if from == 0 {
            return Ok(());
        }
        if let Forwarded::Propose(Command::AnnounceMember { id, .. }) = msg
            && *id != from
        {
            return Err(Refusal::ForeignAnnouncement { from, id: *id });
        }
        let joining = matches!(msg, Forwarded::AddNode { id, .. } if *id == from);
        self.admit(caller, from, joining)
    }
}

/// The node a Raft request's vote names (the leader or the candidate).
pub(crate) fn sender_of(vote: &openraft::Vote<NodeId>) -> Option<NodeId> {
    vote.leader_id().voted_for()
}
