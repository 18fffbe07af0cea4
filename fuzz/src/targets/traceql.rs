//! TraceQL (`q=` on the Tempo API and on `/api/traces`): the lexer and
//! parser, then — for what parses — the planner and the evaluation on a
//! small trace with a parent cycle, as the search runs them.

use std::sync::Arc;

use model::{
    AttrValue, ClusterId, KeyValue, Resource, Span, SpanId, SpanKind, StatusCode, Trace, TraceId,
};
use query::traceql;

use super::{BASE, Target};

pub const TRACEQL: Target = Target {
    name: "traceql",
    about: "TraceQL text: traceql::parse, Query::plan, Query::eval, Query::shown",
    bound: "64 × input + 64 regular expressions × 512 KiB (the compiled-size caps) + 256 KiB",
    dict: &[
        b"{",
        b"}",
        b"(",
        b")",
        b"&&",
        b"||",
        b"!",
        b"=",
        b"!=",
        b"=~",
        b"!~",
        b">",
        b">=",
        b"<",
        b"<=",
        b">>",
        b"|",
        b"~",
        b"\"",
        b"`",
        b"\\",
        b".",
        b"span.",
        b"resource.",
        b"name",
        b"status",
        b"kind",
        b"duration",
        b"traceDuration",
        b"rootName",
        b"rootServiceName",
        b"cluster",
        b"error",
        b"server",
        b"nil",
        b"true",
        b"150ms",
        b"1.5",
        b"-1",
        b"99999999999h",
        b"(a{1000}){1000}",
        b"\xc2\xb5s",
    ],
    seeds,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{ resource.service.name = "checkout" && status = error }"#,
        r#"{ cluster = "a" } >> { cluster = "b" && status = error }"#,
        r#"{ span.http.status_code >= 500 || name =~ "GET .*" } > { duration > 10ms }"#,
        r#"({ .a = nil } && { !(kind = server) }) || { traceDuration < 1s && rootName != `x` }"#,
        r#"{ } | count() > 2"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn span(id: u8, parent: Option<u8>, cluster: &str) -> Span {
    let sid = |n: u8| SpanId::from_array([n | 0x10; 8]);
    Span {
        trace_id: TraceId::from_array([7; 16]),
        span_id: sid(id),
        parent_span_id: parent.map(sid),
        name: format!("op{id}"),
        kind: SpanKind::Server,
        start_unix_nano: u64::from(id) * 1_000,
        end_unix_nano: u64::from(id) * 1_000 + 500,
        status_code: if id == 2 {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        status_message: String::new(),
        attributes: vec![KeyValue::new("a", AttrValue::Int(i64::from(id)))],
        events: Vec::new(),
        links: Vec::new(),
        flags: 0,
        trace_state: String::new(),
        scope_name: String::new(),
        scope_version: String::new(),
        cluster: ClusterId::new(cluster).unwrap_or_else(|_| unreachable!("a valid name")),
        resource: Arc::new(Resource {
            service_name: format!("svc{id}"),
            attributes: Vec::new(),
        }),
    }
}

fn run(input: &[u8]) -> usize {
    let text = String::from_utf8_lossy(input);
    if let Ok(q) = traceql::parse(&text) {
        let trace = Trace {
            trace_id: TraceId::from_array([7; 16]),
            // 3 and 4 form a parent cycle, as hostile stored data might.
            spans: vec![
                span(1, None, "a"),
                span(2, Some(1), "b"),
                span(3, Some(4), "b"),
                span(4, Some(3), "c"),
            ],
        };
        if let Some(m) = q.eval(&trace) {
            assert!(
                m.spans.iter().all(|&i| i < trace.spans.len()),
                "a match outside the trace"
            );
        }
        let _ = q.plan();
        let _ = q.shown();
    }
    input.len().saturating_mul(64) + 64 * (512 << 10) + BASE
}
