//! Model-based tests: random append / ack / crash / torn-tail / fault
//! sequences against an in-memory model. Nothing acknowledged to a client is
//! lost; nothing acknowledged by the gateway is delivered again.

use std::{collections::VecDeque, time::Duration};

use bytes::Bytes;
use telemetry::Shutdown;

use super::{FullPolicy, Wal, WalConfig, WalError, WalStats, format};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cfg(dir: &std::path::Path, max: u64, policy: FullPolicy) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 4096,
        max_bytes: max,
        full_policy: policy,
        group_commit: Duration::ZERO,
        cursor_every: super::CURSOR_EVERY,
    }
}

async fn open(c: &WalConfig, sd: &Shutdown) -> Wal {
    Wal::open(c.clone(), WalStats::default(), sd).await.unwrap()
}

async fn contents(wal: &Wal) -> Vec<(u64, Bytes)> {
    wal.peek_after(0, usize::MAX, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.payload))
        .collect()
}

fn payload(rng: &mut Rng, seq_hint: u64) -> Bytes {
    let len = rng.below(700) as usize;
    let mut v = seq_hint.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (i as u8) ^ (seq_hint as u8)));
    Bytes::from(v)
}

/// Appends a partial frame to the newest segment, as a crash in the middle
/// of writing an unacknowledged record would leave it.
fn tear_tail(dir: &std::path::Path, rng: &mut Rng) {
    let mut segs: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()
                .and_then(format::parse_segment_name)
        })
        .collect();
    segs.sort_unstable();
    if let Some(last) = segs.last() {
        let path = dir.join(format::segment_name(*last));
        let mut frame = Vec::new();
        format::encode(&mut frame, 999_999, 1, &[7u8; 64]);
        let cut = 1 + rng.below(frame.len() as u64 - 1) as usize;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&frame[..cut]);
        std::fs::write(&path, bytes).unwrap();
    }
}

#[tokio::test]
async fn random_operations_match_the_model() {
    for seed in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), u64::MAX, FullPolicy::Block);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut sd = Shutdown::new();
        let mut wal = open(&c, &sd).await;
        // Durable, unacknowledged records, as the model sees them.
        let mut model: VecDeque<(u64, Bytes)> = VecDeque::new();
        let mut acked = 0u64;
        for _step in 0..300 {
            match rng.below(100) {
                0..=54 => {
                    let p = payload(&mut rng, model.back().map(|m| m.0).unwrap_or(acked) + 1);
                    let seq = wal.append(p.clone(), 1).await.unwrap();
                    assert!(seq > acked && model.back().is_none_or(|m| m.0 < seq));
                    model.push_back((seq, p));
                }
                55..=74 => {
                    if !model.is_empty() {
                        let upto = model[rng.below(model.len() as u64) as usize].0;
                        wal.ack(upto).await.unwrap();
                        acked = upto;
                        while model.front().is_some_and(|m| m.0 <= upto) {
                            model.pop_front();
                        }
                    }
                }
                75..=84 => {
                    // Crash: drop every handle without a clean close, maybe
                    // leaving a torn record, and recover.
                    drop(wal);
                    sd.shutdown(Duration::from_secs(5)).await;
                    if rng.below(2) == 0 {
                        tear_tail(dir.path(), &mut rng);
                    }
                    sd = Shutdown::new();
                    wal = open(&c, &sd).await;
                }
                85..=89 => {
                    // A disk fault: that commit's appends fail and vanish.
                    wal.inject_sync_failures(1);
                    let p = payload(&mut rng, 0);
                    let err = wal.append(p, 1).await.unwrap_err();
                    assert!(matches!(err, WalError::Io { .. }), "{err}");
                }
                _ => {
                    let after = model.front().map(|m| m.0).unwrap_or(0);
                    let got = wal.peek_after(after, 1500, 3).await.unwrap();
                    let want: Vec<u64> = model.iter().skip(1).take(3).map(|m| m.0).collect();
                    let got_seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
                    assert!(
                        want.starts_with(&got_seqs),
                        "peek returned records out of order"
                    );
                    assert!(
                        want.is_empty() || !got.is_empty(),
                        "peek missed durable records"
                    );
                }
            }
            let have = contents(&wal).await;
            assert_eq!(
                have.iter().map(|h| h.0).collect::<Vec<_>>(),
                model.iter().map(|m| m.0).collect::<Vec<_>>(),
                "seed {seed}: sequences differ from the model"
            );
            assert!(
                have.iter().zip(&model).all(|(h, m)| h.1 == m.1),
                "seed {seed}: payloads"
            );
            let (records, _, spans) = wal.usage();
            assert_eq!((records, spans), (model.len(), model.len() as u64));
        }
        drop(wal);
        sd.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn block_policy_refuses_and_drop_oldest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sd = Shutdown::new();
    let wal = open(&cfg(dir.path(), 10_000, FullPolicy::Block), &sd).await;
    let mut n = 0;
    let err = loop {
        match wal.append(Bytes::from(vec![1u8; 1000]), 2).await {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WalError::Full { .. }));
    assert_eq!(n, 9, "9 × 1,020 B fit under 10,000 B");
    wal.ack(9).await.unwrap();
    // Sealed, fully acknowledged segments are deleted: room again.
    assert!(wal.usage().1 < 10_000);

    let dir = tempfile::tempdir().unwrap();
    let wal = open(&cfg(dir.path(), 10_000, FullPolicy::DropOldest), &sd).await;
    for _ in 0..40 {
        wal.append(Bytes::from(vec![1u8; 1000]), 2).await.unwrap();
    }
    let held = contents(&wal).await;
    let dropped = wal.stats().dropped_spans("buffer_full");
    assert_eq!(
        dropped + 2 * held.len() as u64,
        80,
        "every span is held or counted"
    );
    assert!(dropped > 0);
    assert_eq!(held.last().map(|h| h.0), Some(40), "the newest survive");
    assert!(wal.usage().1 <= 10_000 + 4096 + 1020, "cap + one segment");
}

/// Byte offsets of each record in a segment file, by the frames' lengths.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while let Some(h) = format::decode_header(&bytes[pos..]) {
        starts.push(pos);
        pos += format::HEADER + h.len as usize;
    }
    starts
}

#[tokio::test]
async fn recovery_keeps_the_records_around_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    // One segment holds every record.
    let c = WalConfig {
        segment_bytes: 1 << 20,
        ..cfg(dir.path(), u64::MAX, FullPolicy::Block)
    };
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let n = 10u64;
    for i in 1..=n {
        wal.append(Bytes::from(format!("record-{i}").into_bytes()), 3)
            .await
            .unwrap();
    }
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;

    // Corrupt the first record (its CRC) and the 6th (a payload byte).
    let path = dir.path().join(format::segment_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), n as usize);
    bytes[starts[0] + 4] ^= 0xff;
    bytes[starts[5] + format::HEADER + 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let have = contents(&wal).await;
    let seqs: Vec<u64> = have.iter().map(|h| h.0).collect();
    assert_eq!(
        seqs,
        vec![2, 3, 4, 5, 7, 8, 9, 10],
        "only the corrupt two are lost"
    );
    for (seq, payload) in &have {
        assert_eq!(payload.as_ref(), format!("record-{seq}").as_bytes());
    }
    assert_eq!(wal.stats().dropped_records("corrupt"), 2);
    assert!(wal.stats().recovery_corrupt_bytes() > 0);
    assert_eq!(wal.usage().2, 8 * 3, "spans of the kept records");
    // New records continue the sequence, and the log recovers the same
    // way again.
    assert_eq!(
        wal.append(Bytes::from_static(b"new"), 1).await.unwrap(),
        n + 1
    );
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    assert_eq!(contents(&wal).await.len(), 9);
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_segment_whose_first_record_is_corrupt_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), u64::MAX, FullPolicy::Block);
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    for i in 1..=3u8 {
        wal.append(Bytes::from(vec![i; 100]), 1).await.unwrap();
    }
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
    let path = dir.path().join(format::segment_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    // The length field of the first record: no frame boundary to follow.
    bytes[0..4].copy_from_slice(&7_777u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let seqs: Vec<u64> = contents(&wal).await.iter().map(|h| h.0).collect();
    assert_eq!(seqs, vec![2, 3]);
    assert!(path.exists(), "the segment is kept");
    assert_eq!(wal.stats().dropped_records("corrupt"), 1);
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
}

/// The cursor on disk may lag the acknowledgements (it is written at most
/// once per `cursor_every`): a crash then resends acknowledged records,
/// which the gateway deduplicates, and loses none. A clean close writes it.
#[tokio::test]
async fn a_lagging_cursor_replays_acknowledged_records_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let c = WalConfig {
        segment_bytes: 1 << 20,
        cursor_every: Duration::from_secs(3600),
        ..cfg(dir.path(), u64::MAX, FullPolicy::Block)
    };
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    for i in 1..=6u8 {
        wal.append(Bytes::from(vec![i; 50]), 2).await.unwrap();
    }
    assert_eq!(wal.ack(4).await.unwrap(), 8);
    assert_eq!(
        wal.usage(),
        (2, wal.usage().1, 4),
        "released in memory at once"
    );
    assert!(!dir.path().join("ack").exists(), "no cursor write per ack");
    wal.crash_on_close();
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;

    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let seqs: Vec<u64> = contents(&wal).await.iter().map(|h| h.0).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 4, 5, 6],
        "acknowledged records come back, none lost"
    );
    wal.ack(4).await.unwrap();
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;

    // The clean close wrote the cursor.
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let seqs: Vec<u64> = contents(&wal).await.iter().map(|h| h.0).collect();
    assert_eq!(seqs, vec![5, 6]);
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
}

/// A fully acknowledged segment is released (kept as a spare or deleted)
/// only after the cursor past it is on disk, within the acknowledging call.
#[tokio::test]
async fn a_segment_is_released_after_the_cursor_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let c = WalConfig {
        cursor_every: Duration::from_secs(3600),
        ..cfg(dir.path(), u64::MAX, FullPolicy::Block)
    };
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    // 4096-byte segments, rolled once past 4096 bytes, ≈1 KiB records:
    // five records per segment.
    for i in 1..=12u8 {
        wal.append(Bytes::from(vec![i; 1000]), 1).await.unwrap();
    }
    let first = dir.path().join(format::segment_name(1));
    assert!(first.exists());
    wal.ack(6).await.unwrap();
    assert!(
        !first.exists(),
        "the first segment (records 1-5) is released"
    );
    let cursor = std::fs::read(dir.path().join("ack")).unwrap();
    assert_eq!(format::decode_cursor(&cursor), Some(6));
    wal.crash_on_close();
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;

    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let seqs: Vec<u64> = contents(&wal).await.iter().map(|h| h.0).collect();
    assert_eq!(seqs, (7..=12).collect::<Vec<_>>());
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
}

/// A released segment is kept as a spare and the next segment writes over
/// it; after a crash the old frames left in it are never taken for
/// records, and a clean close cuts them.
#[tokio::test]
async fn reused_segments_hold_only_their_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), u64::MAX, FullPolicy::Block);
    let files = |suffix: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .count()
    };
    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    // 4096-byte segments, rolled once past 4096 bytes; 1,020-byte frames:
    // records 1-5, 6-10, 11-15.
    for i in 1..=15u8 {
        wal.append(Bytes::from(vec![i; 1000]), 1).await.unwrap();
    }
    wal.ack(10).await.unwrap();
    assert_eq!(files(".spare"), 2, "both released segments are kept");
    // 16-23 go to a reused file.
    let mut want: Vec<(u64, Bytes)> = Vec::new();
    for i in 16..=23u8 {
        let p = Bytes::from(vec![i; 100]);
        want.push((wal.append(p.clone(), 1).await.unwrap(), p));
    }
    assert_eq!(files(".spare"), 1, "a spare became the new segment");
    let reused = dir.path().join(format::segment_name(16));
    assert!(
        std::fs::metadata(&reused).unwrap().len() > 8 * 120,
        "old frames after the new ones"
    );
    wal.crash_on_close();
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;

    let sd = Shutdown::new();
    let wal = open(&c, &sd).await;
    let have = contents(&wal).await;
    let seqs: Vec<u64> = have.iter().map(|h| h.0).collect();
    assert_eq!(seqs, (11..=23).collect::<Vec<_>>());
    assert_eq!(
        &have[5..],
        &want[..],
        "the reused segment's records, exactly"
    );
    assert_eq!(wal.stats().dropped_records("corrupt"), 0);
    // Recovery cut the old frames; the clean close leaves exact files.
    assert_eq!(std::fs::metadata(&reused).unwrap().len(), 8 * 120);
    drop(wal);
    sd.shutdown(Duration::from_secs(5)).await;
}
