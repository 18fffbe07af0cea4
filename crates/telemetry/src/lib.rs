//! What every Meridian binary shares: log setup, the TLS crypto provider,
//! metric names, the clock, the shutdown helper, byte budgets ([`budget`]),
//! server start-up with its deadlines and limits ([`serve`]) and the
//! configuration helpers and flag blocks ([`config`]).

mod blocking;
pub mod budget;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod serve;
mod shutdown;

pub use blocking::run_blocking;
pub use shutdown::{Shutdown, signal};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global tracing subscriber (logs go to stderr). `RUST_LOG`
/// overrides `default`.
/// Calling it twice is harmless (tests build several apps per process).
pub fn init_logging(default: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
}

/// Installs rustls' ring crypto provider as the process default. Every
/// binary and test calls this once before any TLS config is built; a second
/// call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
