//! The ingest ceiling (BENCHMARKS.md, P4): the rows a write produces,
//! encoded ahead of time and loaded with a raw `COPY` (no lock, no dedup
//! check, no encoding), to compare the real write path against.

use std::{collections::HashMap, fmt::Write as _};

use model::Span;

use crate::{
    StoreError,
    postgres::{PgStore, backend_error, copy::BinaryCopy, write},
};

const COPY_CHUNKS: &str = "COPY chunks (day, trace_id, cluster, span_count, last_ns, body, \
     span_ids, hot) FROM STDIN (FORMAT binary)";

/// Rows encoded for the COPY ceiling (benchmarks): exactly what a write
/// of the same spans into an empty store produces.
#[derive(Debug)]
pub struct CeilingRows {
    traces: String,
    chunks: Vec<u8>,
    spans: u64,
}

impl CeilingRows {
    pub fn spans(&self) -> u64 {
        self.spans
    }
}

impl PgStore {
    /// Benchmarks only: the rows a write of `spans` into an empty store
    /// would produce, encoded ahead of time for [`Self::bench_copy`].
    pub async fn bench_encode(&self, spans: &[Span]) -> Result<CeilingRows, StoreError> {
        encode(self, spans).await
    }

    /// Benchmarks only: loads pre-encoded rows with a raw `COPY` (the
    /// ingest ceiling: no lock, no dedup check, no encoding).
    pub async fn bench_copy(&self, rows: &CeilingRows) -> Result<(), StoreError> {
        copy(self, rows).await
    }
}

/// The rows of `spans`, as a write into an empty store makes them.
async fn encode(store: &PgStore, spans: &[Span]) -> Result<CeilingRows, StoreError> {
    let batch = write::prepare(store, spans).await?;
    let write::Encoded {
        summaries,
        chunks,
        inserted,
        ..
    } = write::encode(store, &batch, &HashMap::new())?;
    let mut text = String::with_capacity(summaries.len() * 256);
    for s in &summaries {
        let root = s
            .root_op
            .map_or_else(|| "\\N".to_owned(), |r| r.to_string());
        let _ = write!(text, "{}\t\\\\x", s.day);
        for b in &s.trace_id {
            let _ = write!(text, "{b:02x}");
        }
        let _ = writeln!(
            text,
            "\t{}\t{}\t{}\t{}\t{}\t{root}\t{}\t{}\t{{}}",
            s.first_ns, s.last_ns, s.max_duration, s.count, s.errors, s.clusters, s.terms,
        );
    }
    let mut copy = BinaryCopy::new();
    for i in 0..chunks.day.len() {
        copy.row(8)
            .int4(chunks.day[i])
            .bytea(&chunks.trace_id[i])
            .int4(chunks.cluster[i])
            .int4(chunks.span_count[i])
            .int8(chunks.last_ns[i])
            .bytea(&chunks.body[i])
            .int8_array(&chunks.span_ids[i])
            .bool(chunks.hot[i]);
    }
    Ok(CeilingRows {
        traces: text,
        chunks: copy.finish(),
        spans: inserted,
    })
}

/// Loads ceiling rows with two `COPY`s in one transaction.
async fn copy(store: &PgStore, rows: &CeilingRows) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await.map_err(backend_error)?;
    let mut sink = tx
        .copy_in_raw(
            "COPY traces (day, trace_id, first_ns, last_ns, max_duration_ns, span_count, \
             error_count, root_op, clusters, terms, span_ids) FROM STDIN",
        )
        .await
        .map_err(backend_error)?;
    sink.send(rows.traces.as_bytes())
        .await
        .map_err(backend_error)?;
    sink.finish().await.map_err(backend_error)?;
    let mut sink = tx.copy_in_raw(COPY_CHUNKS).await.map_err(backend_error)?;
    sink.send(rows.chunks.as_slice())
        .await
        .map_err(backend_error)?;
    sink.finish().await.map_err(backend_error)?;
    tx.commit().await.map_err(backend_error)
}
