//! Reads: traces by id, the service and operation lists, and storage
//! usage from the daily counters.

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use model::{SpanKind, Trace, TraceId, access::Scope};
use scylla::value::Counter;
use telemetry::clock::unix_secs;

use super::{CONCURRENCY, CassandraStore, rows, ttl};
use crate::{ClusterUsage, Operation, ShardUsage, StoreError, codec};

impl CassandraStore {
    /// The raw bodies of a trace.
    async fn bodies(&self, trace: TraceId) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self
            .rows(&self.stmts.trace_bodies, (trace.as_bytes().to_vec(),))
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    /// The traces of `ids`, in that order, spans sorted by start; traces
    /// with no stored span are omitted.
    pub(super) async fn load_traces(&self, ids: &[TraceId]) -> Result<Vec<Trace>, StoreError> {
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

    /// At most `cap` spans of a trace: the first `cap + 1` rows of its
    /// partition (paging stops there), sorted by start. Unverified here
    /// (no Cassandra server), like the rest of this backend.
    pub(super) async fn load_trace_capped(
        &self,
        trace: TraceId,
        cap: usize,
    ) -> Result<Option<crate::CappedTrace>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self
            .rows_at_most(
                &self.stmts.trace_bodies,
                (trace.as_bytes().to_vec(),),
                cap.saturating_add(1),
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut decoder = codec::Decoder::new()?;
        let mut spans = rows
            .iter()
            .map(|(b,)| decoder.decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        spans.sort_by_key(|s| (s.start_unix_nano, *s.span_id.as_bytes()));
        Ok(Some(crate::CappedTrace::cap(
            Trace {
                trace_id: trace,
                spans,
            },
            cap,
        )))
    }

    pub(super) async fn list_services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = match scope.clusters() {
            None => self.rows(&self.stmts.select_services, ()).await?,
            Some(clusters) => {
                let mut all = Vec::new();
                for cluster in clusters {
                    all.extend(
                        self.rows::<(String,)>(
                            &self.stmts.select_cluster_services,
                            (cluster.clone(),),
                        )
                        .await?,
                    );
                }
                all
            }
        };
        let mut out: Vec<String> = rows.into_iter().map(|(s,)| s).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub(super) async fn list_operations(
        &self,
        service: &str,
        span_kind: Option<SpanKind>,
        scope: &Scope,
    ) -> Result<Vec<Operation>, StoreError> {
        let service = rows::index_key(service).to_owned();
        let rows: Vec<(i32, String)> = match (scope.clusters(), span_kind) {
            (Some(clusters), _) => {
                let mut all = Vec::new();
                for cluster in clusters {
                    all.extend(
                        self.rows::<(i32, String)>(
                            &self.stmts.select_cluster_operations,
                            (cluster.clone(), service.clone()),
                        )
                        .await?
                        .into_iter()
                        .filter(|(kind, _)| span_kind.is_none_or(|k| k.as_i32() == *kind)),
                    );
                }
                all
            }
            (None, Some(kind)) => {
                self.rows(
                    &self.stmts.select_operations_of_kind,
                    (service, kind.as_i32()),
                )
                .await?
            }
            (None, None) => self.rows(&self.stmts.select_operations, (service,)).await?,
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
        out.dedup();
        Ok(out)
    }

    pub(super) async fn usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let rows: Vec<(String, i64, Option<Counter>, Option<Counter>)> =
            self.rows(&self.stmts.select_usage, ()).await?;
        let now = unix_secs();
        let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (cluster, day, spans, bytes) in rows {
            if !ttl::usage_day_live(day, self.retention.ttl_hours(&cluster), now) {
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
}
