//! Batch writes: dictionary ids, then one transaction that locks the touched
//! trace summaries, skips spans already stored, upserts the summaries and
//! inserts the new chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use model::Span;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::clock::unix_nanos;

use super::stored::{HOT_TRACE_SPANS, Stored, probe_stored};
use super::{
    PgStore, backend_error, clamp_i64, day_of,
    dictionary::{CLUSTER, SERVICE},
    terms, today,
};
use crate::{StoreError, WriteOutcome, chunk};

pub(super) fn span_id_i64(span: &Span) -> i64 {
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
}

/// A batch grouped by (trace, day), with its dictionary ids resolved.
pub(super) struct Batch<'a> {
    pub(super) groups: BTreeMap<(&'a [u8], i32), Vec<&'a Span>>,
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
    let seen_in = spans
        .iter()
        .filter_map(|s| Some((batch.name_id(CLUSTER, s.cluster.as_str()), batch.op_id(s)?)))
        .collect();
    store.dict.cluster_ops(store.pool(), seen_in).await?;
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
    pub(super) chunks: ChunkRows,
    pub(super) usage: Usage,
    pub(super) inserted: u64,
}

/// Encodes the spans of `batch` not in `stored` (what each existing
/// (trace, day) summary holds).
pub(super) fn encode(
    store: &PgStore,
    batch: &Batch<'_>,
    stored: &HashMap<(Vec<u8>, i32), Stored>,
) -> Result<Encoded, StoreError> {
    let mut encoder = chunk::ChunkEncoder::new(3)?;
    let mut out = Encoded {
        summaries: Vec::with_capacity(batch.groups.len()),
        chunks: ChunkRows::default(),
        usage: BTreeMap::new(),
        inserted: 0,
    };
    let mut term_buf = Vec::new();
    for ((trace_id, day), spans) in &batch.groups {
        let held = stored.get(&(trace_id.to_vec(), *day));
        let fresh: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| held.is_none_or(|h| !h.ids.contains(&span_id_i64(s))))
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
        });
        for (cluster, part) in clusters {
            let body = encoder.encode(&part)?;
            let last = part
                .iter()
                .map(|s| clamp_i64(s.start_unix_nano))
                .max()
                .unwrap_or(0);
            let u = out.usage.entry((*day, cluster)).or_default();
            u.0 += part.len() as i64;
            u.1 += body.len() as i64;
            let c = &mut out.chunks;
            c.day.push(*day);
            c.trace_id.push(trace_id.to_vec());
            c.cluster.push(cluster);
            c.span_count
                .push(i32::try_from(part.len()).unwrap_or(i32::MAX));
            c.last_ns.push(last);
            c.body.push(body);
            c.span_ids
                .push(part.iter().map(|s| span_id_i64(s)).collect());
            // Counted with this write's spans, so that one huge first
            // write is indexed too.
            let before = held.map_or(0, |h| h.spans);
            c.hot.push(before + fresh.len() as i64 > HOT_TRACE_SPANS);
        }
    }
    Ok(out)
}

/// The chunk rows of a batch, column by column.
#[derive(Debug, Default)]
pub(super) struct ChunkRows {
    pub(super) day: Vec<i32>,
    pub(super) trace_id: Vec<Vec<u8>>,
    pub(super) cluster: Vec<i32>,
    pub(super) span_count: Vec<i32>,
    pub(super) last_ns: Vec<i64>,
    pub(super) body: Vec<Vec<u8>>,
    pub(super) span_ids: Vec<Vec<i64>>,
    pub(super) hot: Vec<bool>,
}

/// One statement for all of a batch's chunk rows. Not `COPY`: sqlx flushes
/// the `CopyData` and the `CopyDone` messages separately and does not set
/// TCP_NODELAY, so Nagle's algorithm held every `CopyDone` until the
/// server's delayed ACK, about 40 ms per write transaction (measured:
/// BENCHMARKS.md, "Hot traces"). Bind, execute and sync go in one write.
const INSERT_CHUNKS: &str = "INSERT INTO chunks (day, trace_id, cluster, span_count, last_ns, body, span_ids, hot) \
     SELECT v.day, v.trace_id, v.cluster, v.n, v.last_ns, v.body, v.span_ids::bigint[], v.hot \
     FROM unnest($1::integer[], $2::bytea[], $3::integer[], $4::integer[], $5::bigint[], \
       $6::bytea[], $7::text[], $8::boolean[]) AS v(day, trace_id, cluster, n, last_ns, body, span_ids, hot)";

async fn write_tx(store: &PgStore, batch: &Batch<'_>) -> Result<(u64, Usage), StoreError> {
    let mut tx: Transaction<'_, Postgres> = store.pool().begin().await.map_err(backend_error)?;

    // Lock the summaries that exist. The keys are sorted (BTreeMap), so
    // concurrent writers lock in one order. Every writer of a trace takes
    // this lock before it looks for the trace's stored spans, so what the
    // probe below finds cannot change until we commit. `span_ids` is
    // non-empty only in rows written before migration 0003.
    let ids: Vec<&[u8]> = batch.groups.keys().map(|k| k.0).collect();
    let days: Vec<i32> = batch.groups.keys().map(|k| k.1).collect();
    let existing: Vec<(Vec<u8>, i32, i32, Vec<i64>)> = sqlx::query_as(
        "SELECT t.trace_id, t.day, t.span_count, t.span_ids FROM traces t \
         JOIN unnest($1::bytea[], $2::integer[]) AS k(trace_id, day) \
           ON t.trace_id = k.trace_id AND t.day = k.day \
         ORDER BY t.trace_id, t.day FOR UPDATE OF t",
    )
    .bind(&ids)
    .bind(&days)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend_error)?;
    let mut stored: HashMap<(Vec<u8>, i32), Stored> = existing
        .into_iter()
        .map(|(id, day, spans, ids)| {
            let held = Stored {
                spans: i64::from(spans),
                ids: ids.into_iter().collect(),
            };
            ((id, day), held)
        })
        .collect();
    if !stored.is_empty() {
        probe_stored(&mut tx, batch, &mut stored).await?;
    }

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
    let (old, new): (Vec<&Summary>, Vec<&Summary>) = summaries
        .iter()
        .partition(|s| stored.contains_key(&(s.trace_id.clone(), s.day)));
    let mut returned: Vec<(i32, i64)> = Vec::with_capacity(summaries.len());
    if !old.is_empty() {
        // Rows we hold locked: merge the new spans' contribution.
        let updated: Vec<(i32, i64)> = bind_summaries(
                sqlx::query_as(
                    "UPDATE traces AS t SET \
                       first_ns = LEAST(t.first_ns, v.first_ns), \
                       last_ns = GREATEST(t.last_ns, v.last_ns), \
                       max_duration_ns = GREATEST(t.max_duration_ns, v.max_dur), \
                       span_count = t.span_count + v.n, \
                       error_count = t.error_count + v.errs, \
                       root_op = COALESCE(t.root_op, v.root_op), \
                       clusters = ARRAY(SELECT DISTINCT c FROM unnest(t.clusters || v.clusters::integer[]) c ORDER BY c), \
                       terms = ARRAY(SELECT DISTINCT x FROM unnest(t.terms || v.terms::integer[]) x ORDER BY x) \
                     FROM unnest($1::integer[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], \
                       $6::integer[], $7::integer[], $8::integer[], $9::text[], $10::text[]) \
                       AS v(day, trace_id, first_ns, last_ns, max_dur, n, errs, root_op, clusters, terms) \
                     WHERE t.trace_id = v.trace_id AND t.day = v.day \
                     RETURNING t.day, t.last_ns - t.first_ns",
                ),
                &old,
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(backend_error)?;
        if updated.len() != old.len() {
            return Err(StoreError::Backend(format!(
                "{} of {} locked trace summaries updated",
                updated.len(),
                old.len()
            )));
        }
        returned.extend(updated);
    }
    if !new.is_empty() {
        let created: Vec<(i32, i64)> = bind_summaries(
            sqlx::query_as(
                "INSERT INTO traces AS t (day, trace_id, first_ns, last_ns, max_duration_ns, span_count, \
                   error_count, root_op, clusters, terms, span_ids) \
                 SELECT v.day, v.trace_id, v.first_ns, v.last_ns, v.max_dur, v.n, v.errs, v.root_op, \
                   v.clusters::integer[], v.terms::integer[], '{}'::bigint[] \
                 FROM unnest($1::integer[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], \
                   $6::integer[], $7::integer[], $8::integer[], $9::text[], $10::text[]) \
                   AS v(day, trace_id, first_ns, last_ns, max_dur, n, errs, root_op, clusters, terms) \
                 ON CONFLICT (trace_id, day) DO NOTHING \
                 RETURNING t.day, t.last_ns - t.first_ns",
            ),
            &new,
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend_error)?;
        if created.len() != new.len() {
            // Another writer created one of these traces between our lock
            // and our insert, and we have not checked its spans. Nothing is
            // committed; the retry locks the row and skips what it holds.
            return Err(StoreError::Unavailable(
                "a concurrent write created some of these traces first; retry".into(),
            ));
        }
        returned.extend(created);
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

    sqlx::query(INSERT_CHUNKS)
        .bind(&chunks.day)
        .bind(&chunks.trace_id)
        .bind(&chunks.cluster)
        .bind(&chunks.span_count)
        .bind(&chunks.last_ns)
        .bind(&chunks.body)
        .bind(
            chunks
                .span_ids
                .iter()
                .map(array_literal)
                .collect::<Vec<_>>(),
        )
        .bind(&chunks.hot)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
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

/// Binds a summary slice as the ten arrays `$1`…`$10` (day, trace id,
/// first, last, longest duration, spans, errors, root operation, clusters,
/// terms) of an `unnest` in `query`.
fn bind_summaries<'q, O>(
    query: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    rows: &[&'q Summary],
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(rows.iter().map(|s| s.day).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|s| s.trace_id.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|s| s.first_ns).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.last_ns).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.max_duration).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.count).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.errors).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.root_op).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.clusters.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.terms.as_str()).collect::<Vec<_>>())
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
