//! `COMPRESSION_OTLP_COLUMNS_ZSTD`: a lossless columnar transform of
//! concatenated OTLP `ExportTraceServiceRequest` bytes, then zstd.
//!
//! Plain zstd over OTLP sees random 8- and 16-byte ids interleaved with a
//! structure that repeats for every span, so each span costs it several
//! match sequences besides the ids. This transform walks the protobuf with
//! a table of the OTLP trace message types and moves every field's bytes
//! into one of eight streams: tags, lengths, ids (trace, span, parent and
//! link ids), start times (delta to the previous span's start, zigzag
//! varint), end and event times (offset to the span's start), other
//! strings and bytes, other varints, other fixed-width values. The streams
//! are concatenated and compressed as one zstd frame: the structure
//! streams compress to almost nothing and the ids stay as they are.
//!
//! The transform is a bijection on canonical protobuf (minimal varints,
//! no groups): the encoder refuses anything else and the caller then sends
//! plain zstd ([`encode`] returns `None`). The decoder rebuilds the exact
//! bytes, writing no more than the declared uncompressed size (capped by
//! the caller's limit), and refuses leftovers, overruns and nesting deeper
//! than [`MAX_DEPTH`]. Its output then goes through the same bounds check
//! and prost decode as a plain zstd payload (`payload::decode`).

/// Nesting allowed below the request (OTLP needs 5 plus `AnyValue`
/// arrays and lists; deeper payloads fall back to plain zstd).
pub const MAX_DEPTH: usize = 32;

const TAG: usize = 0;
const LEN: usize = 1;
const ID: usize = 2;
const START: usize = 3;
const OFFSET: usize = 4;
const STR: usize = 5;
const VAR: usize = 6;
const FIX: usize = 7;
const STREAMS: usize = 8;

// Message types of the table.
const REQUEST: u8 = 0;
const RESOURCE_SPANS: u8 = 1;
const RESOURCE: u8 = 2;
const SCOPE_SPANS: u8 = 3;
const SCOPE: u8 = 4;
const SPAN: u8 = 5;
const EVENT: u8 = 6;
const LINK: u8 = 7;
const STATUS: u8 = 8;
const KEY_VALUE: u8 = 9;
const ANY_VALUE: u8 = 10;
const ARRAY: u8 = 11;
const KV_LIST: u8 = 12;

/// The sub-message type of a length-delimited field, if it is one
/// (opentelemetry-proto `trace.proto`, `common.proto`, `resource.proto`).
fn child(msg: u8, field: u64) -> Option<u8> {
    Some(match (msg, field) {
        (REQUEST, 1) => RESOURCE_SPANS,
        (RESOURCE_SPANS, 1) => RESOURCE,
        (RESOURCE_SPANS, 2) => SCOPE_SPANS,
        (RESOURCE, 1) | (SCOPE, 3) | (SPAN, 9) | (EVENT, 3) | (LINK, 4) | (KV_LIST, 1) => KEY_VALUE,
        (SCOPE_SPANS, 1) => SCOPE,
        (SCOPE_SPANS, 2) => SPAN,
        (SPAN, 11) => EVENT,
        (SPAN, 13) => LINK,
        (SPAN, 15) => STATUS,
        (KEY_VALUE, 2) | (ARRAY, 1) => ANY_VALUE,
        (ANY_VALUE, 5) => ARRAY,
        (ANY_VALUE, 6) => KV_LIST,
        _ => return None,
    })
}

/// The stream of a length-delimited field that is not a sub-message.
fn bytes_stream(msg: u8, field: u64) -> usize {
    match (msg, field) {
        (SPAN, 1 | 2 | 4) | (LINK, 1 | 2) => ID,
        _ => STR,
    }
}

/// The stream of a fixed64 field.
fn fixed64_stream(msg: u8, field: u64) -> usize {
    match (msg, field) {
        (SPAN, 7) => START,
        (SPAN, 8) | (EVENT, 1) => OFFSET,
        _ => FIX,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ColumnsError {
    #[error("columnar payload is malformed: {0}")]
    Malformed(&'static str),
    #[error("columnar payload rebuilds more than its declared {0} bytes")]
    Overrun(u64),
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A varint at the start of `buf`: (value, length). `None` when it is
/// truncated, longer than 10 bytes or not minimal.
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // Minimal: no trailing zero group, and the 10th byte holds 1 bit.
            if (i > 0 && b == 0) || (i == 9 && b > 1) {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

struct Encoder {
    s: [Vec<u8>; STREAMS],
    prev_start: u64,
    span_start: u64,
}

impl Encoder {
    /// Moves one message's fields into the streams; `None` when `buf` is
    /// not canonical protobuf of type `msg`.
    fn walk(&mut self, buf: &[u8], msg: u8, depth: usize) -> Option<()> {
        let mut i = 0;
        while i < buf.len() {
            let (tag, n) = varint(&buf[i..])?;
            self.s[TAG].extend_from_slice(&buf[i..i + n]);
            i += n;
            let field = tag >> 3;
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return None;
            }
            match tag & 7 {
                0 => {
                    let (_, n) = varint(&buf[i..])?;
                    self.s[VAR].extend_from_slice(&buf[i..i + n]);
                    i += n;
                }
                1 => {
                    let raw: [u8; 8] = buf.get(i..i + 8)?.try_into().ok()?;
                    i += 8;
                    let v = u64::from_le_bytes(raw);
                    match fixed64_stream(msg, field) {
                        START => {
                            put_varint(
                                &mut self.s[START],
                                zigzag(v.wrapping_sub(self.prev_start) as i64),
                            );
                            self.prev_start = v;
                            self.span_start = v;
                        }
                        OFFSET => put_varint(
                            &mut self.s[OFFSET],
                            zigzag(v.wrapping_sub(self.span_start) as i64),
                        ),
                        _ => self.s[FIX].extend_from_slice(&raw),
                    }
                }
                2 => {
                    let (len, n) = varint(&buf[i..])?;
                    self.s[LEN].extend_from_slice(&buf[i..i + n]);
                    i += n;
                    let len = usize::try_from(len).ok()?;
                    let body = buf.get(i..i.checked_add(len)?)?;
                    i += len;
                    match child(msg, field) {
                        Some(sub) if depth < MAX_DEPTH => self.walk(body, sub, depth + 1)?,
                        Some(_) => return None,
                        None => self.s[bytes_stream(msg, field)].extend_from_slice(body),
                    }
                }
                5 => {
                    self.s[FIX].extend_from_slice(buf.get(i..i + 4)?);
                    i += 4;
                }
                _ => return None,
            }
        }
        Some(())
    }
}

/// The columnar container of `records` (concatenated OTLP requests),
/// before compression. `None` when a record is not canonical OTLP.
pub fn transform(records: &[impl AsRef<[u8]>]) -> Option<Vec<u8>> {
    let total: usize = records.iter().map(|r| r.as_ref().len()).sum();
    let mut enc = Encoder {
        s: Default::default(),
        prev_start: 0,
        span_start: 0,
    };
    for r in records {
        enc.walk(r.as_ref(), REQUEST, 0)?;
    }
    let mut out = Vec::with_capacity(total + total / 8 + 64);
    for s in &enc.s {
        put_varint(&mut out, s.len() as u64);
    }
    for s in &enc.s {
        out.extend_from_slice(s);
    }
    Some(out)
}

/// The container's largest size for a payload of `declared` bytes: the
/// transform only grows a fixed64 time (9 bytes with its tag) to at most
/// 11, plus the header.
pub fn container_cap(declared: usize) -> usize {
    declared
        .saturating_add(declared / 4)
        .saturating_add(STREAMS * 10)
}

/// Transforms and compresses `records`: (payload, uncompressed OTLP
/// size), or `None` when a record is not canonical OTLP (send plain zstd).
pub fn encode(records: &[impl AsRef<[u8]>], level: i32) -> Option<std::io::Result<(Vec<u8>, u64)>> {
    let total: usize = records.iter().map(|r| r.as_ref().len()).sum();
    let container = transform(records)?;
    Some(crate::payload::compress(&container, level).map(|c| (c, total as u64)))
}

struct Decoder<'a> {
    s: [&'a [u8]; STREAMS],
    out: Vec<u8>,
    prev_start: u64,
    span_start: u64,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, stream: usize, n: usize) -> Result<&'a [u8], ColumnsError> {
        let s = self.s[stream];
        if s.len() < n {
            return Err(ColumnsError::Malformed("a stream ends early"));
        }
        let (head, rest) = s.split_at(n);
        self.s[stream] = rest;
        Ok(head)
    }

    fn read_varint(&mut self, stream: usize) -> Result<(u64, &'a [u8]), ColumnsError> {
        let s = self.s[stream];
        let (v, n) = varint(s).ok_or(ColumnsError::Malformed("bad varint"))?;
        Ok((v, self.take(stream, n)?))
    }

    fn push(&mut self, bytes: &[u8], end: usize) -> Result<(), ColumnsError> {
        if self.out.len() + bytes.len() > end {
            return Err(ColumnsError::Malformed("a field overruns its message"));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Rebuilds `len` bytes of a message of type `msg`.
    fn message(&mut self, msg: u8, len: usize, depth: usize) -> Result<(), ColumnsError> {
        let end = self.out.len() + len;
        while self.out.len() < end {
            let (tag, raw) = self.read_varint(TAG)?;
            self.push(raw, end)?;
            let field = tag >> 3;
            match tag & 7 {
                0 => {
                    let (_, raw) = self.read_varint(VAR)?;
                    self.push(raw, end)?;
                }
                1 => {
                    let v = match fixed64_stream(msg, field) {
                        START => {
                            let (d, _) = self.read_varint(START)?;
                            let v = self.prev_start.wrapping_add(unzigzag(d) as u64);
                            self.prev_start = v;
                            self.span_start = v;
                            v
                        }
                        OFFSET => {
                            let (d, _) = self.read_varint(OFFSET)?;
                            self.span_start.wrapping_add(unzigzag(d) as u64)
                        }
                        _ => {
                            let raw: [u8; 8] = self
                                .take(FIX, 8)?
                                .try_into()
                                .map_err(|_| ColumnsError::Malformed("fixed64"))?;
                            u64::from_le_bytes(raw)
                        }
                    };
                    self.push(&v.to_le_bytes(), end)?;
                }
                2 => {
                    let (n, raw) = self.read_varint(LEN)?;
                    self.push(raw, end)?;
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|n| self.out.len() + n <= end)
                        .ok_or(ColumnsError::Malformed("a length overruns its message"))?;
                    match child(msg, field) {
                        Some(sub) if depth < MAX_DEPTH => self.message(sub, n, depth + 1)?,
                        Some(_) => return Err(ColumnsError::Malformed("nested too deep")),
                        None => {
                            let body = self.take(bytes_stream(msg, field), n)?;
                            self.push(body, end)?;
                        }
                    }
                }
                5 => {
                    let raw = self.take(FIX, 4)?;
                    self.push(raw, end)?;
                }
                _ => return Err(ColumnsError::Malformed("unsupported wire type")),
            }
        }
        Ok(())
    }
}

/// Rebuilds the OTLP bytes from a decompressed container: exactly
/// `declared` bytes (the caller caps `declared`), every stream consumed.
pub fn untransform(container: &[u8], declared: u64) -> Result<Vec<u8>, ColumnsError> {
    let declared_len = usize::try_from(declared).map_err(|_| ColumnsError::Overrun(declared))?;
    let mut rest = container;
    let mut lens = [0usize; STREAMS];
    for l in &mut lens {
        let (v, n) = varint(rest).ok_or(ColumnsError::Malformed("bad header"))?;
        *l = usize::try_from(v).map_err(|_| ColumnsError::Malformed("bad header"))?;
        rest = &rest[n..];
    }
    let mut s: [&[u8]; STREAMS] = [&[]; STREAMS];
    for (slot, &l) in s.iter_mut().zip(&lens) {
        if rest.len() < l {
            return Err(ColumnsError::Malformed(
                "a stream is longer than the container",
            ));
        }
        let (head, tail) = rest.split_at(l);
        *slot = head;
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(ColumnsError::Malformed("bytes after the streams"));
    }
    let mut dec = Decoder {
        s,
        out: Vec::with_capacity(declared_len.min(container.len().saturating_mul(2))),
        prev_start: 0,
        span_start: 0,
    };
    dec.message(REQUEST, declared_len, 0)?;
    if dec.s.iter().any(|s| !s.is_empty()) {
        return Err(ColumnsError::Malformed(
            "streams hold more than the message",
        ));
    }
    Ok(dec.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn corpus(n: usize) -> Vec<Vec<u8>> {
        let mut g = crate::corpus::Generator::new(42);
        (0..n).map(|_| g.request(512).encode_to_vec()).collect()
    }

    #[test]
    fn round_trips_the_corpus_exactly() {
        let records = corpus(4);
        let raw: Vec<u8> = records.concat();
        let c = transform(&records).unwrap();
        assert!(c.len() <= container_cap(raw.len()));
        assert_eq!(untransform(&c, raw.len() as u64).unwrap(), raw);
        let mut prod = crate::corpus_prod::ProdGenerator::new(9);
        let records: Vec<Vec<u8>> = (0..2).map(|_| prod.request(512).encode_to_vec()).collect();
        let raw: Vec<u8> = records.concat();
        let c = transform(&records).unwrap();
        assert_eq!(untransform(&c, raw.len() as u64).unwrap(), raw);
    }

    #[test]
    fn is_smaller_than_plain_zstd_on_the_corpus() {
        let records = corpus(2);
        let raw = records.concat();
        let plain = zstd::bulk::compress(&raw, 1).unwrap().len();
        let (cols, size) = encode(&records, 1).unwrap().unwrap();
        assert_eq!(size, raw.len() as u64);
        assert!(cols.len() * 10 < plain * 8, "{} vs {plain}", cols.len());
    }

    #[test]
    fn refuses_non_canonical_input() {
        // A tag written with a redundant continuation byte.
        assert!(transform(&[[0x8a, 0x00, 0x00]]).is_none());
        // A group (wire type 3) and a truncated field.
        assert!(transform(&[[0x0b]]).is_none());
        assert!(transform(&[[0x0a, 0x05, 0x00]]).is_none());
        // Nesting past MAX_DEPTH: AnyValue arrays inside each other.
        let mut v = crate::otlp::AnyValue::default();
        for _ in 0..40 {
            v = crate::otlp::AnyValue {
                value: Some(crate::otlp::any_value::Value::ArrayValue(
                    crate::otlp::ArrayValue { values: vec![v] },
                )),
            };
        }
        let mut req = crate::corpus::Generator::new(1).request(1);
        req.resource_spans[0].scope_spans[0].spans[0].attributes[0].value = Some(v);
        assert!(transform(&[req.encode_to_vec()]).is_none());
    }

    #[test]
    fn hostile_containers_fail_without_overrunning() {
        let records = corpus(1);
        let raw = records.concat();
        let c = transform(&records).unwrap();
        // Declared too small or too large.
        assert!(untransform(&c, raw.len() as u64 - 1).is_err());
        assert!(untransform(&c, raw.len() as u64 + 1).is_err());
        // Every truncation and a flipped byte anywhere fail or stay within
        // the declared size.
        for cut in (0..c.len()).step_by(97) {
            assert!(untransform(&c[..cut], raw.len() as u64).is_err());
        }
        for at in (0..c.len()).step_by(31) {
            let mut bad = c.clone();
            bad[at] ^= 0x55;
            if let Ok(out) = untransform(&bad, raw.len() as u64) {
                assert_eq!(out.len(), raw.len());
            }
        }
        // A header claiming huge streams.
        let mut huge = Vec::new();
        for _ in 0..STREAMS {
            put_varint(&mut huge, u64::MAX >> 1);
        }
        assert!(untransform(&huge, 1 << 20).is_err());
        assert!(untransform(&[], 0).is_err());
    }

    #[test]
    fn times_survive_wrapping_deltas() {
        let mut req = crate::corpus::Generator::new(3).request(2);
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        spans[0].start_time_unix_nano = u64::MAX;
        spans[0].end_time_unix_nano = 1;
        spans[1].start_time_unix_nano = 0;
        spans[1].end_time_unix_nano = u64::MAX;
        let raw = req.encode_to_vec();
        let c = transform(&[&raw]).unwrap();
        assert_eq!(untransform(&c, raw.len() as u64).unwrap(), raw);
    }
}
