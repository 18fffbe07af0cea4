//! Sampling policy data (pure): what the agent applies and what the gateway
//! will distribute (the gateway-cluster issue). The TOML/JSON shape:
//!
//! ```toml
//! [head]
//! default_probability = 1.0          # keep everything unless told otherwise
//! [[head.rules]]                      # first match wins
//! service = "checkout"                # optional; also `cluster`, `operation`
//! probability = 0.1                   # or: max_traces_per_second = 5
//!
//! [tail]
//! decision_wait_ms = 10000
//! max_traces = 50000
//! max_bytes = 67108864
//! [[tail.policies]]
//! name = "errors"
//! type = "status_code"
//! status_codes = ["ERROR"]
//! ```
//!
//! Tail policy types follow the OTel Collector's tail_sampling processor:
//! `always_sample`, `latency`, `status_code`, `string_attribute`,
//! `numeric_attribute`, `boolean_attribute`, `probabilistic`,
//! `rate_limiting`, `span_count`, `and`, `composite`.

use serde::{Deserialize, Serialize};

/// Every sampling setting of an agent. The default keeps every span.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    #[serde(default)]
    pub head: HeadConfig,
    /// Tail sampling is off unless configured.
    #[serde(default)]
    pub tail: Option<TailConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    #[serde(default = "one")]
    pub default_probability: f64,
    #[serde(default)]
    pub rules: Vec<HeadRule>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            default_probability: 1.0,
            rules: Vec::new(),
        }
    }
}

fn one() -> f64 {
    1.0
}

/// A head-sampling rule; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadRule {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    /// Keep this fraction of traces (consistent across clusters).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Served to SDKs as Jaeger RATE_LIMITING via `/sampling` (SDK-side).
    #[serde(default)]
    pub max_traces_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    #[serde(default = "default_wait")]
    pub decision_wait_ms: u64,
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    pub policies: Vec<TailPolicy>,
}

fn default_wait() -> u64 {
    10_000
}
fn default_max_traces() -> usize {
    50_000
}
fn default_max_bytes() -> usize {
    64 << 20
}

/// A named tail policy.
// No `deny_unknown_fields` here: serde cannot combine it with `flatten` (it
// refuses every flattened field); `TailRule` refuses unknown fields instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailPolicy {
    pub name: String,
    #[serde(flatten)]
    pub rule: TailRule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TailRule {
    AlwaysSample,
    /// Trace duration (last end − first start) at least `threshold_ms`.
    Latency {
        threshold_ms: u64,
    },
    /// Some span has one of these statuses (`OK`, `ERROR`, `UNSET`).
    StatusCode {
        status_codes: Vec<String>,
    },
    StringAttribute {
        key: String,
        values: Vec<String>,
    },
    NumericAttribute {
        key: String,
        min_value: f64,
        max_value: f64,
    },
    BooleanAttribute {
        key: String,
        value: bool,
    },
    /// Consistent on the trace id, like head sampling.
    Probabilistic {
        sampling_percentage: f64,
    },
    RateLimiting {
        spans_per_second: u64,
    },
    SpanCount {
        min_spans: u64,
        #[serde(default)]
        max_spans: Option<u64>,
    },
    /// Keep when every sub-policy keeps.
    And {
        policies: Vec<TailPolicy>,
    },
    /// Sub-policies in order, each limited to a share of
    /// `max_total_spans_per_second`; the first that keeps within its share
    /// wins.
    Composite {
        max_total_spans_per_second: u64,
        policies: Vec<TailPolicy>,
        /// Percent of the budget per sub-policy, by name; unnamed ones share
        /// what is left equally.
        #[serde(default)]
        rate_allocation: Vec<RateAllocation>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    pub policy: String,
    pub percent: f64,
}

impl SamplingConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let p_ok = |p: f64| (0.0..=1.0).contains(&p);
        if !p_ok(self.head.default_probability) {
            return Err("head.default_probability must be within 0..=1".into());
        }
        for (i, r) in self.head.rules.iter().enumerate() {
            if r.probability.is_some_and(|p| !p_ok(p)) {
                return Err(format!("head.rules[{i}].probability must be within 0..=1"));
            }
            if r.probability.is_none() && r.max_traces_per_second.is_none() {
                return Err(format!(
                    "head.rules[{i}] needs probability or max_traces_per_second"
                ));
            }
        }
        if let Some(t) = &self.tail {
            if t.policies.is_empty() {
                return Err("tail.policies must not be empty (omit [tail] to disable)".into());
            }
            if t.max_traces == 0 || t.max_bytes == 0 {
                return Err("tail.max_traces and tail.max_bytes must be above zero".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with_tail() -> SamplingConfig {
        SamplingConfig {
            head: HeadConfig::default(),
            tail: Some(TailConfig {
                decision_wait_ms: 500,
                max_traces: 10,
                max_bytes: 1 << 20,
                policies: vec![
                    TailPolicy {
                        name: "errors".into(),
                        rule: TailRule::StatusCode {
                            status_codes: vec!["ERROR".into()],
                        },
                    },
                    TailPolicy {
                        name: "both".into(),
                        rule: TailRule::And {
                            policies: vec![TailPolicy {
                                name: "slow".into(),
                                rule: TailRule::Latency { threshold_ms: 5 },
                            }],
                        },
                    },
                ],
            }),
        }
    }

    #[test]
    fn tail_policies_round_trip_and_refuse_unknown_fields() {
        let cfg = cfg_with_tail();
        let json = serde_json::to_string(&cfg).expect("serialises");
        let back: SamplingConfig = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, cfg);
        let typo = r#"{"tail":{"policies":[{"name":"e","type":"latency","threshold_ms":1,"treshold":2}]}}"#;
        assert!(serde_json::from_str::<SamplingConfig>(typo).is_err());
        let no_type = r#"{"tail":{"policies":[{"name":"e","threshold_ms":1}]}}"#;
        assert!(serde_json::from_str::<SamplingConfig>(no_type).is_err());
    }
}
