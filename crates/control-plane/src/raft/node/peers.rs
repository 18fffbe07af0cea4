//! The peer bus: non-Raft messages between gateways (stitching notes,
//! tail digests and verdicts) over the Raft port's Peer RPC.

use std::time::Duration;

use super::ControlPlane;
use crate::{
    peer::{PeerError, PeerHandlers, Topic},
    raft::{NodeId, network::Rpc},
};

impl ControlPlane {
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
}
