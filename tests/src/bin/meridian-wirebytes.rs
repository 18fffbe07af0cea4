//! Offline wire-byte figures for the agent → gateway `Forward` payload
//! (issue 20, P8), on the benchmark corpora (`scripts/bench-agent.sh`).
//! Deterministic: the corpus is seeded and compression is deterministic.
//!
//! ```text
//! meridian-wirebytes [--corpus small|prod] [--level N]
//! ```
//!
//! Prints one JSON line per encoding: payload bytes per span for plain
//! OTLP + zstd (each 512-span request alone, 1,000-span batches, the
//! agent's largest batch), the columnar encoding
//! (`COMPRESSION_OTLP_COLUMNS_ZSTD`) on the same batches, the variants
//! tried (levels, long-distance matching, a raw-content dictionary), and
//! the encoder's CPU per span.

#![allow(clippy::print_stdout)] // a bench tool reports on stdout

use std::time::Instant;

use anyhow::{Context, bail};
use prost::Message;
use proto::otlp::ExportTraceServiceRequest;
use zstd::zstd_safe::CParameter;

/// The agent's batch cap (`edge-agent/src/app.rs`: 4 MiB, 512 records).
const AGENT_BATCH_BYTES: usize = 4 << 20;
const TOTAL_SPANS: usize = 512 * 64;

fn requests(corpus: &str, seed: u64, spans: usize, n: usize) -> Vec<Vec<u8>> {
    let encode = |r: ExportTraceServiceRequest| r.encode_to_vec();
    match corpus {
        "prod" => {
            let mut g = proto::corpus_prod::ProdGenerator::new(seed);
            (0..n).map(|_| encode(g.request(spans))).collect()
        }
        _ => {
            let mut g = proto::corpus::Generator::new(seed);
            (0..n).map(|_| encode(g.request(spans))).collect()
        }
    }
}

/// Records grouped as the agent batches them: up to `cap` bytes each.
fn batches(records: &[Vec<u8>], cap: usize) -> Vec<Vec<&[u8]>> {
    let mut out: Vec<Vec<&[u8]>> = Vec::new();
    let mut size = 0;
    for r in records {
        if out.is_empty() || size + r.len() > cap {
            out.push(Vec::new());
            size = 0;
        }
        size += r.len();
        if let Some(last) = out.last_mut() {
            last.push(r);
        }
    }
    out
}

fn zstd_with(raw: &[u8], level: i32, long: bool, dict: Option<&[u8]>) -> anyhow::Result<usize> {
    let mut c = match dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(level, d)?,
        None => zstd::bulk::Compressor::new(level)?,
    };
    if long {
        c.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
        c.set_parameter(CParameter::WindowLog(24))?;
    }
    Ok(c.compress(raw)?.len())
}

struct Row<'a> {
    corpus: &'a str,
    name: String,
    spans: usize,
    bytes: usize,
    nanos: u128,
}

impl Row<'_> {
    fn print(&self, otlp_bytes: usize, baseline: f64) {
        let per = self.bytes as f64 / self.spans as f64;
        let out = serde_json::json!({
            "name": format!("p8-{}-{}", self.corpus, self.name),
            "corpus": self.corpus,
            "encoding": self.name,
            "spans": self.spans,
            "payload_bytes": self.bytes,
            "otlp_bytes_per_span": (otlp_bytes as f64 / self.spans as f64 * 10.0).round() / 10.0,
            "bytes_per_span": (per * 100.0).round() / 100.0,
            "ratio_to_otlp_zstd_512": if baseline > 0.0 { (per / baseline * 1000.0).round() / 1000.0 } else { 0.0 },
            "encode_ns_per_span": if self.nanos > 0 { (self.nanos / self.spans as u128) as u64 } else { 0 },
        });
        println!("{out}");
    }
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, u128)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_nanos()))
}

fn main() -> anyhow::Result<()> {
    let mut corpus = "small".to_owned();
    let mut level = 1;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => corpus = val()?,
            "--level" => level = val()?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    // The loadgen's seed: the same spans as the P2 run.
    let seed = 0x2545_f491_4f6c_dd1d;
    let reqs = requests(&corpus, seed, 512, TOTAL_SPANS / 512);
    let thousands = requests(&corpus, seed, 1_000, TOTAL_SPANS / 1_000);
    let otlp: usize = reqs.iter().map(Vec::len).sum();
    let otlp_k: usize = thousands.iter().map(Vec::len).sum();
    let spans = TOTAL_SPANS;
    let spans_k = TOTAL_SPANS / 1_000 * 1_000;
    let c = corpus.as_str();
    let mut rows = Vec::new();

    // Plain OTLP + zstd, each 512-span request alone (the agent at low
    // rate: one buffer record per batch).
    let (bytes, nanos) = timed(|| {
        reqs.iter()
            .map(|r| Ok(zstd::bulk::compress(r, level)?.len()))
            .sum::<anyhow::Result<usize>>()
    })?;
    let baseline = bytes as f64 / spans as f64;
    rows.push(Row {
        corpus: c,
        name: format!("otlp-zstd{level}-512"),
        spans,
        bytes,
        nanos,
    });
    for l in [3, 9, 19] {
        let bytes = reqs
            .iter()
            .map(|r| zstd_with(r, l, false, None))
            .sum::<anyhow::Result<usize>>()?;
        rows.push(Row {
            corpus: c,
            name: format!("otlp-zstd{l}-512"),
            spans,
            bytes,
            nanos: 0,
        });
    }
    // A raw-content dictionary: a 64-span request of another seed.
    let dict = requests(&corpus, 7, 64, 1).concat();
    let bytes = reqs
        .iter()
        .map(|r| zstd_with(r, level, false, Some(&dict)))
        .sum::<anyhow::Result<usize>>()?;
    rows.push(Row {
        corpus: c,
        name: format!("otlp-zstd{level}-512-dict"),
        spans,
        bytes,
        nanos: 0,
    });
    // 1,000-span batches (OTel-Arrow's published comparison point).
    let bytes = thousands
        .iter()
        .map(|r| Ok(zstd::bulk::compress(r, level)?.len()))
        .sum::<anyhow::Result<usize>>()?;
    rows.push(Row {
        corpus: c,
        name: format!("otlp-zstd{level}-1000"),
        spans: spans_k,
        bytes,
        nanos: 0,
    });
    let (bytes, nanos) = timed(|| {
        thousands
            .iter()
            .map(|r| {
                Ok(proto::columns::encode(&[r], level)
                    .context("not canonical")??
                    .0
                    .len())
            })
            .sum::<anyhow::Result<usize>>()
    })?;
    rows.push(Row {
        corpus: c,
        name: format!("columns-zstd{level}-1000"),
        spans: spans_k,
        bytes,
        nanos,
    });
    // The agent's largest batch (records concatenated up to 4 MiB).
    let full = batches(&reqs, AGENT_BATCH_BYTES);
    for (l, long) in [(level, false), (3, false), (level, true), (19, true)] {
        let (bytes, nanos) = timed(|| {
            full.iter()
                .map(|b| zstd_with(&b.concat(), l, long, None))
                .sum::<anyhow::Result<usize>>()
        })?;
        let name = format!("otlp-zstd{l}{}-batch", if long { "-long" } else { "" });
        rows.push(Row {
            corpus: c,
            name,
            spans,
            bytes,
            nanos,
        });
    }
    // The columnar encoding: each request alone, and agent batches.
    let (bytes, nanos) = timed(|| {
        reqs.iter()
            .map(|r| {
                Ok(proto::columns::encode(&[r], level)
                    .context("not canonical")??
                    .0
                    .len())
            })
            .sum::<anyhow::Result<usize>>()
    })?;
    rows.push(Row {
        corpus: c,
        name: format!("columns-zstd{level}-512"),
        spans,
        bytes,
        nanos,
    });
    for l in [level, 3, 9] {
        let (bytes, nanos) = timed(|| {
            full.iter()
                .map(|b| {
                    Ok(proto::columns::encode(b, l)
                        .context("not canonical")??
                        .0
                        .len())
                })
                .sum::<anyhow::Result<usize>>()
        })?;
        rows.push(Row {
            corpus: c,
            name: format!("columns-zstd{l}-batch"),
            spans,
            bytes,
            nanos,
        });
    }
    // Check the round trip of what is reported.
    for b in &full {
        let (payload, size) = proto::columns::encode(b, level).context("not canonical")??;
        let container =
            zstd::bulk::decompress(&payload, proto::columns::container_cap(size as usize))?;
        if proto::columns::untransform(&container, size)? != b.concat() {
            bail!("columnar round trip differs");
        }
    }
    for r in &rows {
        let otlp_bytes = if r.spans == spans { otlp } else { otlp_k };
        r.print(otlp_bytes, baseline);
    }
    Ok(())
}
