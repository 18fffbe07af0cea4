//! The in-process control-plane cluster shared by the Raft and admin API
//! tests (feature `testkit`, enabled only by tests): nodes on their own
//! on-disk storage, over the in-memory network with injected faults.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
use tracing_subscriber::prelude::*;

use crate::raft::{
    ControlState, Member, NodeId,
    network::memory::Router,
    node::{ControlPlane, PlaneConfig},
};

#[derive(Debug)]
pub struct Cluster {
    pub router: Arc<Router>,
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub nodes: BTreeMap<NodeId, Arc<ControlPlane>>,
    pub config: PlaneConfig,
}

pub fn member(id: NodeId) -> Member {
    Member {
        node_name: String::new(),
        raft_addr: format!("node-{id}:4321"),
        federation_addr: format!("node-{id}:4320"),
        http_addr: format!("node-{id}:16686"),
    }
}

impl Cluster {
    pub async fn start(n: u64, config: PlaneConfig) -> Self {
        let filter = std::env::var("RUST_LOG")
            .ok()
            .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
            .unwrap_or_else(|| {
                tracing_subscriber::filter::Targets::new().with_default(tracing::Level::ERROR)
            });
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Self {
            router: Router::new(),
            root: dir.path().to_owned(),
            _dir: dir,
            nodes: BTreeMap::new(),
            config,
        };
        for id in 1..=n {
            c.open(id).await;
        }
        let members = (1..=n).map(|id| (id, member(id))).collect();
        assert!(c.nodes[&1].initialize(members).await.expect("initialize"));
        c.wait_leader(&(1..=n).collect::<Vec<_>>()).await;
        c
    }

    pub async fn open(&mut self, id: NodeId) -> Arc<ControlPlane> {
        let plane = tokio::time::timeout(
            Duration::from_secs(30),
            ControlPlane::open(
                id,
                member(id),
                &self.root.join(format!("node-{id}")),
                self.router.transport(id),
                self.config.clone(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("node {id} did not open within 30 s"))
        .expect("open node");
        self.router.register(id, &member(id).raft_addr, &plane);
        self.nodes.insert(id, Arc::clone(&plane));
        plane
    }

    /// kill: gone from the network, Raft stopped, only its disk remains.
    pub async fn crash(&mut self, id: NodeId) {
        self.router.unregister(id);
        if let Some(p) = self.nodes.remove(&id) {
            p.shutdown().await;
        }
    }

    pub fn node(&self, id: NodeId) -> &Arc<ControlPlane> {
        &self.nodes[&id]
    }

    /// Waits until the given nodes agree on one leader among them.
    pub async fn wait_leader(&self, among: &[NodeId]) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<NodeId>> = among
                .iter()
                .map(|id| self.nodes[id].status().leader_id)
                .collect();
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| *x == Some(*l))
                && among.contains(l)
                && self.nodes[l].is_leader()
            {
                return *l;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every given node's state satisfies `f`.
    pub async fn converge(&self, among: &[NodeId], what: &str, f: impl Fn(&ControlState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !among.iter().all(|id| f(&self.nodes[id].state())) {
            assert!(Instant::now() < deadline, "did not converge: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
