//! The view against prost, on the same bytes: what the fuzz target
//! `otlp_view` and the unit tests run.

use prost::Message;

use super::{ClusterClaim, SpanEdit, TraceView, parse, rebuild, stamp_cluster};
use crate::otlp::{self, ExportTraceServiceRequest};

/// Checks, for any `bytes`: when [`parse`] accepts them, prost decodes them
/// too, and every field the view returns is the one prost decoded; when
/// [`stamp_cluster`] stamps them, prost decodes the result into what
/// [`crate::convert::stamp_cluster`] makes of the decoded request. `Err`
/// says what differs.
pub fn against_prost(bytes: &[u8]) -> Result<(), String> {
    let Ok(view) = parse(bytes, 0) else {
        return Ok(());
    };
    let req = ExportTraceServiceRequest::decode(bytes)
        .map_err(|e| format!("view accepted what prost refuses: {e}"))?;
    if view.resources.len() != req.resource_spans.len() {
        return Err("resource count differs".into());
    }
    let mut spans = view.spans.iter();
    for (rv, rs) in view.resources.iter().zip(&req.resource_spans) {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        if rv.service != otlp::string_attr(attrs, model::SERVICE_ATTRIBUTE) {
            return Err("service differs".into());
        }
        let claims: Vec<_> = attrs
            .iter()
            .filter(|kv| kv.key == model::CLUSTER_ATTRIBUTE)
            .collect();
        let expect = match (
            claims.len(),
            otlp::string_attr(attrs, model::CLUSTER_ATTRIBUTE),
        ) {
            (0, _) => ClusterClaim::Absent,
            (1, Some(c)) => ClusterClaim::One(c),
            _ => ClusterClaim::Other,
        };
        if rv.cluster != expect {
            return Err(format!(
                "cluster claim differs: {:?} vs {expect:?}",
                rv.cluster
            ));
        }
        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let v = spans.next().ok_or("the view has fewer spans")?;
            let same = v.trace_id == &s.trace_id[..]
                && v.span_id == &s.span_id[..]
                && v.parent_span_id == &s.parent_span_id[..]
                && v.name == s.name
                && v.kind == s.kind
                && v.start_time_unix_nano == s.start_time_unix_nano
                && v.end_time_unix_nano == s.end_time_unix_nano
                && v.status_code == s.status.as_ref().map(|st| st.code)
                && v.trace_state == s.trace_state;
            if !same {
                return Err(format!("span differs: {v:?} vs {s:?}"));
            }
            // The span's field is a `ScopeSpans` holding just that span.
            let alone = bytes
                .get(v.field.0..v.field.1)
                .and_then(|b| otlp::ScopeSpans::decode(b).ok())
                .ok_or("the span's field range is not a span field")?;
            if alone.spans != [s.clone()] {
                return Err("the span's field range holds another span".into());
            }
            let mut one = ExportTraceServiceRequest {
                resource_spans: vec![otlp::ResourceSpans {
                    scope_spans: vec![otlp::ScopeSpans {
                        spans: vec![s.clone()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let changed = crate::validate::sanitize(&mut one);
            let unchanged =
                changed.rejected == 0 && one.resource_spans[0].scope_spans[0].spans[0] == *s;
            if v.problem() == unchanged {
                return Err(format!("validation differs for {s:?}"));
            }
        }
    }
    if spans.next().is_some() {
        return Err("the view has more spans".into());
    }
    for (rv, rs) in view.resources.iter().zip(&req.resource_spans) {
        let scopes = view.scopes.get(rv.scopes.clone()).unwrap_or_default();
        if scopes.len() != rs.scope_spans.len()
            || scopes
                .iter()
                .zip(&rs.scope_spans)
                .any(|(sv, ss)| sv.spans.len() != ss.spans.len())
        {
            return Err("scopes differ".into());
        }
    }
    let cluster = model::ClusterId::new("fuzz-cluster").map_err(|e| e.to_string())?;
    sampled_against_prost(bytes, &view, &req, &cluster)?;
    if let Ok(stamped) = stamp_cluster(bytes, &view, cluster.as_str()) {
        let got = match stamped {
            Some(b) => ExportTraceServiceRequest::decode(&b[..])
                .map_err(|e| format!("stamped bytes do not decode: {e}"))?,
            None => req.clone(),
        };
        let mut want = req;
        let refused = crate::convert::stamp_cluster(&mut want, &cluster);
        if refused.refused_spans != 0 || refused.first.is_some() {
            return Err("the splice stamped a request the decoding path refuses".into());
        }
        if got != want && !same_but_order(&got, &want) {
            return Err("stamped request differs".into());
        }
    }
    Ok(())
}

/// The decoding stamp moves an existing matching claim to the end of the
/// attributes; the splice leaves it where it is.
fn same_but_order(a: &ExportTraceServiceRequest, b: &ExportTraceServiceRequest) -> bool {
    let norm = |r: &ExportTraceServiceRequest| {
        let mut r = r.clone();
        for rs in &mut r.resource_spans {
            if let Some(res) = &mut rs.resource {
                res.attributes.sort_by(|x, y| x.key.cmp(&y.key));
            }
        }
        r
    };
    norm(a) == norm(b)
}

/// Edits every span by its position (drop, keep, keep with a new
/// `tracestate`), through [`rebuild`] and through the decoded request, and
/// compares what prost decodes from the rebuilt bytes.
fn sampled_against_prost(
    bytes: &[u8],
    view: &TraceView<'_>,
    req: &ExportTraceServiceRequest,
    cluster: &model::ClusterId,
) -> Result<(), String> {
    let edit = |i: usize| match i % 3 {
        0 => SpanEdit::Keep,
        1 => SpanEdit::Drop,
        _ => SpanEdit::KeepWithTraceState(format!("ot=th:{i:x}")),
    };
    let edits: Vec<SpanEdit> = (0..view.spans.len()).map(edit).collect();
    let Ok(rebuilt) = rebuild(bytes, view, &edits, cluster.as_str()) else {
        return Ok(());
    };
    let got = ExportTraceServiceRequest::decode(&rebuilt[..])
        .map_err(|e| format!("rebuilt bytes do not decode: {e}"))?;
    let mut want = req.clone();
    let refused = crate::convert::stamp_cluster(&mut want, cluster);
    if refused.refused_spans != 0 || refused.first.is_some() {
        return Err("rebuild kept a request the decoding path refuses".into());
    }
    let mut i = 0usize;
    for rs in &mut want.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain_mut(|span| {
                let e = edit(i);
                i += 1;
                match e {
                    SpanEdit::Drop => false,
                    SpanEdit::Keep => true,
                    SpanEdit::KeepWithTraceState(ts) => {
                        span.trace_state = ts;
                        true
                    }
                }
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    want.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    if got != want && !same_but_order(&got, &want) {
        return Err("rebuilt request differs".into());
    }
    Ok(())
}
