//! The tail sampler that follows the live policy: rebuilt (after deciding
//! what it holds under the old policies) whenever the `[tail]` section
//! changes.

use std::sync::Arc;

use model::sampling::SamplingConfig;
use sampling::InvalidPolicy;
use telemetry::clock::SystemClock;

use crate::sampler::tail::{Released, TailSampler};

/// The tail sampler and the policy it was built from.
#[derive(Debug)]
pub(super) struct TailState {
    applied: Arc<SamplingConfig>,
    pub(super) sampler: Option<TailSampler<SystemClock>>,
}

impl TailState {
    pub(super) fn new(cfg: Arc<SamplingConfig>) -> Result<Self, InvalidPolicy> {
        let sampler = match &cfg.tail {
            Some(t) => Some(TailSampler::new(t, SystemClock::new())?),
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
    pub(super) fn follow(&mut self, cfg: &Arc<SamplingConfig>) -> Released {
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
            Some(t) => match TailSampler::new(t, SystemClock::new()) {
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
