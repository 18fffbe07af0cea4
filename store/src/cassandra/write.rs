//! Writes: skip spans already stored, then names and index rows, then the
//! `spans` rows, then the usage counters (best-effort).

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt as _, TryStreamExt as _, stream};
use model::{Span, SpanId, TraceId};
use scylla::value::{Counter, CqlValue};
use telemetry::clock::unix_secs;

use super::{CONCURRENCY, CassandraStore, IN_LIST, rows, rows::IndexRow, ttl};
use crate::{StoreError, WriteOutcome, codec};

/// Which list a name row goes to.
#[derive(Debug, Clone, Copy)]
enum NameRow {
    Service,
    Operation,
    /// The (cluster, service, kind, operation) row of the scoped lists.
    ClusterOperation,
}

impl CassandraStore {
    pub(super) async fn write_spans(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
        if spans.is_empty() {
            return Ok(WriteOutcome::default());
        }
        // Replays inside the batch count as duplicates, like the SQL backends.
        let mut seen = HashSet::new();
        let unique: Vec<&Span> = spans
            .iter()
            .filter(|s| seen.insert((s.trace_id, s.span_id)))
            .collect();
        let mut by_trace: BTreeMap<TraceId, Vec<SpanId>> = BTreeMap::new();
        for s in &unique {
            by_trace.entry(s.trace_id).or_default().push(s.span_id);
        }
        let stored: HashSet<(TraceId, SpanId)> = stream::iter(by_trace)
            .map(|(trace, ids)| async move {
                let found = self.existing(trace, ids).await?;
                Ok::<_, StoreError>(found.into_iter().map(move |s| (trace, s)))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        let new: Vec<&Span> = unique
            .into_iter()
            .filter(|s| !stored.contains(&(s.trace_id, s.span_id)))
            .collect();
        if !new.is_empty() {
            self.write_new(&new).await?;
        }
        let inserted = new.len() as u64;
        Ok(WriteOutcome {
            inserted,
            duplicates: spans.len() as u64 - inserted,
        })
    }

    /// Span ids of `spans` (all of one trace) already stored.
    async fn existing(&self, trace: TraceId, ids: Vec<SpanId>) -> Result<Vec<SpanId>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_LIST) {
            let list: Vec<Vec<u8>> = chunk.iter().map(|s| s.as_bytes().to_vec()).collect();
            let rows: Vec<(Vec<u8>,)> = self
                .rows(
                    &self.stmts.existing_spans,
                    (trace.as_bytes().to_vec(), list),
                )
                .await?;
            for (id,) in rows {
                out.push(
                    SpanId::from_bytes(&id)
                        .map_err(|e| StoreError::Corrupt(format!("span id: {e}")))?,
                );
            }
        }
        Ok(out)
    }

    async fn write_names(&self, spans: &[&Span]) -> Result<Vec<String>, StoreError> {
        let ttl = ttl::ttl_seconds(ttl::names_ttl_hours(&self.retention), unix_secs());
        let mut todo: BTreeMap<String, (NameRow, Vec<CqlValue>)> = BTreeMap::new();
        for span in spans {
            let service = rows::index_key(span.service_name());
            let operation = rows::index_key(&span.name);
            let key = format!("s\u{0}{service}");
            if !self.names.contains_key(&key) {
                todo.entry(key).or_insert_with(|| {
                    (
                        NameRow::Service,
                        vec![CqlValue::Text(service.to_owned()), CqlValue::Int(ttl)],
                    )
                });
            }
            let kind = span.kind.as_i32();
            let key = format!("o\u{0}{service}\u{0}{kind}\u{0}{operation}");
            if !self.names.contains_key(&key) {
                todo.entry(key).or_insert_with(|| {
                    (
                        NameRow::Operation,
                        vec![
                            CqlValue::Text(service.to_owned()),
                            CqlValue::Int(kind),
                            CqlValue::Text(operation.to_owned()),
                            CqlValue::Int(ttl),
                        ],
                    )
                });
            }
            let cluster = span.cluster.as_str();
            let key = format!("c\u{0}{cluster}\u{0}{service}\u{0}{kind}\u{0}{operation}");
            if !self.names.contains_key(&key) {
                todo.entry(key).or_insert_with(|| {
                    (
                        NameRow::ClusterOperation,
                        vec![
                            CqlValue::Text(cluster.to_owned()),
                            CqlValue::Text(service.to_owned()),
                            CqlValue::Int(kind),
                            CqlValue::Text(operation.to_owned()),
                            CqlValue::Int(ttl),
                        ],
                    )
                });
            }
        }
        let keys: Vec<String> = todo.keys().cloned().collect();
        stream::iter(todo.into_values())
            .map(|(row, values)| {
                let st = match row {
                    NameRow::Service => &self.stmts.insert_service_name,
                    NameRow::Operation => &self.stmts.insert_operation_name,
                    NameRow::ClusterOperation => &self.stmts.insert_cluster_operation_name,
                };
                self.exec(st, values)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(keys)
    }

    async fn write_new(&self, spans: &[&Span]) -> Result<(), StoreError> {
        let now = unix_secs();
        let ttl_of = |s: &Span| ttl::ttl_seconds(self.retention.ttl_hours(s.cluster.as_str()), now);

        // Encode before any I/O.
        let mut encoder = codec::Encoder::new()?;
        let bodies = spans
            .iter()
            .map(|s| encoder.encode(s))
            .collect::<Result<Vec<_>, _>>()?;
        drop(encoder);
        let body_bytes: Vec<usize> = bodies.iter().map(Vec::len).collect();

        // 1. Names and index rows.
        let name_keys = self.write_names(spans).await?;
        let mut rows: Vec<IndexRow> = Vec::new();
        let mut row_ttls: Vec<i32> = Vec::new();
        for span in spans {
            let ttl = ttl_of(span);
            for row in rows::index_rows(span, &self.indexed) {
                rows.push(row);
                row_ttls.push(ttl);
            }
        }
        let batches = rows::partition_batches(&rows, rows::BATCH_ROWS, rows::BATCH_BYTES);
        stream::iter(batches)
            .map(|members| {
                let table = rows[members[0]].table();
                let values = members
                    .iter()
                    .map(|i| rows[*i].values(row_ttls[*i]))
                    .collect();
                self.exec_partition(self.stmts.index_insert(table), values)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        // 2. The spans themselves, per trace (one partition).
        let mut by_trace: BTreeMap<TraceId, Vec<usize>> = BTreeMap::new();
        for (i, span) in spans.iter().enumerate() {
            by_trace.entry(span.trace_id).or_default().push(i);
        }
        let mut span_batches: Vec<Vec<usize>> = Vec::new();
        for members in by_trace.into_values() {
            let sizes: Vec<usize> = members.iter().map(|i| bodies[*i].len() + 128).collect();
            for range in rows::chunk_by_size(&sizes, rows::BATCH_ROWS, rows::BATCH_BYTES) {
                span_batches.push(members[range].to_vec());
            }
        }
        let mut bodies: Vec<Option<Vec<u8>>> = bodies.into_iter().map(Some).collect();
        let span_rows: Vec<Vec<Vec<CqlValue>>> = span_batches
            .iter()
            .map(|members| {
                members
                    .iter()
                    .map(|i| {
                        let body = bodies[*i].take().unwrap_or_default();
                        rows::span_values(spans[*i], body, ttl_of(spans[*i]))
                    })
                    .collect()
            })
            .collect();
        stream::iter(span_rows)
            .map(|rows| self.exec_partition(&self.stmts.insert_span, rows))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        for key in name_keys {
            self.names.insert(key, ()).await;
        }

        // 3. Usage counters: best-effort, never fail a stored batch.
        let mut usage: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (i, span) in spans.iter().enumerate() {
            let e = usage.entry(span.cluster.as_str()).or_default();
            e.0 = e.0.saturating_add(1);
            e.1 =
                e.1.saturating_add(i64::try_from(body_bytes[i]).unwrap_or(i64::MAX));
        }
        let day = ttl::day_bucket(now);
        for (cluster, (n, bytes)) in usage {
            let values = vec![
                CqlValue::Counter(Counter(n)),
                CqlValue::Counter(Counter(bytes)),
                CqlValue::Text(cluster.to_owned()),
                CqlValue::BigInt(day),
            ];
            if let Err(e) = self.exec(&self.stmts.add_usage, values).await {
                tracing::warn!(error = %e, cluster, "cassandra usage counters not updated");
            }
        }
        Ok(())
    }
}
