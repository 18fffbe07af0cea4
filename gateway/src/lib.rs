//! meridian-gateway, the binary: configuration, the command line, and the
//! wiring of the gateway's concerns, each a crate of its own (ARCHITECTURE.md
//! has the map and the arrows, which point down only):
//!
//! - `control-plane` (openraft, peers, the admin API) over the pure
//!   `control-state`;
//! - `ingest` (federation service, write path, Control stream, agent
//!   registry) over `mtls`;
//! - `stitch` (stitching and cross-cluster tail decisions);
//! - `query` (Jaeger v1 and the stitched views);
//! - `metrics-alerts` (RED storage, rollups, SPM/RED APIs, alerts).
//!
//! Here: [`config`] (flags, file, env → a validated [`GatewayConfig`]),
//! [`app`] (open the store, bind every port, start every concern, shut down
//! in order), [`http`] (the `--http` router assembly), [`upkeep`] (the
//! shard map and retention this node runs), [`cli`] and [`admin_cli`] (the
//! command line), and `demo` (a gateway with in-process agents, behind the
//! default feature `demo`: the only place that knows the `edge-agent`
//! crate; CI checks it).

pub mod admin_cli;
pub mod app;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod http;
pub mod upkeep;

pub use app::{Gateway, GatewayError};
pub use config::GatewayConfig;
