//! The in-memory buffer (`--durability memory`): a bounded record queue
//! with sequence numbers and ack-release, block or drop-oldest when full.

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::{FullPolicy, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer full: {used} of {capacity} bytes in use")]
pub struct BufferFull {
    pub used: u64,
    pub capacity: u64,
}

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<Record>,
    bytes: u64,
    spans: u64,
    next_seq: u64,
}

/// A bounded in-memory record queue with sequence numbers and ack-release.
#[derive(Debug)]
pub struct MemoryBuffer {
    inner: Mutex<Inner>,
    /// Woken on append, so the forwarder need not poll.
    appended: Notify,
    /// Maximum bytes of payload held; appends beyond are refused.
    capacity: u64,
    /// Mirrors the bytes held, for `/metrics`.
    bytes_gauge: Gauge,
    policy: FullPolicy,
    /// (records, spans) discarded by the drop-oldest policy.
    dropped: prometheus_client::metrics::counter::Counter,
}

impl MemoryBuffer {
    pub fn new(capacity: u64) -> Self {
        Self::with_policy(capacity, FullPolicy::Block)
    }

    pub fn with_policy(capacity: u64, policy: FullPolicy) -> Self {
        Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Inner::default()
            }),
            appended: Notify::new(),
            capacity,
            bytes_gauge: Gauge::default(),
            policy,
            dropped: prometheus_client::metrics::counter::Counter::default(),
        }
    }

    /// Spans discarded by the drop-oldest policy.
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.get()
    }

    /// The counter of spans discarded by drop-oldest (register it).
    pub fn dropped_counter(&self) -> prometheus_client::metrics::counter::Counter {
        self.dropped.clone()
    }

    /// The gauge that tracks bytes held (register it in a registry).
    pub fn bytes_gauge(&self) -> Gauge {
        self.bytes_gauge.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue half
        // updated (every mutation is a single push/pop plus counters), so a
        // poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record; refuses when it would exceed the capacity (a record
    /// larger than the whole capacity is accepted into an empty buffer, so
    /// one large request cannot wedge the agent).
    pub fn append(&self, payload: Bytes, spans: u64) -> Result<u64, BufferFull> {
        let mut inner = self.lock();
        let size = payload.len() as u64;
        while inner.bytes + size > self.capacity && !inner.records.is_empty() {
            if self.policy == FullPolicy::Block {
                return Err(BufferFull {
                    used: inner.bytes,
                    capacity: self.capacity,
                });
            }
            if let Some(old) = inner.records.pop_front() {
                inner.bytes -= old.payload.len() as u64;
                inner.spans -= old.spans;
                self.dropped.inc_by(old.spans);
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += size;
        inner.spans += spans;
        inner.records.push_back(Record {
            seq,
            payload,
            spans,
        });
        self.bytes_gauge.set(inner.bytes as i64);
        drop(inner);
        self.appended.notify_one();
        Ok(seq)
    }

    /// Records after `after_seq`, up to `max_bytes` (at least one record) and
    /// `max_records`. Empty when there are none.
    pub fn peek_after(&self, after_seq: u64, max_bytes: usize, max_records: usize) -> Vec<Record> {
        let inner = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for r in inner.records.iter().filter(|r| r.seq > after_seq) {
            if !out.is_empty() && (bytes + r.payload.len() > max_bytes || out.len() >= max_records)
            {
                break;
            }
            bytes += r.payload.len();
            out.push(r.clone());
        }
        out
    }

    /// Waits until a record after `after_seq` exists or `timeout` passes.
    pub async fn wait_after(&self, after_seq: u64, timeout: Duration) {
        let notified = self.appended.notified();
        if self
            .lock()
            .records
            .back()
            .is_some_and(|r| r.seq > after_seq)
        {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// Releases every record up to and including `seq`. Returns the spans
    /// released.
    pub fn ack(&self, seq: u64) -> u64 {
        let mut inner = self.lock();
        let mut spans = 0;
        while inner.records.front().is_some_and(|r| r.seq <= seq) {
            if let Some(r) = inner.records.pop_front() {
                inner.bytes -= r.payload.len() as u64;
                inner.spans -= r.spans;
                spans += r.spans;
            }
        }
        self.bytes_gauge.set(inner.bytes as i64);
        spans
    }

    /// The last sequence handed out (0 before the first append).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// (records, bytes, spans) currently held.
    pub fn usage(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (inner.records.len(), inner.bytes, inner.spans)
    }

    /// Whether an append would be refused now (`block` policy, within
    /// `slack` bytes of the capacity).
    pub fn refusing(&self, slack: u64) -> bool {
        self.policy == FullPolicy::Block && self.usage().1.saturating_add(slack) >= self.capacity
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn bounded_ordered_and_released_by_ack() {
        let b = MemoryBuffer::new(100);
        assert_eq!(b.append(rec(40), 1).unwrap(), 1);
        assert_eq!(b.append(rec(40), 2).unwrap(), 2);
        assert_eq!(
            b.append(rec(40), 3),
            Err(BufferFull {
                used: 80,
                capacity: 100
            })
        );
        let batch = b.peek_after(0, 1000, 10);
        assert_eq!(batch.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(b.peek_after(0, 10, 10).len(), 1, "at least one record");
        assert_eq!(b.peek_after(1, 1000, 10)[0].seq, 2);
        assert_eq!(b.ack(1), 1);
        assert_eq!(b.usage(), (1, 40, 2));
        assert_eq!(b.append(rec(40), 3).unwrap(), 3);
        assert_eq!(b.ack(3), 5);
        assert_eq!(b.usage(), (0, 0, 0));
    }

    #[test]
    fn drop_oldest_discards_and_counts() {
        let b = MemoryBuffer::with_policy(100, FullPolicy::DropOldest);
        for i in 1..=5 {
            b.append(rec(40), i).unwrap();
        }
        let held: Vec<u64> = b.peek_after(0, 1000, 10).iter().map(|r| r.seq).collect();
        assert_eq!(held, [4, 5]);
        assert_eq!(b.dropped_spans(), 1 + 2 + 3);
    }

    #[test]
    fn oversized_record_fits_an_empty_buffer() {
        let b = MemoryBuffer::new(10);
        assert!(b.append(rec(50), 1).is_ok());
        assert!(b.append(rec(1), 1).is_err());
    }

    #[tokio::test]
    async fn wait_wakes_on_append() {
        let b = std::sync::Arc::new(MemoryBuffer::new(100));
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            b2.wait_after(0, Duration::from_secs(30)).await;
            b2.peek_after(0, 100, 10).len()
        });
        tokio::task::yield_now().await;
        b.append(rec(1), 1).unwrap();
        assert_eq!(waiter.await.unwrap(), 1);
    }
}
