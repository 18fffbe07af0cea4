//! The writer thread: group commit.
//!
//! One thread from the blocking pool for the log's life. It takes every
//! pending append (waiting up to the group-commit window for more when the
//! last commit held several appends), frames
//! them into the active segment (rolling segments at the size limit) with
//! one vectored write per touched segment (headers and the received
//! payloads, no copy), makes them durable with one `fdatasync` per touched
//! segment (and an fsync of the directory when a segment was created),
//! then answers every append. On an I/O error the batch is rolled back
//! (file truncated to its previous length, sequences reused) and every
//! append in it fails. Between commits, and when idle, it writes the
//! acknowledged cursor when due ([`super::cursor`]).

use std::{
    fs::{File, OpenOptions},
    io::{IoSlice, Write},
    sync::{
        Arc,
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::Instant,
};

use bytes::Bytes;

use super::{
    Append, FullPolicy, Shared, WalError, cursor, format, io_err,
    state::{Meta, Segment, State, segment_path, spare_path, sync_dir},
};

/// Appends answered per commit at most (bounds one commit's latency).
const MAX_BATCH: usize = 4096;

pub(crate) fn run(shared: &Arc<Shared>, rx: &Receiver<Append>) {
    let mut active: Option<File> = None;
    // Whether the last commit held more than one append: only then is the
    // window worth waiting for. With one client at a time (a batching SDK
    // or collector in front), waiting adds latency and a wake-up per
    // commit and gathers nothing; appends that queue up during a commit's
    // `fdatasync` are taken by the next commit either way.
    let mut concurrent = false;
    while let Some(first) = next(shared, rx) {
        let mut batch = vec![first];
        let window = if concurrent {
            shared.cfg.group_commit
        } else {
            std::time::Duration::ZERO
        };
        let deadline = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            let more = if left.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(left).ok()
            };
            match more {
                Some(a) => batch.push(a),
                None => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        concurrent = batch.len() > 1;
        let file = active.take();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(shared, file, batch)))
        {
            Ok(f) => active = f,
            Err(_) => {
                // The batch's appends were answered `Closed` as it unwound.
                tracing::error!("wal writer panicked; the next append starts a new segment");
                shared.lock().active_open = false;
            }
        }
        cursor::persist_if_due(shared);
    }
    #[cfg(test)]
    if shared.crash.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    if let Some(f) = &active {
        let s = shared.lock();
        if s.active_open
            && let Some(g) = s.segments.back()
        {
            cut_reused_tail(f, g.bytes);
        }
    }
    // Every handle is gone: a clean close leaves the cursor current.
    if cursor::due_in(shared).is_some()
        && let Err(error) = cursor::persist(shared)
    {
        tracing::error!(%error, "writing the wal cursor on close failed");
    }
}

/// The next append, writing the cursor meanwhile when it falls due;
/// `None` once every handle is gone.
fn next(shared: &Shared, rx: &Receiver<Append>) -> Option<Append> {
    loop {
        let Some(due) = cursor::due_in(shared) else {
            // Nothing to write: sleep until an append (no idle wake-ups).
            return rx.recv().ok();
        };
        match rx.recv_timeout(due) {
            Ok(a) => return Some(a),
            Err(RecvTimeoutError::Timeout) => cursor::persist_if_due(shared),
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Opens the file for a new segment at `path`: a spare renamed, when one
/// is left (its old contents are overwritten from offset 0; recovery never
/// mistakes them for records, see [`format`]), else a new file.
fn open_segment(state: &mut State, path: &std::path::Path) -> std::io::Result<File> {
    while let Some(old) = state.spares.pop() {
        if std::fs::rename(spare_path(&state.dir, old), path).is_ok() {
            match OpenOptions::new().write(true).open(path) {
                Ok(f) => return Ok(f),
                Err(_) => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
}

/// A reused file can be longer than its segment: cut what is left of its
/// old contents once the segment is sealed or closed, so that recovery
/// after a clean stop finds nothing to truncate. Best effort: the old
/// contents are harmless, recovery would cut them.
fn cut_reused_tail(f: &File, len: u64) {
    if f.metadata().is_ok_and(|m| m.len() > len) {
        let _ = f.set_len(len);
    }
}

/// Writes every frame, headers and payloads interleaved, in as few
/// `writev` calls as the kernel allows.
fn write_frames(file: &mut File, frames: &[([u8; format::HEADER], Bytes)]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = frames
        .iter()
        .flat_map(|(h, p)| [IoSlice::new(h), IoSlice::new(p)])
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Frames, writes and syncs one batch; answers every append. Returns the
/// active segment file to keep appending to.
fn commit(shared: &Shared, mut file: Option<File>, batch: Vec<Append>) -> Option<File> {
    let started = Instant::now();
    let mut state = shared.lock();
    if !state.active_open {
        file = None;
    }
    let undo = Undo::of(&state);
    let mut accepted: Vec<(Append, u64)> = Vec::with_capacity(batch.len());
    let mut frames: Vec<([u8; format::HEADER], Bytes)> = Vec::new();
    let mut touched: Vec<File> = Vec::new();
    let mut created_segment = false;
    let mut failure: Option<WalError> = None;

    for a in batch {
        if failure.is_some() {
            let _ = a.done.send(Err(WalError::Closed));
            continue;
        }
        let size = (format::HEADER + a.payload.len()) as u64;
        if let Err(e) = make_room(shared, &mut state, size) {
            let _ = a.done.send(Err(e));
            continue;
        }
        // Roll (or open) the active segment.
        let needs_new = file.is_none()
            || state
                .segments
                .back()
                .is_none_or(|g| g.bytes >= shared.cfg.segment_bytes);
        if needs_new {
            if let Some(mut f) = file.take() {
                if let Err(e) = write_frames(&mut f, &frames) {
                    failure = Some(io_err(&state.dir)(e));
                }
                frames.clear();
                if let Some(g) = state.segments.back() {
                    cut_reused_tail(&f, g.bytes);
                }
                touched.push(f);
            }
            if failure.is_none() {
                let first = state.next_seq;
                let path = segment_path(&state.dir, first);
                match open_segment(&mut state, &path) {
                    Ok(f) => {
                        file = Some(f);
                        created_segment = true;
                        state.segments.push_back(Segment {
                            first_seq: first,
                            last_seq: 0,
                            bytes: 0,
                        });
                        state.active_open = true;
                    }
                    Err(e) => failure = Some(io_err(&path)(e)),
                }
            }
            if failure.is_some() {
                let _ = a.done.send(Err(WalError::Closed));
                continue;
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let Some(seg) = state.segments.back_mut() else {
            let _ = a.done.send(Err(WalError::Closed));
            continue;
        };
        let offset = seg.bytes;
        let segment = seg.first_seq;
        seg.bytes += size;
        seg.last_seq = seq;
        state.disk_bytes += size;
        state.unacked_spans += u64::from(a.spans);
        state.index.push_back(Meta {
            seq,
            segment,
            offset,
            len: a.payload.len() as u32,
            spans: a.spans,
        });
        frames.push((format::header(seq, a.spans, &a.payload), a.payload.clone()));
        accepted.push((a, seq));
    }
    let dir = state.dir.clone();
    drop(state);

    // Write and sync outside the lock.
    if failure.is_none()
        && let Some(f) = file.as_mut()
        && let Err(e) = write_frames(f, &frames)
    {
        failure = Some(io_err(&dir)(e));
    }
    let injected = shared
        .fail_syncs
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok();
    if failure.is_none() && injected {
        failure = Some(io_err(&dir)(std::io::Error::other(
            "injected fdatasync failure",
        )));
    }
    if failure.is_none() {
        for f in touched.iter().chain(file.iter()) {
            if let Err(e) = f.sync_data() {
                failure = Some(io_err(&dir)(e));
                break;
            }
        }
    }
    if failure.is_none()
        && created_segment
        && let Err(e) = sync_dir(&dir)
    {
        failure = Some(e);
    }

    let mut state = shared.lock();
    match failure {
        None => {
            if let Some((_, last)) = accepted.last() {
                state.durable_seq = state.durable_seq.max(*last);
            }
            shared.stats.set_usage(&state);
            drop(state);
            shared
                .stats
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
            let spans: u64 = accepted.iter().map(|(a, _)| u64::from(a.spans)).sum();
            shared.stats.appended_spans.inc_by(spans);
            shared.durable.notify_waiters();
            for (a, seq) in accepted {
                let _ = a.done.send(Ok(seq));
            }
            file
        }
        Some(error) => {
            tracing::error!(%error, records = accepted.len(), "wal commit failed; batch rolled back");
            undo.apply(&mut state);
            shared.stats.set_usage(&state);
            drop(state);
            // Cut whatever this batch may have left in the segment files.
            undo.truncate_files(&dir);
            let msg = error.to_string();
            for (a, _) in accepted {
                let _ = a.done.send(Err(WalError::Io {
                    path: dir.display().to_string(),
                    source: std::io::Error::other(msg.clone()),
                }));
            }
            None
        }
    }
}

/// Enforces the byte cap before an append of `size` bytes.
fn make_room(shared: &Shared, state: &mut State, size: u64) -> Result<(), WalError> {
    let cap = shared.cfg.max_bytes;
    if state.disk_bytes + size <= cap {
        return Ok(());
    }
    match shared.cfg.full_policy {
        FullPolicy::Block => Err(WalError::Full {
            used: state.disk_bytes,
            capacity: cap,
        }),
        FullPolicy::DropOldest => {
            let (mut records, mut spans) = (0u64, 0u64);
            while state.disk_bytes + size > cap && state.segments.len() > 1 {
                let Some(g) = state.segments.pop_front() else {
                    break;
                };
                state.disk_bytes = state.disk_bytes.saturating_sub(g.bytes);
                while state
                    .index
                    .front()
                    .is_some_and(|m| m.segment == g.first_seq)
                {
                    if let Some(m) = state.index.pop_front() {
                        records += 1;
                        spans += u64::from(m.spans);
                    }
                }
                let path = segment_path(&state.dir, g.first_seq);
                if let Err(error) = std::fs::remove_file(&path) {
                    tracing::error!(%error, path = %path.display(), "could not delete a dropped wal segment");
                }
            }
            state.unacked_spans = state.unacked_spans.saturating_sub(spans);
            if records > 0 {
                shared.stats.dropped("buffer_full", records, spans);
                tracing::warn!(
                    records,
                    spans,
                    cap,
                    "wal full: dropped the oldest segments (drop-oldest policy)"
                );
            }
            // The active segment is never dropped: the log may exceed the
            // cap by at most one segment.
            Ok(())
        }
    }
}

/// What a failed commit restores.
struct Undo {
    next_seq: u64,
    disk_bytes: u64,
    unacked_spans: u64,
    index_len: usize,
    segments: Vec<Segment>,
    files: Vec<(std::path::PathBuf, u64)>,
}

impl Undo {
    fn of(s: &State) -> Self {
        Self {
            next_seq: s.next_seq,
            disk_bytes: s.disk_bytes,
            unacked_spans: s.unacked_spans,
            index_len: s.index.len(),
            segments: s.segments.iter().cloned().collect(),
            files: s
                .segments
                .iter()
                .map(|g| (segment_path(&s.dir, g.first_seq), g.bytes))
                .collect(),
        }
    }

    fn apply(&self, s: &mut State) {
        s.next_seq = self.next_seq;
        s.disk_bytes = self.disk_bytes;
        s.unacked_spans = self.unacked_spans;
        s.index.truncate(self.index_len);
        s.segments = self.segments.iter().cloned().collect();
        // The next append starts a fresh segment.
        s.active_open = false;
    }

    /// Cuts existing segments back to their length before the batch and
    /// deletes segments the batch created (their sequences will be reused).
    fn truncate_files(&self, dir: &std::path::Path) {
        for (path, len) in &self.files {
            if let Ok(f) = OpenOptions::new().write(true).open(path) {
                let _ = f.set_len(*len);
            }
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let created = e
                .file_name()
                .to_str()
                .and_then(format::parse_segment_name)
                .is_some_and(|first| first >= self.next_seq);
            if created {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
