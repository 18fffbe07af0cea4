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
