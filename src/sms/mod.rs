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
//! * [`settings`] reads and checks `[sms]`; [`store`] holds every SQL
//!   statement of the feature.
//!
//! Phones are parsed once into [`PhoneE164`](crate::core::phone::PhoneE164),
//! which prints masked; text from outside goes through [`redact`].

pub mod api;
pub mod cli;
pub mod consumer;
pub mod delivery;
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
        vec![crate::migration!("0006_sms")]
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

/// Describes the metrics, then (when SMS is on) starts the consumer and
/// the delivery, status and retention workers.
pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    let settings = Arc::new(ctx.config.section::<Settings>());
    delivery::describe_metrics(settings.providers.keys());
    let providers = Arc::new(build_providers(&settings));
    let wake = Wake::new();
    let handle = Handle {
        db: ctx.db.clone(),
        settings: settings.clone(),
        providers: providers.clone(),
        clock: ctx.clock.clone(),
        wake: wake.clone(),
    };
    if !settings.enabled {
        return Ok(handle);
    }
    let consumer = crate::core::consumer::Runner::new(
        consumer::SmsConsumer::new(settings.clone(), ctx.clock.clone(), wake.clone()),
        ctx.db.clone(),
        crate::core::consumer::BATCH,
    )
    .await
    .context("starting the sms consumer")?
    .with_coalesce(Duration::from_millis(50));
    ctx.runtimes
        .spawn(consumer.run(ctx.log.subscribe(), ctx.shutdown.clone()));

    let delivery = delivery::Delivery::new(
        ctx.db.clone(),
        settings.clone(),
        providers.clone(),
        ctx.bus.clone(),
        ctx.clock.clone(),
    )
    .with_shutdown(ctx.shutdown.clone());
    delivery
        .recover()
        .await
        .context("recovering the sms outbox")?;
    ctx.runtimes.spawn(outbox::run(
        delivery,
        "sms-delivery",
        wake,
        ctx.clock.clone(),
        LoopOptions::default(),
        ctx.shutdown.clone(),
    ));

    let status = status::StatusPoll::new(
        ctx.db.clone(),
        settings.status_poll,
        providers,
        ctx.clock.clone(),
    )
    .with_shutdown(ctx.shutdown.clone());
    ctx.runtimes.spawn(outbox::run(
        status,
        "sms-status",
        Wake::new(),
        ctx.clock.clone(),
        LoopOptions::default(),
        ctx.shutdown.clone(),
    ));

    let retention =
        retention::Retention::new(ctx.db.clone(), settings.retention, ctx.clock.clone());
    ctx.runtimes.spawn(outbox::run(
        retention,
        "sms-retention",
        Wake::new(),
        ctx.clock.clone(),
        retention::Retention::loop_options(),
        ctx.shutdown.clone(),
    ));
    Ok(handle)
}
