//! `COMPRESSION_OTLP_COLUMNS_ZSTD` (`proto::columns`): the columnar
//! container rebuilt into OTLP bytes, the transform's round trip, and the
//! whole payload decode.

use proto::{
    bounds::{self, DecodeLimits, Schema},
    columns,
    federation::Compression,
    payload,
};

use super::{BASE, Target, mode};

/// The gateway's payload limit, scaled down with the inputs.
const PAYLOAD_LIMIT: usize = 1 << 20;

pub const FORWARD_COLUMNS: Target = Target {
    name: "forward-columns",
    about: "Forward payloads in the columnar encoding: proto::columns::untransform of a container, transform → untransform round trip of OTLP bytes, payload::decode of a compressed container",
    bound: "2 × the declared size (≤ 1 MiB) + 2 × the container + 2 × the scan's estimate + 6 × input + 256 KiB",
    dict: &[
        b"\x0a\x00",
        b"\x12\x00",
        b"\x39",
        b"\x41",
        b"\x28\xb5\x2f\xfd",
    ],
    seeds,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    let raw = prost::Message::encode_to_vec(&proto::corpus::Generator::new(5).request(8));
    let mut out = vec![[&[1u8][..], &raw].concat()];
    if let Some(c) = columns::transform(&[&raw]) {
        // Mode 0: two bytes of declared size (the seed's), then the container.
        let size = u16::try_from(raw.len()).unwrap_or(u16::MAX).to_le_bytes();
        out.push([&[0u8][..], &size, &c].concat());
        if let Ok(z) = zstd::bulk::compress(&c, 1) {
            out.push([&[2u8][..], &size, &z].concat());
        }
    }
    out
}

fn declared(data: &[u8]) -> (u64, &[u8]) {
    match data {
        [a, b, rest @ ..] => (u64::from(u16::from_le_bytes([*a, *b])) * 16, rest),
        _ => (0, &[]),
    }
}

fn estimate(raw: &[u8]) -> usize {
    match bounds::check_protobuf(raw, &Schema::EXPORT_TRACE, &DecodeLimits::FEDERATION) {
        Ok(found) => 2 * found.decoded_bytes,
        Err(_) => 0,
    }
}

fn run(input: &[u8]) -> usize {
    let (m, data) = mode(input, 3);
    match m {
        0 => {
            let (size, container) = declared(data);
            if let Ok(out) = columns::untransform(container, size) {
                assert_eq!(
                    out.len() as u64,
                    size,
                    "rebuilt size differs from the declared"
                );
            }
            2 * size as usize + 6 * input.len() + BASE
        }
        1 => {
            let Some(c) = columns::transform(&[data]) else {
                return 6 * input.len() + BASE;
            };
            let back = columns::untransform(&c, data.len() as u64);
            assert_eq!(
                back.as_deref().ok(),
                Some(data),
                "the transform does not round-trip"
            );
            2 * c.len() + 6 * input.len() + BASE
        }
        _ => {
            let (size, payload) = declared(data);
            let _ = payload::decode(
                Compression::OtlpColumnsZstd as i32,
                payload,
                size,
                PAYLOAD_LIMIT,
            );
            let cap = columns::container_cap(size as usize).min(2 * PAYLOAD_LIMIT);
            let raw = zstd::bulk::decompress(payload, cap)
                .ok()
                .and_then(|c| columns::untransform(&c, size).ok())
                .unwrap_or_default();
            2 * cap + 2 * size as usize + estimate(&raw) + 6 * input.len() + BASE
        }
    }
}
