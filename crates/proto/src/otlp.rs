//! OTLP trace types and decoding helpers.

pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_client::TraceServiceClient,
    trace_service_server::{TraceService, TraceServiceServer},
};
pub use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

use prost::Message;

use crate::bounds::{self, BoundsError, DecodeLimits, Dialect, Schema};

/// Why an OTLP payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Refused before decoding ([`crate::bounds`]).
    #[error(transparent)]
    Bounds(#[from] BoundsError),
}

impl DecodeError {
    /// Refused for its size (a cap of [`DecodeLimits`]), not malformed.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::Bounds(e) if !e.is_malformed())
    }
}

/// Decodes `ExportTraceServiceRequest` from protobuf bytes, after checking
/// them against `limits` ([`bounds::check_protobuf`]).
pub fn decode_protobuf(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    bounds::check_protobuf(bytes, &Schema::EXPORT_TRACE, limits)?;
    Ok(ExportTraceServiceRequest::decode(bytes)?)
}

/// Decodes `ExportTraceServiceRequest` from OTLP/JSON (lowerCamelCase keys,
/// hex ids, 64-bit integers as numbers or strings), after checking it
/// against `limits` ([`bounds::check_json`]).
pub fn decode_json(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    bounds::check_json(bytes, Dialect::Otlp, limits)?;
    Ok(serde_json::from_slice(bytes)?)
}

/// Number of spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// A string attribute.
pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// The string value of attribute `key`, if present and a string.
pub fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_hex_ids_and_camel_case() {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
          "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
          "spanId":"eee19b7ec3c1b174","name":"op","kind":2,"startTimeUnixNano":"1544712660000000000",
          "endTimeUnixNano":1544712661000000000,"attributes":[{"key":"n","value":{"intValue":"42"}}],
          "status":{"code":2}}]}]}]}"#;
        let req = decode_json(json, &DecodeLimits::RECEIVER).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span_count(&req), 1);
    }

    #[test]
    fn json_rejects_base64_ids() {
        // base64 of 16 bytes is not hex: a generic protobuf-JSON codec would
        // accept it, OTLP/JSON must not.
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
        assert!(decode_json(json, &DecodeLimits::RECEIVER).is_err());
    }
}
