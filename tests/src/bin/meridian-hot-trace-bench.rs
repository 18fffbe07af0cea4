//! Hot-trace write cost (issue 17, defect 9; BENCHMARKS.md): one trace of
//! `--spans` spans written into one Postgres shard in batches of
//! `--batch`, as a very long trace arrives. A write that costs what it
//! adds keeps the batch time flat as the trace grows; one that re-reads or
//! rewrites everything the trace holds grows with it (O(N²) in all).
//!
//! Prints the total, the spans per second, and the mean batch time of the
//! first and the last tenth of the batches (their ratio is the growth), then
//! checks that a replay of the whole trace stores nothing new.
//!
//! ```text
//! meridian-hot-trace-bench --pg postgres://postgres@127.0.0.1:PORT [--spans 100000] [--batch 100]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use model::Span;
use store::{
    SpanStore, StoreOptions,
    postgres::PgStore,
    testsuite::{SpanBuilder, pg},
};

struct Args {
    pg: String,
    spans: u64,
    batch: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        pg: String::new(),
        spans: 100_000,
        batch: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--pg" => a.pg = v.trim_end_matches('/').to_owned(),
            "--spans" => a.spans = v.parse()?,
            "--batch" => a.batch = v.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.pg.is_empty() {
        bail!("--pg postgres://USER@HOST:PORT is required");
    }
    if a.batch == 0 || a.spans < a.batch {
        bail!("--batch must be at least 1 and at most --spans");
    }
    Ok(a)
}

fn span(i: u64) -> Span {
    // One trace; a root and children, each with a few attributes, spread
    // over a minute ending now (one day partition).
    let mut b = SpanBuilder::new(7, i + 1, if i.is_multiple_of(3) { "api" } else { "db" })
        .name(if i.is_multiple_of(2) {
            "GET /cart"
        } else {
            "SELECT cart"
        })
        .attr("http.status_code", model::AttrValue::Int(200))
        .attr("peer", model::AttrValue::Str(format!("pod-{}", i % 17)));
    if i > 0 {
        b = b.parent(1);
    }
    let now = telemetry::clock::unix_nanos();
    b.at_unix(now - 60_000_000_000 + i * 1_000, 1).build()
}

fn mean(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len().max(1) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let url = pg::fresh_databases(&a.pg, 1).await.remove(0);
    let store = PgStore::open(0, &url, &StoreOptions::default()).await?;
    let batches = a.spans / a.batch;
    let mut times = Vec::with_capacity(batches as usize);
    let started = Instant::now();
    let mut inserted = 0;
    for b in 0..batches {
        let spans: Vec<Span> = (b * a.batch..(b + 1) * a.batch).map(span).collect();
        let t = Instant::now();
        inserted += store.write(&spans).await?.inserted;
        times.push(t.elapsed());
    }
    let total = started.elapsed().as_secs_f64();
    let tenth = (times.len() / 10).max(1);
    let first = mean(&times[..tenth]);
    let last = mean(&times[times.len() - tenth..]);
    println!(
        "hot trace: {inserted} spans in {batches} batches of {} in {total:.1} s = {:.0} spans/s; \
         batch time first tenth {:.2} ms, last tenth {:.2} ms (x{:.2})",
        a.batch,
        inserted as f64 / total,
        first * 1e3,
        last * 1e3,
        last / first
    );
    // A replay of the whole trace, in the same batches: nothing new.
    let started = Instant::now();
    let mut again = 0;
    for b in 0..batches {
        let spans: Vec<Span> = (b * a.batch..(b + 1) * a.batch).map(span).collect();
        again += store.write(&spans).await?.inserted;
    }
    println!(
        "replay: {again} spans stored again (must be 0) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if again != 0 || inserted != batches * a.batch {
        bail!(
            "stored {inserted} then {again} more; expected exactly {}",
            batches * a.batch
        );
    }
    let back = store
        .get_trace(store::testsuite::trace_id(7))
        .await?
        .context("the trace is stored")?;
    println!("read back: {} spans", back.spans.len());
    Ok(())
}
