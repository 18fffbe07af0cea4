//! Sampling end to end with real agents and the real gateway: consistent
//! head sampling across two clusters, tail policies naming the kept traces,
//! late spans, Jaeger remote sampling, the RED tap, and `--export-otlp`.

use std::time::Duration;

use anyhow::Context as _;
use edge_agent::Agent;
use integration_tests::{Sandbox, process_of, tag, wait_for};
use model::sampling::{HeadConfig, HeadRule, SamplingConfig, TailConfig, TailPolicy, TailRule};
use proto::otlp::{ExportTraceServiceRequest, Span, Status, TraceServiceClient};

fn span(trace: [u8; 16], id: u8, name: &str, dur_ms: u64, error: bool) -> Span {
    let start = 1_700_000_000_000_000_000u64;
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 1, id],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur_ms * 1_000_000,
        status: Some(Status {
            code: if error { 2 } else { 0 },
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    integration_tests::otlp::request(service, spans)
}

async fn send(agent: &Agent, req: ExportTraceServiceRequest) -> anyhow::Result<()> {
    let mut c = TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr)).await?;
    c.export(req).await?;
    Ok(())
}

/// Number of spans the gateway returns for a trace (0 when not found).
async fn stored(sb: &Sandbox, trace: &[u8; 16]) -> anyhow::Result<usize> {
    let (status, body) = sb
        .get_json(&format!("/api/traces/{}", hex::encode(trace)))
        .await?;
    if status == 404 {
        return Ok(0);
    }
    Ok(body["data"][0]["spans"].as_array().map_or(0, Vec::len))
}

async fn wait_acked(agent: &Agent, spans: u64) -> anyhow::Result<()> {
    wait_for(
        &format!("{spans} spans acknowledged"),
        Duration::from_secs(30),
        || async { (agent.forward_stats.acked_spans() == spans).then_some(()) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_sampling_is_consistent_across_clusters() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(&[]).await?;
    let policy = SamplingConfig {
        head: HeadConfig {
            default_probability: 1.0,
            rules: vec![HeadRule {
                cluster: None,
                service: Some("checkout".into()),
                operation: None,
                probability: Some(0.3),
                max_traces_per_second: None,
            }],
        },
        tail: None,
    };
    for c in ["east", "west"] {
        let mut cfg = sb.agent_config(c, c)?;
        cfg.sampling = policy.clone();
        let agent = Agent::start(cfg).await?;
        sb.agents.insert(c.into(), agent);
    }
    let traces: Vec<[u8; 16]> = (0..300).map(|_| rand_id()).collect();
    // Each trace has one span in each cluster (the checkout service runs in
    // both), sent in batches of 50.
    for (c, id) in [("east", 1u8), ("west", 2u8)] {
        for chunk in traces.chunks(50) {
            let spans = chunk
                .iter()
                .map(|t| span(*t, id, "pay", 5, false))
                .collect();
            send(sb.agent(c)?, request("checkout", spans)).await?;
        }
    }
    let east = sb.agent("east")?;
    let west = sb.agent("west")?;
    let dropped_east = east.sampling_stats.head_sampled_out.get();
    let dropped_west = west.sampling_stats.head_sampled_out.get();
    assert_eq!(
        dropped_east, dropped_west,
        "both clusters drop the same count"
    );
    let kept = 300 - dropped_east;
    assert!((60..=120).contains(&kept), "kept {kept} of 300 at p=0.3");
    wait_acked(east, kept).await?;
    wait_acked(west, kept).await?;
    let mut both = 0;
    for t in &traces {
        match stored(&sb, t).await? {
            0 => {}
            2 => both += 1,
            n => anyhow::bail!("trace {} has {n} spans: clusters disagreed", hex::encode(t)),
        }
    }
    assert_eq!(both, kept, "every kept trace is complete");
    // The adjusted count stays unbiased: each kept span stands for 1/p.
    let adjusted = east.sampling_stats.head_adjusted.get();
    assert!(
        (adjusted - kept as f64 / 0.3).abs() < 1e-6 * adjusted,
        "adjusted {adjusted} for {kept} kept"
    );
    // The RED tap counted every span, before sampling.
    let metrics = sb
        .http
        .get(format!("http://{}/metrics", east.admin_addr))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(
            "meridian_spans_total{service=\"checkout\",operation=\"pay\",span_kind=\"server\",status_code=\"UNSET\"} 300"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "meridian_agent_spans_head_sampled_out_total {dropped_east}"
        )),
        "{metrics}"
    );
    // Remote sampling answers in Jaeger's format from the same policy.
    let url = |q: &str| format!("http://{}/sampling{q}", east.sampling_addr);
    let body: serde_json::Value = sb
        .http
        .get(url("?service=checkout"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        body,
        serde_json::json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.3}})
    );
    let body: serde_json::Value = sb
        .http
        .get(url("?service=other"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["probabilisticSampling"]["samplingRate"], 1.0);
    assert_eq!(sb.http.get(url("")).send().await?.status().as_u16(), 400);
    sb.shutdown().await;
    Ok(())
}

fn rand_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    for b in &mut id {
        *b = rand_byte();
    }
    id
}

fn rand_byte() -> u8 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    // xorshift: deterministic across runs, spread over the id space.
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 32) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_policies_keep_and_name_whole_traces() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let mut cfg = sb.agent_config("east", "east")?;
    cfg.sampling.tail = Some(TailConfig {
        decision_wait_ms: 300,
        max_traces: 10_000,
        max_bytes: 16 << 20,
        policies: vec![
            TailPolicy {
                name: "errors".into(),
                rule: TailRule::StatusCode {
                    status_codes: vec!["ERROR".into()],
                },
            },
            TailPolicy {
                name: "slow".into(),
                rule: TailRule::Latency { threshold_ms: 500 },
            },
        ],
    });
    let agent = Agent::start(cfg).await?;
    let traces: Vec<[u8; 16]> = (0..20).map(|_| rand_id()).collect();
    // Three spans per trace in two requests (two services); trace i%4==0 has
    // an error in the second request, i%4==1 is slow.
    let first = traces
        .iter()
        .flat_map(|t| [span(*t, 1, "a", 10, false), span(*t, 2, "b", 10, false)])
        .collect();
    send(&agent, request("front", first)).await?;
    let second = traces
        .iter()
        .enumerate()
        .map(|(i, t)| span(*t, 3, "c", if i % 4 == 1 { 800 } else { 10 }, i % 4 == 0))
        .collect();
    send(&agent, request("back", second)).await?;
    wait_for("every trace decided", Duration::from_secs(20), || async {
        let s = &agent.sampling_stats;
        (s.tail_traces_kept.get() + s.tail_traces_dropped.get() == 20).then_some(())
    })
    .await?;
    assert_eq!(agent.sampling_stats.tail_traces_kept.get(), 10);
    wait_acked(&agent, 30).await?;
    for (i, t) in traces.iter().enumerate() {
        let want = match i % 4 {
            0 => Some("errors"),
            1 => Some("slow"),
            _ => None,
        };
        let n = stored(&sb, t).await?;
        let Some(policy) = want else {
            assert_eq!(n, 0, "trace {i} matched no policy");
            continue;
        };
        assert_eq!(n, 3, "trace {i}: the whole trace is kept");
        let trace = sb.wait_for_trace(&hex::encode(t), 3).await?;
        for s in trace["spans"].as_array().context("spans")? {
            let process = process_of(&trace, s)?;
            assert_eq!(
                tag(&process["tags"], "meridian.sampling.policy"),
                Some(&serde_json::json!(policy)),
                "trace {i}: {process}"
            );
        }
    }
    // Late spans follow the cached decision: a kept trace grows, a dropped
    // one stays absent.
    send(
        &agent,
        request(
            "late",
            vec![
                span(traces[0], 9, "late", 1, false),
                span(traces[2], 9, "late", 1, false),
            ],
        ),
    )
    .await?;
    wait_acked(&agent, 31).await?;
    sb.wait_for_trace(&hex::encode(traces[0]), 4).await?;
    assert_eq!(stored(&sb, &traces[2]).await?, 0);
    assert_eq!(agent.sampling_stats.tail_sampled_out.get(), 31);
    agent.shutdown(Duration::from_secs(5)).await;
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_otlp_without_a_gateway_is_a_plain_forwarder() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let mut cfg = sb.agent_config("east", "east")?;
    cfg.gateways.clear();
    cfg.tls = None;
    // The gateway's plain OTLP port is a real OTLP endpoint.
    cfg.export_otlp = Some(format!("http://{}", sb.gateway.otlp_grpc_addr));
    let agent = Agent::start(cfg).await?;
    let traces: Vec<[u8; 16]> = (0..10).map(|_| rand_id()).collect();
    for chunk in traces.chunks(5) {
        let spans = chunk
            .iter()
            .flat_map(|t| [span(*t, 1, "x", 1, false), span(*t, 2, "y", 1, false)])
            .collect();
        send(&agent, request("plain", spans)).await?;
    }
    wait_for("export acked", Duration::from_secs(20), || async {
        (agent.export_stats.acked_spans() == 20).then_some(())
    })
    .await?;
    assert_eq!(
        agent.forward_stats.acked_spans(),
        0,
        "no gateway configured"
    );
    for t in &traces {
        assert_eq!(stored(&sb, t).await?, 2);
    }
    assert_eq!(agent.buffer.usage().0, 0, "released after the export ack");
    agent.shutdown(Duration::from_secs(5)).await;
    sb.shutdown().await;
    Ok(())
}
