//! The checks a sampling policy passes before it is installed: the ranges
//! of [`SamplingConfig::validate`], then the compilation of its tail
//! policies. The agent runs them on `--sampling-config` and on every policy
//! the gateway cluster sends.

use model::sampling::SamplingConfig;

use crate::tail::{Judge, TailError};

/// Why a policy cannot run.
#[derive(Debug, thiserror::Error)]
pub enum InvalidPolicy {
    #[error("sampling config: {0}")]
    Config(String),
    #[error(transparent)]
    Tail(#[from] TailError),
}

/// Checks everything a policy must pass to run: the ranges
/// ([`SamplingConfig::validate`]) and the tail policies' compilation.
pub fn check(cfg: &SamplingConfig) -> Result<(), InvalidPolicy> {
    cfg.validate().map_err(InvalidPolicy::Config)?;
    if let Some(t) = &cfg.tail {
        Judge::new(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use model::sampling::{HeadConfig, TailConfig, TailPolicy, TailRule};

    use super::*;

    #[test]
    fn ranges_then_compilation() {
        assert!(check(&SamplingConfig::default()).is_ok());
        let out_of_range = SamplingConfig {
            head: HeadConfig {
                default_probability: 1.5,
                rules: Vec::new(),
            },
            tail: None,
        };
        assert!(matches!(
            check(&out_of_range),
            Err(InvalidPolicy::Config(m)) if m.contains("default_probability")
        ));
        let unknown_status = SamplingConfig {
            head: HeadConfig::default(),
            tail: Some(TailConfig {
                decision_wait_ms: 1_000,
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
        assert!(matches!(
            check(&unknown_status),
            Err(InvalidPolicy::Tail(TailError::Policy { policy, .. })) if policy == "errors"
        ));
    }
}
