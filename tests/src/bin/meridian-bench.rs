//! Throughput bench for the foundation path, in one process:
//! load generator → agent (OTLP gRPC) → mTLS federation → gateway → SQLite.
//!
//! `cargo run --release -p integration-tests --bin meridian-bench -- [SPANS] [KEEP_DIR]`
//!
//! Prints spans/s end to end (until the gateway counted every span stored)
//! and spans/s of direct `SpanStore::write` calls into SQLite, plus the
//! process CPU time used, so figures can be compared per CPU-second.

#![allow(clippy::print_stdout)] // a bench tool reports on stdout

use std::time::{Duration, Instant};

use integration_tests::{Sandbox, wait_for};
use prost::Message;
use proto::otlp::{self, AnyValue, ExportTraceServiceRequest, KeyValue, Span, any_value::Value};

const SPANS_PER_REQUEST: usize = 512;
const SPANS_PER_TRACE: usize = 10;

use integration_tests::cpu_seconds;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// ≈ 264-byte spans: 10 services, 10 attributes, 10 spans per trace.
fn corpus(requests: usize, seed: u64) -> Vec<ExportTraceServiceRequest> {
    let now = 1_700_000_000_000_000_000u64;
    let mut n = seed;
    (0..requests)
        .map(|r| {
            let service = format!("svc-{}", r % 10);
            let spans = (0..SPANS_PER_REQUEST)
                .map(|i| {
                    n += 1;
                    let trace = (n / SPANS_PER_TRACE as u64) + 1;
                    let mut trace_id = [0u8; 16];
                    trace_id[..8].copy_from_slice(&seed.to_be_bytes());
                    trace_id[8..].copy_from_slice(&trace.to_be_bytes());
                    Span {
                        trace_id: trace_id.to_vec(),
                        span_id: (n | 1 << 63).to_be_bytes().to_vec(),
                        name: format!("op-{}", i % 20),
                        kind: 2,
                        start_time_unix_nano: now + n * 1000,
                        end_time_unix_nano: now + n * 1000 + 1_500_000,
                        attributes: (0..10)
                            .map(|a| kv(&format!("attr.{a}"), "value-x"))
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect();
            integration_tests::otlp::request_with(vec![kv("service.name", &service)], spans)
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let requests = total.div_ceil(SPANS_PER_REQUEST);
    let total = requests * SPANS_PER_REQUEST;
    let reqs = corpus(requests, 1);
    let avg = reqs[0].encoded_len() / SPANS_PER_REQUEST;
    eprintln!("corpus: {requests} requests × {SPANS_PER_REQUEST} spans, ≈{avg} B/span encoded");

    // End to end.
    let sb = Sandbox::start(&["bench"]).await?;
    let agent = sb.agent("bench")?;
    let client = otlp::TraceServiceClient::connect(format!("http://{}", agent.otlp_grpc_addr))
        .await?
        .max_encoding_message_size(64 << 20);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let chunks: Vec<Vec<ExportTraceServiceRequest>> = reqs
        .chunks(requests.div_ceil(4))
        .map(<[_]>::to_vec)
        .collect();
    for chunk in chunks {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            for r in chunk {
                loop {
                    match c.export(r.clone()).await {
                        Ok(_) => break,
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(s) => return Err(anyhow::anyhow!("export failed: {s}")),
                    }
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let accepted = t0.elapsed();
    wait_for("every span stored", Duration::from_secs(600), || async {
        (sb.gateway.metrics.spans_stored() >= total as u64).then_some(())
    })
    .await?;
    let elapsed = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "e2e agent→mTLS→gateway→sqlite: {total} spans in {:.2}s = {:.0} spans/s ({:.0} spans per CPU-second; agent accepted all in {:.2}s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / cpu.max(1e-9),
        accepted.as_secs_f64()
    );
    sb.shutdown().await;

    // Direct store writes (the ceiling of the path above).
    // A second argument keeps the direct-write database in that directory
    // (to inspect where the bytes go, e.g. with sqlite3's dbstat).
    let dir = tempfile::tempdir()?;
    let db_dir = std::env::args()
        .nth(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let store = store::open(
        &[format!("sqlite://{}", db_dir.join("b.db").display())],
        &store::StoreOptions::default(),
    )
    .await?;
    let cluster = model::ClusterId::new("bench")?;
    let spans: Vec<Vec<model::Span>> = corpus(requests, 2)
        .iter()
        .map(|r| proto::convert::to_model(r, &cluster))
        .collect();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for batch in spans.chunks(8) {
        let flat: Vec<model::Span> = batch.iter().flatten().cloned().collect();
        store.write(&flat).await?;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "direct SpanStore::write (sqlite, 4096-span batches): {total} spans in {:.2}s = {:.0} spans/s ({:.0} spans per CPU-second)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / cpu.max(1e-9)
    );
    let size: u64 = std::fs::read_dir(&db_dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "sqlite files: {:.1} bytes per span",
        size as f64 / total as f64
    );
    Ok(())
}
