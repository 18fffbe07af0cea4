//! Request bounds: size limits (on the wire, after decompression) and the
//! in-flight request limit.

use std::io::Read;

use proto::bounds::DecodeLimits;

use crate::ReceiveError;

/// Requests a receiver (one protocol) processes at once. Further requests
/// wait for a slot (full policy: block; the client's request waits, then its
/// own timeout applies), so request memory is bounded by
/// `MAX_INFLIGHT_REQUESTS × (max_decompressed_bytes + decode.max_decoded_bytes)`
/// per protocol (plus string contents, which the body bounds).
pub const MAX_INFLIGHT_REQUESTS: usize = 16;

/// The layer that enforces [`MAX_INFLIGHT_REQUESTS`] across every
/// connection of one receiver.
pub fn inflight_limit() -> tower::limit::GlobalConcurrencyLimitLayer {
    tower::limit::GlobalConcurrencyLimitLayer::new(MAX_INFLIGHT_REQUESTS)
}

/// Request size limits. Defaults follow the OTel Collector's order of
/// magnitude: 8 MiB on the wire, 32 MiB after decompression; and what the
/// body may decode into ([`DecodeLimits::RECEIVER`]: 100,000 spans, 1,024
/// attributes per item, 1,024 events and links per span, 64 MiB of decoded
/// structures, or twice the decompressed limit when that is larger),
/// checked before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body as sent (possibly compressed), bytes.
    pub max_request_bytes: usize,
    /// Largest accepted body after decompression, bytes.
    pub max_decompressed_bytes: usize,
    /// What a body may decode into (refused beyond: 413 /
    /// RESOURCE_EXHAUSTED, before anything is decoded).
    pub decode: DecodeLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(8 << 20, 32 << 20)
    }
}

impl Limits {
    /// Byte limits, with the decode limits that go with them.
    pub fn new(max_request_bytes: usize, max_decompressed_bytes: usize) -> Self {
        let receiver = DecodeLimits::RECEIVER;
        Self {
            max_request_bytes,
            max_decompressed_bytes,
            decode: DecodeLimits {
                max_decoded_bytes: receiver
                    .max_decoded_bytes
                    .max(max_decompressed_bytes.saturating_mul(2)),
                ..receiver
            },
        }
    }

    /// Inflates a gzip body, refusing to produce more than
    /// `max_decompressed_bytes` (a gzip bomb fails fast, memory stays bounded).
    pub fn gunzip(&self, body: &[u8]) -> Result<Vec<u8>, ReceiveError> {
        let cap = self.max_decompressed_bytes;
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(cap));
        let mut reader = flate2::read::MultiGzDecoder::new(body).take(cap as u64 + 1);
        reader
            .read_to_end(&mut out)
            .map_err(|e| ReceiveError::BadRequest(format!("invalid gzip body: {e}")))?;
        if out.len() > cap {
            return Err(ReceiveError::TooLarge(format!(
                "decompressed body exceeds {cap} bytes"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_bounds_output() {
        let limits = Limits::new(1 << 20, 1000);
        assert_eq!(limits.gunzip(&gzip(&[7; 1000])).unwrap().len(), 1000);
        assert!(matches!(
            limits.gunzip(&gzip(&[7; 1001])),
            Err(ReceiveError::TooLarge(_))
        ));
        assert!(matches!(
            limits.gunzip(b"not gzip"),
            Err(ReceiveError::BadRequest(_))
        ));
    }
}
