//! Load generator and sink for the agent benchmarks (`scripts/bench-agent.sh`).
//!
//! Sends a pre-encoded OTLP corpus (512 spans per request, ≈264 B per span,
//! 8-span traces) over gRPC to `--target`, runs an OTLP gRPC sink on
//! `--sink` that counts the spans it receives, and samples the CPU time and
//! RSS of the process under test (`--sut-pid`) from `/proc`. Prints one JSON
//! line with the figures.
//!
//! ```text
//! meridian-loadgen --name NAME --target http://127.0.0.1:4317 --sut-pid PID \
//!     [--sink 127.0.0.1:PORT] [--count-metric URL#NAME] \
//!     [--rate SPANS_PER_S (0 = as fast as possible)] [--duration S] [--concurrency N]
//!     [--corpus small|prod]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use prost::Message;
use proto::{
    otlp::{
        ExportTraceServiceRequest, ExportTraceServiceResponse, TraceService, TraceServiceServer,
    },
    raw::RawExportClient,
};

const SPANS_PER_REQUEST: usize = 512;
const CORPUS_REQUESTS: usize = 64;

#[derive(Debug)]
struct Args {
    name: String,
    target: String,
    sink: Option<SocketAddr>,
    count_metric: Option<(String, String)>,
    sut_pid: u32,
    rate: u64,
    duration: Duration,
    concurrency: usize,
    /// `small` (≈264 B per span) or `prod` (≈2 KB, `proto::corpus_prod`).
    corpus: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        name: "run".into(),
        target: String::new(),
        sink: None,
        count_metric: None,
        sut_pid: 0,
        rate: 0,
        duration: Duration::from_secs(20),
        concurrency: 8,
        corpus: "small".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => a.name = val()?,
            "--target" => a.target = val()?,
            "--sink" => a.sink = Some(val()?.parse()?),
            "--count-metric" => {
                let v = val()?;
                let (url, name) = v.split_once('#').context("--count-metric URL#NAME")?;
                a.count_metric = Some((url.into(), name.into()));
            }
            "--sut-pid" => a.sut_pid = val()?.parse()?,
            "--rate" => a.rate = val()?.parse()?,
            "--duration" => a.duration = Duration::from_secs(val()?.parse()?),
            "--concurrency" => a.concurrency = val()?.parse()?,
            "--corpus" => a.corpus = val()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.target.is_empty() || a.sut_pid == 0 {
        bail!("--target and --sut-pid are required");
    }
    Ok(a)
}

/// The corpus: `CORPUS_REQUESTS` encoded requests of 512 spans.
fn corpus(kind: &str) -> anyhow::Result<(Vec<Bytes>, f64)> {
    let seed = 0x2545_f491_4f6c_dd1d;
    let mut small = proto::corpus::Generator::new(seed);
    let mut prod = proto::corpus_prod::ProdGenerator::new(seed);
    if !matches!(kind, "small" | "prod") {
        bail!("--corpus small|prod");
    }
    let mut span_bytes = 0usize;
    let mut out = Vec::new();
    for _ in 0..CORPUS_REQUESTS {
        let req = if kind == "prod" {
            prod.request(SPANS_PER_REQUEST)
        } else {
            small.request(SPANS_PER_REQUEST)
        };
        span_bytes += proto::corpus::span_bytes(&req);
        out.push(Bytes::from(req.encode_to_vec()));
    }
    Ok((
        out,
        span_bytes as f64 / (CORPUS_REQUESTS * SPANS_PER_REQUEST) as f64,
    ))
}

// ---- the sink: counts the spans it receives ----

#[derive(Clone)]
struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

// ---- /proc sampling ----

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (CPU seconds, RSS bytes) of `pid`.
fn proc_usage(pid: u32, tck: f64) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state(0) … utime(11) stime(12).
    let ut: f64 = f.get(11).context("utime")?.parse()?;
    let st: f64 = f.get(12).context("stime")?.parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(((ut + st) / tck, rss_kb * 1024))
}

async fn metric_value(http: &reqwest::Client, url: &str, name: &str) -> u64 {
    let Ok(resp) = http.get(url).send().await else {
        return 0;
    };
    let Ok(text) = resp.text().await else {
        return 0;
    };
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (corpus, avg_span) = corpus(&args.corpus)?;
    let sink_spans = Arc::new(AtomicU64::new(0));
    if let Some(addr) = args.sink {
        let svc = TraceServiceServer::new(Sink {
            spans: Arc::clone(&sink_spans),
        })
        .max_decoding_message_size(64 << 20)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(svc)
                .serve(addr)
                .await
            {
                eprintln!("sink failed: {e}");
            }
        });
    }
    let http = reqwest::Client::new();
    let delivered = {
        let sink_spans = Arc::clone(&sink_spans);
        let http = http.clone();
        let metric = args.count_metric.clone();
        move || {
            let sink_spans = Arc::clone(&sink_spans);
            let http = http.clone();
            let metric = metric.clone();
            async move {
                match &metric {
                    Some((url, name)) => metric_value(&http, url, name).await,
                    None => sink_spans.load(Ordering::Relaxed),
                }
            }
        }
    };
    let channel = tonic::transport::Endpoint::from_shared(args.target.clone())?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to the target")?;
    let tck = clk_tck();
    let base_delivered = delivered().await;
    let (cpu0, _) = proc_usage(args.sut_pid, tck)?;
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let corpus = Arc::new(corpus);
    let mut tasks = Vec::new();
    let workers = if args.rate == 0 { args.concurrency } else { 1 };
    for w in 0..workers {
        let mut client = RawExportClient::new(channel.clone(), false);
        let (stop, sent, refused, corpus) = (
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&refused),
            Arc::clone(&corpus),
        );
        let rate = args.rate;
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            let interval =
                (rate > 0).then(|| Duration::from_secs_f64(SPANS_PER_REQUEST as f64 / rate as f64));
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = interval {
                    next += iv;
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(d).await;
                    }
                }
                let body = corpus[i % corpus.len()].clone();
                i += workers;
                match client.export(body, None).await {
                    Ok(_) => {
                        sent.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    // Sample RSS while loading.
    let mut rss_max = 0u64;
    let mut rss_sum = 0u64;
    let mut rss_n = 0u64;
    while t0.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok((_, rss)) = proc_usage(args.sut_pid, tck) {
            rss_max = rss_max.max(rss);
            rss_sum += rss;
            rss_n += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let sent = sent.load(Ordering::Relaxed);
    // Wait for delivery to finish (or stall for 5 s).
    let mut last = delivered().await;
    let mut last_change = Instant::now();
    while last.saturating_sub(base_delivered) < sent
        && last_change.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = delivered().await;
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let wall = t0.elapsed().as_secs_f64() - last_change.elapsed().as_secs_f64().min(5.0);
    let (cpu1, _) = proc_usage(args.sut_pid, tck)?;
    let cpu = cpu1 - cpu0;
    let got = last.saturating_sub(base_delivered);
    let out = serde_json::json!({
        "name": args.name,
        "corpus": args.corpus,
        "avg_span_bytes": (avg_span * 10.0).round() / 10.0,
        "offered_rate": args.rate,
        "sent_spans": sent,
        "refused_spans": refused.load(Ordering::Relaxed),
        "delivered_spans": got,
        "sut_cpu_seconds": (cpu * 100.0).round() / 100.0,
        "spans_per_cpu_second": if cpu > 0.0 { (got as f64 / cpu).round() } else { 0.0 },
        "wall_seconds": (wall * 100.0).round() / 100.0,
        "cpu_percent": ((cpu / args.duration.as_secs_f64()) * 1000.0).round() / 10.0,
        "rss_max_mib": ((rss_max as f64 / 1048576.0) * 10.0).round() / 10.0,
        "rss_avg_mib": if rss_n > 0 { ((rss_sum as f64 / rss_n as f64 / 1048576.0) * 10.0).round() / 10.0 } else { 0.0 },
    });
    println!("{out}");
    Ok(())
}
