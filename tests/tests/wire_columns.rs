//! The columnar wire encoding (issue 20, P8) between real processes over
//! real mTLS: the agent's first batch is plain zstd, the gateway's answer
//! announces `COMPRESSION_OTLP_COLUMNS_ZSTD`, the following batches use it,
//! and every span of the benchmark corpus is stored exactly once (exact
//! accounting: spans acknowledged by the agent == spans sent == spans
//! stored).

use std::time::Duration;

use integration_tests::{
    cluster::ProcessCluster,
    process::{AgentProcess, metric},
    wait_for,
};
use model::TraceId;
use proto::otlp::{self, ExportTraceServiceRequest};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const DEADLINE: Duration = Duration::from_secs(30);
const SPANS: usize = 64;

async fn agent_metric(c: &ProcessCluster, agent: &AgentProcess, name: &str) -> f64 {
    let url = format!("http://{}/metrics", agent.admin);
    match c.http.get(url).send().await {
        Ok(r) => r
            .text()
            .await
            .ok()
            .and_then(|t| metric(&t, name))
            .unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// A request of the benchmark corpus with its times moved to now (the
/// deltas the encoding codes stay as generated).
fn request(g: &mut proto::corpus::Generator, now: u64) -> ExportTraceServiceRequest {
    let mut req = g.request(SPANS);
    for s in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
    {
        for span in &mut s.spans {
            let shift = now - 1_700_000_000_000_000_000;
            span.start_time_unix_nano += shift;
            span.end_time_unix_nano += shift;
        }
    }
    req
}

fn trace_ids(req: &ExportTraceServiceRequest) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter_map(|s| TraceId::from_bytes(&s.trace_id).ok())
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_crosses_in_the_columnar_encoding_and_every_span_is_stored_once()
-> anyhow::Result<()> {
    let db = tempfile::tempdir()?;
    let store = format!("sqlite://{}", db.path().join("meridian.db").display());
    let mut c = ProcessCluster::new(GATEWAY, vec![store])?;
    c.start_node_with(1, None, &[]).await?;
    c.wait_leader(&[1], DEADLINE).await?;
    let agent = c.start_agent(AGENT, "east", &[1]).await?;
    let mut client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
    let mut g = proto::corpus::Generator::new(0x2545_f491_4f6c_dd1d);
    let now = telemetry::clock::unix_nanos();
    let mut ids = Vec::new();
    let mut sent = 0;
    // One batch first (plain zstd, the gateway's answer announces the
    // encoding), then the rest.
    for round in [1usize, 9] {
        for _ in 0..round {
            let req = request(&mut g, now);
            ids.extend(trace_ids(&req));
            client.export(req).await?;
            sent += SPANS;
        }
        wait_for("the agent's acknowledgements", DEADLINE, || async {
            let acked = agent_metric(&c, &agent, "meridian_agent_spans_acked_total").await;
            (acked as usize >= sent).then_some(())
        })
        .await?;
    }
    let acked = agent_metric(&c, &agent, "meridian_agent_spans_acked_total").await;
    assert_eq!(acked as usize, sent, "acknowledged exactly what was sent");
    let columnar = agent_metric(&c, &agent, "meridian_agent_forward_columnar_batches_total").await;
    assert!(columnar >= 1.0, "no batch used the columnar encoding");
    let rejected = agent_metric(
        &c,
        &agent,
        "meridian_agent_spans_rejected_by_destination_total",
    )
    .await;
    assert_eq!(rejected, 0.0);
    // Every span stored once, with its ids and times as sent.
    let mut stored = 0;
    for id in &ids {
        let (status, body) = c
            .get_json(1, &format!("/api/traces/{}", id.to_jaeger_hex()))
            .await?;
        assert_eq!(status, 200, "trace {id:?} missing");
        stored += body["data"][0]["spans"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(stored, sent, "stored exactly the spans sent");
    Ok(())
}
