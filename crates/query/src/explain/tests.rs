//! The comparison on seeded synthetic traces: planted causes rank first,
//! the extra time lands where it was planted, adjusted counts undo mixed
//! head sampling, and nothing planted gives nothing significant.

use model::{AttrValue, KeyValue, Span, SpanKind, Trace};
use sampling::head::{format_th, threshold};
use store::testsuite::{MS, SpanBuilder, trace_id};

use super::{
    analyze::{Explanation, Options, explain},
    score::SIGNIFICANT_SCORE,
};

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn span(n: u64, id: u64, parent: Option<u64>, svc: &str, cluster: &str, at: u64, dur: u64) -> Span {
    let mut b = SpanBuilder::new(n, id, svc).cluster(cluster).at(at, dur);
    if let Some(p) = parent {
        b = b.parent(p);
    }
    b.build()
}

/// web (us-east) → api (eu-west) → db client span with `db.shard`; the
/// shard `slow_shard` adds 300 ms in api's db call.
fn trace(rng: &mut Rng, n: u64, slow_shard: Option<u64>) -> Trace {
    let shard = rng.below(10);
    let db_ms = 10 + rng.below(20) + if Some(shard) == slow_shard { 300 } else { 0 };
    let api_ms = db_ms + 10 + rng.below(10);
    let web_ms = api_ms + 20 + rng.below(20);
    let mut db = span(n, 3, Some(2), "api", "eu-west", 8, db_ms);
    db.kind = SpanKind::Client;
    db.attributes
        .push(KeyValue::new("db.shard", AttrValue::Int(shard as i64)));
    Trace {
        trace_id: trace_id(n),
        spans: vec![
            span(n, 1, None, "web", "us-east", 0, web_ms),
            span(n, 2, Some(1), "api", "eu-west", 5, api_ms),
            db,
        ],
    }
}

fn split(traces: Vec<Trace>, min_ms: u64) -> (Vec<Trace>, Vec<Trace>) {
    traces
        .into_iter()
        .partition(|t| t.spans[0].duration_nanos() >= min_ms * MS)
}

fn top(e: &Explanation) -> (&str, &str) {
    (e.dimensions[0].key.as_str(), e.dimensions[0].value.as_str())
}

#[test]
fn the_planted_shard_ranks_first_and_holds_the_extra_time() {
    let mut rng = Rng(7);
    let all: Vec<Trace> = (1..=600).map(|n| trace(&mut rng, n, Some(7))).collect();
    let (sel, base) = split(all, 300);
    let e = explain(&sel, &base, &Options::default());
    assert_eq!(top(&e), ("span.db.shard", "7"), "{:?}", e.dimensions);
    assert!(e.dimensions[0].score >= SIGNIFICANT_SCORE);
    assert!((e.dimensions[0].selection_share - 1.0).abs() < 1e-9);
    assert_eq!(e.dimensions[0].baseline_share, 0.0);
    assert_eq!(e.dimensions[0].example_trace_ids.len(), 3);
    let extra = e.selection.mean_duration_ms - e.baseline.mean_duration_ms;
    let api = e
        .latency
        .iter()
        .find(|l| l.service == "api" && l.cluster == "eu-west")
        .map(|l| l.delta_ms)
        .unwrap_or_default();
    assert_eq!(e.latency[0].service, "api");
    assert!(api >= 0.8 * extra, "api {api} of {extra}");
}

#[test]
fn nothing_planted_gives_nothing_significant() {
    let mut rng = Rng(11);
    let all: Vec<Trace> = (1..=2000).map(|n| trace(&mut rng, n, None)).collect();
    // The slowest fifth, by noise alone.
    let (sel, base) = split(all, 68);
    assert!(
        sel.len() > 100 && base.len() > 100,
        "{} {}",
        sel.len(),
        base.len()
    );
    let e = explain(&sel, &base, &Options::default());
    assert!(
        e.dimensions.iter().all(|d| d.score < SIGNIFICANT_SCORE),
        "{:?}",
        e.dimensions.first()
    );
}

fn sampled(mut t: Trace, p: f64) -> Option<Trace> {
    let th = threshold(p);
    if t.trace_id.randomness() < th {
        return None;
    }
    for s in &mut t.spans {
        s.trace_state = format!("ot=th:{}", format_th(th));
    }
    Some(t)
}

#[test]
fn adjusted_counts_undo_head_sampling_at_different_rates() {
    // Half of all traces go through shard 3; those are head-sampled at
    // 1 %, the others at 10 %. Read as stored, shard 3 would look like
    // ~9 % of the baseline; with adjusted counts it is ~50 %.
    let mut rng = Rng(3);
    let mut kept = Vec::new();
    for n in 0..200_000u64 {
        let mut t = trace(&mut rng, n, None);
        // Random ids, as real ones are.
        t.trace_id = model::TraceId::from_array(
            [rng.next_u64().to_be_bytes(), rng.next_u64().to_be_bytes()]
                .concat()
                .try_into()
                .expect("16 bytes"),
        );
        let three = n % 2 == 0;
        t.spans[2].attributes[0] =
            KeyValue::new("db.shard", AttrValue::Int(if three { 3 } else { 4 }));
        if let Some(t) = sampled(t, if three { 0.01 } else { 0.1 }) {
            kept.push(t);
        }
    }
    let (sel, base): (Vec<Trace>, Vec<Trace>) = kept
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 5 == 0)
        .into_iter_pair();
    let e = explain(&sel, &base, &Options::default());
    let shard3 = e
        .dimensions
        .iter()
        .find(|d| d.key == "span.db.shard" && d.value == "3")
        .expect("a dimension");
    assert!((shard3.baseline_share - 0.5).abs() < 0.05, "{shard3:?}");
    assert!(
        (e.baseline.adjusted_traces / (e.baseline.adjusted_traces + e.selection.adjusted_traces)
            - 0.8)
            .abs()
            < 0.05
    );
    // The random split has no cause.
    assert!(shard3.score.abs() < SIGNIFICANT_SCORE, "{shard3:?}");
}

trait Pair {
    fn into_iter_pair(self) -> (Vec<Trace>, Vec<Trace>);
}

impl Pair for (Vec<(usize, Trace)>, Vec<(usize, Trace)>) {
    fn into_iter_pair(self) -> (Vec<Trace>, Vec<Trace>) {
        (
            self.0.into_iter().map(|(_, t)| t).collect(),
            self.1.into_iter().map(|(_, t)| t).collect(),
        )
    }
}

#[test]
fn high_cardinality_and_excluded_keys_are_reported_not_scored() {
    let mut rng = Rng(5);
    let mut all: Vec<Trace> = (1..=300).map(|n| trace(&mut rng, n, Some(2))).collect();
    for t in &mut all {
        let id = t.trace_id.to_hex();
        t.spans[0]
            .attributes
            .push(KeyValue::string("request.id", id));
    }
    let (sel, base) = split(all, 300);
    let opts = Options {
        exclude_keys: ["span.db.shard".to_owned()].into(),
        ..Options::default()
    };
    let e = explain(&sel, &base, &opts);
    assert!(
        e.dimensions
            .iter()
            .all(|d| d.key != "span.request.id" && d.key != "span.db.shard")
    );
    let skipped = e
        .skipped_keys
        .iter()
        .find(|k| k.key == "span.request.id")
        .expect("skipped");
    assert_eq!(
        skipped.distinct_values,
        Options::default().max_values_per_key + 1
    );
    assert_eq!(e.excluded_keys, ["span.db.shard"]);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stops_answering_gives_a_partial_answer_at_the_deadline() {
    use model::access::Scope;
    use store::testsuite::fake::FakeStore;

    let store = FakeStore::default();
    store.hang_searches();
    let req = super::params::request(
        Some("service=web&minDuration=100ms"),
        1_700_000_000_000_000_000,
        &crate::QueryLimits::default(),
    )
    .expect("params");
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    let a = super::run::run(&store, &req, &Scope::All, deadline)
        .await
        .expect("an answer");
    assert!(a.partial);
    assert_eq!(a.explanation.selection.traces, 0);
    assert!(
        a.warnings
            .iter()
            .any(|w| w.starts_with("the deadline stopped the reads")),
        "{:?}",
        a.warnings
    );
}
