//! RED metrics benchmark (BENCHMARKS.md, "RED metrics and alerts"): what
//! the RED windows cost per 1M spans/s of agent traffic.
//!
//! 1. Agent: the tap (`edge_agent::red_tap::RedTap::observe_at`, the
//!    `/metrics` families and the 10 s windows) over `--spans` generated
//!    spans, in OTLP requests of 512 spans from one service each: 20
//!    services × 25 operations × 2 kinds (server, client) × 2 statuses
//!    (UNSET, ERROR for 5 % of spans) = 2,000 series, durations
//!    log-uniform 50 µs … 5 s. The clock is simulated: each of `--agents`
//!    agents receives 1M / agents spans/s, so a window holds that many
//!    spans × 10 s. Then the flush of each closed window: `WindowBatch`
//!    encoding and zstd level 1, as the agent forwards it.
//! 2. WAN: the zstd `WindowBatch` bytes per window against the OTLP
//!    protobuf bytes (plain and zstd level 1) of the spans it counts.
//! 3. Gateway: `--gateway-windows` windows of every agent (the captured
//!    windows, shifted in time) through the `ForwardWindows` handler after
//!    its identity check (`MetricsService::store_windows`: decompress,
//!    decode, one `Red10s` record per series, store commit, `/metrics`),
//!    into a SQLite file (`synchronous=FULL`) or a fresh database on
//!    `--postgres SERVER`; then one rollup pass (`metrics_alerts::red::rollup`),
//!    which rereads the last 10 minutes of 10 s records and rewrites their
//!    1 min and 1 h records, as the leader does every 30 s.
//!
//! CPU from `/proc` (the agent phase: this thread's; the gateway phase:
//! the process's, so SQLite's threads count, a Postgres server's do not).
//!
//! ```text
//! meridian-red-bench [--spans 5000000] [--agents 20] [--gateway-windows 60]
//!                    [--postgres postgres://USER@HOST:PORT]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{sync::Arc, time::Instant};

use edge_agent::red_tap::RedTap;
use metrics_alerts::red::{RedConfig, ingest::MetricsService, prom::RedProm, rollup};
use model::red::{WINDOW_MS, window_start};
use prost::Message;
use proto::{
    metrics::{ForwardWindowsRequest, WindowBatch},
    otlp::{AnyValue, ExportTraceServiceRequest, KeyValue, Span, Status, any_value, string_kv},
};

// The gateway binary's allocator, so the measured code runs as it ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: usize = 20;
const OPERATIONS: usize = 25;
const SPANS_PER_REQUEST: usize = 512;
/// Distinct requests generated; the tap cycles through them.
const POOL: usize = 200;
/// The agent's forwarding compression level (`edge_agent::app`).
const ZSTD_LEVEL: i32 = 1;
/// Spans per second of agent traffic the figures are stated for.
const RATE: f64 = 1e6;
const ROLLUP_EVERY_S: f64 = 30.0;
/// The agent's `/metrics` series limit (`edge_agent::app`).
const RED_MAX_SERIES: usize = 2_000;

use integration_tests::cpu_seconds;

/// This thread's CPU time in seconds, at nanosecond resolution.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn int_kv(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// One SDK export: `SPANS_PER_REQUEST` spans of one service.
fn request(rng: &mut Rng, service: usize) -> ExportTraceServiceRequest {
    let name = format!("service-{service:02}");
    let spans = (0..SPANS_PER_REQUEST)
        .map(|_| {
            let op = rng.below(OPERATIONS);
            let server = rng.below(2) == 0;
            let error = rng.unit() < 0.05;
            // Log-uniform 50 µs … 5 s.
            let duration = (50_000.0 * 10f64.powf(5.0 * rng.unit())) as u64;
            let start = 1_700_000_000_000_000_000 + rng.next() % 1_000_000_000_000;
            let route = format!("/api/v1/{name}/op-{op:02}");
            Span {
                trace_id: [rng.next().to_be_bytes(), rng.next().to_be_bytes()].concat(),
                span_id: rng.next().to_be_bytes().to_vec(),
                parent_span_id: if rng.below(5) == 0 {
                    Vec::new()
                } else {
                    rng.next().to_be_bytes().to_vec()
                },
                name: format!("GET {route}"),
                kind: if server { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes: vec![
                    string_kv("http.request.method", "GET"),
                    string_kv("http.route", &route),
                    int_kv("http.response.status_code", if error { 500 } else { 200 }),
                    string_kv(
                        "server.address",
                        &format!("service-{:02}.prod.svc", rng.below(SERVICES)),
                    ),
                ],
                status: error.then(|| Status {
                    code: 2,
                    message: "internal error".into(),
                }),
                ..Default::default()
            }
        })
        .collect();
    integration_tests::otlp::request_with(
        vec![
            string_kv(model::SERVICE_ATTRIBUTE, &name),
            string_kv("service.version", "1.42.0"),
            string_kv("host.name", &format!("node-{:03}", rng.below(100))),
            string_kv("k8s.namespace.name", "prod"),
            string_kv(
                "k8s.pod.name",
                &format!("{name}-7d9f8c-{:05}", rng.below(1000)),
            ),
        ],
        spans,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let spans = num("--spans", 5_000_000);
    let agents = num("--agents", 20).max(1);
    let gateway_windows = num("--gateway-windows", 60).max(1);
    let postgres = arg("--postgres");
    let per_agent_rate = RATE / agents as f64;

    // --- Agent: the tap.
    let mut rng = Rng(7);
    let pool: Vec<ExportTraceServiceRequest> =
        (0..POOL).map(|i| request(&mut rng, i % SERVICES)).collect();
    let otlp_bytes: Vec<usize> = pool.iter().map(Message::encoded_len).collect();
    let mut otlp_zstd_bytes = Vec::with_capacity(POOL);
    for r in &pool {
        otlp_zstd_bytes.push(zstd::bulk::compress(&r.encode_to_vec(), ZSTD_LEVEL)?.len());
    }
    let requests = spans.div_ceil(SPANS_PER_REQUEST);
    let spans = requests * SPANS_PER_REQUEST;
    // Windows start at a boundary in the past, so the gateway's retention
    // and rollups see recent data.
    let span_ms = 1e3 / per_agent_rate;
    let sim_ms = (spans as f64 * span_ms) as i64;
    let t0 = window_start(
        telemetry::clock::unix_ms() - sim_ms - 2 * WINDOW_MS,
        WINDOW_MS,
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let tap = RedTap::register(&mut registry, RED_MAX_SERIES);
    let epoch = u64::try_from(t0)?;
    let mut closed: Vec<WindowBatch> = Vec::new();
    let (mut flush_cpu, mut flushes) = (0.0, 0usize);
    let (mut window_otlp, mut window_otlp_zstd) = (0usize, 0usize);
    let mut last_flush_s = 0;
    let flush = |t: i64, all: bool, closed: &mut Vec<WindowBatch>| -> anyhow::Result<f64> {
        let c = thread_cpu_seconds();
        if let Some(batch) = tap.take_closed(t, all, epoch) {
            // What the agent appends to its buffer and forwards (one
            // record per flush; `flush::flush_once`, `forward::gateway`).
            let encoded = batch.encode_to_vec();
            let _ = proto::payload::encode(&[encoded], ZSTD_LEVEL)?;
            closed.push(batch);
        }
        Ok(thread_cpu_seconds() - c)
    };
    let wall = Instant::now();
    let mut tap_cpu = 0.0;
    for i in 0..requests {
        let t = t0 + (i as f64 * SPANS_PER_REQUEST as f64 * span_ms) as i64;
        // The agent looks for closed windows once a second.
        if (t - t0) / 1_000 > last_flush_s {
            last_flush_s = (t - t0) / 1_000;
            let before = closed.len();
            flush_cpu += flush(t, false, &mut closed)?;
            flushes += closed.len() - before;
        }
        let req = &pool[i % POOL];
        if closed.is_empty() {
            window_otlp += otlp_bytes[i % POOL];
            window_otlp_zstd += otlp_zstd_bytes[i % POOL];
        }
        let c = thread_cpu_seconds();
        tap.observe_at(req, t);
        tap_cpu += thread_cpu_seconds() - c;
    }
    let full_windows = closed.len();
    flush(t0 + sim_ms + WINDOW_MS, true, &mut closed)?;
    let wall = wall.elapsed().as_secs_f64();
    anyhow::ensure!(
        full_windows > 0,
        "no full window: give --spans ≥ {} for {agents} agents",
        (per_agent_rate * 10.0) as u64
    );
    let tap_us = tap_cpu / spans as f64 * 1e6;
    let flush_ms = flush_cpu / flushes.max(1) as f64 * 1e3;
    let spans_per_window = per_agent_rate * WINDOW_MS as f64 / 1e3;
    println!(
        "agent: {spans} spans tapped ({SERVICES} services × {OPERATIONS} operations × 2 kinds × 2 statuses, \
         {SPANS_PER_REQUEST} spans per request), {agents} agents → {per_agent_rate:.0} spans/s and \
         {spans_per_window:.0} spans per 10 s window each; wall {wall:.1} s"
    );
    println!(
        "agent tap: {tap_us:.3} µs CPU per span -> {:.3} cores per 1M spans/s (all agents together)",
        tap_us
    );
    println!(
        "agent flush (take window, encode, zstd): {flush_ms:.2} ms per window -> {:.5} cores per agent, \
         {:.4} cores for {agents} agents",
        flush_ms / 1e3 / 10.0,
        flush_ms / 1e3 / 10.0 * agents as f64
    );

    // --- WAN bytes of the first full window.
    let first = &closed[0];
    let series = first.windows.iter().map(|w| w.series.len()).sum::<usize>();
    let encoded = first.encode_to_vec();
    let (zstd_window, _) = proto::payload::encode(&[&encoded], ZSTD_LEVEL)?;
    let bins: usize = first
        .windows
        .iter()
        .flat_map(|w| &w.series)
        .map(|s| s.bin_index.len())
        .sum();
    println!(
        "wan per agent per 10 s window: {series} series ({:.0} sketch bins each), WindowBatch {} B, zstd {} B \
         ({:.0} B per series)",
        bins as f64 / series as f64,
        encoded.len(),
        zstd_window.len(),
        zstd_window.len() as f64 / series as f64
    );
    println!(
        "wan: the same window's spans as OTLP: {window_otlp} B protobuf ({:.0} B per span), {window_otlp_zstd} B zstd \
         -> RED windows are {:.5} of the OTLP zstd bytes (1 : {:.0})",
        window_otlp as f64 / spans_per_window,
        zstd_window.len() as f64 / window_otlp_zstd as f64,
        window_otlp_zstd as f64 / zstd_window.len() as f64
    );
    println!(
        "wan per 1M spans/s: RED {:.1} kB/s ({agents} agents) vs OTLP zstd {:.1} MB/s",
        zstd_window.len() as f64 * agents as f64 / 10.0 / 1e3,
        window_otlp_zstd as f64 / 10.0 * agents as f64 / 1e6
    );

    // --- Gateway: the captured full windows, shifted to `gateway_windows`
    // consecutive windows, from every agent.
    let g0 = window_start(
        telemetry::clock::unix_ms() - gateway_windows as i64 * WINDOW_MS,
        WINDOW_MS,
    );
    let mut payloads = Vec::with_capacity(gateway_windows);
    for g in 0..gateway_windows {
        let mut b = closed[g % full_windows].clone();
        for w in &mut b.windows {
            w.start_ms = g0 + g as i64 * WINDOW_MS;
        }
        let (payload, raw) = proto::payload::encode(&[b.encode_to_vec()], ZSTD_LEVEL)?;
        payloads.push((payload, raw));
    }
    let dir = tempfile::tempdir()?;
    let (urls, backend) = match &postgres {
        Some(server) => (
            store::testsuite::pg::fresh_databases(server.trim_end_matches('/'), 1).await,
            "postgres (one fresh database, local server; its CPU is not counted)",
        ),
        None => (
            vec![format!(
                "sqlite://{}",
                dir.path().join("red-bench.db").display()
            )],
            "sqlite file",
        ),
    };
    let store = store::open(&urls, &store::StoreOptions::default()).await?;
    let cfg = RedConfig::default();
    let service = MetricsService::new(
        Arc::clone(&store),
        RedProm::new(cfg.prom_max_series),
        256 << 20,
    );
    let cpu = cpu_seconds();
    let wall = Instant::now();
    let mut rows = 0u64;
    for (g, (payload, raw)) in payloads.iter().enumerate() {
        for a in 0..agents {
            let seq = g as u64 + 1;
            let resp = service
                .store_windows(
                    "bench",
                    &ForwardWindowsRequest {
                        agent_id: format!("agent-{a:03}"),
                        cluster: "bench".into(),
                        first_sequence: seq,
                        last_sequence: seq,
                        compression: 1,
                        payload: payload.clone(),
                        uncompressed_size: *raw,
                    },
                )
                .await
                .map_err(|s| anyhow::anyhow!("store_windows: {s}"))?;
            rows += resp.series;
        }
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let requests = gateway_windows * agents;
    let row_us = cpu / rows as f64 * 1e6;
    let rows_per_s = rows as f64 / (gateway_windows as f64 * 10.0);
    println!(
        "gateway store ({backend}): {requests} ForwardWindows ({gateway_windows} windows × {agents} agents), \
         {rows} Red10s rows in {wall:.1} s wall ({:.0} rows/s), CPU {cpu:.2} s = {row_us:.1} µs per row, \
         {:.2} ms per request",
        rows as f64 / wall,
        cpu / requests as f64 * 1e3
    );
    println!(
        "gateway store per 1M spans/s ({agents} agents × {series} series): {rows_per_s:.0} rows/s of 10 s windows \
         -> {:.4} cores",
        rows_per_s * row_us / 1e6
    );

    // --- Rollup: one pass at the end of the stored range.
    let now = g0 + gateway_windows as i64 * WINDOW_MS;
    let cpu = cpu_seconds();
    let wall = Instant::now();
    let pass = rollup::pass(&store, &cfg, now).await;
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let reread = rows.min((rollup::REWORK_MS / WINDOW_MS) as u64 * (rows / gateway_windows as u64));
    let report = match pass {
        Ok(r) => r,
        Err(e) => {
            // The pass reads at most `query::MAX_ROWS` records.
            println!(
                "rollup pass FAILED over {reread} 10 s rows (limit {}): {e}",
                metrics_alerts::red::query::MAX_ROWS
            );
            return Ok(());
        }
    };
    let rollup_rows = (report.minutes_written + report.hours_written) as f64;
    // The pass rereads the last 10 minutes: scale a shorter stored range.
    let scale = (rollup::REWORK_MS / WINDOW_MS) as f64 / gateway_windows as f64;
    let steady_cpu = cpu * scale.max(1.0);
    println!(
        "rollup pass: reread {reread} 10 s rows, wrote {} 1 min + {} 1 h rows; {wall:.2} s wall, CPU {cpu:.2} s \
         ({:.2} µs per 10 s row); a full {} min rework: {steady_cpu:.2} s -> {:.4} cores at one pass per \
         {ROLLUP_EVERY_S:.0} s",
        report.minutes_written,
        report.hours_written,
        cpu / reread.max(1) as f64 * 1e6,
        rollup::REWORK_MS / 60_000,
        steady_cpu / ROLLUP_EVERY_S
    );
    let rollup_rows_s = rollup_rows * scale.max(1.0) / ROLLUP_EVERY_S;
    println!(
        "total per 1M spans/s: agents {:.3} cores (tap + flush), gateway {:.4} cores (store) + {:.4} (rollup), \
         {:.0} rows/s written ({rows_per_s:.0} 10 s + {rollup_rows_s:.0} rollup rewrites)",
        tap_us + flush_ms / 1e3 / 10.0 * agents as f64,
        rows_per_s * row_us / 1e6,
        steady_cpu / ROLLUP_EVERY_S,
        rows_per_s + rollup_rows_s
    );
    drop(store);
    Ok(())
}
