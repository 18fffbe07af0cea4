use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use prost::Message;
use proto::otlp::{self, ExportTraceServiceRequest, Span};

use super::*;

/// One buffer record of `spans` spans, `pad` bytes of span name each.
fn record(seq: u64, spans: u8, pad: usize) -> Record {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![seq as u8; 16],
                        span_id: vec![i + 1; 8],
                        name: "x".repeat(pad),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Record {
        seq,
        payload: Bytes::from(req.encode_to_vec()),
        spans: u64::from(spans),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn kept_batches_decode_to_every_span_and_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dead-letter");
    let dl = DeadLetter::open(dir.clone(), 1 << 20, DeadLetterStats::default()).unwrap();
    let batch = [record(7, 2, 10), record(8, 3, 10)];
    let Kept::Stored { path, evicted } = dl.keep_blocking("gateway", &batch, 1_000).unwrap() else {
        panic!("stored");
    };
    assert_eq!(evicted, 0);
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("0000000001000-gateway-00000000000000000007-00000000000000000008.pb")
    );
    let req = ExportTraceServiceRequest::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    assert_eq!(otlp::span_count(&req), 5, "both records, merged");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(dl.stats().batches("kept"), 1);
    assert_eq!(files(&dir).len(), 1, "no temporary file left");
}

#[test]
fn the_cap_evicts_the_oldest_and_holds_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dl");
    let size = record(1, 1, 400).payload.len() as u64;
    let cap = size * 3 + size / 2;
    let dl = DeadLetter::open(dir.clone(), cap, DeadLetterStats::default()).unwrap();
    for i in 1..=5u64 {
        dl.keep_blocking("gateway", &[record(i, 1, 400)], 1_000 + i)
            .unwrap();
        assert!(dl.stats().held_bytes() <= cap, "never above the cap");
    }
    let names = files(&dir);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[0].starts_with("0000000001003-"),
        "oldest two evicted: {names:?}"
    );
    assert_eq!(dl.stats().batches("evicted"), 2);
    assert_eq!(dl.stats().held_bytes(), 3 * size);

    // A restart counts what is there: the next batch still evicts.
    std::fs::write(dir.join(".tmp-0000000009999-gateway-x.pb"), b"torn").unwrap();
    std::fs::write(dir.join("README"), b"not a batch").unwrap();
    let dl = DeadLetter::open(dir.clone(), cap, DeadLetterStats::default()).unwrap();
    assert_eq!(dl.stats().held_bytes(), 3 * size);
    let Kept::Stored { evicted, .. } = dl
        .keep_blocking("otlp", &[record(6, 1, 400)], 2_000)
        .unwrap()
    else {
        panic!("stored");
    };
    assert_eq!(evicted, 1);
    let names = files(&dir);
    assert_eq!(names.len(), 4, "three batches and the README: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with(".tmp-")));
    assert!(names.iter().any(|n| n.starts_with("0000000002000-otlp-")));
}

#[test]
fn a_batch_larger_than_the_cap_is_counted_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = DeadLetter::open(tmp.path().to_owned(), 100, DeadLetterStats::default()).unwrap();
    dl.keep_blocking("gateway", &[record(1, 1, 10)], 1).unwrap();
    let before = files(tmp.path());
    let got = dl
        .keep_blocking("gateway", &[record(2, 1, 500)], 2)
        .unwrap();
    assert!(matches!(got, Kept::TooLarge { .. }), "{got:?}");
    assert_eq!(files(tmp.path()), before, "nothing evicted for it");
    assert_eq!(dl.stats().batches("too_large"), 1);
}
