//! The sampling side of cross-cluster tail decisions: what connects the tail
//! sampler to the `Decide` stream client ([`crate::verdict_stream`]).
//!
//! - Digests the sampler makes go into a bounded queue the client drains
//!   (`DIGEST_QUEUE` digests; full: the digest is not sent and counted, and
//!   its trace takes its local verdict at the timeout).
//! - The sampler sends digests only while the client has a stream
//!   (`connected`); a locally dropped trace waits for its verdict (up to the
//!   timeout) either way, and its digest is sent when the stream is back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use telemetry::metrics as names;
use tokio::sync::mpsc;

use super::tail::{Digest, Released};

/// Digests waiting for the stream client.
pub const DIGEST_QUEUE: usize = 16_384;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    verdict: &'static str,
    source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Cross-cluster tail counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct VerdictStats {
    /// Final decisions of traces that waited or were reported, by verdict
    /// (keep, drop) and source (gateway, timeout, full).
    verdicts: Family<Labels, Counter>,
    timeouts: Counter,
    late: Counter,
    digests_sent: Counter,
    digest_bytes: Counter,
    digests_dropped: Family<Reason, Counter>,
    awaiting: Gauge,
    connected: Gauge,
}

impl VerdictStats {
    pub fn register(r: &mut Registry) -> Self {
        let s = Self::default();
        r.register(
            names::AGENT_TAIL_VERDICTS,
            "Cross-cluster tail decisions of locally dropped traces, by verdict (keep, drop) and source (gateway, timeout, full)",
            s.verdicts.clone(),
        );
        r.register(
            names::AGENT_TAIL_VERDICT_TIMEOUTS,
            "Traces that took their local verdict because the gateway's did not come in time",
            s.timeouts.clone(),
        );
        r.register(
            names::AGENT_TAIL_LATE_VERDICTS,
            "Verdicts that arrived for traces no longer held",
            s.late.clone(),
        );
        r.register(
            names::AGENT_TAIL_DIGESTS_SENT,
            "Trace digests sent to the gateway",
            s.digests_sent.clone(),
        );
        r.register(
            names::AGENT_TAIL_DIGEST_BYTES,
            "Encoded bytes of the digest batches sent to the gateway",
            s.digest_bytes.clone(),
        );
        r.register(
            names::AGENT_TAIL_DIGESTS_DROPPED,
            "Digests not sent, by reason (queue_full, stream_full)",
            s.digests_dropped.clone(),
        );
        r.register(
            names::AGENT_TAIL_DECIDE_CONNECTED,
            "1 while the tail decision stream to a gateway is open",
            s.connected.clone(),
        );
        r.register(
            names::AGENT_TAIL_AWAITING,
            "Traces whose local drop waits for the gateway's verdict",
            s.awaiting.clone(),
        );
        s
    }

    pub fn verdicts(&self, verdict: &'static str, source: &'static str) -> u64 {
        self.verdicts
            .get_or_create(&Labels { verdict, source })
            .get()
    }

    pub fn timeouts(&self) -> u64 {
        self.timeouts.get()
    }

    pub fn digests_sent(&self) -> u64 {
        self.digests_sent.get()
    }

    pub fn digest_bytes(&self) -> u64 {
        self.digest_bytes.get()
    }

    pub fn digests_dropped(&self, reason: &'static str) -> u64 {
        self.digests_dropped.get_or_create(&Reason { reason }).get()
    }

    pub fn awaiting(&self) -> i64 {
        self.awaiting.get()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.get() == 1
    }

    pub(crate) fn set_connected(&self, on: bool) {
        self.connected.set(i64::from(on));
    }

    pub(crate) fn set_awaiting(&self, n: usize) {
        self.awaiting.set(n as i64);
    }

    pub(crate) fn sent(&self, digests: usize, bytes: usize) {
        self.digests_sent.inc_by(digests as u64);
        self.digest_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn dropped(&self, reason: &'static str, n: usize) {
        self.digests_dropped
            .get_or_create(&Reason { reason })
            .inc_by(n as u64);
    }

    fn count(&self, verdict: &'static str, source: &'static str, n: u64) {
        if n > 0 {
            self.verdicts
                .get_or_create(&Labels { verdict, source })
                .inc_by(n);
        }
    }

    /// Counts what a sampler call decided about waiting traces.
    pub(crate) fn observe(&self, r: &Released) {
        self.count("keep", "gateway", r.remote_kept);
        self.count("drop", "gateway", r.remote_dropped);
        self.count("drop", "timeout", r.verdict_timeouts);
        self.count("drop", "full", r.forced_local);
        self.timeouts.inc_by(r.verdict_timeouts);
        self.late.inc_by(r.late_verdicts);
    }
}

/// The sampler's end of the link to the `Decide` stream.
#[derive(Debug, Clone)]
pub struct VerdictLink {
    pub timeout: Duration,
    digests: mpsc::Sender<Digest>,
    connected: Arc<AtomicBool>,
    pub stats: VerdictStats,
}

/// The stream client's end.
#[derive(Debug)]
pub struct DigestFeed {
    pub digests: mpsc::Receiver<Digest>,
    pub connected: Arc<AtomicBool>,
}

/// A link and its feed: traces wait up to `timeout` for a verdict.
pub fn link(timeout: Duration, stats: VerdictStats) -> (VerdictLink, DigestFeed) {
    let (tx, rx) = mpsc::channel(DIGEST_QUEUE);
    let connected = Arc::new(AtomicBool::new(false));
    (
        VerdictLink {
            timeout,
            digests: tx,
            connected: Arc::clone(&connected),
            stats,
        },
        DigestFeed {
            digests: rx,
            connected,
        },
    )
}

impl VerdictLink {
    /// Whether the `Decide` stream is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Queues digests for the stream (full: counted, not sent).
    pub fn send(&self, digests: Vec<Digest>) {
        let mut dropped = 0;
        for d in digests {
            if self.digests.try_send(d).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.stats.dropped("queue_full", dropped);
        }
    }
}
