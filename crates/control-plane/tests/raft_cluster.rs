//! In-process gateway clusters (3 and 5 nodes) over the in-memory network
//! with injected faults, each node on its own on-disk Raft storage.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use control_plane::raft::{
    Applied, Command, ControlState, NodeId, network::WriteError, node::PlaneConfig,
};
use control_state::Shard;
use model::sampling::SamplingConfig;
use telemetry::clock::ManualClock;
use tokio_util::sync::CancellationToken;

use control_plane::testkit as common;

use common::{Cluster, member};

fn fast() -> PlaneConfig {
    PlaneConfig {
        heartbeat: Duration::from_millis(100),
        election_timeout_min: Duration::from_millis(500),
        election_timeout_max: Duration::from_millis(1_000),
        lease_ttl: Duration::from_millis(1_500),
        snapshot_every: 30,
        write_timeout: Duration::from_secs(5),
        ..PlaneConfig::default()
    }
}

fn policy(p: f64) -> SamplingConfig {
    let mut c = SamplingConfig::default();
    c.head.default_probability = p;
    c
}

fn put(cluster: &str, p: f64) -> Command {
    Command::PutPolicy {
        cluster: cluster.into(),
        policy: policy(p),
    }
}

/// Who acts on each shard right now.
fn holders(c: &Cluster) -> BTreeMap<u32, Vec<NodeId>> {
    (0..3)
        .map(|s| {
            let h = c
                .nodes
                .values()
                .filter(|n| n.holds_lease(s).is_some())
                .map(|n| n.id())
                .collect();
            (s, h)
        })
        .collect()
}

/// Samples holders until every shard has one among `among`; fails if a
/// sample ever shows two holders of a shard.
async fn wait_all_held(c: &Cluster, among: Vec<NodeId>) -> BTreeMap<u32, Vec<NodeId>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = holders(c);
        for (s, nodes) in &h {
            assert!(nodes.len() <= 1, "shard {s} has two holders: {nodes:?}");
        }
        if h.values().all(|n| n.len() == 1 && among.contains(&n[0])) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "leases not all held: {h:?}; replicated: {:?}",
            c.nodes
                .values()
                .map(|n| n.state().leases.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn head(state: &ControlState, cluster: &str) -> Option<f64> {
    state
        .policies
        .get(cluster)
        .map(|p| p.head.default_probability)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_forward_writes() {
    let c = Cluster::start(3, fast()).await;
    let leader = c.wait_leader(&[1, 2, 3]).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    // A write on a follower reaches the leader and every node.
    assert_eq!(
        c.node(follower).write(put("eu", 0.25)).await,
        Ok(Applied::Done)
    );
    c.converge(&[1, 2, 3], "policy everywhere", |s| {
        head(s, "eu") == Some(0.25)
    })
    .await;
    // A linearizable read on a follower sees a write made just before on
    // another node.
    c.node(leader).write(put("us", 0.5)).await.expect("write");
    let read = c.node(follower).read_linearizable().await.expect("read");
    assert_eq!(head(&read, "us"), Some(0.5));
    // Refusals are answers, and they change nothing.
    assert!(matches!(
        c.node(follower).write(put("eu", 7.0)).await,
        Ok(Applied::Refused(_))
    ));
    let status = c.node(follower).status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert_eq!(status.leader_id, Some(leader));
    assert_eq!(status.members[&leader].http_addr, member(leader).http_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_cannot_commit_and_the_majority_moves_on() {
    let c = Cluster::start(5, fast()).await;
    let cancel = CancellationToken::new();
    for n in c.nodes.values() {
        tokio::spawn(Arc::clone(n).run_leases(cancel.clone()));
    }
    let all = [1, 2, 3, 4, 5];
    let old = c.wait_leader(&all).await;
    c.node(old).write(put("before", 0.1)).await.expect("write");
    c.router.isolate(old, &all);

    // The minority (the old leader alone) cannot commit, and says so.
    let refused = c.node(old).write(put("minority", 0.2)).await;
    assert!(
        matches!(
            refused,
            Err(WriteError::NoLeader | WriteError::Timeout | WriteError::LeaderUnreachable { .. })
        ),
        "{refused:?}"
    );
    // It steps down: no longer acts or reports itself as leader.
    assert!(!c.node(old).is_leader());
    let status = c.node(old).status();
    assert_eq!(
        (status.state.as_str(), status.leader_id),
        ("SteppedDown", None)
    );
    // The majority elects a new leader and commits.
    let rest: Vec<NodeId> = all.iter().copied().filter(|id| *id != old).collect();
    let new = c.wait_leader(&rest).await;
    assert_ne!(new, old);
    c.node(rest[0])
        .write(put("majority", 0.3))
        .await
        .expect("majority commits");

    // Heal: the old leader follows, learns the majority's writes, and the
    // write it could not commit is gone everywhere.
    c.router.heal();
    c.converge(&all, "healed", |s| {
        head(s, "majority") == Some(0.3) && head(s, "before") == Some(0.1)
    })
    .await;
    c.wait_leader(&all).await;
    for id in all {
        assert_eq!(head(&c.node(id).state(), "minority"), None, "node {id}");
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_log_gets_a_snapshot_then_restarts_from_disk() {
    let mut c = Cluster::start(3, fast()).await;
    let leader = c.wait_leader(&[1, 2, 3]).await;
    let lagging = (1..=3).find(|id| *id != leader).expect("follower");
    c.crash(lagging).await;
    let alive: Vec<NodeId> = (1..=3).filter(|id| *id != lagging).collect();
    for i in 0..120u32 {
        let cmd = put(&format!("c{i}"), f64::from(i % 10) / 10.0);
        c.node(alive[0]).write(cmd).await.expect("write");
    }
    // The leader snapshotted and purged the log the lagging node needs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.node(leader).raft().metrics().borrow().purged.is_none() {
        assert!(Instant::now() < deadline, "the leader never purged its log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.open(lagging).await;
    c.converge(&[1, 2, 3], "caught up", |s| s.policies.len() == 120)
        .await;
    assert!(
        c.node(lagging).status().snapshot_index.is_some(),
        "caught up through a snapshot"
    );
    let expected = c.node(leader).state();

    // Every node stops, then restarts from its disk alone.
    for id in 1..=3 {
        c.crash(id).await;
    }
    for id in 1..=3 {
        c.open(id).await;
    }
    c.wait_leader(&[1, 2, 3]).await;
    c.converge(&[1, 2, 3], "restored", |s| s.policies == expected.policies)
        .await;
    c.node(1)
        .write(put("after-restart", 1.0))
        .await
        .expect("write");
    c.converge(&[1, 2, 3], "writes after restart", |s| {
        head(s, "after-restart") == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_added_as_learners_then_voters_and_removed() {
    let mut c = Cluster::start(3, fast()).await;
    c.node(1).write(put("eu", 0.5)).await.expect("write");
    let four = c.open(4).await;
    // Joining through any member (here node 2, maybe a follower).
    four.join(&member(2).raft_addr).await.expect("join");
    c.converge(&[1, 2, 3, 4], "four is a member", |s| {
        s.members.contains_key(&4) && head(s, "eu") == Some(0.5)
    })
    .await;
    assert_eq!(four.status().voters, vec![1, 2, 3, 4]);
    assert!(four.status().learners.is_empty());

    // Remove node 2 (even if it leads: the cluster elects another).
    c.node(3).remove_node(2).await.expect("remove");
    c.converge(&[1, 3, 4], "two is gone", |s| !s.members.contains_key(&2))
        .await;
    // The removed node is refused at once: a vote it asks for, and a write
    // it forwards (before, the leader carried its writes out).
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(u64::MAX >> 1, 2), None);
    let refused = c
        .node(1)
        .handle(
            control_plane::raft::network::Rpc::Vote,
            &control_plane::raft::network::encode(&vote),
            control_plane::raft::node::Caller { cert_name: None },
        )
        .await
        .expect_err("a removed node's vote request");
    assert!(refused.to_string().contains("not a member"), "{refused}");
    let leader = c.wait_leader(&[1, 3, 4]).await;
    let forward = serde_json::json!({
        "relayed": true,
        "from": 2,
        "msg": control_plane::raft::network::Forwarded::Propose(put("late", 0.3)),
    });
    let refused = c
        .node(leader)
        .handle(
            control_plane::raft::network::Rpc::Forward,
            forward.to_string().as_bytes(),
            control_plane::raft::node::Caller { cert_name: None },
        )
        .await
        .expect_err("a removed node's forwarded write");
    assert!(refused.to_string().contains("not a member"), "{refused}");
    c.crash(2).await;
    let leader = c.wait_leader(&[1, 3, 4]).await;
    assert_ne!(leader, 2);
    assert_eq!(head(&c.node(leader).state(), "late"), None);
    assert_eq!(c.node(4).status().voters, vec![1, 3, 4]);
    c.node(4)
        .write(put("us", 0.1))
        .await
        .expect("write after removal");
    c.converge(&[1, 3, 4], "write", |s| head(s, "us") == Some(0.1))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_drops_and_delays() {
    let c = Cluster::start(3, fast()).await;
    c.router.set_delay(Duration::from_millis(3));
    c.router.set_drop(0.1);
    let mut ok = 0;
    for i in 0..40u32 {
        // A lost reply can make a write fail after it committed; puts are
        // idempotent, so the caller retries.
        for _ in 0..5 {
            if c.node(1 + u64::from(i % 3))
                .write(put(&format!("k{i}"), 0.5))
                .await
                .is_ok()
            {
                ok += 1;
                break;
            }
        }
    }
    assert_eq!(ok, 40);
    c.router.heal();
    c.converge(&[1, 2, 3], "all writes everywhere", |s| {
        s.policies.len() == 40
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_lease_moves_when_its_holder_dies_and_never_has_two_holders() {
    let mut c = Cluster::start(3, fast()).await;
    let shards = [0u32, 1, 2]
        .into_iter()
        .map(|id| {
            (
                id,
                Shard {
                    url: format!("postgres://pg/{id}"),
                },
            )
        })
        .collect();
    let add = Command::AddShards {
        shards,
        start_unix_nano: 0,
    };
    assert_eq!(c.node(1).write(add).await, Ok(Applied::Done));
    let cancel = CancellationToken::new();
    for n in c.nodes.values() {
        tokio::spawn(Arc::clone(n).run_leases(cancel.clone()));
    }

    let before = wait_all_held(&c, vec![1, 2, 3]).await;
    let fence_before = c.node(before[&1][0]).holds_lease(1);
    // Spread: three shards over three nodes, one each.
    let mut owners: Vec<NodeId> = before.values().map(|n| n[0]).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 3, "{before:?}");

    // Kill the holder of shard 0: its lease moves within seconds, and no
    // sample ever sees two holders.
    let victim = before[&0][0];
    c.crash(victim).await;
    let rest: Vec<NodeId> = (1..=3).filter(|id| *id != victim).collect();
    let after = wait_all_held(&c, rest.clone()).await;
    assert_ne!(after[&0][0], victim);

    // The dead node restarts from its disk; then a holder is cut off the
    // network: it stops acting before anyone else starts.
    let restarted = c.open(victim).await;
    tokio::spawn(Arc::clone(&restarted).run_leases(cancel.clone()));
    let cut = after[&1][0];
    c.router.isolate(cut, &[1, 2, 3]);
    let others: Vec<NodeId> = (1..=3).filter(|id| *id != cut).collect();
    let moved = wait_all_held(&c, others).await;
    assert_ne!(moved[&1][0], cut);
    // The new holder works under a larger fence.
    assert!(c.node(moved[&1][0]).holds_lease(1) > fence_before);
    cancel.cancel();
}

/// Leases are judged by the injected clock: with renewals stopped, a held
/// lease stays valid until 80 % of its TTL has passed on that clock, and
/// not a moment longer, however much real time goes by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_lapses_by_the_injected_clock_alone() {
    let clock = ManualClock::at_unix_ms(1_800_000_000_000);
    let config = PlaneConfig {
        lease_ttl: Duration::from_secs(3),
        clock: clock.shared(),
        ..fast()
    };
    let c = Cluster::start(1, config).await;
    let add = Command::AddShards {
        shards: [(
            0,
            Shard {
                url: "postgres://pg/0".into(),
            },
        )]
        .into(),
        start_unix_nano: 0,
    };
    assert_eq!(c.node(1).write(add).await, Ok(Applied::Done));
    let cancel = CancellationToken::new();
    let renewals = tokio::spawn(Arc::clone(c.node(1)).run_leases(cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.node(1).holds_lease(0).is_none() {
        assert!(Instant::now() < deadline, "the lease was never acquired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    renewals.await.expect("renewals stop");

    // Real time passing changes nothing; the injected clock does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.node(1).holds_lease(0).is_some());
    clock.advance(Duration::from_millis(2_300));
    assert!(
        c.node(1).holds_lease(0).is_some(),
        "valid until 80 % of the TTL"
    );
    clock.advance(Duration::from_millis(200));
    assert_eq!(
        c.node(1).holds_lease(0),
        None,
        "lapsed past 80 % of the TTL"
    );
    // The replicated lease is still there: only this node's own judgement
    // of how long it may act has run out.
    assert_eq!(c.node(1).state().leases[&0].holder, 1);
}

/// A member's announced certificate name binds its node id: a call for
/// node 1 made with node 2's certificate is refused; with node 1's it is
/// served. A node may announce only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_a_member_with_another_nodes_certificate_is_refused() {
    let c = Cluster::start(3, fast()).await;
    let leader = c.wait_leader(&[1, 2, 3]).await;
    let mut one = member(1);
    one.node_name = "g1".into();
    c.node(1)
        .write(Command::AnnounceMember { id: 1, member: one })
        .await
        .expect("announce");
    c.converge(&[1, 2, 3], "g1 announced", |s| {
        s.members.get(&1).is_some_and(|m| m.node_name == "g1")
    })
    .await;
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(0, 1), None);
    let call = |cert: &'static str| {
        let plane = c.node(3);
        let body = control_plane::raft::network::encode(&vote);
        async move {
            plane
                .handle(
                    control_plane::raft::network::Rpc::Vote,
                    &body,
                    control_plane::raft::node::Caller {
                        cert_name: Some(cert),
                    },
                )
                .await
        }
    };
    let refused = call("g2")
        .await
        .expect_err("node 2's certificate for node 1");
    assert!(
        refused.to_string().contains("announced \"g1\""),
        "{refused}"
    );
    call("g1").await.expect("node 1's own certificate");
    // Node 2 cannot announce node 1 (as a forwarded write to the leader).
    let forward = serde_json::json!({
        "relayed": true,
        "from": 2,
        "msg": control_plane::raft::network::Forwarded::Propose(Command::AnnounceMember {
            id: 1,
            member: member(1),
        }),
    });
    let refused = c
        .node(leader)
        .handle(
            control_plane::raft::network::Rpc::Forward,
            forward.to_string().as_bytes(),
            control_plane::raft::node::Caller { cert_name: None },
        )
        .await
        .expect_err("a foreign announcement");
    assert!(refused.to_string().contains("cannot announce"), "{refused}");
}
