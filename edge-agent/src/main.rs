use std::{process::ExitCode, time::Duration};

use clap::Parser;
use edge_agent::{Agent, config};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = config::Cli::parse();
    let cfg = match config::load(cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("meridian-agent: {e}");
            return ExitCode::from(2);
        }
    };
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
}
