//! Consistent head sampling (W3C trace context, OpenTelemetry `ot`
//! tracestate). Pure functions of the trace id, the tracestate and the
//! configured probability, so every agent in every cluster decides the same
//! way for a trace.
//!
//! Randomness R = the low 56 bits of the trace id, or `rv` from the `ot`
//! entry. Threshold T = (1 − p) · 2^56. Keep iff R ≥ T. When the span
//! arrives with an upstream threshold `th`, the effective threshold is the
//! larger of the two (sampling can only get sparser downstream), and the
//! kept span's `th` is updated so its adjusted count 2^56 / (2^56 − T) stays
//! correct for whoever counts it later.
//!
//! [`apply`] runs the decision over every span of an OTLP request in place;
//! [`plan`] makes the same decisions from a zero-copy view, for
//! [`proto::view::rebuild`].

use model::{TraceId, sampling::HeadConfig};
use proto::{
    otlp::ExportTraceServiceRequest,
    view::{SpanEdit, TraceView},
};

/// 2^56: the randomness space.
pub const SPACE: u64 = 1 << 56;

/// T for probability `p` (clamped to 0..=1). `p = 1` → 0 (keep all);
/// `p = 0` → 2^56 (keep none).
pub fn threshold(p: f64) -> u64 {
    let p = if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
    ((1.0 - p) * SPACE as f64).round() as u64
}

/// The `th` and `rv` values of an `ot=` tracestate entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OtState {
    pub th: Option<u64>,
    pub rv: Option<u64>,
}

/// Parses `ot=th:c;rv:…` out of a W3C tracestate list.
pub fn parse_ot(tracestate: &str) -> OtState {
    let mut out = OtState::default();
    let Some(ot) = tracestate
        .split(',')
        .map(str::trim)
        .find_map(|e| e.strip_prefix("ot="))
    else {
        return out;
    };
    for kv in ot.split(';') {
        if let Some(th) = kv.strip_prefix("th:") {
            // Up to 14 hex digits, trailing zeros removed.
            if !th.is_empty() && th.len() <= 14 && th.bytes().all(|b| b.is_ascii_hexdigit()) {
                let padded = format!("{th:0<14}");
                out.th = u64::from_str_radix(&padded, 16).ok();
            }
        } else if let Some(rv) = kv.strip_prefix("rv:")
            && rv.len() == 14
        {
            out.rv = u64::from_str_radix(rv, 16).ok();
        }
    }
    out
}

/// `th` text for a threshold: 14 hex digits with trailing zeros removed
/// (`0` for keep-all).
pub fn format_th(t: u64) -> String {
    let full = format!("{:014x}", t.min(SPACE - 1));
    let trimmed = full.trim_end_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// Rewrites (or adds) `th` in the `ot` entry of a tracestate.
pub fn with_th(tracestate: &str, t: u64) -> String {
    let th = format!("th:{}", format_th(t));
    let mut entries: Vec<String> = Vec::new();
    let mut found = false;
    for e in tracestate
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if let Some(ot) = e.strip_prefix("ot=") {
            found = true;
            let mut parts: Vec<&str> = ot.split(';').filter(|p| !p.starts_with("th:")).collect();
            parts.insert(0, &th);
            entries.insert(0, format!("ot={}", parts.join(";")));
        } else {
            entries.push(e.to_owned());
        }
    }
    if !found {
        entries.insert(0, format!("ot={th}"));
    }
    entries.join(",")
}

/// A head decision for one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    /// The effective threshold (0 = everything kept).
    pub threshold: u64,
}

impl Decision {
    /// How many traces a kept one stands for (1/p).
    pub fn adjusted_count(&self) -> f64 {
        SPACE as f64 / (SPACE - self.threshold.min(SPACE - 1)) as f64
    }
}

/// Decides for one span given its trace id, tracestate and the probability
/// that applies to it.
pub fn decide(trace_id: &TraceId, tracestate: &str, probability: f64) -> Decision {
    let ot = parse_ot(tracestate);
    let ours = threshold(probability);
    let t = ours.max(ot.th.unwrap_or(0));
    let r = ot.rv.unwrap_or_else(|| trace_id.randomness());
    Decision {
        keep: t == 0 || (t < SPACE && r >= t),
        threshold: t,
    }
}

/// The probability for a span: the first rule matching (cluster, service,
/// operation) with a probability, else the default.
pub fn probability(cfg: &HeadConfig, cluster: &str, service: &str, operation: &str) -> f64 {
    cfg.rules
        .iter()
        .filter(|r| r.cluster.as_deref().is_none_or(|c| c == cluster))
        .filter(|r| r.service.as_deref().is_none_or(|s| s == service))
        .filter(|r| r.operation.as_deref().is_none_or(|o| o == operation))
        .find_map(|r| r.probability)
        .unwrap_or(cfg.default_probability)
}

/// Applies head sampling to `req` in place (spans of `cluster`, by their
/// resource's service and their name); returns the spans kept, the spans
/// dropped and the sum of the kept spans' adjusted counts.
pub fn apply(
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
                let p = probability(cfg, cluster, &service, &span.name);
                let Ok(tid) = TraceId::from_bytes(&span.trace_id) else {
                    // Receivers validated ids; keep rather than lose.
                    kept += 1;
                    adjusted += 1.0;
                    return true;
                };
                let d = decide(&tid, &span.trace_state, p);
                if !d.keep {
                    dropped += 1;
                    return false;
                }
                kept += 1;
                adjusted += d.adjusted_count();
                if d.threshold > 0 {
                    span.trace_state = with_th(&span.trace_state, d.threshold);
                }
                true
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    (kept, dropped, adjusted)
}

/// What [`plan`] decided for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One per span of the view.
    pub edits: Vec<SpanEdit>,
    pub kept: u64,
    pub dropped: u64,
    /// The sum of the kept spans' adjusted counts.
    pub adjusted: f64,
}

/// [`apply`]'s decisions, read from `view`: the same spans kept, with the
/// same `tracestate`, so that [`proto::view::rebuild`] gives what [`apply`]
/// gives on the decoded request.
pub fn plan(view: &TraceView<'_>, cfg: &HeadConfig, cluster: &str) -> Plan {
    let mut p = Plan {
        edits: Vec::with_capacity(view.spans.len()),
        kept: 0,
        dropped: 0,
        adjusted: 0.0,
    };
    for (service, span) in view.spans_with_service() {
        let service = service.unwrap_or(model::UNKNOWN_SERVICE);
        let probability = probability(cfg, cluster, service, span.name);
        let Ok(tid) = TraceId::from_bytes(span.trace_id) else {
            p.kept += 1;
            p.adjusted += 1.0;
            p.edits.push(SpanEdit::Keep);
            continue;
        };
        let d = decide(&tid, span.trace_state, probability);
        if !d.keep {
            p.dropped += 1;
            p.edits.push(SpanEdit::Drop);
            continue;
        }
        p.kept += 1;
        p.adjusted += d.adjusted_count();
        let ts = if d.threshold > 0 {
            with_th(span.trace_state, d.threshold)
        } else {
            String::new()
        };
        p.edits.push(if d.threshold > 0 && ts != span.trace_state {
            SpanEdit::KeepWithTraceState(ts)
        } else {
            SpanEdit::Keep
        });
    }
    p
}

/// True when the head policy keeps everything (the common case: the caller
/// skips the per-span work of [`apply`]).
pub fn keeps_all(cfg: &HeadConfig) -> bool {
    cfg.default_probability >= 1.0
        && cfg
            .rules
            .iter()
            .all(|r| r.probability.is_none_or(|p| p >= 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view path decides and rewrites exactly as the decoding path:
    /// same spans kept, same `tracestate`, same counts, same request.
    #[test]
    fn plan_and_rebuild_give_what_apply_gives() {
        use prost::Message;
        let mut req = proto::corpus::Generator::new(11).request(400);
        let spans = req
            .resource_spans
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
            .flat_map(|ss| ss.spans.iter_mut());
        for (i, s) in spans.enumerate() {
            match i % 5 {
                0 => s.trace_state = "ot=th:c".into(),
                1 => s.trace_state = "vendor=1,ot=rv:00000000000001".into(),
                2 => s.trace_state = "ot=th:4;rv:ffffffffffffff".into(),
                _ => {}
            }
        }
        let bytes = req.encode_to_vec();
        let view = proto::view::parse(&bytes, 0).unwrap();
        let service = view.resources[0].service.unwrap().to_owned();
        let cluster = model::ClusterId::new("c1").unwrap();
        let configs = [
            HeadConfig {
                default_probability: 0.5,
                rules: Vec::new(),
            },
            HeadConfig {
                default_probability: 0.1,
                rules: vec![model::sampling::HeadRule {
                    cluster: None,
                    service: Some(service),
                    operation: None,
                    probability: Some(1.0),
                    max_traces_per_second: None,
                }],
            },
            HeadConfig {
                default_probability: 0.0,
                rules: Vec::new(),
            },
        ];
        let mut rewritten = 0;
        for cfg in &configs {
            let p = plan(&view, cfg, cluster.as_str());
            let mut want = req.clone();
            proto::convert::stamp_cluster(&mut want, &cluster);
            let (kept, dropped, adjusted) = apply(&mut want, cfg, cluster.as_str());
            assert_eq!((p.kept, p.dropped), (kept, dropped), "{cfg:?}");
            assert!((p.adjusted - adjusted).abs() < 1e-6 * adjusted.max(1.0));
            assert!(dropped > 0, "the corpus exercises drops");
            let rebuilt = proto::view::rebuild(&bytes, &view, &p.edits, cluster.as_str()).unwrap();
            let got = ExportTraceServiceRequest::decode(&rebuilt[..]).unwrap();
            assert_eq!(got, want, "{cfg:?}");
            rewritten += p
                .edits
                .iter()
                .filter(|e| matches!(e, SpanEdit::KeepWithTraceState(_)))
                .count();
        }
        assert!(rewritten > 0, "the corpus exercises tracestate rewrites");
    }

    fn tid(low56: u64) -> TraceId {
        let mut b = [0xffu8; 16];
        b[8..].copy_from_slice(&low56.to_be_bytes());
        TraceId::from_array(b)
    }

    #[test]
    fn thresholds_and_tracestate_text() {
        assert_eq!(threshold(1.0), 0);
        assert_eq!(threshold(0.0), SPACE);
        assert_eq!(threshold(0.5), SPACE / 2);
        assert_eq!(format_th(SPACE / 2), "8");
        assert_eq!(format_th(0), "0");
        assert_eq!(format_th(threshold(0.25)), "c");
        assert_eq!(parse_ot("ot=th:8").th, Some(SPACE / 2));
        assert_eq!(parse_ot("vendor=x, ot=rv:00000000000001;th:c").rv, Some(1));
        assert_eq!(parse_ot("ot=th:zz"), OtState::default());
        assert_eq!(with_th("", SPACE / 2), "ot=th:8");
        assert_eq!(
            with_th("a=1,ot=th:4;rv:0000000000000f", SPACE / 2),
            "ot=th:8;rv:0000000000000f,a=1"
        );
    }

    #[test]
    fn decisions_are_consistent_and_nested() {
        // R just below / at the 50% threshold.
        assert!(!decide(&tid(SPACE / 2 - 1), "", 0.5).keep);
        assert!(decide(&tid(SPACE / 2), "", 0.5).keep);
        assert!(decide(&tid(0), "", 1.0).keep);
        assert!(!decide(&tid(SPACE - 1), "", 0.0).keep);
        // Whatever 10% keeps, 50% keeps too (nested samples).
        let mut kept10 = 0;
        for i in 0..10_000u64 {
            let id = tid(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & (SPACE - 1));
            let d10 = decide(&id, "", 0.1);
            if d10.keep {
                kept10 += 1;
                assert!(decide(&id, "", 0.5).keep);
            }
        }
        assert!((800..1200).contains(&kept10), "{kept10} of 10000 at 10%");
        // An upstream th makes sampling sparser, never denser.
        let d = decide(&tid(SPACE / 2 + 1), "ot=th:c", 0.5);
        assert!(!d.keep);
        assert_eq!(d.threshold, threshold(0.25));
        assert!((decide(&tid(SPACE - 1), "ot=th:c", 1.0).adjusted_count() - 4.0).abs() < 1e-9);
        // rv overrides the trace id's randomness.
        assert!(decide(&tid(0), "ot=rv:ffffffffffffff", 0.5).keep);
    }

    fn req(ids: &[u64]) -> ExportTraceServiceRequest {
        use proto::otlp::{Resource, ResourceSpans, ScopeSpans, Span};
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
        use model::sampling::HeadRule;
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
        let half = SPACE / 2;
        let mut r = req(&[half - 1, half, SPACE - 1]);
        let (kept, dropped, adjusted) = apply(&mut r, &cfg, "east");
        assert_eq!((kept, dropped), (2, 1));
        assert!(
            (adjusted - 4.0).abs() < 1e-9,
            "two spans standing for two each"
        );
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        assert!(spans.iter().all(|s| s.trace_state == "ot=th:8"));
        // Another cluster: the rule does not apply, nothing is dropped.
        let mut r = req(&[half - 1]);
        assert_eq!(apply(&mut r, &cfg, "west").0, 1);
        // Everything dropped: empty containers are removed.
        let mut r = req(&[1]);
        assert_eq!(apply(&mut r, &cfg, "east").0, 0);
        assert!(r.resource_spans.is_empty());
        assert!(keeps_all(&HeadConfig::default()));
        assert!(!keeps_all(&cfg));
    }
}
