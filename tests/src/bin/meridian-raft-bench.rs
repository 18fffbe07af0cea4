//! Control-plane benchmark (BENCHMARKS.md, "Gateway cluster"): three
//! gateways' control planes in one process, each with its on-disk Raft
//! storage, talking real mTLS gRPC over loopback.
//!
//! - commit latency of one write at a time, proposed on the leader and on a
//!   follower (forwarded), p50/p99;
//! - throughput with `--writers` concurrent writers;
//! - failover: the leader stops; time until a survivor commits a write.
//!
//! ```text
//! meridian-raft-bench [--writes 2000] [--writers 16] [--failovers 5]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use control_plane::raft::{
    Command, Member, NodeId,
    network::grpc::{GrpcTransport, RaftService},
    node::{ControlPlane, PlaneConfig},
};
use model::sampling::SamplingConfig;
use mtls::certs::{self, Subject};
use telemetry::Shutdown;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;

struct Node {
    plane: Arc<ControlPlane>,
    sd: Shutdown,
}

async fn start_node(
    id: NodeId,
    listener: TcpListener,
    dir: &Path,
    ca_dir: &Path,
) -> anyhow::Result<Node> {
    let addr = listener.local_addr()?;
    let ca = ca_dir.join("ca.pem");
    let cert = ca_dir.join(format!("node-n{id}.pem"));
    let key = ca_dir.join(format!("node-n{id}-key.pem"));
    let transport = GrpcTransport::new(&ca, &cert, &key, None)?;
    let member = Member {
        raft_addr: addr.to_string(),
        ..Member::default()
    };
    let plane = ControlPlane::open(
        id,
        member,
        &dir.join(format!("n{id}")),
        Arc::new(transport),
        PlaneConfig::default(),
    )
    .await?;
    let sd = Shutdown::new();
    let server_tls = mtls::server_config(&ca, &cert, &key)?;
    let incoming = mtls::incoming(listener, server_tls, &sd, std::sync::Arc::new(|_| {}));
    let service = RaftService::new(Arc::clone(&plane), mtls::Revocations::none());
    let token = sd.token().clone();
    sd.spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(ReceiverStream::new(incoming), token.cancelled_owned())
            .await;
    });
    Ok(Node { plane, sd })
}

fn put(i: usize) -> Command {
    let mut policy = SamplingConfig::default();
    policy.head.default_probability = (i % 100) as f64 / 100.0;
    Command::PutPolicy {
        cluster: format!("c{}", i % 500),
        policy,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn wait_leader(nodes: &BTreeMap<NodeId, Node>) -> anyhow::Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((id, _)) = nodes.iter().find(|(_, n)| n.plane.is_leader()) {
            return Ok(*id);
        }
        if Instant::now() > deadline {
            bail!("no leader within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn latency(plane: &ControlPlane, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        plane.write(put(i)).await.context("write")?;
        out.push(t.elapsed());
    }
    out.sort_unstable();
    Ok(out)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::install_crypto_provider();
    let writes = arg("--writes", 2000);
    let writers = arg("--writers", 16);
    let failovers = arg("--failovers", 5);
    let dir = tempfile::tempdir()?;
    let ca_dir = dir.path().join("ca");
    certs::init_ca(&ca_dir)?;
    for id in 1..=3u64 {
        certs::issue(
            &ca_dir,
            &Subject::Node {
                name: format!("n{id}"),
                hosts: Vec::new(),
            },
            &ca_dir,
        )?;
    }
    let mut listeners = BTreeMap::new();
    let mut addrs: BTreeMap<NodeId, SocketAddr> = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        addrs.insert(id, l.local_addr()?);
        listeners.insert(id, l);
    }
    let mut nodes = BTreeMap::new();
    for (id, l) in listeners {
        nodes.insert(id, start_node(id, l, dir.path(), &ca_dir).await?);
    }
    let members = addrs
        .iter()
        .map(|(id, a)| {
            (
                *id,
                Member {
                    raft_addr: a.to_string(),
                    ..Member::default()
                },
            )
        })
        .collect();
    nodes[&1].plane.initialize(members).await?;
    let leader = wait_leader(&nodes).await?;
    let follower = *nodes.keys().find(|id| **id != leader).context("follower")?;
    println!("# meridian-raft-bench: 3 nodes, mTLS gRPC on loopback, on-disk storage");

    let on_leader = latency(&nodes[&leader].plane, writes).await?;
    println!(
        "commit latency on the leader:   p50 {:.2} ms  p99 {:.2} ms  ({writes} writes, one at a time)",
        pct(&on_leader, 0.5),
        pct(&on_leader, 0.99)
    );
    let on_follower = latency(&nodes[&follower].plane, writes).await?;
    println!(
        "commit latency via a follower:  p50 {:.2} ms  p99 {:.2} ms  (forwarded to the leader)",
        pct(&on_follower, 0.5),
        pct(&on_follower, 0.99)
    );

    let started = Instant::now();
    let per = writes / writers.max(1);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let plane = Arc::clone(&nodes[&leader].plane);
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                plane.write(put(w * per + i)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {:.0} writes/s with {writers} concurrent writers ({} writes in {secs:.2} s)",
        (per * writers) as f64 / secs,
        per * writers
    );

    // Failover: stop the leader, time until a survivor commits; restart it.
    let mut times = Vec::new();
    for round in 0..failovers {
        let old = wait_leader(&nodes).await?;
        let node = nodes.remove(&old).context("leader")?;
        // As a crash: the Raft core and the port stop at once.
        let t = Instant::now();
        node.sd.trigger();
        node.plane.shutdown().await;
        let survivor = *nodes.keys().next().context("survivor")?;
        loop {
            match nodes[&survivor].plane.write(put(round)).await {
                Ok(_) => break,
                Err(e)
                    if e.is_transient()
                        || matches!(e, control_plane::raft::network::WriteError::Timeout) => {}
                Err(e) => bail!("write after failover: {e}"),
            }
        }
        times.push(t.elapsed());
        node.sd.shutdown(Duration::from_secs(1)).await;
        drop(node);
        let l = TcpListener::bind(addrs[&old]).await?;
        nodes.insert(old, start_node(old, l, dir.path(), &ca_dir).await?);
        // The restarted node catches up before the next round.
        let target = nodes[&survivor].plane.status().last_applied;
        let deadline = Instant::now() + Duration::from_secs(30);
        while nodes[&old].plane.status().last_applied < target {
            if Instant::now() > deadline {
                bail!("node {old} did not catch up after its restart");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    times.sort_unstable();
    println!(
        "failover (leader stopped → a survivor commits): min {:.0} ms  median {:.0} ms  max {:.0} ms  ({failovers} rounds; heartbeat 250 ms, election timeout 0.75–1.5 s)",
        pct(&times, 0.0),
        pct(&times, 0.5),
        pct(&times, 1.0)
    );
    for (_, n) in nodes {
        n.sd.shutdown(Duration::from_secs(1)).await;
        n.plane.shutdown().await;
    }
    Ok(())
}
