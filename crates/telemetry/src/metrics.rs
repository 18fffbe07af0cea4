//! Metric names (the instrumentation spec) and the text exposition helper.
//!
//! Names follow Prometheus conventions: `meridian_<component>_<what>_<unit>`,
//! counters end in `_total` (added by the exposition), labels are few and
//! bounded.

use prometheus_client::{encoding::text::encode, registry::Registry};

/// Requests received by a receiver; labels `protocol` (otlp_grpc, otlp_http,
/// zipkin), `outcome` (ok, partial, rejected, empty).
pub const RECEIVER_REQUESTS: &str = "meridian_receiver_requests";
/// Spans accepted by a receiver (valid, handed to the pipeline).
pub const RECEIVER_SPANS_ACCEPTED: &str = "meridian_receiver_spans_accepted";
/// Spans refused by a receiver (invalid ids, or refused under backpressure).
pub const RECEIVER_SPANS_REFUSED: &str = "meridian_receiver_spans_refused";
/// Bytes held in the agent's buffer awaiting a gateway ack.
pub const AGENT_BUFFER_BYTES: &str = "meridian_agent_buffer_bytes";
/// Spans the gateway acknowledged as committed.
pub const AGENT_SPANS_ACKED: &str = "meridian_agent_spans_acked";
/// Spans the buffer dropped; label `reason` (buffer_full, corrupt).
pub const AGENT_SPANS_DROPPED: &str = "meridian_agent_spans_dropped";
/// Spans dropped because the gateway refused them permanently.
pub const AGENT_SPANS_DROPPED_PERMANENT: &str = "meridian_agent_spans_dropped_permanent";
/// Forward attempts that failed and will be retried.
pub const AGENT_FORWARD_RETRIES: &str = "meridian_agent_forward_retries";
/// 1 when the agent's last forward succeeded, else 0.
pub const AGENT_GATEWAY_UP: &str = "meridian_agent_gateway_up";
/// Batches the gateway received over federation; label `outcome`.
pub const GATEWAY_FORWARD_BATCHES: &str = "meridian_gateway_forward_batches";
/// Spans the gateway wrote to the store (new, not duplicates).
pub const GATEWAY_SPANS_STORED: &str = "meridian_gateway_spans_stored";
/// Spans the gateway received again (replays) and did not store twice.
pub const GATEWAY_SPANS_DUPLICATE: &str = "meridian_gateway_spans_duplicate";
/// Connections or batches refused for identity reasons; label `reason`.
pub const GATEWAY_IDENTITY_REFUSED: &str = "meridian_gateway_identity_refused";
/// Retention passes the gateway ran; label `result` (ok, error).
pub const GATEWAY_RETENTION_RUNS: &str = "meridian_gateway_retention_runs";
/// Spans retention deleted row by row (partly expired partitions).
pub const GATEWAY_RETENTION_SPANS_DELETED: &str = "meridian_gateway_retention_spans_deleted";
/// Whole time partitions retention dropped.
pub const GATEWAY_RETENTION_PARTITIONS_DROPPED: &str =
    "meridian_gateway_retention_partitions_dropped";

/// Federation Control streams open on a gateway (one per connected agent).
pub const GATEWAY_CONTROL_STREAMS: &str = "meridian_gateway_control_streams";
/// Control updates an agent received; label `outcome` (applied, unchanged,
/// invalid_policy).
pub const AGENT_CONTROL_UPDATES: &str = "meridian_agent_control_updates";
/// 1 while the agent's Control stream to a gateway is open, else 0.
pub const AGENT_CONTROL_CONNECTED: &str = "meridian_agent_control_connected";

/// Cross-cluster tail decisions of locally dropped traces on the agent;
/// labels `verdict` (keep, drop), `source` (gateway, timeout, full).
pub const AGENT_TAIL_VERDICTS: &str = "meridian_agent_tail_verdicts";
/// Traces that took their local verdict because none came in time.
pub const AGENT_TAIL_VERDICT_TIMEOUTS: &str = "meridian_agent_tail_verdict_timeouts";
/// Verdicts that arrived for traces the agent no longer held.
pub const AGENT_TAIL_LATE_VERDICTS: &str = "meridian_agent_tail_late_verdicts";
/// Trace digests the agent sent to the gateway.
pub const AGENT_TAIL_DIGESTS_SENT: &str = "meridian_agent_tail_digests_sent";
/// Encoded bytes of the digest batches the agent sent.
pub const AGENT_TAIL_DIGEST_BYTES: &str = "meridian_agent_tail_digest_bytes";
/// Digests not sent; label `reason` (queue_full, stream_full).
pub const AGENT_TAIL_DIGESTS_DROPPED: &str = "meridian_agent_tail_digests_dropped";
/// 1 while the agent's tail decision stream to a gateway is open, else 0.
pub const AGENT_TAIL_DECIDE_CONNECTED: &str = "meridian_agent_tail_decide_connected";
/// Traces whose local drop waits for the gateway's verdict.
pub const AGENT_TAIL_AWAITING: &str = "meridian_agent_tail_awaiting_traces";
/// Digests a gateway received from agents or peers; label `outcome`
/// (relayed, invalid, queue_full, unroutable).
pub const GATEWAY_TAIL_DIGESTS: &str = "meridian_gateway_tail_digests";
/// Encoded bytes of the digest batches a gateway received from agents.
pub const GATEWAY_TAIL_DIGEST_BYTES: &str = "meridian_gateway_tail_digest_bytes";
/// Cross-cluster decisions a worker made; labels `verdict` (keep, drop),
/// `by` (cluster, gateway_policy, none).
pub const GATEWAY_TAIL_DECISIONS: &str = "meridian_gateway_tail_decisions";
/// Digests for traces already decided (answered from the verdict cache).
pub const GATEWAY_TAIL_LATE_DIGESTS: &str = "meridian_gateway_tail_late_digests";
/// Digest relays to a worker that failed and were retried.
pub const GATEWAY_TAIL_RELAY_RETRIES: &str = "meridian_gateway_tail_relay_retries";
/// Verdicts not delivered; label `reason` (stream_full, peer_unreachable,
/// no_stream).
pub const GATEWAY_TAIL_VERDICTS_UNDELIVERED: &str = "meridian_gateway_tail_verdicts_undelivered";
/// Traces open in a worker's decision window.
pub const GATEWAY_TAIL_OPEN_TRACES: &str = "meridian_gateway_tail_open_traces";

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# metrics encoding failed\n");
    }
    out
}

/// `GET /metrics` serving `registry` in the Prometheus text format.
pub fn router(registry: std::sync::Arc<Registry>) -> axum::Router {
    use axum::{extract::State, http::header, routing::get};
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(r): State<std::sync::Arc<Registry>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    render(&r),
                )
            }),
        )
        .with_state(registry)
}
