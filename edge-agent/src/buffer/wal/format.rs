//! The WAL's on-disk format.
//!
//! ```text
//! <buffer-dir>/wal/
//!   00000000000000000001.seg   segment files, named by the first sequence
//!   00000000000000004097.seg   they may hold (20 decimal digits)
//!   ack                        the acknowledged cursor
//! ```
//!
//! A segment is a sequence of records, each framed as
//!
//! ```text
//! +----------+----------+----------+------------+---------------------+
//! | len: u32 | crc: u32 | seq: u64 | spans: u32 | payload: len bytes  |
//! +----------+----------+----------+------------+---------------------+
//!   little endian; crc = CRC-32 (IEEE) over seq, spans and payload
//! ```
//!
//! The payload is one encoded OTLP `ExportTraceServiceRequest`. Sequences
//! increase by one across segments and restarts. A record whose header is
//! short, whose `len` exceeds [`MAX_RECORD`], or whose CRC does not match
//! ends the readable part of a segment: recovery truncates the file there
//! (a torn tail after a crash).
//!
//! `ack` holds `seq: u64` + `crc: u32` of that seq (little endian): every
//! record up to `seq` was committed by the gateway's store. It is replaced
//! atomically (write temp, fsync, rename, fsync dir).

/// Bytes before the payload.
pub const HEADER: usize = 20;
/// The largest payload accepted (a receiver's decompressed limit is lower).
pub const MAX_RECORD: usize = 256 << 20;

pub fn crc(seq: u64, spans: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&spans.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, spans: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(seq, spans, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&spans.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record header as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub crc: u32,
    pub seq: u64,
    pub spans: u32,
}

pub fn decode_header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[8..16]);
    Some(Header {
        len: u32_at(0),
        crc: u32_at(4),
        seq: u64::from_le_bytes(seq),
        spans: u32_at(16),
    })
}

/// One record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub spans: u32,
    /// Offset of the record's header in the segment.
    pub offset: u64,
    pub len: u32,
}

/// Parses a segment's bytes. Returns the valid records and the length of
/// the valid prefix (where a torn or corrupt tail starts).
pub fn scan(bytes: &[u8]) -> (Vec<Found>, usize) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = decode_header(&bytes[pos..]) {
        let len = h.len as usize;
        let end = pos + HEADER + len;
        if len > MAX_RECORD || end > bytes.len() {
            break;
        }
        if crc(h.seq, h.spans, &bytes[pos + HEADER..end]) != h.crc {
            break;
        }
        out.push(Found {
            seq: h.seq,
            spans: h.spans,
            offset: pos as u64,
            len: h.len,
        });
        pos = end;
    }
    (out, pos)
}

pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")
        .filter(|n| n.len() == 20)
        .and_then(|n| n.parse().ok())
}

pub fn encode_cursor(seq: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&seq.to_le_bytes());
    b[8..].copy_from_slice(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes());
    b
}

pub fn decode_cursor(b: &[u8]) -> Option<u64> {
    if b.len() != 12 {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[..8]);
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    (crc32fast::hash(&seq) == crc).then(|| u64::from_le_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_torn_tails_stop_the_scan() {
        let mut seg = Vec::new();
        encode(&mut seg, 1, 3, b"abc");
        encode(&mut seg, 2, 1, b"");
        let good = seg.len();
        encode(&mut seg, 3, 9, b"payload-3");
        let (found, valid) = scan(&seg);
        assert_eq!(found.len(), 3);
        assert_eq!(valid, seg.len());
        assert_eq!(
            found[2],
            Found {
                seq: 3,
                spans: 9,
                offset: good as u64,
                len: 9
            }
        );
        // Torn: the last record is cut short.
        let (found, valid) = scan(&seg[..seg.len() - 2]);
        assert_eq!((found.len(), valid), (2, good));
        // Corrupt: a flipped payload bit.
        let mut bad = seg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(scan(&bad).1, good);
        // Garbage length.
        let mut huge = seg[..good].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(scan(&huge).1, good);
    }

    #[test]
    fn names_and_cursor() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(decode_cursor(&encode_cursor(7)), Some(7));
        let mut c = encode_cursor(7);
        c[0] = 8;
        assert_eq!(decode_cursor(&c), None);
    }
}
