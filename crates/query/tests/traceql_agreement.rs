//! TraceQL on `/api/traces?q=` agrees with the Jaeger-style search on the
//! same filters (issue 19, Tests): over a real store holding a few hundred
//! generated spans (services, clusters, kinds, tags, durations, errors,
//! traces straddling the window), for each row of a table of filter
//! combinations, `/api/traces?service=S&operation=O&tags={..}&minDuration=..`
//! and `/api/traces?q={ resource.service.name = "S" && name = "O" && … }`
//! return the same trace ids, and both equal what a brute-force pass over
//! the generated spans says. SQLite always; two Postgres shards when
//! `MERIDIAN_TEST_POSTGRES` is set (a failure, not a skip, when
//! `MERIDIAN_REQUIRE_POSTGRES=1`).

use std::{collections::BTreeSet, sync::Arc};

use axum::{Extension, body::Body};
use http_body_util::BodyExt;
use model::{AttrValue, SpanKind, access::Scope};
use serde_json::Value;
use store::{
    SpanStore,
    testsuite::{MS, SpanBuilder, T0, trace_id},
};
use tower::ServiceExt;

const SERVICES: &[&str] = &["checkout", "payments", "cart", "search"];
const OPERATIONS: &[&str] = &["GET /a", "POST /b", "db.query", "cache.get"];
const CLUSTERS: &[&str] = &["east", "west", "north"];
const METHODS: &[&str] = &["GET", "POST"];
const TIERS: &[&str] = &["gold", "silver"];
const CODES: &[i64] = &[200, 404, 500];
const TRACES: u64 = 90;
const MINUTE_MS: u64 = 60_000;
/// The searched window: T0 ± 30 min; traces start from T0 − 45 min to
/// T0 + 44 min, and some spread their spans over 12 minutes, so some
/// cross an edge of the window.
const WINDOW_MS: u64 = 30 * MINUTE_MS;

/// One generated span, as the oracle reads it.
#[derive(Debug, Clone)]
struct Spec {
    trace: u64,
    service: &'static str,
    operation: &'static str,
    kind: SpanKind,
    cluster: &'static str,
    /// Start, ms after T0 − 45 min.
    start_ms: u64,
    dur_ms: u64,
    error: bool,
    method: &'static str,
    tier: Option<&'static str>,
    code: i64,
}

impl Spec {
    fn start_ns(&self) -> u64 {
        T0 - 45 * MINUTE_MS * MS + self.start_ms * MS
    }
}

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).expect("fits") % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next(from.len())]
    }
}

fn generate() -> Vec<Spec> {
    let mut r = Lcg(19);
    let mut out = Vec::new();
    for trace in 1..=TRACES {
        let start = (trace - 1) * 59_000 + r.next(1_000) as u64;
        let spread = if trace % 7 == 0 { 3 * MINUTE_MS } else { 5 };
        let spans = 2 + r.next(4);
        for s in 0..spans {
            let service = r.pick(SERVICES);
            out.push(Spec {
                trace,
                service,
                operation: r.pick(OPERATIONS),
                kind: if s == 0 {
                    SpanKind::Server
                } else {
                    r.pick(&[SpanKind::Server, SpanKind::Client, SpanKind::Internal])
                },
                cluster: r.pick(CLUSTERS),
                start_ms: start + s as u64 * spread,
                dur_ms: 1 + r.next(300) as u64,
                error: r.next(6) == 0,
                method: r.pick(METHODS),
                tier: (r.next(3) != 0).then(|| r.pick(TIERS)),
                code: r.pick(CODES),
            });
        }
    }
    out
}

async fn seed(store: &dyn SpanStore, specs: &[Spec]) {
    let mut prev: Option<(u64, u64)> = None;
    let spans: Vec<model::Span> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = i as u64 + 1;
            let mut b = SpanBuilder::new(s.trace, id, s.service)
                .name(s.operation)
                .kind(s.kind)
                .cluster(s.cluster)
                .at_unix(s.start_ns(), s.dur_ms)
                .attr("http.method", AttrValue::Str(s.method.into()))
                .attr("http.status_code", AttrValue::Int(s.code))
                // An event attribute no row asks for: events stay out of
                // both searches' answers here.
                .event("log", vec![model::KeyValue::string("note", "seen")]);
            if let Some(t) = s.tier {
                b = b.attr("tier", AttrValue::Str(t.into()));
            }
            if s.error {
                b = b.error("failed");
            }
            if let Some((trace, root)) = prev
                && trace == s.trace
            {
                b = b.parent(root);
            } else {
                prev = Some((s.trace, id));
            }
            b.build()
        })
        .collect();
    for chunk in spans.chunks(100) {
        store.write(chunk).await.expect("write");
    }
}

/// A tag filter: its Jaeger key and value, the TraceQL that says the
/// same, and the oracle's test.
struct Tag {
    key: &'static str,
    value: &'static str,
    traceql: &'static str,
    holds: fn(&Spec) -> bool,
}

const ERROR: Tag = Tag {
    key: "error",
    value: "true",
    traceql: "status = error",
    holds: |s| s.error,
};
const POST: Tag = Tag {
    key: "http.method",
    value: "POST",
    traceql: r#"span.http.method = "POST""#,
    holds: |s| s.method == "POST",
};
/// Unscoped: a span attribute or a resource's.
const GET_UNSCOPED: Tag = Tag {
    key: "http.method",
    value: "GET",
    traceql: r#".http.method = "GET""#,
    holds: |s| s.method == "GET",
};
const GOLD: Tag = Tag {
    key: "tier",
    value: "gold",
    traceql: r#"span.tier = "gold""#,
    holds: |s| s.tier == Some("gold"),
};
const SILVER: Tag = Tag {
    key: "tier",
    value: "silver",
    traceql: r#"span.tier = "silver""#,
    holds: |s| s.tier == Some("silver"),
};
const CODE_500: Tag = Tag {
    key: "http.status_code",
    value: "500",
    traceql: "span.http.status_code = 500",
    holds: |s| s.code == 500,
};
const WEST: Tag = Tag {
    key: "k8s.cluster.name",
    value: "west",
    traceql: r#"resource.k8s.cluster.name = "west""#,
    holds: |s| s.cluster == "west",
};

/// One row of the table: the filters, all on one span (Jaeger's
/// semantics, and a single TraceQL spanset filter's).
#[derive(Default)]
struct Row {
    service: Option<&'static str>,
    operation: Option<&'static str>,
    kind: Option<SpanKind>,
    tags: Vec<Tag>,
    min_ms: Option<u64>,
    max_ms: Option<u64>,
}

impl Row {
    fn jaeger_uri(&self, window: &str) -> String {
        let mut p = form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.service {
            p.append_pair("service", s);
        }
        if let Some(o) = self.operation {
            p.append_pair("operation", o);
        }
        if let Some(k) = self.kind {
            p.append_pair("spanKind", k.jaeger_name().expect("named kind"));
        }
        if !self.tags.is_empty() {
            let map: serde_json::Map<String, Value> = self
                .tags
                .iter()
                .map(|t| (t.key.to_owned(), Value::String(t.value.to_owned())))
                .collect();
            p.append_pair("tags", &Value::Object(map).to_string());
        }
        if let Some(m) = self.min_ms {
            p.append_pair("minDuration", &format!("{m}ms"));
        }
        if let Some(m) = self.max_ms {
            p.append_pair("maxDuration", &format!("{m}ms"));
        }
        format!("/api/traces?{}&{window}", p.finish())
    }

    fn traceql(&self) -> String {
        let mut terms = Vec::new();
        if let Some(s) = self.service {
            terms.push(format!("resource.service.name = {s:?}"));
        }
        if let Some(o) = self.operation {
            terms.push(format!("name = {o:?}"));
        }
        if let Some(k) = self.kind {
            terms.push(format!("kind = {}", k.jaeger_name().expect("named kind")));
        }
        terms.extend(self.tags.iter().map(|t| t.traceql.to_owned()));
        if let Some(m) = self.min_ms {
            terms.push(format!("duration >= {m}ms"));
        }
        if let Some(m) = self.max_ms {
            terms.push(format!("duration <= {m}ms"));
        }
        format!("{{ {} }}", terms.join(" && "))
    }

    fn traceql_uri(&self, window: &str) -> String {
        let q: String = form_urlencoded::byte_serialize(self.traceql().as_bytes()).collect();
        format!("/api/traces?q={q}&{window}")
    }

    fn holds(&self, s: &Spec) -> bool {
        self.service.is_none_or(|v| v == s.service)
            && self.operation.is_none_or(|v| v == s.operation)
            && self.kind.is_none_or(|k| k == s.kind)
            && self.tags.iter().all(|t| (t.holds)(s))
            && self.min_ms.is_none_or(|m| s.dur_ms >= m)
            && self.max_ms.is_none_or(|m| s.dur_ms <= m)
    }
}

fn table() -> Vec<Row> {
    vec![
        Row {
            service: Some("checkout"),
            ..Row::default()
        },
        Row {
            service: Some("checkout"),
            operation: Some("GET /a"),
            ..Row::default()
        },
        Row {
            service: Some("payments"),
            tags: vec![POST],
            ..Row::default()
        },
        Row {
            service: Some("cart"),
            min_ms: Some(100),
            ..Row::default()
        },
        Row {
            service: Some("checkout"),
            tags: vec![ERROR],
            ..Row::default()
        },
        Row {
            service: Some("search"),
            operation: Some("db.query"),
            tags: vec![GOLD],
            min_ms: Some(20),
            max_ms: Some(250),
            ..Row::default()
        },
        Row {
            tags: vec![CODE_500],
            ..Row::default()
        },
        Row {
            service: Some("payments"),
            kind: Some(SpanKind::Client),
            ..Row::default()
        },
        Row {
            tags: vec![WEST],
            ..Row::default()
        },
        Row {
            service: Some("checkout"),
            tags: vec![SILVER, GET_UNSCOPED],
            max_ms: Some(120),
            ..Row::default()
        },
        Row {
            service: Some("cart"),
            tags: vec![ERROR, CODE_500],
            ..Row::default()
        },
        Row {
            min_ms: Some(250),
            ..Row::default()
        },
        Row {
            service: Some("search"),
            kind: Some(SpanKind::Internal),
            tags: vec![WEST, POST],
            min_ms: Some(50),
            ..Row::default()
        },
        Row {
            service: Some("nobody"),
            ..Row::default()
        },
    ]
}

async fn get(store: &Arc<dyn SpanStore>, uri: &str) -> Value {
    let resp = query::router(Arc::clone(store))
        .layer(Extension(Scope::All))
        .oneshot(
            http::Request::get(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(status, 200, "{uri}: {body}");
    assert_eq!(body["errors"], Value::Null, "{uri}: {body}");
    body
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["traceID"].as_str().expect("traceID").to_owned())
        .collect()
}

async fn agree(store: Arc<dyn SpanStore>, backend: &str) {
    let specs = generate();
    assert!(specs.len() >= 250, "{} spans", specs.len());
    seed(store.as_ref(), &specs).await;
    let (lo, hi) = (T0 - WINDOW_MS * MS, T0 + WINDOW_MS * MS);
    let window = format!("start={}&end={}&limit=1000", lo / 1_000, hi / 1_000);
    let mut nonempty = 0;
    for row in table() {
        let want: BTreeSet<String> = specs
            .iter()
            .filter(|s| (lo..=hi).contains(&s.start_ns()) && row.holds(s))
            .map(|s| trace_id(s.trace).to_hex())
            .collect();
        let jaeger = ids(&get(&store, &row.jaeger_uri(&window)).await);
        let traceql = ids(&get(&store, &row.traceql_uri(&window)).await);
        let q = row.traceql();
        assert_eq!(jaeger, want, "{backend}: Jaeger search for {q}");
        assert_eq!(traceql, want, "{backend}: TraceQL {q}");
        assert!(
            want.len() < TRACES as usize,
            "{backend}: {q} filters nothing"
        );
        nonempty += usize::from(!want.is_empty());
    }
    // The table tests something: all but the "nobody" row find traces.
    assert_eq!(nonempty, table().len() - 1, "{backend}");
}

#[tokio::test]
async fn traceql_and_the_jaeger_search_agree_on_sqlite() {
    let store = store::open(&["sqlite::memory:".into()], &Default::default())
        .await
        .expect("open sqlite");
    agree(store, "sqlite").await;
}

#[tokio::test]
async fn traceql_and_the_jaeger_search_agree_on_postgres() {
    let Some(server) = store::testsuite::pg::server_from_env("traceql agreement") else {
        return;
    };
    let urls = store::testsuite::pg::fresh_databases(&server, 2).await;
    let store = store::open(&urls, &store::StoreOptions::default())
        .await
        .expect("open postgres shards");
    agree(store, "postgres (2 shards)").await;
}
