//! What every Meridian binary shares: log setup, the TLS crypto provider,
//! metric names, the clock, the shutdown helper, byte budgets ([`budget`]),
//! server start-up with its deadlines and limits ([`serve`]) and the
//! configuration helpers and flag blocks ([`config`]).

mod blocking;
pub mod budget;
pub mod clock;
pub mod config;
pub mod exposition;
pub mod metrics;
pub mod serve;
mod shutdown;

pub use blocking::run_blocking;
pub use shutdown::{Shutdown, signal};

use tracing_subscriber::{filter::Targets, fmt, prelude::*};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global tracing subscriber (logs go to stderr). `RUST_LOG`
/// overrides `default`: comma-separated `level` and `target=level`
/// directives (`info,store=debug`). Span and field directives
/// (`[span{field=x}]=debug`) are not supported: they need the regex engine,
/// which costs the first build a minute. A `RUST_LOG` that does not parse
/// falls back to `default`, with a warning.
/// Calling it twice is harmless (tests build several apps per process).
pub fn init_logging(default: &str, format: LogFormat) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let parsed = from_env.as_deref().map(str::parse::<Targets>);
    let (filter, rejected) = match parsed {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (log_filter(default), Some(e)),
        None => (log_filter(default), None),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    if let Some(e) = rejected {
        tracing::warn!(error = %e, "RUST_LOG does not parse; using the default log level");
    }
}

/// The filter for a built-in default (`info`, `warn,gateway=info`); one
/// that does not parse (a programming error) logs at `info`.
fn log_filter(default: &str) -> Targets {
    default
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs rustls' ring crypto provider as the process default. Every
/// binary and test calls this once before any TLS config is built; a second
/// call is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
