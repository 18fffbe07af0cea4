//! An in-process network for control-plane tests, with injected faults:
//! blocked pairs (one way or both), dropped messages, delays, and crashed
//! nodes. Requests run on the receiver's side as a spawned task, so a
//! caller that times out does not cancel the receiver half-way, as on a
//! real network.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::future::BoxFuture;
use rand::Rng;

use super::{Rpc, Transport, TransportError};
use crate::raft::{NodeId, node::ControlPlane};

#[derive(Debug, Default)]
struct Faults {
    /// (from, to) pairs whose messages are lost.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Probability that a request (or its reply) is lost.
    drop: f64,
    /// Added to every delivery.
    delay: Duration,
}

/// The switchboard of an in-process cluster.
#[derive(Debug, Default)]
pub struct Router {
    nodes: Mutex<HashMap<NodeId, Weak<ControlPlane>>>,
    addrs: Mutex<HashMap<String, NodeId>>,
    faults: Mutex<Faults>,
}

/// One node's view of the [`Router`].
#[derive(Debug)]
pub struct MemoryTransport {
    from: NodeId,
    router: Arc<Router>,
}

impl Router {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The transport node `from` sends with.
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            from,
            router: Arc::clone(self),
        })
    }

    /// Makes `plane` reachable as `id` at `addr`.
    pub fn register(&self, id: NodeId, addr: &str, plane: &Arc<ControlPlane>) {
        if let Ok(mut n) = self.nodes.lock() {
            n.insert(id, Arc::downgrade(plane));
        }
        if let Ok(mut a) = self.addrs.lock() {
            a.insert(addr.to_owned(), id);
        }
    }

    /// The node is gone (crashed): nothing reaches it.
    pub fn unregister(&self, id: NodeId) {
        if let Ok(mut n) = self.nodes.lock() {
            n.remove(&id);
        }
    }

    fn with_faults(&self, f: impl FnOnce(&mut Faults)) {
        if let Ok(mut faults) = self.faults.lock() {
            f(&mut faults);
        }
    }

    /// Messages from `from` to `to` are lost (one way).
    pub fn block_one_way(&self, from: NodeId, to: NodeId) {
        self.with_faults(|f| {
            f.blocked.insert((from, to));
        });
    }

    /// Messages between `a` and `b` are lost both ways.
    pub fn block(&self, a: NodeId, b: NodeId) {
        self.with_faults(|f| {
            f.blocked.insert((a, b));
            f.blocked.insert((b, a));
        });
    }

    /// Cuts `node` off from every node in `others`.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for o in others {
            if *o != node {
                self.block(node, *o);
            }
        }
    }

    /// Loses each request or reply with probability `p`.
    pub fn set_drop(&self, p: f64) {
        self.with_faults(|f| f.drop = p.clamp(0.0, 1.0));
    }

    pub fn set_delay(&self, d: Duration) {
        self.with_faults(|f| f.delay = d);
    }

    /// Removes every fault (crashed nodes stay crashed).
    pub fn heal(&self) {
        self.with_faults(|f| *f = Faults::default());
    }

    fn verdict(&self, from: NodeId, to: NodeId) -> (bool, bool, Duration) {
        let Ok(f) = self.faults.lock() else {
            return (false, false, Duration::ZERO);
        };
        let blocked = f.blocked.contains(&(from, to)) || f.blocked.contains(&(to, from));
        let mut rng = rand::rng();
        let lost_request = blocked || (f.drop > 0.0 && rng.random_bool(f.drop));
        let lost_reply =
            f.blocked.contains(&(to, from)) || (f.drop > 0.0 && rng.random_bool(f.drop));
        (lost_request, lost_reply, f.delay)
    }
}

impl Transport for MemoryTransport {
    fn call(
        &self,
        to: NodeId,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, TransportError>> {
        let router = Arc::clone(&self.router);
        let from = self.from;
        let addr = addr.to_owned();
        Box::pin(async move {
            let unreachable = |reason: &str| TransportError::Unreachable {
                to,
                addr: addr.clone(),
                reason: reason.to_owned(),
            };
            let to = match router.addrs.lock().ok().and_then(|a| a.get(&addr).copied()) {
                Some(id) => id,
                None => return Err(unreachable("no such address")),
            };
            let (lost_request, lost_reply, delay) = router.verdict(from, to);
            let plane = router
                .nodes
                .lock()
                .ok()
                .and_then(|n| n.get(&to).and_then(Weak::upgrade));
            let deliver = async move {
                tokio::time::sleep(delay).await;
                if lost_request {
                    // Lost on the wire: the caller waits out its timeout.
                    return std::future::pending().await;
                }
                let Some(plane) = plane else {
                    return Err("connection refused".to_owned());
                };
                let reply = tokio::spawn(async move {
                    plane
                        .handle(rpc, &body, crate::raft::node::Caller { cert_name: None })
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())??;
                if lost_reply {
                    return std::future::pending().await;
                }
                tokio::time::sleep(delay).await;
                Ok(reply)
            };
            match tokio::time::timeout(timeout, deliver).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(reason)) => Err(unreachable(&reason)),
                Err(_) => Err(unreachable("timed out")),
            }
        })
    }
}
