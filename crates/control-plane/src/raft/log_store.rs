//! The Raft log on disk.
//!
//! Layout under `<data-dir>/raft/`:
//! - `vote.json`: a small file replaced atomically ([`fsio::write_atomic`]);
//!   `save_vote` returns only once the vote is on disk.
//! - `log`: an append-only file of records, each `len u32 | crc32 u32 |
//!   JSON`, one of: an entry, a truncation, a purge, the committed id. The
//!   committed id is written without a sync of its own (openraft does not
//!   need it durable; it rides on the next append's sync) and only speeds
//!   up re-applying the log after a restart. Replaying the file in
//!   order rebuilds the log; a torn or corrupt tail (a crash mid-write) ends
//!   the replay and is cut off, which is safe because nothing after it was
//!   acknowledged: `append` calls openraft's callback only after
//!   `fdatasync`.
//!
//! The whole log also lives in memory (the control plane's log is small and
//! purged behind snapshots). When purges leave the file mostly dead, it is
//! rewritten (temp + fsync + rename + fsync(dir)).

use std::{
    collections::BTreeMap,
    fmt::Debug,
    fs::{File, OpenOptions},
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    ops::RangeBounds,
    path::{Path, PathBuf},
    sync::Arc,
};

use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
    storage::{LogFlushed, RaftLogStorage},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{NodeId, TypeConfig, fsio};

/// Largest record accepted when replaying (a larger length is corruption).
const MAX_RECORD: u32 = 64 << 20;
/// Rewrite the file when it holds this many more records than live entries.
const REWRITE_SLACK: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry<TypeConfig>),
    /// Every entry at or after this index is gone.
    Truncate(u64),
    /// Every entry up to and including this log id is gone.
    Purge(LogId<NodeId>),
    /// The last committed log id known.
    Committed(Option<LogId<NodeId>>),
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// `None` only while a write runs on the blocking pool, or after that
    /// write's thread died (then every later write fails).
    file: Option<BufWriter<File>>,
    records: usize,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The persistent log store. Clones share the same log (the reader handed
/// to openraft is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn encode(rec: &Record) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(rec).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD)
        .ok_or_else(|| io::Error::other("log record too large"))?;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes records from the start of `bytes`; returns them and the length
/// of the valid prefix.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(body) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(rec) = serde_json::from_slice::<Record>(body) else {
            break;
        };
        out.push(rec);
        at += 8 + len as usize;
    }
    (out, at)
}

impl Inner {
    fn replay(&mut self, rec: Record) {
        match rec {
            Record::Entry(e) => {
                let index = e.log_id.index;
                // An entry at an index replaces it and everything after.
                let _ = self.entries.split_off(&index);
                self.entries.insert(index, e);
            }
            Record::Truncate(index) => {
                let _ = self.entries.split_off(&index);
            }
            Record::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                if self.last_purged.is_none_or(|p| p.index < id.index) {
                    self.last_purged = Some(id);
                }
            }
            Record::Committed(c) => self.committed = c,
        }
    }

    /// Appends records and `fdatasync`s them (unless `sync` is false), on
    /// the blocking pool.
    async fn write(&mut self, recs: &[Record]) -> io::Result<()> {
        self.write_with(recs, true).await
    }

    async fn write_with(&mut self, recs: &[Record], sync: bool) -> io::Result<()> {
        let mut bytes = Vec::new();
        for r in recs {
            bytes.extend_from_slice(&encode(r)?);
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the raft log file was lost by a failed write"))?;
        let (file, res) = telemetry::run_blocking(move || {
            let res = (|| -> io::Result<()> {
                file.write_all(&bytes)?;
                file.flush()?;
                if sync {
                    file.get_ref().sync_data()?;
                }
                Ok(())
            })();
            (file, res)
        })
        .await?;
        self.file = Some(file);
        res?;
        self.records += recs.len();
        Ok(())
    }

    /// Rewrites the file with only the live state when purges left it
    /// mostly dead.
    fn maybe_rewrite(&mut self) -> io::Result<()> {
        if self.records <= self.entries.len() + REWRITE_SLACK {
            return Ok(());
        }
        let path = self.dir.join("log");
        let tmp = self.dir.join(".log.tmp");
        let mut recs = 0usize;
        {
            let mut w = BufWriter::new(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?,
            );
            if let Some(p) = self.last_purged {
                w.write_all(&encode(&Record::Purge(p))?)?;
                recs += 1;
            }
            if self.committed.is_some() {
                w.write_all(&encode(&Record::Committed(self.committed))?)?;
                recs += 1;
            }
            for e in self.entries.values() {
                w.write_all(&encode(&Record::Entry(e.clone()))?)?;
                recs += 1;
            }
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        fsio::sync_dir(&self.dir)?;
        self.file = Some(BufWriter::new(OpenOptions::new().append(true).open(&path)?));
        self.records = recs;
        Ok(())
    }
}

impl LogStore {
    /// Opens (creating) the log under `dir`, replaying what is on disk and
    /// cutting off a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        let (records, valid) = decode_all(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - valid,
                "raft log had a torn tail (a crash mid-write); cutting it off"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        fsio::sync_dir(dir)?;
        let vote = match fsio::read_optional(&dir.join("vote.json"))? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(io::Error::other)?),
            None => None,
        };
        let mut inner = Inner {
            dir: dir.to_owned(),
            file: Some(BufWriter::new(file)),
            records: records.len(),
            entries: BTreeMap::new(),
            last_purged: None,
            vote,
            committed: None,
        };
        for r in records {
            inner.replay(r);
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let path = inner.dir.join("vote.json");
        blocking(move || fsio::write_atomic(&path, &bytes))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        if inner.committed == committed {
            return Ok(());
        }
        let rec = Record::Committed(committed);
        inner
            .write_with(std::slice::from_ref(&rec), false)
            .await
            .map_err(io_err)?;
        inner.replay(rec);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let recs: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
        // The lock keeps appends ordered; the fsync runs off the async workers.
        let mut inner = self.inner.lock().await;
        match inner.write(&recs).await {
            Ok(()) => {
                for r in recs {
                    inner.replay(r);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                callback.log_io_completed(Err(io::Error::new(kind, e.to_string())));
                Err(io_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let rec = Record::Truncate(log_id.index);
        inner
            .write(std::slice::from_ref(&rec))
            .await
            .map_err(io_err)?;
        inner.replay(rec);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let rec = Record::Purge(log_id);
        inner
            .write(std::slice::from_ref(&rec))
            .await
            .map_err(io_err)?;
        inner.replay(rec);
        inner.maybe_rewrite().map_err(io_err)
    }
}

async fn blocking<F>(f: F) -> io::Result<()>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    telemetry::run_blocking(f).await?
}
