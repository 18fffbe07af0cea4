//! Meridian's web UI, served by the gateway on `--http`.
//!
//! The central single-page app (search, waterfall, service map, dashboards,
//! alerts) is built by the web UI issue from sources in this crate with
//! Vite, and embedded by `build.rs`. Until then this router serves a small
//! hand-written landing page at `/` that links the APIs the gateway already
//! serves, so a user opening the port sees what is there.

use axum::{Router, response::Html, routing::get};

const INDEX: &str = include_str!("index.html");

/// Routes of the UI (`/`). Merged into the gateway's HTTP router.
pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(INDEX) }))
}
