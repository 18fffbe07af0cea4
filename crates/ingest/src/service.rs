//! The federation service (see `federation.proto`). `Forward`: identity
//! check, admission, decode, cluster stamp (per resource: a resource
//! claiming another cluster is refused and counted in the reply, the rest
//! of the batch stored; the batch is refused only when nothing is left),
//! store write, ack after commit.
//! `Control`: the same identity check, then the stream of
//! [`crate::control_stream`]. `Decide`: the same identity check (and the claim on
//! every batch), then the cross-cluster tail stream of `stitch::tail`.

use std::{sync::Arc, time::Duration};

use model::ClusterId;
use proto::federation::{
    ControlRequest, DigestBatch, ForwardRequest, ForwardResponse, federation_server::Federation,
};
use store::StoreError;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use mtls::{Identity, identity_and_serial_of};
use stitch::tail::{DecideStream, TailDecisions};
use telemetry::{budget::ByteBudget, clock::unix_ms_u64};

use crate::{
    agents::{AgentKey, AgentRegistry},
    control_stream::ControlStream,
    metrics::GatewayMetrics,
    view::{ControlFeed, Registration},
    write::{Ingest, STORE_RETRY_AFTER},
};

/// Calls in flight on the federation port (`Forward`, `ForwardWindows`,
/// stream openings), from their headers to their reply; beyond it
/// RESOURCE_EXHAUSTED + RetryInfo. Bytes are bounded by the port budget.
pub const PORT_MAX_REQUESTS: usize = 4096;
/// What agents are told to wait when admission is full.
const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);
/// What the agents of an unregistered cluster are told to wait: they keep
/// their spans and try again, so registering the cluster resumes the flow
/// within this.
pub const UNREGISTERED_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The refusal of a revoked certificate: FAILED_PRECONDITION with
/// RetryInfo, which agents retry (their spans stay in the WAL until the
/// agent runs with a new certificate).
pub fn revoked(serial: &str) -> Status {
    retryable(
        Code::FailedPrecondition,
        format!(
            "certificate serial {serial} is revoked at this gateway; issue the agent a new \
             certificate (its spans stay buffered)"
        ),
        UNREGISTERED_RETRY_AFTER,
    )
}

/// The refusal of a cluster that is not (or no longer) registered:
/// FAILED_PRECONDITION with RetryInfo, which agents retry (never drop:
/// the cluster may be registered again).
pub fn unregistered(cluster: &ClusterId) -> Status {
    retryable(
        Code::FailedPrecondition,
        format!(
            "cluster {:?} is not registered at this gateway (meridian-gateway admin \
             clusters put {}); the agent keeps its spans and retries",
            cluster.as_str(),
            cluster.as_str()
        ),
        UNREGISTERED_RETRY_AFTER,
    )
}

/// The refusal of every agent call while this gateway is removed from the
/// cluster: FAILED_PRECONDITION with RetryInfo, so agents keep their spans
/// (and follow the other members they know).
pub fn removed_node() -> Status {
    retryable(
        Code::FailedPrecondition,
        "this gateway was removed from the gateway cluster; the agent keeps its spans \
         and retries (another member, or this one once it is added again)",
        UNREGISTERED_RETRY_AFTER,
    )
}

/// Whether this gateway is now removed from its cluster (a membership that
/// no longer lists it), asked on every agent call.
#[derive(Clone)]
pub struct RemovedProbe(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for RemovedProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemovedProbe")
    }
}

#[derive(Debug, Clone)]
pub struct FederationService {
    /// Refuses every agent call while this node is removed (none: never).
    removed: Option<RemovedProbe>,
    ingest: Ingest,
    metrics: GatewayMetrics,
    /// Bounded in-flight uncompressed bytes. Full policy: reject with
    /// RESOURCE_EXHAUSTED + RetryInfo; the agent keeps the batch. The
    /// gateway shares it with `ForwardWindows` and the federation port's
    /// bytes received before decoding ([`FederationService::admission`]).
    admission: ByteBudget,
    max_payload_bytes: usize,
    /// The control state agents follow (see [`crate::control_stream`]).
    control: ControlFeed,
    /// Cancelled at shutdown: ends every Control stream, so the server's
    /// graceful stop does not wait for them.
    shutdown: CancellationToken,
    /// Cross-cluster tail decisions (`None`: `Decide` is unimplemented).
    tail: Option<TailDecisions>,
    /// The agents this node hears from (`GET /api/v1/agents`).
    agents: AgentRegistry,
    /// Which clusters may send (`--require-registered-clusters`).
    registration: Registration,
}

/// Which RPC an identity check is for (in logs and batch counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Forward,
    Control,
    Decide,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Forward => "forward",
            Rpc::Control => "control",
            Rpc::Decide => "decide",
        }
    }
}

impl FederationService {
    pub fn new(
        ingest: Ingest,
        metrics: GatewayMetrics,
        max_inflight_bytes: u64,
        max_payload_bytes: usize,
        control: ControlFeed,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            ingest,
            metrics,
            admission: ByteBudget::new(max_inflight_bytes),
            max_payload_bytes,
            control,
            shutdown,
            tail: None,
            agents: AgentRegistry::default(),
            registration: Registration::default(),
            removed: None,
        }
    }

    /// Which clusters may send (default: every cluster until one is
    /// registered).
    pub fn with_registration(mut self, registration: Registration) -> Self {
        self.registration = registration;
        self
    }

    /// Refuses every agent call while `probe` says this node is removed.
    pub fn with_removed_probe(mut self, probe: RemovedProbe) -> Self {
        self.removed = Some(probe);
        self
    }

    /// The admission budget (`--max-inflight-bytes`), to share with the
    /// other services and the budget layer of the federation port.
    pub fn admission(&self) -> ByteBudget {
        self.admission.clone()
    }

    /// The federation port's budget of message bytes received and not yet
    /// decoded: per connection two messages of `max_message_bytes` (an
    /// agent pipelines several batches on one connection); in total the
    /// admission budget, so bytes held before and after decoding share one
    /// cap.
    pub fn port_budget(&self, max_message_bytes: usize) -> telemetry::serve::MessageBudget {
        telemetry::serve::MessageBudget::new(
            2 * (max_message_bytes as u64 + 5),
            self.admission.clone(),
            PORT_MAX_REQUESTS,
        )
    }

    /// Records agents in `agents` (by default a registry of its own).
    pub fn with_agents(mut self, agents: AgentRegistry) -> Self {
        self.agents = agents;
        self
    }

    /// Serves `Decide` with `tail`.
    pub fn with_tail(mut self, tail: TailDecisions) -> Self {
        self.tail = Some(tail);
        self
    }

    fn refuse(&self, rpc: Rpc, reason: &'static str, status: Status) -> Status {
        self.metrics.identity_refused(reason);
        if rpc == Rpc::Forward {
            self.metrics.batch("refused");
        }
        status
    }

    fn cluster_of<T>(&self, rpc: Rpc, request: &Request<T>) -> Result<ClusterId, Status> {
        self.caller_of(rpc, request).map(|(cluster, _)| cluster)
    }

    /// The caller's cluster and certificate serial; a revoked certificate
    /// is refused here, on every call.
    fn caller_of<T>(&self, rpc: Rpc, request: &Request<T>) -> Result<(ClusterId, String), Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            self.refuse(
                rpc,
                "no_identity",
                Status::unauthenticated("a client certificate is required"),
            )
        })?;
        let leaf = certs.first().ok_or_else(|| {
            self.refuse(
                rpc,
                "no_identity",
                Status::unauthenticated("a client certificate is required"),
            )
        })?;
        let parsed = identity_and_serial_of(leaf);
        if let Ok((_, serial)) = &parsed {
            self.check_serial(rpc, serial)?;
        }
        match parsed {
            Ok((Identity::Cluster(c), serial)) => Ok((c, serial)),
            Ok((Identity::Node(node), _)) => {
                tracing::warn!(node, rpc = rpc.name(), "refused a node certificate");
                Err(self.refuse(
                    rpc,
                    "node_cert",
                    Status::permission_denied(
                        "node certificates cannot forward spans; use a cluster certificate",
                    ),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, rpc = rpc.name(), "refused: no cluster identity in certificate");
                Err(self.refuse(rpc, "no_identity", Status::permission_denied(e.to_string())))
            }
        }
    }

    /// Refuses a cluster the current view does not admit (checked on every
    /// call, so a deleted cluster is refused as soon as the deletion is
    /// applied on this node).
    fn check_registered(&self, rpc: Rpc, cluster: &ClusterId) -> Result<(), Status> {
        if self.removed.as_ref().is_some_and(|p| (p.0)()) {
            tracing::warn!(cluster = %cluster, rpc = rpc.name(), "refused: this gateway is removed from the cluster");
            return Err(self.refuse(rpc, "removed_node", removed_node()));
        }
        if self
            .control
            .borrow()
            .admits(cluster.as_str(), self.registration)
        {
            return Ok(());
        }
        tracing::warn!(cluster = %cluster, rpc = rpc.name(), "refused: cluster not registered");
        Err(self.refuse(rpc, "unregistered", unregistered(cluster)))
    }

    /// Refuses a revoked certificate (checked on every call: a revocation
    /// applies to open connections as soon as this node applied it).
    fn check_serial(&self, rpc: Rpc, serial: &str) -> Result<(), Status> {
        if !self.control.borrow().revokes(serial) {
            return Ok(());
        }
        tracing::warn!(serial, rpc = rpc.name(), "refused: certificate revoked");
        Err(self.refuse(rpc, "revoked", revoked(serial)))
    }

    /// Refuses a request whose `cluster` field is not the certificate's.
    fn check_claim(
        &self,
        rpc: Rpc,
        cluster: &ClusterId,
        claimed: &str,
        agent_id: &str,
    ) -> Result<(), Status> {
        if claimed == cluster.as_str() {
            return Ok(());
        }
        tracing::warn!(
            certificate = %cluster,
            claimed,
            agent_id,
            rpc = rpc.name(),
            "refused: agent --cluster disagrees with its certificate"
        );
        Err(self.refuse(
            rpc,
            "cluster_mismatch",
            Status::permission_denied(format!(
                "agent claims cluster {claimed:?} but its certificate is for {:?}",
                cluster.as_str()
            )),
        ))
    }
}

fn retryable(code: Code, msg: impl Into<String>, after: Duration) -> Status {
    Status::with_error_details(code, msg.into(), ErrorDetails::with_retry_info(Some(after)))
}

#[tonic::async_trait]
impl Federation for FederationService {
    type ControlStream = ControlStream;
    type DecideStream = DecideStream;

    async fn decide(
        &self,
        request: Request<tonic::Streaming<DigestBatch>>,
    ) -> Result<Response<DecideStream>, Status> {
        let Some(tail) = &self.tail else {
            return Err(Status::unimplemented(
                "this gateway does not make cross-cluster tail decisions",
            ));
        };
        let (cluster, serial) = self.caller_of(Rpc::Decide, &request)?;
        self.check_registered(Rpc::Decide, &cluster)?;
        let incoming = request.into_inner();
        let svc = self.clone();
        let claimed_by = cluster.clone();
        let check = move |b: &DigestBatch| {
            svc.check_claim(Rpc::Decide, &claimed_by, &b.cluster, &b.agent_id)?;
            svc.check_registered(Rpc::Decide, &claimed_by)?;
            svc.check_serial(Rpc::Decide, &serial)
        };
        tracing::debug!(cluster = %cluster, "tail decision stream opened");
        Ok(Response::new(tail.stream(
            cluster,
            incoming,
            check,
            self.shutdown.clone(),
        )))
    }

    async fn control(
        &self,
        request: Request<ControlRequest>,
    ) -> Result<Response<ControlStream>, Status> {
        let (cluster, serial) = self.caller_of(Rpc::Control, &request)?;
        let req = request.into_inner();
        self.check_claim(Rpc::Control, &cluster, &req.cluster, &req.agent_id)?;
        self.check_registered(Rpc::Control, &cluster)?;
        tracing::debug!(cluster = %cluster, agent_id = %req.agent_id, "control stream opened");
        // The agent counts as connected while this stream lives.
        let connected = self
            .agents
            .connect(AgentKey::new(cluster.clone(), &req.agent_id));
        let updates = crate::control_stream::stream(
            self.control.clone(),
            (cluster, serial),
            self.registration,
            self.shutdown.clone(),
            self.metrics.clone(),
        );
        Ok(Response::new(Box::pin(futures::StreamExt::map(
            updates,
            move |u| {
                let _held = &connected;
                u
            },
        ))))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let cluster = self.cluster_of(Rpc::Forward, &request)?;
        let req = request.into_inner();
        self.check_claim(Rpc::Forward, &cluster, &req.cluster, &req.agent_id)?;
        self.check_registered(Rpc::Forward, &cluster)?;
        // A declared size above the payload limit fails decoding below
        // (INVALID_ARGUMENT, permanent), not admission (retryable).
        let size = req
            .uncompressed_size
            .max(req.payload.len() as u64)
            .min(self.max_payload_bytes as u64);
        let _permit = match self.admission.try_reserve(size) {
            Some(p) => p,
            None => {
                self.metrics.batch("overloaded");
                return Err(retryable(
                    Code::ResourceExhausted,
                    "gateway ingest is at its in-flight limit",
                    OVERLOAD_RETRY_AFTER,
                ));
            }
        };
        let mut otlp = proto::payload::decode(
            req.compression,
            &req.payload,
            req.uncompressed_size,
            self.max_payload_bytes,
        )
        .map_err(|e| {
            self.metrics.batch("invalid");
            Status::invalid_argument(e.to_string())
        })?;
        let checked = proto::validate::sanitize(&mut otlp);
        // Per resource: a foreign claim costs only its own spans.
        let foreign = proto::convert::stamp_cluster(&mut otlp, &cluster);
        let accepted = checked.accepted.saturating_sub(foreign.refused_spans);
        if let Some(claim) = &foreign.first {
            self.metrics.foreign_cluster_spans(foreign.refused_spans);
            tracing::warn!(
                error = %claim,
                agent_id = %req.agent_id,
                resources = foreign.refused_resources,
                spans = foreign.refused_spans,
                kept = accepted,
                "refused resources claiming another cluster"
            );
            if accepted == 0 {
                return Err(self.refuse(
                    Rpc::Forward,
                    "cluster_mismatch",
                    Status::permission_denied(claim.to_string()),
                ));
            }
        }
        let error_message = checked
            .first_error
            .or_else(|| foreign.first.as_ref().map(ToString::to_string))
            .unwrap_or_default();
        match self.ingest.write(&otlp, &cluster).await {
            Ok(out) => {
                self.metrics.batch("committed");
                let key = AgentKey::new(cluster.clone(), &req.agent_id);
                self.agents.with(|a| {
                    a.forwarded(
                        &key,
                        accepted,
                        req.uncompressed_size,
                        req.status.as_ref(),
                        unix_ms_u64(),
                    );
                });
                tracing::debug!(
                    cluster = %cluster,
                    agent_id = %req.agent_id,
                    first = req.first_sequence,
                    last = req.last_sequence,
                    inserted = out.inserted,
                    duplicates = out.duplicates,
                    "batch committed"
                );
                Ok(Response::new(ForwardResponse {
                    committed_sequence: req.last_sequence,
                    accepted_spans: accepted,
                    rejected_spans: checked.rejected + foreign.refused_spans,
                    error_message,
                    foreign_cluster_spans: foreign.refused_spans,
                    accepted_compressions: vec![
                        proto::federation::Compression::OtlpColumnsZstd as i32,
                    ],
                }))
            }
            Err(StoreError::Unavailable(msg)) => {
                self.metrics.batch("store_unavailable");
                tracing::warn!(error = %msg, "store unavailable; agent will retry");
                Err(retryable(Code::Unavailable, msg, STORE_RETRY_AFTER))
            }
            Err(e) => {
                self.metrics.batch("store_error");
                tracing::error!(error = %e, "store write failed");
                Err(retryable(
                    Code::Unavailable,
                    e.to_string(),
                    STORE_RETRY_AFTER,
                ))
            }
        }
    }
}
