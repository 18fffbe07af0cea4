//! What a receiver answers: one refusal class per failure, and the common
//! path from a decoded request to the sink's answer.

use std::time::Duration;

use model::ServiceErrorCode;

use crate::SinkError;

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
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl ReceiveError {
    pub fn code(&self) -> ServiceErrorCode {
        match self {
            Self::BadRequest(_) | Self::UnsupportedMediaType(_) => ServiceErrorCode::BadRequest,
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

/// The steps every protocol shares after decoding: validate, refuse a
/// request whose spans are all invalid, hand the rest to the sink.
pub(crate) async fn deliver<S: crate::Sink>(
    sink: &S,
    metrics: &crate::ReceiverMetrics,
    protocol: &'static str,
    mut req: proto::otlp::ExportTraceServiceRequest,
) -> Result<Received, ReceiveError> {
    let checked = proto::validate::sanitize(&mut req);
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
