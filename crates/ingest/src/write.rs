//! The gateway's write path, shared by federation and the plain OTLP ports:
//! sanitized OTLP → model spans → store write (idempotent) → committed.

use std::{sync::Arc, time::Duration};

use model::ClusterId;
use proto::otlp::ExportTraceServiceRequest;
use receiver::{Sink, SinkError};
use store::{SpanStore, StoreError, WriteOutcome};

use stitch::{Stitcher, backlinks};

use crate::metrics::GatewayMetrics;

/// How long clients are asked to wait when the store is unavailable.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Ingest {
    store: Arc<dyn SpanStore>,
    metrics: GatewayMetrics,
    stitch: Option<Stitcher>,
}

impl Ingest {
    pub fn new(store: Arc<dyn SpanStore>, metrics: GatewayMetrics) -> Self {
        Self {
            store,
            metrics,
            stitch: None,
        }
    }

    /// Also notes every committed span for stitching.
    pub fn with_stitcher(mut self, stitch: Stitcher) -> Self {
        self.stitch = Some(stitch);
        self
    }

    /// Writes a request whose resources are already stamped with their
    /// cluster. Returns once the store committed.
    pub async fn write(
        &self,
        req: &ExportTraceServiceRequest,
        fallback_cluster: &ClusterId,
    ) -> Result<WriteOutcome, StoreError> {
        let spans = proto::convert::to_model(req, fallback_cluster);
        let out = self.store.write(&spans).await?;
        // Backlinks are written before the ack too: a client that retries
        // rewrites them (records are replaced, not added).
        let links = backlinks(&spans);
        if !links.is_empty() {
            match self.store.put_records(&links).await {
                Ok(()) => {}
                // A backend without derived records keeps the spans (and
                // their links); only backlink lookups are missing.
                Err(StoreError::Unsupported(what)) => {
                    tracing::debug!(what, "the store keeps no backlinks");
                }
                Err(e) => return Err(e),
            }
        }
        self.metrics.stored(out.inserted, out.duplicates);
        // A batch stored before (an agent's replay after a lost ack) was
        // noted then: noting it again could count its pairs twice at a new
        // worker. Partly new batches are noted whole; workers drop the
        // spans they know.
        if let (Some(stitch), true) = (&self.stitch, out.inserted > 0) {
            stitch.observe(&spans);
        }
        Ok(out)
    }
}

/// The sink of the gateway's own OTLP/Zipkin ports (single-node use without
/// an agent): the cluster comes from `k8s.cluster.name`, else the default.
/// Acknowledges the client only after the store committed.
#[derive(Debug, Clone)]
pub struct DirectSink {
    pub ingest: Ingest,
    pub default_cluster: ClusterId,
    /// `--otlp-trust-cluster-attribute`: keep a resource's own
    /// `k8s.cluster.name` (one trusted sender, single-node use). Off, every
    /// span is stored under `default_cluster`: a pod that can reach the
    /// port cannot write into another cluster's traces.
    pub trust_cluster_attribute: bool,
}

impl Sink for DirectSink {
    async fn accept(
        &self,
        mut req: ExportTraceServiceRequest,
        _spans: u64,
    ) -> Result<(), SinkError> {
        if self.trust_cluster_attribute {
            proto::convert::stamp_default_cluster(&mut req, &self.default_cluster);
        } else {
            let overwritten = proto::convert::restamp_cluster(&mut req, &self.default_cluster);
            if overwritten > 0 {
                tracing::debug!(
                    resources = overwritten,
                    cluster = %self.default_cluster,
                    "plain OTLP claimed another cluster; stored under --default-cluster"
                );
            }
        }
        self.ingest
            .write(&req, &self.default_cluster)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                StoreError::Unavailable(message) => SinkError::Unavailable {
                    message,
                    retry_after: STORE_RETRY_AFTER,
                },
                other => SinkError::Internal(other.to_string()),
            })
    }
}
