//! Storage benchmarks P4–P7 (BENCHMARKS.md, "Storage at scale"), against a
//! real Postgres (`scripts/bench-store.sh` starts a throwaway one).
//!
//! - P4: durable ingest through the gateway (OTLP gRPC, acked after the
//!   store committed) into one shard, vs a raw COPY of the same rows into
//!   the same schema (ceiling) and vs one INSERT per span into a naive
//!   schema (baseline).
//! - fill: the shard is filled to `--fill` spans, spread over 24 h.
//! - P5: trace-by-id p50/p99 over the Jaeger HTTP API, while ingesting
//!   through the gateway at half the P4 rate.
//! - P6: search p99 (service + operation + 1 h + min duration, limit 20;
//!   one attribute equality, indexed and not), under the same load.
//! - P6-TraceQL: Tempo's `/api/search?q=<TraceQL>` on the same store and
//!   load (plain filters and one structural query), each paired with the
//!   Jaeger search of the same parameters where one exists.
//! - P7: bytes per span on disk after VACUUM, every index and TOAST
//!   included, by part.
//!
//! ```text
//! meridian-store-bench --pg postgres://postgres@127.0.0.1:PORT \
//!     [--p4-spans 1000000] [--naive-spans 200000] [--fill 20000000] [--queries 300] \
//!     [--load-rate SPANS_PER_S] [--p7 on|off]
//! ```
//!
//! `--load-rate` is the ingest during P5/P6 (default: half the P4 rate; 0:
//! none), so `--p4-spans 0 --naive-spans 0 --load-rate 50000` skips P4 and
//! keeps the load; `--p7 off` skips the VACUUM and size report.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use model::{ClusterId, Span, TraceId};
use prost::Message;
use proto::{
    corpus::{STORE_OPERATIONS, STORE_SERVICES, StoreCorpus},
    otlp::ExportTraceServiceRequest,
    raw::RawExportClient,
};
use store::{
    StoreOptions,
    postgres::{PgStore, bench},
    testsuite::pg,
};
use tokio::sync::mpsc;

// The gateway binary's allocator (gateway/src/main.rs), so the in-process
// gateway measures what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TRACES_PER_REQUEST: usize = 200; // 2,000 spans
const SPANS_PER_REQUEST: u64 = 2_000;
const WRITERS: usize = 4;
const HOUR: u64 = 3_600_000_000_000;

#[derive(Debug)]
struct Args {
    pg: String,
    p4_spans: u64,
    naive_spans: u64,
    fill: u64,
    queries: usize,
    load_rate: Option<f64>,
    p7: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        pg: String::new(),
        p4_spans: 1_000_000,
        naive_spans: 200_000,
        fill: 20_000_000,
        queries: 300,
        load_rate: None,
        p7: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--pg" => a.pg = v.trim_end_matches('/').to_owned(),
            "--p4-spans" => a.p4_spans = v.parse()?,
            "--naive-spans" => a.naive_spans = v.parse()?,
            "--fill" => a.fill = v.parse()?,
            "--queries" => a.queries = v.parse()?,
            "--load-rate" => a.load_rate = Some(v.parse()?),
            "--p7" => {
                a.p7 = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => bail!("--p7 takes on or off"),
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if a.pg.is_empty() {
        bail!("--pg postgres://USER@HOST:PORT is required");
    }
    Ok(a)
}

fn cluster() -> ClusterId {
    ClusterId::new("bench").unwrap_or_else(|_| unreachable!("valid cluster name"))
}

fn to_model(req: &ExportTraceServiceRequest) -> Vec<Span> {
    proto::convert::to_model(req, &cluster())
}

/// Sends pre-encoded requests with `WRITERS` concurrent clients; returns
/// spans acknowledged and refusals. With `rate` (spans/s) it paces.
type Source = Arc<std::sync::Mutex<Box<dyn Iterator<Item = Bytes> + Send>>>;

fn source(it: impl Iterator<Item = Bytes> + Send + 'static) -> Source {
    Arc::new(std::sync::Mutex::new(Box::new(it)))
}

async fn send_all(
    target: std::net::SocketAddr,
    bodies: Source,
    rate: Option<f64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(u64, u64)> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
        .connect()
        .await?;
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let workers = WRITERS;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let mut client = RawExportClient::new(channel.clone(), false);
        let (bodies, acked, refused, stop) =
            (bodies.clone(), acked.clone(), refused.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // Each worker paces its share of the rate.
            let interval = rate
                .map(|r| Duration::from_secs_f64(SPANS_PER_REQUEST as f64 * workers as f64 / r));
            let mut due = Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let next = bodies.lock().ok().and_then(|mut it| it.next());
                let Some(body) = next else { break };
                if let Some(iv) = interval {
                    due += iv;
                    if let Some(d) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(d).await;
                    }
                }
                loop {
                    match client.export(body.clone(), None).await {
                        Ok(_) => {
                            acked.fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok((
        acked.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    ))
}

fn corpus(seed: u64, start: u64, spans: u64, spread: u64) -> Vec<ExportTraceServiceRequest> {
    let traces = spans / 10;
    let step = (spread / traces.max(1)).max(1);
    let mut c = StoreCorpus::new(seed, start, step);
    (0..spans / SPANS_PER_REQUEST)
        .map(|_| c.request(TRACES_PER_REQUEST))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn start_gateway(dir: &std::path::Path, store_url: &str) -> anyhow::Result<gateway::Gateway> {
    let mut cfg = integration_tests::Sandbox::gateway_config(dir)?;
    cfg.stores = vec![store_url.to_owned()];
    Ok(gateway::Gateway::start(cfg).await?)
}

/// P4 ceiling: a raw COPY of the P4 rows, encoded before the clock starts.
async fn p4_ceiling(
    url: &str,
    p4_corpus: &[ExportTraceServiceRequest],
    p4_rate: f64,
) -> anyhow::Result<()> {
    let ceiling = Arc::new(PgStore::open(0, url, &StoreOptions::default()).await?);
    let mut encoded = Vec::with_capacity(p4_corpus.len());
    for req in p4_corpus {
        encoded.push(ceiling.bench_encode(&to_model(req)).await?);
    }
    let encoded = Arc::new(encoded);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (ceiling, encoded, next) = (ceiling.clone(), encoded.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(rows) = encoded.get(next.fetch_add(1, Ordering::Relaxed)) {
                ceiling.bench_copy(rows).await?;
                n += rows.spans();
            }
            anyhow::Ok(n)
        }));
    }
    let mut copied = 0;
    for t in tasks {
        copied += t.await??;
    }
    let ceiling_rate = copied as f64 / started.elapsed().as_secs_f64();
    println!(
        "P4 ceiling (raw COPY, same rows, {WRITERS} streams): {ceiling_rate:.0} spans/s; gateway/ceiling = {:.2}",
        p4_rate / ceiling_rate
    );
    drop(encoded);
    Ok(())
}

/// The TraceQL searches of P6-TraceQL.
#[derive(Debug, Clone, Copy)]
enum Tql {
    /// The P6 service + operation + minDuration search as a TraceQL
    /// filter, over the same services (most cannot match: span k lasts at
    /// most 405 ms / (k + 1), so the answer is often empty).
    PlainP6,
    /// The same filter over the services where it matches (0–3).
    Plain,
    /// Service + the indexed `http.status_code` (500 on 1 span in 97).
    Indexed,
    /// A service with an error span below it: the corpus chains svc-0 →
    /// svc-1 → … → svc-9 parent to child, so svc-0..8 have descendants.
    Structural,
}

impl Tql {
    const ALL: [Self; 4] = [Self::PlainP6, Self::Plain, Self::Indexed, Self::Structural];

    fn label(self) -> &'static str {
        match self {
            Self::PlainP6 => "plain: service && name && duration > 100ms, the P6 services",
            Self::Plain => "plain: service && name && duration > 100ms, matching services",
            Self::Indexed => "plain: service && span.http.status_code = 500",
            Self::Structural => "structural: { service } >> { status = error }",
        }
    }

    /// Services drawn from (svc-0 up).
    fn services(self) -> u64 {
        match self {
            Self::PlainP6 | Self::Indexed => STORE_SERVICES as u64,
            Self::Plain => 4,
            Self::Structural => STORE_SERVICES as u64 - 1,
        }
    }

    /// Every answer must hold a trace (the corpus guarantees matches in
    /// any 1 h window of the fill).
    fn must_match(self) -> bool {
        !matches!(self, Self::PlainP6)
    }

    /// The TraceQL, and the Jaeger search parameters that ask the same.
    fn queries(self, svc: u64, op: u64) -> (String, Option<String>) {
        match self {
            Self::PlainP6 | Self::Plain => (
                format!(
                    r#"{{ resource.service.name = "svc-{svc}" && name = "GET /r{op}" && duration > 100ms }}"#
                ),
                Some(format!(
                    "service=svc-{svc}&operation=GET%20%2Fr{op}&minDuration=100ms"
                )),
            ),
            Self::Indexed => (
                format!(
                    r#"{{ resource.service.name = "svc-{svc}" && span.http.status_code = 500 }}"#
                ),
                Some(format!(
                    "service=svc-{svc}&tags=%7B%22http.status_code%22%3A%22500%22%7D"
                )),
            ),
            Self::Structural => (
                format!(r#"{{ resource.service.name = "svc-{svc}" }} >> {{ status = error }}"#),
                None,
            ),
        }
    }
}

/// One Jaeger search: its latency and the traces it answered.
async fn jaeger_search(http: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, u64)> {
    let t = Instant::now();
    let resp = http.get(url).send().await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    let took = t.elapsed();
    if !status.is_success() {
        bail!("Jaeger search {url} answered {status}: {body}");
    }
    Ok((took, body["data"].as_array().map_or(0, |a| a.len() as u64)))
}

/// Percent-encodes a query parameter value (everything but unreserved).
fn urlencode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dbs = pg::fresh_databases(&args.pg, 3).await;
    let (shard_url, ceiling_url, naive_url) = (&dbs[0], &dbs[1], &dbs[2]);
    let tmp = tempfile::tempdir()?;
    let now = telemetry::clock::unix_nanos();

    // ---- P4: through the gateway --------------------------------------
    let p4_corpus = corpus(4, now - HOUR, args.p4_spans, HOUR);
    let bodies: Vec<Bytes> = p4_corpus
        .iter()
        .map(|r| Bytes::from(r.encode_to_vec()))
        .collect();
    let gw = start_gateway(tmp.path(), shard_url).await?;
    let started = Instant::now();
    let (acked, refused) = send_all(
        gw.otlp_grpc_addr,
        source(bodies.into_iter()),
        None,
        Arc::new(AtomicBool::new(false)),
    )
    .await?;
    let p4_secs = started.elapsed().as_secs_f64();
    let p4_rate = acked as f64 / p4_secs;
    println!(
        "P4 gateway: {acked} spans in {p4_secs:.1}s = {p4_rate:.0} spans/s ({refused} refused requests retried)"
    );

    // ---- P4 ceiling: raw COPY of the same rows -------------------------
    if !p4_corpus.is_empty() {
        p4_ceiling(ceiling_url, &p4_corpus, p4_rate).await?;
    }

    // ---- P4 baseline: naive schema, one INSERT per span ----------------
    let naive = bench::NaiveBaseline::open(naive_url).await?;
    let naive_reqs: Vec<Vec<Span>> = p4_corpus
        .iter()
        .take((args.naive_spans / SPANS_PER_REQUEST) as usize)
        .map(to_model)
        .collect();
    let naive_reqs = Arc::new(naive_reqs);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (naive, reqs, next) = (naive.clone(), naive_reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(spans) = reqs.get(next.fetch_add(1, Ordering::Relaxed)) {
                naive.insert(spans).await?;
                n += spans.len() as u64;
            }
            anyhow::Ok(n)
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await??;
    }
    let naive_rate = inserted as f64 / started.elapsed().as_secs_f64();
    println!(
        "P4 baseline (naive schema, INSERT per span): {naive_rate:.0} spans/s; gateway/naive = {:.2}",
        p4_rate / naive_rate
    );
    drop(p4_corpus);

    // ---- fill ------------------------------------------------------------
    let store = gw.store.clone();
    let to_fill = args.fill.saturating_sub(acked);
    let fill_reqs = to_fill / SPANS_PER_REQUEST;
    let traces = fill_reqs * TRACES_PER_REQUEST as u64;
    let step = (24 * HOUR / traces.max(1)).max(1);
    let (tx, rx) = mpsc::channel::<Vec<Span>>(16);
    let sample: Arc<std::sync::Mutex<Vec<TraceId>>> = Arc::default();
    let generator = {
        let sample = sample.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = StoreCorpus::new(5, now - 25 * HOUR, step);
            for i in 0..fill_reqs {
                let spans = to_model(&c.request(TRACES_PER_REQUEST));
                if i % 5 == 0
                    && let (Some(s), Ok(mut v)) = (spans.first(), sample.lock())
                {
                    v.push(s.trace_id);
                }
                if tx.blocking_send(spans).is_err() {
                    break;
                }
            }
        })
    };
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let filled = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, rx, filled) = (store.clone(), rx.clone(), filled.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(spans) = rx.lock().await.recv().await else {
                    break;
                };
                loop {
                    match store.write(&spans).await {
                        Ok(o) => {
                            filled.fetch_add(o.inserted, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            eprintln!("fill write failed, retrying: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                let n = filled.load(Ordering::Relaxed);
                if n % 1_000_000 < SPANS_PER_REQUEST {
                    eprintln!("filled {n} spans");
                }
            }
        }));
    }
    generator.await?;
    for t in tasks {
        t.await?;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let total_spans = acked + filled.load(Ordering::Relaxed);
    println!(
        "fill: {} spans in {fill_secs:.0}s = {:.0} spans/s (direct SpanStore::write, {WRITERS} writers); {total_spans} spans stored",
        filled.load(Ordering::Relaxed),
        filled.load(Ordering::Relaxed) as f64 / fill_secs
    );

    // ---- P5/P6 under load at half the P4 rate ---------------------------
    // Generated as sent: new traces in the last hour.
    let mut live = StoreCorpus::new(6, now, 1_000);
    let load_bodies = source(std::iter::from_fn(move || {
        Some(Bytes::from(
            live.request(TRACES_PER_REQUEST).encode_to_vec(),
        ))
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let load_rate = args.load_rate.unwrap_or(p4_rate / 2.0);
    let load = (load_rate > 0.0).then(|| {
        tokio::spawn(send_all(
            gw.otlp_grpc_addr,
            load_bodies,
            Some(load_rate),
            stop.clone(),
        ))
    });
    let http = reqwest::Client::new();
    let base = format!("http://{}", gw.http_addr);
    let ids = sample.lock().map(|v| v.clone()).unwrap_or_default();
    let mut rng = 0x9e37_79b9_u64;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let load_started = Instant::now();

    let mut by_id = Vec::with_capacity(args.queries * 3);
    for _ in 0..args.queries * 3 {
        let Some(&id) = ids.get((rand() % ids.len().max(1) as u64) as usize) else {
            break;
        };
        let t = Instant::now();
        let resp = http
            .get(format!("{base}/api/traces/{}", id.to_hex()))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        by_id.push(t.elapsed());
        if !status.is_success() || body.len() < 1_000 {
            bail!(
                "trace {} answered {status} with {} bytes",
                id.to_hex(),
                body.len()
            );
        }
    }
    by_id.sort();
    println!(
        "P5 trace-by-id ({} lookups, {total_spans}+ spans stored, ingest at {:.0} spans/s): p50 {:.2} ms, p99 {:.2} ms",
        by_id.len(),
        load_rate,
        ms(percentile(&by_id, 0.5)),
        ms(percentile(&by_id, 0.99))
    );

    let fill_start_us = (now - 25 * HOUR) / 1_000;
    let window = |rand: &mut dyn FnMut() -> u64| {
        let start = fill_start_us + rand() % (23 * 3_600_000_000);
        (start, start + 3_600_000_000)
    };
    let mut searches: Vec<(&str, Vec<Duration>, u64)> = Vec::new();
    for kind in [
        "service+operation+1h+minDuration",
        "indexed attribute",
        "unindexed attribute",
    ] {
        let mut lat = Vec::with_capacity(args.queries);
        let mut found = 0u64;
        for _ in 0..args.queries {
            let (start, end) = window(&mut rand);
            let svc = rand() % STORE_SERVICES as u64;
            let op = rand() % STORE_OPERATIONS as u64;
            let url = match kind {
                "service+operation+1h+minDuration" => format!(
                    "{base}/api/traces?service=svc-{svc}&operation=GET%20%2Fr{op}&start={start}&end={end}&minDuration=100ms&limit=20"
                ),
                "indexed attribute" => format!(
                    "{base}/api/traces?service=svc-{svc}&tags=%7B%22http.status_code%22%3A%22500%22%7D&start={start}&end={end}&limit=20"
                ),
                _ => format!(
                    "{base}/api/traces?service=svc-{svc}&tags=%7B%22app.tier%22%3A%22gold%22%7D&start={start}&end={end}&limit=20"
                ),
            };
            let t = Instant::now();
            let resp = http.get(&url).send().await?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await?;
            lat.push(t.elapsed());
            if !status.is_success() {
                bail!("search answered {status}: {body}");
            }
            found += body["data"].as_array().map_or(0, |a| a.len() as u64);
        }
        lat.sort();
        println!(
            "P6 search [{kind}] ({} queries, 1 h windows, limit 20, {:.1} traces per answer): p50 {:.1} ms, p99 {:.1} ms",
            lat.len(),
            found as f64 / lat.len() as f64,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
        searches.push((kind, lat, found));
    }
    // ---- P6-TraceQL: Tempo's TraceQL search, same store, windows, load ----
    let tempo = gw
        .tempo_addr
        .context("the bench gateway serves the Tempo API (--tempo-http)")?;
    let p6_p99 = searches.first().map_or(0.0, |s| ms(percentile(&s.1, 0.99)));
    for kind in Tql::ALL {
        let mut lat = Vec::with_capacity(args.queries);
        let mut jaeger_lat = Vec::with_capacity(args.queries);
        let (mut found, mut jaeger_found, mut inspected, mut stopped) = (0u64, 0u64, 0u64, 0u64);
        for i in 0..args.queries {
            let (start, end) = window(&mut rand);
            let svc = rand() % kind.services();
            let op = rand() % STORE_OPERATIONS as u64;
            let (q, jaeger) = kind.queries(svc, op);
            let url = format!(
                "http://{tempo}/api/search?q={}&start={}&end={}&limit=20",
                urlencode(&q),
                start / 1_000_000,
                end / 1_000_000
            );
            let jaeger_url =
                jaeger.map(|j| format!("{base}/api/traces?{j}&start={start}&end={end}&limit=20"));
            // Alternate which API goes first, so neither always meets a
            // warm cache the other left.
            if i % 2 == 1
                && let Some(u) = &jaeger_url
            {
                let (d, n) = jaeger_search(&http, u).await?;
                jaeger_lat.push(d);
                jaeger_found += n;
            }
            let t = Instant::now();
            let resp = http.get(&url).send().await?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await?;
            lat.push(t.elapsed());
            let n = body["traces"].as_array().map_or(0, |a| a.len() as u64);
            if !status.is_success() || (kind.must_match() && n == 0) {
                bail!(
                    "TraceQL search {q} ({start}..{end} µs) answered {status} with {n} traces: {body}"
                );
            }
            found += n;
            inspected += body["metrics"]["inspectedTraces"].as_u64().unwrap_or(0);
            stopped += u64::from(body.get("warnings").is_some());
            if i % 2 == 0
                && let Some(u) = &jaeger_url
            {
                let (d, n) = jaeger_search(&http, u).await?;
                jaeger_lat.push(d);
                jaeger_found += n;
            }
        }
        lat.sort();
        jaeger_lat.sort();
        let p99 = ms(percentile(&lat, 0.99));
        let count = lat.len().max(1) as f64;
        println!(
            "P6-TraceQL [{}] ({} queries, 1 h windows, limit 20, {:.1} traces per answer, {:.0} candidate traces inspected per search, {stopped} stopped at the candidate cap): p50 {:.1} ms, p99 {p99:.1} ms; p99 / P6 service+operation+minDuration p99 ({p6_p99:.1} ms) = {:.2}",
            kind.label(),
            lat.len(),
            found as f64 / count,
            inspected as f64 / count,
            ms(percentile(&lat, 0.5)),
            p99 / p6_p99.max(f64::MIN_POSITIVE),
        );
        if !jaeger_lat.is_empty() {
            let jp99 = ms(percentile(&jaeger_lat, 0.99));
            println!(
                "    the same parameters over the Jaeger API: {:.1} traces per answer, p50 {:.1} ms, p99 {jp99:.1} ms; TraceQL/Jaeger p99 = {:.2}",
                jaeger_found as f64 / jaeger_lat.len() as f64,
                ms(percentile(&jaeger_lat, 0.5)),
                p99 / jp99.max(f64::MIN_POSITIVE),
            );
        }
    }

    stop.store(true, Ordering::Relaxed);
    let load_acked = match load {
        Some(l) => l.await??.0,
        None => 0,
    };
    println!(
        "background ingest during P5/P6: {load_acked} spans in {:.0}s = {:.0} spans/s",
        load_started.elapsed().as_secs_f64(),
        load_acked as f64 / load_started.elapsed().as_secs_f64()
    );

    if !args.p7 {
        gw.shutdown(Duration::from_secs(10)).await;
        return Ok(());
    }
    // ---- P7: bytes per span -----------------------------------------------
    let usage = gw.store.storage_usage().await?;
    let stored: u64 = usage.iter().map(|s| s.spans).sum();
    let print_sizes = |label: &str, sizes: &[(String, i64)]| {
        let total: i64 = sizes.iter().map(|s| s.1).sum();
        println!(
            "P7 {label}: {total} bytes for {stored} spans = {:.1} B/span",
            total as f64 / stored.max(1) as f64
        );
        for (part, bytes) in sizes.iter().filter(|s| s.1 > 100_000) {
            println!(
                "    {part:<24} {:>14} bytes  {:>6.1} B/span",
                bytes,
                *bytes as f64 / stored.max(1) as f64
            );
        }
    };
    print_sizes("after VACUUM", &bench::vacuum_and_sizes(shard_url).await?);
    // The maintenance pass (retention job, keep-everything policy) rebuilds
    // the search index of days that are over.
    let report = gw
        .store
        .enforce_retention(
            &model::RetentionPolicy::default(),
            telemetry::clock::unix_nanos(),
        )
        .await?;
    println!("maintenance pass: {report:?}");
    print_sizes(
        "after VACUUM and the maintenance pass",
        &bench::vacuum_and_sizes(shard_url).await?,
    );
    gw.shutdown(Duration::from_secs(10)).await;
    let naive_sizes = bench::vacuum_and_sizes(naive_url).await?;
    let naive_total: i64 = naive_sizes.iter().map(|s| s.1).sum();
    println!(
        "P7 naive schema: {:.1} B/span ({} spans)",
        naive_total as f64 / inserted.max(1) as f64,
        inserted
    );
    Ok(())
}
