//! Tail-sampling memory per held span: growth of this process's RSS while a
//! `TailSampler` takes N spans of the benchmark corpus (none decided yet),
//! divided by N. The corpus is held encoded before the baseline; each
//! request is decoded just before ingest, so the transient is one request
//! (≈0.5 MB against ≈60 MB measured). Prints one JSON line.
//!
//! `cargo bench -p edge-agent --bench tail_memory`
#![allow(clippy::print_stdout)] // a bench reports on stdout

use bytes::Bytes;
use edge_agent::sampler::tail::TailSampler;
use model::sampling::{TailConfig, TailPolicy, TailRule};
use prost::Message;
use telemetry::clock::ManualClock;

/// Resident set size of this process, bytes.
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    const REQUESTS: usize = 400;
    const SPANS: usize = 512;
    let cfg = TailConfig {
        decision_wait_ms: 3_600_000,
        max_traces: usize::MAX,
        max_bytes: usize::MAX,
        policies: vec![
            TailPolicy {
                name: "errors".into(),
                rule: TailRule::StatusCode {
                    status_codes: vec!["ERROR".into()],
                },
            },
            TailPolicy {
                name: "routes".into(),
                rule: TailRule::StringAttribute {
                    key: "http.route".into(),
                    values: vec!["/api/checkout".into()],
                },
            },
        ],
    };
    let mut corpus = proto::corpus::Generator::new(7);
    let mut encoded = 0;
    let reqs: Vec<Bytes> = (0..REQUESTS)
        .map(|_| {
            let r = corpus.request(SPANS);
            encoded += proto::corpus::span_bytes(&r);
            Bytes::from(r.encode_to_vec())
        })
        .collect();
    let mut sampler = TailSampler::new(&cfg, ManualClock::default()).expect("valid policy");
    // Warm the allocator with one decode so its arenas exist before the baseline.
    drop(proto::otlp::ExportTraceServiceRequest::decode(
        reqs[0].clone(),
    ));
    let before = rss();
    for r in &reqs {
        let req =
            proto::otlp::ExportTraceServiceRequest::decode(r.clone()).expect("corpus decodes");
        let released = sampler.ingest(req);
        assert!(released.is_empty());
    }
    let after = rss();
    let spans = (REQUESTS * SPANS) as f64;
    let per_span = (after - before) as f64 / spans;
    let usage = sampler.usage();
    println!(
        "{}",
        serde_json::json!({
            "name": "tail-memory",
            "spans": spans,
            "traces": usage.traces,
            "encoded_span_bytes": (encoded as f64 / spans * 10.0).round() / 10.0,
            "bytes_per_span": (per_span * 10.0).round() / 10.0,
            "accounted_bytes_per_span": (usage.bytes as f64 / spans * 10.0).round() / 10.0,
        })
    );
}
