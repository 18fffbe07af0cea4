//! Opening the log: cursor, segment scan (resyncing past corrupt records,
//! see [`format`]), torn-tail truncation.
//!
//! A corrupt record in the middle of a segment costs only that record: the
//! bytes stay in place (offsets of the records after them are unchanged)
//! until the segment is released, and are counted again by each recovery
//! that reads them.

use std::{collections::VecDeque, fs::OpenOptions, path::Path};

use super::{
    WalError, format, io_err,
    state::{Meta, SPARES, Segment, State, segment_path, spare_path},
};

#[derive(Debug)]
pub(crate) struct Recovered {
    pub state: State,
    /// Bytes cut from torn or corrupt segment tails.
    pub truncated_bytes: u64,
    /// Records lost to corrupt regions followed by valid records (by the
    /// sequence gaps), and those regions' bytes.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered, WalError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let acked = match std::fs::read(dir.join("ack")) {
        Ok(b) => format::decode_cursor(&b).unwrap_or_else(|| {
            tracing::error!(
                "wal cursor is corrupt; replaying every record (the gateway deduplicates)"
            );
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err(&dir.join("ack"))(e)),
    };
    let mut firsts: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(format::parse_segment_name))
        .collect();
    firsts.sort_unstable();

    // Spares left by the last run (at most SPARES are kept).
    let mut spares: Vec<u64> = Vec::new();
    let mut found_spares: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(format::parse_spare_name))
        .collect();
    found_spares.sort_unstable();
    for old in found_spares {
        if spares.len() < SPARES {
            spares.push(old);
        } else {
            let path = spare_path(dir, old);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }

    let mut segments = VecDeque::new();
    let mut index = VecDeque::new();
    let mut truncated_bytes = 0u64;
    let (mut corrupt_records, mut corrupt_bytes) = (0u64, 0u64);
    let mut last_seq = acked;
    let mut disk_bytes = 0u64;
    let mut unacked_spans = 0u64;
    for (i, &first) in firsts.iter().enumerate() {
        let path = segment_path(dir, first);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let scanned = format::scan(&bytes, first);
        for c in &scanned.corrupt {
            tracing::error!(
                segment = %path.display(),
                offset = c.offset,
                bytes = c.bytes,
                records = c.records,
                "wal recovery skipped corrupt records; the records after them are kept"
            );
            corrupt_records += c.records;
            corrupt_bytes += c.bytes;
        }
        let (found, valid) = (scanned.records, scanned.valid_len);
        if valid < bytes.len() {
            truncated_bytes += (bytes.len() - valid) as u64;
            // A sealed segment (a later one exists) had no torn tail: the
            // records its bad tail held are the gap up to the next one.
            let expect = found.last().map_or(first, |r| r.seq + 1);
            if let Some(next) = firsts.get(i + 1).filter(|n| **n > expect) {
                tracing::error!(
                    segment = %path.display(),
                    offset = valid,
                    records = next - expect,
                    "wal recovery lost corrupt records at the end of a sealed segment"
                );
                corrupt_records += next - expect;
                corrupt_bytes += (bytes.len() - valid) as u64;
            }
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(valid as u64).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        let seg_last = found.last().map(|r| r.seq).unwrap_or(0);
        if found.is_empty() || seg_last <= acked {
            // Nothing left to deliver from this segment: a spare, or gone.
            if spares.len() < SPARES {
                std::fs::rename(&path, spare_path(dir, first)).map_err(io_err(&path))?;
                spares.push(first);
            } else {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
            continue;
        }
        for r in found.iter().filter(|r| r.seq > acked) {
            unacked_spans += u64::from(r.spans);
            index.push_back(Meta {
                seq: r.seq,
                segment: first,
                offset: r.offset,
                len: r.len,
                spans: r.spans,
            });
        }
        last_seq = last_seq.max(seg_last);
        disk_bytes += valid as u64;
        segments.push_back(Segment {
            first_seq: first,
            last_seq: seg_last,
            bytes: valid as u64,
        });
    }
    Ok(Recovered {
        state: State {
            dir: dir.to_path_buf(),
            segments,
            index,
            next_seq: last_seq + 1,
            acked,
            durable_seq: last_seq,
            disk_bytes,
            unacked_spans,
            active_open: false,
            persisted: acked,
            persisted_at: std::time::Instant::now(),
            doomed: Vec::new(),
            spares,
        },
        truncated_bytes,
        corrupt_records,
        corrupt_bytes,
    })
}
