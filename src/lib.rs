//! tillgate: a hub between r_keeper 7 cash servers and everything around
//! them. Cash servers POST HTTP Order Notify events to tillgate; tillgate
//! stores them durably in an event log, and every feature (order state,
//! relay, alerts, ...) is a consumer of that log.
//!
//! [`run`] starts the whole server on a listener the caller owns, so tests
//! and benchmarks run the real thing on port 0.

pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod ingest;
pub mod orders;
pub mod simulate;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Db;
use crate::store::consumer::Runner;

/// Every migration, in order. Features append theirs here.
pub fn migrations() -> Vec<&'static [store::Migration]> {
    vec![store::log::MIGRATIONS, orders::MIGRATIONS]
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

    let mut workers = tokio::task::JoinSet::new();
    let orders = Runner::new(orders::StateConsumer::default(), db.clone(), 500)
        .await
        .context("starting the order-state consumer")?;
    workers.spawn(orders.run(log.subscribe(), shutdown.clone()));

    let state = http::AppState {
        db: db.clone(),
        log,
        config: Arc::new(config),
        metrics: telemetry::metrics_handle(),
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
    while workers.join_next().await.is_some() {}
    db.close().await;
    served.context("HTTP server failed")
}
