//! The files `build.rs` embedded from the UI build (`OUT_DIR/assets.rs`).

/// One built file, served at `path`.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// URL path, `/index.html`, `/assets/index-<hash>.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));
