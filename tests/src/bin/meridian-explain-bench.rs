//! `GET /api/v1/explain` cost (issue 22; BENCHMARKS.md, "Explain"): the
//! seeded three-cluster workload (`integration_tests::explain_load`, the
//! WAN scenario: half the traces slow) written into a store over one
//! hour, then `query::explain::run` with `--per-side` traces a side
//! (selection: the slow half, `minDuration=250ms`; baseline: the rest),
//! `--runs` times. Prints p50, p99 and max of the whole call (store reads,
//! skew correction, comparison) and of the pure comparison alone.
//!
//! ```text
//! meridian-explain-bench [--per-side 1000] [--runs 20] [--store sqlite://PATH | postgres://…]
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
    store: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        per_side: 1_000,
        runs: 20,
        store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--per-side" => a.per_side = v.parse()?,
            "--runs" => a.runs = v.parse()?,
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let url = a
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("explain.db").display()));
    let store = store::open(std::slice::from_ref(&url), &StoreOptions::default()).await?;

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
    let req = params::request(
        Some(&qs),
        telemetry::clock::unix_nanos(),
        &query::QueryLimits::default(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut whole = Vec::with_capacity(a.runs);
    let mut pure = Vec::with_capacity(a.runs);
    let mut last = None;
    for _ in 0..a.runs {
        let t = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let answer = run::run(store.as_ref(), &req, &Scope::All, deadline).await?;
        whole.push(t.elapsed());
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
