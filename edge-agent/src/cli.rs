//! The `meridian-agent` command line: parse, validate (exit 2 on a bad
//! setting), run until SIGINT/SIGTERM, shut down in order.

use std::{process::ExitCode, time::Duration};

use clap::Parser;

use crate::{Agent, config};

/// Runs the agent as the `meridian-agent` binary does.
pub fn main() -> ExitCode {
    let cli = config::Cli::parse();
    let cfg = match config::load(cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("meridian-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meridian-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        telemetry::init_logging("info", cfg.log_format);
        telemetry::install_crypto_provider();
        let agent = match Agent::start(cfg).await {
            Ok(a) => a,
            Err(error) => {
                tracing::error!(%error, "agent failed to start");
                return ExitCode::FAILURE;
            }
        };
        telemetry::signal().await;
        tracing::info!("shutting down: receivers first, then draining the buffer");
        if !agent.shutdown(Duration::from_secs(15)).await {
            tracing::warn!("shutdown grace period ran out");
        }
        ExitCode::SUCCESS
    })
}
