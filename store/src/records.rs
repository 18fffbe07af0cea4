//! Small derived records kept beside the spans: the federation's trace
//! summaries, per-minute service edges, cluster clock offsets and span
//! backlinks. A record is `(kind, key) → (time, value)`; `put` replaces,
//! `scan` reads a key prefix (byte order) and an optional time range.
//! Values are opaque bytes to the store (the gateway encodes JSON).

use model::TraceId;

/// What a record holds; each kind is its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum RecordKind {
    /// A trace summary, keyed by trace id (hex).
    Summary = 1,
    /// A service edge aggregate for one minute, keyed by
    /// `minute|parent@cluster|child@cluster`.
    Edge = 2,
    /// A cluster's clock offset estimate, keyed by cluster.
    Offset = 3,
    /// A span link seen from the linked trace, keyed by
    /// `linked trace|linking trace|linking span|linked span` (hex).
    Backlink = 4,
    /// RED metrics of one agent's 10 s window for one series, keyed by
    /// `cluster|service|operation|kind|status|window start|agent.epoch`
    /// (the gateway's `red::keys`); kept for their own retention.
    Red10s = 5,
    /// RED metrics rolled up per minute (all agents), same key without
    /// the agent.
    Red1m = 6,
    /// RED metrics rolled up per hour.
    Red1h = 7,
}

/// The RED kinds: their retention is per resolution
/// ([`crate::SpanStore::delete_records`]), not the spans'.
pub const RED_KINDS: [RecordKind; 3] = [RecordKind::Red10s, RecordKind::Red1m, RecordKind::Red1h];

impl RecordKind {
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub key: String,
    /// Milliseconds since the Unix epoch: what retention and time-range
    /// scans go by.
    pub time_ms: i64,
    pub value: Vec<u8>,
    /// The trace the record belongs with: a sharded store keeps it on that
    /// trace's shard. `None`: the shard the caller writes to.
    pub trace: Option<TraceId>,
}

/// Which records to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordScan {
    pub kind: RecordKind,
    /// Keys starting with these bytes (empty: every key).
    pub prefix: String,
    /// `time_ms` within `[from, to]` when set.
    pub time: Option<(i64, i64)>,
    /// At most this many (per shard on a sharded store).
    pub limit: usize,
    /// The trace whose shard holds the records (a sharded store then asks
    /// only its owners); `None` asks every shard.
    pub trace: Option<TraceId>,
}

/// The smallest string greater than every string starting with `prefix`
/// in byte order, or `None` when there is none (empty or all 0xFF).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_string() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
