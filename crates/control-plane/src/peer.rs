//! Data-plane messages between gateways that are not Raft: stitching
//! observations sent to a shard's lease holder, tail-sampling digests and
//! verdicts. They ride the Raft port's `Peer` RPC (the same mTLS, node
//! certificates only) so a cluster needs no extra port.
//!
//! A message is `[topic: u8][from: u64 big-endian][payload]`. Each topic has
//! one handler per node ([`PeerHandlers::register`]); a message for a topic
//! without a handler is refused (the sender counts it and moves on — every
//! topic carries derived or retried data, never the only copy of a span).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use futures::future::BoxFuture;

use crate::raft::NodeId;

/// What a peer message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Topic {
    /// Span observations for the lease holder of their trace's shard.
    Stitch = 1,
    /// Tail-sampling digests for the lease holder of their trace's shard.
    Digests = 2,
    /// Tail-sampling verdicts for the node that relayed the digests.
    Verdicts = 3,
}

impl Topic {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Stitch,
            2 => Self::Digests,
            3 => Self::Verdicts,
            _ => return None,
        })
    }
}

/// Why a peer message was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("node {0} is not a known member")]
    UnknownNode(NodeId),
    #[error("peer message too short ({0} bytes)")]
    Truncated(usize),
    #[error("unknown peer topic {0}")]
    UnknownTopic(u8),
    #[error("no handler for {0:?} on this node")]
    NoHandler(Topic),
    #[error("peer call failed: {0}")]
    Transport(String),
    #[error("the handler refused the message: {0}")]
    Refused(String),
}

/// Serves one topic's messages. The answer is returned to the sender.
pub trait PeerHandler: Send + Sync + 'static {
    fn handle(&self, from: NodeId, payload: Vec<u8>)
    -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// The handlers of this node, by topic.
#[derive(Default, Clone)]
pub struct PeerHandlers {
    by_topic: Arc<RwLock<HashMap<Topic, Arc<dyn PeerHandler>>>>,
}

impl std::fmt::Debug for PeerHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<Topic> = self
            .by_topic
            .read()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        f.debug_struct("PeerHandlers")
            .field("topics", &topics)
            .finish()
    }
}

impl PeerHandlers {
    /// Sets (or replaces) the handler of `topic`.
    pub fn register(&self, topic: Topic, handler: Arc<dyn PeerHandler>) {
        if let Ok(mut m) = self.by_topic.write() {
            m.insert(topic, handler);
        }
    }

    /// Delivers an incoming message (the bytes of a `Peer` RPC).
    pub async fn deliver(&self, body: &[u8]) -> Result<Vec<u8>, PeerError> {
        let (topic, from, payload) = split(body)?;
        let handler = self
            .by_topic
            .read()
            .ok()
            .and_then(|m| m.get(&topic).cloned())
            .ok_or(PeerError::NoHandler(topic))?;
        handler
            .handle(from, payload.to_vec())
            .await
            .map_err(PeerError::Refused)
    }
}

/// The sending node of a framed message, if it has the frame's header.
pub fn sender_of(body: &[u8]) -> Option<NodeId> {
    split(body).ok().map(|(_, from, _)| from)
}

/// Frames a message.
pub fn frame(topic: Topic, from: NodeId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.push(topic as u8);
    out.extend_from_slice(&from.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn split(body: &[u8]) -> Result<(Topic, NodeId, &[u8]), PeerError> {
    if body.len() < 9 {
        return Err(PeerError::Truncated(body.len()));
    }
    let topic = Topic::from_byte(body[0]).ok_or(PeerError::UnknownTopic(body[0]))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&body[1..9]);
    Ok((topic, NodeId::from_be_bytes(id), &body[9..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl PeerHandler for Echo {
        fn handle(
            &self,
            from: NodeId,
            payload: Vec<u8>,
        ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
            Box::pin(async move {
                let mut out = from.to_string().into_bytes();
                out.extend(payload);
                Ok(out)
            })
        }
    }

    #[tokio::test]
    async fn messages_reach_their_topic_handler() {
        let h = PeerHandlers::default();
        h.register(Topic::Stitch, Arc::new(Echo));
        let out = h.deliver(&frame(Topic::Stitch, 7, b"hi")).await;
        assert_eq!(out, Ok(b"7hi".to_vec()));
        assert_eq!(
            h.deliver(&frame(Topic::Digests, 7, b"hi")).await,
            Err(PeerError::NoHandler(Topic::Digests))
        );
        assert_eq!(h.deliver(&[1, 0, 0]).await, Err(PeerError::Truncated(3)));
        let mut bad = frame(Topic::Stitch, 1, b"");
        bad[0] = 99;
        assert_eq!(h.deliver(&bad).await, Err(PeerError::UnknownTopic(99)));
    }
}
