//! Which sampling policy the agent runs, given what the gateway cluster
//! sent (pure). Precedence: the gateway's policy for this cluster, else the
//! agent's local one (`--sampling-config`, or the keep-everything default).
//! A policy that does not parse or pass [`sampling::check`]
//! is refused and the agent keeps running what it had.

use std::sync::Arc;

use model::sampling::SamplingConfig;

use sampling::InvalidPolicy;

/// Why a received policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the gateway's sampling policy is not valid JSON: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the gateway's sampling policy is invalid: {0}")]
    Invalid(#[from] InvalidPolicy),
}

/// Where the policy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Gateway,
    Local,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gateway => "gateway",
            Source::Local => "local",
        }
    }
}

/// The policy to install instead of `running`, or `None` when `running` is
/// already it. `received` is the update's `sampling_policy_json` (empty:
/// the gateway has none for this cluster, so `local` applies).
pub fn choose(
    running: &SamplingConfig,
    local: &Arc<SamplingConfig>,
    received: &str,
) -> Result<Option<(Arc<SamplingConfig>, Source)>, PolicyError> {
    let (wanted, source) = if received.trim().is_empty() {
        (Arc::clone(local), Source::Local)
    } else {
        let cfg: SamplingConfig = serde_json::from_str(received)?;
        sampling::check(&cfg)?;
        (Arc::new(cfg), Source::Gateway)
    };
    Ok((*wanted != *running).then_some((wanted, source)))
}

#[cfg(test)]
mod tests {
    use model::sampling::{HeadConfig, HeadRule, TailConfig, TailPolicy, TailRule};

    use super::*;

    fn head(p: f64) -> SamplingConfig {
        SamplingConfig {
            head: HeadConfig {
                default_probability: p,
                rules: vec![HeadRule {
                    cluster: None,
                    service: Some("svc".into()),
                    operation: None,
                    probability: Some(p),
                    max_traces_per_second: None,
                }],
            },
            tail: None,
        }
    }

    #[test]
    fn the_gateway_policy_wins_and_its_absence_reverts_to_local() -> anyhow::Result<()> {
        let local = Arc::new(head(1.0));
        let gw = serde_json::to_string(&head(0.1))?;
        // Running the local policy, the gateway sends one: install it.
        let (cfg, source) = choose(&local, &local, &gw)?.expect("a change");
        assert_eq!((&*cfg, source), (&head(0.1), Source::Gateway));
        // The same again (a keepalive, a reconnect): nothing to do.
        assert!(choose(&head(0.1), &local, &gw)?.is_none());
        // The gateway drops it: back to the local policy.
        let (cfg, source) = choose(&head(0.1), &local, "")?.expect("a change");
        assert!(Arc::ptr_eq(&cfg, &local));
        assert_eq!(source, Source::Local);
        assert!(choose(&local, &local, "")?.is_none());
        Ok(())
    }

    #[test]
    fn invalid_policies_are_refused() -> anyhow::Result<()> {
        let local = Arc::new(SamplingConfig::default());
        assert!(matches!(
            choose(&local, &local, "{not json"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            choose(
                &local,
                &local,
                r#"{"head":{"default_probability":1},"surprise":1}"#
            ),
            Err(PolicyError::Parse(_))
        ));
        let out_of_range = serde_json::to_string(&head(1.5))?;
        assert!(matches!(
            choose(&local, &local, &out_of_range),
            Err(PolicyError::Invalid(_))
        ));
        // Passes validate() but does not compile: an unknown status code.
        let bad_tail = SamplingConfig {
            head: HeadConfig::default(),
            tail: Some(TailConfig {
                decision_wait_ms: 1000,
                max_traces: 10,
                max_bytes: 1 << 20,
                policies: vec![TailPolicy {
                    name: "errors".into(),
                    rule: TailRule::StatusCode {
                        status_codes: vec!["SOMETIMES".into()],
                    },
                }],
            }),
        };
        let bad_tail = serde_json::to_string(&bad_tail)?;
        assert!(matches!(
            choose(&local, &local, &bad_tail),
            Err(PolicyError::Invalid(InvalidPolicy::Tail(_)))
        ));
        Ok(())
    }

    #[test]
    fn tail_policies_travel_as_json() -> anyhow::Result<()> {
        let local = Arc::new(SamplingConfig::default());
        let mut cfg = head(0.5);
        cfg.tail = Some(TailConfig {
            decision_wait_ms: 500,
            max_traces: 100,
            max_bytes: 1 << 20,
            policies: vec![
                TailPolicy {
                    name: "errors".into(),
                    rule: TailRule::StatusCode {
                        status_codes: vec!["ERROR".into()],
                    },
                },
                TailPolicy {
                    name: "slow".into(),
                    rule: TailRule::Latency { threshold_ms: 200 },
                },
            ],
        });
        let json = serde_json::to_string(&cfg)?;
        let (got, _) = choose(&local, &local, &json)?.expect("a change");
        assert_eq!(*got, cfg);
        Ok(())
    }
}
