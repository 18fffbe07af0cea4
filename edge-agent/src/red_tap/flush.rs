//! Moves closed RED windows from the tap into their buffer.
//!
//! Once a second, the windows whose end passed are encoded as one
//! `WindowBatch` and appended to the RED buffer (a WAL of its own beside
//! the spans' one, `--durability` alike), from which a [`Forwarder`]
//! sends them with `ForwardWindows` and releases them after the gateway
//! committed them. At shutdown the open window is flushed too.
//!
//! The RED buffer's full policy is drop-oldest (metrics never push back on
//! span ingest): when the gateway is unreachable for longer than the
//! buffer holds, the oldest windows are dropped and counted by the
//! buffer's own drop counter.
//!
//! [`Forwarder`]: crate::forward::Forwarder

use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use telemetry::{Shutdown, clock::unix_ms};

use super::RedTap;
use crate::buffer::Buffer;

/// How often closed windows are looked for.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Appends the closed windows; returns the series appended.
pub async fn flush_once(tap: &RedTap, buffer: &Buffer, now_ms: i64, all: bool, epoch: u64) -> u64 {
    let Some(batch) = tap.take_closed(now_ms, all, epoch) else {
        return 0;
    };
    let series: u64 = batch.windows.iter().map(|w| w.series.len() as u64).sum();
    match buffer
        .append(Bytes::from(batch.encode_to_vec()), series.max(1))
        .await
    {
        Ok(_) => series,
        Err(error) => {
            tracing::warn!(%error, windows = batch.windows.len(), series, "red windows lost: buffer refused them");
            0
        }
    }
}

/// Runs until shutdown, then flushes every open window.
pub async fn run(tap: RedTap, buffer: Buffer, epoch: u64, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                flush_once(&tap, &buffer, unix_ms(), false, epoch).await;
            }
            _ = shutdown.cancelled() => break,
        }
    }
    flush_once(&tap, &buffer, unix_ms(), true, epoch).await;
}
