//! Meridian's web UI, served by the gateway on `--http`.
//!
//! The single-page app (search, trace waterfall, service map, dashboards,
//! alerts, clusters) lives in `ui/` (TypeScript, Preact, Vite). `build.rs`
//! builds it with npm and embeds every output file; [`router`] serves them:
//!
//! - `/assets/*` (content-hashed names): `Cache-Control: immutable`, a year;
//! - other files (`/index.html`, `/favicon.svg`): `no-cache`;
//! - any other GET that is not an API path (`/api/…`, `/metrics`,
//!   `/healthz`, `/readyz`) and has no file extension: `index.html`, so a
//!   client route such as `/trace/abc` can be reloaded or shared;
//! - everything else: 404.
//!
//! The router is a fallback only, so it must be merged last and never
//! shadows a route of another router.

use axum::{
    Router,
    body::Body,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

mod assets;

pub use assets::Asset;

/// The UI: a fallback for every path no other router serves.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

/// What a request for `path` gets (pure, so it is tested without HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// An embedded file; `immutable` for hashed assets.
    File {
        asset: &'static Asset,
        immutable: bool,
    },
    /// Not a UI path.
    NotFound,
}

/// Paths owned by other routers: never answered with the SPA.
fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || matches!(path, "/metrics" | "/healthz" | "/readyz")
}

/// Resolves `path` against the embedded `files`.
pub fn resolve(files: &'static [Asset], path: &str) -> Resolution {
    let find = |p: &str| files.iter().find(|a| a.path == p);
    if is_api_path(path) {
        return Resolution::NotFound;
    }
    if let Some(asset) = find(path) {
        return Resolution::File {
            asset,
            immutable: path.starts_with("/assets/"),
        };
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/assets/") || last.contains('.') {
        return Resolution::NotFound;
    }
    match find("/index.html") {
        Some(asset) => Resolution::File {
            asset,
            immutable: false,
        },
        None => Resolution::NotFound,
    }
}

async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    match resolve(assets::FILES, uri.path()) {
        Resolution::NotFound => StatusCode::NOT_FOUND.into_response(),
        Resolution::File { asset, immutable } => {
            let cache = if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(asset.body)
            };
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
            for (name, value) in SECURITY_HEADERS {
                h.insert(name.clone(), HeaderValue::from_static(value));
            }
            r
        }
    }
}

/// The policy every UI file is served with. Scripts, connections and
/// frames come only from the gateway itself; no page may frame the UI
/// (clickjacking); inline styles are allowed because the waterfall
/// positions its bars with them (scripts stay strict: no inline script,
/// no `eval`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The headers on every UI response: the policy above, no MIME sniffing,
/// no framing for browsers that predate `frame-ancestors`, and no
/// `Referer` (trace ids in the URL stay in the UI).
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    static FILES: &[Asset] = &[
        Asset {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            body: b"<html>",
        },
        Asset {
            path: "/assets/index-abc123.js",
            content_type: "text/javascript; charset=utf-8",
            body: b"x",
        },
    ];

    fn file(path: &str) -> Option<(&'static str, bool)> {
        match resolve(FILES, path) {
            Resolution::File { asset, immutable } => Some((asset.path, immutable)),
            Resolution::NotFound => None,
        }
    }

    #[test]
    fn hashed_assets_are_immutable_and_index_is_not() {
        assert_eq!(
            file("/assets/index-abc123.js"),
            Some(("/assets/index-abc123.js", true))
        );
        assert_eq!(file("/index.html"), Some(("/index.html", false)));
        assert_eq!(file("/"), Some(("/index.html", false)));
    }

    #[test]
    fn client_routes_fall_back_to_index() {
        for p in ["/search", "/trace/4bf92f3577b34da6", "/map", "/alerts/"] {
            assert_eq!(file(p), Some(("/index.html", false)), "{p}");
        }
    }

    #[test]
    fn api_paths_and_missing_files_are_not_found() {
        for p in [
            "/api",
            "/api/nope",
            "/api/v1/whatever",
            "/metrics",
            "/healthz",
            "/readyz",
            "/assets/gone-123.js",
            "/favicon.ico",
        ] {
            assert_eq!(file(p), None, "{p}");
        }
    }

    #[test]
    fn the_embedded_build_has_an_index_and_hashed_assets() {
        assert!(assets::FILES.iter().any(|a| a.path == "/index.html"));
        if option_env!("MERIDIAN_WEB_SKIP_BUILD") != Some("1") {
            assert!(
                assets::FILES
                    .iter()
                    .any(|a| a.path.starts_with("/assets/") && a.path.ends_with(".js")),
                "no built script among {:?}",
                assets::FILES.iter().map(|a| a.path).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split("; ").collect();
        assert!(directives.contains(&"script-src 'self'"), "{directives:?}");
        assert!(directives.contains(&"frame-ancestors 'none'"));
        assert!(directives.contains(&"object-src 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
    }
}
