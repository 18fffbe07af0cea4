//! Cassandra (and ScyllaDB) backend, for the largest users.
//!
//! **Unverified**: no Cassandra server runs where this was written. The
//! pure parts (URL parsing, CQL text, TTLs, index rows, search plans, in
//! [`cql`]) are unit-tested; the conformance suite runs against a server
//! only when `MERIDIAN_TEST_CASSANDRA=host:port` is set
//! (`store/tests/cassandra.rs`), and has not been run yet.
//!
//! # Schema
//! `migrations/cassandra/0001_schema.cql`, applied at every open (all
//! `IF NOT EXISTS`) after creating the keyspace of the URL
//! (`cassandra://[USER:PASSWORD@]HOST[:PORT][,…]/KEYSPACE[?replication_factor=N]`,
//! SimpleStrategy, RF 1 by default). Jaeger-like: `spans` is partitioned by
//! trace id and holds the compressed body; `service_names` and
//! `operation_names` serve the lists; `service_name_index`,
//! `service_operation_index`, `duration_index` (per hour) and `tag_index`
//! (only the indexed keys: [`crate::DEFAULT_INDEXED_TAGS`] plus
//! `StoreOptions::indexed_tags`) serve search; `usage` counts spans and body
//! bytes per cluster and day.
//!
//! # Writes
//! Idempotent by key: every row is an upsert, and index rows never depend on
//! anything random. A write first reads which of the batch's span ids are
//! already stored (`span_id IN ?` per trace) and skips them; the count of
//! duplicates is exact for one writer and best-effort under concurrent
//! writers of the same spans (both may count a span as inserted). Index and
//! name rows are written first, `spans` rows last, so a stored span always
//! has its index rows and a retry after a failure rewrites whatever is
//! missing. Rows go in unlogged batches, one partition per batch (never a
//! multi-partition batch), with bounded concurrency; the session's default
//! consistency (LOCAL_QUORUM) is what "committed" means.
//!
//! # Retention
//! Cell TTLs: each span and its index rows get the TTL of the span's
//! cluster (`RetentionPolicy::ttl_hours`, none when it keeps spans forever),
//! counted from the write, not from the span's start (unlike the SQL
//! backends' cutoff). Name rows get the longest TTL of any cluster. So
//! `enforce_retention` has nothing to do and reports nothing.
//!
//! # Search
//! [`cql::plan`] picks one index: an indexed, narrow tag; else the duration
//! index when the query has a duration range and a window of at most a week;
//! else service+operation; else a broad indexed tag (`span.kind`, …); else
//! the service index. Without a service the search fans out over every
//! service. Candidate trace ids within the window are merged newest first
//! (at most 20 × limit, at most 10,000), their traces loaded, and each
//! confirmed with `TraceQuery::matches_span`: one span must match every
//! filter, which is exact Jaeger semantics. Filters the chosen index does not
//! cover (unindexed tag keys, span kind, long duration windows) are checked
//! only there — the documented slow path. Traces are ranked by their latest
//! matching span; loading stops once no remaining candidate can rank higher.
//! When the candidate bound was hit and fewer traces than the limit were
//! found, [`SpanStore::search`] says so in its warnings.
//!
//! # Usage
//! `storage_usage` sums the `usage` counters of the days still within each
//! cluster's TTL: spans and compressed body bytes written (not replicas,
//! index tables or compaction overhead). Counters are not idempotent, so a
//! counter update retried by the driver or lost in a crash skews them.

pub(crate) mod cql;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use model::{RetentionPolicy, Span, SpanId, SpanKind, Trace, TraceId, TraceQuery};
use scylla::{
    client::{session::Session, session_builder::SessionBuilder},
    deserialize::row::DeserializeRow,
    errors::{
        DbError, ExecutionError, NewSessionError, NextPageError, NextRowError, PagerExecutionError,
        PrepareError, RequestAttemptError, RequestError,
    },
    serialize::row::SerializeRow,
    statement::{
        batch::{Batch, BatchType},
        prepared::PreparedStatement,
    },
    value::{Counter, CqlValue},
};

use crate::{
    ClusterUsage, Operation, RetentionReport, SearchResult, ShardUsage, SpanStore, StoreError,
    StoreOptions, WriteOutcome, codec,
};
use cql::{IndexRow, IndexTable, IndexedTags, Lookup, Plan};

/// Requests in flight per store call.
const CONCURRENCY: usize = 32;
/// Span ids per `span_id IN ?` read.
const IN_LIST: usize = 100;
/// Name rows are rewritten (refreshing their TTL) at most this often.
const NAMES_CACHE_TTL: Duration = Duration::from_secs(600);

/// The Cassandra backend.
#[derive(Debug)]
pub struct CassandraStore {
    session: Session,
    stmts: Prepared,
    retention: RetentionPolicy,
    indexed: IndexedTags,
    /// Service and operation names written recently.
    names: moka::future::Cache<String, ()>,
}

#[derive(Debug)]
struct Prepared {
    insert_span: PreparedStatement,
    existing_spans: PreparedStatement,
    trace_bodies: PreparedStatement,
    insert_service_name: PreparedStatement,
    insert_operation_name: PreparedStatement,
    insert_service_name_index: PreparedStatement,
    insert_service_operation_index: PreparedStatement,
    insert_duration_index: PreparedStatement,
    insert_tag_index: PreparedStatement,
    add_usage: PreparedStatement,
    select_services: PreparedStatement,
    select_operations: PreparedStatement,
    select_operations_of_kind: PreparedStatement,
    query_service_name_index: PreparedStatement,
    query_service_operation_index: PreparedStatement,
    query_duration_index: PreparedStatement,
    query_tag_index: PreparedStatement,
    select_usage: PreparedStatement,
    ping: PreparedStatement,
}

impl Prepared {
    async fn new(session: &Session, s: &cql::Statements) -> Result<Self, StoreError> {
        let p = |text: &str| prepare(session, text.to_owned());
        Ok(Self {
            insert_span: p(&s.insert_span).await?,
            existing_spans: p(&s.existing_spans).await?,
            trace_bodies: p(&s.trace_bodies).await?,
            insert_service_name: p(&s.insert_service_name).await?,
            insert_operation_name: p(&s.insert_operation_name).await?,
            insert_service_name_index: p(&s.insert_service_name_index).await?,
            insert_service_operation_index: p(&s.insert_service_operation_index).await?,
            insert_duration_index: p(&s.insert_duration_index).await?,
            insert_tag_index: p(&s.insert_tag_index).await?,
            add_usage: {
                // Counter increments are not idempotent: never retried.
                let mut st = p(&s.add_usage).await?;
                st.set_is_idempotent(false);
                st
            },
            select_services: p(&s.select_services).await?,
            select_operations: p(&s.select_operations).await?,
            select_operations_of_kind: p(&s.select_operations_of_kind).await?,
            query_service_name_index: p(&s.query_service_name_index).await?,
            query_service_operation_index: p(&s.query_service_operation_index).await?,
            query_duration_index: p(&s.query_duration_index).await?,
            query_tag_index: p(&s.query_tag_index).await?,
            select_usage: p(&s.select_usage).await?,
            ping: p("SELECT release_version FROM system.local").await?,
        })
    }

    fn index_insert(&self, table: IndexTable) -> &PreparedStatement {
        match table {
            IndexTable::ServiceName => &self.insert_service_name_index,
            IndexTable::ServiceOperation => &self.insert_service_operation_index,
            IndexTable::Duration => &self.insert_duration_index,
            IndexTable::Tag => &self.insert_tag_index,
        }
    }

    fn index_query(&self, table: IndexTable) -> &PreparedStatement {
        match table {
            IndexTable::ServiceName => &self.query_service_name_index,
            IndexTable::ServiceOperation => &self.query_service_operation_index,
            IndexTable::Duration => &self.query_duration_index,
            IndexTable::Tag => &self.query_tag_index,
        }
    }
}

async fn prepare(session: &Session, text: String) -> Result<PreparedStatement, StoreError> {
    let mut st = session.prepare(text).await.map_err(|e| match e {
        PrepareError::ConnectionPoolError(_) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Migration(format!("preparing a statement: {other}")),
    })?;
    // Everything but the usage counters is an upsert or a read.
    st.set_is_idempotent(true);
    Ok(st)
}

fn attempt_retryable(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::WriteTimeout { .. }
                | DbError::RateLimitReached { .. }
        ),
        _ => false,
    }
}

fn exec_error(e: ExecutionError) -> StoreError {
    let retryable = match &e {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(a) => attempt_retryable(a),
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn request_error(e: &RequestError) -> bool {
    match e {
        RequestError::ConnectionPoolError(_)
        | RequestError::RequestTimeout(_)
        | RequestError::EmptyPlan => true,
        RequestError::LastAttemptError(a) => attempt_retryable(a),
        _ => false,
    }
}

fn page_error(e: &NextPageError) -> bool {
    matches!(e, NextPageError::RequestFailure(r) if request_error(r))
}

fn pager_error(e: PagerExecutionError) -> StoreError {
    let retryable = match &e {
        PagerExecutionError::NextPageError(p) => page_error(p),
        PagerExecutionError::PrepareError(PrepareError::ConnectionPoolError(_)) => true,
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn row_error(e: NextRowError) -> StoreError {
    match &e {
        NextRowError::NextPageError(p) if page_error(p) => StoreError::Unavailable(e.to_string()),
        NextRowError::RowDeserializationError(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

fn session_error(e: NewSessionError) -> StoreError {
    match e {
        NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => {
            StoreError::Config(e.to_string())
        }
        other => StoreError::Unavailable(format!("connecting to cassandra: {other}")),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn trace_id_of(bytes: &[u8]) -> Result<TraceId, StoreError> {
    TraceId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("trace id: {e}")))
}

impl CassandraStore {
    /// Connects to the URL's contact points, creates the keyspace and schema
    /// when missing, and prepares every statement.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let config = cql::parse_url(url)?;
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(Duration::from_secs(5));
        if let Some((user, password)) = &config.credentials {
            builder = builder.user(user, password);
        }
        let session = Box::pin(builder.build()).await.map_err(session_error)?;
        let migration = |e: ExecutionError| match exec_error(e) {
            StoreError::Backend(m) => StoreError::Migration(m),
            other => other,
        };
        session
            .query_unpaged(
                cql::create_keyspace(&config.keyspace, config.replication_factor),
                (),
            )
            .await
            .map_err(migration)?;
        session
            .use_keyspace(config.keyspace.as_str(), false)
            .await
            .map_err(|e| StoreError::Migration(format!("using the keyspace: {e}")))?;
        for statement in cql::schema_statements(cql::SCHEMA) {
            session
                .query_unpaged(statement, ())
                .await
                .map_err(migration)?;
        }
        let stmts = Prepared::new(&session, &cql::Statements::new(&config.keyspace)).await?;
        Ok(Self {
            session,
            stmts,
            retention: opts.retention.clone(),
            indexed: IndexedTags::new(&opts.indexed_tags),
            names: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(NAMES_CACHE_TTL)
                .build(),
        })
    }

    /// Every row of a (paged) read.
    async fn rows<T>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.session
            .execute_iter(st.clone(), values)
            .await
            .map_err(pager_error)?
            .rows_stream::<T>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map_err(row_error)
            .try_collect()
            .await
    }

    async fn exec(&self, st: &PreparedStatement, values: Vec<CqlValue>) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    /// One statement for every row of one partition: an unlogged batch, or
    /// a plain execute for a single row.
    async fn exec_partition(
        &self,
        st: &PreparedStatement,
        mut rows: Vec<Vec<CqlValue>>,
    ) -> Result<(), StoreError> {
        if rows.len() == 1 {
            let values = rows.pop().unwrap_or_default();
            return self.exec(st, values).await;
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        for _ in 0..rows.len() {
            batch.append_statement(st.clone());
        }
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, rows)
            .await
            .map(|_| ())
            .map_err(exec_error)
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

    /// The raw bodies of a trace.
    async fn bodies(&self, trace: TraceId) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self
            .rows(&self.stmts.trace_bodies, (trace.as_bytes().to_vec(),))
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    /// The traces of `ids`, in that order, spans sorted by start; traces
    /// with no stored span are omitted.
    async fn load_traces(&self, ids: &[TraceId]) -> Result<Vec<Trace>, StoreError> {
        let fetched: Vec<(TraceId, Vec<Vec<u8>>)> = stream::iter(ids.iter().copied())
            .map(|id| async move { Ok::<_, StoreError>((id, self.bodies(id).await?)) })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut decoder = codec::Decoder::new()?;
        let mut out = Vec::with_capacity(fetched.len());
        for (trace_id, bodies) in fetched {
            if bodies.is_empty() {
                continue;
            }
            let mut spans = bodies
                .iter()
                .map(|b| decoder.decode(b))
                .collect::<Result<Vec<_>, _>>()?;
            spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
            out.push(Trace { trace_id, spans });
        }
        Ok(out)
    }

    async fn write_names(&self, spans: &[&Span]) -> Result<Vec<String>, StoreError> {
        let ttl = cql::ttl_seconds(cql::names_ttl_hours(&self.retention), now_secs());
        // `true` for a service row, `false` for an operation row.
        let mut todo: BTreeMap<String, (bool, Vec<CqlValue>)> = BTreeMap::new();
        for span in spans {
            let service = cql::index_key(span.service_name());
            let operation = cql::index_key(&span.name);
            let key = format!("s\u{0}{service}");
            if !self.names.contains_key(&key) {
                todo.entry(key).or_insert_with(|| {
                    (
                        true,
                        vec![CqlValue::Text(service.to_owned()), CqlValue::Int(ttl)],
                    )
                });
            }
            let kind = span.kind.as_i32();
            let key = format!("o\u{0}{service}\u{0}{kind}\u{0}{operation}");
            if !self.names.contains_key(&key) {
                todo.entry(key).or_insert_with(|| {
                    (
                        false,
                        vec![
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
            .map(|(service, values)| {
                let st = if service {
                    &self.stmts.insert_service_name
                } else {
                    &self.stmts.insert_operation_name
                };
                self.exec(st, values)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(keys)
    }

    async fn write_new(&self, spans: &[&Span]) -> Result<(), StoreError> {
        let now = now_secs();
        let ttl_of = |s: &Span| cql::ttl_seconds(self.retention.ttl_hours(s.cluster.as_str()), now);

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
            for row in cql::index_rows(span, &self.indexed) {
                rows.push(row);
                row_ttls.push(ttl);
            }
        }
        let batches = cql::partition_batches(&rows, cql::BATCH_ROWS, cql::BATCH_BYTES);
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
            for range in cql::chunk_by_size(&sizes, cql::BATCH_ROWS, cql::BATCH_BYTES) {
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
                        cql::span_values(spans[*i], body, ttl_of(spans[*i]))
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
        let day = cql::day_bucket(now);
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

    /// Index rows `(start, trace id)` of one service for `plan`, each read
    /// capped at the plan's candidate bound. `true` when a read hit the cap.
    async fn candidates_of(
        &self,
        service: &str,
        plan: &Plan,
    ) -> Result<(Vec<(i64, TraceId)>, bool), StoreError> {
        let service = cql::index_key(service).to_owned();
        let cap = i32::try_from(plan.max_candidates).unwrap_or(i32::MAX);
        let (lo, hi) = (plan.start_min, plan.start_max);
        let reads: Vec<(IndexTable, Vec<CqlValue>)> = match &plan.lookup {
            Lookup::Duration {
                operation,
                hours,
                min,
                max,
            } => hours
                .iter()
                .map(|h| {
                    (
                        IndexTable::Duration,
                        vec![
                            CqlValue::Text(service.clone()),
                            CqlValue::Text(operation.clone()),
                            CqlValue::BigInt(*h),
                            CqlValue::BigInt(*min),
                            CqlValue::BigInt(*max),
                            CqlValue::Int(cap),
                        ],
                    )
                })
                .collect(),
            lookup => (0..cql::SEARCH_BUCKETS)
                .map(|bucket| {
                    let window = [
                        CqlValue::Int(bucket),
                        CqlValue::BigInt(lo),
                        CqlValue::BigInt(hi),
                        CqlValue::Int(cap),
                    ];
                    let (st, mut v) = match lookup {
                        Lookup::Tag { key, value } => (
                            IndexTable::Tag,
                            vec![
                                CqlValue::Text(service.clone()),
                                CqlValue::Text(key.clone()),
                                CqlValue::Text(value.clone()),
                            ],
                        ),
                        Lookup::ServiceOperation { operation } => (
                            IndexTable::ServiceOperation,
                            vec![
                                CqlValue::Text(service.clone()),
                                CqlValue::Text(operation.clone()),
                            ],
                        ),
                        _ => (
                            IndexTable::ServiceName,
                            vec![CqlValue::Text(service.clone())],
                        ),
                    };
                    v.extend(window);
                    (st, v)
                })
                .collect(),
        };
        let results: Vec<Vec<(i64, Vec<u8>)>> = stream::iter(reads)
            .map(|(table, values)| {
                self.rows::<(i64, Vec<u8>)>(self.stmts.index_query(table), values)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut hit_cap = false;
        let mut out = Vec::new();
        for rows in results {
            hit_cap |= rows.len() >= plan.max_candidates;
            for (start, id) in rows {
                // The duration index is not ordered by time: filter here.
                if (lo..=hi).contains(&start) {
                    out.push((start, trace_id_of(&id)?));
                }
            }
        }
        Ok((out, hit_cap))
    }

    /// The search proper: traces, and whether the candidate bound may have
    /// hidden some.
    async fn search_inner(&self, query: &TraceQuery) -> Result<(Vec<Trace>, bool), StoreError> {
        let Some(plan) = cql::plan(query, &self.indexed) else {
            return Ok((Vec::new(), false));
        };
        let services = match &query.service {
            Some(s) => vec![s.clone()],
            None => self.services().await?,
        };
        let mut truncated = false;
        let mut candidates: Vec<(i64, TraceId)> = Vec::new();
        let mut per_service = stream::iter(services)
            .map(|s| {
                let plan = &plan;
                async move { self.candidates_of(&s, plan).await }
            })
            .buffer_unordered(4);
        while let Some(found) = per_service.next().await {
            let (rows, hit_cap) = found?;
            truncated |= hit_cap;
            candidates.extend(rows);
            let (merged, cut) = cql::merge_candidates(candidates, plan.max_candidates);
            truncated |= cut;
            candidates = merged;
        }
        drop(per_service);

        // Confirm newest candidates first, in chunks, until settled.
        let chunk = query.limit.clamp(16, 256);
        let mut ranking = cql::Ranking::default();
        let mut traces: HashMap<TraceId, Trace> = HashMap::new();
        let mut next = 0;
        while next < candidates.len() {
            let ids: Vec<TraceId> = candidates[next..(next + chunk).min(candidates.len())]
                .iter()
                .map(|(_, id)| *id)
                .collect();
            next += ids.len();
            for trace in self.load_traces(&ids).await? {
                if let Some(latest) = cql::latest_match(query, &trace.spans) {
                    ranking.push(latest, trace.trace_id);
                    traces.insert(trace.trace_id, trace);
                }
            }
            if ranking.settled(query.limit, candidates.get(next).map(|c| c.0)) {
                break;
            }
        }
        let short = ranking.len() < query.limit;
        let out = ranking
            .top(query.limit)
            .into_iter()
            .filter_map(|id| traces.remove(&id))
            .collect();
        Ok((out, truncated && short))
    }
}

#[async_trait]
impl SpanStore for CassandraStore {
    async fn write(&self, spans: &[Span]) -> Result<WriteOutcome, StoreError> {
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

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        Ok(self.load_traces(&[trace_id]).await?.pop())
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        Ok(self.search_inner(query).await?.0)
    }

    async fn search(&self, query: &TraceQuery) -> Result<SearchResult, StoreError> {
        let (traces, truncated) = self.search_inner(query).await?;
        let mut warnings = Vec::new();
        if truncated {
            warnings.push(format!(
                "search stopped after {} candidate traces; older matching traces may be missing: narrow the time window or add filters",
                query
                    .limit
                    .saturating_mul(cql::CANDIDATES_PER_RESULT)
                    .min(cql::MAX_CANDIDATES)
            ));
        }
        Ok(SearchResult { traces, warnings })
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self.rows(&self.stmts.select_services, ()).await?;
        let mut out: Vec<String> = rows.into_iter().map(|(s,)| s).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let service = cql::index_key(service).to_owned();
        let rows: Vec<(i32, String)> = match span_kind {
            Some(kind) => {
                self.rows(
                    &self.stmts.select_operations_of_kind,
                    (service, kind.as_i32()),
                )
                .await?
            }
            None => self.rows(&self.stmts.select_operations, (service,)).await?,
        };
        let mut out: Vec<Operation> = rows
            .into_iter()
            .map(|(kind, name)| Operation {
                name,
                span_kind: SpanKind::from_otlp(kind),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.name.as_str(), a.span_kind.as_i32()).cmp(&(b.name.as_str(), b.span_kind.as_i32()))
        });
        Ok(out)
    }

    async fn storage_usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let rows: Vec<(String, i64, Option<Counter>, Option<Counter>)> =
            self.rows(&self.stmts.select_usage, ()).await?;
        let now = now_secs();
        let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (cluster, day, spans, bytes) in rows {
            if !cql::usage_day_live(day, self.retention.ttl_hours(&cluster), now) {
                continue;
            }
            let e = per.entry(cluster).or_default();
            let n = |c: Option<Counter>| u64::try_from(c.map_or(0, |c| c.0)).unwrap_or(0);
            e.0 = e.0.saturating_add(n(spans));
            e.1 = e.1.saturating_add(n(bytes));
        }
        let total: u64 = per.values().map(|v| v.1).fold(0, u64::saturating_add);
        let clusters: Vec<ClusterUsage> = per
            .into_iter()
            .map(|(cluster, (spans, body_bytes))| ClusterUsage {
                cluster,
                spans,
                body_bytes,
                estimated_bytes: body_bytes,
            })
            .collect();
        Ok(vec![ShardUsage {
            shard: "cassandra".into(),
            total_bytes: total,
            spans: clusters
                .iter()
                .map(|c| c.spans)
                .fold(0, u64::saturating_add),
            clusters,
            error: None,
        }])
    }

    /// Nothing to do: every row carries the TTL of its cluster from the
    /// moment it is written, and Cassandra drops expired cells in
    /// compaction. A changed policy applies to new writes only.
    async fn enforce_retention(
        &self,
        _policy: &RetentionPolicy,
        _now_unix_nano: u64,
    ) -> Result<RetentionReport, StoreError> {
        Ok(RetentionReport::default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.exec(&self.stmts.ping, Vec::new()).await
    }
}
