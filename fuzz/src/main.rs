//! `fuzz`: every decoder of outside bytes under a mutation fuzzer, and the
//! decoded-size measurements behind `proto::bounds`.
//!
//! ```text
//! fuzz [--target NAME|all] [--iters N] [--seconds S] [--corpus DIR]
//!      [--crashes DIR] [--max-len BYTES] [--seed N]
//! fuzz --list                    the targets, what they decode, their bounds
//! fuzz --make-corpus DIR         write every target's seeds (real messages)
//! fuzz --amplify [--mib N]       peak allocation before/after the bounds
//! ```
//!
//! Coverage-guided engines need nightly (cargo-fuzz) or a separately
//! instrumented build (afl.rs); this runs on stable: seeds from the corpus
//! (real encoded messages, plus every regression case), mutated by
//! [`mutate`], each input under `catch_unwind` and a counting allocator
//! ([`alloc`]). With `--seconds` per target, `--target all` runs them one
//! after another; it exits 1 on the first failure of any target, with the
//! input saved under the crash directory.

#![allow(clippy::print_stdout)]

mod alloc;
mod amplify;
mod engine;
mod mutate;
mod targets;

use std::{fs, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Parser;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Debug, Parser)]
#[command(about = "Fuzz Meridian's decoders of outside bytes")]
struct Args {
    /// A target name, or `all`.
    #[arg(long, default_value = "all")]
    target: String,
    /// Executions per target at most.
    #[arg(long, default_value_t = u64::MAX)]
    iters: u64,
    /// Seconds per target at most.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seed corpus: a folder per target.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    /// Where failing inputs are written (a folder per target).
    #[arg(long, default_value = "fuzz-crashes")]
    crashes: PathBuf,
    /// Longest input generated.
    #[arg(long, default_value_t = 16 << 10)]
    max_len: usize,
    /// Seed of the mutator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// List the targets and exit.
    #[arg(long)]
    list: bool,
    /// Write every target's seeds under this folder and exit.
    #[arg(long)]
    make_corpus: Option<PathBuf>,
    /// Measure peak allocation of hostile inputs, before and after the
    /// bounds, and exit.
    #[arg(long)]
    amplify: bool,
    /// Size of the hostile inputs of `--amplify`, MiB.
    #[arg(long, default_value_t = 8)]
    mib: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all = targets::all();
    if args.list {
        for t in &all {
            println!("{:<16} {}\n{:<16} bound: {}", t.name, t.about, "", t.bound);
        }
        return Ok(());
    }
    if let Some(dir) = &args.make_corpus {
        for t in &all {
            let d = dir.join(t.name);
            fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
            for (i, seed) in (t.seeds)().iter().enumerate() {
                fs::write(d.join(format!("seed-{i}.bin")), seed)?;
            }
        }
        println!(
            "wrote the seeds of {} targets under {}",
            all.len(),
            dir.display()
        );
        return Ok(());
    }
    if args.amplify {
        return amplify::run(args.mib);
    }
    let chosen: Vec<&targets::Target> = all
        .iter()
        .filter(|t| args.target == "all" || t.name == args.target)
        .collect();
    if chosen.is_empty() {
        bail!("no target {:?} (see --list)", args.target);
    }
    engine::quiet_panics();
    let budget = engine::Budget {
        iters: args.iters,
        time: Duration::from_secs_f64(args.seconds.max(0.0)),
        max_len: args.max_len,
        seed: args.seed,
    };
    let (mut execs, mut failures) = (0u64, 0usize);
    for t in chosen.iter().copied() {
        let r = engine::run(t, &args.corpus, &args.crashes, &budget);
        let secs = r.elapsed.as_secs_f64();
        println!(
            "fuzz {}: {} execs in {:.1} s ({:.0}/s), {} corpus inputs, peak {} KiB (input of {} B), worst peak/bound {:.1} %{}",
            t.name,
            r.execs,
            secs,
            r.execs as f64 / secs.max(1e-9),
            r.corpus,
            r.peak >> 10,
            r.peak_len,
            r.worst_permille as f64 / 10.0,
            r.failure
                .as_ref()
                .map(|f| format!(", FAILED: {f}"))
                .unwrap_or_default()
        );
        execs += r.execs;
        failures += usize::from(r.failure.is_some());
    }
    println!(
        "fuzz summary: {} targets, {execs} execs, {failures} failed",
        chosen.len()
    );
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
