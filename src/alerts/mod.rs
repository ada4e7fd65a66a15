//! Owner alerts in Telegram and the shift-close report.
//!
//! How it fits together:
//! - [`rules::AlertConsumer`] reads the event log (durable cursor `alerts`)
//!   and records alerts in the outbox ([`store`]) in the same transaction;
//! - [`watch::Watchdog`] adds the clock-driven alerts (silence, gaps, shift
//!   closed by closing time);
//! - operator events from other features (relay paused, sms stopped, sms
//!   cap reached) are queued for the owners' chat;
//! - [`sender::Sender`] delivers the outbox to Telegram within its limits;
//! - [`bot::Bot`] answers `/report`, `/status`, `/mute` by long polling.
//!
//! The sender, the watchdog and the bot each run on the one worker loop
//! ([`crate::core::outbox::run`]). Every alert is recorded; routing decides
//! only where it goes: one no chat takes is kept as `unrouted`. Without a
//! bot token, alerts are still computed and listed by `GET /api/alerts`;
//! they are delivered once a token is configured (in the file, or in the
//! console: no restart).
//!
//! The settings every part reads are live ([`settings::live`]): the
//! file's, with restaurants, the token and the owners' chat saved through
//! [`settings_api`] (the console) laid over them, re-read on every
//! instance within a second of a change.

pub mod bot;
pub mod doctor;
pub mod kind;
pub mod limiter;
pub mod payload;
pub mod report;
pub mod rules;
pub mod sender;
pub mod settings;
pub mod settings_api;
pub mod store;
pub mod telegram;
pub mod text;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::routing::get;

use crate::core::api_error::{ApiError, ApiResult};
use crate::core::backoff::MAX_RETRY_AFTER;
use crate::core::config::{AnySection, ConfigError};
use crate::core::consumer::Runner;
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::migrate::Migration;
use crate::core::outbox::{self, LoopOptions, Wake};
use crate::core::store::Db;
use crate::core::telemetry::{Kind, describe};
pub use kind::AlertKind;
pub use settings::{FileSection, Settings, validate};
use store::AlertState;

/// What request handlers need from this feature at run time.
#[derive(Clone)]
pub struct Handle {
    pub db: Db,
    /// The config file's settings, as validated at start.
    pub file: Arc<Settings>,
    /// The settings in effect (the file's with the console's over them).
    pub live: settings::live::LiveSettings,
    pub clock: crate::core::clock::SharedClock,
}

/// Builds the texts from the settings (built-in templates, or overridden).
pub fn texts(settings: &Settings) -> Result<text::Texts, text::TextError> {
    let names: BTreeMap<String, String> = settings
        .restaurants
        .iter()
        .map(|(k, r)| (k.clone(), r.name.clone()))
        .collect();
    text::Texts::new(settings.language, settings.templates_dir.as_deref(), names)
}

/// The alerts feature: rules over the log, the Telegram outbox and bot,
/// the shift report.
pub struct Alerts;

impl Feature for Alerts {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn settings(
        &self,
        section: crate::core::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        crate::core::feature::settings_from::<FileSection, _>(section, validate)
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![
            crate::migration!("0005_alerts"),
            crate::migration!("0008_alerts_unrouted"),
        ]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let handle = start(ctx).await?;
            Ok(Routes {
                operator: api_routes()
                    .with_state(ctx.db.clone())
                    .merge(settings_api::routes().with_state(handle)),
                ..Routes::default()
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        crate::core::feature::subcommand::<CliArgs>("alerts", "Owner alerts and shift reports")
    }

    fn run_command<'a>(
        &'a self,
        m: &'a clap::ArgMatches,
        ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        crate::core::feature::run_subcommand(m, move |a: CliArgs| run_cli(a, ctx))
    }
}

/// Registers the feature's metrics, so `/metrics` lists them (at zero)
/// before the first alert.
pub fn describe_metrics() {
    describe(
        Kind::Gauge,
        "tillgate_alerts_pending",
        "Alerts waiting for delivery to Telegram.",
        false,
    );
    describe(
        Kind::Counter,
        "tillgate_alerts_raised_total",
        "Alerts raised by the rules over the event log.",
        false,
    );
    describe(
        Kind::Counter,
        "tillgate_alerts_sent_total",
        "Alerts Telegram accepted in full, by kind.",
        true,
    );
    for k in AlertKind::ALL {
        metrics::counter!("tillgate_alerts_sent_total", "kind" => k.as_str()).increment(0);
    }
}

/// Starts the feature's workers.
pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    describe_metrics();
    let settings = ctx.config.section::<Settings>();
    let texts = Arc::new(texts(&settings).context("alert templates")?);
    let live = settings::live::live(ctx.db.clone(), settings.clone());
    // A stored value that does not hold is logged now, not at the first alert.
    let settings = (*live.get().await.context("reading stored alert settings")?).clone();
    let clock = ctx.clock.clone();
    // Wakes the sender when rows were queued.
    let wake = Wake::new();

    let runner = Runner::new(
        rules::AlertConsumer {
            settings: live.clone(),
            wake: wake.clone(),
            clock: clock.clone(),
        },
        ctx.db.clone(),
        crate::core::consumer::BATCH,
    )
    .await
    .context("starting the alerts consumer")?
    // Alerts are for people: 50 ms later costs nothing, and under load the
    // consumer then writes one transaction per many events instead of
    // taking the SQLite write lock after every group commit of the log.
    .with_coalesce(Duration::from_millis(50));
    ctx.runtimes
        .spawn(runner.run(ctx.log.subscribe(), ctx.shutdown.clone()));

    let dog = watch::WatchdogWorker {
        dog: watch::Watchdog {
            db: ctx.db.clone(),
            settings: settings.clone(),
        },
        clock: clock.clone(),
        sender: wake.clone(),
        live: Some(live.clone()),
    };
    ctx.runtimes.spawn(outbox::run(
        dog,
        "alerts-watchdog",
        Wake::new(),
        clock.clone(),
        LoopOptions::default(),
        ctx.shutdown.clone(),
    ));

    // Operator events from other features go to the owners' chat (and the
    // restaurant's, per routing).
    let mut events = ctx.bus.subscribe();
    let (db, s, shutdown, w, c) = (
        ctx.db.clone(),
        live.clone(),
        ctx.shutdown.clone(),
        wake.clone(),
        clock.clone(),
    );
    ctx.runtimes.spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = events.recv() => ev,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "alerts missed operator events");
                    continue;
                }
                Err(_) => break,
            };
            let alert = payload::Alert::Operator {
                rest_code: ev.rest_code.clone(),
                source: ev.kind.as_str().to_string(),
                text: ev.text.clone(),
            };
            let chats = s.current().await.route(alert.kind(), alert.rest_code());
            let res = async {
                let mut tx = db.write.begin().await?;
                let n = store::enqueue(&mut tx, &alert, &chats, c.now_ms()).await?;
                tx.commit().await?;
                Ok::<_, crate::core::store::StoreError>(n)
            }
            .await;
            match res {
                Ok(n) if n > 0 => w.notify(),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, kind = %ev.kind, "operator event not queued"),
            }
        }
    });

    // The sender and the bot always run: without a token they wait, and a
    // token set in the console starts them without a restart.
    if settings.bot_token.is_none() {
        tracing::info!(
            "alerts: no bot_token configured; alerts are kept in the outbox until one is set"
        );
    }
    let token = settings
        .bot_token
        .clone()
        .unwrap_or_else(|| secrecy::SecretString::from(String::new()));
    let client = telegram::Client::new(&settings.api_base, token);
    let sender = sender::Sender::new(
        ctx.db.clone(),
        client.clone(),
        texts.clone(),
        clock.clone(),
        &settings.limits,
    )
    .with_live(live.clone());
    ctx.runtimes.spawn(outbox::run(
        sender,
        "alerts-sender",
        wake.clone(),
        clock.clone(),
        LoopOptions::default(),
        ctx.shutdown.clone(),
    ));
    let bot = bot::Bot {
        db: ctx.db.clone(),
        client,
        settings: settings.clone(),
        poll_timeout: Duration::from_secs(25),
    };
    let poller = bot::BotPoller::new(bot, clock.clone(), wake.clone(), ctx.shutdown.clone())
        .with_live(live.clone());
    ctx.runtimes.spawn(outbox::run(
        poller,
        "alerts-bot",
        // Nothing else wakes the bot: it waits on Telegram.
        Wake::new(),
        clock.clone(),
        // A 429's retry_after is honoured up to the core's cap.
        LoopOptions {
            max_wait: MAX_RETRY_AFTER,
            ..LoopOptions::default()
        },
        ctx.shutdown.clone(),
    ));
    Ok(Handle {
        db: ctx.db.clone(),
        file: Arc::new(ctx.config.section::<Settings>()),
        live,
        clock,
    })
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    after: Option<i64>,
    limit: Option<i64>,
    state: Option<String>,
}

/// `GET /api/alerts?after=ID&limit=N&state=pending|sent|failed|muted|unrouted`
async fn list_alerts(
    State(db): State<Db>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            "limit must be between 1 and 1000",
        ));
    }
    let state = match q.state.as_deref().map(str::parse::<AlertState>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            return Err(ApiError::bad_request(
                "bad_state",
                "state must be pending, sent, failed, muted or unrouted",
            ));
        }
    };
    let rows = store::list(&db, q.after.unwrap_or(0), limit, state).await?;
    let next_after = rows.last().map(|r| r.id);
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let payload: serde_json::Value =
                serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null);
            serde_json::json!({
                "id": r.id,
                "created_at": crate::core::clock::ms_to_rfc3339(r.created_at),
                "rest_code": r.rest_code,
                "kind": r.kind,
                "chat_id": r.chat_id,
                "state": r.state,
                "attempts": r.attempts,
                "parts_sent": r.parts_sent,
                "sent_at": r.sent_at.map(crate::core::clock::ms_to_rfc3339),
                "last_error": r.last_error,
                "payload_version": r.payload_version,
                "payload": payload,
            })
        })
        .collect();
    Ok(axum::Json(
        serde_json::json!({ "items": items, "next_after": next_after }),
    ))
}

/// Operator-API routes (behind the bearer token).
pub fn api_routes() -> axum::Router<Db> {
    axum::Router::new().route("/api/alerts", get(list_alerts))
}

/// `tillgate alerts ...` command-line arguments.
#[derive(clap::Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: crate::core::config::ServerOpts,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum AlertsCommand {
    /// Print a shift report computed from the event log.
    Report {
        /// Restaurant code (RestCode).
        #[arg(long)]
        rest: String,
        /// Shift number (ShiftNum).
        #[arg(long)]
        shift: i64,
        /// Also write the sales-by-hour chart to this PNG file.
        #[arg(long)]
        chart: Option<std::path::PathBuf>,
    },
}

pub async fn run_cli(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<()> {
    let config = ctx.load(&args.opts)?;
    match args.command {
        AlertsCommand::Report { rest, shift, chart } => {
            if shift <= 0 {
                anyhow::bail!("--shift must be a positive shift number");
            }
            let db = ctx.open(&config).await?;
            let settings = config.section::<Settings>();
            let r = report::compute(&db, &settings, &rest, shift).await?;
            let texts = texts(&settings)?;
            println!("{}", texts.render(&payload::Alert::ShiftReport(r.clone()))?);
            if let Some(path) = chart {
                let png = report::chart_png(&r).map_err(anyhow::Error::msg)?;
                std::fs::write(&path, png)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            db.close().await;
            Ok(())
        }
    }
}
