//! What a client is told when the store fails: a status, a stable code and
//! a fixed message. The store's own text (SQL, host names, file paths,
//! driver messages) is logged here and never sent.

use axum::http::StatusCode;
use model::ServiceErrorCode;
use store::StoreError;

/// A store failure as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicError {
    pub status: StatusCode,
    /// Stable, machine-readable: `unavailable` or `internal`.
    pub code: &'static str,
    /// Generic, human-readable; never the backend's text.
    pub msg: &'static str,
}

/// Logs `e` in full (with `what` the request was doing) and returns what
/// the client may see.
pub fn store_failure(what: &'static str, e: &StoreError) -> PublicError {
    let class = e.code();
    tracing::warn!(error = %e, what, "query failed in the store");
    public(class)
}

/// The public form of a failure class.
pub fn public(class: ServiceErrorCode) -> PublicError {
    let status =
        StatusCode::from_u16(class.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match class {
        ServiceErrorCode::Unavailable | ServiceErrorCode::Overloaded => PublicError {
            status,
            code: "unavailable",
            msg: "the store is unavailable or did not answer in time; retry later",
        },
        _ => PublicError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            msg: "the query failed in the store; the gateway log has the details",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_text_is_never_in_the_message() {
        for e in [
            StoreError::Unavailable("connect to 10.0.0.7:5432 refused".into()),
            StoreError::Backend("syntax error near SELECT secret".into()),
            StoreError::Corrupt("/var/lib/meridian/db.sqlite page 7".into()),
        ] {
            let p = store_failure("test", &e);
            assert!(
                !p.msg.contains("10.0.0.7") && !p.msg.contains("SELECT") && !p.msg.contains("/var")
            );
        }
        assert_eq!(
            store_failure("test", &StoreError::Unavailable("x".into())).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            store_failure("test", &StoreError::Backend("x".into())).code,
            "internal"
        );
    }
}
