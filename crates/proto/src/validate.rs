//! Span validation for OTLP partial success.
//!
//! A span is invalid when its trace id is not 16 bytes or is all zero, or
//! its span id is not 8 bytes or is all zero, or its parent span id is
//! neither empty nor 8 bytes. Invalid spans are removed from the request;
//! the valid spans of the same batch are kept. An all-zero parent id is
//! normalised to "no parent". Links with invalid ids are dropped (the span
//! is kept).

use crate::otlp::{ExportTraceServiceRequest, Span};

/// What [`sanitize`] kept and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sanitized {
    pub accepted: u64,
    pub rejected: u64,
    /// The first problem found, for the partial-success message.
    pub first_error: Option<String>,
}

fn valid_id(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().any(|b| *b != 0)
}

fn problem(span: &Span) -> Option<String> {
    if !valid_id(&span.trace_id, 16) {
        return Some(format!(
            "span {:?}: trace id must be 16 non-zero bytes, got {} bytes",
            span.name,
            span.trace_id.len()
        ));
    }
    if !valid_id(&span.span_id, 8) {
        return Some(format!(
            "span {:?}: span id must be 8 non-zero bytes, got {} bytes",
            span.name,
            span.span_id.len()
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!(
            "span {:?}: parent span id must be empty or 8 bytes, got {} bytes",
            span.name,
            span.parent_span_id.len()
        ));
    }
    None
}

/// Removes invalid spans (and then empty scopes and resources) in place.
pub fn sanitize(req: &mut ExportTraceServiceRequest) -> Sanitized {
    let mut out = Sanitized::default();
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain_mut(|span| match problem(span) {
                Some(msg) => {
                    out.rejected += 1;
                    out.first_error.get_or_insert(msg);
                    false
                }
                None => {
                    out.accepted += 1;
                    if span.parent_span_id.iter().all(|b| *b == 0) {
                        span.parent_span_id.clear();
                    }
                    span.links
                        .retain(|l| valid_id(&l.trace_id, 16) && valid_id(&l.span_id, 8));
                    true
                }
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{ResourceSpans, ScopeSpans};

    fn span(trace: Vec<u8>, id: Vec<u8>, parent: Vec<u8>) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            name: "s".into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_good_spans_of_a_mixed_batch() {
        let good = span(vec![1; 16], vec![2; 8], vec![0; 8]);
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![
                            good.clone(),
                            span(vec![0; 16], vec![2; 8], vec![]),
                            span(vec![1; 15], vec![2; 8], vec![]),
                            span(vec![1; 16], vec![0; 8], vec![]),
                            span(vec![1; 16], vec![2; 8], vec![3; 7]),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(vec![], vec![], vec![])],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let out = sanitize(&mut req);
        assert_eq!(out.accepted, 1);
        assert_eq!(out.rejected, 5);
        assert!(out.first_error.unwrap().contains("trace id"));
        assert_eq!(req.resource_spans.len(), 1);
        let kept = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(kept.len(), 1);
        assert!(kept[0].parent_span_id.is_empty(), "zero parent normalised");
    }
}
