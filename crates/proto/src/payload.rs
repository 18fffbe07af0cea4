//! Federation payloads: concatenated OTLP requests, zstd-compressed.
//!
//! Protobuf concatenation of two encodings of the same message merges them
//! (repeated fields append), so the agent can batch buffered requests
//! without decoding them, and the gateway decodes the batch once, after
//! checking it against [`DecodeLimits::FEDERATION`] (no span cap: a batch
//! merges up to 512 requests, each checked when it was received).

use crate::bounds::{self, BoundsError, Schema};
use crate::codec::Bounded;
use crate::federation::Compression;
use crate::metrics::WindowBatch;
use crate::otlp::ExportTraceServiceRequest;

impl Bounded for ExportTraceServiceRequest {
    const SCHEMA: Schema = Schema::EXPORT_TRACE;
}

impl Bounded for WindowBatch {
    const SCHEMA: Schema = Schema::WINDOW_BATCH;
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload declares {declared} bytes uncompressed, above the limit of {limit}")]
    TooLarge { declared: u64, limit: usize },
    #[error("payload does not decompress within its declared size: {0}")]
    Decompress(std::io::Error),
    #[error("unknown compression {0}")]
    Compression(i32),
    #[error("payload: {0}")]
    Columns(#[from] crate::columns::ColumnsError),
    #[error("payload is not a valid OTLP request: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("payload refused before decoding: {0}")]
    Bounds(#[from] BoundsError),
}

/// Concatenates encoded requests and compresses them with zstd.
/// Returns (payload, uncompressed size).
pub fn encode(records: &[impl AsRef<[u8]>], level: i32) -> std::io::Result<(Vec<u8>, u64)> {
    let total: usize = records.iter().map(|r| r.as_ref().len()).sum();
    let mut raw = Vec::with_capacity(total);
    for r in records {
        raw.extend_from_slice(r.as_ref());
    }
    let compressed = compress(&raw, level)?;
    Ok((compressed, total as u64))
}

thread_local! {
    /// One zstd context per thread and level, reused: creating one per
    /// batch (`zstd::bulk::compress`) showed in the agent's profile.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd at `level`, through this thread's reused context.
pub(crate) fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let Ok(mut slot) = c.try_borrow_mut() else {
            // Re-entered on this thread: no context to share.
            return zstd::bulk::compress(data, level);
        };
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, z)) => z.compress(data),
            None => zstd::bulk::compress(data, level),
        }
    })
}

/// [`encode`] in the encoding `compression` names: the columnar transform
/// when asked and the records are canonical OTLP, else plain zstd.
/// Returns (payload, uncompressed size, the encoding used).
pub fn encode_as(
    compression: Compression,
    records: &[impl AsRef<[u8]>],
    level: i32,
) -> std::io::Result<(Vec<u8>, u64, Compression)> {
    if compression == Compression::OtlpColumnsZstd
        && let Some(done) = crate::columns::encode(records, level)
    {
        let (payload, size) = done?;
        return Ok((payload, size, compression));
    }
    let (payload, size) = encode(records, level)?;
    Ok((payload, size, Compression::Zstd))
}

/// Decompresses (never beyond `limit` bytes) and decodes a payload.
pub fn decode(
    compression: i32,
    payload: &[u8],
    uncompressed_size: u64,
    limit: usize,
) -> Result<ExportTraceServiceRequest, PayloadError> {
    decode_as(compression, payload, uncompressed_size, limit)
}

/// [`decode`] into any [`Bounded`] message (RED `WindowBatch`es use it).
pub fn decode_as<M: Bounded>(
    compression: i32,
    payload: &[u8],
    uncompressed_size: u64,
    limit: usize,
) -> Result<M, PayloadError> {
    match Compression::try_from(compression) {
        Ok(Compression::None) => {
            if payload.len() > limit {
                return Err(PayloadError::TooLarge {
                    declared: payload.len() as u64,
                    limit,
                });
            }
            checked(payload)
        }
        Ok(Compression::Zstd) => {
            if uncompressed_size > limit as u64 {
                return Err(PayloadError::TooLarge {
                    declared: uncompressed_size,
                    limit,
                });
            }
            // The capacity bounds the output: a payload that inflates beyond
            // its declared size fails instead of allocating more.
            let raw = zstd::bulk::decompress(payload, uncompressed_size as usize)
                .map_err(PayloadError::Decompress)?;
            checked(&raw)
        }
        Ok(Compression::OtlpColumnsZstd) => {
            if uncompressed_size > limit as u64 {
                return Err(PayloadError::TooLarge {
                    declared: uncompressed_size,
                    limit,
                });
            }
            // Both the container and the rebuilt bytes are bounded by the
            // declared size, itself capped by `limit`.
            let cap = crate::columns::container_cap(uncompressed_size as usize);
            let container =
                zstd::bulk::decompress(payload, cap).map_err(PayloadError::Decompress)?;
            let raw = crate::columns::untransform(&container, uncompressed_size)?;
            checked(&raw)
        }
        Err(_) => Err(PayloadError::Compression(compression)),
    }
}

fn checked<M: Bounded>(raw: &[u8]) -> Result<M, PayloadError> {
    bounds::check_protobuf(raw, &M::SCHEMA, &M::LIMITS)?;
    Ok(M::decode(raw)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn req(name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: name.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn concatenation_merges_requests() {
        let a = req("a").encode_to_vec();
        let b = req("b").encode_to_vec();
        let (payload, size) = encode(&[a, b], 1).unwrap();
        let merged = decode(Compression::Zstd as i32, &payload, size, 1 << 20).unwrap();
        assert_eq!(merged.resource_spans.len(), 2);
        assert_eq!(merged.resource_spans[1].scope_spans[0].spans[0].name, "b");
    }

    #[test]
    fn columns_round_trip_and_fall_back_to_zstd() {
        let a = req("a").encode_to_vec();
        let b = req("b").encode_to_vec();
        let (payload, size, used) = encode_as(Compression::OtlpColumnsZstd, &[&a, &b], 1).unwrap();
        assert_eq!(used, Compression::OtlpColumnsZstd);
        let merged = decode(used as i32, &payload, size, 1 << 20).unwrap();
        assert_eq!(merged.resource_spans[1].scope_spans[0].spans[0].name, "b");
        // Declared above the limit, or lying: refused before or while
        // rebuilding.
        assert!(matches!(
            decode(used as i32, &payload, size, 8),
            Err(PayloadError::TooLarge { .. })
        ));
        assert!(decode(used as i32, &payload, size - 1, 1 << 20).is_err());
        // Not canonical OTLP: plain zstd.
        let (_, _, used) = encode_as(Compression::OtlpColumnsZstd, &[[0x0b]], 1).unwrap();
        assert_eq!(used, Compression::Zstd);
    }

    #[test]
    fn refuses_to_inflate_beyond_limits() {
        let big = vec![0u8; 1 << 20];
        let payload = zstd::bulk::compress(&big, 1).unwrap();
        // Declared size above the limit.
        assert!(matches!(
            decode(1, &payload, 1 << 20, 1024),
            Err(PayloadError::TooLarge { .. })
        ));
        // Declared size lies (smaller than the real output).
        assert!(matches!(
            decode(1, &payload, 1024, 1 << 21),
            Err(PayloadError::Decompress(_))
        ));
        assert!(matches!(
            decode(7, &payload, 1024, 1 << 21),
            Err(PayloadError::Compression(7))
        ));
    }

    #[test]
    fn refuses_payloads_that_decode_beyond_their_size() {
        // 8 MiB of empty spans: within the byte limit, ~1 GiB of structs.
        let spans = crate::bounds::tests::empty_spans(4 << 20);
        let (payload, size) = encode(&[&spans], 1).unwrap();
        assert!(matches!(
            decode(Compression::Zstd as i32, &payload, size, 32 << 20),
            Err(PayloadError::Bounds(BoundsError::Decoded { .. }))
        ));
        assert!(matches!(
            decode(Compression::None as i32, &spans, 0, 32 << 20),
            Err(PayloadError::Bounds(BoundsError::Decoded { .. }))
        ));
    }
}
