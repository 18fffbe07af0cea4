//! No data loss: `kill -9` of the agent at random points, a 30 s gateway
//! outage while the real OTel SDK keeps sending, and the WAL cap (drop-oldest
//! counted, block answered with retry hints), with exact accounting.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use gateway::Gateway;
use integration_tests::{
    Sandbox,
    process::{AgentProcess, metric},
    wait_for,
};
use model::TraceId;
use mtls::certs::{self, Subject};
use proto::otlp::{self, ExportTraceServiceRequest, Span};

const AGENT: &str = env!("CARGO_BIN_EXE_sut-agent");
const SPANS_PER_TRACE: u8 = 5;

fn trace_request(n: u64, spans: u8, pad: usize) -> ExportTraceServiceRequest {
    let mut trace_id = [0u8; 16];
    trace_id[0] = 0xd0;
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    integration_tests::otlp::request(
        "crash-test",
        (1..=spans)
            .map(|i| Span {
                trace_id: trace_id.to_vec(),
                span_id: vec![i; 8],
                name: format!("op-{i}{}", "x".repeat(pad)),
                start_time_unix_nano: 1_700_000_000_000_000_000 + n,
                end_time_unix_nano: 1_700_000_000_001_000_000 + n,
                ..Default::default()
            })
            .collect(),
    )
}

fn trace_id(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xd0;
    b[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_array(b)
}

fn agent_args(
    sb: &Sandbox,
    cluster: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<Vec<String>> {
    let out = sb.dir.path().join("certs");
    let c = certs::issue(&sb.ca_dir(), &Subject::Cluster(cluster.into()), &out)?;
    let mut args: Vec<String> = [
        "--cluster",
        cluster,
        "--tls-ca",
        &sb.gateway.tls.ca.display().to_string(),
        "--tls-cert",
        &c.cert.display().to_string(),
        "--tls-key",
        &c.key.display().to_string(),
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-http",
        "127.0.0.1:0",
        "--zipkin",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--sampling",
        "127.0.0.1:0",
        "--sampling-grpc",
        "127.0.0.1:0",
        "--buffer-dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--gateway") {
        args.push("--gateway".into());
        args.push(format!(
            "https://127.0.0.1:{}",
            sb.gateway.federation_addr.port()
        ));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Ok(args)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_agent_twenty_times_and_lose_no_acknowledged_span() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    let dir = sb.dir.path().join("agent-crashy");
    let args = agent_args(&sb, "crashy", &dir, &[])?;
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut next = 1u64;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..20 {
        let agent = AgentProcess::start(AGENT, &args)?;
        let mut client =
            otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
        // Four senders stream known traces; the kill lands while they are
        // mid-request, after a random number of acknowledged ones.
        let target = acked.lock().map(|a| a.len()).unwrap_or(0) + 4 + rng.below(40) as usize;
        let start = next;
        next += 10_000;
        let mut senders = Vec::new();
        for s in 0..4u64 {
            let mut c = client.clone();
            let acked = Arc::clone(&acked);
            senders.push(tokio::spawn(async move {
                let mut n = start + s * 2_500;
                while c.export(trace_request(n, SPANS_PER_TRACE, 0)).await.is_ok() {
                    if let Ok(mut a) = acked.lock() {
                        a.push(n);
                    }
                    n += 1;
                }
            }));
        }
        wait_for("acknowledged requests", Duration::from_secs(30), || async {
            (acked.lock().map(|a| a.len()).unwrap_or(0) >= target).then_some(())
        })
        .await?;
        agent.kill9()?;
        for s in senders {
            s.await?;
        }
        let _ = client.export(trace_request(0, 1, 0)).await.unwrap_err();
        assert!(round < 20);
    }
    // A last start drains the WAL to the gateway.
    let agent = AgentProcess::start(AGENT, &args)?;
    let acked: Vec<u64> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(acked.len() >= 20 * 4, "{} acknowledged", acked.len());
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len());
    let store = Arc::clone(&sb.gateway.store);
    wait_for(
        "every acknowledged trace stored",
        Duration::from_secs(60),
        || {
            let store = Arc::clone(&store);
            let acked = acked.clone();
            async move {
                for n in &acked {
                    let t = store.get_trace(trace_id(*n)).await.ok()??;
                    if t.spans.len() != usize::from(SPANS_PER_TRACE) {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await?;
    drop(agent);
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_gateway_outage_loses_nothing() -> anyhow::Result<()> {
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};

    let sb = Sandbox::start(&["outage"]).await?;
    let agent_addr = sb.agent("outage")?.otlp_grpc_addr;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{agent_addr}"))
                .build()?,
        )
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("outage-svc")
                .build(),
        )
        .build();
    let tracer = provider.tracer("durability");
    let mut ids = Vec::new();
    let emit = |ids: &mut Vec<String>| {
        let root = tracer.start("request");
        let cx = opentelemetry::Context::current_with_span(root);
        let mut child = tracer.start_with_context("db", &cx);
        child.end();
        ids.push(cx.span().span_context().trace_id().to_string());
        cx.span().end();
    };
    for _ in 0..20 {
        emit(&mut ids);
    }
    let sb_gateway_port = sb.gateway.federation_addr.port();
    let Sandbox {
        dir,
        gateway,
        agents,
        http,
        stores,
    } = sb;
    gateway.shutdown(Duration::from_secs(5)).await;

    // 30 s without a gateway; the SDK keeps sending every 100 ms.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let outage_end = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < outage_end {
        tick.tick().await;
        emit(&mut ids);
    }
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush()).await??;
    let agent = agents
        .get("outage")
        .ok_or_else(|| anyhow::anyhow!("agent"))?;
    assert!(
        agent.forward_stats.retries() > 0,
        "the agent retried during the outage"
    );
    assert!(agent.buffer.usage().2 > 0, "spans wait in the WAL");

    // The gateway returns on the same address and data directory.
    let mut cfg = Sandbox::gateway_config(dir.path())?;
    cfg.federation = SocketAddr::from(([127, 0, 0, 1], sb_gateway_port));
    let gateway = Gateway::start(cfg).await?;
    let store = Arc::clone(&gateway.store);
    let expected = ids.clone();
    wait_for(
        "every trace stored, each exactly once",
        Duration::from_secs(60),
        || {
            let store = Arc::clone(&store);
            let expected = expected.clone();
            async move {
                for id in &expected {
                    let t = store.get_trace(TraceId::from_hex(id).ok()?).await.ok()??;
                    if t.spans.len() != 2 {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await?;
    assert!(ids.len() >= 300, "{} traces sent", ids.len());
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    let sb = Sandbox {
        dir,
        gateway,
        agents,
        http,
        stores,
    };
    sb.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_cap_drops_oldest_counted_or_blocks_with_retry_hints() -> anyhow::Result<()> {
    let sb = Sandbox::start(&[]).await?;
    // A gateway address where nothing listens: every span stays buffered.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let gw = format!("https://127.0.0.1:{dead}");
    let cap = 2_000_000u64;

    // drop-oldest: accept everything, keep at most cap + one segment, count.
    let dir = sb.dir.path().join("agent-dropper");
    let cap_s = cap.to_string();
    let args = agent_args(
        &sb,
        "dropper",
        &dir,
        &[
            "--gateway",
            &gw,
            "--buffer-max-bytes",
            &cap_s,
            "--buffer-full-policy",
            "drop-oldest",
        ],
    )?;
    let agent = AgentProcess::start(AGENT, &args)?;
    let mut client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
    let rss_before = agent.rss_bytes()?;
    let mut sent_spans = 0u64;
    for n in 0..600u64 {
        client.export(trace_request(n, 50, 200)).await?;
        sent_spans += 50;
    }
    let text = sb
        .http
        .get(format!("http://{}/metrics", agent.admin))
        .send()
        .await?
        .text()
        .await?;
    let dropped = metric(
        &text,
        "meridian_agent_spans_dropped_total{reason=\"buffer_full\"}",
    )
    .unwrap_or(0.0) as u64;
    let appended = metric(&text, "meridian_agent_wal_appended_spans_total").unwrap_or(0.0) as u64;
    let disk = metric(&text, "meridian_agent_buffer_bytes").unwrap_or(f64::MAX) as u64;
    assert_eq!(appended, sent_spans, "every accepted span reached the WAL");
    assert!(
        dropped > 0 && dropped < sent_spans,
        "dropped {dropped} of {sent_spans}"
    );
    assert!(
        disk <= cap + cap / 4 + 20_000,
        "{disk} bytes on disk, cap {cap}"
    );
    let rss = agent.rss_bytes()?;
    assert!(
        rss < rss_before + (64 << 20),
        "memory stays bounded: {rss_before} → {rss} bytes after {sent_spans} spans"
    );
    drop(agent);

    // block: refuse with the OTLP retry signals once full.
    let dir = sb.dir.path().join("agent-blocker");
    let args = agent_args(
        &sb,
        "blocker",
        &dir,
        &["--gateway", &gw, "--buffer-max-bytes", &cap_s],
    )?;
    let agent = AgentProcess::start(AGENT, &args)?;
    let mut client =
        otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc)).await?;
    let mut accepted = 0u64;
    let status = loop {
        match client.export(trace_request(accepted, 50, 200)).await {
            Ok(_) => accepted += 1,
            Err(s) => break s,
        }
        assert!(accepted < 10_000, "never refused");
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    use tonic_types::StatusExt;
    assert!(
        status.get_details_retry_info().is_some(),
        "RetryInfo attached"
    );
    let resp = sb
        .http
        .post(format!("http://{}/v1/traces", agent.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&trace_request(
            99_999, 50, 200,
        )))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    drop(agent);
    sb.shutdown().await;
    Ok(())
}
