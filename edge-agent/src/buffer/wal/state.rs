//! The log's in-memory state (segments, unacknowledged records) and the
//! blocking read path.

use std::{
    collections::VecDeque,
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::{Shared, WalError, format, io_err};
use crate::buffer::Record;

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub seq: u64,
    /// First sequence of the segment (its file name).
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub spans: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub first_seq: u64,
    /// Last sequence written to it (0 when empty).
    pub last_seq: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub dir: PathBuf,
    /// Oldest first; the last one is the active segment once one exists.
    pub segments: VecDeque<Segment>,
    /// Unacknowledged records (durable or being written), in order.
    pub index: VecDeque<Meta>,
    pub next_seq: u64,
    pub acked: u64,
    /// Every record up to here is durable.
    pub durable_seq: u64,
    pub disk_bytes: u64,
    pub unacked_spans: u64,
    /// Whether the last segment accepts appends (false after recovery and
    /// after a write error: the next append starts a new segment).
    pub active_open: bool,
    /// The cursor in the `ack` file, and when it was last written (see
    /// [`super::cursor`]).
    pub persisted: u64,
    pub persisted_at: std::time::Instant,
    /// Fully acknowledged segments to release once the cursor is written.
    pub doomed: Vec<u64>,
    /// Released segment files kept for reuse, by their old first sequence
    /// (at most [`SPARES`]).
    pub spares: Vec<u64>,
}

/// Released segments kept for reuse. A reused file's blocks are already
/// allocated and its size already set, so appending into it needs no
/// block allocation and no inode write per `fdatasync`.
pub(crate) const SPARES: usize = 2;

impl State {
    pub fn metas_after(&self, after: u64, max_bytes: usize, max_records: usize) -> Vec<Meta> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for m in self
            .index
            .iter()
            .filter(|m| m.seq > after && m.seq <= self.durable_seq)
        {
            if !out.is_empty() && (bytes + m.len as usize > max_bytes || out.len() >= max_records) {
                break;
            }
            bytes += m.len as usize;
            out.push(*m);
        }
        out
    }
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format::segment_name(first_seq))
}

pub(crate) fn spare_path(dir: &Path, old_first: u64) -> PathBuf {
    dir.join(format::spare_name(old_first))
}

/// Releases a segment file: kept as a spare while there is room, else
/// deleted. The caller has written the cursor past its records.
pub(crate) fn release_segment(shared: &Shared, dir: &Path, first: u64) -> Result<(), WalError> {
    let path = segment_path(dir, first);
    let keep = shared.lock().spares.len() < SPARES;
    if keep {
        let spare = spare_path(dir, first);
        match std::fs::rename(&path, &spare) {
            Ok(()) => {
                shared.lock().spares.push(first);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => Ok(()),
    }
}

/// Reads and checks the records `metas` name. Records whose segment was
/// dropped meanwhile are skipped; a record that fails its CRC is skipped and
/// counted as corrupt.
pub(crate) fn read_records(shared: &Shared, metas: &[Meta]) -> Result<Vec<Record>, WalError> {
    let dir = shared.lock().dir.clone();
    let mut out = Vec::with_capacity(metas.len());
    let mut open: Option<(u64, File)> = None;
    for m in metas {
        if open.as_ref().map(|(s, _)| *s) != Some(m.segment) {
            let path = segment_path(&dir, m.segment);
            match File::open(&path) {
                Ok(f) => open = Some((m.segment, f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    open = None;
                    continue;
                }
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        let Some((_, file)) = open.as_ref() else {
            continue;
        };
        let mut buf = vec![0u8; format::HEADER + m.len as usize];
        if let Err(e) = file.read_exact_at(&mut buf, m.offset) {
            return Err(io_err(&segment_path(&dir, m.segment))(e));
        }
        let ok = format::decode_header(&buf).is_some_and(|h| {
            h.seq == m.seq && h.crc == format::crc(h.seq, h.spans, &buf[format::HEADER..])
        });
        if !ok {
            shared.stats.dropped("corrupt", 1, u64::from(m.spans));
            tracing::error!(
                seq = m.seq,
                segment = m.segment,
                "wal record failed its checksum; skipped"
            );
            continue;
        }
        out.push(Record {
            seq: m.seq,
            payload: Bytes::from(buf).slice(format::HEADER..),
            spans: u64::from(m.spans),
        });
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WalError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// WAL metrics.
#[derive(Debug, Clone)]
pub struct WalStats {
    bytes: Gauge,
    records: Gauge,
    dropped_spans: Family<Reason, Counter>,
    dropped_records: Family<Reason, Counter>,
    pub(crate) acked: Counter,
    pub(crate) fsync_seconds: Histogram,
    pub(crate) appended_spans: Counter,
    /// Bytes of corrupt regions recovery skipped (their records are counted
    /// in `dropped_records{reason="corrupt"}`).
    pub(crate) recovery_corrupt_bytes: Counter,
}

impl Default for WalStats {
    fn default() -> Self {
        Self {
            bytes: Gauge::default(),
            records: Gauge::default(),
            dropped_spans: Family::default(),
            dropped_records: Family::default(),
            acked: Counter::default(),
            // 50 µs … ≈ 0.8 s
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
            appended_spans: Counter::default(),
            recovery_corrupt_bytes: Counter::default(),
        }
    }
}

impl WalStats {
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        registry.register(
            telemetry::metrics::AGENT_BUFFER_BYTES,
            "Bytes of WAL segments on disk",
            s.bytes.clone(),
        );
        registry.register(
            "meridian_agent_buffer_records",
            "Records not yet acknowledged by the gateway",
            s.records.clone(),
        );
        registry.register(
            telemetry::metrics::AGENT_SPANS_DROPPED,
            "Spans dropped by the buffer, by reason (buffer_full when the drop-oldest policy deletes segments, corrupt for failed checksums)",
            s.dropped_spans.clone(),
        );
        registry.register(
            "meridian_agent_buffer_records_dropped",
            "Records dropped by the buffer, by reason (buffer_full, corrupt: failed checksums on read or in recovery)",
            s.dropped_records.clone(),
        );
        registry.register(
            "meridian_agent_wal_fsync_seconds",
            "Latency of one WAL group commit (write + fdatasync)",
            s.fsync_seconds.clone(),
        );
        registry.register(
            "meridian_agent_wal_appended_spans",
            "Spans made durable in the WAL",
            s.appended_spans.clone(),
        );
        registry.register(
            "meridian_agent_wal_recovery_corrupt_bytes",
            "Bytes of corrupt WAL records that recovery skipped to reach the valid records after them",
            s.recovery_corrupt_bytes.clone(),
        );
        s
    }

    pub(crate) fn dropped(&self, reason: &'static str, records: u64, spans: u64) {
        self.dropped_records
            .get_or_create(&Reason { reason })
            .inc_by(records);
        self.dropped_spans
            .get_or_create(&Reason { reason })
            .inc_by(spans);
    }

    pub(crate) fn set_usage(&self, s: &State) {
        self.bytes.set(s.disk_bytes as i64);
        self.records.set(s.index.len() as i64);
    }

    /// Records dropped for `reason` so far.
    pub fn dropped_records(&self, reason: &'static str) -> u64 {
        self.dropped_records.get_or_create(&Reason { reason }).get()
    }

    /// Bytes of corrupt records recovery skipped so far.
    pub fn recovery_corrupt_bytes(&self) -> u64 {
        self.recovery_corrupt_bytes.get()
    }

    /// Spans dropped for `reason` so far.
    pub fn dropped_spans(&self, reason: &'static str) -> u64 {
        self.dropped_spans.get_or_create(&Reason { reason }).get()
    }
}
