#![allow(clippy::unwrap_used)]

use model::{AttrValue, SpanKind, Trace};
use store::testsuite::{SpanBuilder, trace_id};

use super::{Plan, parse};

/// A stitched three-cluster trace, as the federation tests build it:
/// `web` (a) → `api` (b) → `db` (c, errors); `api` → `cache` (b).
fn three_clusters() -> Trace {
    Trace {
        trace_id: trace_id(1),
        spans: vec![
            SpanBuilder::new(1, 1, "web")
                .cluster("a")
                .name("GET /")
                .at(0, 100)
                .build(),
            SpanBuilder::new(1, 2, "api")
                .cluster("b")
                .name("checkout")
                .kind(SpanKind::Client)
                .parent(1)
                .at(10, 80)
                .attr("http.status_code", AttrValue::Int(500))
                .build(),
            SpanBuilder::new(1, 3, "db")
                .cluster("c")
                .name("query")
                .parent(2)
                .at(20, 30)
                .attr("db.system", AttrValue::Str("postgres".into()))
                .error("timeout")
                .build(),
            SpanBuilder::new(1, 4, "cache")
                .cluster("b")
                .name("get")
                .parent(2)
                .at(15, 2)
                .attr("ratio", AttrValue::Double(0.5))
                .attr("hit", AttrValue::Bool(true))
                .build(),
        ],
    }
}

/// Span numbers a query selects on [`three_clusters`], or `None`.
fn eval(q: &str) -> Option<Vec<usize>> {
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    query
        .eval(&three_clusters())
        .map(|m| m.spans.into_iter().map(|i| i + 1).collect())
}

#[test]
fn filters_select_spans() {
    let cases: &[(&str, Option<Vec<usize>>)] = &[
        ("{}", Some(vec![1, 2, 3, 4])),
        ("{ true }", Some(vec![1, 2, 3, 4])),
        ("{ false }", None),
        (r#"{ name = "query" }"#, Some(vec![3])),
        (r#"{ span:name = "query" }"#, Some(vec![3])),
        (r#"{ name != "query" }"#, Some(vec![1, 2, 4])),
        (r#"{ name =~ "q.*" }"#, Some(vec![3])),
        // Regular expressions are anchored, as Tempo's.
        (r#"{ name =~ "uer" }"#, None),
        (r#"{ name !~ "q.*|get" }"#, Some(vec![1, 2])),
        ("{ status = error }", Some(vec![3])),
        ("{ status != error }", Some(vec![1, 2, 4])),
        ("{ status = unset }", Some(vec![1, 2, 4])),
        ("{ kind = client }", Some(vec![2])),
        ("{ kind = server && status = error }", Some(vec![3])),
        ("{ duration > 30ms }", Some(vec![1, 2])),
        ("{ duration >= 30ms }", Some(vec![1, 2, 3])),
        ("{ duration < 2.5ms }", Some(vec![4])),
        ("{ duration <= 2000us }", Some(vec![4])),
        ("{ traceDuration = 100ms }", Some(vec![1, 2, 3, 4])),
        (r#"{ rootName = "GET /" && cluster = "c" }"#, Some(vec![3])),
        (
            r#"{ rootServiceName = "web" && name = "get" }"#,
            Some(vec![4]),
        ),
        (r#"{ trace:rootService = "api" }"#, None),
        (r#"{ cluster = "b" }"#, Some(vec![2, 4])),
        (r#"{ resource.service.name = "db" }"#, Some(vec![3])),
        (r#"{ .service.name = "db" }"#, Some(vec![3])),
        (r#"{ resource.k8s.cluster.name = "c" }"#, Some(vec![3])),
        (r#"{ span.db.system = "postgres" }"#, Some(vec![3])),
        // A span attribute is not a resource attribute.
        (r#"{ resource.db.system = "postgres" }"#, None),
        ("{ span.http.status_code = 500 }", Some(vec![2])),
        (
            "{ span.http.status_code >= 400 && span.http.status_code < 600 }",
            Some(vec![2]),
        ),
        // Types do not mix, not even with != (Tempo's semantics).
        (r#"{ span.http.status_code != "500" }"#, None),
        ("{ span.ratio > 0.25 }", Some(vec![4])),
        ("{ span.ratio < 1 }", Some(vec![4])),
        ("{ .hit = true }", Some(vec![4])),
        ("{ .hit != nil }", Some(vec![4])),
        ("{ .hit = nil }", Some(vec![1, 2, 3])),
        (r#"{ .missing != "x" }"#, None),
        (r#"{ statusMessage = "timeout" }"#, Some(vec![3])),
        // `&&` and `||` share one level and group to the left.
        (
            r#"{ name = "get" || name = "query" && status = error }"#,
            Some(vec![3]),
        ),
        (
            r#"{ name = "get" || (name = "query" && status = error) }"#,
            Some(vec![3, 4]),
        ),
        (r#"{ !(cluster = "b") }"#, Some(vec![1, 3])),
        (r#"{ name = "tab\"quoted" }"#, None),
        ("{ name = `GET /` }", Some(vec![1])),
    ];
    for (q, want) in cases {
        assert_eq!(&eval(q), want, "{q}");
    }
}

#[test]
fn spanset_operators_and_structure_work_across_clusters() {
    let cases: &[(&str, Option<Vec<usize>>)] = &[
        // The issue's example: errors downstream, in another cluster.
        (
            r#"{ cluster = "a" } >> { cluster = "c" && status = error }"#,
            Some(vec![3]),
        ),
        (r#"{ cluster = "c" } >> { cluster = "a" }"#, None),
        (r#"{ cluster = "a" } > { cluster = "c" }"#, None),
        (r#"{ cluster = "a" } > { cluster = "b" }"#, Some(vec![2])),
        (r#"{ cluster = "b" } > { }"#, Some(vec![3, 4])),
        (
            r#"{ cluster = "a" } >> { cluster = "b" } > { status = error }"#,
            Some(vec![3]),
        ),
        (
            r#"{ name = "get" } && { name = "query" }"#,
            Some(vec![3, 4]),
        ),
        (r#"{ name = "get" } && { name = "nothing" }"#, None),
        (r#"{ name = "get" } || { name = "nothing" }"#, Some(vec![4])),
        // Left to right at one level: ({x} || {get}) && {query}.
        (
            r#"{ name = "x" } || { name = "get" } && { name = "query" }"#,
            Some(vec![3, 4]),
        ),
        (
            r#"{ name = "x" } || ({ name = "get" } && { name = "nothing" })"#,
            None,
        ),
        (
            r#"({ cluster = "a" } && { cluster = "b" }) >> { status = error }"#,
            Some(vec![3]),
        ),
    ];
    for (q, want) in cases {
        assert_eq!(&eval(q), want, "{q}");
    }
}

#[test]
fn a_parent_cycle_in_stored_data_ends_the_walk() {
    let trace = Trace {
        trace_id: trace_id(9),
        spans: vec![
            SpanBuilder::new(9, 1, "a").parent(2).build(),
            SpanBuilder::new(9, 2, "b").parent(1).build(),
        ],
    };
    let q = parse(r#"{ resource.service.name = "x" } >> { }"#).unwrap();
    assert_eq!(q.eval(&trace), None);
    let q = parse(r#"{ resource.service.name = "a" } >> { }"#).unwrap();
    // b's parent is a; a's ancestor chain loops back through b.
    assert_eq!(q.eval(&trace).map(|m| m.spans), Some(vec![0, 1]));
}

#[test]
fn unsupported_syntax_is_refused_naming_the_part() {
    let cases: &[(&str, &str)] = &[
        ("{ } | count() > 2", "| (pipeline) is not supported"),
        ("{ } | rate()", "| (pipeline) is not supported"),
        (
            "rate({ })",
            "rate() (metrics and aggregates) is not supported",
        ),
        ("{ a } << { }", "unknown intrinsic"),
        (r#"{ name = "a" } << { }"#, "<< (ancestor) is not supported"),
        (r#"{ name = "a" } ~ { }"#, "~ (sibling) is not supported"),
        (r#"{ name = "a" } !>> { }"#, "!> is not supported"),
        (r#"{ name = "a" } &>> { }"#, "&> is not supported"),
        (r#"{ name = "a" } < { }"#, "< (parent) is not supported"),
        (
            r#"{ event.exception = "x" }"#,
            r#""event.exception" is not supported"#,
        ),
        (
            r#"{ event:name = "x" }"#,
            r#""event:name" is not supported"#,
        ),
        (r#"{ link.kind = "x" }"#, r#""link.kind" is not supported"#),
        ("{ duration + 1ms > 2ms }", "arithmetic is not supported"),
    ];
    for (q, want) in cases {
        let e = parse(q).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(want), "{q}: {e}");
    }
}

#[test]
fn malformed_queries_are_errors_with_a_position() {
    let cases: &[(&str, &str, usize)] = &[
        ("", "the query is empty", 0),
        ("{", "expected an attribute at the end", 1),
        ("{ name = }", "expected a value", 9),
        (r#"{ name = "x" "#, "expected '}' at the end", 13),
        (r#"{ name "x" }"#, "expected a comparison after name", 7),
        (r#"{ name = "x }"#, "unterminated string", 9),
        ("{ status = 2 }", "cannot compare", 11),
        ("{ status > error }", "cannot compare", 11),
        (r#"{ duration > "1s" }"#, "cannot compare", 13),
        ("{ duration > 5 }", "cannot compare", 13),
        (r#"{ kind = "server" }"#, "cannot compare", 9),
        ("{ name = 5xs }", "invalid duration unit", 9),
        ("{ .a = bogus }", "strings are quoted", 7),
        ("{ foo = 1 }", "unknown intrinsic", 2),
        (r#"{ name =~ "(" }"#, "invalid regular expression", 10),
        ("{ span. = 1 }", "names no attribute", 2),
        (r#"{ name = "a" } {"#, "unexpected", 15),
        ("{ duration > 99999999999h }", "out of range", 13),
    ];
    for (q, want, pos) in cases {
        let e = parse(q).map(|_| ()).unwrap_err();
        assert!(e.message.contains(want), "{q}: {e}");
        assert_eq!(e.pos, *pos, "{q}: {e}");
    }
}

#[test]
fn hostile_queries_are_bounded() {
    let long = format!("{{ name = \"{}\" }}", "a".repeat(super::MAX_QUERY_BYTES));
    assert!(parse(&long).unwrap_err().message.contains("longer than"));
    let deep = format!("{}{{}}{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
    let many = format!("{{ {} }}", vec![r#"name = "a""#; 65].join(" && "));
    assert!(
        parse(&many)
            .unwrap_err()
            .message
            .contains("more than 64 conditions")
    );
    let huge_re = r#"{ name =~ "(a{1000}){1000}" }"#;
    assert!(
        parse(huge_re)
            .unwrap_err()
            .message
            .contains("regular expression")
    );
}

#[test]
fn the_plan_narrows_with_what_every_match_needs() {
    let plan = |q: &str| parse(q).unwrap().plan();
    let p = plan(
        r#"{ resource.service.name = "db" && name = "query" && kind = server && duration > 10ms && duration <= 1s && cluster = "c" }"#,
    );
    assert_eq!(p.service.as_deref(), Some("db"));
    assert_eq!(p.operation.as_deref(), Some("query"));
    assert_eq!(p.span_kind, Some(SpanKind::Server));
    assert_eq!(p.duration_min_nanos, Some(10_000_001));
    assert_eq!(p.duration_max_nanos, Some(1_000_000_000));
    assert_eq!(p.cluster.as_deref(), Some("c"));
    assert!(p.exact);
    // Tags narrow but are confirmed (the store's tag match is broader).
    let p = plan(r#"{ span.db.system = "postgres" && status = error }"#);
    assert_eq!(p.tags.len(), 2);
    assert!(!p.exact);
    // An `||` anywhere in the conjunction: that term is not planned.
    let p = plan(r#"{ name = "a" || name = "b" }"#);
    assert_eq!(
        p,
        Plan {
            exact: false,
            ..Plan::default()
        }
    );
    // Structure: the richer side is planned, and nothing is exact.
    let p = plan(r#"{ cluster = "a" } >> { cluster = "c" && status = error }"#);
    assert_eq!(p.cluster.as_deref(), Some("c"));
    assert!(!p.exact);
    // A union needs neither side.
    assert_eq!(plan(r#"{ name = "a" } || { name = "b" }"#), Plan::default());
}

/// Every planned condition is necessary: whatever the trace, a match has
/// a span the store's search accepts.
#[test]
fn plans_never_exclude_a_match() {
    let trace = three_clusters();
    let queries = [
        r#"{ resource.service.name = "db" && status = error }"#,
        r#"{ span.http.status_code = 500 && kind = client }"#,
        r#"{ cluster = "a" } >> { cluster = "c" && status = error }"#,
        r#"{ name = "get" } && { duration < 5ms }"#,
        r#"{ .db.system = "postgres" && duration > 29ms && duration < 31ms }"#,
    ];
    for q in queries {
        let query = parse(q).unwrap();
        assert!(query.eval(&trace).is_some(), "{q} should match");
        let mut tq = store::testsuite::any_query();
        query.plan().apply(&mut tq);
        assert!(
            trace.spans.iter().any(|s| tq.matches_span(s)),
            "{q}: plan {tq:?}"
        );
    }
}

/// The store keeps `service.name` out of the resource's tags: a plan must
/// not ask for it as one.
#[test]
fn the_service_is_never_planned_as_a_tag() {
    let trace = three_clusters();
    for q in [
        r#"{ .service.name = "db" }"#,
        r#"{ resource.service.name = "db" && status = error }"#,
    ] {
        let query = parse(q).unwrap();
        let mut tq = store::testsuite::any_query();
        query.plan().apply(&mut tq);
        assert!(
            tq.tags.iter().all(|t| t.key != "service.name"),
            "{q}: {tq:?}"
        );
        assert!(trace.spans.iter().any(|s| tq.matches_span(s)), "{q}");
    }
}
