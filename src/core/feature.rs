//! What a feature is to the rest of tillgate: one value, registered in
//! `app`, that brings everything the feature needs from the process.
//!
//! A feature (relay, alerts, SMS, loyalty, ...) lives in its own folder and
//! exposes one type implementing [`Feature`]: its config section, its
//! migrations, how it starts (workers on the shared runtimes, its routes
//! with its own state) and its command-line subcommand. `app` lists the
//! features and does the rest; nothing in the core names a feature, and a
//! feature names no other feature (they talk through the [`Bus`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::bus::Bus;
use super::clock::SharedClock;
use super::config::{AnySection, Config, ConfigError, Section, SectionSource, ServerOpts};
use super::log::LogWriter;
use super::migrate::Migration;
use super::runtimes::Runtimes;
use super::store::Db;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a feature gets when the server starts.
pub struct StartCtx {
    pub db: Db,
    pub log: LogWriter,
    /// The whole configuration; a feature reads its own section with
    /// [`Config::section`].
    pub config: Arc<Config>,
    /// The one cancellation token: workers stop at a clean point when it
    /// fires.
    pub shutdown: CancellationToken,
    /// Where long-running workers are spawned; the server waits for them
    /// at shutdown.
    pub runtimes: Runtimes,
    /// Notices between features.
    pub bus: Bus,
    pub clock: SharedClock,
}

impl StartCtx {
    /// Ends the start-up phase: everything but the runtimes is dropped (the
    /// log writer ends when its last handle is gone, so this copy must not
    /// outlive the routers').
    pub fn into_runtimes(self) -> Runtimes {
        self.runtimes
    }
}

/// A feature's HTTP routes, each router with its own state already applied.
#[derive(Default)]
pub struct Routes {
    /// Behind the operator token (`/api/...`).
    pub operator: Router,
    /// Open, or guarded by the feature itself (webhooks, register APIs).
    pub public: Router,
}

/// What a feature's subcommand gets: the means to load the configuration
/// and open storage the way `serve` would, without the feature naming
/// `app`.
pub struct CliCtx {
    /// Loads the configuration (file, environment, flags, every feature's
    /// section).
    pub load_config: fn(&ServerOpts) -> Result<Config, ConfigError>,
    /// Every migration of the program, so a subcommand that opens storage
    /// first brings it up to date.
    pub migrations: Vec<Migration>,
}

impl CliCtx {
    pub fn load(&self, opts: &ServerOpts) -> Result<Config, ConfigError> {
        (self.load_config)(opts)
    }

    /// Opens storage and applies every migration.
    pub async fn open(&self, config: &Config) -> anyhow::Result<Db> {
        use anyhow::Context;
        let db = Db::open(&config.storage).await.context("opening storage")?;
        super::migrate::migrate(&db, &self.migrations)
            .await
            .context("migrating storage")?;
        Ok(db)
    }
}

pub trait Feature: Send + Sync + 'static {
    /// Its name: the config section `[name]` and the subcommand
    /// `tillgate name ...`.
    fn name(&self) -> &'static str;

    /// Reads its config section (`None` when the file has none) into its
    /// validated settings. Errors name the setting (`sms.providers...`).
    /// Features without settings keep the default.
    fn settings(
        &self,
        _section: super::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        Ok(None)
    }

    /// Its migration files (see [`crate::migration`]).
    fn migrations(&self) -> Vec<Migration> {
        Vec::new()
    }

    /// Starts its workers and returns its routes.
    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>>;

    /// Its subcommand, if it has one.
    fn command(&self) -> Option<clap::Command> {
        None
    }

    /// Runs its subcommand.
    fn run_command<'a>(
        &'a self,
        _matches: &'a clap::ArgMatches,
        _ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { anyhow::bail!("{} has no subcommand", self.name()) })
    }
}

/// A feature's `settings()`: its section read into its file type `F` and
/// validated into its settings `S`.
pub fn settings_from<F, S>(
    section: SectionSource,
    validate: impl FnOnce(F) -> Result<S, ConfigError>,
) -> Result<Option<Box<dyn AnySection>>, ConfigError>
where
    F: serde::de::DeserializeOwned + Default,
    S: Section,
{
    let file: F = section.parse()?;
    Ok(Some(Box::new(validate(file)?)))
}

/// A feature's `command()`: the subcommand `name` with the arguments of `A`
/// (whose own subcommands are required).
pub fn subcommand<A: clap::Args>(name: &'static str, about: &'static str) -> Option<clap::Command> {
    Some(
        A::augment_args(clap::Command::new(name))
            .about(about)
            .subcommand_required(true),
    )
}

/// A feature's `run_command()`: the matches read into `A`, then `run`.
pub fn run_subcommand<'a, A, Fut>(
    matches: &'a clap::ArgMatches,
    run: impl FnOnce(A) -> Fut + Send + 'a,
) -> BoxFuture<'a, anyhow::Result<()>>
where
    A: clap::FromArgMatches + Send + 'a,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'a,
{
    Box::pin(async move { run(A::from_arg_matches(matches)?).await })
}
