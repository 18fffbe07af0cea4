//! Search: candidates from the index the plan picks, merged newest first,
//! then confirmed on the loaded traces until no candidate can rank higher.

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use model::{Trace, TraceId, TraceQuery, access::Scope};
use scylla::value::CqlValue;

use super::{
    CONCURRENCY, CassandraStore,
    plan::{self, Lookup, Plan},
    rows::{self, IndexTable},
};
use crate::{SearchResult, StoreError};

fn trace_id_of(bytes: &[u8]) -> Result<TraceId, StoreError> {
    TraceId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("trace id: {e}")))
}

impl CassandraStore {
    /// Index rows `(start, trace id)` of one service for `plan`, each read
    /// capped at the plan's candidate bound. `true` when a read hit the cap.
    async fn candidates_of(
        &self,
        service: &str,
        plan: &Plan,
    ) -> Result<(Vec<(i64, TraceId)>, bool), StoreError> {
        let service = rows::index_key(service).to_owned();
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
            lookup => (0..rows::SEARCH_BUCKETS)
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
    pub(super) async fn search_inner(
        &self,
        query: &TraceQuery,
    ) -> Result<(Vec<Trace>, bool), StoreError> {
        let Some(plan) = plan::plan(query, &self.indexed) else {
            return Ok((Vec::new(), false));
        };
        // Candidates come from every service's index rows (rows written
        // before `cluster_operation_names` existed name no cluster); the
        // scope is checked on each candidate's spans (`latest_match`)
        // before the limit, so a trace with no span in scope is never
        // counted.
        let services = match &query.service {
            Some(s) => vec![s.clone()],
            None => self.list_services(&Scope::All).await?,
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
            let (merged, cut) = plan::merge_candidates(candidates, plan.max_candidates);
            truncated |= cut;
            candidates = merged;
        }
        drop(per_service);

        // Confirm newest candidates first, in chunks, until settled.
        let chunk = query.limit.clamp(16, 256);
        let mut ranking = plan::Ranking::default();
        let mut traces: HashMap<TraceId, Trace> = HashMap::new();
        let mut next = 0;
        while next < candidates.len() {
            let ids: Vec<TraceId> = candidates[next..(next + chunk).min(candidates.len())]
                .iter()
                .map(|(_, id)| *id)
                .collect();
            next += ids.len();
            for trace in self.load_traces(&ids).await? {
                if let Some(latest) = plan::latest_match(query, &trace.spans) {
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

    /// [`Self::search_inner`], saying when the candidate bound may have
    /// hidden older matches.
    pub(super) async fn search_with_warnings(
        &self,
        query: &TraceQuery,
    ) -> Result<SearchResult, StoreError> {
        let (traces, truncated) = self.search_inner(query).await?;
        let mut warnings = Vec::new();
        if truncated {
            warnings.push(format!(
                "search stopped after {} candidate traces; older matching traces may be missing: narrow the time window or add filters",
                query
                    .limit
                    .saturating_mul(plan::CANDIDATES_PER_RESULT)
                    .min(plan::MAX_CANDIDATES)
            ));
        }
        Ok(SearchResult { traces, warnings })
    }
}
