//! A trace's api_v3 `TraceSummary` (jaeger-idl `proto/api_v3/query_service.proto`),
//! computed as Jaeger's `querysvc/summary.go` does, on the trace as shown
//! (skew-corrected, cut to the caller's scope):
//!
//! - the root is the parentless span that starts first; its service and
//!   name are `rootServiceName` / `rootOperationName`;
//! - `orphanSpanCount` counts spans whose parent is not in the trace;
//! - errors are spans with OTel status ERROR;
//! - `services` has one entry per service, sorted by name.
//!
//! JSON as Jaeger's `jsonpb` writes it: `traceId` as 32 hex digits; the
//! `fixed64` times as decimal strings (nanoseconds); the `int32` counts as
//! numbers; fields at their default (0, "") left out, as in Jaeger's
//! `snapshots/FindTraceSummaries.json` (no `orphanSpanCount` there).

use std::collections::{BTreeMap, HashSet};

use model::Trace;
use serde_json::{Map, Value};

/// Per-service counts of one trace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    spans: u64,
    errors: u64,
}

fn put_count(obj: &mut Map<String, Value>, key: &str, n: u64) {
    if n > 0 {
        // Jaeger's fields are int32; a larger count is capped there.
        obj.insert(key.into(), Value::from(n.min(i32::MAX as u64)));
    }
}

fn put_str(obj: &mut Map<String, Value>, key: &str, s: &str) {
    if !s.is_empty() {
        obj.insert(key.into(), Value::from(s));
    }
}

/// The `TraceSummary` of `trace`.
pub fn summary(trace: &Trace) -> Value {
    let ids: HashSet<_> = trace.spans.iter().map(|s| s.span_id).collect();
    let mut services: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut root: Option<(&str, &str, u64)> = None;
    let (mut min_start, mut max_end) = (u64::MAX, 0u64);
    let (mut errors, mut orphans) = (0u64, 0u64);
    for s in &trace.spans {
        let c = services.entry(s.service_name()).or_default();
        c.spans += 1;
        if s.is_error() {
            c.errors += 1;
            errors += 1;
        }
        min_start = min_start.min(s.start_unix_nano);
        max_end = max_end.max(s.end_unix_nano);
        match s.parent_span_id {
            None => {
                if root.is_none_or(|(_, _, start)| s.start_unix_nano < start) {
                    root = Some((s.service_name(), s.name.as_str(), s.start_unix_nano));
                }
            }
            Some(p) if !ids.contains(&p) => orphans += 1,
            Some(_) => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("traceId".into(), trace.trace_id.to_hex().into());
    if let Some((service, operation, _)) = root {
        put_str(&mut obj, "rootServiceName", service);
        put_str(&mut obj, "rootOperationName", operation);
    }
    if !trace.spans.is_empty() {
        if min_start > 0 {
            obj.insert("minStartTimeUnixNano".into(), min_start.to_string().into());
        }
        if max_end > 0 {
            obj.insert("maxEndTimeUnixNano".into(), max_end.to_string().into());
        }
    }
    put_count(&mut obj, "spanCount", trace.spans.len() as u64);
    put_count(&mut obj, "errorSpanCount", errors);
    put_count(&mut obj, "orphanSpanCount", orphans);
    let services: Vec<Value> = services
        .into_iter()
        .map(|(name, c)| {
            let mut s = Map::new();
            // `name` is REQUIRED in the IDL: kept even when empty.
            s.insert("name".into(), name.into());
            put_count(&mut s, "spanCount", c.spans);
            put_count(&mut s, "errorSpanCount", c.errors);
            Value::Object(s)
        })
        .collect();
    if !services.is_empty() {
        obj.insert("services".into(), Value::Array(services));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use store::testsuite::{SpanBuilder, trace_id};

    use super::*;

    #[test]
    fn counts_root_orphans_and_services() {
        let mut spans = vec![
            SpanBuilder::new(1, 1, "web").build(),
            SpanBuilder::new(1, 2, "api").parent(1).build(),
            SpanBuilder::new(1, 3, "api").parent(2).build(),
            // Its parent was never received.
            SpanBuilder::new(1, 4, "db").parent(9).build(),
        ];
        spans[2].status_code = model::StatusCode::Error;
        for (i, s) in spans.iter_mut().enumerate() {
            s.start_unix_nano = 1_000 + i as u64;
            s.end_unix_nano = 2_000 + i as u64;
        }
        let t = Trace {
            trace_id: trace_id(1),
            spans,
        };
        let s = summary(&t);
        assert_eq!(s["traceId"], t.trace_id.to_hex());
        assert_eq!(s["rootServiceName"], "web");
        assert_eq!(s["minStartTimeUnixNano"], "1000");
        assert_eq!(s["maxEndTimeUnixNano"], "2003");
        assert_eq!(s["spanCount"], 4);
        assert_eq!(s["errorSpanCount"], 1);
        assert_eq!(s["orphanSpanCount"], 1);
        assert_eq!(
            s["services"],
            json!([
                {"name": "api", "spanCount": 2, "errorSpanCount": 1},
                {"name": "db", "spanCount": 1},
                {"name": "web", "spanCount": 1},
            ])
        );
    }
}
