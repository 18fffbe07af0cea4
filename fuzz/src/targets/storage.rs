//! Bytes read back from disk: the store's chunk and span-body codecs, the
//! agent's WAL frames, the Raft log records.

use edge_agent::buffer::wal::format;

use super::{BASE, Target, mode, parts};

pub const CHUNK: Target = Target {
    name: "store-chunk",
    about: "store chunk bodies (Postgres): raw, or a payload wrapped in a valid format byte and zstd frame",
    bound: "64 × (input + its inflated size) + 256 KiB (a 64 MiB preallocation for any frame was found here and fixed)",
    dict: &[
        b"\x01",
        b"\x28\xb5\x2f\xfd",
        b"s",
        b"b",
        b"i",
        b"d",
        b"y",
        b"\x80\x80\x80\x80\x10",
        b"\xff\xff\xff\xff\x0f",
    ],
    seeds: seeds_chunk,
    run: run_chunk,
};

pub const SPAN_BODY: Target = Target {
    name: "store-span-body",
    about: "store span bodies (SQLite, Cassandra): raw, or JSON wrapped in a valid zstd frame",
    bound: "64 × (input + its decompressed size) + 256 KiB",
    dict: &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b",",
        b":",
        b"\x28\xb5\x2f\xfd",
        b"null",
    ],
    seeds: seeds_body,
    run: run_body,
};

pub const WAL: Target = Target {
    name: "wal",
    about: "agent WAL segments (format::scan with resync), the ack cursor and segment names: raw, or framed with valid CRCs",
    bound: "16 × input + 256 KiB",
    dict: &[
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
        b"\x01\x00\x00\x00\x00\x00\x00\x00",
        b"\xfe",
    ],
    seeds: seeds_wal,
    run: run_wal,
};

pub const RAFT_LOG: Target = Target {
    name: "raft-log",
    about: "Raft log replay (records, torn tail, corrupt middle): raw, or JSON bodies framed with valid CRCs",
    bound: "32 × input + 256 KiB",
    dict: &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b",",
        b":",
        b"\n",
        b"\"Entry\":",
        b"\"Normal\":",
        b"\"Membership\":",
        b"\"Committed\":null",
        b"\"Truncate\":",
        b"\"Purge\":",
    ],
    seeds: seeds_raft,
    run: run_raft,
};

fn spans() -> Vec<model::Span> {
    let req = proto::corpus::Generator::new(9).request(8);
    match model::ClusterId::new("east") {
        Ok(cluster) => proto::convert::to_model(&req, &cluster),
        Err(_) => Vec::new(),
    }
}

fn seeds_chunk() -> Vec<Vec<u8>> {
    let spans = spans();
    let refs: Vec<&model::Span> = spans.iter().collect();
    let mut out = Vec::new();
    if let Ok(body) = store::fuzzing::encode_chunk(&refs) {
        // Raw, and unwrapped (mode 1 wraps it again).
        if let Ok(payload) = zstd::stream::decode_all(&body[1..]) {
            out.push([&[1u8][..], &payload].concat());
        }
        out.push([&[0u8][..], &body].concat());
    }
    out
}

/// What a zstd frame really inflates to (at most 64 MiB), for bounds.
fn inflated(frame: &[u8]) -> usize {
    use std::io::Read;
    let Ok(mut d) = zstd::stream::read::Decoder::with_buffer(frame) else {
        return 0;
    };
    let mut sink = [0u8; 8192];
    let mut total = 0usize;
    while total < 64 << 20 {
        match d.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    total
}

fn run_chunk(input: &[u8]) -> usize {
    let (m, data) = mode(input, 2);
    if m == 0 {
        let out = inflated(data.get(1..).unwrap_or_default());
        let _ = store::fuzzing::decode_chunk(data);
        return 64 * (data.len() + out) + BASE;
    }
    let Ok(frame) = zstd::bulk::compress(data, 1) else {
        return BASE;
    };
    let body = [&[1u8][..], &frame].concat();
    let _ = store::fuzzing::decode_chunk(&body);
    64 * (body.len() + data.len()) + BASE
}

fn seeds_body() -> Vec<Vec<u8>> {
    let spans = spans();
    let mut out = Vec::new();
    for span in spans.iter().take(2) {
        if let Ok(body) = store::fuzzing::encode_body(span) {
            if let Ok(json) = zstd::stream::decode_all(body.as_slice()) {
                out.push([&[1u8][..], &json].concat());
            }
            out.push([&[0u8][..], &body].concat());
        }
    }
    out
}

fn run_body(input: &[u8]) -> usize {
    let (m, data) = mode(input, 2);
    if m == 0 {
        let out = inflated(data);
        let _ = store::fuzzing::decode_body(data);
        return 64 * (data.len() + out) + BASE;
    }
    let Ok(frame) = zstd::bulk::compress(data, 1) else {
        return BASE;
    };
    let _ = store::fuzzing::decode_body(&frame);
    64 * (frame.len() + data.len()) + BASE
}

fn seeds_wal() -> Vec<Vec<u8>> {
    let payload = proto::corpus::Generator::new(3).request(2);
    let payload = prost::Message::encode_to_vec(&payload);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&7u64.to_le_bytes());
    framed.extend_from_slice(&payload);
    framed.push(0xfe);
    framed.extend_from_slice(b"second record");
    let mut raw = vec![1u8];
    raw.extend_from_slice(&7u64.to_le_bytes());
    format::encode(&mut raw, 7, 2, &payload);
    format::encode(&mut raw, 8, 1, b"x");
    vec![framed, raw]
}

fn run_wal(input: &[u8]) -> usize {
    let (m, data) = mode(input, 2);
    let (first, rest) = data.split_at(data.len().min(8));
    let mut seq = [0u8; 8];
    seq[..first.len()].copy_from_slice(first);
    let first_seq = u64::from_le_bytes(seq);
    let _ = format::decode_cursor(data);
    let _ = format::parse_segment_name(&String::from_utf8_lossy(rest));
    if m == 1 {
        let scan = format::scan(rest, first_seq);
        check_scan(&scan, rest.len());
        return 16 * input.len() + BASE;
    }
    // Framed: payloads separated by 0xfe, sequences from `first_seq`
    // (a 0xfd byte in a payload skips one: a lost record).
    let mut segment = Vec::with_capacity(rest.len() + 64);
    let mut s = first_seq;
    for p in parts(rest, 0xfe, 256) {
        if p.first() == Some(&0xfd) {
            s = s.wrapping_add(1);
        }
        format::encode(&mut segment, s, p.len() as u32, p);
        s = s.wrapping_add(1);
    }
    let scan = format::scan(&segment, first_seq);
    check_scan(&scan, segment.len());
    16 * input.len() + 64 * 256 + BASE
}

/// What a scan reports must lie within the segment, in order.
fn check_scan(scan: &format::Scan, len: usize) {
    assert!(
        scan.valid_len <= len,
        "valid_len {} > {len}",
        scan.valid_len
    );
    let mut end = 0u64;
    for r in &scan.records {
        assert!(r.offset >= end, "records overlap at {}", r.offset);
        end = r.offset + format::HEADER as u64 + u64::from(r.len);
        assert!(end <= len as u64);
    }
    for w in scan.records.windows(2) {
        assert!(w[1].seq > w[0].seq, "sequences go back: {:?}", w);
    }
}

fn seeds_raft() -> Vec<Vec<u8>> {
    use control_plane::raft::log_store::fuzzing;
    let bodies = fuzzing::sample_bodies();
    let mut framed = vec![1u8];
    framed.extend_from_slice(&bodies.join(&b'\n'));
    let mut raw = vec![0u8];
    for b in &bodies {
        raw.extend_from_slice(&fuzzing::frame(b));
    }
    vec![framed, raw]
}

fn run_raft(input: &[u8]) -> usize {
    use control_plane::raft::log_store::fuzzing;
    let (m, data) = mode(input, 2);
    let log = if m == 0 {
        data.to_vec()
    } else {
        let mut log = Vec::with_capacity(data.len() + 64);
        for body in parts(data, b'\n', 256) {
            log.extend_from_slice(&fuzzing::frame(body));
        }
        log
    };
    let (records, valid, synced_after) = fuzzing::decode(&log);
    assert!(valid <= log.len());
    assert!(records == 0 || valid > 0);
    if let Some(at) = synced_after {
        assert!(
            at > valid && at < log.len(),
            "synced record at {at}, valid {valid}"
        );
    }
    32 * (input.len() + log.len()) + BASE
}
