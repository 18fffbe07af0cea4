//! The dead-letter directory: batches a destination refused permanently
//! (INVALID_ARGUMENT, PERMISSION_DENIED, … see [`super::on_error`]) are
//! released from the buffer, since retrying cannot succeed, but kept aside
//! here for an operator instead of vanishing.
//!
//! ```text
//! <buffer-dir>/dead-letter/                      0700
//!   <unix_ms:013>-<destination>-<first:020>-<last:020>.pb   0600
//! ```
//!
//! Each file is one encoded OTLP `ExportTraceServiceRequest`: the batch's
//! buffer records concatenated (protobuf concatenation merges them). It can
//! be replayed, once the cause is fixed, with any OTLP/HTTP client, e.g.
//! `curl -H 'content-type: application/x-protobuf' --data-binary @FILE
//! http://AGENT:4318/v1/traces`. Files are written under a temporary name,
//! synced, then renamed (a crash leaves no half file under a batch name).
//!
//! Bound: [`DEAD_LETTER_MAX_BYTES`] over every file (counted again from the
//! directory at start). Full policy: **the oldest files are evicted** to
//! make room, counted: the newest refusals describe the fault in force
//! now, and a long-running fault must not freeze the directory on its
//! first hour. A batch larger than the whole cap is not kept (counted as
//! `too_large`).

use std::{
    collections::BTreeMap,
    fs::{DirBuilder, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::buffer::Record;

/// Cap on the bytes of every dead-letter file together.
pub const DEAD_LETTER_MAX_BYTES: u64 = 64 << 20;

/// Why a batch could not be kept aside.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DeadLetterError + '_ {
    move |source| DeadLetterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What became of a batch handed to [`DeadLetter::keep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Written to `path`, after evicting `evicted` older files.
    Stored { path: PathBuf, evicted: usize },
    /// Larger than the whole cap: not kept.
    TooLarge { bytes: u64 },
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Dead-letter counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterStats {
    batches: Family<OutcomeLabel, Counter>,
    bytes: Counter,
    held_bytes: Gauge,
}

impl DeadLetterStats {
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        registry.register(
            "meridian_agent_dead_letter_batches",
            "Permanently refused batches, by outcome (kept, evicted, too_large, failed)",
            s.batches.clone(),
        );
        registry.register(
            "meridian_agent_dead_letter_bytes",
            "Bytes of refused batches written to the dead-letter directory",
            s.bytes.clone(),
        );
        registry.register(
            "meridian_agent_dead_letter_held_bytes",
            "Bytes in the dead-letter directory now",
            s.held_bytes.clone(),
        );
        s
    }

    fn count(&self, outcome: &'static str, n: u64) {
        self.batches
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n);
    }

    /// Batches with `outcome` so far (kept, evicted, too_large, failed).
    pub fn batches(&self, outcome: &'static str) -> u64 {
        self.batches.get_or_create(&OutcomeLabel { outcome }).get()
    }

    /// Bytes held in the directory now.
    pub fn held_bytes(&self) -> u64 {
        u64::try_from(self.held_bytes.get()).unwrap_or(0)
    }
}

/// The files held, oldest first (names sort by time), with their sizes.
#[derive(Debug, Default)]
struct Ledger {
    files: BTreeMap<String, u64>,
    bytes: u64,
}

/// A handle to the dead-letter directory, shared by the forwarders.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    dir: PathBuf,
    max_bytes: u64,
    ledger: Arc<Mutex<Ledger>>,
    stats: DeadLetterStats,
}

/// Writes `batch` to `tmp` (0600), syncs it, renames it to `path` and
/// syncs `dir`.
fn write_file(tmp: &Path, path: &Path, dir: &Path, batch: &[Record]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    for r in batch {
        f.write_all(&r.payload)?;
    }
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn is_batch_file(name: &str) -> bool {
    name.ends_with(".pb") && name.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

impl DeadLetter {
    /// Opens (creating, 0700) `dir` and counts the files already there.
    /// Blocking.
    pub fn open(
        dir: PathBuf,
        max_bytes: u64,
        stats: DeadLetterStats,
    ) -> Result<Self, DeadLetterError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_at(&dir))?;
        let mut ledger = Ledger::default();
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with(".tmp-") {
                // A write a crash interrupted.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if !is_batch_file(&name) {
                continue;
            }
            let len = entry.metadata().map_err(io_at(&entry.path()))?.len();
            ledger.bytes += len;
            ledger.files.insert(name, len);
        }
        stats.held_bytes.set(ledger.bytes as i64);
        Ok(Self {
            dir,
            max_bytes,
            ledger: Arc::new(Mutex::new(ledger)),
            stats,
        })
    }

    pub fn stats(&self) -> &DeadLetterStats {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `batch`, refused by `destination`, aside (on the blocking
    /// pool). A failure is counted (`failed`) and returned.
    pub async fn keep(
        &self,
        destination: &'static str,
        batch: Arc<[Record]>,
    ) -> Result<Kept, DeadLetterError> {
        let this = self.clone();
        let now = telemetry::clock::unix_ms_u64();
        let res = telemetry::run_blocking(move || this.keep_blocking(destination, &batch, now))
            .await
            .map_err(io_at(&self.dir))
            .and_then(|r| r);
        if res.is_err() {
            self.stats.count("failed", 1);
        }
        res
    }

    /// [`Self::keep`] at `unix_ms`, on the calling thread.
    pub fn keep_blocking(
        &self,
        destination: &str,
        batch: &[Record],
        unix_ms: u64,
    ) -> Result<Kept, DeadLetterError> {
        let size: u64 = batch.iter().map(|r| r.payload.len() as u64).sum();
        if size > self.max_bytes {
            self.stats.count("too_large", 1);
            return Ok(Kept::TooLarge { bytes: size });
        }
        let first = batch.first().map_or(0, |r| r.seq);
        let last = batch.last().map_or(0, |r| r.seq);
        let name = format!("{unix_ms:013}-{destination}-{first:020}-{last:020}.pb");
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        // Make room first: the cap holds even while the new file is written.
        let mut evicted = 0usize;
        while ledger.bytes + size > self.max_bytes {
            let Some((old, len)) = ledger.files.pop_first() else {
                break;
            };
            let path = self.dir.join(&old);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                ledger.files.insert(old, len);
                self.stats.held_bytes.set(ledger.bytes as i64);
                return Err(io_at(&path)(e));
            }
            ledger.bytes -= len;
            evicted += 1;
        }
        self.stats.count("evicted", evicted as u64);
        self.stats.held_bytes.set(ledger.bytes as i64);
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let path = self.dir.join(&name);
        if let Err(e) = write_file(&tmp, &path, &self.dir, batch) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_at(&path)(e));
        }
        if let Some(replaced) = ledger.files.insert(name, size) {
            ledger.bytes = ledger.bytes.saturating_sub(replaced);
        }
        ledger.bytes += size;
        self.stats.held_bytes.set(ledger.bytes as i64);
        self.stats.count("kept", 1);
        self.stats.bytes.inc_by(size);
        Ok(Kept::Stored { path, evicted })
    }
}

#[cfg(test)]
mod tests;
