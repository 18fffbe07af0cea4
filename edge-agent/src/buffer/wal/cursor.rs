//! The acknowledged cursor: released in memory at once, written to disk
//! lazily.
//!
//! [`release`] drops acknowledged records from the index (the forwarder
//! never sees them again, and the byte cap counts them free) without any
//! I/O. The cursor file is rewritten (temp, fsync, rename, fsync of the
//! directory: four syscalls that each wait for the disk) at most once per
//! [`WalConfig::cursor_every`](super::WalConfig) by the writer thread, and
//! at once, by the acknowledging call, before a fully acknowledged segment
//! is released (kept as a spare for reuse, or deleted). A clean close
//! writes it too.
//!
//! What a lag costs: after a crash, the records acknowledged since the last
//! write are read from their segments again and resent. The gateway's
//! writes are idempotent on (trace id, span id), so they are stored once;
//! nothing acknowledged can be lost, because the cursor on disk is never
//! ahead of the gateway's commits.

use std::time::Instant;

use super::{Shared, WalError, format, state};

/// Drops every record up to `seq` from the index; returns the spans
/// released, and whether fully acknowledged segments are waiting to be
/// deleted (the caller then runs [`persist`] before returning).
pub(crate) fn release(shared: &Shared, seq: u64) -> (u64, bool) {
    let mut s = shared.lock();
    if seq <= s.acked {
        return (0, false);
    }
    s.acked = seq;
    let mut spans = 0u64;
    while s.index.front().is_some_and(|m| m.seq <= seq) {
        if let Some(m) = s.index.pop_front() {
            spans += u64::from(m.spans);
        }
    }
    s.unacked_spans = s.unacked_spans.saturating_sub(spans);
    // Sealed segments (all but the last) whose records are all acked.
    while s.segments.len() > 1 && s.segments.front().is_some_and(|g| g.last_seq <= seq) {
        if let Some(g) = s.segments.pop_front() {
            s.disk_bytes = s.disk_bytes.saturating_sub(g.bytes);
            s.doomed.push(g.first_seq);
        }
    }
    shared.stats.set_usage(&s);
    let delete_now = !s.doomed.is_empty();
    drop(s);
    shared.stats.acked.inc_by(spans);
    (spans, delete_now)
}

/// How long until the cursor is due to be written; `None` when the file is
/// current.
pub(crate) fn due_in(shared: &Shared) -> Option<std::time::Duration> {
    let s = shared.lock();
    (s.acked > s.persisted || !s.doomed.is_empty()).then(|| {
        (s.persisted_at + shared.cfg.cursor_every).saturating_duration_since(Instant::now())
    })
}

/// Writes the cursor if it moved, then deletes the segments it released.
/// Serialised by `Shared::cursor_io`: the writer thread and an acknowledging
/// call may both get here.
pub(crate) fn persist(shared: &Shared) -> Result<(), WalError> {
    let _io = shared.cursor_io.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, acked, persisted, doomed) = {
        let mut s = shared.lock();
        (
            s.dir.clone(),
            s.acked,
            s.persisted,
            std::mem::take(&mut s.doomed),
        )
    };
    if acked > persisted
        && let Err(e) = state::write_atomic(&dir, "ack", &format::encode_cursor(acked))
    {
        // Kept for the next attempt: a segment is deleted only once the
        // cursor on disk is past it.
        let mut s = shared.lock();
        s.doomed.extend(doomed);
        s.persisted_at = Instant::now();
        return Err(e);
    }
    {
        let mut s = shared.lock();
        s.persisted = s.persisted.max(acked);
        s.persisted_at = Instant::now();
    }
    for first in doomed {
        // On an error the file stays until a restart: recovery finds its
        // records at or below the cursor and releases it again.
        state::release_segment(shared, &dir, first)?;
    }
    Ok(())
}

/// Runs [`persist`] when it is due, logging a failure (the cursor only
/// lags; the next attempt retries).
pub(crate) fn persist_if_due(shared: &Shared) {
    if due_in(shared).is_some_and(|d| d.is_zero())
        && let Err(error) = persist(shared)
    {
        tracing::error!(%error, "writing the wal cursor failed; it will be retried");
    }
}
