//! The receivers' sink: RED tap → head sampling → (tail sampling) → buffer.
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
//! sampler's digests go to the `Decide` stream client and the verdicts it
//! receives come back through [`SamplingSink::apply_verdicts`].

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use bytes::Bytes;
use model::sampling::{HeadConfig, SamplingConfig};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use prost::Message;
use proto::otlp::ExportTraceServiceRequest;
use receiver::{Sink, SinkError};
use telemetry::Shutdown;

use super::{
    head,
    red::RedTap,
    tail::{Digest, Released, SystemClock, TailError, TailSampler},
    verdicts::VerdictLink,
};
use crate::buffer::{AppendError, Buffer};

/// How long a client is told to wait when the buffer is full.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the tail sampler looks for traces whose window passed.
const TICK: Duration = Duration::from_millis(100);

/// Sampling counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SamplingStats {
    pub head_sampled_out: Counter,
    /// Σ adjusted count (1/p) of spans head sampling kept: an unbiased
    /// estimate of the spans offered.
    pub head_adjusted: Counter<f64, std::sync::atomic::AtomicU64>,
    pub tail_sampled_out: Counter,
    pub tail_kept: Counter,
    pub tail_traces_kept: Counter,
    pub tail_traces_dropped: Counter,
    pub tail_held_spans: Gauge,
    pub tail_held_bytes: Gauge,
    /// Kept spans lost because the buffer refused them after a decision.
    pub tail_buffer_refused: Counter,
}

impl SamplingStats {
    pub fn register(r: &mut Registry) -> Self {
        let s = Self::default();
        r.register(
            "meridian_agent_spans_head_sampled_out",
            "Spans dropped by head sampling",
            s.head_sampled_out.clone(),
        );
        r.register(
            "meridian_agent_head_adjusted_spans",
            "Sum of the adjusted counts (1/p) of spans kept by head sampling",
            s.head_adjusted.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_sampled_out",
            "Spans dropped by tail sampling",
            s.tail_sampled_out.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_kept",
            "Spans kept by tail sampling",
            s.tail_kept.clone(),
        );
        r.register(
            "meridian_agent_tail_traces_kept",
            "Traces kept by tail sampling",
            s.tail_traces_kept.clone(),
        );
        r.register(
            "meridian_agent_tail_traces_dropped",
            "Traces dropped by tail sampling",
            s.tail_traces_dropped.clone(),
        );
        r.register(
            "meridian_agent_tail_held_spans",
            "Spans waiting for a tail decision",
            s.tail_held_spans.clone(),
        );
        r.register(
            "meridian_agent_tail_held_bytes",
            "Bytes waiting for a tail decision",
            s.tail_held_bytes.clone(),
        );
        r.register(
            "meridian_agent_spans_tail_buffer_refused",
            "Spans a tail decision kept but the full buffer refused",
            s.tail_buffer_refused.clone(),
        );
        s
    }
}

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

/// Checks everything a policy must pass to run: the ranges
/// ([`SamplingConfig::validate`]) and the tail policies' compilation.
pub fn check(cfg: &SamplingConfig) -> Result<(), PipelineError> {
    cfg.validate().map_err(PipelineError::Config)?;
    if let Some(t) = &cfg.tail {
        TailSampler::new(t, SystemClock::default())?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("sampling config: {0}")]
    Config(String),
    #[error(transparent)]
    Tail(#[from] TailError),
}

/// The tail sampler and the policy it was built from.
#[derive(Debug)]
struct TailState {
    applied: Arc<SamplingConfig>,
    sampler: Option<TailSampler<SystemClock>>,
}

impl TailState {
    fn new(cfg: Arc<SamplingConfig>) -> Result<Self, PipelineError> {
        let sampler = match &cfg.tail {
            Some(t) => Some(TailSampler::new(t, SystemClock::default())?),
            None => None,
        };
        Ok(Self {
            applied: cfg,
            sampler,
        })
    }

    /// Follows `cfg`: when its `[tail]` differs from the applied one, decides
    /// every held trace under the old policies (returned) and replaces the
    /// sampler.
    fn follow(&mut self, cfg: &Arc<SamplingConfig>) -> Released {
        if Arc::ptr_eq(&self.applied, cfg) {
            return Released::default();
        }
        let old = std::mem::replace(&mut self.applied, Arc::clone(cfg));
        if old.tail == cfg.tail {
            return Released::default();
        }
        let released = self
            .sampler
            .as_mut()
            .map(TailSampler::flush)
            .unwrap_or_default();
        self.sampler = match &cfg.tail {
            None => None,
            Some(t) => match TailSampler::new(t, SystemClock::default()) {
                Ok(s) => Some(s),
                Err(error) => {
                    // Policies are checked before they are installed.
                    tracing::error!(%error, "tail policy does not compile; tail sampling is off");
                    None
                }
            },
        };
        tracing::info!(
            enabled = self.sampler.is_some(),
            decided_early = released.traces_kept + released.traces_dropped,
            "tail sampling policy changed"
        );
        released
    }
}

/// The sink receivers call.
#[derive(Debug, Clone)]
pub struct SamplingSink {
    buffer: Buffer,
    red: RedTap,
    cluster: String,
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
        cluster: String,
        policy: SharedPolicy,
        stats: SamplingStats,
        block_at: Option<u64>,
    ) -> Result<Self, PipelineError> {
        let cfg = snapshot(&policy);
        cfg.validate().map_err(PipelineError::Config)?;
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
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stop = tokio::select! {
                _ = every.tick() => false,
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

/// Applies head sampling in place; returns the spans kept and dropped.
pub fn apply_head(
    req: &mut ExportTraceServiceRequest,
    cfg: &HeadConfig,
    cluster: &str,
) -> (u64, u64, f64) {
    let (mut kept, mut dropped, mut adjusted) = (0u64, 0u64, 0f64);
    for rs in &mut req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| proto::otlp::string_attr(&r.attributes, model::SERVICE_ATTRIBUTE))
            .unwrap_or(model::UNKNOWN_SERVICE)
            .to_owned();
        for ss in &mut rs.scope_spans {
            ss.spans.retain_mut(|span| {
                let p = head::probability(cfg, cluster, &service, &span.name);
                let Ok(tid) = model::TraceId::from_bytes(&span.trace_id) else {
                    // Receivers validated ids; keep rather than lose.
                    kept += 1;
                    adjusted += 1.0;
                    return true;
                };
                let d = head::decide(&tid, &span.trace_state, p);
                if !d.keep {
                    dropped += 1;
                    return false;
                }
                kept += 1;
                adjusted += d.adjusted_count();
                if d.threshold > 0 {
                    span.trace_state = head::with_th(&span.trace_state, d.threshold);
                }
                true
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    (kept, dropped, adjusted)
}

/// True when the head policy keeps everything (the common case: skip the
/// per-span work).
fn keeps_all(cfg: &HeadConfig) -> bool {
    cfg.default_probability >= 1.0
        && cfg
            .rules
            .iter()
            .all(|r| r.probability.is_none_or(|p| p >= 1.0))
}

impl Sink for SamplingSink {
    async fn accept(
        &self,
        mut req: ExportTraceServiceRequest,
        spans: u64,
    ) -> Result<(), SinkError> {
        self.red.observe(&req);
        let cfg = snapshot(&self.policy);
        let kept = if keeps_all(&cfg.head) {
            self.stats.head_adjusted.inc_by(spans as f64);
            spans
        } else {
            let (kept, dropped, adjusted) = apply_head(&mut req, &cfg.head, &self.cluster);
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

#[cfg(test)]
mod tests {
    use super::*;
    use model::sampling::HeadRule;
    use proto::otlp::{Resource, ResourceSpans, ScopeSpans, Span};

    fn req(ids: &[u64]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![proto::otlp::string_kv("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: ids
                        .iter()
                        .map(|r| {
                            let mut tid = [0xabu8; 16];
                            tid[8..].copy_from_slice(&r.to_be_bytes());
                            Span {
                                trace_id: tid.to_vec(),
                                span_id: vec![1; 8],
                                name: "op".into(),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn head_filters_in_place_and_stamps_the_threshold() {
        let cfg = HeadConfig {
            default_probability: 1.0,
            rules: vec![HeadRule {
                cluster: Some("east".into()),
                service: Some("svc".into()),
                operation: None,
                probability: Some(0.5),
                max_traces_per_second: None,
            }],
        };
        let half = head::SPACE / 2;
        let mut r = req(&[half - 1, half, head::SPACE - 1]);
        let (kept, dropped, adjusted) = apply_head(&mut r, &cfg, "east");
        assert_eq!((kept, dropped), (2, 1));
        assert!(
            (adjusted - 4.0).abs() < 1e-9,
            "two spans standing for two each"
        );
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        assert!(spans.iter().all(|s| s.trace_state == "ot=th:8"));
        // Another cluster: the rule does not apply, nothing is dropped.
        let mut r = req(&[half - 1]);
        assert_eq!(apply_head(&mut r, &cfg, "west").0, 1);
        // Everything dropped: empty containers are removed.
        let mut r = req(&[1]);
        assert_eq!(apply_head(&mut r, &cfg, "east").0, 0);
        assert!(r.resource_spans.is_empty());
        assert!(keeps_all(&HeadConfig::default()));
        assert!(!keeps_all(&cfg));
    }

    fn with_tail(name: &str) -> Arc<SamplingConfig> {
        use model::sampling::{TailConfig, TailPolicy, TailRule};
        Arc::new(SamplingConfig {
            head: HeadConfig::default(),
            tail: Some(TailConfig {
                decision_wait_ms: 3_600_000,
                max_traces: 100,
                max_bytes: 1 << 20,
                policies: vec![TailPolicy {
                    name: name.into(),
                    rule: TailRule::AlwaysSample,
                }],
            }),
        })
    }

    #[test]
    fn the_tail_sampler_follows_a_changed_policy() {
        let first = with_tail("first");
        let mut st = TailState::new(Arc::clone(&first)).unwrap();
        let held = st.sampler.as_mut().unwrap().ingest(req(&[1, 2]));
        assert_eq!(held.spans_kept, 0, "held for the decision window");
        // The same policy (or an equal one) changes nothing.
        assert!(st.follow(&first).is_empty());
        let equal = Arc::new((*first).clone());
        assert!(st.follow(&equal).is_empty());
        assert_eq!(st.sampler.as_ref().unwrap().usage().spans, 2);
        // A new tail section: held traces are decided by the old policies.
        let second = with_tail("second");
        let r = st.follow(&second);
        assert_eq!((r.spans_kept, r.traces_kept), (2, 2));
        assert_eq!(st.sampler.as_ref().unwrap().usage().spans, 0);
        st.sampler.as_mut().unwrap().ingest(req(&[3]));
        // No tail section: the last held trace goes, the sampler too.
        let r = st.follow(&Arc::new(SamplingConfig::default()));
        assert_eq!(r.spans_kept, 1);
        assert!(st.sampler.is_none());
        assert!(check(&second).is_ok());
    }
}
