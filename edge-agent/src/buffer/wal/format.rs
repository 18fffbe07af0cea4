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
//! increase by one across segments and restarts. A frame is bad when its
//! header is short, its `len` exceeds [`MAX_RECORD`] or the file, or its
//! CRC does not match. [`scan`] then resyncs: it looks, byte by byte, for
//! the next offset holding a valid frame whose `seq` fits the gap (above
//! the last good sequence, and at most one record per [`HEADER`] bytes
//! skipped, which rules out almost every false match before a CRC is
//! computed). What lies between is a corrupt region: its records are lost,
//! counted by the sequence gap. Bad bytes with no valid frame after them
//! are a torn tail (a crash mid-write): recovery truncates the file there.
//!
//! A resync could land on a frame-shaped byte string inside a corrupt
//! record's payload (span data is client-controlled). That needs a CRC
//! match and a sequence in the gap, and what it yields is only forwarded:
//! the gateway validates and stamps every record again.
//!
//! Segment files are reused: a fully acknowledged segment is renamed
//! `<first>.spare`, and the next new segment takes its place and writes
//! over it from offset 0 (no block allocation, no size change per
//! `fdatasync`). Until the new records reach its end, the file still holds
//! the old segment's frames after them. Those carry sequences below the
//! new segment's first, so neither the scan nor its resync (which only
//! takes sequences above the last good one) can take them for records:
//! recovery cuts them like a torn tail. A clean close and a segment roll
//! cut them too.
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

/// The header that frames `payload` (written before it, see above).
pub fn header(seq: u64, spans: u32, payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&crc(seq, spans, payload).to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&spans.to_le_bytes());
    h
}

/// Appends one framed record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, spans: u32, payload: &[u8]) {
    out.extend_from_slice(&header(seq, spans, payload));
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

/// A run of bytes between good records that holds no valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    /// Offset of the first bad byte in the segment.
    pub offset: u64,
    pub bytes: u64,
    /// Records lost: the sequence gap it leaves (0 when only junk bytes
    /// were found between two consecutive records).
    pub records: u64,
}

/// What [`scan`] found in a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The valid records, in file order.
    pub records: Vec<Found>,
    /// Corrupt regions with valid records after them.
    pub corrupt: Vec<Corrupt>,
    /// End of the last valid record: bytes past it are a torn tail.
    pub valid_len: usize,
}

/// The frame at `pos`, if it is whole, within [`MAX_RECORD`] and its CRC
/// matches; `seq_ok` filters on the sequence before the CRC is computed.
fn frame_at(bytes: &[u8], pos: usize, seq_ok: impl Fn(u64) -> bool) -> Option<Found> {
    let h = decode_header(bytes.get(pos..)?)?;
    let len = h.len as usize;
    let end = pos.checked_add(HEADER)?.checked_add(len)?;
    if len > MAX_RECORD || end > bytes.len() || !seq_ok(h.seq) {
        return None;
    }
    (crc(h.seq, h.spans, &bytes[pos + HEADER..end]) == h.crc).then_some(Found {
        seq: h.seq,
        spans: h.spans,
        offset: pos as u64,
        len: h.len,
    })
}

/// Parses the bytes of the segment named `first_seq`, resyncing past
/// corrupt frames (see the module header).
pub fn scan(bytes: &[u8], first_seq: u64) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0usize;
    // The sequence the next record should have.
    let mut expect = first_seq;
    while pos < bytes.len() {
        if let Some(f) = frame_at(bytes, pos, |seq| seq == expect) {
            pos += HEADER + f.len as usize;
            expect = f.seq.saturating_add(1);
            out.valid_len = pos;
            out.records.push(f);
            continue;
        }
        // Resync: the next offset with a valid frame in the gap.
        let bad = pos;
        let found = (bad + 1..bytes.len()).find_map(|at| {
            // Every lost record took at least a header's bytes.
            let max_lost = ((at - bad) / HEADER) as u64 + 1;
            frame_at(bytes, at, |seq| seq >= expect && seq - expect <= max_lost)
        });
        let Some(f) = found else {
            break;
        };
        out.corrupt.push(Corrupt {
            offset: bad as u64,
            bytes: f.offset - bad as u64,
            records: f.seq - expect,
        });
        // Take the frame found: the loop goes on from after it.
        pos = f.offset as usize + HEADER + f.len as usize;
        expect = f.seq.saturating_add(1);
        out.valid_len = pos;
        out.records.push(f);
    }
    out
}

pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// A released segment kept for reuse (see [`super`]): its old contents
/// are overwritten by the next segment it becomes.
pub fn spare_name(first_seq: u64) -> String {
    format!("{first_seq:020}.spare")
}

pub fn parse_spare_name(name: &str) -> Option<u64> {
    name.strip_suffix(".spare")
        .filter(|n| n.len() == 20)
        .and_then(|n| n.parse().ok())
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

    fn segment(first: u64, n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut seg = Vec::new();
        let mut starts = Vec::new();
        for seq in first..first + n {
            starts.push(seg.len());
            encode(&mut seg, seq, 2, format!("payload-{seq}").as_bytes());
        }
        (seg, starts)
    }

    fn seqs(s: &Scan) -> Vec<u64> {
        s.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn frames_roundtrip_and_torn_tails_end_the_scan() {
        let mut seg = Vec::new();
        encode(&mut seg, 1, 3, b"abc");
        encode(&mut seg, 2, 1, b"");
        let good = seg.len();
        encode(&mut seg, 3, 9, b"payload-3");
        let s = scan(&seg, 1);
        assert_eq!((s.records.len(), s.valid_len), (3, seg.len()));
        assert!(s.corrupt.is_empty());
        assert_eq!(
            s.records[2],
            Found {
                seq: 3,
                spans: 9,
                offset: good as u64,
                len: 9
            }
        );
        // Torn: the last record is cut short.
        let s = scan(&seg[..seg.len() - 2], 1);
        assert_eq!((s.records.len(), s.valid_len), (2, good));
        assert!(s.corrupt.is_empty(), "a torn tail is not a corrupt middle");
        // Corrupt last record: a flipped payload bit.
        let mut bad = seg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(scan(&bad, 1).valid_len, good);
        // Garbage length.
        let mut huge = seg[..good].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(scan(&huge, 1).valid_len, good);
    }

    #[test]
    fn scan_resyncs_past_corrupt_records() {
        let (seg, starts) = segment(10, 8);
        // A flipped payload bit in the 4th record, a smashed length in the
        // 1st: each loses only its own record.
        let mut bad = seg.clone();
        bad[starts[3] + HEADER + 1] ^= 0x40;
        bad[starts[0]..starts[0] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let s = scan(&bad, 10);
        assert_eq!(seqs(&s), vec![11, 12, 14, 15, 16, 17]);
        assert_eq!(s.valid_len, seg.len());
        assert_eq!(
            s.corrupt,
            vec![
                Corrupt {
                    offset: 0,
                    bytes: starts[1] as u64,
                    records: 1
                },
                Corrupt {
                    offset: starts[3] as u64,
                    bytes: (starts[4] - starts[3]) as u64,
                    records: 1
                },
            ]
        );
        // Three records in a row, their headers zeroed.
        let mut run = seg.clone();
        for i in 2..5 {
            run[starts[i]..starts[i] + HEADER].fill(0);
        }
        let s = scan(&run, 10);
        assert_eq!(seqs(&s), vec![10, 11, 15, 16, 17]);
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].records, 3);
        // Corrupt middle and a torn tail: the tail is cut, the rest kept.
        let mut both = bad[..seg.len() - 3].to_vec();
        both[starts[5] + 2] ^= 1;
        let s = scan(&both, 10);
        assert_eq!(seqs(&s), vec![11, 12, 14, 16]);
        assert_eq!(s.valid_len, starts[7]);
        // Every record corrupt: nothing found, nothing valid.
        let s = scan(&vec![0xa5; seg.len()], 10);
        assert_eq!((s.records.len(), s.valid_len), (0, 0));
    }

    #[test]
    fn resync_ignores_frames_outside_the_sequence_gap() {
        let (mut seg, starts) = segment(1, 3);
        // The 2nd record's payload holds a valid frame with a far sequence
        // (as span data could); its header is then corrupted.
        let mut fake = Vec::new();
        encode(&mut fake, 1_000, 1, b"forged");
        let mut poisoned = Vec::new();
        encode(&mut poisoned, 2, 1, &fake);
        let tail = seg.split_off(starts[1]);
        let third = tail[starts[2] - starts[1]..].to_vec();
        seg.extend_from_slice(&poisoned);
        seg.extend_from_slice(&third);
        let at = starts[1];
        seg[at + 4] ^= 1;
        let s = scan(&seg, 1);
        assert_eq!(seqs(&s), vec![1, 3], "the forged frame is not a record");
    }

    #[test]
    fn names_and_cursor() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_spare_name(&spare_name(42)), Some(42));
        assert_eq!(parse_segment_name(&spare_name(42)), None);
        assert_eq!(decode_cursor(&encode_cursor(7)), Some(7));
        let mut c = encode_cursor(7);
        c[0] = 8;
        assert_eq!(decode_cursor(&c), None);
    }
}
