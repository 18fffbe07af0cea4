//! `GET /api/v1/explain` cost (issue 22; BENCHMARKS.md, "Explain"): the
//! seeded three-cluster workload (`integration_tests::explain_load`, the
//! WAN scenario: half the traces slow) written into a store over one
//! hour, then `query::explain::run` with `--per-side` traces a side
//! (selection: the slow half, `minDuration=250ms`; baseline: the rest),
//! `--runs` times. Prints p50, p99 and max of the whole call (store reads,
//! skew correction, comparison) and of the pure comparison alone.
//! `--fill N` first stores N other spans (the storage benchmarks' corpus,
//! `proto::corpus::StoreCorpus`: ten other services) spread evenly over
//! the 24 h ending now, so the explained hour sits in a store of N spans.
//!
//! ```text
//! meridian-explain-bench [--per-side 1000] [--runs 20] [--fill 0] [--store sqlite://PATH | postgres://…]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use integration_tests::explain_load::{Batch, Plant, Rng, Sampling, Scenario, generate};
use model::{ClusterId, access::Scope};
use query::explain::{analyze, params, run};
use store::StoreOptions;

struct Args {
    per_side: usize,
    runs: usize,
    fill: u64,
    store: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        per_side: 1_000,
        runs: 20,
        fill: 0,
        store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--per-side" => a.per_side = v.parse()?,
            "--runs" => a.runs = v.parse()?,
            "--fill" => a.fill = v.parse()?,
            "--store" => a.store = Some(v),
            other => bail!("unknown flag {other}"),
        }
    }
    if a.per_side == 0 || a.runs == 0 {
        bail!("--per-side and --runs must be at least 1");
    }
    Ok(a)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut d: Vec<Duration>) {
    d.sort_unstable();
    println!(
        "{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} runs)",
        quantile(&d, 0.5).as_secs_f64() * 1e3,
        quantile(&d, 0.99).as_secs_f64() * 1e3,
        d.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        d.len()
    );
}

/// Stores `spans` spans of the storage corpus over the 24 h ending now,
/// in writes of 2,000 spans.
async fn fill(store: &dyn store::SpanStore, spans: u64) -> anyhow::Result<()> {
    const TRACES_PER_REQUEST: usize = 200; // 2,000 spans
    const DAY_NS: u64 = 24 * 3_600_000_000_000;
    let requests = spans / (TRACES_PER_REQUEST as u64 * 10);
    let traces = requests * TRACES_PER_REQUEST as u64;
    let now = telemetry::clock::unix_nanos();
    let mut corpus =
        proto::corpus::StoreCorpus::new(5, now - DAY_NS, (DAY_NS / traces.max(1)).max(1));
    let default = ClusterId::new("default")?;
    let t = Instant::now();
    let mut stored = 0u64;
    for _ in 0..requests {
        let batch = proto::convert::to_model(&corpus.request(TRACES_PER_REQUEST), &default);
        stored += store.write(&batch).await?.inserted;
        if stored % 1_000_000 < 2_000 {
            eprintln!("filled {stored} spans");
        }
    }
    eprintln!(
        "fill: {stored} spans in {:.0} s ({:.0} spans/s)",
        t.elapsed().as_secs_f64(),
        stored as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let url = a
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("explain.db").display()));
    let store = store::open(std::slice::from_ref(&url), &StoreOptions::default()).await?;

    if a.fill > 0 {
        fill(store.as_ref(), a.fill).await?;
    }

    // Half the traces take the slow WAN path: about `per_side` each side,
    // plus a tenth so that both sides fill.
    let n = (a.per_side as u64 * 22) / 10;
    let now_ms = telemetry::clock::unix_nanos() / 1_000_000;
    let start_ms = now_ms - 3_600_000 - 60_000;
    let sc = Scenario {
        tag: 0x77,
        plant: Plant::Wan,
        sampling: Sampling::NONE,
        n,
        t0: start_ms * 1_000_000,
        spacing_ms: 3_600_000 / n,
    };
    let default = ClusterId::new("default")?;
    let mut batch = Batch::default();
    let mut requests = Vec::new();
    let mut flush = |r: proto::otlp::ExportTraceServiceRequest| requests.push(r);
    generate(&mut Rng(77), &sc, &mut batch, &mut flush);
    flush(batch.take());
    let t = Instant::now();
    let mut spans = 0usize;
    for r in &requests {
        let s = proto::convert::to_model(r, &default);
        spans += s.len();
        store.write(&s).await?;
    }
    eprintln!(
        "wrote {n} traces ({spans} spans) into {} in {:.1} s",
        url.split(':').next().unwrap_or_default(),
        t.elapsed().as_secs_f64()
    );

    let qs = format!(
        "service=frontend&operation=GET%20%2Fcheckout&minDuration=250ms&start={}&end={}&limit={}",
        start_ms * 1_000,
        (start_ms + 3_600_000) * 1_000,
        a.per_side
    );
    let mut req = params::request(
        Some(&qs),
        telemetry::clock::unix_nanos(),
        &query::QueryLimits::default(),
    )
    .map_err(anyhow::Error::msg)?;
    if a.per_side > params::MAX_PER_SIDE {
        // The API caps `limit` here; the library call takes any bound.
        eprintln!(
            "--per-side {} is above the API's limit of {}: measuring the library call",
            a.per_side,
            params::MAX_PER_SIDE
        );
    }
    req.per_side = a.per_side;
    let mut whole = Vec::with_capacity(a.runs);
    let mut pure = Vec::with_capacity(a.runs);
    let mut last = None;
    for _ in 0..a.runs {
        let t = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let answer = run::run(store.as_ref(), &req, &Scope::All, deadline).await?;
        whole.push(t.elapsed());
        eprintln!(
            "run {}: {:.1} ms",
            whole.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        last = Some(answer);
    }
    let answer = last.context("at least one run")?;
    // The pure comparison alone, on the traces the first step reads.
    let sel: Vec<model::Trace> = {
        let q = req.selection.store_query();
        let mut q = q.clone();
        q.limit = a.per_side;
        store.search(&q).await?.traces
    };
    let mut bq = req.baseline.store.clone();
    bq.limit = a.per_side * 2;
    let base: Vec<model::Trace> = store
        .search(&bq)
        .await?
        .traces
        .into_iter()
        .filter(|t| !req.selection.matches(t))
        .take(a.per_side)
        .collect();
    for _ in 0..a.runs {
        let t = Instant::now();
        let e = analyze::explain(&sel, &base, &analyze::Options::default());
        pure.push(t.elapsed());
        std::hint::black_box(e);
    }
    let e = &answer.explanation;
    println!(
        "per side {}: selection {} traces ({} candidates), baseline {} ({} candidates), partial {}, top {}={} ({:.1})",
        a.per_side,
        e.selection.traces,
        e.selection.candidates,
        e.baseline.traces,
        e.baseline.candidates,
        answer.partial,
        e.dimensions
            .first()
            .map(|d| d.key.as_str())
            .unwrap_or_default(),
        e.dimensions
            .first()
            .map(|d| d.value.as_str())
            .unwrap_or_default(),
        e.dimensions.first().map_or(0.0, |d| d.score),
    );
    report("explain (store reads + comparison)", whole);
    report(
        &format!("comparison alone ({} + {} traces)", sel.len(), base.len()),
        pure,
    );
    Ok(())
}
