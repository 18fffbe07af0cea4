//! The fuzz loop: replay the corpus, then mutate it until the time or the
//! execution budget is spent. Every input runs under `catch_unwind` and
//! the counting allocator; a panic or a peak above the target's bound is
//! a failure, written to the crash directory and reported.

use std::{
    cell::RefCell,
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    alloc,
    mutate::{Rng, mutate},
    targets::Target,
};

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs a panic hook that records the message instead of printing it
/// (the engine reports it with the input).
pub fn quiet_panics() {
    panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        LAST_PANIC.with(|l| *l.borrow_mut() = msg);
    }));
}

#[derive(Debug, Clone)]
pub struct Budget {
    pub iters: u64,
    pub time: Duration,
    pub max_len: usize,
    pub seed: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub execs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    /// Largest peak seen, and its input's length.
    pub peak: usize,
    pub peak_len: usize,
    /// Largest peak / bound seen, in per mille.
    pub worst_permille: u64,
    pub failure: Option<String>,
}

/// Why one input failed.
fn check(target: &Target, input: &[u8], report: &mut Report) -> Result<(), String> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| alloc::measure(|| (target.run)(input))));
    report.execs += 1;
    match outcome {
        Ok((bound, peak)) => {
            if peak > report.peak {
                report.peak = peak;
                report.peak_len = input.len();
            }
            let permille = (peak as u64 * 1000) / bound.max(1) as u64;
            report.worst_permille = report.worst_permille.max(permille);
            if peak > bound {
                return Err(format!(
                    "allocated {peak} bytes at peak, above its bound of {bound} ({})",
                    target.bound
                ));
            }
            Ok(())
        }
        Err(_) => Err(format!(
            "panicked: {}",
            LAST_PANIC.with(|l| l.borrow().clone())
        )),
    }
}

/// The files of `dir`, sorted (an absent directory is empty).
pub fn load_dir(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| fs::read(p).ok())
        .collect()
}

/// FNV-1a, to name crash files.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn run(target: &Target, corpus_dir: &Path, crash_dir: &Path, budget: &Budget) -> Report {
    let mut seeds = load_dir(&corpus_dir.join(target.name));
    if seeds.is_empty() {
        seeds = (target.seeds)();
    }
    let mut report = Report {
        corpus: seeds.len(),
        ..Report::default()
    };
    let start = Instant::now();
    let fail = |input: &[u8], why: String, report: &mut Report| {
        let dir = crash_dir.join(target.name);
        let path = dir.join(format!("crash-{:016x}.bin", fnv(input)));
        let saved = fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&path, input))
            .map(|()| path.display().to_string())
            .unwrap_or_else(|e| format!("(not saved: {e})"));
        report.failure = Some(format!("{why}; input of {} bytes: {saved}", input.len()));
    };
    // The corpus as it is first: every committed regression case.
    for seed in &seeds {
        if let Err(why) = check(target, seed, &mut report) {
            fail(seed, why, &mut report);
            report.elapsed = start.elapsed();
            return report;
        }
    }
    let mut rng = Rng::new(budget.seed ^ fnv(target.name.as_bytes()));
    let mut input = Vec::with_capacity(budget.max_len);
    while report.execs < budget.iters {
        if report.execs.is_multiple_of(256) && start.elapsed() >= budget.time {
            break;
        }
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        mutate(&mut rng, &mut input, &seeds, target.dict, budget.max_len);
        if let Err(why) = check(target, &input, &mut report) {
            let failed = input.clone();
            fail(&failed, why, &mut report);
            break;
        }
    }
    report.elapsed = start.elapsed();
    report
}
