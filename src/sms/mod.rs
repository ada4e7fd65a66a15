//! Guest SMS when the kitchen reaches a chosen status (the KDS states
//! r_keeper sends in each dish's `kdsstate`).
//!
//! How it fits together:
//!
//! * [`consumer::SmsConsumer`] reads the event log with a durable cursor. It
//!   keeps guest contacts that come with consent (order external property)
//!   and, when an order's kitchen step ([`kitchen`]) reaches or passes the
//!   restaurant's chosen step, writes one outbox row in the same transaction
//!   as its cursor. A unique key on (order, kind) makes that "exactly once
//!   per order" across restarts and replays.
//! * [`delivery::Delivery`] sends due outbox rows through a [`provider`]
//!   (sms.ru or a generic HTTP aggregator), retries temporary failures with
//!   backoff, records permanent ones, stops and raises an operator event on
//!   money or credential problems. [`status::StatusPoll`] asks about
//!   delivery, [`retention::Retention`] deletes guest phones after the
//!   retention period. All three are outbox workers on the core loop.
//! * [`api`] is the operator API: messages, balance, settings, contacts;
//!   [`cli`] the `tillgate sms` command.
//! * [`guard`] is what an SMS must pass before it is queued for sending
//!   (allowed countries, per-restaurant hourly and daily caps): an order's
//!   phone comes from whoever posts events, so the account must not be
//!   pumped. Refusals are outbox rows with their reason, never silence.
//! * [`settings`] reads and checks `[sms]`; [`global`] lays the switch,
//!   default sender and provider tokens set in the console over it (the
//!   file wins where it sets one); [`store`] holds every SQL statement of
//!   the feature.
//!
//! Phones are parsed once into [`PhoneE164`](crate::core::phone::PhoneE164),
//! which prints masked; text from outside goes through [`redact`].

pub mod api;
pub mod cli;
pub mod consumer;
pub mod delivery;
pub mod global;
pub mod guard;
pub mod kitchen;
pub mod provider;
pub mod redact;
pub mod retention;
pub mod settings;
pub mod status;
pub mod store;
pub mod template;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::core::clock::SharedClock;
use crate::core::config::{AnySection, ConfigError};
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::migrate::Migration;
use crate::core::outbox::{self, LoopOptions, Wake};
use crate::core::store::Db;
use provider::Provider;

pub use api::api_routes;
pub use cli::{CliArgs, SmsCommand, run_cli};
pub use settings::{
    Checked, DEFAULT_GENERIC_MAX_PARTS, DEFAULT_SMSRU_URL, DEFAULT_TEMPLATE, FileSection,
    ProviderFile, ProviderSettings, Restaurant, RestaurantFile, SMSRU_MAX_PARTS, SettingError,
    Settings, StepInput, validate, validate_restaurant,
};

/// What request handlers need from this feature at run time.
#[derive(Clone)]
pub struct Handle {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub providers: Arc<HashMap<String, Arc<dyn Provider>>>,
    pub clock: SharedClock,
    /// The delivery worker's: a lifted stop makes held rows due at once.
    pub wake: Wake,
    /// The switch, tokens and default sender set in the console.
    pub global: global::LiveGlobal,
}

/// The guest-SMS feature: kitchen steps from the log, the SMS outbox and
/// its providers, contacts with consent, the API and CLI.
pub struct Sms;

impl Feature for Sms {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn settings(
        &self,
        section: crate::core::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        crate::core::feature::settings_from::<FileSection, _>(section, validate)
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![
            crate::migration!("0006_sms"),
            crate::migration!("0017_sms_caps"),
        ]
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
        crate::core::feature::subcommand::<CliArgs>("sms", "Guest SMS: balance and status")
    }

    fn run_command<'a>(
        &'a self,
        m: &'a clap::ArgMatches,
        ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        crate::core::feature::run_subcommand(m, move |a: CliArgs| run_cli(a, ctx))
    }
}

pub fn build_providers(settings: &Settings) -> HashMap<String, Arc<dyn Provider>> {
    settings
        .providers
        .iter()
        .map(|(n, p)| (n.clone(), p.build()))
        .collect()
}

/// Describes the metrics and starts the consumer and the delivery, status
/// and retention workers once SMS is switched on (in the file, or later in
/// the console: no restart).
pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    let settings = Arc::new(ctx.config.section::<Settings>());
    delivery::describe_metrics(settings.providers.keys());
    let global = global::live(ctx.db.clone(), settings.clone());
    // Providers follow the token set in the console (when the file has none).
    let providers: Arc<HashMap<String, Arc<dyn Provider>>> = Arc::new(
        settings
            .providers
            .iter()
            .map(|(n, p)| {
                let p: Arc<dyn Provider> =
                    Arc::new(global::LiveProvider::new(n, p.clone(), global.clone()));
                (n.clone(), p)
            })
            .collect(),
    );
    let wake = Wake::new();
    let handle = Handle {
        db: ctx.db.clone(),
        settings: settings.clone(),
        providers: providers.clone(),
        clock: ctx.clock.clone(),
        wake: wake.clone(),
        global: global.clone(),
    };
    let workers = Workers {
        db: ctx.db.clone(),
        settings,
        providers,
        global: global.clone(),
        bus: ctx.bus.clone(),
        clock: ctx.clock.clone(),
        wake,
        commits: ctx.log.subscribe(),
        shutdown: ctx.shutdown.clone(),
    };
    if global
        .get()
        .await
        .context("reading stored sms settings")?
        .enabled
    {
        workers.run().await.map(|run| ctx.runtimes.spawn(run))?;
    } else {
        // Nothing runs (no cursor moves, no phone is kept) until SMS is
        // switched on; then the workers start here.
        let shutdown = ctx.shutdown.clone();
        ctx.runtimes.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(crate::core::settings::CHECK_EVERY) => {}
                }
                if global.current().await.enabled {
                    break;
                }
            }
            tracing::info!("sms switched on; starting its workers");
            match workers.run().await {
                Ok(run) => run.await,
                Err(e) => tracing::error!(error = %e, "sms workers did not start"),
            }
        });
    }
    Ok(handle)
}

/// What the SMS workers need, gathered at start so they can start later.
struct Workers {
    db: Db,
    settings: Arc<Settings>,
    providers: Arc<HashMap<String, Arc<dyn Provider>>>,
    global: global::LiveGlobal,
    bus: crate::core::bus::Bus,
    clock: SharedClock,
    wake: Wake,
    commits: tokio::sync::watch::Receiver<crate::core::log::Committed>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Workers {
    /// Prepares the consumer and the workers (recovering the outbox); the
    /// future that runs them all until shutdown.
    async fn run(self) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let w = self;
        let consumer = crate::core::consumer::Runner::new(
            consumer::SmsConsumer::new(
                w.settings.clone(),
                w.clock.clone(),
                w.wake.clone(),
                w.bus.clone(),
            )
            .with_global(w.global.clone()),
            w.db.clone(),
            crate::core::consumer::BATCH,
        )
        .await
        .context("starting the sms consumer")?
        .with_coalesce(Duration::from_millis(50));
        let delivery = delivery::Delivery::new(
            w.db.clone(),
            w.settings.clone(),
            w.providers.clone(),
            w.bus.clone(),
            w.clock.clone(),
        )
        .with_shutdown(w.shutdown.clone());
        delivery
            .recover()
            .await
            .context("recovering the sms outbox")?;
        let status = status::StatusPoll::new(
            w.db.clone(),
            w.settings.status_poll,
            w.providers.clone(),
            w.clock.clone(),
        )
        .with_shutdown(w.shutdown.clone());
        let retention =
            retention::Retention::new(w.db.clone(), w.settings.retention, w.clock.clone());
        Ok(async move {
            tokio::join!(
                consumer.run(w.commits, w.shutdown.clone()),
                outbox::run(
                    delivery,
                    "sms-delivery",
                    w.wake,
                    w.clock.clone(),
                    LoopOptions::default(),
                    w.shutdown.clone(),
                ),
                outbox::run(
                    status,
                    "sms-status",
                    Wake::new(),
                    w.clock.clone(),
                    LoopOptions::default(),
                    w.shutdown.clone(),
                ),
                outbox::run(
                    retention,
                    "sms-retention",
                    Wake::new(),
                    w.clock.clone(),
                    retention::Retention::loop_options(),
                    w.shutdown.clone(),
                ),
            );
        })
    }
}
