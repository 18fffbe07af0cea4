//! The tail sampler, table-driven on a manual clock: each policy through
//! spans, naming, caps, late spans, refused policies, byte-exact release.

use std::time::Duration;

use model::{
    TraceId,
    sampling::{RateAllocation, TailConfig, TailPolicy, TailRule},
};
use prost::Message;
use proto::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value::Value,
};
use sampling::tail::TailError;
use telemetry::clock::ManualClock;

use super::*;

/// A span of trace `t` (the low byte; randomness grows with it).
struct S {
    trace: u8,
    start_ms: u64,
    end_ms: u64,
    status: i32,
    attrs: Vec<(&'static str, Value)>,
}

fn s(trace: u8) -> S {
    S {
        trace,
        start_ms: 0,
        end_ms: 10,
        status: 0,
        attrs: vec![],
    }
}

fn trace_id(t: u8) -> Vec<u8> {
    let mut id = vec![0x11; 16];
    // Randomness: the low 56 bits; `t` sets the top of them.
    id[9] = t;
    id
}

fn req(service: &str, spans: Vec<S>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![proto::otlp::string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| Span {
                        trace_id: trace_id(x.trace),
                        span_id: vec![1, 2, 3, 4, 5, 6, 7, i as u8 + 1],
                        name: "op".into(),
                        start_time_unix_nano: x.start_ms * 1_000_000,
                        end_time_unix_nano: x.end_ms * 1_000_000,
                        status: Some(Status {
                            code: x.status,
                            message: String::new(),
                        }),
                        attributes: x
                            .attrs
                            .into_iter()
                            .map(|(k, v)| KeyValue {
                                key: k.into(),
                                value: Some(AnyValue { value: Some(v) }),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn policy(name: &str, rule: TailRule) -> TailPolicy {
    TailPolicy {
        name: name.into(),
        rule,
    }
}

fn cfg(policies: Vec<TailPolicy>) -> TailConfig {
    TailConfig {
        decision_wait_ms: 1_000,
        max_traces: 1_000,
        max_bytes: 1 << 20,
        policies,
    }
}

/// Decodes what was released: (trace low byte, policy) per span.
fn kept(r: &Released) -> Vec<(u8, String)> {
    let req = ExportTraceServiceRequest::decode(r.encode_request()).unwrap();
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(
            proto::otlp::string_attr(attrs, "service.name"),
            Some("svc"),
            "the original resource survives the merge"
        );
        let policy = proto::otlp::string_attr(attrs, POLICY_ATTRIBUTE)
            .unwrap_or("<none>")
            .to_owned();
        for ss in &rs.scope_spans {
            for sp in &ss.spans {
                out.push((sp.trace_id[9], policy.clone()));
            }
        }
    }
    out
}

/// Runs one request through a sampler with `policies`, past the window.
fn run(policies: Vec<TailPolicy>, spans: Vec<S>) -> Vec<(u8, String)> {
    let clock = ManualClock::default();
    let mut t = TailSampler::new(&cfg(policies), clock.clone()).unwrap();
    let early = t.ingest(req("svc", spans));
    assert!(
        early.is_empty(),
        "nothing is released before the window ends"
    );
    clock.advance(Duration::from_millis(1_000));
    let mut r = t.tick();
    r.absorb(t.flush());
    assert_eq!(
        t.usage(),
        TailUsage {
            traces: 0,
            spans: 0,
            bytes: 0,
            decided_cached: t.usage().decided_cached,
            awaiting: 0,
        }
    );
    kept(&r)
}

fn traces(k: &[(u8, String)]) -> Vec<u8> {
    let mut t: Vec<u8> = k.iter().map(|x| x.0).collect();
    t.dedup();
    t
}

#[test]
fn each_policy_keeps_what_it_should() {
    use TailRule::*;
    let attr = |k, v| {
        let mut x = s(0);
        x.attrs.push((k, v));
        x
    };
    let with = |mut x: S, f: &dyn Fn(&mut S)| {
        f(&mut x);
        x
    };
    // (policy, spans, traces kept)
    let table: Vec<(TailRule, Vec<S>, Vec<u8>)> = vec![
        (AlwaysSample, vec![s(1), s(2)], vec![1, 2]),
        (
            Latency { threshold_ms: 100 },
            vec![
                with(s(1), &|x| x.end_ms = 99),
                // Two spans of trace 2 cover 0..150 ms together.
                with(s(2), &|x| x.end_ms = 50),
                with(s(2), &|x| {
                    x.start_ms = 60;
                    x.end_ms = 150
                }),
            ],
            vec![2],
        ),
        (
            StatusCode {
                status_codes: vec!["ERROR".into()],
            },
            vec![
                s(1),
                with(s(2), &|x| x.status = 2),
                with(s(3), &|x| x.status = 1),
            ],
            vec![2],
        ),
        (
            StatusCode {
                status_codes: vec!["OK".into(), "UNSET".into()],
            },
            vec![
                s(1),
                with(s(2), &|x| x.status = 2),
                with(s(3), &|x| x.status = 1),
            ],
            vec![1, 3],
        ),
        (
            StringAttribute {
                key: "http.route".into(),
                values: vec!["/pay".into(), "/buy".into()],
            },
            vec![
                with(
                    attr("http.route", Value::StringValue("/pay".into())),
                    &|x| x.trace = 1,
                ),
                with(
                    attr("http.route", Value::StringValue("/health".into())),
                    &|x| x.trace = 2,
                ),
                with(attr("other", Value::StringValue("/buy".into())), &|x| {
                    x.trace = 3
                }),
            ],
            vec![1],
        ),
        (
            NumericAttribute {
                key: "http.status_code".into(),
                min_value: 500.0,
                max_value: 599.0,
            },
            vec![
                with(attr("http.status_code", Value::IntValue(503)), &|x| {
                    x.trace = 1
                }),
                with(attr("http.status_code", Value::IntValue(200)), &|x| {
                    x.trace = 2
                }),
                with(attr("http.status_code", Value::DoubleValue(500.0)), &|x| {
                    x.trace = 3
                }),
                with(
                    attr("http.status_code", Value::StringValue("503".into())),
                    &|x| x.trace = 4,
                ),
            ],
            vec![1, 3],
        ),
        (
            BooleanAttribute {
                key: "debug".into(),
                value: true,
            },
            vec![
                with(attr("debug", Value::BoolValue(true)), &|x| x.trace = 1),
                with(attr("debug", Value::BoolValue(false)), &|x| x.trace = 2),
            ],
            vec![1],
        ),
        (
            // Randomness of trace t is about t/256: 50% keeps t >= 128.
            Probabilistic {
                sampling_percentage: 50.0,
            },
            vec![s(10), s(127), s(128), s(250)],
            vec![128, 250],
        ),
        (
            // 3 spans per second: trace 1 (2 spans) fits, trace 2 (2) does
            // not, trace 3 (1) does.
            RateLimiting {
                spans_per_second: 3,
            },
            vec![s(1), s(1), s(2), s(2), s(3)],
            vec![1, 3],
        ),
        (
            SpanCount {
                min_spans: 2,
                max_spans: Some(3),
            },
            vec![s(1), s(2), s(2), s(3), s(3), s(3), s(3)],
            vec![2],
        ),
        (
            And {
                policies: vec![
                    policy(
                        "err",
                        StatusCode {
                            status_codes: vec!["ERROR".into()],
                        },
                    ),
                    policy("slow", Latency { threshold_ms: 50 }),
                ],
            },
            vec![
                with(s(1), &|x| x.status = 2),
                with(s(2), &|x| {
                    x.status = 2;
                    x.end_ms = 60
                }),
                with(s(3), &|x| x.end_ms = 60),
            ],
            vec![2],
        ),
    ];
    for (i, (rule, spans, want)) in table.into_iter().enumerate() {
        let got = run(vec![policy("p", rule.clone())], spans);
        assert_eq!(traces(&got), want, "case {i}: {rule:?}");
        assert!(
            got.iter().all(|(_, p)| p == "p"),
            "case {i}: named by the policy"
        );
    }
}

#[test]
fn first_keeping_policy_names_the_trace() {
    let got = run(
        vec![
            policy(
                "errors",
                TailRule::StatusCode {
                    status_codes: vec!["ERROR".into()],
                },
            ),
            policy("slow", TailRule::Latency { threshold_ms: 100 }),
        ],
        vec![
            S { status: 2, ..s(1) },
            S {
                end_ms: 500,
                ..s(2)
            },
            S {
                status: 2,
                end_ms: 500,
                ..s(3)
            },
            s(4),
        ],
    );
    assert_eq!(
        got,
        vec![
            (1, "errors".to_owned()),
            (2, "slow".to_owned()),
            (3, "errors".to_owned())
        ]
    );
}

#[test]
fn composite_shares_the_budget_in_order() {
    let rule = TailRule::Composite {
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
    };
    // errors: 3 spans/s, rest: 7 spans/s. Traces of 2 spans each.
    let mut spans = Vec::new();
    for t in 1..=3 {
        spans.push(S { status: 2, ..s(t) });
        spans.push(S { status: 2, ..s(t) });
    }
    for t in 10..=15 {
        spans.push(s(t));
        spans.push(s(t));
    }
    let got = run(vec![policy("c", rule)], spans);
    let by = |p: &str| {
        let mut t: Vec<u8> = got.iter().filter(|x| x.1 == p).map(|x| x.0).collect();
        t.dedup();
        t
    };
    // Errors: trace 1 fits (2 ≤ 3); traces 2, 3 fall through to "rest".
    assert_eq!(by("c/errors"), vec![1]);
    // Rest (7/s): traces 2, 3, 10 fit (6 spans), the others do not.
    assert_eq!(by("c/rest"), vec![2, 3, 10]);
}

#[test]
fn late_spans_follow_the_cached_decision() {
    let clock = ManualClock::default();
    let mut t = TailSampler::new(
        &cfg(vec![policy(
            "errors",
            TailRule::StatusCode {
                status_codes: vec!["ERROR".into()],
            },
        )]),
        clock.clone(),
    )
    .unwrap();
    assert!(
        t.ingest(req("svc", vec![S { status: 2, ..s(1) }, s(2)]))
            .is_empty()
    );
    clock.advance(Duration::from_millis(999));
    assert!(t.tick().is_empty(), "the window has not passed");
    clock.advance(Duration::from_millis(1));
    let r = t.tick();
    assert_eq!((r.traces_kept, r.traces_dropped), (1, 1));
    assert_eq!(kept(&r), vec![(1, "errors".to_owned())]);
    // Late spans: released (or dropped) at once, without the error status.
    let late = t.ingest(req("svc", vec![s(1), s(1), s(2)]));
    assert_eq!(
        kept(&late),
        vec![(1, "errors".to_owned()), (1, "errors".to_owned())]
    );
    assert_eq!((late.spans_kept, late.spans_dropped), (2, 1));
    assert_eq!(t.usage().traces, 0);
}

#[test]
fn caps_decide_the_oldest_early() {
    let clock = ManualClock::default();
    let mut c = cfg(vec![policy("all", TailRule::AlwaysSample)]);
    c.max_traces = 2;
    let mut t = TailSampler::new(&c, clock.clone()).unwrap();
    assert!(t.ingest(req("svc", vec![s(1), s(2)])).is_empty());
    clock.advance(Duration::from_millis(10));
    let r = t.ingest(req("svc", vec![s(3)]));
    assert_eq!(
        traces(&kept(&r)),
        vec![1],
        "the oldest trace is decided early"
    );
    assert_eq!(t.usage().traces, 2);
    // Bytes cap: one trace's fragment exceeds it → decided at once.
    let mut c = cfg(vec![policy("all", TailRule::AlwaysSample)]);
    c.max_bytes = 100;
    let mut t = TailSampler::new(&c, clock).unwrap();
    let r = t.ingest(req("svc", vec![s(7)]));
    assert_eq!(traces(&kept(&r)), vec![7]);
    assert_eq!(
        t.usage(),
        TailUsage {
            traces: 0,
            spans: 0,
            bytes: 0,
            decided_cached: 1,
            awaiting: 0,
        }
    );
}

#[test]
fn bad_policies_are_refused_with_their_name() {
    let clock = ManualClock::default();
    let bad = |rule| TailSampler::new(&cfg(vec![policy("x", rule)]), clock.clone()).unwrap_err();
    assert!(matches!(
        bad(TailRule::StatusCode { status_codes: vec!["BROKEN".into()] }),
        TailError::Policy { policy, .. } if policy == "x"
    ));
    assert!(matches!(
        bad(TailRule::Probabilistic {
            sampling_percentage: 101.0
        }),
        TailError::Policy { .. }
    ));
    assert!(matches!(
        bad(TailRule::Composite {
            max_total_spans_per_second: 1,
            policies: vec![policy("a", TailRule::AlwaysSample)],
            rate_allocation: vec![RateAllocation {
                policy: "nope".into(),
                percent: 10.0
            }],
        }),
        TailError::Policy { .. }
    ));
}

#[test]
fn kept_spans_come_out_byte_for_byte() {
    let clock = ManualClock::default();
    let mut t = TailSampler::new(&cfg(vec![policy("all", TailRule::AlwaysSample)]), clock).unwrap();
    let mut original = req(
        "svc",
        vec![
            S { status: 2, ..s(1) },
            S {
                attrs: vec![("k", Value::StringValue("v".into()))],
                ..s(2)
            },
            s(1),
        ],
    );
    let ss = &mut original.resource_spans[0].scope_spans[0];
    ss.scope = Some(proto::otlp::InstrumentationScope {
        name: "lib".into(),
        version: "1.2".into(),
        ..Default::default()
    });
    ss.schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
    assert!(t.ingest(original.clone()).is_empty());
    let out = ExportTraceServiceRequest::decode(t.flush().encode_request()).unwrap();
    let mut got: Vec<Span> = Vec::new();
    for rs in &out.resource_spans {
        for ss in &rs.scope_spans {
            assert_eq!(ss.scope.as_ref().unwrap().name, "lib");
            assert_eq!(ss.schema_url, "https://opentelemetry.io/schemas/1.26.0");
            got.extend(ss.spans.iter().cloned());
        }
    }
    let mut want = original.resource_spans[0].scope_spans[0].spans.clone();
    let key = |s: &Span| (s.trace_id.clone(), s.span_id.clone());
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
}

mod verdicts;
