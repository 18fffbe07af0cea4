//! The judge on trace summaries alone (the agent's sampler tests cover the
//! same policies end to end, through spans).

use std::time::Duration;

use model::{
    TraceId,
    sampling::{RateAllocation, TailConfig, TailPolicy, TailRule},
};
use proto::otlp::{AnyValue, KeyValue, any_value::Value};

use super::*;

fn policy(name: &str, rule: TailRule) -> TailPolicy {
    TailPolicy {
        name: name.into(),
        rule,
    }
}

fn judge(policies: Vec<TailPolicy>) -> Judge {
    Judge::new(&TailConfig {
        decision_wait_ms: 1_000,
        max_traces: 1_000,
        max_bytes: 1 << 20,
        policies,
    })
    .expect("compiles")
}

/// Trace `t` (its randomness grows with `t`), 10 ms, one unset span.
fn facts(t: u8) -> TraceFacts {
    let mut id = [0x11; 16];
    id[9] = t;
    TraceFacts {
        trace_id: TraceId::from_array(id),
        first_start: 0,
        last_end: 10_000_000,
        spans: 1,
        statuses: STATUS_UNSET,
        matched: 0,
    }
}

fn kept_by(j: &mut Judge, f: &TraceFacts, now: Duration) -> Option<String> {
    j.decide(f, now).map(|i| j.name(i).to_owned())
}

#[test]
fn facts_decide_and_the_first_keeping_policy_names() {
    let mut j = judge(vec![
        policy(
            "errors",
            TailRule::StatusCode {
                status_codes: vec!["error".into()],
            },
        ),
        policy("slow", TailRule::Latency { threshold_ms: 100 }),
        policy(
            "big",
            TailRule::SpanCount {
                min_spans: 5,
                max_spans: None,
            },
        ),
        policy(
            "half",
            TailRule::Probabilistic {
                sampling_percentage: 50.0,
            },
        ),
    ]);
    let now = Duration::ZERO;
    let error = TraceFacts {
        statuses: STATUS_ERROR | STATUS_OK,
        ..facts(1)
    };
    let slow = TraceFacts {
        last_end: 100_000_000,
        ..facts(2)
    };
    let big = TraceFacts {
        spans: 5,
        ..facts(3)
    };
    assert_eq!(kept_by(&mut j, &error, now).as_deref(), Some("errors"));
    assert_eq!(kept_by(&mut j, &slow, now).as_deref(), Some("slow"));
    assert_eq!(kept_by(&mut j, &big, now).as_deref(), Some("big"));
    assert_eq!(kept_by(&mut j, &facts(200), now).as_deref(), Some("half"));
    assert_eq!(kept_by(&mut j, &facts(10), now), None);
    assert_eq!(status_bit(2), STATUS_ERROR);
    assert_eq!(status_bit(7), STATUS_UNSET);
}

#[test]
fn rate_budgets_count_spans_per_second_of_the_given_time() {
    let mut j = judge(vec![policy(
        "rate",
        TailRule::RateLimiting {
            spans_per_second: 3,
        },
    )]);
    let two = TraceFacts {
        spans: 2,
        ..facts(1)
    };
    let at = Duration::from_millis;
    assert!(j.decide(&two, at(0)).is_some());
    assert!(j.decide(&two, at(500)).is_none(), "4 spans > 3 in second 0");
    assert!(j.decide(&facts(2), at(900)).is_some(), "3 spans fit");
    assert!(j.decide(&two, at(1_000)).is_some(), "a new second");
}

#[test]
fn composite_shares_name_the_sub_policy() {
    let mut j = judge(vec![policy(
        "c",
        TailRule::Composite {
            max_total_spans_per_second: 10,
            policies: vec![
                policy(
                    "errors",
                    TailRule::StatusCode {
                        status_codes: vec!["ERROR".into()],
                    },
                ),
                policy("rest", TailRule::AlwaysSample),
            ],
            rate_allocation: vec![RateAllocation {
                policy: "errors".into(),
                percent: 30.0,
            }],
        },
    )]);
    let error = |t| TraceFacts {
        spans: 2,
        statuses: STATUS_ERROR,
        ..facts(t)
    };
    let now = Duration::ZERO;
    assert_eq!(kept_by(&mut j, &error(1), now).as_deref(), Some("c/errors"));
    // The errors share (3 spans) is used up: the next falls through.
    assert_eq!(kept_by(&mut j, &error(2), now).as_deref(), Some("c/rest"));
    assert_eq!(j.names(), ["c/errors", "c/rest", "c"]);
}

#[test]
fn attributes_become_predicate_bits() {
    let j = judge(vec![
        policy(
            "route",
            TailRule::StringAttribute {
                key: "http.route".into(),
                values: vec!["/pay".into()],
            },
        ),
        policy(
            "5xx",
            TailRule::NumericAttribute {
                key: "http.status_code".into(),
                min_value: 500.0,
                max_value: 599.0,
            },
        ),
        policy(
            "debug",
            TailRule::BooleanAttribute {
                key: "debug".into(),
                value: true,
            },
        ),
    ]);
    let kv = |k: &str, v: Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    assert_eq!(
        j.attribute_bits(&[kv("http.route", Value::StringValue("/pay".into()))]),
        0b001
    );
    assert_eq!(
        j.attribute_bits(&[
            kv("http.status_code", Value::IntValue(503)),
            kv("debug", Value::BoolValue(true)),
        ]),
        0b110
    );
    assert_eq!(
        j.attribute_bits(&[kv("http.status_code", Value::StringValue("503".into()))]),
        0
    );
    let mut j = j;
    let matched = TraceFacts {
        matched: 0b100,
        ..facts(1)
    };
    assert_eq!(
        kept_by(&mut j, &matched, Duration::ZERO).as_deref(),
        Some("debug")
    );
}

#[test]
fn bad_policies_name_the_policy_and_predicates_are_bounded() {
    let bad = |rule| {
        Judge::new(&TailConfig {
            decision_wait_ms: 1,
            max_traces: 1,
            max_bytes: 1,
            policies: vec![policy(
                "outer",
                TailRule::And {
                    policies: vec![policy("inner", rule)],
                },
            )],
        })
        .unwrap_err()
    };
    assert_eq!(
        bad(TailRule::NumericAttribute {
            key: "k".into(),
            min_value: 2.0,
            max_value: 1.0,
        }),
        TailError::Policy {
            policy: "outer/inner".into(),
            message: "min_value is above max_value".into(),
        }
    );
    let many: Vec<TailPolicy> = (0..=MAX_PREDICATES)
        .map(|i| {
            policy(
                &format!("p{i}"),
                TailRule::BooleanAttribute {
                    key: format!("k{i}"),
                    value: true,
                },
            )
        })
        .collect();
    let err = Judge::new(&TailConfig {
        decision_wait_ms: 1,
        max_traces: 1,
        max_bytes: 1,
        policies: many,
    })
    .unwrap_err();
    assert_eq!(err, TailError::TooManyPredicates);
}
