//! Opening the log: cursor, segment scan, torn-tail truncation.

use std::{collections::VecDeque, fs::OpenOptions, path::Path};

use super::{
    WalError, format, io_err,
    state::{Meta, Segment, State, segment_path},
};

#[derive(Debug)]
pub(crate) struct Recovered {
    pub state: State,
    /// Bytes cut from torn or corrupt segment tails.
    pub truncated_bytes: u64,
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

    let mut segments = VecDeque::new();
    let mut index = VecDeque::new();
    let mut truncated_bytes = 0u64;
    let mut last_seq = acked;
    let mut disk_bytes = 0u64;
    let mut unacked_spans = 0u64;
    for first in firsts {
        let path = segment_path(dir, first);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let (found, valid) = format::scan(&bytes);
        if valid < bytes.len() {
            truncated_bytes += (bytes.len() - valid) as u64;
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(valid as u64).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        let seg_last = found.last().map(|r| r.seq).unwrap_or(0);
        if found.is_empty() || seg_last <= acked {
            // Nothing left to deliver from this segment.
            std::fs::remove_file(&path).map_err(io_err(&path))?;
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
        },
        truncated_bytes,
    })
}
