//! Admin API errors: one HTTP status per failure class, every body
//! `{"error": "..."}`.
//!
//! | failure | status |
//! |---|---|
//! | malformed request, invalid data ([`Applied::Refused`] of a bad value) | 400 |
//! | no token, or an unknown, revoked or expired one | 401 + `WWW-Authenticate: Bearer` ([`crate::access::AccessError`]) |
//! | a token that is not an admin token over every cluster | 403 ([`crate::access::AccessError`]) |
//! | nothing to show (`GET policies/{cluster}` without one) | 404 |
//! | conflicts with the current state (shard id taken, membership change refused) | 409 |
//! | body over [`super::MAX_BODY_BYTES`] | 413 |
//! | no leader, leader unreachable, write not committed in time | 503 + `Retry-After: 1` |
//! | Raft itself failed (storage, shutdown), the random source failed | 500 |

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use control_state::{Applied, Lease};

use crate::raft::network::WriteError;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or its data invalid.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is over the {limit} byte limit")]
    TooLarge { limit: usize },
    /// A body that is not `application/json` (the type it named, cut).
    #[error("the request body must be sent as `Content-Type: application/json`, not {0:?}")]
    UnsupportedMediaType(String),
    /// The control plane could not carry the request out.
    #[error(transparent)]
    Plane(#[from] WriteError),
    /// This node failed (not the request's fault).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Plane(e) => match e {
                // A timed-out write may still commit later: retrying a put
                // or delete is safe (they are idempotent).
                WriteError::NoLeader
                | WriteError::LeaderUnreachable { .. }
                | WriteError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
                WriteError::Membership(_) => StatusCode::CONFLICT,
                WriteError::BadRequest(_) => StatusCode::BAD_REQUEST,
                WriteError::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "admin request failed");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Done,
    /// Already so (a put of the same value is still `done`; deleting what
    /// is absent, or re-adding a registered shard, is `unchanged`).
    Unchanged,
    /// A lease as it stands after the command.
    Lease,
}

/// The answer to a successful write: `{"result": "done"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAnswer {
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

impl WriteAnswer {
    pub fn done() -> Self {
        Self {
            result: Outcome::Done,
            lease: None,
        }
    }

    pub fn unchanged() -> Self {
        Self {
            result: Outcome::Unchanged,
            lease: None,
        }
    }
}

/// How a refusal by the state machine is answered: the request's data was
/// invalid (400), or it clashes with what is registered (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Invalid,
    Conflict,
}

/// Maps what applying a command did to the answer.
pub fn answer(applied: Applied, refusal: Refusal) -> Result<WriteAnswer, ApiError> {
    match applied {
        Applied::Done => Ok(WriteAnswer::done()),
        Applied::Unchanged => Ok(WriteAnswer::unchanged()),
        Applied::Lease(lease) => Ok(WriteAnswer {
            result: Outcome::Lease,
            lease: Some(lease),
        }),
        Applied::Refused(msg) => Err(match refusal {
            Refusal::Invalid => ApiError::BadRequest(msg),
            Refusal::Conflict => ApiError::Conflict(msg),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_class_has_its_status() {
        let table: Vec<(ApiError, u16)> = vec![
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Internal("x".into()), 500),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::TooLarge { limit: 1 }, 413),
            (WriteError::NoLeader.into(), 503),
            (
                WriteError::LeaderUnreachable {
                    leader: 1,
                    reason: "x".into(),
                }
                .into(),
                503,
            ),
            (WriteError::Timeout.into(), 503),
            (WriteError::Membership("x".into()).into(), 409),
            (WriteError::BadRequest("x".into()).into(), 400),
            (WriteError::Raft("x".into()).into(), 500),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn transient_errors_say_when_to_retry() {
        let r = ApiError::from(WriteError::NoLeader).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::Conflict("x".into()).into_response();
        assert!(!r.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn refusals_are_400_or_409_and_the_rest_answers() {
        assert_eq!(
            answer(Applied::Done, Refusal::Invalid).ok(),
            Some(WriteAnswer::done())
        );
        assert_eq!(
            answer(Applied::Unchanged, Refusal::Conflict).ok(),
            Some(WriteAnswer::unchanged())
        );
        let bad = answer(Applied::Refused("no".into()), Refusal::Invalid);
        assert!(matches!(bad, Err(ApiError::BadRequest(m)) if m == "no"));
        let clash = answer(Applied::Refused("taken".into()), Refusal::Conflict);
        assert!(matches!(clash, Err(ApiError::Conflict(_))));
        let json = serde_json::to_string(&WriteAnswer::unchanged()).unwrap_or_default();
        assert_eq!(json, r#"{"result":"unchanged"}"#);
    }
}
