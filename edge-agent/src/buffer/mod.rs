//! The agent's buffer between receivers and the forwarder.
//!
//! Records are encoded OTLP `ExportTraceServiceRequest`s with a sequence
//! number. The forwarder reads them in order and releases them with
//! [`Buffer::ack`] only after the gateway said the store committed them
//! (end-to-end ack). Two implementations behind one enum:
//! - [`wal::Wal`] (`--durability wal`, the default): receivers answer the
//!   client only once its spans are on disk (group commit, `fdatasync`);
//!   survives `kill -9` and restarts.
//! - [`MemoryBuffer`] (`--durability memory`): faster, lost on a crash.
//!
//! Full policy (`--buffer-full-policy`): `block` (default) refuses appends,
//! which receivers turn into HTTP 429 + Retry-After / gRPC
//! RESOURCE_EXHAUSTED + RetryInfo; `drop-oldest` discards the oldest records
//! and counts them. Memory stays bounded under any load either way.

mod memory;
pub mod wal;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

pub use memory::{BufferFull, MemoryBuffer};
pub use wal::{FullPolicy, Wal, WalConfig, WalError, WalStats};

/// Room below which [`Buffer::refusing`] says yes (the smallest request
/// worth reading).
pub const REFUSE_SLACK: u64 = 64 << 10;

/// One buffered request.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub payload: Bytes,
    pub spans: u64,
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("buffer full: {used} of {capacity} bytes in use")]
    Full { used: u64, capacity: u64 },
    #[error("buffer i/o failed: {0}")]
    Io(String),
}

#[derive(Debug, Clone)]
pub enum Buffer {
    Memory(Arc<MemoryBuffer>),
    Wal(Wal),
}

impl Buffer {
    /// Appends a record; returns once it is as safe as the durability mode
    /// promises (in memory, or on disk).
    pub async fn append(&self, payload: Bytes, spans: u64) -> Result<u64, AppendError> {
        match self {
            Self::Memory(m) => m.append(payload, spans).map_err(|f| AppendError::Full {
                used: f.used,
                capacity: f.capacity,
            }),
            Self::Wal(w) => w.append(payload, spans).await.map_err(|e| match e {
                WalError::Full { used, capacity } => AppendError::Full { used, capacity },
                other => AppendError::Io(other.to_string()),
            }),
        }
    }

    pub async fn peek_after(
        &self,
        after: u64,
        max_bytes: usize,
        max_records: usize,
    ) -> Result<Vec<Record>, String> {
        match self {
            Self::Memory(m) => Ok(m.peek_after(after, max_bytes, max_records)),
            Self::Wal(w) => w
                .peek_after(after, max_bytes, max_records)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn wait_after(&self, after: u64, timeout: Duration) {
        match self {
            Self::Memory(m) => m.wait_after(after, timeout).await,
            Self::Wal(w) => w.wait_after(after, timeout).await,
        }
    }

    /// Releases every record up to `seq`; returns the spans released.
    pub async fn ack(&self, seq: u64) -> Result<u64, String> {
        match self {
            Self::Memory(m) => Ok(m.ack(seq)),
            Self::Wal(w) => w.ack(seq).await.map_err(|e| e.to_string()),
        }
    }

    /// The highest sequence that is durable (memory: appended).
    pub fn last_durable(&self) -> u64 {
        match self {
            Self::Memory(m) => m.last_seq(),
            Self::Wal(w) => w.durable_seq(),
        }
    }

    /// Whether appends are being refused: the `block` policy and less than
    /// [`REFUSE_SLACK`] bytes left. Receivers ask before reading a request,
    /// so that a refused request costs no parsing.
    pub fn refusing(&self) -> bool {
        match self {
            Self::Memory(m) => m.refusing(REFUSE_SLACK),
            Self::Wal(w) => w.refusing(REFUSE_SLACK),
        }
    }

    /// (records, bytes, spans) held.
    pub fn usage(&self) -> (usize, u64, u64) {
        match self {
            Self::Memory(m) => m.usage(),
            Self::Wal(w) => w.usage(),
        }
    }
}
