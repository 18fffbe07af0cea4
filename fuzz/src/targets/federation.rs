//! The federation messages: `Forward` (and its payload), `Decide`'s
//! digest batches, `ForwardWindows` (and its RED payload), `Control`.

use std::sync::Arc;

use prost::Message;
use proto::{
    bounds::{self, DecodeLimits, Schema},
    codec::{self, Bounded},
    federation::{
        Compression, ControlRequest, ControlUpdate, DigestBatch, ForwardRequest, TraceDigest,
        Verdict,
    },
    metrics::{RedSeries, RedWindow, WindowBatch},
    payload,
};

use super::{BASE, Target, mode};

/// The gateway's payload limit, scaled down with the inputs.
const PAYLOAD_LIMIT: usize = 1 << 20;

pub const FORWARD: Target = Target {
    name: "forward",
    about: "Forward: ForwardRequest through proto::codec, then its payload (none or zstd) through the bounds scan and prost",
    bound: "the decompressed payload + 2 × the scan's estimate of it + 6 × input + 256 KiB",
    dict: &[
        b"\x28\x01",
        b"\x32",
        b"\x38",
        b"\x0a\x00",
        b"\x12\x00",
        b"\x28\xb5\x2f\xfd",
    ],
    seeds: seeds_forward,
    run: run_forward,
};

pub const DECIDE: Target = Target {
    name: "decide",
    about: "Decide: DigestBatch through proto::codec (bounds scan, prost), stitch::tail::wire::relayable",
    bound: "2 × the scan's estimate + 6 × input + 256 KiB",
    dict: &[
        b"\x1a\x00",
        b"\x22\x00",
        b"\x0a\x10",
        b"\x38\x01",
        b"\x40\x01",
    ],
    seeds: seeds_decide,
    run: run_decide,
};

pub const FORWARD_WINDOWS: Target = Target {
    name: "forward-windows",
    about: "ForwardWindows: WindowBatch payload (bounds scan, prost), proto::red::from_series",
    bound: "2 × the scan's estimate + 16 × input + 256 KiB",
    dict: &[
        b"\x0a\x00",
        b"\x1a\x00",
        b"\x4a\x00",
        b"\x52\x00",
        b"\x5a\x00",
        b"\xff\xff\xff\xff\x0f",
    ],
    seeds: seeds_windows,
    run: run_windows,
};

pub const CONTROL: Target = Target {
    name: "control",
    about: "Control: ControlRequest, ControlUpdate (bounds scan, prost) and the agent's policy and member parsing",
    bound: "2 × the scan's estimate + 16 × input + 256 KiB",
    dict: &[
        b"\x0a\x00",
        b"\x12",
        b"{",
        b"}",
        b"\"head\":",
        b"\"tail\":",
        b"\"rules\":[",
        b"https://",
    ],
    seeds: seeds_control,
    run: run_control,
};

fn otlp_seed() -> Vec<u8> {
    proto::corpus::Generator::new(5).request(8).encode_to_vec()
}

fn seeds_forward() -> Vec<Vec<u8>> {
    let raw = otlp_seed();
    let mut out = Vec::new();
    if let Ok((compressed, size)) = payload::encode(&[&raw, &raw], 1) {
        let req = ForwardRequest {
            agent_id: "agent-1".into(),
            cluster: "east".into(),
            first_sequence: 1,
            last_sequence: 2,
            compression: Compression::Zstd as i32,
            payload: compressed,
            uncompressed_size: size,
            span_count: 16,
            status: None,
        };
        out.push([&[0u8][..], &req.encode_to_vec()].concat());
    }
    out.push([&[1u8][..], &raw].concat());
    out.push([&[2u8][..], &raw].concat());
    out
}

fn check_payload(raw: &[u8]) -> usize {
    match bounds::check_protobuf(raw, &Schema::EXPORT_TRACE, &DecodeLimits::FEDERATION) {
        Ok(found) => 2 * found.decoded_bytes,
        Err(_) => 0,
    }
}

fn run_forward(input: &[u8]) -> usize {
    let (m, data) = mode(input, 3);
    match m {
        0 => {
            let Ok(req) = codec::decode::<ForwardRequest>(data) else {
                return BASE;
            };
            let _ = payload::decode(
                req.compression,
                &req.payload,
                req.uncompressed_size,
                PAYLOAD_LIMIT,
            );
            // What the payload inflates to, within its declared size.
            let cap = usize::try_from(req.uncompressed_size)
                .unwrap_or(usize::MAX)
                .min(PAYLOAD_LIMIT);
            let raw = match Compression::try_from(req.compression) {
                Ok(Compression::Zstd) => {
                    zstd::bulk::decompress(&req.payload, cap).unwrap_or_default()
                }
                _ => req.payload.clone(),
            };
            cap + check_payload(&raw) + 6 * input.len() + BASE
        }
        1 => {
            let _ = payload::decode(Compression::None as i32, data, 0, PAYLOAD_LIMIT);
            check_payload(data) + 6 * input.len() + BASE
        }
        _ => {
            let Ok(compressed) = zstd::bulk::compress(data, 1) else {
                return BASE;
            };
            let _ = payload::decode(
                Compression::Zstd as i32,
                &compressed,
                data.len() as u64,
                PAYLOAD_LIMIT,
            );
            data.len() + compressed.len() + check_payload(data) + 6 * input.len() + BASE
        }
    }
}

fn seeds_decide() -> Vec<Vec<u8>> {
    let digest = |i: u8| TraceDigest {
        trace_id: vec![i; 16],
        statuses: 4,
        min_start_unix_nano: 1_700_000_000_000_000_000,
        duration_nano: 5_000_000,
        span_count: 3,
        bytes: 900,
        local_verdict: Verdict::Drop as i32,
        policy: u32::from(i % 2),
    };
    let batch = DigestBatch {
        agent_id: "agent-1".into(),
        cluster: "east".into(),
        digests: (1..=4).map(digest).collect(),
        policies: vec!["errors".into()],
    };
    vec![batch.encode_to_vec()]
}

fn run_decide(input: &[u8]) -> usize {
    let limits = <DigestBatch as Bounded>::LIMITS;
    let Ok(found) = bounds::check_protobuf(input, &Schema::DIGEST_BATCH, &limits) else {
        return BASE;
    };
    if let Ok(batch) = codec::decode::<DigestBatch>(input) {
        let cluster: Arc<str> = Arc::from("east");
        let _ = stitch::tail::wire::relayable(batch, &cluster);
    }
    2 * found.decoded_bytes + 6 * input.len() + BASE
}

fn seeds_windows() -> Vec<Vec<u8>> {
    let series = RedSeries {
        service: "svc".into(),
        operation: "GET /".into(),
        span_kind: "server".into(),
        status_code: "ok".into(),
        count: 10,
        errors: 1,
        duration_sum_ns: 10_000_000,
        zero_count: 0,
        bin_index: vec![-3, 0, 500],
        bin_count: vec![2, 3, 5],
        exemplars: vec![proto::metrics::Exemplar {
            trace_id: "5b8efff798038103d269b633813fc60c".into(),
            duration_ns: 1_000_000,
            error: true,
        }],
    };
    let batch = WindowBatch {
        windows: vec![RedWindow {
            start_ms: 1_700_000_000_000,
            duration_ms: 10_000,
            series: vec![series],
            folded_spans: 0,
            agent_epoch: 1,
        }],
    };
    vec![batch.encode_to_vec()]
}

fn run_windows(input: &[u8]) -> usize {
    let bound =
        match bounds::check_protobuf(input, &Schema::WINDOW_BATCH, &DecodeLimits::FEDERATION) {
            Ok(found) => 2 * found.decoded_bytes + 16 * input.len() + BASE,
            Err(_) => return BASE,
        };
    if let Ok(batch) =
        payload::decode_as::<WindowBatch>(Compression::None as i32, input, 0, PAYLOAD_LIMIT)
    {
        for w in &batch.windows {
            for s in &w.series {
                let _ = proto::red::from_series(s);
            }
        }
    }
    bound
}

fn seeds_control() -> Vec<Vec<u8>> {
    let req = ControlRequest {
        agent_id: "agent-1".into(),
        cluster: "east".into(),
    };
    let update = ControlUpdate {
        gateways: vec!["https://gw-1:4320".into(), "https://gw-2:4320".into()],
        sampling_policy_json:
            r#"{"head":{"default_probability":0.5,"rules":[{"service":"svc","probability":1.0}]}}"#
                .into(),
        sequence: 3,
    };
    vec![
        [&[0u8][..], &req.encode_to_vec()].concat(),
        [&[1u8][..], &update.encode_to_vec()].concat(),
    ]
}

fn run_control(input: &[u8]) -> usize {
    let (m, data) = mode(input, 2);
    if m == 0 {
        let _ = codec::decode::<ControlRequest>(data);
        return 16 * input.len() + BASE;
    }
    let limits = <ControlUpdate as Bounded>::LIMITS;
    let Ok(found) = bounds::check_protobuf(data, &Schema::CONTROL_UPDATE, &limits) else {
        return BASE;
    };
    if let Ok(update) = codec::decode::<ControlUpdate>(data) {
        let _ = edge_agent::control::members::parse(&update.gateways.join("\n"));
        let running = model::sampling::SamplingConfig::default();
        let local = Arc::new(model::sampling::SamplingConfig::default());
        let _ = edge_agent::control::policy::choose(&running, &local, &update.sampling_policy_json);
    }
    2 * found.decoded_bytes + 16 * input.len() + BASE
}
