//! Stitching benchmark (BENCHMARKS.md, "Federation"): CPU of a shard's
//! stitching worker per trace, and the bytes of the notes gateways send
//! each other.
//!
//! Traces of 5 spans cross three clusters (a → b → c, two cross-cluster
//! client/server pairs each, as in `tests/tests/federation.rs`). The
//! worker pairs them, aggregates edges and skew, and writes one summary
//! record per trace and the edge aggregates to an embedded store (SQLite
//! file, `synchronous=FULL`) in one flush per `--flush-every` traces.
//!
//! Then the cross-cluster tail decisions of the same number of traces:
//! three digests per trace (one per cluster) through the worker's pure
//! combiner (`stitch::tail::combiner`), one trace in ten kept locally by
//! its last cluster, the others decided when their window ends.
//!
//! ```text
//! meridian-stitch-bench [--traces 50000] [--flush-every 2000]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{sync::Arc, time::Instant};

use model::{SpanId, SpanKind, TraceId};
use stitch::{
    Batch, Note, StitchConfig, bench_worker,
    tail::combiner::{ClusterDigest, Combiner, CombinerConfig, Offered},
};

use integration_tests::cpu_seconds;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn notes(i: u64, t0: u64) -> anyhow::Result<Vec<Note>> {
    let mut tid = [7u8; 16];
    tid[8..].copy_from_slice(&(i + 1).to_be_bytes());
    let trace = TraceId::from_bytes(&tid)?;
    let sid = |n: u8| -> anyhow::Result<SpanId> {
        let mut b = [0u8; 8];
        b[..7].copy_from_slice(&(i + 1).to_be_bytes()[1..]);
        b[7] = n;
        Ok(SpanId::from_bytes(&b)?)
    };
    let t = t0 + i * 1_000;
    let ms = 1_000_000;
    let n = |span,
             parent: Option<u8>,
             service: &str,
             cluster: &str,
             kind: SpanKind,
             s: u64,
             e: u64|
     -> anyhow::Result<Note> {
        Ok(Note {
            trace,
            span: sid(span)?,
            parent: parent.map(sid).transpose()?,
            service: service.into(),
            cluster: cluster.into(),
            name: format!("{service}-{span}"),
            kind: kind.as_i32(),
            start: t + s * ms,
            end: t + e * ms,
            error: i.is_multiple_of(10) && span == 5,
            policy: None,
        })
    };
    Ok(vec![
        n(1, None, "web", "a", SpanKind::Server, 0, 100)?,
        n(2, Some(1), "web", "a", SpanKind::Client, 5, 95)?,
        n(3, Some(2), "api", "b", SpanKind::Server, 7, 93)?,
        n(4, Some(3), "api", "b", SpanKind::Client, 20, 80)?,
        n(5, Some(4), "db", "c", SpanKind::Server, 22, 78)?,
    ])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let traces = arg("--traces", 50_000) as u64;
    let flush_every = arg("--flush-every", 2_000) as u64;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = store::open(&[url], &store::StoreOptions::default()).await?;
    // Steady state: traces that began after the worker took the shard
    // (nothing to resume from the store).
    let config = StitchConfig {
        takeover_margin: std::time::Duration::ZERO,
        ..StitchConfig::default()
    };
    let t0 = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos(),
    )? + 10_000_000_000;
    let mut wire_bytes = 0usize;
    let mut spans = 0usize;
    let mut rounds = Vec::new();
    let mut i = 0;
    while i < traces {
        let mut batch: Batch = Vec::new();
        for _ in 0..flush_every.min(traces - i) {
            for n in notes(i, t0)? {
                batch.push((0, n));
            }
            i += 1;
        }
        wire_bytes += serde_json::to_vec(&batch)?.len();
        spans += batch.len();
        rounds.push(batch);
    }
    let cpu = cpu_seconds();
    let wall = Instant::now();
    for batch in rounds {
        // One flush per round: the worker flushes every 2 s in production.
        bench_worker(Arc::clone(&store), config.clone(), vec![batch]).await;
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let per_trace_us = cpu / traces as f64 * 1e6;
    println!("traces: {traces} ({spans} spans, 5 per trace, 2 cross-cluster pairs each)");
    println!(
        "wall: {wall:.2} s, {:.0} traces/s on one thread",
        traces as f64 / wall
    );
    println!(
        "cpu: {per_trace_us:.1} µs per trace -> {:.3} cores per 1k traces/s",
        per_trace_us * 1e3 / 1e6
    );
    println!(
        "notes between gateways: {:.1} bytes per span, {:.1} bytes per trace (JSON, before gRPC compression)",
        wire_bytes as f64 / spans as f64,
        wire_bytes as f64 / traces as f64
    );

    // Tail decisions.
    let start = Instant::now();
    let mut combiner = Combiner::new(
        CombinerConfig {
            window: std::time::Duration::from_millis(1),
            max_open: 200_000,
            decided_max: 1_000_000,
            decided_ttl: std::time::Duration::from_secs(300),
        },
        start,
    );
    let cpu = cpu_seconds();
    let wall = Instant::now();
    let mut kept = 0usize;
    let mut dropped = 0usize;
    let mut forced = Vec::new();
    for i in 0..traces {
        let mut tid = [9u8; 16];
        tid[8..].copy_from_slice(&(i + 1).to_be_bytes());
        let trace = TraceId::from_bytes(&tid)?;
        for (n, cluster) in ["a", "b", "c"].into_iter().enumerate() {
            let keep = n == 2 && i.is_multiple_of(10);
            let d = ClusterDigest {
                cluster: cluster.into(),
                statuses: if keep { 1 << 4 } else { 0 },
                first_start: t0 + i * 1_000,
                last_end: t0 + i * 1_000 + 100_000_000,
                spans: 2,
                bytes: 600,
                kept_by: keep.then(|| "errors".to_owned()),
            };
            if let Offered::Decided(_) = combiner.offer(1, trace, d, Instant::now(), &mut forced) {
                kept += 1;
            }
        }
        if i.is_multiple_of(1_000) {
            dropped += combiner.expire(Instant::now()).len();
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    dropped += combiner.expire(Instant::now()).len();
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let per_trace_us = cpu / traces as f64 * 1e6;
    println!(
        "tail decisions: {traces} traces ({kept} kept by a cluster, {dropped} decided at the window), \
         {:.0} traces/s on one thread, {per_trace_us:.2} µs per trace -> {:.4} cores per 1k traces/s",
        traces as f64 / wall,
        per_trace_us * 1e3 / 1e6
    );
    Ok(())
}
