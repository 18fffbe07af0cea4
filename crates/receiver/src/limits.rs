//! Request bounds: size limits (on the wire, after decompression), the
//! in-flight request limit, and the budget of body bytes being read.

use std::{io::Read, sync::Arc};

use telemetry::budget::ByteBudget;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use proto::bounds::DecodeLimits;

use crate::ReceiveError;

/// Requests a receiver (one protocol) decodes and delivers at once. A
/// request takes its slot only once its body has been read (HTTP) or its
/// message decoded (gRPC), so a client trickling its body holds no slot.
/// Further requests wait for a slot at most [`SLOT_WAIT`], then are
/// refused as busy (429 + Retry-After, RESOURCE_EXHAUSTED + RetryInfo), so
/// an overloaded receiver says so instead of holding decoded requests
/// until the clients' own timeouts (which would resend them). Request
/// memory is bounded by `MAX_INFLIGHT_REQUESTS × (max_decompressed_bytes +
/// decode.max_decoded_bytes)` per protocol for the requests delivering
/// (plus string contents, which the body bounds); gRPC messages decoded and
/// waiting for a slot (at most 2 s) hold their estimated decoded size from
/// [`decoded_budget`] until answered, and are bounded in number by the
/// server's 1,024 calls in flight.
pub const MAX_INFLIGHT_REQUESTS: usize = 16;

/// How long a request waits for one of the [`MAX_INFLIGHT_REQUESTS`]
/// slots before it is refused as busy.
pub const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The slots of [`MAX_INFLIGHT_REQUESTS`], shared by every connection of
/// one receiver.
#[derive(Debug, Clone)]
pub struct InflightLimit(Arc<Semaphore>);

impl Default for InflightLimit {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_INFLIGHT_REQUESTS)))
    }
}

impl InflightLimit {
    /// Waits at most [`SLOT_WAIT`] for a slot (given back when the permit
    /// drops); then the request is refused as busy (retryable).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ReceiveError> {
        match tokio::time::timeout(SLOT_WAIT, Arc::clone(&self.0).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Elapsed, or closed (never: nothing closes it).
            _ => Err(ReceiveError::Busy(format!(
                "all {MAX_INFLIGHT_REQUESTS} request slots stayed busy for {} s; retry later",
                SLOT_WAIT.as_secs()
            ))),
        }
    }
}

/// The bytes of request bodies one receiver holds while reading them and
/// until their request is answered: `MAX_INFLIGHT_REQUESTS ×
/// max_request_bytes` (128 MiB by default), the bound the in-flight limit
/// gave before it moved after the read. Beyond it a body is refused with
/// 429 + Retry-After (never waited for: the budget holders may be slow).
pub fn reading_budget(limits: &Limits) -> ByteBudget {
    ByteBudget::new((MAX_INFLIGHT_REQUESTS as u64).saturating_mul(limits.max_request_bytes as u64))
}

/// The estimated decoded bytes ([`proto::bounds::Scanned::decoded_bytes`])
/// that gRPC messages decoded and not yet answered hold at once:
/// `MAX_INFLIGHT_REQUESTS × decode.max_decoded_bytes` (1 GiB by default),
/// what the delivering requests alone may hold. Beyond it a message is
/// refused as busy before it is decoded.
pub fn decoded_budget(limits: &Limits) -> ByteBudget {
    ByteBudget::new(
        (MAX_INFLIGHT_REQUESTS as u64).saturating_mul(limits.decode.max_decoded_bytes as u64),
    )
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

impl Limits {
    /// Inflates a `Content-Encoding: deflate` body: zlib (RFC 1950, what
    /// HTTP's `deflate` names), or raw deflate (RFC 1951, what some
    /// clients send) when the zlib header is absent; never more than
    /// `max_decompressed_bytes`.
    pub fn inflate_deflate(&self, body: &[u8]) -> Result<Vec<u8>, ReceiveError> {
        let cap = self.max_decompressed_bytes;
        let zlib = body.len() >= 2
            && body[0] & 0x0f == 8
            && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(cap));
        let read = if zlib {
            flate2::read::ZlibDecoder::new(body)
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
        } else {
            flate2::read::DeflateDecoder::new(body)
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
        };
        read.map_err(|e| ReceiveError::BadRequest(format!("invalid deflate body: {e}")))?;
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

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_a_slot_at_most_slot_wait_then_is_busy() {
        let limit = InflightLimit::default();
        let mut held = Vec::new();
        for _ in 0..MAX_INFLIGHT_REQUESTS {
            held.push(limit.acquire().await.expect("a free slot"));
        }
        let started = tokio::time::Instant::now();
        let refused = limit.acquire().await.expect_err("no slot frees up");
        assert!(matches!(refused, ReceiveError::Busy(_)), "{refused:?}");
        assert_eq!(
            refused.retry_after(),
            Some(crate::outcome::BUSY_RETRY_AFTER)
        );
        assert_eq!(started.elapsed(), SLOT_WAIT);
        // A slot given back within the wait is taken.
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.acquire().await.is_ok() })
        };
        tokio::time::sleep(SLOT_WAIT / 2).await;
        held.pop();
        assert!(waiter.await.expect("joins"));
    }
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn deflate_is_zlib_or_raw_and_bounded() {
        let limits = Limits::new(1 << 20, 1000);
        let zlib = |data: &[u8]| {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let raw = |data: &[u8]| {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        assert_eq!(limits.inflate_deflate(&zlib(b"[]")).unwrap(), b"[]");
        assert_eq!(limits.inflate_deflate(&raw(b"[1]")).unwrap(), b"[1]");
        assert_eq!(
            limits.inflate_deflate(&zlib(&[7; 1000])).unwrap().len(),
            1000
        );
        for bomb in [zlib(&[7; 1001]), raw(&[0; 100_000])] {
            assert!(matches!(
                limits.inflate_deflate(&bomb),
                Err(ReceiveError::TooLarge(_))
            ));
        }
        assert!(matches!(
            limits.inflate_deflate(b"\x78\x9c not deflate"),
            Err(ReceiveError::BadRequest(_))
        ));
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
