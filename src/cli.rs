//! The command line: `tillgate serve`, `tillgate simulate`, `tillgate bench`.
//!
//! Flags override `TILLGATE_*` environment variables (clap merges those),
//! which override the config file, which overrides defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Overrides};

#[derive(Parser, Debug)]
#[command(
    name = "tillgate",
    version,
    about = "A hub between r_keeper cash servers and everything around them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: ingest, event log, consumers and the operator API.
    Serve(ServeArgs),
    /// Play one or more r_keeper cash servers sending notify events.
    Simulate(crate::simulate::SimulateArgs),
    /// Load benchmark of the ingest path against a do-nothing HTTP server.
    Bench(crate::bench::BenchArgs),
    /// Relay destinations: replay.
    Relay(crate::relay::CliArgs),
    /// Owner alerts and shift reports.
    Alerts(crate::alerts::CliArgs),
    /// Guest SMS: balance and status.
    Sms(crate::sms::CliArgs),
    /// Loyalty processing: registers, cards, catalogue.
    Loyalty(crate::loyalty::CliArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServerOpts {
    /// TOML config file.
    #[arg(long, env = "TILLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:11130].
    #[arg(long, env = "TILLGATE_LISTEN")]
    pub listen: Option<String>,
    /// Data directory for the embedded SQLite database [default: ./tillgate-data].
    #[arg(long = "data", env = "TILLGATE_DATA")]
    pub data_dir: Option<PathBuf>,
    /// postgres://user:pass@host/db to use PostgreSQL instead of SQLite.
    #[arg(long, env = "TILLGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Bearer token for the operator API (required off loopback).
    #[arg(long, env = "TILLGATE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Shared key cash servers must send as ?key= on ingest paths.
    #[arg(long, env = "TILLGATE_INGEST_KEY", hide_env_values = true)]
    pub ingest_key: Option<String>,
}

impl ServerOpts {
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        Config::load(
            self.config.as_deref(),
            Overrides {
                listen: self.listen.clone(),
                data_dir: self.data_dir.clone(),
                database_url: self.database_url.clone(),
                api_token: self.api_token.clone(),
                ingest_key: self.ingest_key.clone(),
            },
        )
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_tracing();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = args.opts.load()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_shutdown(shutdown.clone()));
            tracing::info!(listen = %config.listen, "tillgate serving");
            crate::run(config, listener, shutdown).await
        }
        Command::Simulate(args) => crate::simulate::run_cli(args).await,
        Command::Bench(args) => crate::bench::run_cli(args).await,
        Command::Relay(args) => crate::relay::run_cli(args).await,
        Command::Alerts(args) => crate::alerts::run_cli(args).await,
        Command::Sms(args) => crate::sms::run_cli(args).await,
        Command::Loyalty(args) => crate::loyalty::run_cli(args).await,
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new requests; committing what was received");
    token.cancel();
}
