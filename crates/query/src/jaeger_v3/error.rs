//! api_v3's HTTP error envelope, Jaeger's `GRPCGatewayError` (jaeger-idl
//! `proto/api_v3/query_service.proto`) as its `http_gateway.go`
//! (`tryHandleError`) writes it with Go's `encoding/json`:
//! `{"error":{"httpCode":404,"message":"No traces found"}}` (`grpcCode`
//! and `httpStatus` are empty there and left out).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;
use store::StoreError;

use crate::public_error;

/// The message of Jaeger's 404 when a get or a search finds nothing.
pub const NOT_FOUND: &str = "No traces found";

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(json!({"error": {"httpCode": status.as_u16(), "message": message}})),
    )
        .into_response()
}

pub fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, NOT_FOUND)
}

/// A store failure: logged, answered with its class's status and a fixed
/// message ([`public_error`]).
pub fn store_error(what: &'static str, e: StoreError) -> Response {
    let p = public_error::store_failure(what, &e);
    error(p.status, p.msg)
}
