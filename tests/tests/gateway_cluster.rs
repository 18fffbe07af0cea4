//! A three-gateway cluster of real processes over two Postgres shards
//! (`MERIDIAN_TEST_POSTGRES`; skipped without it unless
//! `MERIDIAN_REQUIRE_POSTGRES=1`), with real agent processes over mTLS:
//! kill -9 of the leader while agents stream (a new leader within 5 s, no
//! span lost), a leader partitioned from the majority by the Raft proxies
//! (it stops acknowledging writes, the majority goes on, it catches up
//! after the heal), a policy written through the admin API reaching agents
//! on every gateway, and a shard added while ingesting.
//!
//! The scenarios run one at a time (each starts three gateways; together
//! they would starve a small machine's elections).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use integration_tests::{
    cluster::{ProcessCluster, ensure_ok, timed},
    otlp::trace_id,
    process::{AgentProcess, metric},
    wait_for,
};
use model::TraceId;
use proto::otlp::{self, ExportTraceServiceRequest};
use serde_json::{Value, json};
use store::{
    shard::{ShardId, ShardMap},
    testsuite::pg,
};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const SPANS_PER_TRACE: usize = 3;
/// Generous bound for conditions that hold within a second or two.
const DEADLINE: Duration = Duration::from_secs(30);
/// The requirement: survivors elect a new leader within this after kill -9.
const FAILOVER: Duration = Duration::from_secs(5);

/// One scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn trace_request(id: TraceId, service: &str, start: u64) -> ExportTraceServiceRequest {
    integration_tests::otlp::request(
        service,
        integration_tests::otlp::numbered_spans(id, SPANS_PER_TRACE as u8, start),
    )
}

/// A trace the agent acknowledged: its id, service and start.
#[derive(Debug, Clone)]
struct Sent {
    id: TraceId,
    service: String,
    start: u64,
}

/// Streams traces into an agent until stopped; every trace is retried
/// until the agent acknowledges it, so sent == acknowledged.
struct Stream {
    stop: Arc<AtomicBool>,
    /// The service name of the traces sent from now on.
    service: Arc<Mutex<String>>,
    acked: Arc<Mutex<Vec<Sent>>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Stream {
    fn start(agent: SocketAddr, tag: u8, service: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let service = Arc::new(Mutex::new(service.to_owned()));
        let acked: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let task = tokio::spawn({
            let (stop, service, acked) = (stop.clone(), service.clone(), acked.clone());
            async move {
                let mut client =
                    otlp::TraceServiceClient::connect(format!("http://{agent}")).await?;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let id = trace_id(tag, n);
                    let svc = service.lock().map(|s| s.clone()).unwrap_or_default();
                    let start = telemetry::clock::unix_nanos();
                    let req = trace_request(id, &svc, start);
                    let give_up = Instant::now() + DEADLINE;
                    while let Err(status) = client.export(req.clone()).await {
                        anyhow::ensure!(
                            Instant::now() < give_up,
                            "the agent refused trace {n} for {DEADLINE:?}: {status}"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if let Ok(mut a) = acked.lock() {
                        a.push(Sent {
                            id,
                            service: svc,
                            start,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
        });
        Self {
            stop,
            service,
            acked,
            task,
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    fn set_service(&self, s: &str) {
        if let Ok(mut svc) = self.service.lock() {
            *svc = s.to_owned();
        }
    }

    async fn wait_count(&self, n: usize) -> anyhow::Result<()> {
        wait_for(&format!("{n} traces acknowledged"), DEADLINE, || async {
            (self.count() >= n).then_some(())
        })
        .await
    }

    async fn finish(self) -> anyhow::Result<Vec<Sent>> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await??;
        Ok(self.acked.lock().map(|a| a.clone()).unwrap_or_default())
    }
}

async fn agent_metric(c: &ProcessCluster, agent: &AgentProcess, name: &str) -> Option<f64> {
    let text = c
        .http
        .get(format!("http://{}/metrics", agent.admin))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric(&text, name)
}

/// Waits until the agent's gateway acknowledged `spans` spans.
async fn wait_agent_acked(
    c: &ProcessCluster,
    agent: &AgentProcess,
    spans: usize,
) -> anyhow::Result<()> {
    let acked = wait_for(
        &format!("the gateways to acknowledge {spans} spans"),
        Duration::from_secs(60),
        || async {
            let a = agent_metric(c, agent, "meridian_agent_spans_acked_total").await?;
            (a >= spans as f64).then_some(a)
        },
    )
    .await?;
    assert_eq!(acked, spans as f64, "every span acknowledged once");
    Ok(())
}

/// Looks every trace up by id on node `via`: each holds exactly its spans,
/// none twice. Returns the spans found.
async fn count_by_id(c: &ProcessCluster, via: u64, sent: &[Sent]) -> anyhow::Result<usize> {
    let mut found = 0;
    for s in sent {
        let (status, body) = c
            .get_json(via, &format!("/api/traces/{}", s.id.to_jaeger_hex()))
            .await?;
        anyhow::ensure!(
            status == 200,
            "trace {} on g{via}: {status} {body}",
            s.id.to_hex()
        );
        let spans = body["data"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ids: BTreeSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
        anyhow::ensure!(
            spans.len() == SPANS_PER_TRACE && ids.len() == SPANS_PER_TRACE,
            "trace {}: {} spans ({} distinct)",
            s.id.to_hex(),
            spans.len(),
            ids.len()
        );
        found += spans.len();
    }
    Ok(found)
}

/// Spans per shard id (`"shard": "2 (db/…)"`) from `/api/v1/storage` on
/// node `via`, the total, and the whole answer.
async fn spans_per_shard(
    c: &ProcessCluster,
    via: u64,
) -> anyhow::Result<(BTreeMap<ShardId, u64>, u64, Value)> {
    let (status, v) = c.get_json(via, "/api/v1/storage").await?;
    anyhow::ensure!(status == 200, "/api/v1/storage on g{via}: {status} {v}");
    let mut shards = BTreeMap::new();
    for s in v["shards"].as_array().into_iter().flatten() {
        anyhow::ensure!(s.get("error").is_none(), "a shard failed on g{via}: {v}");
        let id = s["shard"]
            .as_str()
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("shard id in {s}"))?;
        shards.insert(id, s["spans"].as_u64().unwrap_or(0));
    }
    let total = v["spans"].as_u64().unwrap_or(0);
    Ok((shards, total, v))
}

/// Trace ids a search on node `via` finds for `service`.
async fn search(c: &ProcessCluster, via: u64, service: &str) -> anyhow::Result<BTreeSet<String>> {
    let (status, body) = c
        .get_json(
            via,
            &format!("/api/traces?service={service}&lookback=1h&limit=1500"),
        )
        .await?;
    anyhow::ensure!(status == 200, "search on g{via}: {status} {body}");
    anyhow::ensure!(body["errors"].is_null(), "every shard answered: {body}");
    Ok(body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn policy_drop_all() -> Value {
    json!({"head": {"default_probability": 0.0}})
}

fn probabilistic(rate: f64) -> Value {
    json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": rate}})
}

async fn strategy(c: &ProcessCluster, agent: &AgentProcess, service: &str) -> Option<Value> {
    let url = format!("http://{}/sampling?service={service}", agent.sampling);
    c.http.get(url).send().await.ok()?.json().await.ok()
}

async fn wait_strategy(
    c: &ProcessCluster,
    agent: &AgentProcess,
    service: &str,
    want: &Value,
) -> anyhow::Result<()> {
    wait_for(
        &format!(
            "/sampling?service={service} on {} to answer {want}",
            agent.sampling
        ),
        DEADLINE,
        || async { (strategy(c, agent, service).await? == *want).then_some(()) },
    )
    .await
}

async fn gateway_metric(c: &ProcessCluster, id: u64, name: &str) -> Option<f64> {
    let text = c
        .http
        .get(c.gateway(id).ok()?.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric(&text, name)
}

/// The Postgres server, or `None` to skip (see `pg::server_from_env`).
fn postgres(test: &str) -> Option<String> {
    pg::server_from_env(test)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_leader_while_agents_stream() -> anyhow::Result<()> {
    let Some(server) = postgres("kill -9 of the gateway leader") else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let dbs = pg::fresh_databases(&server, 2).await;
    let mut c = ProcessCluster::start(GATEWAY, dbs, 3).await?;
    let leader = c.wait_leader(&[1, 2, 3], DEADLINE).await?;
    let follower = if leader == 1 { 2 } else { 1 };

    // east enters through the leader, west through a follower; both learn
    // every member and must fail over on their own.
    let east = c.start_agent(AGENT, "east", &[leader]).await?;
    let west = c.start_agent(AGENT, "west", &[follower]).await?;
    for a in ["east", "west"] {
        c.wait_agent_members(a, 3, DEADLINE).await?;
    }
    let streams = [
        Stream::start(east.otlp_grpc, 0xe1, "kill-east"),
        Stream::start(west.otlp_grpc, 0xe2, "kill-west"),
    ];
    for s in &streams {
        s.wait_count(40).await?;
    }
    // east's control stream is on the leader (its only --gateway).
    wait_for("east's control stream on the leader", DEADLINE, || async {
        (gateway_metric(&c, leader, "meridian_gateway_control_streams").await? == 1.0).then_some(())
    })
    .await?;

    c.kill9(leader)?;
    let killed_at = Instant::now();
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let (new_leader, took) = timed("a new leader among the survivors", FAILOVER, || {
        c.leader_among(&survivors)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", c.describe()))?;
    eprintln!("g{new_leader} leads {took:?} after kill -9 of g{leader}");
    assert!(killed_at.elapsed() >= took);
    assert_ne!(new_leader, leader);

    // Ingest goes on through the survivors.
    let before: Vec<usize> = streams.iter().map(Stream::count).collect();
    for (s, n) in streams.iter().zip(&before) {
        s.wait_count(n + 40).await?;
    }
    let mut sent = Vec::new();
    let mut per_agent = Vec::new();
    for s in streams {
        let acked = s.finish().await?;
        per_agent.push(acked.len() * SPANS_PER_TRACE);
        sent.extend(acked);
    }
    wait_agent_acked(&c, &east, per_agent[0]).await?;
    wait_agent_acked(&c, &west, per_agent[1]).await?;
    for a in [&east, &west] {
        wait_for(
            "the agent's control stream on a survivor",
            DEADLINE,
            || async {
                (agent_metric(&c, a, "meridian_agent_control_connected").await? == 1.0)
                    .then_some(())
            },
        )
        .await?;
    }
    wait_for(
        "both control streams on the survivors",
        DEADLINE,
        || async {
            let mut streams = 0.0;
            for id in &survivors {
                streams += gateway_metric(&c, *id, "meridian_gateway_control_streams").await?;
            }
            (streams == 2.0).then_some(())
        },
    )
    .await?;

    // Exact accounting, through a survivor's query API.
    let spans_sent = sent.len() * SPANS_PER_TRACE;
    let found = count_by_id(&c, new_leader, &sent).await?;
    assert_eq!(found, spans_sent, "spans sent == spans stored");
    // `/api/v1/storage` is no exact count here: its usage counters are
    // bumped after the commit, outside it, so a batch committed just before
    // the kill is stored (found above) but may never be counted, and its
    // replay stores nothing new. It never counts more than was stored.
    let (_, total, storage) = spans_per_shard(&c, survivors[0]).await?;
    assert!(total <= spans_sent as u64, "{spans_sent} sent: {storage}");

    // The control plane takes writes through either survivor.
    for id in &survivors {
        let (status, body) = c
            .put_policy(
                *id,
                &format!("after-kill-{id}"),
                &policy_drop_all(),
                DEADLINE,
            )
            .await?;
        ensure_ok(&format!("PUT policy through g{id}"), status, &body)?;
    }
    let policies = c.policies(survivors[1]).await?;
    for id in &survivors {
        assert!(
            policies.contains_key(&format!("after-kill-{id}")),
            "{policies:?}"
        );
    }

    // The killed node restarts with its disk (new ports, the same proxy):
    // it follows the new leader, catches up, and agents learn its new
    // federation address.
    let applied = c.raft(new_leader).await?.last_applied;
    c.restart(leader).await?;
    wait_for("the restarted node to follow", DEADLINE, || async {
        let v = c.raft(leader).await.ok()?;
        (v.leader_id == Some(new_leader) && v.last_applied >= applied).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", c.describe()))?;
    let policies = c.policies(leader).await?;
    assert!(policies.contains_key(&format!("after-kill-{new_leader}")));
    let url = c.gateway(leader)?.federation_url();
    for a in ["east", "west"] {
        wait_for(&format!("agent {a} to learn {url}"), DEADLINE, || async {
            let text = std::fs::read_to_string(c.agent_dir(a).join("gateways")).ok()?;
            text.lines().any(|l| l.trim() == url).then_some(())
        })
        .await?;
    }
    drop((east, west));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_acknowledging_and_catches_up_after_the_heal()
-> anyhow::Result<()> {
    let Some(server) = postgres("a partitioned gateway leader") else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let dbs = pg::fresh_databases(&server, 2).await;
    let c = ProcessCluster::start(GATEWAY, dbs, 3).await?;
    let old = c.wait_leader(&[1, 2, 3], DEADLINE).await?;
    let majority: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
    let old_term = c.raft(old).await?.term;

    c.isolate(old)?;
    let new = c.wait_leader(&majority, DEADLINE).await?;
    let new_term = c.raft(new).await?.term;
    assert!(new_term > old_term, "a new term: {old_term} → {new_term}");

    // The majority's proxies black-holed the old leader's own connections
    // (told apart by their source IP).
    for id in &majority {
        let p = c.proxy(*id)?.stats();
        wait_for(
            &format!("proxy {id} to hold g{old}'s connections"),
            DEADLINE,
            || async { (p.held() > 0).then_some(()) },
        )
        .await?;
    }
    // The old leader no longer claims to lead.
    let view = wait_for("the old leader to step down", DEADLINE, || async {
        let v = c.raft(old).await.ok()?;
        (!v.leads() && v.leader_id != Some(old)).then_some(v)
    })
    .await?;
    assert!(
        ["SteppedDown", "Follower", "Candidate"].contains(&view.state.as_str()),
        "{:?}",
        view.raw
    );

    // A write through the old leader is not acknowledged (503 or no answer).
    let refused = c
        .put_policy(
            old,
            "partitioned",
            &policy_drop_all(),
            Duration::from_secs(20),
        )
        .await;
    match &refused {
        Ok((status, body)) => {
            assert!(
                !(200..300).contains(status),
                "the cut-off leader acknowledged a write: {status} {body}"
            );
            eprintln!("the write through the old leader was refused: {status} {body}");
        }
        Err(e) => eprintln!("the write through the old leader got no answer: {e}"),
    }
    // Writes through the majority go on.
    for id in &majority {
        let (status, body) = c
            .put_policy(*id, &format!("majority-{id}"), &policy_drop_all(), DEADLINE)
            .await?;
        ensure_ok(&format!("PUT policy through g{id}"), status, &body)?;
    }
    let applied = c
        .raft(new)
        .await?
        .last_applied
        .context("the new leader applied nothing")?;

    c.heal();
    let healed = wait_for("the old leader to follow the new one", DEADLINE, || async {
        let v = c.raft(old).await.ok()?;
        (v.state == "Follower"
            && v.leader_id == Some(new)
            && v.last_applied.is_some_and(|a| a >= applied))
        .then_some(v)
    })
    .await
    .context_describe(&c)?;
    assert!(healed.term >= new_term);
    let policies = c.policies(old).await?;
    for id in &majority {
        assert!(
            policies.contains_key(&format!("majority-{id}")),
            "{policies:?}"
        );
    }
    assert!(
        !policies.contains_key("partitioned"),
        "the refused write never took effect: {policies:?}"
    );
    // And the old leader takes writes again (forwarded to the leader).
    let (status, body) = c
        .put_policy(old, "after-heal", &policy_drop_all(), DEADLINE)
        .await?;
    ensure_ok("PUT policy through the healed node", status, &body)?;
    for id in [1, 2, 3] {
        wait_for(
            &format!("g{id} to apply the last write"),
            DEADLINE,
            || async {
                c.policies(id)
                    .await
                    .ok()?
                    .contains_key("after-heal")
                    .then_some(())
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_policy_reaches_agents_on_every_gateway() -> anyhow::Result<()> {
    let Some(server) = postgres("policies through the gateway cluster") else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let dbs = pg::fresh_databases(&server, 2).await;
    let c = ProcessCluster::start(GATEWAY, dbs, 3).await?;
    let mut agents = Vec::new();
    for (cluster, gw) in [("east", 1), ("west", 2), ("north", 3)] {
        agents.push(c.start_agent(AGENT, cluster, &[gw]).await?);
    }
    // Each agent follows its own gateway.
    for id in [1, 2, 3] {
        wait_for(
            &format!("one control stream on g{id}"),
            DEADLINE,
            || async {
                (gateway_metric(&c, id, "meridian_gateway_control_streams").await? == 1.0)
                    .then_some(())
            },
        )
        .await?;
    }
    for a in &agents {
        wait_strategy(&c, a, "checkout", &probabilistic(1.0)).await?;
    }

    // A policy for every cluster, written through a follower.
    let leader = c.wait_leader(&[1, 2, 3], DEADLINE).await?;
    let follower = if leader == 3 { 2 } else { 3 };
    let every = json!({"head": {"default_probability": 1.0,
        "rules": [{"service": "checkout", "probability": 0.25}]}});
    let (status, body) = c.put_policy(follower, "*", &every, DEADLINE).await?;
    ensure_ok("PUT policy *", status, &body)?;
    // The follower that answered the write records it in its audit trail.
    let (status, audit) = c.get_json(follower, "/api/v1/admin/audit").await?;
    ensure_ok("GET audit", status, &audit)?;
    assert_eq!(audit["node"], follower, "{audit}");
    let records = audit["records"].as_array().cloned().unwrap_or_default();
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "PUT /api/v1/admin/policies/{cluster}"
                && r["path"] == "/api/v1/admin/policies/*"
                && r["outcome"] == "done"
                && r["node"] == follower),
        "{audit}"
    );
    for a in &agents {
        wait_strategy(&c, a, "checkout", &probabilistic(0.25)).await?;
        wait_strategy(&c, a, "other", &probabilistic(1.0)).await?;
    }

    // east's own policy wins over "*" for east only.
    let (status, body) = c
        .put_policy(leader, "east", &policy_drop_all(), DEADLINE)
        .await?;
    ensure_ok("PUT policy east", status, &body)?;
    wait_strategy(&c, &agents[0], "other", &probabilistic(0.0)).await?;
    wait_strategy(&c, &agents[0], "checkout", &probabilistic(0.0)).await?;
    for a in &agents[1..] {
        assert_eq!(strategy(&c, a, "checkout").await, Some(probabilistic(0.25)));
        assert_eq!(strategy(&c, a, "other").await, Some(probabilistic(1.0)));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_added_while_ingesting_takes_new_traces_and_old_ones_stay_found()
-> anyhow::Result<()> {
    let Some(server) = postgres("adding a shard to the gateway cluster") else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let dbs = pg::fresh_databases(&server, 3).await;
    let third = dbs[2].clone();
    let c = ProcessCluster::start(GATEWAY, dbs[..2].to_vec(), 3).await?;
    let east = c.start_agent(AGENT, "east", &[1]).await?;
    let west = c.start_agent(AGENT, "west", &[3]).await?;
    let streams = [
        Stream::start(east.otlp_grpc, 0xa1, "before-shard"),
        Stream::start(west.otlp_grpc, 0xa2, "before-shard"),
    ];
    for s in &streams {
        s.wait_count(30).await?;
    }

    let (status, body) = c
        .request(
            2,
            reqwest::Method::POST,
            "/api/v1/admin/shards",
            Some(&json!({"url": third, "start_in_secs": 2})),
            DEADLINE,
        )
        .await?;
    ensure_ok("POST /api/v1/admin/shards", status, &body)?;
    for s in &streams {
        s.set_service("after-shard");
    }
    let new_shard = body["shard"].as_u64().context("shard id")?;
    let epoch_start = body["start_unix_nano"].as_u64().context("epoch start")?;
    assert_eq!(new_shard, 2, "{body}");
    assert!(
        epoch_start > telemetry::clock::unix_nanos(),
        "the new epoch starts in the future: {body}"
    );
    // Every gateway opens the new shard (before the epoch starts).
    for id in [1, 2, 3] {
        wait_for(&format!("g{id} to list three shards"), DEADLINE, || async {
            (spans_per_shard(&c, id).await.ok()?.0.len() == 3).then_some(())
        })
        .await?;
    }
    // Ingest past the new epoch's start, until the new shard holds spans.
    wait_for("spans on the new shard", DEADLINE, || async {
        let (shards, _, _) = spans_per_shard(&c, 1).await.ok()?;
        (shards.get(&2).copied().unwrap_or(0) >= 30).then_some(())
    })
    .await?;
    let mut sent = Vec::new();
    let mut per_agent = Vec::new();
    for s in streams {
        let acked = s.finish().await?;
        per_agent.push(acked.len() * SPANS_PER_TRACE);
        sent.extend(acked);
    }
    wait_agent_acked(&c, &east, per_agent[0]).await?;
    wait_agent_acked(&c, &west, per_agent[1]).await?;

    // Each span lies where the cluster's map routes it: the old epoch's
    // two shards before the new epoch's start, all three after.
    let map = ShardMap::single_epoch(2)?.with_epoch(epoch_start, vec![0, 1, 2])?;
    let mut expected: BTreeMap<ShardId, u64> = (0..3).map(|s| (s, 0)).collect();
    for s in &sent {
        for i in 1..=SPANS_PER_TRACE as u64 {
            *expected.entry(map.route(s.id, s.start + i)).or_default() += 1;
        }
    }
    let after = sent.iter().filter(|s| s.start > epoch_start).count();
    assert!(after >= 10, "{after} traces started in the new epoch");
    let spans_sent = sent.len() * SPANS_PER_TRACE;
    for id in [1, 2, 3] {
        assert_eq!(
            count_by_id(&c, id, &sent).await?,
            spans_sent,
            "by id on g{id}"
        );
        let (shards, total, storage) = spans_per_shard(&c, id).await?;
        assert_eq!(total, spans_sent as u64, "{storage}");
        assert_eq!(shards, expected, "spans per shard on g{id}: {storage}");
    }
    for service in ["before-shard", "after-shard"] {
        let want: BTreeSet<String> = sent
            .iter()
            .filter(|s| s.service == service)
            .map(|s| s.id.to_jaeger_hex())
            .collect();
        assert!(!want.is_empty());
        for id in [1, 2, 3] {
            assert_eq!(search(&c, id, service).await?, want, "{service} on g{id}");
        }
    }
    drop((east, west));
    Ok(())
}

/// Adds the cluster's state to an error.
trait ContextDescribe<T> {
    fn context_describe(self, c: &ProcessCluster) -> anyhow::Result<T>;
}

impl<T> ContextDescribe<T> for anyhow::Result<T> {
    fn context_describe(self, c: &ProcessCluster) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{e:#}\n{}", c.describe()))
    }
}

/// Issue 18: a gateway removed from the cluster refuses its agents at once
/// (FAILED_PRECONDITION with RetryInfo, `reason="removed_node"`); the
/// agent keeps what it acknowledged, and once the gateway is added back
/// every acknowledged span is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_gateway_refuses_its_agents_and_nothing_is_lost() -> anyhow::Result<()> {
    let Some(server) = postgres("a removed gateway") else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let dbs = pg::fresh_databases(&server, 2).await;
    let c = ProcessCluster::start(GATEWAY, dbs, 3).await?;
    let leader = c.wait_leader(&[1, 2, 3], DEADLINE).await?;
    let gone = if leader == 3 { 2 } else { 3 };
    let agent = c.start_agent(AGENT, "east", &[gone]).await?;
    let stream = Stream::start(agent.otlp_grpc, 0xd1, "removed");
    stream.wait_count(20).await?;

    // Its Raft address, to add it back with.
    let (status, members) = c.get_json(leader, "/api/v1/admin/members").await?;
    ensure_ok("GET members", status, &members)?;
    let record = members["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == gone))
        .with_context(|| format!("g{gone} in {members}"))?;
    let raft_addr = record["raft_addr"]
        .as_str()
        .or_else(|| record["member"]["raft_addr"].as_str())
        .with_context(|| format!("raft_addr in {record}"))?
        .to_owned();
    let (status, body) = c
        .request(
            leader,
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/members/{gone}"),
            None,
            DEADLINE,
        )
        .await?;
    ensure_ok("DELETE member", status, &body)?;
    let refused = "meridian_gateway_identity_refused_total{reason=\"removed_node\"}";
    wait_for(
        "the removed gateway to refuse its agent",
        DEADLINE,
        || async { (gateway_metric(&c, gone, refused).await? >= 1.0).then_some(()) },
    )
    .await?;
    // The agent keeps accepting spans meanwhile (its WAL holds them).
    let before = stream.count();
    stream.wait_count(before + 20).await?;

    // Added back: it serves again, and nothing was lost or doubled.
    let body = json!({ "id": gone, "raft_addr": raft_addr });
    let (status, answer) = c
        .request(
            leader,
            reqwest::Method::POST,
            "/api/v1/admin/members",
            Some(&body),
            Duration::from_secs(120),
        )
        .await?;
    ensure_ok("POST member", status, &answer)?;
    let sent = stream.finish().await?;
    let spans = sent.len() * SPANS_PER_TRACE;
    wait_agent_acked(&c, &agent, spans).await?;
    let stored = wait_for("every acknowledged span stored", DEADLINE, || async {
        let n = count_by_id(&c, leader, &sent).await.ok()?;
        (n == spans).then_some(n)
    })
    .await?;
    assert_eq!(stored, spans, "spans acknowledged == spans stored");
    let dropped = agent_metric(&c, &agent, "meridian_agent_spans_dropped_permanent_total").await;
    assert_eq!(dropped.unwrap_or(0.0), 0.0);
    Ok(())
}
