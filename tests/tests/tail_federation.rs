//! Cross-cluster tail sampling end to end ("spans stay, decisions travel"),
//! with real agents and gateways over mTLS: every trace crosses three
//! clusters; an error in one cluster keeps the trace whole in all of them,
//! while uninteresting traces are dropped everywhere (both sides counted).
//! Then the worker deciding the traces (the Raft leader: the embedded store
//! has one shard and no leases) is stopped mid-stream in a 3-gateway
//! cluster: another node takes over and no kept trace is left partial
//! (the agents' verdict timeout is above the takeover time, the documented
//! condition).

use std::{net::SocketAddr, time::Duration};

use edge_agent::Agent;
use integration_tests::{Sandbox, process_of, tag, wait_for};
use model::sampling::{HeadConfig, SamplingConfig, TailConfig, TailPolicy, TailRule};
use proto::otlp::{ExportTraceServiceRequest, Span, Status, TraceServiceClient, string_kv};
use serde_json::Value;

const CLUSTERS: [&str; 3] = ["a", "b", "c"];
/// Spans each cluster holds of each trace.
const SPANS_PER_CLUSTER: usize = 2;
const DEADLINE: Duration = Duration::from_secs(60);

/// Keep traces with an error; nothing else (a short local window).
fn errors_only() -> SamplingConfig {
    SamplingConfig {
        head: HeadConfig::default(),
        tail: Some(TailConfig {
            decision_wait_ms: 300,
            max_traces: 10_000,
            max_bytes: 64 << 20,
            policies: vec![TailPolicy {
                name: "errors".into(),
                rule: TailRule::StatusCode {
                    status_codes: vec!["ERROR".into()],
                },
            }],
        }),
    }
}

fn trace_id(n: u32) -> [u8; 16] {
    let mut id = [0x7eu8; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

/// Trace `n` has an error, in cluster c only, when `n % 4 == 0`.
fn has_error(n: u32) -> bool {
    n.is_multiple_of(4)
}

/// One cluster's spans of traces `ns`.
fn request(cluster_index: usize, ns: &[u32]) -> ExportTraceServiceRequest {
    let start = 1_700_000_000_000_000_000u64;
    let mut spans = Vec::new();
    for &n in ns {
        for k in 0..SPANS_PER_CLUSTER {
            let error = cluster_index == 2 && k == 1 && has_error(n);
            spans.push(Span {
                trace_id: trace_id(n).to_vec(),
                span_id: vec![0, 0, 0, 1, cluster_index as u8 + 1, 0, k as u8 + 1, 7],
                name: format!("op-{k}"),
                kind: 2,
                start_time_unix_nano: start + u64::from(n) * 1_000_000,
                end_time_unix_nano: start + u64::from(n) * 1_000_000 + 500_000,
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            });
        }
    }
    integration_tests::otlp::request_with(
        vec![string_kv(
            "service.name",
            &format!("svc-{}", CLUSTERS[cluster_index]),
        )],
        spans,
    )
}

async fn send(agent: &Agent, req: ExportTraceServiceRequest) -> anyhow::Result<()> {
    let mut c = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    c.export(req).await?;
    Ok(())
}

/// Sends traces `ns` through all three agents (every trace crosses them).
async fn send_all(agents: &[&Agent], ns: &[u32]) -> anyhow::Result<()> {
    for (i, agent) in agents.iter().enumerate() {
        send(agent, request(i, ns)).await?;
    }
    Ok(())
}

async fn get_json(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, Value)> {
    let resp = http.get(format!("http://{addr}{path}")).send().await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

/// The trace as the gateway serves it (`Null` when not found).
async fn stored(http: &reqwest::Client, addr: SocketAddr, n: u32) -> anyhow::Result<Value> {
    let (status, body) = get_json(
        http,
        addr,
        &format!("/api/traces/{}", hex::encode(trace_id(n))),
    )
    .await?;
    Ok(if status == 404 {
        Value::Null
    } else {
        body["data"][0].clone()
    })
}

fn span_count(trace: &Value) -> usize {
    trace["spans"].as_array().map_or(0, Vec::len)
}

/// Waits until `agent` decided every one of `traces` traces and the
/// gateway acknowledged every kept span.
async fn wait_settled(agent: &Agent, traces: u64, kept_spans: u64) -> anyhow::Result<()> {
    let s = &agent.sampling_stats;
    let v = &agent.verdict_stats;
    let described = || {
        format!(
            "kept {} dropped {} awaiting {} acked {} keep/gw {} drop/gw {} timeouts {} sent {} connected {}",
            s.tail_traces_kept.get(),
            s.tail_traces_dropped.get(),
            v.awaiting(),
            agent.forward_stats.acked_spans(),
            v.verdicts("keep", "gateway"),
            v.verdicts("drop", "gateway"),
            v.timeouts(),
            v.digests_sent(),
            v.is_connected(),
        )
    };
    let r = wait_for(
        &format!("{traces} traces decided and {kept_spans} spans acknowledged"),
        DEADLINE,
        || async {
            let s = &agent.sampling_stats;
            let decided = s.tail_traces_kept.get() + s.tail_traces_dropped.get();
            (decided == traces
                && agent.verdict_stats.awaiting() == 0
                && agent.forward_stats.acked_spans() == kept_spans)
                .then_some(())
        },
    )
    .await;
    r.map_err(|e| e.context(described()))
}

async fn start_agents(
    sb: &mut Sandbox,
    gateways: [SocketAddr; 3],
    timeout: Duration,
) -> anyhow::Result<()> {
    for (c, gw) in CLUSTERS.iter().zip(gateways) {
        let mut cfg = sb.agent_config(c, c)?;
        cfg.sampling = errors_only();
        cfg.gateways = vec![format!("https://{gw}")];
        cfg.tail_verdicts = Some(timeout);
        let agent = Agent::start(cfg).await?;
        sb.agents.insert((*c).into(), agent);
    }
    for c in CLUSTERS {
        let agent = sb.agent(c)?;
        wait_for("the agent's decision stream", DEADLINE, || async {
            agent.verdict_stats.is_connected().then_some(())
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_one_cluster_keeps_the_trace_whole_in_every_cluster() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let gw = sb.gateway.federation_addr;
    start_agents(&mut sb, [gw, gw, gw], Duration::from_secs(10)).await?;
    let agents: Vec<&Agent> = CLUSTERS
        .iter()
        .map(|c| sb.agent(c))
        .collect::<Result<_, _>>()?;
    let ns: Vec<u32> = (1..=40).collect();
    let errors = ns.iter().filter(|n| has_error(**n)).count() as u64;
    let plain = ns.len() as u64 - errors;
    send_all(&agents, &ns).await?;
    let kept_spans = errors * SPANS_PER_CLUSTER as u64;
    for agent in &agents {
        wait_settled(agent, ns.len() as u64, kept_spans).await?;
    }

    // Agent side, per cluster: the same traces kept and dropped.
    for (i, agent) in agents.iter().enumerate() {
        let s = &agent.sampling_stats;
        let v = &agent.verdict_stats;
        assert_eq!(s.tail_traces_kept.get(), errors, "cluster {}", CLUSTERS[i]);
        assert_eq!(
            s.tail_traces_dropped.get(),
            plain,
            "cluster {}",
            CLUSTERS[i]
        );
        assert_eq!(s.tail_kept.get(), kept_spans);
        assert_eq!(s.tail_sampled_out.get(), plain * SPANS_PER_CLUSTER as u64);
        // Kept by the gateway's verdict in a and b; by its own policy in c.
        let remote_keeps = if i == 2 { 0 } else { errors };
        assert_eq!(
            v.verdicts("keep", "gateway"),
            remote_keeps,
            "cluster {}",
            CLUSTERS[i]
        );
        assert_eq!(
            v.verdicts("drop", "gateway"),
            plain,
            "cluster {}",
            CLUSTERS[i]
        );
        assert_eq!(v.timeouts(), 0, "no verdict came late");
        assert_eq!(v.digests_sent(), ns.len() as u64);
        assert_eq!(
            v.digests_dropped("queue_full") + v.digests_dropped("stream_full"),
            0
        );
    }
    // Gateway side: one decision per trace, every stored trace whole.
    let tm = &sb.gateway.tail_metrics;
    assert_eq!(tm.decisions("keep"), errors);
    assert_eq!(tm.decisions("drop"), plain);
    assert_eq!(tm.digest_count("relayed"), 3 * ns.len() as u64);
    let addr = sb.gateway.http_addr;
    for &n in &ns {
        let trace = stored(&sb.http, addr, n).await?;
        if has_error(n) {
            assert_eq!(
                span_count(&trace),
                3 * SPANS_PER_CLUSTER,
                "trace {n} is whole"
            );
            // a's spans name the policy that kept the trace in c.
            let span = trace["spans"]
                .as_array()
                .and_then(|s| {
                    s.iter()
                        .find(|s| process_of(&trace, s).is_ok_and(|p| p["serviceName"] == "svc-a"))
                })
                .ok_or_else(|| anyhow::anyhow!("no span of a in trace {n}"))?;
            let process = process_of(&trace, span)?;
            assert_eq!(
                tag(&process["tags"], "meridian.sampling.policy"),
                Some(&Value::from("errors@c"))
            );
        } else {
            assert_eq!(trace, Value::Null, "trace {n} was dropped everywhere");
        }
    }
    assert_eq!(sb.gateway.metrics.spans_stored(), 3 * kept_spans);
    let bytes = agents
        .iter()
        .map(|a| a.verdict_stats.digest_bytes())
        .sum::<u64>();
    let digests = agents
        .iter()
        .map(|a| a.verdict_stats.digests_sent())
        .sum::<u64>();
    eprintln!(
        "digest bytes per trace per cluster on the wire: {:.1} ({bytes} bytes, {digests} digests)",
        bytes as f64 / digests as f64
    );
    assert!(bytes / digests < 200, "digests stay compact");
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_stops_mid_stream_and_another_gateway_decides() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let g2 = sb.start_peer_gateway("2").await?;
    let g3 = sb.start_peer_gateway("3").await?;
    // Each cluster talks to another gateway; c to the one that will stop.
    let leader = sb.gateway.plane.id();
    wait_for("node 1 to lead", DEADLINE, || async {
        (g2.plane.status().leader_id == Some(leader) && g3.plane.status().leader_id == Some(leader))
            .then_some(())
    })
    .await?;
    let g1_addr = sb.gateway.federation_addr;
    start_agents(
        &mut sb,
        [g2.federation_addr, g3.federation_addr, g1_addr],
        Duration::from_secs(20),
    )
    .await?;
    let Sandbox {
        dir,
        gateway: g1,
        agents,
        http,
        ..
    } = sb;
    let mut g1 = Some(g1);
    let all: Vec<&Agent> = CLUSTERS.iter().filter_map(|c| agents.get(*c)).collect();
    let mut ns: Vec<u32> = Vec::new();
    let mut next = 1u32;
    let mut stopped = None;
    for wave in 0..24 {
        let batch: Vec<u32> = (next..next + 10).collect();
        next += 10;
        send_all(&all, &batch).await?;
        ns.extend(&batch);
        if wave == 8
            && let Some(g1) = g1.take()
        {
            // The worker stops with traces open in its windows.
            stopped = Some(tokio::spawn(g1.shutdown(Duration::from_secs(5))));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    if let Some(s) = stopped {
        s.await?;
    }
    let errors = ns.iter().filter(|n| has_error(**n)).count() as u64;
    let kept_spans = errors * SPANS_PER_CLUSTER as u64;
    let mut settled = Ok(());
    for agent in &all {
        if let Err(e) = wait_settled(agent, ns.len() as u64, kept_spans).await {
            settled = Err(e);
        }
    }
    if settled.is_err() {
        for &n in ns.iter().filter(|n| has_error(**n)) {
            let count = span_count(&stored(&http, g2.http_addr, n).await?);
            if count != 3 * SPANS_PER_CLUSTER {
                eprintln!("partial trace {n} (wave {}): {count} spans", (n - 1) / 10);
            }
        }
        eprintln!(
            "g2 {:?} g3 {:?}",
            (
                g2.tail_metrics.decisions("keep"),
                g2.tail_metrics.decisions("drop"),
                g2.tail_metrics.retries(),
                g2.tail_metrics.digest_count("refused")
            ),
            (
                g3.tail_metrics.decisions("keep"),
                g3.tail_metrics.decisions("drop"),
                g3.tail_metrics.retries(),
                g3.tail_metrics.digest_count("refused")
            )
        );
    }
    settled?;
    // Someone else decides now.
    let new_leader = g2.plane.status().leader_id;
    assert!(
        new_leader.is_some() && new_leader != Some(leader),
        "{new_leader:?}"
    );
    let decided_after = g2.tail_metrics.decisions("keep")
        + g2.tail_metrics.decisions("drop")
        + g3.tail_metrics.decisions("keep")
        + g3.tail_metrics.decisions("drop");
    assert!(decided_after > 0, "the new worker made decisions");
    for (i, agent) in all.iter().enumerate() {
        assert_eq!(
            agent.sampling_stats.tail_traces_kept.get(),
            errors,
            "cluster {}",
            CLUSTERS[i]
        );
        assert_eq!(
            agent.verdict_stats.timeouts(),
            0,
            "cluster {}: a verdict timed out",
            CLUSTERS[i]
        );
    }
    let mut whole = 0;
    for &n in &ns {
        let trace = stored(&http, g2.http_addr, n).await?;
        let count = span_count(&trace);
        if has_error(n) {
            assert_eq!(count, 3 * SPANS_PER_CLUSTER, "kept trace {n} is whole");
            whole += 1;
        } else {
            assert_eq!(count, 0, "trace {n} was dropped everywhere");
        }
    }
    assert_eq!(whole, errors);
    for (_, agent) in agents {
        agent.shutdown(Duration::from_secs(5)).await;
    }
    g2.shutdown(Duration::from_secs(5)).await;
    g3.shutdown(Duration::from_secs(5)).await;
    drop(dir);
    Ok(())
}

/// A cluster whose verdict does not come in time drops its spans for good
/// and says so: cluster a waits only 300 ms, cluster c keeps the trace
/// (an error) 700 ms after the others saw it, within the gateway's 1 s
/// window. The trace is stored from b and c, and its summary names a as
/// having dropped its spans (`verdict_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_timed_out_is_named_in_the_summary() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let gw = sb.gateway.federation_addr;
    for (c, timeout) in [("a", 300u64), ("b", 20_000), ("c", 20_000)] {
        let mut cfg = sb.agent_config(c, c)?;
        cfg.sampling = errors_only();
        cfg.gateways = vec![format!("https://{gw}")];
        cfg.tail_verdicts = Some(Duration::from_millis(timeout));
        let agent = Agent::start(cfg).await?;
        sb.agents.insert(c.into(), agent);
    }
    for c in CLUSTERS {
        let agent = sb.agent(c)?;
        wait_for("the agent's decision stream", DEADLINE, || async {
            agent.verdict_stats.is_connected().then_some(())
        })
        .await?;
    }
    let n = 4; // has_error(4): cluster c's second span fails
    assert!(has_error(n));
    send(sb.agent("a")?, request(0, &[n])).await?;
    send(sb.agent("b")?, request(1, &[n])).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    send(sb.agent("c")?, request(2, &[n])).await?;

    let id: String = trace_id(n).iter().map(|b| format!("{b:02x}")).collect();
    let summary = wait_for("the summary naming cluster a", DEADLINE, || async {
        let (status, s) = sb
            .get_json(&format!("/api/v1/traces/{id}/summary"))
            .await
            .ok()?;
        (status == 200 && s["dropped"].as_array().is_some_and(|d| !d.is_empty())).then_some(s)
    })
    .await?;
    assert_eq!(
        summary["dropped"],
        serde_json::json!([{"cluster": "a", "reason": "verdict_timeout", "spans": SPANS_PER_CLUSTER}])
    );
    assert_eq!(summary["clusters"], serde_json::json!(["b", "c"]));
    assert_eq!(sb.agent("a")?.verdict_stats.timeouts(), 1);
    sb.shutdown().await;
    Ok(())
}
