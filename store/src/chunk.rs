//! The compact binary form of a chunk (several spans of one trace), used
//! for Postgres span bodies; zstd then removes what repeats (keys, names).
//!
//! ```text
//! body    = 0x01 (format) · zstd(payload)
//! payload = resources · spans
//! resources = n · (service_name · kvs)*           distinct resources, in order
//! spans   = n · span*
//! span    = trace_id(16, or 0 bytes when equal to the previous: flag bit)
//!           · flags byte (bit0 same trace, bit1 has parent)
//!           · span_id(8) · [parent(8)] · name · kind(u8)
//!           · start (zigzag varint delta from the previous span's start)
//!           · duration(varint) · status(u8) · status_message
//!           · kvs · events · links · trace_flags(varint) · trace_state
//!           · scope_name · scope_version · cluster · resource index(varint)
//! kvs     = n · (key · tag(u8) · value)*          s: str, b: u8, i: zigzag, d: f64 LE, y: bytes
//! events  = n · (time delta from start, zigzag · name · kvs)*
//! links   = n · (trace_id(16) · span_id(8) · kvs)*
//! str     = varint length · UTF-8 bytes
//! ```
//!
//! Decoding checks every length against what is left, so a corrupt body is
//! an error, never a panic or a huge allocation.

use std::{collections::HashMap, sync::Arc};

use model::{
    AttrValue, ClusterId, Event, KeyValue, Link, Resource, Span, SpanId, SpanKind, StatusCode,
    TraceId,
};

use crate::StoreError;

const FORMAT: u8 = 1;
/// A decoded payload is at most this large.
const MAX_PAYLOAD: usize = 64 << 20;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_kvs(out: &mut Vec<u8>, kvs: &[KeyValue]) {
    put_varint(out, kvs.len() as u64);
    for kv in kvs {
        put_str(out, &kv.key);
        match &kv.value {
            AttrValue::Str(s) => {
                out.push(b's');
                put_str(out, s);
            }
            AttrValue::Bool(b) => {
                out.push(b'b');
                out.push(u8::from(*b));
            }
            AttrValue::Int(i) => {
                out.push(b'i');
                put_varint(out, zigzag(*i));
            }
            AttrValue::Double(d) => {
                out.push(b'd');
                out.extend_from_slice(&d.to_le_bytes());
            }
            AttrValue::Bytes(b) => {
                out.push(b'y');
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
    }
}

fn status_byte(s: StatusCode) -> u8 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

/// The distinct resources of `spans`, each in its encoded form
/// (`service_name · kvs`), in order of first use, and each span's index
/// into them. Spans of one service share one `Arc`, so the pointer is
/// looked up first; equal resources from separate requests are merged by
/// their encoding. Both lookups are hashed: linear in the spans and the
/// resource bytes (comparing every pair was quadratic in the resources).
fn distinct_resources(spans: &[&Span]) -> (Vec<Vec<u8>>, Vec<usize>) {
    let mut by_ptr: HashMap<*const Resource, usize> = HashMap::new();
    let mut by_bytes: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let mut index = Vec::with_capacity(spans.len());
    for s in spans {
        let ptr = Arc::as_ptr(&s.resource);
        let i = match by_ptr.get(&ptr) {
            Some(&i) => i,
            None => {
                let mut bytes = Vec::new();
                put_str(&mut bytes, &s.resource.service_name);
                put_kvs(&mut bytes, &s.resource.attributes);
                let i = match by_bytes.get(&bytes) {
                    Some(&i) => i,
                    None => {
                        encoded.push(bytes.clone());
                        by_bytes.insert(bytes, encoded.len() - 1);
                        encoded.len() - 1
                    }
                };
                by_ptr.insert(ptr, i);
                i
            }
        };
        index.push(i);
    }
    (encoded, index)
}

/// Encodes `spans` (uncompressed payload).
pub(crate) fn encode_payload(spans: &[&Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.len() * 200);
    let (resources, index) = distinct_resources(spans);
    put_varint(&mut out, resources.len() as u64);
    for r in &resources {
        out.extend_from_slice(r);
    }
    put_varint(&mut out, spans.len() as u64);
    let mut prev_trace: Option<TraceId> = None;
    let mut prev_start = 0i64;
    for (s, res) in spans.iter().zip(index) {
        let same = prev_trace == Some(s.trace_id);
        let flags = u8::from(same) | (u8::from(s.parent_span_id.is_some()) << 1);
        out.push(flags);
        if !same {
            out.extend_from_slice(s.trace_id.as_bytes());
        }
        prev_trace = Some(s.trace_id);
        out.extend_from_slice(s.span_id.as_bytes());
        if let Some(p) = s.parent_span_id {
            out.extend_from_slice(p.as_bytes());
        }
        put_str(&mut out, &s.name);
        out.push(u8::try_from(s.kind.as_i32()).unwrap_or(0));
        let start = s.start_unix_nano as i64;
        put_varint(&mut out, zigzag(start.wrapping_sub(prev_start)));
        prev_start = start;
        put_varint(&mut out, s.end_unix_nano.wrapping_sub(s.start_unix_nano));
        out.push(status_byte(s.status_code));
        put_str(&mut out, &s.status_message);
        put_kvs(&mut out, &s.attributes);
        put_varint(&mut out, s.events.len() as u64);
        for e in &s.events {
            put_varint(
                &mut out,
                zigzag((e.time_unix_nano as i64).wrapping_sub(start)),
            );
            put_str(&mut out, &e.name);
            put_kvs(&mut out, &e.attributes);
        }
        put_varint(&mut out, s.links.len() as u64);
        for l in &s.links {
            out.extend_from_slice(l.trace_id.as_bytes());
            out.extend_from_slice(l.span_id.as_bytes());
            put_kvs(&mut out, &l.attributes);
        }
        put_varint(&mut out, u64::from(s.flags));
        put_str(&mut out, &s.trace_state);
        put_str(&mut out, &s.scope_name);
        put_str(&mut out, &s.scope_version);
        put_str(&mut out, s.cluster.as_str());
        put_varint(&mut out, res as u64);
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("chunk body: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if n > self.buf.len() {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    /// A count of items each at least `min_size` bytes: bounded by what is
    /// left, so a corrupt count cannot make us allocate.
    fn count(&mut self, min_size: usize) -> Result<usize, StoreError> {
        let n = usize::try_from(self.varint()?).map_err(|_| corrupt("count"))?;
        if n.saturating_mul(min_size.max(1)) > self.buf.len() {
            return Err(corrupt("count beyond the body"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<String, StoreError> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn kvs(&mut self) -> Result<Vec<KeyValue>, StoreError> {
        let n = self.count(3)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.str()?;
            let value = match self.byte()? {
                b's' => AttrValue::Str(self.str()?),
                b'b' => AttrValue::Bool(self.byte()? != 0),
                b'i' => AttrValue::Int(unzigzag(self.varint()?)),
                b'd' => AttrValue::Double(f64::from_le_bytes(self.array::<8>()?)),
                b'y' => {
                    let n = self.count(1)?;
                    AttrValue::Bytes(self.take(n)?.to_vec())
                }
                _ => return Err(corrupt("unknown value tag")),
            };
            out.push(KeyValue { key, value });
        }
        Ok(out)
    }
}

pub(crate) fn decode_payload(buf: &[u8]) -> Result<Vec<Span>, StoreError> {
    let mut r = Reader { buf };
    let n = r.count(2)?;
    let mut resources = Vec::with_capacity(n);
    for _ in 0..n {
        let service_name = r.str()?;
        let attributes = r.kvs()?;
        resources.push(Arc::new(Resource {
            service_name,
            attributes,
        }));
    }
    let n = r.count(30)?;
    let mut spans = Vec::with_capacity(n);
    let mut trace: Option<TraceId> = None;
    let mut prev_start = 0i64;
    for _ in 0..n {
        let flags = r.byte()?;
        let trace_id = if flags & 1 == 1 {
            trace.ok_or_else(|| corrupt("first span refers to a previous trace id"))?
        } else {
            TraceId::from_array(r.array::<16>()?)
        };
        trace = Some(trace_id);
        let span_id = SpanId::from_array(r.array::<8>()?);
        let parent_span_id = if flags & 2 == 2 {
            Some(SpanId::from_array(r.array::<8>()?))
        } else {
            None
        };
        let name = r.str()?;
        let kind = SpanKind::from_otlp(i32::from(r.byte()?));
        let start = prev_start.wrapping_add(unzigzag(r.varint()?));
        prev_start = start;
        let start_unix_nano = start as u64;
        let end_unix_nano = start_unix_nano.wrapping_add(r.varint()?);
        let status_code = match r.byte()? {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return Err(corrupt("status")),
        };
        let status_message = r.str()?;
        let attributes = r.kvs()?;
        let ne = r.count(3)?;
        let mut events = Vec::with_capacity(ne);
        for _ in 0..ne {
            let time_unix_nano = start.wrapping_add(unzigzag(r.varint()?)) as u64;
            events.push(Event {
                time_unix_nano,
                name: r.str()?,
                attributes: r.kvs()?,
            });
        }
        let nl = r.count(25)?;
        let mut links = Vec::with_capacity(nl);
        for _ in 0..nl {
            links.push(Link {
                trace_id: TraceId::from_array(r.array::<16>()?),
                span_id: SpanId::from_array(r.array::<8>()?),
                attributes: r.kvs()?,
            });
        }
        let trace_flags = u32::try_from(r.varint()?).map_err(|_| corrupt("flags"))?;
        let trace_state = r.str()?;
        let scope_name = r.str()?;
        let scope_version = r.str()?;
        let cluster = ClusterId::new(&r.str()?).map_err(|e| corrupt(&e.to_string()))?;
        let res = usize::try_from(r.varint()?).map_err(|_| corrupt("resource index"))?;
        let resource = resources
            .get(res)
            .cloned()
            .ok_or_else(|| corrupt("resource index out of range"))?;
        spans.push(Span {
            trace_id,
            span_id,
            parent_span_id,
            name,
            kind,
            start_unix_nano,
            end_unix_nano,
            status_code,
            status_message,
            attributes,
            events,
            links,
            flags: trace_flags,
            trace_state,
            scope_name,
            scope_version,
            cluster,
            resource,
        });
    }
    if !r.buf.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(spans)
}

/// Compresses payloads, reusing one zstd context.
pub(crate) struct ChunkEncoder {
    zstd: zstd::bulk::Compressor<'static>,
}

impl ChunkEncoder {
    pub(crate) fn new(level: i32) -> Result<Self, StoreError> {
        Ok(Self {
            zstd: zstd::bulk::Compressor::new(level)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        })
    }

    pub(crate) fn encode(&mut self, spans: &[&Span]) -> Result<Vec<u8>, StoreError> {
        let payload = encode_payload(spans);
        let mut out = Vec::with_capacity(payload.len() / 3 + 16);
        out.push(FORMAT);
        out.extend_from_slice(
            &self
                .zstd
                .compress(&payload)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        );
        Ok(out)
    }
}

/// Decodes chunk bodies, reusing one zstd context.
pub(crate) struct ChunkDecoder {
    zstd: zstd::bulk::Decompressor<'static>,
}

impl ChunkDecoder {
    pub(crate) fn new() -> Result<Self, StoreError> {
        Ok(Self {
            zstd: zstd::bulk::Decompressor::new()
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        })
    }

    pub(crate) fn decode(&mut self, body: &[u8]) -> Result<Vec<Span>, StoreError> {
        let (format, frame) = body.split_first().ok_or_else(|| corrupt("empty"))?;
        if *format != FORMAT {
            return Err(corrupt(&format!("unknown format {format}")));
        }
        // A declared size gets one exact allocation only when the frame
        // could plausibly inflate to it; otherwise the payload is streamed
        // and grows with what it inflates to, never past 64 MiB. (Trusting
        // any declared size up to 64 MiB, and taking 64 MiB when none was
        // declared, let a 10-byte body allocate 64 MiB: found by fuzzing.)
        let payload = match crate::codec::plan(frame)? {
            Some(size) => self
                .zstd
                .decompress(frame, size)
                .map_err(|e| corrupt(&e.to_string()))?,
            None => crate::codec::stream(frame)?,
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(corrupt("payload too large"));
        }
        decode_payload(&payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::SpanBuilder as B;

    fn spans() -> Vec<Span> {
        let mut full = B::new(1, 1, "checkout")
            .name("PlaceOrder")
            .kind(SpanKind::Client)
            .parent(9)
            .at(5, 20)
            .error("payment declined")
            .attr("s", AttrValue::Str("text".into()))
            .attr("b", AttrValue::Bool(true))
            .attr("i", AttrValue::Int(i64::MIN))
            .attr("d", AttrValue::Double(-2.5))
            .attr("y", AttrValue::Bytes(vec![0, 1, 255]))
            .event("retry", vec![KeyValue::new("attempt", AttrValue::Int(2))])
            .link(2, 7)
            .cluster("eu-west")
            .build();
        full.flags = 0x301;
        full.trace_state = "ot=th:8".into();
        full.scope_name = "io.opentelemetry.http".into();
        full.scope_version = "1.2.3".into();
        let earlier = B::new(1, 2, "frontend").at(0, 1).build();
        let other_trace = B::new(2, 3, "checkout").at(1, 1).cluster("eu-west").build();
        let mut at_zero = B::new(1, 4, "frontend").build();
        at_zero.start_unix_nano = 0;
        at_zero.end_unix_nano = u64::MAX;
        vec![full, earlier, other_trace, at_zero]
    }

    #[test]
    fn round_trip_is_exact() {
        let spans = spans();
        let refs: Vec<&Span> = spans.iter().collect();
        let mut enc = ChunkEncoder::new(3).unwrap();
        let body = enc.encode(&refs).unwrap();
        let back = ChunkDecoder::new().unwrap().decode(&body).unwrap();
        assert_eq!(back, spans);
        // Equal resources are stored once.
        assert!(Arc::ptr_eq(&back[1].resource, &back[3].resource));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        let spans = spans();
        let refs: Vec<&Span> = spans.iter().collect();
        let payload = encode_payload(&refs);
        for cut in 0..payload.len() {
            assert!(decode_payload(&payload[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..payload.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = payload.clone();
                bad[i] ^= bit;
                let _ = decode_payload(&bad); // must return, never panic
            }
        }
        let mut dec = ChunkDecoder::new().unwrap();
        assert!(dec.decode(&[]).is_err());
        assert!(dec.decode(&[9, 1, 2]).is_err());
        assert!(dec.decode(&[FORMAT, 1, 2, 3]).is_err());
    }

    #[test]
    fn resources_are_merged_by_content_across_arcs() {
        // 5,000 distinct resources, each sent twice in separate Arcs (two
        // requests): the body holds each once, and every span decodes to
        // its own resource.
        let mut spans = Vec::new();
        for round in 0..2u64 {
            for i in 0..5_000u64 {
                let mut s = B::new(1, round * 5_000 + i + 1, "svc").build();
                s.resource = Arc::new(Resource {
                    service_name: format!("svc-{i}"),
                    attributes: vec![KeyValue::new("pod", AttrValue::Int(i as i64))],
                });
                spans.push(s);
            }
        }
        let refs: Vec<&Span> = spans.iter().collect();
        let (distinct, index) = distinct_resources(&refs);
        assert_eq!(distinct.len(), 5_000);
        assert_eq!(index[7], index[5_007]);
        assert_ne!(index[7], index[8]);
        let back = decode_payload(&encode_payload(&refs)).unwrap();
        assert_eq!(back, spans);
        assert!(Arc::ptr_eq(&back[7].resource, &back[5_007].resource));
    }

    #[test]
    fn varints_and_zigzag() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            let mut r = Reader { buf: &out };
            assert_eq!(unzigzag(r.varint().unwrap()), v);
            assert!(r.buf.is_empty());
        }
    }
}
