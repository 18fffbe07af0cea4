//! The receivers' sink: cluster stamp → RED tap → head sampling → (tail
//! sampling) → buffer.
//!
//! Cluster stamp ([`Sink::screen`], at receipt, before anything is
//! buffered): every resource gets `k8s.cluster.name` = the agent's
//! `--cluster` (the gateway checks it against the agent's certificate). A
//! resource that claims a different cluster is **refused**, not rewritten:
//! a pod naming another cluster is misconfigured or lying, and rewriting
//! would hide that. The client gets OTLP partial success (`rejected_spans`
//! and the claim in `error_message`); the other resources of the request
//! are kept.
//!
//! Without tail sampling the client is answered once its kept spans are as
//! durable as `--durability` promises. With tail sampling, spans wait in
//! memory for their trace's decision (the client is answered on receipt, as
//! with the OTel Collector); a background task ([`SamplingSink::run_ticker`])
//! moves decided traces into the buffer.
//!
//! The policy is live ([`SharedPolicy`]: the control client replaces it when
//! the gateway cluster sends one). Head sampling and `/sampling` read it per
//! request. The tail sampler follows it too: when the `[tail]` section
//! changes, the traces it holds are decided at once under the old policies
//! (they were accepted under them), then a sampler for the new section (or
//! none) takes over, with an empty decision cache.
//!
//! With cross-cluster verdicts ([`SamplingSink::with_verdicts`]) the
//! sampler's digests go to the verdict stream client
//! ([`crate::verdict_stream`], the `Decide` RPC) and the verdicts it
//! receives come back through [`SamplingSink::apply_verdicts`].
//!
//! Here: the sink and its ticker; [`stats`] its counters; [`tail_state`]
//! the tail sampler that follows the live policy.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use bytes::Bytes;
use model::{ClusterId, sampling::SamplingConfig};
use prost::Message;
use proto::{otlp::ExportTraceServiceRequest, view::TraceView};
use receiver::{Prepared, Screened, Sink, SinkError};
use sampling::{InvalidPolicy, head};
use telemetry::{Shutdown, clock::SystemClock};

use super::{
    tail::{Digest, Released, TailSampler},
    verdicts::VerdictLink,
};
use crate::{
    buffer::{AppendError, Buffer},
    red_tap::RedTap,
};

mod stats;
mod tail_state;
#[cfg(test)]
mod tests;

pub use stats::SamplingStats;
use tail_state::TailState;

/// How long a client is told to wait when the buffer is full.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the tail sampler looks for traces whose window passed.
const TICK: Duration = Duration::from_millis(100);

/// How often it looks when no tail sampler runs (idle cost, P3).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The current policy, replaceable at run time (the control client installs
/// the gateway cluster's); readers take a cheap `Arc` snapshot.
pub type SharedPolicy = Arc<RwLock<Arc<SamplingConfig>>>;

pub fn snapshot(p: &SharedPolicy) -> Arc<SamplingConfig> {
    p.read()
        .map(|g| Arc::clone(&g))
        .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
}

/// Installs `cfg` as the policy every sampler and `/sampling` read next.
pub fn install(p: &SharedPolicy, cfg: Arc<SamplingConfig>) {
    *p.write().unwrap_or_else(|e| e.into_inner()) = cfg;
}

/// The sink receivers call.
#[derive(Debug, Clone)]
pub struct SamplingSink {
    buffer: Buffer,
    red: RedTap,
    /// The agent's `--cluster`, stamped on every resource.
    cluster: ClusterId,
    policy: SharedPolicy,
    tail: Arc<Mutex<TailState>>,
    /// A tail sampler exists (checked without the lock when the policy has
    /// no `[tail]`: then only a sampler left to retire needs the lock).
    tail_on: Arc<std::sync::atomic::AtomicBool>,
    stats: SamplingStats,
    /// With the `block` policy: refuse before tail-sampling when the buffer
    /// holds this many bytes (a decision could not be buffered).
    block_at: Option<u64>,
    /// Set (under the sampler lock) by the final flush: later requests are
    /// refused with a retry hint instead of being held and never decided.
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// Cross-cluster verdicts (`None`: local decisions only).
    verdicts: Option<VerdictLink>,
}

impl SamplingSink {
    pub fn new(
        buffer: Buffer,
        red: RedTap,
        cluster: ClusterId,
        policy: SharedPolicy,
        stats: SamplingStats,
        block_at: Option<u64>,
    ) -> Result<Self, InvalidPolicy> {
        let cfg = snapshot(&policy);
        cfg.validate().map_err(InvalidPolicy::Config)?;
        let tail = TailState::new(cfg)?;
        let tail_on = Arc::new(std::sync::atomic::AtomicBool::new(tail.sampler.is_some()));
        Ok(Self {
            buffer,
            red,
            cluster,
            policy,
            tail: Arc::new(Mutex::new(tail)),
            tail_on,
            stats,
            block_at,
            closed: Arc::default(),
            verdicts: None,
        })
    }

    /// Sends digests over `link` and holds locally dropped traces for the
    /// gateway's verdict (up to the link's timeout, whether or not its
    /// stream is open right now).
    pub fn with_verdicts(mut self, link: VerdictLink) -> Self {
        self.verdicts = Some(link);
        self
    }

    /// Sets the sampler's verdict mode: on with this sink's link; digests
    /// are sent only while the stream is open.
    fn follow_link(&self, s: &mut TailSampler<SystemClock>) {
        match &self.verdicts {
            Some(link) => {
                s.set_verdicts(Some(link.timeout));
                s.set_connected(link.connected());
            }
            None => s.set_verdicts(None),
        }
    }

    /// Applies the gateway's verdicts (`Some(policy)`: keep) and buffers
    /// what they keep.
    pub async fn apply_verdicts(&self, verdicts: Vec<(model::TraceId, Option<String>)>) {
        let released = {
            let mut t = lock(&self.tail);
            let mut r = Released::default();
            if let Some(s) = &mut t.sampler {
                for (tid, keep) in &verdicts {
                    r.absorb(s.verdict(*tid, keep.as_deref()));
                }
            }
            r
        };
        self.release(released).await;
    }

    /// Digests to send again on a new stream (traces waiting for a
    /// verdict, recent local keeps).
    pub fn resend_digests(&self) -> Vec<Digest> {
        lock(&self.tail)
            .sampler
            .as_mut()
            .map(TailSampler::resend_digests)
            .unwrap_or_default()
    }

    /// Decides traces whose window passed, every 100 ms, until shutdown;
    /// then decides the rest and buffers them. Also moves the tail sampler
    /// to a changed policy when no request did.
    pub async fn run_ticker(self, shutdown: Shutdown) {
        let tail = Arc::clone(&self.tail);
        loop {
            // Without a tail sampler there is nothing to decide: wake
            // rarely, only to follow a policy no request brought in.
            let on = self.tail_on.load(std::sync::atomic::Ordering::SeqCst)
                || snapshot(&self.policy).tail.is_some();
            let stop = tokio::select! {
                _ = tokio::time::sleep(if on { TICK } else { IDLE_TICK }) => false,
                _ = shutdown.cancelled() => true,
            };
            let cfg = snapshot(&self.policy);
            let released = {
                let mut t = lock(&tail);
                if stop {
                    self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let mut r = t.follow(&cfg);
                self.tail_on
                    .store(t.sampler.is_some(), std::sync::atomic::Ordering::SeqCst);
                if let Some(s) = &mut t.sampler {
                    self.follow_link(s);
                    r.absorb(if stop { s.flush() } else { s.tick() });
                }
                let u = t
                    .sampler
                    .as_ref()
                    .map(TailSampler::usage)
                    .unwrap_or_default();
                self.stats.tail_held_spans.set(u.spans as i64);
                self.stats.tail_held_bytes.set(u.bytes as i64);
                if let Some(v) = &self.verdicts {
                    v.stats.set_awaiting(u.awaiting);
                }
                r
            };
            self.release(released).await;
            if stop {
                return;
            }
        }
    }

    async fn release(&self, mut r: Released) {
        if let Some(v) = &self.verdicts {
            v.stats.observe(&r);
            v.send(std::mem::take(&mut r.digests));
        }
        self.stats.tail_sampled_out.inc_by(r.spans_dropped);
        self.stats.tail_kept.inc_by(r.spans_kept);
        self.stats.tail_traces_kept.inc_by(r.traces_kept);
        self.stats.tail_traces_dropped.inc_by(r.traces_dropped);
        if r.is_empty() {
            return;
        }
        if let Err(e) = self.buffer.append(r.encode_request(), r.spans_kept).await {
            self.stats.tail_buffer_refused.inc_by(r.spans_kept);
            tracing::warn!(error = %e, spans = r.spans_kept, "buffer refused tail-sampled spans");
        }
    }

    async fn append(&self, payload: Bytes, spans: u64) -> Result<(), SinkError> {
        match self.buffer.append(payload, spans).await {
            Ok(_) => Ok(()),
            Err(AppendError::Full { used, capacity }) => {
                tracing::warn!(
                    used,
                    capacity,
                    "buffer full, refusing spans with a retry hint"
                );
                Err(SinkError::Full {
                    retry_after: FULL_RETRY_AFTER,
                })
            }
            Err(AppendError::Io(message)) => {
                tracing::error!(error = %message, "buffer write failed, refusing spans with a retry hint");
                Err(SinkError::Unavailable {
                    message,
                    retry_after: FULL_RETRY_AFTER,
                })
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every sampler mutation completes or panics before any await; a
    // poisoned sampler is still structurally valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sink for SamplingSink {
    fn screen(&self, req: &mut ExportTraceServiceRequest) -> Screened {
        let stamped = proto::convert::stamp_cluster(req, &self.cluster);
        if let Some(claim) = &stamped.first {
            self.stats
                .foreign_cluster_refused
                .inc_by(stamped.refused_spans);
            tracing::warn!(
                error = %claim,
                resources = stamped.refused_resources,
                spans = stamped.refused_spans,
                "refused spans claiming another cluster"
            );
        }
        Screened {
            refused_spans: stamped.refused_spans,
            message: stamped.first.map(|m| m.to_string()),
        }
    }

    /// The buffer refuses appends (`block` policy, full): answer with the
    /// retry hint before the request is parsed.
    fn refuse_early(&self) -> Option<SinkError> {
        self.buffer.refusing().then_some(SinkError::Full {
            retry_after: FULL_RETRY_AFTER,
        })
    }

    /// Without tail sampling: the tail sampler holds decoded spans, so
    /// otherwise the view would be built and then set aside.
    fn takes_encoded(&self) -> bool {
        snapshot(&self.policy).tail.is_none()
            && !self.tail_on.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Without tail sampling, a request is buffered from the bytes it came
    /// in: as received with the cluster stamp spliced in
    /// ([`proto::view::stamp_cluster`]) when head sampling keeps
    /// everything; otherwise rebuilt from the spans head sampling keeps
    /// ([`head::plan`], [`proto::view::rebuild`]). The RED tap reads the
    /// view, before sampling as on the decoding path. A resource claiming
    /// another cluster, or a tail policy: the decoding path.
    fn prepare_encoded(&self, bytes: &Bytes, view: &TraceView<'_>) -> Option<Prepared> {
        // Checked again: the policy may have changed since `takes_encoded`.
        let cfg = snapshot(&self.policy);
        if cfg.tail.is_some()
            || self.tail_on.load(std::sync::atomic::Ordering::SeqCst)
            || proto::view::foreign_claim(view, self.cluster.as_str())
        {
            return None;
        }
        let all = view.spans.len() as u64;
        let prepared = if head::keeps_all(&cfg.head) {
            let record = match proto::view::stamp_cluster(bytes, view, self.cluster.as_str()) {
                Ok(None) => bytes.clone(),
                Ok(Some(stamped)) => Bytes::from(stamped),
                Err(_) => return None,
            };
            self.stats.head_adjusted.inc_by(all as f64);
            Prepared { record, spans: all }
        } else {
            let plan = head::plan(view, &cfg.head, self.cluster.as_str());
            let record = if plan.kept == 0 {
                Bytes::new()
            } else {
                match proto::view::rebuild(bytes, view, &plan.edits, self.cluster.as_str()) {
                    Ok(b) => Bytes::from(b),
                    Err(_) => return None,
                }
            };
            self.stats.head_sampled_out.inc_by(plan.dropped);
            self.stats.head_adjusted.inc_by(plan.adjusted);
            Prepared {
                record,
                spans: plan.kept,
            }
        };
        self.red.observe_view(view);
        Some(prepared)
    }

    async fn accept_encoded(&self, prepared: Prepared) -> Result<(), SinkError> {
        if prepared.spans == 0 {
            // Head sampling kept nothing: accepted, nothing to buffer.
            return Ok(());
        }
        self.append(prepared.record, prepared.spans).await
    }

    async fn accept(
        &self,
        mut req: ExportTraceServiceRequest,
        spans: u64,
    ) -> Result<(), SinkError> {
        self.red.observe(&req);
        let cfg = snapshot(&self.policy);
        let kept = if head::keeps_all(&cfg.head) {
            self.stats.head_adjusted.inc_by(spans as f64);
            spans
        } else {
            let (kept, dropped, adjusted) = head::apply(&mut req, &cfg.head, self.cluster.as_str());
            self.stats.head_sampled_out.inc_by(dropped);
            self.stats.head_adjusted.inc_by(adjusted);
            kept
        };
        if kept == 0 {
            return Ok(());
        }
        let tail_on = self.tail_on.load(std::sync::atomic::Ordering::SeqCst);
        if cfg.tail.is_none() && !tail_on {
            return self.append(Bytes::from(req.encode_to_vec()), kept).await;
        }
        if cfg.tail.is_some()
            && let Some(limit) = self.block_at
            && self.buffer.usage().1 >= limit
        {
            return Err(SinkError::Full {
                retry_after: FULL_RETRY_AFTER,
            });
        }
        let (released, untouched) = {
            let mut t = lock(&self.tail);
            if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SinkError::Unavailable {
                    message: "the agent is stopping".into(),
                    retry_after: FULL_RETRY_AFTER,
                });
            }
            let mut released = t.follow(&cfg);
            self.tail_on
                .store(t.sampler.is_some(), std::sync::atomic::Ordering::SeqCst);
            match &mut t.sampler {
                Some(s) => {
                    self.follow_link(s);
                    released.absorb(s.ingest(req));
                    (released, None)
                }
                None => (released, Some(req)),
            }
        };
        self.release(released).await;
        match untouched {
            // The policy just turned tail sampling off.
            Some(req) => self.append(Bytes::from(req.encode_to_vec()), kept).await,
            None => Ok(()),
        }
    }
}
