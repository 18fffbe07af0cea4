//! The agent's write-ahead log: durable, bounded, ack-released.
//!
//! The on-disk format is described in [`format`]. Operations:
//! - [`Wal::append`] frames a record into the active segment; one writer
//!   thread, for the log's life, group-commits pending appends (one
//!   `writev` and one `fdatasync` for all of them) and answers each only
//!   once its record is durable.
//! - [`Wal::peek_after`] reads durable records in sequence order for the
//!   forwarder; [`Wal::ack`] releases records in memory at once and the
//!   cursor file follows at most once a second, and before a fully
//!   acknowledged segment is deleted ([`cursor`]).
//! - [`Wal::open`] recovers: reads the cursor, scans segments (a corrupt
//!   record loses only itself: the scan resyncs to the next valid frame,
//!   counting what it skipped), truncates a torn tail, and resumes
//!   sequences after the last record.
//!
//! Full policy (`--buffer-max-bytes` over the bytes of all segments):
//! `block` refuses the append ([`WalError::Full`] → receivers answer 429 /
//! RESOURCE_EXHAUSTED + retry hint); `drop-oldest` deletes the oldest
//! sealed segments, counting the records and spans lost. The log can exceed
//! the cap by at most one segment (the active one is never dropped), and
//! up to two released segments are kept as spares for reuse (`state::SPARES`).

mod cursor;
pub mod format;
mod recover;
mod state;
mod writer;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

pub use state::WalStats;

use crate::buffer::Record;
use state::State;

/// What to do when the log is at its byte cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse new records; receivers answer with a retry hint.
    Block,
    /// Delete the oldest segments (counted as dropped).
    DropOldest,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Segments are rolled once they reach this size.
    pub segment_bytes: u64,
    /// Cap on the bytes of all segments.
    pub max_bytes: u64,
    pub full_policy: FullPolicy,
    /// How long the writer waits for more appends before an fsync.
    pub group_commit: Duration,
    /// How often, at most, the acknowledged cursor is written to disk
    /// (records acknowledged since are resent after a crash, and the
    /// gateway deduplicates them).
    pub cursor_every: Duration,
}

/// The agent's cursor interval: one cursor write a second at most.
pub const CURSOR_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal full: {used} of {capacity} bytes in use")]
    Full { used: u64, capacity: u64 },
    #[error("wal i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("wal is closed")]
    Closed,
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

struct Append {
    payload: Bytes,
    spans: u32,
    done: oneshot::Sender<Result<u64, WalError>>,
    /// A place in the queue, given back once the append is answered.
    _room: OwnedSemaphorePermit,
}

/// Appends waiting for the writer. Bounded by the semaphore's permits:
/// when all are taken, `append` waits for room (receivers' in-flight limit
/// bounds how many can wait).
const APPEND_QUEUE: usize = 1024;

/// A handle to the log. Cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct Wal {
    shared: Arc<Shared>,
    /// To the writer thread; it stops once every sender is gone.
    tx: std::sync::mpsc::Sender<Append>,
    room: Arc<Semaphore>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: WalConfig,
    pub(crate) state: std::sync::Mutex<State>,
    pub(crate) durable: Notify,
    pub(crate) stats: WalStats,
    /// Fault injection: the next N commits fail as if `fdatasync` had.
    pub(crate) fail_syncs: std::sync::atomic::AtomicU32,
    /// Serialises writes of the cursor file and segment deletions.
    pub(crate) cursor_io: std::sync::Mutex<()>,
    /// Tests: the writer thread exits without its final cursor write, as a
    /// `kill -9` would.
    #[cfg(test)]
    pub(crate) crash: std::sync::atomic::AtomicBool,
    /// Tracks the writer task and every blocking file operation.
    pub(crate) tasks: telemetry::Shutdown,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append")
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation of State is completed before the guard is dropped
        // (no await inside), so a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wal {
    /// Opens (recovering) the log in `cfg.dir` and starts its writer
    /// thread on `shutdown`'s tracker, which also tracks the log's other
    /// blocking file work. The writer writes the cursor and stops when
    /// every handle is gone.
    pub async fn open(
        cfg: WalConfig,
        stats: WalStats,
        shutdown: &telemetry::Shutdown,
    ) -> Result<Self, WalError> {
        let dir = cfg.dir.clone();
        let recovered = shutdown
            .spawn_blocking(move || recover::recover(&dir))
            .await
            .map_err(|e| WalError::Io {
                path: cfg.dir.display().to_string(),
                source: std::io::Error::other(e),
            })??;
        if recovered.corrupt_bytes > 0 {
            tracing::error!(
                records = recovered.corrupt_records,
                bytes = recovered.corrupt_bytes,
                "wal recovery lost corrupt records and kept the valid ones around them"
            );
            stats.dropped("corrupt", recovered.corrupt_records, 0);
            stats.recovery_corrupt_bytes.inc_by(recovered.corrupt_bytes);
        }
        if recovered.truncated_bytes > 0 {
            tracing::warn!(
                bytes = recovered.truncated_bytes,
                "wal recovery cut bytes after the last valid record (a torn write, or what a reused segment held before)"
            );
        }
        tracing::info!(
            records = recovered.state.index.len(),
            next_seq = recovered.state.next_seq,
            acked = recovered.state.acked,
            "wal recovered"
        );
        stats.set_usage(&recovered.state);
        let shared = Arc::new(Shared {
            cfg,
            state: std::sync::Mutex::new(recovered.state),
            durable: Notify::new(),
            stats,
            fail_syncs: std::sync::atomic::AtomicU32::new(0),
            cursor_io: std::sync::Mutex::new(()),
            #[cfg(test)]
            crash: std::sync::atomic::AtomicBool::new(false),
            tasks: shutdown.clone(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Arc::clone(&shared);
        // One long-lived thread from the blocking pool: no hand-off to a
        // fresh blocking task per commit.
        drop(shutdown.spawn_blocking(move || writer::run(&w, &rx)));
        Ok(Self {
            shared,
            tx,
            room: Arc::new(Semaphore::new(APPEND_QUEUE)),
        })
    }

    /// Appends a record and returns its sequence once it is durable.
    pub async fn append(&self, payload: Bytes, spans: u64) -> Result<u64, WalError> {
        let (done, rx) = oneshot::channel();
        let spans = u32::try_from(spans).unwrap_or(u32::MAX);
        let room = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| WalError::Closed)?;
        self.tx
            .send(Append {
                payload,
                spans,
                done,
                _room: room,
            })
            .map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Durable records after `after_seq`, in order, up to `max_bytes` of
    /// payload (at least one record) and `max_records`.
    pub async fn peek_after(
        &self,
        after_seq: u64,
        max_bytes: usize,
        max_records: usize,
    ) -> Result<Vec<Record>, WalError> {
        let metas = {
            let s = self.shared.lock();
            let metas = s.metas_after(after_seq, max_bytes, max_records);
            // Just committed: no disk read, no hand-off to a blocking thread.
            if let Some(records) = s.hot_records(&metas) {
                return Ok(records);
            }
            metas
        };
        if metas.is_empty() {
            return Ok(Vec::new());
        }
        let shared = Arc::clone(&self.shared);
        let tasks = shared.tasks.clone();
        tasks
            .spawn_blocking(move || state::read_records(&shared, &metas))
            .await
            .map_err(|e| WalError::Io {
                path: "wal reader".into(),
                source: std::io::Error::other(e),
            })?
    }

    /// Waits until a durable record after `after_seq` exists or `timeout`.
    pub async fn wait_after(&self, after_seq: u64, timeout: Duration) {
        let notified = self.shared.durable.notified();
        tokio::pin!(notified);
        // Registered before the check, so a commit in between still wakes us.
        notified.as_mut().enable();
        if self.shared.lock().durable_seq > after_seq {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// Records every record up to `seq` as committed and releases them.
    /// The cursor file follows within `cursor_every`; when a segment is
    /// fully acknowledged, the cursor is written and the segment deleted
    /// before this returns. Returns the spans released.
    pub async fn ack(&self, seq: u64) -> Result<u64, WalError> {
        let (spans, delete_now) = cursor::release(&self.shared, seq);
        if delete_now {
            let shared = Arc::clone(&self.shared);
            let tasks = shared.tasks.clone();
            tasks
                .spawn_blocking(move || cursor::persist(&shared))
                .await
                .map_err(|e| WalError::Io {
                    path: "wal ack".into(),
                    source: std::io::Error::other(e),
                })??;
        }
        Ok(spans)
    }

    /// Every record up to this sequence is durable.
    pub fn durable_seq(&self) -> u64 {
        self.shared.lock().durable_seq
    }

    /// Whether an append would be refused now (`block` policy, within
    /// `slack` bytes of the cap).
    pub fn refusing(&self, slack: u64) -> bool {
        self.shared.cfg.full_policy == FullPolicy::Block
            && self.shared.lock().disk_bytes.saturating_add(slack) >= self.shared.cfg.max_bytes
    }

    /// (records, bytes on disk, spans) not yet acknowledged.
    pub fn usage(&self) -> (usize, u64, u64) {
        let s = self.shared.lock();
        (s.index.len(), s.disk_bytes, s.unacked_spans)
    }

    pub fn stats(&self) -> &WalStats {
        &self.shared.stats
    }

    /// Fault injection for tests: the next `n` group commits fail as if the
    /// disk had refused the write (their appends get an error and are
    /// rolled back).
    pub fn inject_sync_failures(&self, n: u32) {
        self.shared
            .fail_syncs
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Tests: when the last handle goes, the writer exits as if killed,
    /// without writing the cursor.
    #[cfg(test)]
    pub(crate) fn crash_on_close(&self) {
        self.shared
            .crash
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
