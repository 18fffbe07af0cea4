//! The admin token: `Authorization: Bearer <token>` on every admin request
//! when the gateway has one (compared in constant time).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};

use super::error::ApiError;

/// Refuses a request without the admin token before its body is read.
pub async fn require_token(
    State(token): State<Arc<str>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(req.headers(), &token)?;
    Ok(next.run(req).await)
}

/// Checks the `Authorization` header against `expected`. An empty
/// `expected` refuses everything (fail closed).
pub fn check(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let value = value.to_str().map_err(|_| ApiError::WrongToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    if !expected.is_empty() && constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::WrongToken)
    }
}

/// Compares without stopping at the first difference, so the time taken
/// tells nothing about how much of a guess was right (only its length,
/// which the guesser knows).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, g) in given.iter().enumerate() {
        let e = expected
            .get(i % expected.len().max(1))
            .copied()
            .unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn only_the_bearer_token_passes() {
        assert!(check(&with(Some("Bearer s3cret")), "s3cret").is_ok());
        assert!(check(&with(Some("bearer s3cret")), "s3cret").is_ok());
        for (auth, missing) in [
            (None, true),
            (Some("Basic czNjcmV0"), true),
            (Some("Bearer"), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cret2"), false),
            (Some("Bearer S3CRET"), false),
            (Some("Bearer "), false),
        ] {
            let e = check(&with(auth), "s3cret");
            if missing {
                assert!(matches!(e, Err(ApiError::MissingToken)), "{auth:?}");
            } else {
                assert!(matches!(e, Err(ApiError::WrongToken)), "{auth:?}");
            }
        }
        // An empty configured token lets nobody in.
        assert!(check(&with(Some("Bearer ")), "").is_err());
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }
}
