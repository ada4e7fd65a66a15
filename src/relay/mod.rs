//! Relay: hands logged events on to other systems (a KDS, a QR menu,
//! ProAlert, a data warehouse) from the one notify connection tillgate has.
//!
//! r_keeper's driver keeps 256 events per destination in memory and wants a
//! paid licence for a second one. Here every destination is a consumer of
//! the durable log with its own cursor ([`worker`]): the backlog is bounded
//! only by retention, order is the log's order, and a restart resumes where
//! each destination stood. Destinations come from the config file and from
//! the API ([`api`]); both go through [`destination::expand`] and the SSRF
//! [`guard`]. One delivery is [`send`]; relay's tables are [`store`]; its
//! settings, metrics and command line are [`settings`], [`metrics`] and
//! [`cli`]. This module starts it all and keeps the running workers.

pub mod api;
pub mod cli;
pub mod destination;
pub mod guard;
pub mod metrics;
pub mod send;
pub mod settings;
pub mod sign;
pub mod store;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::core::bus::Bus;
use crate::core::clock::SharedClock;
use crate::core::config::{AnySection, ConfigError};
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::log::Committed;
use crate::core::migrate::Migration;
use crate::core::store::{Db, StoreError};
pub use api::api_routes;
pub use cli::{CliArgs, RelayCommand, ReplayArgs, replay_via_api, run_cli};
pub use settings::{FileSection, Settings, validate};
use store::Source;

/// What request handlers need from this feature at run time.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Service>,
}

/// The running relay: one worker per enabled, unpaused destination.
pub struct Service {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub client: reqwest::Client,
    committed: watch::Receiver<Committed>,
    bus: Bus,
    clock: SharedClock,
    shutdown: CancellationToken,
    /// The runtimes delivery workers run on, taken in turn (see
    /// [`crate::core::runtimes`]).
    runtimes: Vec<tokio::runtime::Handle>,
    next_runtime: std::sync::atomic::AtomicUsize,
    /// Held for every change to a destination, so a change never races a
    /// running worker's cursor: the worker is stopped, the change stored,
    /// the worker started again.
    workers: Mutex<HashMap<String, Running>>,
}

pub(crate) struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    pub fn relay(&self) -> &Service {
        &self.inner
    }
}

impl Service {
    /// Locks the worker table; callers stop and restart workers under it.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.workers.lock().await
    }

    /// Stops `id`'s worker (which stores its cursor) and waits for it.
    pub(crate) async fn stop_worker(map: &mut HashMap<String, Running>, id: &str) {
        if let Some(r) = map.remove(id) {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }

    /// Starts `id`'s worker from what storage says, if enabled and unpaused.
    pub(crate) async fn start_worker(
        &self,
        map: &mut HashMap<String, Running>,
        id: &str,
    ) -> Result<(), StoreError> {
        let Some(stored) = store::get(&self.db, id).await? else {
            return Ok(());
        };
        let dest = match destination::validate_one(
            stored.input.clone(),
            self.settings.timeout,
            self.settings.allow_private_destinations,
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(destination = %id, error = %e, "stored relay destination is no longer valid; not started");
                return Ok(());
            }
        };
        if !dest.enabled {
            return Ok(());
        }
        let w = worker::Worker::new(
            Arc::new(dest),
            self.db.clone(),
            self.client.clone(),
            self.settings.clone(),
            self.bus.clone(),
            self.committed.clone(),
            stored.paused,
        )
        .await?;
        let stop = self.shutdown.child_token();
        let i = self
            .next_runtime
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task =
            self.runtimes[i % self.runtimes.len()].spawn(w.run(stop.clone(), self.clock.clone()));
        map.insert(id.to_string(), Running { stop, task });
        Ok(())
    }
}

/// The relay feature: destinations, their workers, the API and CLI.
pub struct Relay;

impl Feature for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn settings(
        &self,
        section: crate::core::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        crate::core::feature::settings_from::<FileSection, _>(section, validate)
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![crate::migration!("0004_relay")]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let handle = start(ctx).await?;
            Ok(Routes {
                operator: api_routes().with_state(handle),
                ..Routes::default()
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        crate::core::feature::subcommand::<CliArgs>(
            "relay",
            "Relay destinations: replay events to one",
        )
    }

    fn run_command<'a>(
        &'a self,
        m: &'a clap::ArgMatches,
        ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        crate::core::feature::run_subcommand(m, move |a: CliArgs| run_cli(a, ctx))
    }
}

/// Starts the feature's workers.
pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    start_with(ctx, send::client).await
}

/// [`start`] with the delivery client's builder given, so a test can make
/// it fail. It is built first: without its guard relay does not start (and
/// nor does tillgate), rather than post through an unguarded client.
async fn start_with(
    ctx: &mut StartCtx,
    client: fn(bool) -> Result<reqwest::Client, send::ClientError>,
) -> anyhow::Result<Handle> {
    use anyhow::Context;
    let settings = Arc::new(ctx.config.section::<Settings>());
    let client = client(settings.allow_private_destinations)
        .context("relay cannot deliver safely, so tillgate does not start")?;
    metrics::describe();
    let db = ctx.db.clone();
    // The config file is the truth for its destinations: store them, and
    // drop config-made ones that are no longer in the file.
    let existing = store::list(&db).await?;
    for d in &settings.destinations {
        if existing
            .iter()
            .any(|e| e.id == d.id && e.source == Source::Api)
        {
            anyhow::bail!(
                "relay destination id {:?} in the config file is already used by a destination created through the API; rename one of them",
                d.id
            );
        }
        store::upsert(&db, &d.id, Source::Config, &d.input).await?;
        if let Err(e) = guard::check_resolved(&d.url, settings.allow_private_destinations).await {
            // Not fatal: DNS may be down at start; the delivery client's
            // resolver applies the same rule at every connection.
            tracing::warn!(destination = %d.id, error = %e, "relay destination check");
        }
    }
    for e in existing.iter().filter(|e| e.source == Source::Config) {
        if !settings.destinations.iter().any(|d| d.id == e.id) {
            tracing::info!(destination = %e.id, "relay destination removed from the config file; deleting it");
            store::delete(&db, &e.id).await?;
        }
    }
    let relay = Arc::new(Service {
        db: db.clone(),
        client,
        settings,
        committed: ctx.log.subscribe(),
        bus: ctx.bus.clone(),
        clock: ctx.clock.clone(),
        shutdown: ctx.shutdown.clone(),
        runtimes: ctx.runtimes.delivery_handles(),
        next_runtime: Default::default(),
        workers: Mutex::new(HashMap::new()),
    });
    {
        let mut map = relay.lock().await;
        for d in store::list(&db).await? {
            relay.start_worker(&mut map, &d.id).await?;
        }
    }
    // Waits for every worker (including ones the API started later) at
    // shutdown, so `run` closes storage only after their cursors are stored.
    let r = relay.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.runtimes.spawn(async move {
        shutdown.cancelled().await;
        let mut map = r.lock().await;
        let ids: Vec<String> = map.keys().cloned().collect();
        for id in ids {
            Service::stop_worker(&mut map, &id).await;
        }
    });
    Ok(Handle { inner: relay })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without its guarded delivery client relay does not start (so nor
    /// does tillgate), and says why; with it, it starts.
    #[tokio::test]
    async fn start_fails_closed_without_the_guarded_client() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::core::config::Config::for_tests(dir.path());
        let db = Db::open(&config.storage).await.unwrap();
        crate::core::migrate::migrate(&db, &crate::app::migrations())
            .await
            .unwrap();
        let (log, task) = crate::core::log::writer(db.clone(), 16).await.unwrap();
        let writer = tokio::spawn(task.run());
        let shutdown = CancellationToken::new();
        let mut ctx = StartCtx {
            db: db.clone(),
            log,
            config: Arc::new(config),
            shutdown: shutdown.clone(),
            runtimes: crate::core::runtimes::Runtimes::start().unwrap(),
            bus: Bus::default(),
            clock: SharedClock::system(),
        };
        fn unbuildable(_: bool) -> Result<reqwest::Client, send::ClientError> {
            // reqwest makes its errors only itself: a request it cannot build.
            let e = reqwest::Client::new().get("not a url").build().unwrap_err();
            Err(send::ClientError(e))
        }
        let e = start_with(&mut ctx, unbuildable)
            .await
            .err()
            .expect("relay refused to start");
        let text = format!("{e:#}");
        assert!(
            text.contains("does not start") && text.contains("SSRF guard"),
            "{text}"
        );
        assert!(start_with(&mut ctx, send::client).await.is_ok());
        shutdown.cancel();
        ctx.into_runtimes().join_all().await;
        writer.await.unwrap();
        db.close().await;
    }
}
