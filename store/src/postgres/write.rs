//! Batch writes: dictionary ids, then one transaction that locks the touched
//! trace summaries, skips spans already stored, upserts the summaries and
//! COPYs the new chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use model::Span;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::clock::unix_nanos;

use super::{
    PgStore, backend_error, clamp_i64,
    copy::BinaryCopy,
    day_of,
    dictionary::{CLUSTER, SERVICE},
    terms, today,
};
use crate::{StoreError, WriteOutcome, chunk};

fn span_id_i64(span: &Span) -> i64 {
    i64::from_be_bytes(*span.span_id.as_bytes())
}

fn kind_i16(span: &Span) -> i16 {
    i16::try_from(span.kind.as_i32()).unwrap_or(0)
}

/// `{1,2,3}`: the text form of an array literal, cast in SQL. Arrays of
/// different lengths per row cannot be passed as one 2-D array.
fn array_literal<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut s = String::from("{");
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

/// A summary row's contribution from the new spans of one (trace, day).
pub(super) struct Summary {
    pub(super) day: i32,
    pub(super) trace_id: Vec<u8>,
    pub(super) first_ns: i64,
    pub(super) last_ns: i64,
    pub(super) max_duration: i64,
    pub(super) count: i32,
    pub(super) errors: i32,
    pub(super) root_op: Option<i32>,
    pub(super) clusters: String,
    pub(super) terms: String,
    pub(super) span_ids: String,
}

/// A batch grouped by (trace, day), with its dictionary ids resolved.
pub(super) struct Batch<'a> {
    groups: BTreeMap<(&'a [u8], i32), Vec<&'a Span>>,
    names: HashMap<(i16, String), i32>,
    ops: HashMap<(i32, String, i16), i32>,
    days: BTreeSet<i32>,
}

impl Batch<'_> {
    fn name_id(&self, kind: i16, name: &str) -> i32 {
        self.names
            .get(&(kind, name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn op_id(&self, s: &Span) -> Option<i32> {
        let service = self.name_id(SERVICE, s.service_name());
        self.ops
            .get(&(service, s.name.clone(), kind_i16(s)))
            .copied()
    }
}

/// Groups `spans` (dropping repeats inside the batch), resolves their
/// dictionary ids and creates the partitions they need. Dictionary rows
/// and partitions are idempotent, so creating them for a batch that later
/// fails is harmless.
pub(super) async fn prepare<'a>(
    store: &PgStore,
    spans: &'a [Span],
) -> Result<Batch<'a>, StoreError> {
    let today = today(unix_nanos());
    let mut groups: BTreeMap<(&[u8], i32), Vec<&Span>> = BTreeMap::new();
    let mut seen: HashSet<(&[u8], i64)> = HashSet::with_capacity(spans.len());
    for span in spans {
        if !seen.insert((span.trace_id.as_bytes().as_slice(), span_id_i64(span))) {
            continue;
        }
        groups
            .entry((
                span.trace_id.as_bytes().as_slice(),
                day_of(span.start_unix_nano, today),
            ))
            .or_default()
            .push(span);
    }
    let names = store
        .dict
        .names(
            store.pool(),
            spans
                .iter()
                .flat_map(|s| [(SERVICE, s.service_name()), (CLUSTER, s.cluster.as_str())])
                .collect(),
        )
        .await?;
    let mut batch = Batch {
        days: groups.keys().map(|k| k.1).collect(),
        groups,
        names,
        ops: HashMap::new(),
    };
    let wanted = spans
        .iter()
        .map(|s| {
            (
                batch.name_id(SERVICE, s.service_name()),
                s.name.as_str(),
                kind_i16(s),
            )
        })
        .collect();
    batch.ops = store.dict.ops(store.pool(), wanted).await?;
    store.ensure_partitions(&batch.days).await?;
    Ok(batch)
}

pub(crate) async fn write(store: &PgStore, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
    if spans.is_empty() {
        return Ok(WriteOutcome::default());
    }
    let batch = prepare(store, spans).await?;
    let result = write_tx(store, &batch).await;
    if let Err(StoreError::Backend(msg)) = &result
        && msg.contains("no partition")
    {
        // Retention dropped a partition we thought existed.
        store.forget_partitions(batch.days.iter().copied()).await;
        return Err(StoreError::Unavailable(msg.clone()));
    }
    let (inserted, usage) = result?;
    record_usage(store.pool(), usage).await;
    Ok(WriteOutcome {
        inserted,
        duplicates: spans.len() as u64 - inserted,
    })
}

pub(super) type Usage = BTreeMap<(i32, i32), (i64, i64)>;

/// The rows a batch adds: summary contributions and chunk COPY data.
pub(super) struct Encoded {
    pub(super) summaries: Vec<Summary>,
    pub(super) chunks: BinaryCopy,
    pub(super) usage: Usage,
    pub(super) inserted: u64,
}

/// Encodes the spans of `batch` not in `stored` (span ids per existing
/// (trace, day) summary).
pub(super) fn encode(
    store: &PgStore,
    batch: &Batch<'_>,
    stored: &HashMap<(Vec<u8>, i32), HashSet<i64>>,
) -> Result<Encoded, StoreError> {
    let mut encoder = chunk::ChunkEncoder::new(3)?;
    let mut out = Encoded {
        summaries: Vec::with_capacity(batch.groups.len()),
        chunks: BinaryCopy::new(),
        usage: BTreeMap::new(),
        inserted: 0,
    };
    let mut term_buf = Vec::new();
    for ((trace_id, day), spans) in &batch.groups {
        let held = stored.get(&(trace_id.to_vec(), *day));
        let fresh: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| held.is_none_or(|h| !h.contains(&span_id_i64(s))))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        out.inserted += fresh.len() as u64;
        term_buf.clear();
        let mut clusters: BTreeMap<i32, Vec<&Span>> = BTreeMap::new();
        for s in &fresh {
            terms::span_terms(s, &store.indexed, &mut term_buf);
            clusters
                .entry(batch.name_id(CLUSTER, s.cluster.as_str()))
                .or_default()
                .push(s);
        }
        term_buf.sort_unstable();
        term_buf.dedup();
        out.summaries.push(Summary {
            day: *day,
            trace_id: trace_id.to_vec(),
            first_ns: fresh
                .iter()
                .map(|s| clamp_i64(s.start_unix_nano))
                .min()
                .unwrap_or(0),
            last_ns: fresh
                .iter()
                .map(|s| clamp_i64(s.start_unix_nano))
                .max()
                .unwrap_or(0),
            max_duration: fresh
                .iter()
                .map(|s| clamp_i64(s.duration_nanos()))
                .max()
                .unwrap_or(0),
            count: i32::try_from(fresh.len()).unwrap_or(i32::MAX),
            errors: i32::try_from(fresh.iter().filter(|s| s.is_error()).count())
                .unwrap_or(i32::MAX),
            root_op: fresh
                .iter()
                .find(|s| s.parent_span_id.is_none())
                .and_then(|s| batch.op_id(s)),
            clusters: array_literal(clusters.keys()),
            terms: array_literal(&term_buf),
            span_ids: array_literal(fresh.iter().map(|s| span_id_i64(s))),
        });
        for (cluster, part) in clusters {
            let body = encoder.encode(&part)?;
            let last = part
                .iter()
                .map(|s| clamp_i64(s.start_unix_nano))
                .max()
                .unwrap_or(0);
            out.chunks
                .row(6)
                .int4(*day)
                .bytea(trace_id)
                .int4(cluster)
                .int4(i32::try_from(part.len()).unwrap_or(i32::MAX))
                .int8(last)
                .bytea(&body);
            let u = out.usage.entry((*day, cluster)).or_default();
            u.0 += part.len() as i64;
            u.1 += body.len() as i64;
        }
    }
    Ok(out)
}

pub(super) const COPY_CHUNKS: &str =
    "COPY chunks (day, trace_id, cluster, span_count, last_ns, body) FROM STDIN (FORMAT binary)";

async fn write_tx(store: &PgStore, batch: &Batch<'_>) -> Result<(u64, Usage), StoreError> {
    let mut tx: Transaction<'_, Postgres> = store.pool().begin().await.map_err(backend_error)?;

    // Lock the summaries that exist and learn which spans they hold. The
    // keys are sorted (BTreeMap), so concurrent writers lock in one order.
    let ids: Vec<&[u8]> = batch.groups.keys().map(|k| k.0).collect();
    let days: Vec<i32> = batch.groups.keys().map(|k| k.1).collect();
    let existing: Vec<(Vec<u8>, i32, Vec<i64>)> = sqlx::query_as(
        "SELECT t.trace_id, t.day, t.span_ids FROM traces t \
         JOIN unnest($1::bytea[], $2::integer[]) AS k(trace_id, day) \
           ON t.trace_id = k.trace_id AND t.day = k.day \
         ORDER BY t.trace_id, t.day FOR UPDATE OF t",
    )
    .bind(&ids)
    .bind(&days)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend_error)?;
    let stored: HashMap<(Vec<u8>, i32), HashSet<i64>> = existing
        .into_iter()
        .map(|(id, day, spans)| ((id, day), spans.into_iter().collect()))
        .collect();

    let Encoded {
        summaries,
        chunks,
        usage,
        inserted,
    } = encode(store, batch, &stored)?;
    if summaries.is_empty() {
        tx.commit().await.map_err(backend_error)?;
        return Ok((0, usage));
    }
    let returned: Vec<(i32, i64)> = sqlx::query_as(
        "INSERT INTO traces AS t (day, trace_id, first_ns, last_ns, max_duration_ns, span_count, \
           error_count, root_op, clusters, terms, span_ids) \
         SELECT v.day, v.trace_id, v.first_ns, v.last_ns, v.max_dur, v.n, v.errs, v.root_op, \
           v.clusters::integer[], v.terms::integer[], v.span_ids::bigint[] \
         FROM unnest($1::integer[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], \
           $6::integer[], $7::integer[], $8::integer[], $9::text[], $10::text[], $11::text[]) \
           AS v(day, trace_id, first_ns, last_ns, max_dur, n, errs, root_op, clusters, terms, span_ids) \
         ON CONFLICT (trace_id, day) DO UPDATE SET \
           first_ns = LEAST(t.first_ns, EXCLUDED.first_ns), \
           last_ns = GREATEST(t.last_ns, EXCLUDED.last_ns), \
           max_duration_ns = GREATEST(t.max_duration_ns, EXCLUDED.max_duration_ns), \
           span_count = t.span_count + EXCLUDED.span_count, \
           error_count = t.error_count + EXCLUDED.error_count, \
           root_op = COALESCE(t.root_op, EXCLUDED.root_op), \
           clusters = ARRAY(SELECT DISTINCT c FROM unnest(t.clusters || EXCLUDED.clusters) c ORDER BY c), \
           terms = ARRAY(SELECT DISTINCT x FROM unnest(t.terms || EXCLUDED.terms) x ORDER BY x), \
           span_ids = t.span_ids || EXCLUDED.span_ids \
         WHERE NOT (t.span_ids && EXCLUDED.span_ids) \
         RETURNING t.day, t.last_ns - t.first_ns",
    )
    .bind(summaries.iter().map(|s| s.day).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.trace_id.as_slice()).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.first_ns).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.last_ns).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.max_duration).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.count).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.errors).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.root_op).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.clusters.as_str()).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.terms.as_str()).collect::<Vec<_>>())
    .bind(summaries.iter().map(|s| s.span_ids.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await
    .map_err(backend_error)?;
    if returned.len() != summaries.len() {
        // Another writer stored some of these spans between our lock and
        // our insert (a replay racing its original). Nothing is committed;
        // the retry sees their spans and skips them.
        return Err(StoreError::Unavailable(
            "a concurrent write stored some of these spans first; retry".into(),
        ));
    }
    // Searches bound their scan by the longest extent of a summary row of
    // the day; record a longer one in the same transaction, so no reader
    // sees a row its bound would miss.
    let mut longest: BTreeMap<i32, i64> = BTreeMap::new();
    for (day, extent) in returned {
        let e = longest.entry(day).or_default();
        *e = (*e).max(extent);
    }
    let grown: Vec<(i32, i64)> = {
        let known = store.extents.lock().await;
        longest
            .into_iter()
            .filter(|(day, extent)| known.get(day).is_none_or(|k| extent > k))
            .collect()
    };
    if !grown.is_empty() {
        sqlx::query(
            "INSERT INTO day_extent (day, max_extent) \
             SELECT * FROM unnest($1::integer[], $2::bigint[]) \
             ON CONFLICT (day) DO UPDATE \
               SET max_extent = GREATEST(day_extent.max_extent, EXCLUDED.max_extent)",
        )
        .bind(grown.iter().map(|g| g.0).collect::<Vec<_>>())
        .bind(grown.iter().map(|g| g.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
    }

    let mut sink = tx.copy_in_raw(COPY_CHUNKS).await.map_err(backend_error)?;
    sink.send(chunks.finish()).await.map_err(backend_error)?;
    sink.finish().await.map_err(backend_error)?;
    tx.commit().await.map_err(backend_error)?;
    if !grown.is_empty() {
        let mut known = store.extents.lock().await;
        for (day, extent) in grown {
            let k = known.entry(day).or_default();
            *k = (*k).max(extent);
        }
    }
    Ok((inserted, usage))
}

/// Adds the batch to the per-day, per-cluster usage counters. After the
/// commit and outside it: the hot counter rows must not serialise writers.
/// A failure here, or a crash between the commit and this, leaves the
/// storage figure short for good (the spans are stored; a replay finds
/// them present and counts nothing); a failure is logged.
async fn record_usage(pool: &PgPool, usage: Usage) {
    if usage.is_empty() {
        return;
    }
    let days: Vec<i32> = usage.keys().map(|k| k.0).collect();
    let clusters: Vec<i32> = usage.keys().map(|k| k.1).collect();
    let spans: Vec<i64> = usage.values().map(|v| v.0).collect();
    let bytes: Vec<i64> = usage.values().map(|v| v.1).collect();
    let done = sqlx::query(
        "INSERT INTO usage (day, cluster, spans, body_bytes) \
         SELECT * FROM unnest($1::integer[], $2::integer[], $3::bigint[], $4::bigint[]) \
         ON CONFLICT (day, cluster) DO UPDATE SET spans = usage.spans + EXCLUDED.spans, \
           body_bytes = usage.body_bytes + EXCLUDED.body_bytes",
    )
    .bind(&days)
    .bind(&clusters)
    .bind(&spans)
    .bind(&bytes)
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "storage usage counters not updated");
    }
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals() {
        assert_eq!(array_literal(Vec::<i32>::new()), "{}");
        assert_eq!(array_literal([-1i64, 2, 3]), "{-1,2,3}");
    }
}
