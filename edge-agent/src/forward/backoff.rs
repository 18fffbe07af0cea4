//! Retry delays: exponential with full jitter, capped, and never shorter
//! than a server's retry hint (gRPC RetryInfo).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (1-based). `unit` is a random
    /// number in [0, 1) supplied by the caller (injected for tests).
    pub fn delay(&self, attempt: u32, hint: Option<Duration>, unit: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        // Full jitter between half and all of the exponential step keeps
        // agents from retrying in lockstep after a gateway restart.
        let jittered = exp.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match hint {
            Some(h) => jittered.max(h).min(self.max.max(h)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_hints() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(1, None, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(4, None, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(30, None, 1.0), Duration::from_secs(10));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3)), 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30),
            "a server's hint wins over the cap"
        );
    }
}
