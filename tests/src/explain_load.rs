//! The seeded three-cluster workload of issue 22 ("Why is it slow?"),
//! with one planted cause per scenario, as OTLP requests.
//!
//! Every trace has six spans: `frontend` (us-east) `GET /checkout` →
//! `cart` (us-east, `service.version` one of 1.3.9, 1.4.1, 1.4.2) →
//! then `inventory` (eu-west) `GET /stock` with a client span
//! `SELECT stock` carrying `db.shard` 0–9 → and a `GET /recommend` call
//! to `recommend` (ap-south), made by `frontend` (path A, us-east →
//! ap-south) or by `inventory` (path B, eu-west → ap-south), half each.
//! Durations are random but independent of every attribute unless a
//! cause is planted:
//!
//! - [`Plant::Shard`]: `db.shard=7` in eu-west adds 300 ms to the query;
//! - [`Plant::Version`]: `cart` 1.4.2 fails 70 % of its calls;
//! - [`Plant::Wan`]: path A's network adds 150 ms each way;
//! - [`Plant::Nothing`]: the negative control.
//!
//! [`Sampling`] head-samples traces with the agent's own decision
//! (`sampling::head`), writing `th` into every kept span's tracestate.

use std::collections::BTreeMap;

use proto::otlp::{
    AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
    Status, any_value, string_kv,
};
use sampling::head::{decide, format_th};

pub const MS: u64 = 1_000_000;
/// The slow shard's extra time.
pub const SHARD_EXTRA_MS: u64 = 300;
/// Path A's extra network time, each way.
pub const WAN_EXTRA_MS: u64 = 150;
pub const VERSIONS: [&str; 3] = ["1.3.9", "1.4.1", "1.4.2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    Nothing,
    Shard,
    Version,
    Wan,
}

/// Head sampling: traces whose `cart` runs `low_version` are kept with
/// probability `low`, the others with `high` (1.0, 1.0: no sampling).
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub low_version: &'static str,
    pub low: f64,
    pub high: f64,
}

impl Sampling {
    pub const NONE: Self = Self {
        low_version: "",
        low: 1.0,
        high: 1.0,
    };
}

/// splitmix64, seeded: the same workload every run.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One generated trace's facts, for the test's own expectations.
#[derive(Debug, Clone)]
pub struct Generated {
    pub trace_id: model::TraceId,
    pub duration_ms: u64,
    pub shard: u64,
    pub version: &'static str,
    pub path_a: bool,
    pub error: bool,
}

/// Spans grouped by resource (service, cluster, version).
#[derive(Debug, Default)]
pub struct Batch {
    by_resource: BTreeMap<(String, String, String), Vec<Span>>,
    pub spans: usize,
}

impl Batch {
    fn push(&mut self, svc: &str, cluster: &str, version: &str, span: Span) {
        self.by_resource
            .entry((svc.into(), cluster.into(), version.into()))
            .or_default()
            .push(span);
        self.spans += 1;
    }

    /// The request, and an empty batch after it.
    pub fn take(&mut self) -> ExportTraceServiceRequest {
        self.spans = 0;
        let resource_spans = std::mem::take(&mut self.by_resource)
            .into_iter()
            .map(|((svc, cluster, version), spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", &svc),
                        string_kv("k8s.cluster.name", &cluster),
                        string_kv("service.version", &version),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}

fn int_kv(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

struct SpanSpec<'a> {
    id: u8,
    parent: Option<u8>,
    name: &'a str,
    kind: i32,
    start_ms: u64,
    dur_ms: u64,
}

/// One scenario: `n` traces of `plant` starting at `t0` (ns), one every
/// `spacing_ms`, trace ids starting with byte `tag`.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub tag: u8,
    pub plant: Plant,
    pub sampling: Sampling,
    pub n: u64,
    pub t0: u64,
    pub spacing_ms: u64,
}

/// Generates `sc`; the kept traces go into `batch` (flushed by `flush`
/// whenever it holds 2 000 spans). Returns every generated trace.
pub fn generate(
    rng: &mut Rng,
    sc: &Scenario,
    batch: &mut Batch,
    flush: &mut dyn FnMut(ExportTraceServiceRequest),
) -> Vec<Generated> {
    let Scenario {
        tag,
        plant,
        sampling,
        n,
        t0,
        spacing_ms,
    } = *sc;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[0] = tag;
        let trace_id = model::TraceId::from_array(id);
        let shard = rng.below(10);
        let version = VERSIONS[rng.below(3) as usize];
        let path_a = rng.below(2) == 0;
        let error = plant == Plant::Version && version == "1.4.2" && rng.below(10) < 7;
        let cart_ms = 10 + rng.below(20);
        let db_ms = 10
            + rng.below(20)
            + if plant == Plant::Shard && shard == 7 {
                SHARD_EXTRA_MS
            } else {
                0
            };
        let reco_ms = 10 + rng.below(20);
        let wan_ms = 5 + if plant == Plant::Wan && path_a {
            WAN_EXTRA_MS
        } else {
            0
        };
        // Timeline (ms from the trace's start).
        let cart_at = 2;
        let inv_at = cart_at + cart_ms + 2;
        let db_at = inv_at + 2;
        let mut inv_end = db_at + db_ms + 2;
        let reco_call_ms = reco_ms + 2 * wan_ms;
        let reco_at = if path_a {
            inv_end + 1
        } else {
            db_at + db_ms + 1
        };
        if !path_a {
            inv_end = reco_at + reco_call_ms + 2;
        }
        let end = if path_a {
            reco_at + reco_call_ms + 3
        } else {
            inv_end + 3
        };
        let p = if version == sampling.low_version {
            sampling.low
        } else {
            sampling.high
        };
        let d = decide(&trace_id, "", p);
        out.push(Generated {
            trace_id,
            duration_ms: end,
            shard,
            version,
            path_a,
            error,
        });
        if !d.keep {
            continue;
        }
        let state = if p < 1.0 {
            format!("ot=th:{}", format_th(d.threshold))
        } else {
            String::new()
        };
        let start = t0 + i * spacing_ms * MS;
        let mk = |s: SpanSpec<'_>| Span {
            trace_id: trace_id.as_bytes().to_vec(),
            span_id: vec![s.id; 8],
            parent_span_id: s.parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: s.name.to_owned(),
            kind: s.kind,
            start_time_unix_nano: start + s.start_ms * MS,
            end_time_unix_nano: start + (s.start_ms + s.dur_ms) * MS,
            trace_state: state.clone(),
            ..Default::default()
        };
        let (server, client) = (2, 3);
        batch.push(
            "frontend",
            "us-east",
            "2.0.0",
            mk(SpanSpec {
                id: 1,
                parent: None,
                name: "GET /checkout",
                kind: server,
                start_ms: 0,
                dur_ms: end,
            }),
        );
        let mut cart = mk(SpanSpec {
            id: 2,
            parent: Some(1),
            name: "POST /cart",
            kind: server,
            start_ms: cart_at,
            dur_ms: cart_ms,
        });
        if error {
            cart.status = Some(Status {
                code: 2,
                message: "cart failed".into(),
            });
        }
        batch.push("cart", "us-east", version, cart);
        batch.push(
            "inventory",
            "eu-west",
            "3.1.0",
            mk(SpanSpec {
                id: 3,
                parent: Some(1),
                name: "GET /stock",
                kind: server,
                start_ms: inv_at,
                dur_ms: inv_end - inv_at,
            }),
        );
        let mut db = mk(SpanSpec {
            id: 4,
            parent: Some(3),
            name: "SELECT stock",
            kind: client,
            start_ms: db_at,
            dur_ms: db_ms,
        });
        db.attributes.push(int_kv("db.shard", shard as i64));
        batch.push("inventory", "eu-west", "3.1.0", db);
        let (caller, caller_cluster, caller_version, caller_id) = if path_a {
            ("frontend", "us-east", "2.0.0", 1)
        } else {
            ("inventory", "eu-west", "3.1.0", 3)
        };
        batch.push(
            caller,
            caller_cluster,
            caller_version,
            mk(SpanSpec {
                id: 5,
                parent: Some(caller_id),
                name: "GET /recommend",
                kind: client,
                start_ms: reco_at,
                dur_ms: reco_call_ms,
            }),
        );
        batch.push(
            "recommend",
            "ap-south",
            "0.9.0",
            mk(SpanSpec {
                id: 6,
                parent: Some(5),
                name: "GET /recommend",
                kind: server,
                start_ms: reco_at + wan_ms,
                dur_ms: reco_ms,
            }),
        );
        if batch.spans >= 2_000 {
            flush(batch.take());
        }
    }
    out
}
