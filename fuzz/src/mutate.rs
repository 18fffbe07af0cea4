//! A deterministic byte mutator (no coverage feedback: the stable
//! toolchain here has no sanitizer-coverage fuzzing engine). Each input is
//! a seed from the corpus with 1 to 8 mutations stacked: bit flips,
//! interesting bytes, inserted and deleted runs, varints (protobuf
//! lengths and tags), tokens from the target's dictionary, splices with
//! another seed, and repeated ranges (how a small input asks for many
//! elements).

/// splitmix64: small, fast, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x22, 0x08];

/// Mutates `input` in place, keeping it at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    input: &mut Vec<u8>,
    seeds: &[Vec<u8>],
    dict: &[&[u8]],
    max_len: usize,
) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        one(rng, input, seeds, dict);
    }
    input.truncate(max_len);
}

fn one(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let n = 1 + rng.below((len - at.min(len - 1)).min(64));
            let start = at.min(len - 1);
            input.drain(start..(start + n).min(len));
        }
        4 => {
            let mut v = match rng.below(4) {
                0 => rng.below(128) as u64,
                1 => rng.below(1 << 14) as u64,
                2 => u64::from(u32::MAX) + rng.below(4) as u64,
                _ => rng.next_u64(),
            };
            let mut bytes = Vec::with_capacity(10);
            while v >= 0x80 {
                bytes.push((v as u8) | 0x80);
                v >>= 7;
            }
            bytes.push(v as u8);
            input.splice(at..at, bytes);
        }
        5 | 6 if !dict.is_empty() => {
            let token = dict[rng.below(dict.len())];
            if rng.below(2) == 0 || at + token.len() > len {
                input.splice(at..at, token.iter().copied());
            } else {
                input[at..at + token.len()].copy_from_slice(token);
            }
        }
        7 if !seeds.is_empty() => {
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        8 | 9 if len > 0 => {
            // Repeat a range: many elements from a few bytes.
            let start = rng.below(len);
            let n = 1 + rng.below((len - start).min(32));
            let most = if rng.below(4) == 0 { 512 } else { 8 };
            let times = 1 + rng.below(most);
            let range = input[start..start + n].to_vec();
            let mut repeated = Vec::with_capacity(range.len() * times);
            for _ in 0..times {
                repeated.extend_from_slice(&range);
            }
            input.splice(start..start, repeated);
        }
        10 if len > 0 => {
            let i = rng.below(len);
            input[i] = if rng.below(2) == 0 {
                input[i].wrapping_add(1 + rng.below(4) as u8)
            } else {
                input[i].wrapping_sub(1 + rng.below(4) as u8)
            };
        }
        11 if len > 1 => input.truncate(rng.below(len)),
        _ => {
            if len > 0 {
                let i = rng.below(len);
                input[i] = rng.next_u64() as u8;
            } else {
                input.push(rng.next_u64() as u8);
            }
        }
    }
}
