//! The `meridian-gateway` command line: run (default), `certs`, `demo`,
//! `admin`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use mtls::certs::{self, Subject};

#[cfg(feature = "demo")]
use crate::demo::{self, DemoArgs};
use crate::{Gateway, admin_cli::AdminArgs, config::Settings};

/// meridian-gateway: receives spans from Meridian agents over mTLS, stores
/// them (embedded SQLite by default), and serves the Jaeger-compatible query
/// API and the web UI. With no subcommand it runs the gateway.
#[derive(Debug, Parser)]
#[command(
    name = "meridian-gateway",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML file with any of the run settings; keys are the flag names,
    /// e.g. `http = ":16686"`, `store = ["sqlite://data/meridian.db"]`.
    #[arg(long, env = "MERIDIAN_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run(Box<Settings>),
    /// Create a development CA and issue agent and node certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Gateway plus in-process agents for simulated clusters over real mTLS
    /// on loopback, fed with synthetic cross-cluster traces.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Administer the gateway cluster through a gateway's admin API:
    /// members, shards, clusters, sampling policies, retention, alert rules.
    Admin(Box<AdminArgs>),
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create a CA (`ca.pem`, `ca-key.pem`) in DIR.
    Init {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Issue a certificate for a cluster's agents (`--cluster`) or a gateway
    /// node (`--node`), signed by the CA in --ca-dir (default: --out).
    Issue {
        #[arg(
            long,
            value_name = "NAME",
            conflicts_with = "node",
            required_unless_present = "node"
        )]
        cluster: Option<String>,
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Extra DNS names or IPs for a node certificate (repeatable).
        #[arg(long = "host", value_name = "HOST", requires = "node")]
        hosts: Vec<String>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
    },
}

fn certs_command(cmd: CertsCommand) -> ExitCode {
    let result = match cmd {
        CertsCommand::Init { out } => certs::init_ca(&out).map(|p| {
            eprintln!(
                "created CA {} (keep {} secret)\nnext: meridian-gateway certs issue --cluster NAME --out {}",
                p.cert.display(),
                p.key.display(),
                out.display()
            );
        }),
        CertsCommand::Issue {
            cluster,
            node,
            hosts,
            out,
            ca_dir,
        } => {
            let subject = match (cluster, node) {
                (Some(c), _) => Subject::Cluster(c),
                (None, Some(name)) => Subject::Node { name, hosts },
                (None, None) => {
                    eprintln!("meridian-gateway: give --cluster NAME or --node NAME");
                    return ExitCode::from(2);
                }
            };
            let ca_dir = ca_dir.unwrap_or_else(|| out.clone());
            certs::issue(&ca_dir, &subject, &out).map(|p| {
                eprintln!("issued {} and {}", p.cert.display(), p.key.display());
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the gateway as the `meridian-gateway` binary does.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("meridian-gateway: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    telemetry::install_crypto_provider();
    let settings = match cli.command {
        Some(Command::Certs(cmd)) => return certs_command(cmd),
        Some(Command::Admin(args)) => return crate::admin_cli::run(*args).await,
        #[cfg(feature = "demo")]
        Some(Command::Demo(args)) => {
            telemetry::init_logging("warn", telemetry::LogFormat::Text);
            return match demo::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("meridian-gateway demo: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Run(s)) => *s,
        None => cli.settings,
    };
    let settings = match &cli.config {
        Some(path) => match telemetry::config::read_file::<Settings>(path) {
            Ok(file) => settings.merge(file),
            Err(e) => {
                eprintln!("meridian-gateway: {e}");
                return ExitCode::from(2);
            }
        },
        None => settings,
    };
    let cfg = match settings.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meridian-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging("info", cfg.log_format);
    let gateway = match Gateway::start(cfg).await {
        Ok(g) => g,
        Err(error) => {
            tracing::error!(%error, "gateway failed to start");
            return ExitCode::FAILURE;
        }
    };
    telemetry::signal().await;
    tracing::info!("shutting down: ingest ports first");
    if !gateway.shutdown(Duration::from_secs(15)).await {
        tracing::warn!("shutdown grace period ran out");
    }
    ExitCode::SUCCESS
}
