//! Cross-cluster visibility benchmark (BENCHMARKS.md, "Federation"): how
//! long after the last span of a trace crossing three clusters is sent the
//! gateway shows the trace complete, and its stitched summary.
//!
//! In one process: a gateway and three agents (clusters a, b, c) over real
//! mTLS, the embedded store (or `--postgres URL,URL` shards). Each trace's
//! spans go to the three agents (one request per cluster, sent
//! concurrently); the clock starts when the last agent acknowledged its
//! request and stops when `GET /api/traces/{id}` returns all 5 spans
//! (polled every 5 ms), then when `GET /api/v1/traces/{id}/summary` shows
//! all 5 spans stitched (every 10th trace). No tail sampling: the agents
//! keep every trace locally, so no decision window is included.
//!
//! ```text
//! meridian-federation-bench [--traces 300] [--postgres URL,URL]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::Sandbox;
use proto::otlp::{ExportTraceServiceRequest, Span, TraceServiceClient};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn requests(i: u64, t: u64) -> (String, Vec<(&'static str, ExportTraceServiceRequest)>) {
    let mut tid = [0xb5u8; 16];
    tid[8..].copy_from_slice(&(i + 1).to_be_bytes());
    let sid = |n: u8| {
        let mut b = [0u8; 8];
        b[..7].copy_from_slice(&(i + 1).to_be_bytes()[1..]);
        b[7] = n;
        b.to_vec()
    };
    let ms = 1_000_000;
    let span = |n: u8, parent: Option<u8>, kind: i32, s: u64, e: u64| Span {
        trace_id: tid.to_vec(),
        span_id: sid(n),
        parent_span_id: parent.map(sid).unwrap_or_default(),
        name: format!("op-{n}"),
        kind,
        start_time_unix_nano: t + s * ms,
        end_time_unix_nano: t + e * ms,
        ..Default::default()
    };
    let req = |service: &str, spans: Vec<Span>| integration_tests::otlp::request(service, spans);
    let hex: String = tid.iter().map(|b| format!("{b:02x}")).collect();
    (
        hex,
        vec![
            (
                "a",
                req(
                    "web",
                    vec![span(1, None, 2, 0, 100), span(2, Some(1), 3, 5, 95)],
                ),
            ),
            (
                "b",
                req(
                    "api",
                    vec![span(3, Some(2), 2, 7, 93), span(4, Some(3), 3, 20, 80)],
                ),
            ),
            ("c", req("db", vec![span(5, Some(4), 2, 22, 78)])),
        ],
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let traces: u64 = arg("--traces").and_then(|v| v.parse().ok()).unwrap_or(300);
    let postgres = arg("--postgres");
    let sb = Sandbox::start_with(&["a", "b", "c"], |cfg| {
        if let Some(urls) = &postgres {
            cfg.stores = urls.split(',').map(str::to_owned).collect();
        }
    })
    .await?;
    let mut clients = std::collections::BTreeMap::new();
    for c in ["a", "b", "c"] {
        let addr = sb.agent(c)?.otlp_grpc_addr;
        clients.insert(
            c,
            TraceServiceClient::connect(format!("http://{addr}")).await?,
        );
    }
    let mut visible = Vec::new();
    let mut stitched = Vec::new();
    for i in 0..traces {
        let t = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())?;
        let (id, reqs) = requests(i, t);
        let sends = reqs.into_iter().map(|(c, r)| {
            let mut client = clients.get(c).cloned();
            async move {
                match client.as_mut() {
                    Some(cl) => cl.export(r).await.map(|_| ()).map_err(anyhow::Error::from),
                    None => Err(anyhow::anyhow!("no client")),
                }
            }
        });
        for r in futures::future::join_all(sends).await {
            r?;
        }
        let sent = Instant::now();
        let path = format!("/api/traces/{id}");
        loop {
            let (_, body) = sb.get_json(&path).await?;
            if body["data"][0]["spans"].as_array().map_or(0, Vec::len) == 5 {
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < Duration::from_secs(30),
                "trace {id} never complete"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        visible.push(sent.elapsed());
        // The summary waits for the worker's next flush (every 2 s): only
        // every 10th trace is timed to it.
        if !i.is_multiple_of(10) {
            continue;
        }
        let path = format!("/api/v1/traces/{id}/summary");
        loop {
            let (_, body) = sb.get_json(&path).await?;
            if body["stitchedSpans"] == 5 {
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < Duration::from_secs(30),
                "trace {id} never stitched"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stitched.push(sent.elapsed());
    }
    visible.sort();
    stitched.sort();
    println!(
        "traces: {traces} (5 spans across clusters a, b, c), store: {}",
        if postgres.is_some() {
            "postgres shards"
        } else {
            "sqlite"
        }
    );
    println!(
        "complete at the gateway after the last span: p50 {:?} p99 {:?} max {:?}",
        pct(&visible, 0.5),
        pct(&visible, 0.99),
        visible.last().copied().unwrap_or_default()
    );
    println!(
        "summary stitched after the last span (every 10th trace): p50 {:?} p99 {:?} (flush every 2 s)",
        pct(&stitched, 0.5),
        pct(&stitched, 0.99)
    );
    sb.shutdown().await;
    Ok(())
}
