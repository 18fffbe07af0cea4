//! Request extractors whose refusals are [`ApiError`]s (JSON bodies), not
//! axum's plain-text rejections.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{MAX_BODY_BYTES, error::ApiError};

/// A JSON body, sent as `Content-Type: application/json` ([`RawBody`]);
/// an empty or unparsable body is a 400 naming serde's complaint.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = RawBody::from_request(req, state).await?;
        parse_json(&bytes.0).map(JsonBody)
    }
}

/// The body bytes, within [`MAX_BODY_BYTES`]. A body must be sent as
/// `application/json`: a browser sends `text/plain`, form and multipart
/// bodies cross-site without a CORS preflight, so accepting them would let
/// any page a signed-in admin visits post to the admin API. A request that
/// names another type is a 415 before its body is read; one that names no
/// type may only have an empty body (`PUT clusters/{name}` with defaults).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let typed = json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        if !typed && !is_empty(&bytes) {
            return Err(ApiError::UnsupportedMediaType("none".into()));
        }
        Ok(RawBody(bytes))
    }
}

/// Whether the request says `application/json` (parameters such as
/// `charset` allowed); `Ok(false)` when it names no type, a 415 when it
/// names another one.
fn json_content_type(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let shown = || {
        String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(64)
            .collect()
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType(shown()))?;
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(true)
    } else {
        Err(ApiError::UnsupportedMediaType(shown()))
    }
}

/// True when the body carries nothing but whitespace.
pub fn is_empty(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if is_empty(bytes) {
        return Err(ApiError::BadRequest("the request needs a JSON body".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The one path parameter of a route, percent-decoded.
#[derive(Debug)]
pub struct Param(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Param(p))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// How fresh a read must be: `?consistency=linearizable` (the default:
/// every write committed before the request is seen, at the price of a
/// round trip to the leader) or `?consistency=local` (this node's applied
/// state, possibly behind; answers without a leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    #[default]
    Linearizable,
    Local,
}

impl Consistency {
    /// Reads `consistency` from a query string; other parameters are
    /// ignored.
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let Some(query) = query else {
            return Ok(Self::default());
        };
        let mut out = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key == "consistency" {
                out = match value.as_ref() {
                    "linearizable" => Self::Linearizable,
                    "local" => Self::Local,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "consistency={other:?}: use `linearizable` (default) or `local`"
                        )));
                    }
                };
            }
        }
        Ok(out)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Consistency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::from_query(parts.uri.query())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_defaults_to_linearizable_and_refuses_typos() {
        let c = Consistency::from_query;
        assert_eq!(c(None).ok(), Some(Consistency::Linearizable));
        assert_eq!(c(Some("")).ok(), Some(Consistency::Linearizable));
        assert_eq!(c(Some("consistency=local")).ok(), Some(Consistency::Local));
        assert_eq!(
            c(Some("x=1&consistency=linearizable")).ok(),
            Some(Consistency::Linearizable)
        );
        assert!(matches!(
            c(Some("consistency=eventual")),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn bodies_must_be_json() {
        assert!(matches!(
            parse_json::<u32>(b"  \n"),
            Err(ApiError::BadRequest(m)) if m.contains("needs a JSON body")
        ));
        assert!(matches!(
            parse_json::<u32>(b"{"),
            Err(ApiError::BadRequest(m)) if m.starts_with("invalid JSON body")
        ));
        assert_eq!(parse_json::<u32>(b"7").ok(), Some(7));
    }

    #[test]
    fn only_json_content_types_pass() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(v),
            );
            json_content_type(&h)
        };
        assert_eq!(json_content_type(&HeaderMap::new()).ok(), Some(false));
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert_eq!(with(ok).ok(), Some(true), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "",
        ] {
            assert!(
                matches!(with(refused), Err(ApiError::UnsupportedMediaType(_))),
                "{refused}"
            );
        }
    }
}
