//! Guest SMS when the kitchen reaches a chosen status.
//!
//! Placeholder wiring: the feature fills in its config section, its
//! start-up (consumers, workers) and its routes here.

use crate::config::ConfigError;
use crate::http::AppState;
use crate::store::Migration;

/// The `[sms]` section of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {}

/// Validated settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {}

pub fn validate(_file: FileSection) -> Result<Settings, ConfigError> {
    Ok(Settings {})
}

pub const MIGRATIONS: &[Migration] = &[];

/// What request handlers need from this feature at run time.
#[derive(Clone, Default)]
pub struct Handle {}

/// Starts the feature's workers; called once by [`crate::run`].
pub async fn start(_ctx: &mut crate::FeatureCtx) -> anyhow::Result<Handle> {
    Ok(Handle {})
}

/// Operator-API routes (behind the bearer token).
pub fn api_routes() -> axum::Router<AppState> {
    axum::Router::new()
}

/// Routes with their own authentication (not behind the operator token).
pub fn public_routes() -> axum::Router<AppState> {
    axum::Router::new()
}

/// `tillgate <feature> ...` command-line arguments.
#[derive(clap::Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: crate::cli::ServerOpts,
}

pub async fn run_cli(_args: CliArgs) -> anyhow::Result<()> {
    anyhow::bail!("this command is not available yet")
}
