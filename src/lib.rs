//! tillgate: a hub between r_keeper 7 cash servers and everything around
//! them. Cash servers POST HTTP Order Notify events to tillgate; tillgate
//! stores them durably in an event log, and every feature (order state,
//! relay, alerts, ...) is a consumer of that log.
//!
//! [`run`] starts the whole server on a listener the caller owns, so tests
//! and benchmarks run the real thing on port 0.

pub mod alerts;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod ingest;
pub mod loyalty;
pub mod orders;
pub mod relay;
pub mod simulate;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod workers;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Db;
use crate::store::consumer::Runner;

impl FeatureCtx {
    /// Ends the start-up phase: everything but the workers is dropped.
    pub fn into_workers(self) -> workers::Workers {
        self.workers
    }
}

/// Events a consumer applies per transaction at most. Measured with
/// `tillgate bench`: 100 made the consumers take the shared SQLite write
/// lock in more, shorter turns, and the log writer waited longer in total
/// (p50 acknowledgement 27 ms against 17 ms with 500).
pub const CONSUMER_BATCH: i64 = 500;

/// Every migration, in order. Features append theirs here.
pub fn migrations() -> Vec<&'static [store::Migration]> {
    vec![
        store::log::MIGRATIONS,
        orders::MIGRATIONS,
        relay::MIGRATIONS,
        alerts::MIGRATIONS,
        sms::MIGRATIONS,
        loyalty::MIGRATIONS,
    ]
}

/// What a feature gets at start-up.
pub struct FeatureCtx {
    pub db: Db,
    pub log: store::log::LogWriter,
    pub config: Arc<Config>,
    /// The one cancellation token: workers stop at a clean point when it fires.
    pub shutdown: CancellationToken,
    /// Spawn long-running workers here (they run on a runtime of their
    /// own, see [`workers`]); `run` waits for them at shutdown.
    pub workers: workers::Workers,
    /// In-process notices between features (e.g. relay tells alerts that a
    /// destination was paused). Alerts subscribes; others send.
    pub operator_events: tokio::sync::broadcast::Sender<OperatorEvent>,
}

/// Something an operator should hear about, raised by one feature for the
/// alerts feature to deliver.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorEvent {
    /// Stable kind, e.g. `relay_destination_paused`, `sms_stopped`.
    pub kind: String,
    pub rest_code: Option<String>,
    /// Plain text for the owner.
    pub text: String,
}

/// Runs tillgate until `shutdown` is cancelled, then stops accepting,
/// commits what was received and stops consumers at a clean cursor.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let db = Db::open(&config.storage).await.context("opening storage")?;
    db.migrate(&migrations())
        .await
        .context("migrating storage")?;
    let (log, writer_task) = store::log::writer(db.clone(), config.ingest.max_batch)
        .await
        .context("starting the log writer")?;
    let writer = tokio::spawn(writer_task.run());

    let config = Arc::new(config);
    let mut ctx = FeatureCtx {
        db: db.clone(),
        log: log.clone(),
        config: config.clone(),
        shutdown: shutdown.clone(),
        workers: workers::Workers::start().context("starting the workers' runtime")?,
        operator_events: tokio::sync::broadcast::channel(256).0,
    };
    let orders = Runner::new(orders::StateConsumer, db.clone(), CONSUMER_BATCH)
        .await
        .context("starting the order-state consumer")?
        .with_coalesce(std::time::Duration::from_millis(50));
    ctx.workers
        .spawn(orders.run(log.subscribe(), shutdown.clone()));
    if let Some(retention) = config.log.retention {
        let pruner = store::log::Pruner {
            db: db.clone(),
            retention,
        };
        ctx.workers.spawn(pruner.run(shutdown.clone()));
    }
    let relay = relay::start(&mut ctx).await.context("starting relay")?;
    let alerts = alerts::start(&mut ctx).await.context("starting alerts")?;
    let sms = sms::start(&mut ctx).await.context("starting sms")?;
    let loyalty = loyalty::start(&mut ctx).await.context("starting loyalty")?;
    // The writer ends when the last LogWriter handle is gone; the context's
    // copy must not outlive the router's.
    let workers = ctx.into_workers();

    let state = http::AppState {
        db: db.clone(),
        log,
        config,
        metrics: telemetry::metrics_handle(),
        relay,
        alerts,
        sms,
        loyalty,
    };
    let app = http::router(state);
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let served = serve.await;
    // The router (and with it every LogWriter handle) is gone: the writer
    // commits what is queued and ends.
    shutdown.cancel();
    if let Err(e) = writer.await {
        tracing::error!(error = %e, "log writer task failed");
    }
    workers.join_all().await;
    db.close().await;
    served.context("HTTP server failed")
}
