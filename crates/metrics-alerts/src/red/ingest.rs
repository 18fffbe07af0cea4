//! `metrics.proto` `ForwardWindows`: agents' RED windows into the store.
//!
//! Identity as for `Forward`: the cluster is the client certificate's and
//! the request's `cluster` must equal it. Every series of every window is
//! stored as a `Red10s` record keyed by (cluster, series, window start,
//! agent.epoch) — a replay of the same window replaces the record — and the
//! agent is answered only after the store committed (it then releases the
//! windows from its buffer). Invalid series (inconsistent sketch) refuse
//! the whole batch with INVALID_ARGUMENT: the agent drops it, as retrying
//! cannot help.
//!
//! Admission: before decoding, a request reserves its uncompressed size
//! (as declared, at most `max_payload_bytes`) from a byte budget, the
//! federation port's `--max-inflight-bytes` in the gateway (shared with
//! `Forward`); over it the request is refused with RESOURCE_EXHAUSTED +
//! RetryInfo and the agent keeps its windows.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use model::red::SeriesKey;
use proto::metrics::{
    ForwardWindowsRequest, ForwardWindowsResponse, WindowBatch, metrics_server::Metrics,
};
use store::{Record, RecordKind, SpanStore, StoreError};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{keys, prom::RedProm};
use mtls::{Identity, identity_of};
use telemetry::budget::ByteBudget;

/// Series one request may carry (a 10 s window of a large cluster is a
/// few thousand).
pub const MAX_SERIES_PER_REQUEST: usize = 200_000;
/// Agents per cluster whose last counted sequence is remembered for
/// `/metrics` (replay dedup); beyond it that cluster's entries are cleared
/// (a replay of its agents may then be counted twice on `/metrics`, never
/// in the store). Other clusters' entries are untouched.
pub const MAX_AGENTS_PER_CLUSTER: usize = 10_000;
/// Clusters remembered (they hold certificates the gateway issued);
/// beyond it the whole map is cleared.
const MAX_CLUSTERS: usize = 10_000;
/// Bytes of an agent id (it is part of every stored record's key).
pub const MAX_AGENT_ID_BYTES: usize = 128;
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// What an agent is told to wait when admission is full.
const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The admission budget of a service built without
/// [`MetricsService::with_admission`].
const DEFAULT_ADMISSION_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct MetricsService {
    store: Arc<dyn SpanStore>,
    prom: RedProm,
    max_payload_bytes: usize,
    /// Bytes of requests being decoded and stored (full: RESOURCE_EXHAUSTED
    /// + RetryInfo; the agent keeps the windows).
    admission: ByteBudget,
    /// cluster → agent id → last sequence counted on `/metrics`.
    counted: Arc<Mutex<HashMap<String, HashMap<String, u64>>>>,
}

impl MetricsService {
    pub fn new(store: Arc<dyn SpanStore>, prom: RedProm, max_payload_bytes: usize) -> Self {
        Self {
            store,
            prom,
            max_payload_bytes,
            admission: ByteBudget::new(DEFAULT_ADMISSION_BYTES),
            counted: Arc::default(),
        }
    }

    /// Admits requests against `budget` (the gateway passes the federation
    /// port's, shared with `Forward`).
    pub fn with_admission(mut self, budget: ByteBudget) -> Self {
        self.admission = budget;
        self
    }

    /// The RPC after the identity check (`cluster` is the certificate's):
    /// decode, store every series, count them on `/metrics`. Public for
    /// the RED benchmark (`meridian-red-bench`), which has no peer
    /// certificate to present.
    #[doc(hidden)]
    pub async fn store_windows(
        &self,
        cluster: &str,
        req: &ForwardWindowsRequest,
    ) -> Result<ForwardWindowsResponse, Status> {
        // A declared size above the payload limit fails decoding below
        // (INVALID_ARGUMENT, permanent), not admission (retryable).
        let size = req
            .uncompressed_size
            .max(req.payload.len() as u64)
            .min(self.max_payload_bytes as u64);
        let Some(_admitted) = self.admission.try_reserve(size) else {
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                "gateway metrics ingest is at its in-flight limit",
                ErrorDetails::with_retry_info(Some(OVERLOAD_RETRY_AFTER)),
            ));
        };
        let batch: WindowBatch = proto::payload::decode_as(
            req.compression,
            &req.payload,
            req.uncompressed_size,
            self.max_payload_bytes,
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.agent_id.is_empty() || req.agent_id.len() > MAX_AGENT_ID_BYTES {
            return Err(Status::invalid_argument(format!(
                "agent_id is {} bytes; it must be 1 to {MAX_AGENT_ID_BYTES}",
                req.agent_id.len()
            )));
        }
        let n: usize = batch.windows.iter().map(|w| w.series.len()).sum();
        if n > MAX_SERIES_PER_REQUEST {
            return Err(Status::invalid_argument(format!(
                "{n} series in one request; at most {MAX_SERIES_PER_REQUEST}"
            )));
        }
        let rows = records(cluster, &req.agent_id, &batch)?;
        let recs: Vec<Record> = rows.iter().map(|r| r.2.clone()).collect();
        match self.store.put_records(&recs).await {
            Ok(()) => {}
            Err(e) => {
                let msg = match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                };
                tracing::warn!(error = %msg, "storing red windows failed; agent will retry");
                return Err(Status::with_error_details(
                    Code::Unavailable,
                    msg,
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                ));
            }
        }
        if self.first_time(
            cluster,
            &req.agent_id,
            req.first_sequence,
            req.last_sequence,
        ) {
            for (series, _, _, agg) in &rows {
                self.prom.add(series, agg);
            }
        }
        Ok(ForwardWindowsResponse {
            committed_sequence: req.last_sequence,
            series: n as u64,
        })
    }

    /// Whether this batch of `cluster`'s agent is new to this gateway's
    /// `/metrics` counters. Agents are keyed by cluster: an agent id one
    /// cluster uses says nothing about another's.
    fn first_time(&self, cluster: &str, agent: &str, first: u64, last: u64) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        if counted.len() >= MAX_CLUSTERS && !counted.contains_key(cluster) {
            counted.clear();
        }
        let agents = counted.entry(cluster.to_owned()).or_default();
        if agents.len() >= MAX_AGENTS_PER_CLUSTER && !agents.contains_key(agent) {
            agents.clear();
        }
        let seen = agents.entry(agent.to_owned()).or_default();
        if first <= *seen {
            return false;
        }
        *seen = (*seen).max(last);
        true
    }
}

fn cluster_of<T>(request: &Request<T>) -> Result<String, Status> {
    let leaf = request
        .peer_certs()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    match identity_of(&leaf) {
        Ok(Identity::Cluster(c)) => Ok(c.as_str().to_owned()),
        Ok(Identity::Node(_)) => Err(Status::permission_denied(
            "node certificates cannot forward metrics; use a cluster certificate",
        )),
        Err(e) => Err(Status::permission_denied(e.to_string())),
    }
}

/// The records of a batch, stamped with the certificate's cluster.
pub fn records(
    cluster: &str,
    agent_id: &str,
    batch: &WindowBatch,
) -> Result<Vec<(SeriesKey, i64, Record, model::red::Aggregate)>, Status> {
    let mut out = Vec::new();
    for w in &batch.windows {
        let writer = format!("{agent_id}.{}", w.agent_epoch);
        for s in &w.series {
            let agg =
                proto::red::from_series(s).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let series = SeriesKey {
                cluster: cluster.to_owned(),
                service: s.service.clone(),
                operation: s.operation.clone(),
                span_kind: s.span_kind.clone(),
                status_code: s.status_code.clone(),
            };
            let record = Record {
                kind: RecordKind::Red10s,
                key: keys::key(&series, w.start_ms, &writer),
                time_ms: w.start_ms,
                value: keys::encode_value(&agg),
                trace: None,
            };
            out.push((series, w.start_ms, record, agg));
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl Metrics for MetricsService {
    async fn forward_windows(
        &self,
        request: Request<ForwardWindowsRequest>,
    ) -> Result<Response<ForwardWindowsResponse>, Status> {
        let cluster = cluster_of(&request)?;
        let req = request.into_inner();
        if req.cluster != cluster {
            return Err(Status::permission_denied(format!(
                "agent claims cluster {:?} but its certificate is for {cluster:?}",
                req.cluster
            )));
        }
        self.store_windows(&cluster, &req).await.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service() -> MetricsService {
        let store: Arc<dyn SpanStore> = Arc::new(
            store::sqlite::SqliteStore::open("sqlite::memory:")
                .await
                .expect("in-memory sqlite"),
        );
        MetricsService::new(store, RedProm::new(1_000), 1 << 20)
    }

    /// Defect: the dedup map was keyed by agent id alone, so cluster A,
    /// sending under B's agent id, silenced B's counters. Failed on the old
    /// code emulated (one map for every cluster): "another cluster's agent".
    #[tokio::test]
    async fn agents_are_keyed_by_cluster() {
        let m = service().await;
        assert!(m.first_time("a", "agent-1", 1, 100));
        assert!(
            m.first_time("b", "agent-1", 1, 5),
            "another cluster's agent"
        );
        assert!(!m.first_time("b", "agent-1", 3, 5), "a replay");
        assert!(m.first_time("b", "agent-1", 6, 7));
    }

    /// One cluster's many agent ids clear only its own entries.
    #[tokio::test]
    async fn one_cluster_cannot_clear_the_others() {
        let m = service().await;
        assert!(m.first_time("b", "agent-1", 1, 5));
        for i in 0..=MAX_AGENTS_PER_CLUSTER {
            m.first_time("a", &format!("fake-{i}"), 1, 1);
        }
        assert!(!m.first_time("b", "agent-1", 1, 5), "b's state survived");
        let counted = m.counted.lock().expect("not poisoned");
        assert!(counted["a"].len() <= MAX_AGENTS_PER_CLUSTER);
    }

    /// Defect 7: `ForwardWindows` had no admission at all; any number of
    /// large requests were decoded at once.
    #[tokio::test]
    async fn requests_beyond_the_admission_budget_are_refused_with_retry_info() {
        let budget = ByteBudget::new(64 << 10);
        let m = service().await.with_admission(budget.clone());
        let req = ForwardWindowsRequest {
            agent_id: "agent-1".into(),
            cluster: "a".into(),
            uncompressed_size: 48 << 10,
            ..Default::default()
        };
        let held = budget.try_reserve(32 << 10).expect("fits");
        let err = m.store_windows("a", &req).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        let retry = err.get_details_retry_info().expect("a retry hint");
        assert_eq!(retry.retry_delay, Some(OVERLOAD_RETRY_AFTER));
        drop(held);
        if let Err(err) = m.store_windows("a", &req).await {
            assert_ne!(err.code(), Code::ResourceExhausted, "admitted: {err:?}");
        }
        assert_eq!(budget.available(), 64 << 10, "given back");
    }

    #[tokio::test]
    async fn agent_ids_are_bounded() {
        let m = service().await;
        for id in [String::new(), "x".repeat(MAX_AGENT_ID_BYTES + 1)] {
            let req = ForwardWindowsRequest {
                agent_id: id,
                cluster: "a".into(),
                ..Default::default()
            };
            let err = m.store_windows("a", &req).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(err.message().contains("agent_id"), "{err:?}");
        }
    }
}
