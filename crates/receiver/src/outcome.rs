//! What a receiver answers: one refusal class per failure, and the common
//! path from a decoded request to the sink's answer.

use std::time::Duration;

use model::ServiceErrorCode;

use crate::SinkError;

/// What a client refused with [`ReceiveError::Busy`] is told to wait.
pub(crate) const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a receiver refused a request. One variant per failure class, mapped
/// once to HTTP ([`crate::http`]) and once to gRPC ([`crate::grpc`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive within `telemetry::serve::BODY_TIMEOUT`
    /// (HTTP 408).
    #[error("{0}")]
    BodyTimeout(String),
    /// The bytes of bodies being read are at their budget (retryable).
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl ReceiveError {
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::BadRequest(_) | Self::UnsupportedMediaType(_) | Self::BodyTimeout(_) => {
                ServiceErrorCode::BadRequest
            }
            Self::Busy(_) => ServiceErrorCode::Overloaded,
            Self::TooLarge(_) => ServiceErrorCode::TooLarge,
            Self::Sink(SinkError::Full { .. }) => ServiceErrorCode::Overloaded,
            Self::Sink(SinkError::Unavailable { .. }) => ServiceErrorCode::Unavailable,
            Self::Sink(SinkError::PermissionDenied(_)) => ServiceErrorCode::PermissionDenied,
            Self::Sink(SinkError::Invalid(_)) => ServiceErrorCode::BadRequest,
            Self::Sink(SinkError::Internal(_)) => ServiceErrorCode::Internal,
        }
    }

    /// The retry hint for retryable failures.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Sink(SinkError::Full { retry_after })
            | Self::Sink(SinkError::Unavailable { retry_after, .. }) => Some(*retry_after),
            Self::Busy(_) => Some(BUSY_RETRY_AFTER),
            _ => None,
        }
    }

    /// The metric outcome label.
    pub fn outcome(&self) -> &'static str {
        match self.code() {
            ServiceErrorCode::Overloaded | ServiceErrorCode::Unavailable => "refused_retryable",
            _ => "rejected",
        }
    }
}

/// What a receiver did with a request that was accepted (fully or partly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub accepted: u64,
    pub rejected: u64,
    pub message: Option<String>,
}

/// The steps every protocol shares after decoding: validate, screen,
/// refuse a request with nothing left, hand the rest to the sink.
pub(crate) async fn deliver<S: crate::Sink>(
    sink: &S,
    metrics: &crate::ReceiverMetrics,
    protocol: &'static str,
    mut req: proto::otlp::ExportTraceServiceRequest,
) -> Result<Received, ReceiveError> {
    let mut checked = proto::validate::sanitize(&mut req);
    let screened = sink.screen(&mut req);
    if screened.refused_spans > 0 {
        checked.accepted = checked.accepted.saturating_sub(screened.refused_spans);
        checked.rejected += screened.refused_spans;
        checked.first_error = checked.first_error.or(screened.message);
        if checked.accepted == 0 && checked.rejected == screened.refused_spans {
            // Nothing invalid, only refused: permanent, not a bad request.
            metrics.refused(protocol, checked.rejected);
            metrics.request(protocol, "rejected");
            let msg = checked.first_error.unwrap_or_default();
            return Err(ReceiveError::Sink(SinkError::PermissionDenied(format!(
                "all {} spans refused; first: {msg}",
                checked.rejected
            ))));
        }
    }
    metrics.refused(protocol, checked.rejected);
    if checked.accepted == 0 {
        if checked.rejected > 0 {
            let msg = checked
                .first_error
                .unwrap_or_else(|| "every span is invalid".to_owned());
            metrics.request(protocol, "rejected");
            return Err(ReceiveError::BadRequest(format!(
                "all {} spans are invalid; first: {msg}",
                checked.rejected
            )));
        }
        metrics.request(protocol, "empty");
        return Ok(Received {
            accepted: 0,
            rejected: 0,
            message: None,
        });
    }
    if let Err(e) = sink.accept(req, checked.accepted).await {
        let err = ReceiveError::Sink(e);
        metrics.request(protocol, err.outcome());
        metrics.refused(protocol, checked.accepted);
        return Err(err);
    }
    metrics.accepted(protocol, checked.accepted);
    metrics.request(
        protocol,
        if checked.rejected > 0 {
            "partial"
        } else {
            "ok"
        },
    );
    Ok(Received {
        accepted: checked.accepted,
        rejected: checked.rejected,
        message: checked.first_error,
    })
}

/// [`deliver`] for an OTLP protobuf request the bounds scan passed:
/// through the sink's encoded path when it takes it ([`Sink::takes_encoded`]
/// and [`Sink::prepare_encoded`]: every span valid, nothing the sink must
/// rewrite), else decoded with prost and delivered as usual. Both paths
/// answer the same for the same request.
///
/// [`Sink::takes_encoded`]: crate::Sink::takes_encoded
/// [`Sink::prepare_encoded`]: crate::Sink::prepare_encoded
pub(crate) async fn deliver_encoded<S: crate::Sink>(
    sink: &S,
    metrics: &crate::ReceiverMetrics,
    protocol: &'static str,
    bytes: bytes::Bytes,
    spans_hint: usize,
) -> Result<Received, ReceiveError> {
    if let Some(e) = sink.refuse_early() {
        let err = ReceiveError::Sink(e);
        metrics.request(protocol, err.outcome());
        metrics.refused(protocol, spans_hint as u64);
        return Err(err);
    }
    let prepared = if sink.takes_encoded() {
        match proto::view::parse(&bytes, spans_hint) {
            Ok(view) if view.clean() && !view.spans.is_empty() => sink
                .prepare_encoded(&bytes, &view)
                .map(|prepared| (prepared, view.spans.len() as u64)),
            _ => None,
        }
    } else {
        None
    };
    let Some((prepared, spans)) = prepared else {
        use prost::Message;
        let req = proto::otlp::ExportTraceServiceRequest::decode(&bytes[..]).map_err(|e| {
            metrics.request(protocol, "rejected");
            ReceiveError::BadRequest(format!("invalid OTLP protobuf: {e}"))
        })?;
        return deliver(sink, metrics, protocol, req).await;
    };
    if let Err(e) = sink.accept_encoded(prepared).await {
        let err = ReceiveError::Sink(e);
        metrics.request(protocol, err.outcome());
        metrics.refused(protocol, spans);
        return Err(err);
    }
    metrics.accepted(protocol, spans);
    metrics.request(protocol, "ok");
    Ok(Received {
        accepted: spans,
        rejected: 0,
        message: None,
    })
}

#[cfg(test)]
mod tests {
    use proto::otlp::{self, ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::{ReceiverMetrics, Screened, Sink};

    /// Refuses resources whose service is `bad`; accepts the rest.
    #[derive(Debug, Clone)]
    struct Picky;

    impl Sink for Picky {
        fn screen(&self, req: &mut ExportTraceServiceRequest) -> Screened {
            let before = otlp::span_count(req) as u64;
            req.resource_spans.retain(|rs| {
                rs.resource
                    .as_ref()
                    .and_then(|r| otlp::string_attr(&r.attributes, "service.name"))
                    != Some("bad")
            });
            let refused_spans = before - otlp::span_count(req) as u64;
            Screened {
                refused_spans,
                message: (refused_spans > 0).then(|| "bad is refused".to_owned()),
            }
        }

        async fn accept(&self, _: ExportTraceServiceRequest, _: u64) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn resource(service: &str, spans: u8) -> ResourceSpans {
        ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (1..=spans)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i; 8],
                        name: "op".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    async fn run(req: ExportTraceServiceRequest) -> Result<Received, ReceiveError> {
        deliver(&Picky, &ReceiverMetrics::default(), "t", req).await
    }

    #[tokio::test]
    async fn screened_spans_are_a_partial_success_or_a_permanent_refusal() {
        let mixed = ExportTraceServiceRequest {
            resource_spans: vec![resource("good", 3), resource("bad", 2)],
        };
        assert_eq!(
            run(mixed).await,
            Ok(Received {
                accepted: 3,
                rejected: 2,
                message: Some("bad is refused".into()),
            })
        );
        let only_bad = ExportTraceServiceRequest {
            resource_spans: vec![resource("bad", 2)],
        };
        let err = run(only_bad).await.unwrap_err();
        assert_eq!(err.code(), ServiceErrorCode::PermissionDenied, "{err}");
        assert!(err.to_string().contains("bad is refused"), "{err}");
    }
}
