//! `POST /api/transform`: OTLP/JSON in, Jaeger UI's v1 trace JSON out,
//! what Jaeger UI's "upload a trace file" calls (`packages/jaeger-ui/src/api/jaeger.ts`,
//! `transformOTLP`) and Jaeger serves in `jaegerquery/internal/http_handler.go`
//! (`transformOTLP` → `{data: [trace…], total: 0, limit: 0, offset: 0,
//! errors: null}`).
//!
//! Pure: nothing is stored or read. The body is bounded
//! ([`MAX_TRANSFORM_BYTES`], 413 beyond, by the route's body limit) and
//! checked against the receivers' decode limits before decoding. Spans
//! without a `k8s.cluster.name` resource attribute carry the cluster
//! [`UPLOAD_CLUSTER`] in their `meridian.cluster` process tag.

use std::collections::BTreeMap;

use ::model::{ClusterId, Trace};
use proto::bounds::DecodeLimits;
use serde_json::{Value, json};

use crate::jaeger::model;

/// The largest OTLP/JSON body `/api/transform` reads.
pub const MAX_TRANSFORM_BYTES: usize = 16 << 20;
/// The cluster named on uploaded spans that name none.
pub const UPLOAD_CLUSTER: &str = "upload";

/// The Jaeger v1 body for an OTLP/JSON `body`, or the message of a 400.
pub fn transform(body: &[u8]) -> Result<Value, String> {
    let req = proto::otlp::decode_json(body, &DecodeLimits::RECEIVER).map_err(|e| e.to_string())?;
    let cluster = ClusterId::new(UPLOAD_CLUSTER).map_err(|e| e.to_string())?;
    let mut by_trace: BTreeMap<::model::TraceId, Vec<::model::Span>> = BTreeMap::new();
    for s in proto::convert::to_model(&req, &cluster) {
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let data: Vec<model::JTrace> = by_trace
        .into_iter()
        .map(|(trace_id, spans)| model::trace(&Trace { trace_id, spans }))
        .collect();
    Ok(json!({"data": data, "total": 0, "limit": 0, "offset": 0, "errors": null}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_json_becomes_jaeger_traces() {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}}]},
            "scopeSpans": [{"scope": {"name": "lib"}, "spans": [
                {"traceId": "00000000000000000000000000000001", "spanId": "0000000000000002",
                 "name": "foobar", "kind": 2, "startTimeUnixNano": "1000000000000",
                 "endTimeUnixNano": "1001000000000", "status": {"code": 2}},
                {"traceId": "00000000000000000000000000000001", "spanId": "0000000000000003",
                 "parentSpanId": "0000000000000002", "name": "child", "kind": 3,
                 "startTimeUnixNano": "1000000500000", "endTimeUnixNano": "1000000600000"}
            ]}]
        }]});
        let out = transform(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            (out["total"].clone(), out["errors"].clone()),
            (json!(0), Value::Null)
        );
        let t = &out["data"][0];
        assert_eq!(t["traceID"], "0000000000000001");
        assert_eq!(t["spans"].as_array().map(Vec::len), Some(2));
        assert_eq!(t["spans"][0]["operationName"], "foobar");
        assert_eq!(t["spans"][0]["startTime"], 1_000_000_000);
        assert_eq!(t["spans"][0]["duration"], 1_000_000);
        assert_eq!(t["spans"][1]["references"][0]["spanID"], "0000000000000002");
        assert_eq!(t["processes"]["p1"]["serviceName"], "frontend");
        for bad in [&b"{"[..], b"{\"resourceSpans\": 5}"] {
            assert!(transform(bad).is_err(), "{bad:?}");
        }
    }
}
