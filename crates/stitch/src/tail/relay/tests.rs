//! The relay's bounds, over a fake peer bus that answers every relay.

use std::sync::{Arc, Mutex};

use control_plane::{
    ControlReader, PeerBus, Placement,
    peer::{PeerError, PeerHandlers, Topic},
};
use control_state::{ControlState, NodeId};
use futures::future::BoxFuture;
use proto::federation::{PeerDigests, TraceDigest, Verdict as WireVerdict};
use store::shard::ShardId;
use tokio::sync::{mpsc, watch};

use super::{Held, Relay};
use crate::tail::metrics::TailMetrics;

/// One worker (node 1) that takes every digest and knows no verdict yet.
#[derive(Debug)]
struct Bus {
    handlers: PeerHandlers,
    state: watch::Sender<Arc<ControlState>>,
    relayed: Mutex<usize>,
}

impl Bus {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            handlers: PeerHandlers::default(),
            state: watch::channel(Arc::new(ControlState::default())).0,
            relayed: Mutex::new(0),
        })
    }
}

impl ControlReader for Bus {
    fn id(&self) -> NodeId {
        1
    }
    fn is_leader(&self) -> bool {
        true
    }
    fn state(&self) -> Arc<ControlState> {
        self.state.borrow().clone()
    }
    fn subscribe(&self) -> watch::Receiver<Arc<ControlState>> {
        self.state.subscribe()
    }
}

impl Placement for Bus {
    fn worker_of(&self, _: ShardId) -> Option<NodeId> {
        Some(1)
    }
    fn works_on(&self, _: ShardId) -> bool {
        true
    }
    fn holds_lease(&self, _: ShardId) -> Option<u64> {
        Some(1)
    }
    fn held_shards(&self) -> Vec<ShardId> {
        vec![0]
    }
}

impl PeerBus for Bus {
    fn peer_handlers(&self) -> &PeerHandlers {
        &self.handlers
    }
    fn send_peer<'a>(
        &'a self,
        _to: NodeId,
        _topic: Topic,
        payload: &'a [u8],
        _timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, PeerError>> {
        Box::pin(async move {
            let d = <PeerDigests as prost::Message>::decode(payload)
                .map_err(|_| PeerError::Truncated(payload.len()))?;
            *self.relayed.lock().unwrap_or_else(|p| p.into_inner()) += d.digests.len();
            Ok(Vec::new())
        })
    }
}

fn digests(cluster: &Arc<str>, from: u8, n: u8) -> Vec<Held> {
    (from..from + n)
        .map(|i| {
            let mut id = [1u8; 16];
            id[0] = i;
            Held {
                cluster: Arc::clone(cluster),
                trace_id: model::TraceId::from_bytes(&id).expect("non-zero id"),
                digest: TraceDigest {
                    trace_id: id.to_vec(),
                    local_verdict: WireVerdict::Drop as i32,
                    ..Default::default()
                },
                policy: Arc::from(""),
            }
        })
        .collect()
}

/// Defect: one cluster could fill the whole pending table, and every other
/// cluster's new traces were then not relayed. Each cluster with a stream
/// now holds at most its share; the excess is refused with
/// RESOURCE_EXHAUSTED and a RetryInfo. Failed on the old code emulated
/// (only the table's total checked).
#[tokio::test]
async fn one_cluster_cannot_take_the_others_share() {
    let bus = Bus::new();
    let metrics = TailMetrics::default();
    let relay = Relay::new(
        Arc::clone(&bus) as Arc<dyn PeerBus>,
        metrics.clone(),
        std::time::Duration::from_secs(5),
        10,
    );
    let (a, b): (Arc<str>, Arc<str>) = (Arc::from("noisy"), Arc::from("quiet"));
    let sa = relay.register(Arc::clone(&a), mpsc::channel(4).0);
    let sb = relay.register(Arc::clone(&b), mpsc::channel(4).0);

    let over = relay
        .accept(sa, digests(&a, 1, 20))
        .await
        .expect_err("beyond its share");
    assert_eq!((over.refused, over.share, over.max), (15, 5, 10));
    let status = over.status();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    assert!(status.get_details_retry_info().is_some());
    assert_eq!(relay.pending(), 5);

    relay
        .accept(sb, digests(&b, 100, 5))
        .await
        .expect("the quiet cluster's share is free");
    assert_eq!(relay.pending(), 10);
    assert_eq!(*bus.relayed.lock().unwrap(), 10);
    assert_eq!(metrics.digest_count("over_share"), 15);

    // A report of a trace already waiting costs no share.
    relay
        .accept(sa, digests(&a, 1, 5))
        .await
        .expect("known traces are not new");

    // When the quiet cluster leaves, the noisy one may use the whole table.
    relay.unregister(sb);
    relay
        .accept(sa, digests(&a, 30, 5))
        .await
        .expect_err("the table is full");
    assert_eq!(relay.pending(), 10);
}
