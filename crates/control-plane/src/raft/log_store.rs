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
//!   order rebuilds the log.
//!
//! A bad record (short, too long, failed CRC, not a record) ends the
//! replay. What follows it decides what it means:
//! - nothing: a torn tail after a crash mid-write. It is cut off, which is
//!   safe because nothing in it was acknowledged: `append` calls openraft's
//!   callback only after `fdatasync`.
//! - only `Committed` records: they are never synced on their own, so a
//!   crash can lose one (the bad bytes) and keep a later one. Also a torn
//!   tail, cut off the same way (a committed id is only a hint).
//! - a valid entry, truncation or purge: that record was synced, and the
//!   sync made every byte before it durable, so the bad record was once
//!   good and may hold committed entries. Cutting there would silently drop
//!   them; [`LogStore::open`] refuses with [`LogStoreError::CorruptLog`],
//!   whose message gives the recovery steps (rejoin from the leader).
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

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("raft log i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A bad record with synced records after it: committed entries may be
    /// in it, so the node must not start from this log.
    #[error(
        "raft log {path} is corrupt at byte {offset}, and valid records follow at byte \
         {next_valid}: committed entries may be lost, so this node will not start. To \
         recover: remove this node from the cluster (`meridian-gateway admin members remove \
         <id>` on a healthy member), move {dir} aside (keep it for inspection), then start \
         the node again with the same --node-id and --join <a member's raft address>: it \
         receives the leader's snapshot and log. On a one-node cluster, restore {dir} from \
         a backup instead."
    )]
    CorruptLog {
        path: PathBuf,
        dir: PathBuf,
        offset: u64,
        next_valid: u64,
    },
}

/// What [`decode_all`] found.
#[derive(Debug, Default)]
struct Decoded {
    records: Vec<Record>,
    /// Length of the valid prefix (where a bad record starts).
    valid: usize,
    /// Offset of a synced record (entry, truncation, purge) after the bad
    /// one: the bad one is a corrupt middle, not a torn tail.
    synced_after: Option<usize>,
}

/// The record framed at `at`, if whole, within [`MAX_RECORD`], its CRC
/// matches and it parses; returns it and its end.
fn record_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let header = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let end = at + 8 + len as usize;
    let body = bytes.get(at + 8..end)?;
    // Every record is a JSON object: a cheap filter before the CRC.
    if body.first() != Some(&b'{') || crc32fast::hash(body) != crc {
        return None;
    }
    serde_json::from_slice::<Record>(body)
        .ok()
        .map(|rec| (rec, end))
}

/// Decodes records from the start of `bytes` up to the first bad one, then
/// looks past it for a synced record (see the module header).
fn decode_all(bytes: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    while let Some((rec, end)) = record_at(bytes, out.valid) {
        out.records.push(rec);
        out.valid = end;
    }
    if out.valid < bytes.len() {
        out.synced_after = (out.valid + 1..bytes.len()).find(|&at| {
            record_at(bytes, at).is_some_and(|(rec, _)| !matches!(rec, Record::Committed(_)))
        });
    }
    out
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
                fsio::private()
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
    /// cutting off a torn tail. A corrupt record with synced records after
    /// it is refused ([`LogStoreError::CorruptLog`]), never cut.
    pub fn open(dir: &Path) -> Result<Self, LogStoreError> {
        let path = dir.join("log");
        let io_at = |p: &Path| {
            let p = p.to_owned();
            move |source| LogStoreError::Io { path: p, source }
        };
        fsio::create_private_dir(dir).map_err(io_at(dir))?;
        let mut file = fsio::private()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_at(&path))?;
        fsio::restrict(&file).map_err(io_at(&path))?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(io_at(&path))?;
        let Decoded {
            records,
            valid,
            synced_after,
        } = decode_all(&bytes);
        if let Some(next) = synced_after {
            let err = LogStoreError::CorruptLog {
                path: path.clone(),
                dir: dir.to_owned(),
                offset: valid as u64,
                next_valid: next as u64,
            };
            tracing::error!(error = %err, "refusing to start from a corrupt raft log");
            return Err(err);
        }
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - valid,
                "raft log had a torn tail (a crash mid-write); cutting it off"
            );
            file.set_len(valid as u64)
                .and_then(|()| file.sync_all())
                .map_err(io_at(&path))?;
        }
        fsio::sync_dir(dir).map_err(io_at(dir))?;
        let vote_path = dir.join("vote.json");
        let vote = match fsio::read_optional(&vote_path).map_err(io_at(&vote_path))? {
            Some(b) => Some(
                serde_json::from_slice(&b).map_err(|e| io_at(&vote_path)(io::Error::other(e)))?,
            ),
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

/// The replay's decoder for the fuzz targets (`fuzz/`, feature
/// `fuzzing`, which no binary enables).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    /// What replaying `bytes` as a log file finds: records decoded, the
    /// length of the valid prefix, and the offset of a synced record after
    /// a bad one (a corrupt middle: [`LogStore::open`] refuses to start).
    pub fn decode(bytes: &[u8]) -> (usize, usize, Option<usize>) {
        let d = decode_all(bytes);
        (d.records.len(), d.valid, d.synced_after)
    }

    /// `body` framed as a record (`len | crc32 | body`), valid or not.
    pub fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The JSON bodies of one record of each kind, as `append`, `truncate`,
    /// `purge` and `save_committed` write them.
    pub fn sample_bodies() -> Vec<Vec<u8>> {
        let id = LogId::new(CommittedLeaderId::new(3, 1), 7);
        let command = r#"{"AcquireLease":{"shard":0,"node":1,"now_ms":5,"ttl_ms":6000}}"#;
        let mut records = vec![
            Record::Entry(Entry {
                log_id: id,
                payload: EntryPayload::Blank,
            }),
            Record::Truncate(8),
            Record::Purge(id),
            Record::Committed(Some(id)),
            Record::Committed(None),
        ];
        if let Ok(c) = serde_json::from_str(command) {
            records.push(Record::Entry(Entry {
                log_id: id,
                payload: EntryPayload::Normal(c),
            }));
        }
        records
            .iter()
            .filter_map(|r| serde_json::to_vec(r).ok())
            .collect()
    }
}
