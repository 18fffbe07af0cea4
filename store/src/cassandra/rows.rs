//! The rows a span produces: its `spans` row and its index rows (service,
//! service+operation, duration, tags), their partitions, and batches of
//! one partition each.

use std::collections::{BTreeMap, BTreeSet};

use model::{Span, TraceId};
use scylla::value::CqlValue;

use crate::{DEFAULT_INDEXED_TAGS, codec};

pub(crate) const HOUR_NANOS: u64 = 3_600 * 1_000_000_000;
/// Hash buckets of the service, operation and tag indexes.
pub(crate) const SEARCH_BUCKETS: i32 = 10;
/// Service, operation, tag key and tag value are cut to this many bytes in
/// index partition keys (Cassandra refuses keys over 64 KiB). Searches cut
/// the same way; confirmation on the loaded span is exact.
pub(crate) const MAX_KEY_BYTES: usize = 1_024;
/// Rows per unlogged batch, and their combined size.
pub(crate) const BATCH_ROWS: usize = 50;
pub(crate) const BATCH_BYTES: usize = 48 * 1024;

/// Nanoseconds beyond i64 (the year 2262) are clamped in index columns;
/// the body keeps the exact value.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The hour of a start time, as stored in `duration_index`.
pub(crate) fn hour_bucket(start_unix_nano: u64) -> i64 {
    clamp_i64(start_unix_nano.min(i64::MAX as u64) / HOUR_NANOS)
}

/// The hash bucket of a trace: stable, so a replay rewrites the same rows.
pub(crate) fn search_bucket(trace_id: &TraceId) -> i32 {
    let b = trace_id.as_bytes();
    i32::from(b[15]) % SEARCH_BUCKETS
}

/// `text` cut to at most [`MAX_KEY_BYTES`], on a character boundary.
pub(crate) fn index_key(text: &str) -> &str {
    if text.len() <= MAX_KEY_BYTES {
        return text;
    }
    let mut end = MAX_KEY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The tag keys written to `tag_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedTags(BTreeSet<String>);

impl IndexedTags {
    pub(crate) fn new(extra: &[String]) -> Self {
        Self(
            DEFAULT_INDEXED_TAGS
                .iter()
                .map(|k| (*k).to_owned())
                .chain(extra.iter().filter(|k| !k.is_empty()).cloned())
                .collect(),
        )
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// The tables a span adds rows to, besides `spans` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IndexTable {
    ServiceName,
    ServiceOperation,
    Duration,
    Tag,
}

/// One index row; all its values but the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexRow {
    ServiceName {
        service: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
    ServiceOperation {
        service: String,
        operation: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
    /// `operation` is `""` for the any-operation row.
    Duration {
        service: String,
        operation: String,
        hour: i64,
        duration: i64,
        start: i64,
        trace_id: TraceId,
    },
    Tag {
        service: String,
        key: String,
        value: String,
        bucket: i32,
        start: i64,
        trace_id: TraceId,
    },
}

/// Which partition a row lands in; rows of one partition share a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PartitionKey {
    pub(crate) table: IndexTable,
    parts: Vec<String>,
    number: i64,
}

impl IndexRow {
    pub(crate) fn table(&self) -> IndexTable {
        match self {
            Self::ServiceName { .. } => IndexTable::ServiceName,
            Self::ServiceOperation { .. } => IndexTable::ServiceOperation,
            Self::Duration { .. } => IndexTable::Duration,
            Self::Tag { .. } => IndexTable::Tag,
        }
    }

    pub(crate) fn partition(&self) -> PartitionKey {
        let (parts, number) = match self {
            Self::ServiceName {
                service, bucket, ..
            } => (vec![service.clone()], i64::from(*bucket)),
            Self::ServiceOperation {
                service,
                operation,
                bucket,
                ..
            } => (vec![service.clone(), operation.clone()], i64::from(*bucket)),
            Self::Duration {
                service,
                operation,
                hour,
                ..
            } => (vec![service.clone(), operation.clone()], *hour),
            Self::Tag {
                service,
                key,
                value,
                bucket,
                ..
            } => (
                vec![service.clone(), key.clone(), value.clone()],
                i64::from(*bucket),
            ),
        };
        PartitionKey {
            table: self.table(),
            parts,
            number,
        }
    }

    /// Bound values of the table's insert statement, TTL last.
    pub(crate) fn values(&self, ttl: i32) -> Vec<CqlValue> {
        let text = |s: &str| CqlValue::Text(s.to_owned());
        let id = |t: &TraceId| CqlValue::Blob(t.as_bytes().to_vec());
        let mut v = match self {
            Self::ServiceName {
                service,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::ServiceOperation {
                service,
                operation,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                text(operation),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::Duration {
                service,
                operation,
                hour,
                duration,
                start,
                trace_id,
            } => vec![
                text(service),
                text(operation),
                CqlValue::BigInt(*hour),
                CqlValue::BigInt(*duration),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
            Self::Tag {
                service,
                key,
                value,
                bucket,
                start,
                trace_id,
            } => vec![
                text(service),
                text(key),
                text(value),
                CqlValue::Int(*bucket),
                CqlValue::BigInt(*start),
                id(trace_id),
            ],
        };
        v.push(CqlValue::Int(ttl));
        v
    }

    /// Rough size on the wire, for batch sizing.
    pub(crate) fn approx_bytes(&self) -> usize {
        let texts = match self {
            Self::ServiceName { service, .. } => service.len(),
            Self::ServiceOperation {
                service, operation, ..
            }
            | Self::Duration {
                service, operation, ..
            } => service.len() + operation.len(),
            Self::Tag {
                service,
                key,
                value,
                ..
            } => service.len() + key.len() + value.len(),
        };
        texts + 48
    }
}

/// The index rows of one span: service, service+operation, duration under
/// its operation and under `""`, and one tag row per indexed `key=value`
/// (the same tags [`codec::search_tags`] gives the SQL backends).
pub(crate) fn index_rows(span: &Span, indexed: &IndexedTags) -> Vec<IndexRow> {
    let service = index_key(span.service_name()).to_owned();
    let operation = index_key(&span.name).to_owned();
    let start = clamp_i64(span.start_unix_nano);
    let duration = clamp_i64(span.duration_nanos());
    let hour = hour_bucket(span.start_unix_nano);
    let bucket = search_bucket(&span.trace_id);
    let trace_id = span.trace_id;
    let mut rows = vec![
        IndexRow::ServiceName {
            service: service.clone(),
            bucket,
            start,
            trace_id,
        },
        IndexRow::ServiceOperation {
            service: service.clone(),
            operation: operation.clone(),
            bucket,
            start,
            trace_id,
        },
        IndexRow::Duration {
            service: service.clone(),
            operation,
            hour,
            duration,
            start,
            trace_id,
        },
        IndexRow::Duration {
            service: service.clone(),
            operation: String::new(),
            hour,
            duration,
            start,
            trace_id,
        },
    ];
    let mut seen = BTreeSet::new();
    for (key, value) in codec::search_tags(span) {
        if !indexed.contains(key) {
            continue;
        }
        let key = index_key(key).to_owned();
        let value = index_key(&value).to_owned();
        if seen.insert((key.clone(), value.clone())) {
            rows.push(IndexRow::Tag {
                service: service.clone(),
                key,
                value,
                bucket,
                start,
                trace_id,
            });
        }
    }
    rows
}

/// Groups rows by partition and cuts each group into batches of at most
/// `max_rows` rows and about `max_bytes`. Returns indexes into `rows`.
pub(crate) fn partition_batches(
    rows: &[IndexRow],
    max_rows: usize,
    max_bytes: usize,
) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<PartitionKey, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        groups.entry(row.partition()).or_default().push(i);
    }
    let mut out = Vec::new();
    for members in groups.into_values() {
        let sizes: Vec<usize> = members.iter().map(|i| rows[*i].approx_bytes()).collect();
        for range in chunk_by_size(&sizes, max_rows, max_bytes) {
            out.push(members[range].to_vec());
        }
    }
    out
}

/// Consecutive ranges of `sizes` with at most `max_items` items and at most
/// `max_bytes` in total; an item larger than `max_bytes` goes alone.
pub(crate) fn chunk_by_size(
    sizes: &[usize],
    max_items: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let max_items = max_items.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start >= max_items || (i > start && bytes.saturating_add(*size) > max_bytes);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Bound values of the `spans` insert, TTL last.
pub(crate) fn span_values(span: &Span, body: Vec<u8>, ttl: i32) -> Vec<CqlValue> {
    vec![
        CqlValue::Blob(span.trace_id.as_bytes().to_vec()),
        CqlValue::Blob(span.span_id.as_bytes().to_vec()),
        CqlValue::BigInt(clamp_i64(span.start_unix_nano)),
        CqlValue::BigInt(clamp_i64(span.duration_nanos())),
        CqlValue::Text(span.service_name().to_owned()),
        CqlValue::Text(span.name.clone()),
        CqlValue::Int(span.kind.as_i32()),
        CqlValue::Text(span.cluster.as_str().to_owned()),
        CqlValue::Blob(body),
        CqlValue::Int(ttl),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use model::AttrValue;

    use super::*;
    use crate::testsuite::{MS, SpanBuilder, T0, trace_id};

    #[test]
    fn index_keys_are_cut_on_char_boundaries() {
        assert_eq!(index_key("short"), "short");
        let long = "é".repeat(MAX_KEY_BYTES);
        let cut = index_key(&long);
        assert!(cut.len() <= MAX_KEY_BYTES && cut.len() >= MAX_KEY_BYTES - 1);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn rows_for_a_span() {
        let span = SpanBuilder::new(7, 1, "api")
            .name("GET /x")
            .at(60_000, 25)
            .attr("http.status_code", AttrValue::Int(500))
            .attr("unindexed", AttrValue::Str("x".into()))
            .attr("custom", AttrValue::Str("c".into()))
            .error("boom")
            .build();
        let rows = index_rows(&span, &IndexedTags::new(&["custom".into()]));
        let start = clamp_i64(T0 + 60_000 * MS);
        let bucket = search_bucket(&trace_id(7));
        assert!((0..SEARCH_BUCKETS).contains(&bucket));
        assert_eq!(
            rows[0],
            IndexRow::ServiceName {
                service: "api".into(),
                bucket,
                start,
                trace_id: trace_id(7)
            }
        );
        let durations: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                IndexRow::Duration {
                    operation,
                    hour,
                    duration,
                    ..
                } => Some((operation.as_str(), *hour, *duration)),
                _ => None,
            })
            .collect();
        let hour = clamp_i64((T0 + 60_000 * MS) / HOUR_NANOS);
        assert_eq!(
            durations,
            [("GET /x", hour, 25 * MS as i64), ("", hour, 25 * MS as i64)]
        );
        let mut tags: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                IndexRow::Tag { key, value, .. } => Some(format!("{key}={value}")),
                _ => None,
            })
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            [
                "custom=c",
                "error=true",
                "http.status_code=500",
                "k8s.cluster.name=east",
                "k8s.namespace.name=shop",
                "otel.status_code=ERROR",
                "span.kind=server",
            ]
        );
    }

    #[test]
    fn rows_for_extreme_spans() {
        // Far future: beyond i64 nanoseconds (year 2262).
        let mut future = SpanBuilder::new(1, 1, "svc").build();
        future.start_unix_nano = u64::MAX - 5;
        future.end_unix_nano = u64::MAX;
        // Far past, and an end before the start.
        let mut past = SpanBuilder::new(2, 1, "svc").build();
        past.start_unix_nano = 0;
        past.end_unix_nano = 0;
        let mut inverted = SpanBuilder::new(3, 1, "svc").build();
        inverted.end_unix_nano = inverted.start_unix_nano - 1;
        // Huge names and values are cut for the index keys.
        let mut huge = SpanBuilder::new(4, 1, &"s".repeat(100_000))
            .attr("http.route", AttrValue::Str("r".repeat(200_000)))
            .build();
        huge.name = "o".repeat(70_000);
        let indexed = IndexedTags::new(&[]);
        for span in [&future, &past, &inverted, &huge] {
            for row in index_rows(span, &indexed) {
                assert!(row.approx_bytes() < 4 * MAX_KEY_BYTES);
                for v in row.values(1) {
                    match v {
                        CqlValue::BigInt(n) => assert!(n >= 0),
                        CqlValue::Text(t) => assert!(t.len() <= MAX_KEY_BYTES),
                        _ => {}
                    }
                }
            }
        }
        let v = span_values(&future, Vec::new(), 0);
        assert_eq!(v[2], CqlValue::BigInt(i64::MAX));
        assert_eq!(v[3], CqlValue::BigInt(5));
        assert_eq!(hour_bucket(u64::MAX), i64::MAX / HOUR_NANOS as i64);
        assert_eq!(span_values(&past, Vec::new(), 0)[2], CqlValue::BigInt(0));
        assert_eq!(
            span_values(&inverted, Vec::new(), 0)[3],
            CqlValue::BigInt(0)
        );
    }

    #[test]
    fn replayed_spans_land_in_the_same_rows() {
        let span = SpanBuilder::new(9, 1, "svc").build();
        let indexed = IndexedTags::new(&[]);
        assert_eq!(index_rows(&span, &indexed), index_rows(&span, &indexed));
    }

    #[test]
    fn batches_follow_partitions() {
        let indexed = IndexedTags::new(&[]);
        let rows: Vec<IndexRow> = (0..120u64)
            .flat_map(|i| index_rows(&SpanBuilder::new(10, i + 1, "svc").build(), &indexed))
            .collect();
        let batches = partition_batches(&rows, BATCH_ROWS, BATCH_BYTES);
        let mut seen = vec![false; rows.len()];
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= BATCH_ROWS);
            let p = rows[batch[0]].partition();
            for i in batch {
                assert_eq!(rows[*i].partition(), p);
                assert!(!seen[*i]);
                seen[*i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
        // One trace, one service: one partition per table, two for duration
        // (the operation and ''), three tags; 120 rows each, cut 50/50/20.
        let tables: BTreeSet<_> = batches.iter().map(|b| rows[b[0]].partition()).collect();
        assert_eq!(tables.len(), 1 + 1 + 2 + 3);
        assert_eq!(batches.len(), tables.len() * 3);
    }

    #[test]
    fn chunks() {
        assert_eq!(
            chunk_by_size(&[], 10, 100),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(chunk_by_size(&[1, 1, 1], 2, 100), [0..2, 2..3]);
        assert_eq!(
            chunk_by_size(&[60, 60, 10, 500, 1], 10, 100),
            [0..1, 1..3, 3..4, 4..5]
        );
        assert_eq!(chunk_by_size(&[1, 1], 0, 100), [0..1, 1..2]);
    }
}
