//! The one place that names the features: which there are, in what order
//! they start, and the server's life from start to graceful stop.
//!
//! Adding a feature is its own folder plus one line in [`features`].

pub mod cli;
pub mod edge;
pub mod http;
pub mod serve;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::core::bus::Bus;
use crate::core::clock::SharedClock;
use crate::core::config::{
    AnySection, Config, ConfigError, Overrides, SectionParser, SectionSource, ServerOpts,
};
use crate::core::feature::{Feature, StartCtx};
use crate::core::lease::Leases;
use crate::core::migrate::Migration;
use crate::core::runtimes::Runtimes;
use crate::core::store::{Backend, Db};

/// Every feature, in start order. Order matters where a feature listens on
/// the bus for another's notices: alerts subscribes before anyone raises.
pub fn features() -> Vec<Box<dyn Feature>> {
    vec![
        Box::new(crate::ingest::Ingest),
        Box::new(crate::orders::Orders),
        Box::new(crate::alerts::Alerts),
        Box::new(crate::relay::Relay),
        Box::new(crate::sms::Sms),
        Box::new(crate::loyalty::Loyalty),
        Box::new(crate::backoffice::Backoffice),
        Box::new(crate::cashservers::Rk7),
    ]
}

struct Parser<'a>(&'a dyn Feature);

impl SectionParser for Parser<'_> {
    fn section_name(&self) -> &'static str {
        self.0.name()
    }
    fn parse_section(
        &self,
        section: SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        self.0.settings(section)
    }
}

fn with_parsers<T>(f: impl FnOnce(&[&dyn SectionParser]) -> T) -> T {
    let features = features();
    let parsers: Vec<Parser> = features.iter().map(|f| Parser(f.as_ref())).collect();
    let refs: Vec<&dyn SectionParser> = parsers.iter().map(|p| p as &dyn SectionParser).collect();
    f(&refs)
}

/// Loads the configuration: defaults, the file, the environment and flags,
/// every feature's section.
pub fn load_config(opts: &ServerOpts) -> Result<Config, ConfigError> {
    with_parsers(|p| Config::load(opts.config.as_deref(), opts.overrides(), p))
}

/// A configuration from TOML text (documentation examples, tests).
pub fn config_from_str(text: &str) -> Result<Config, ConfigError> {
    let file = crate::core::config::parse_file(Path::new("<text>"), text)?;
    with_parsers(|p| Config::from_file_and_overrides(file, Overrides::default(), p))
}

/// Every migration file: the core's and each feature's, in number order.
pub fn migrations() -> Vec<Migration> {
    let mut all = crate::core::log::migrations();
    all.extend(crate::console::migrations());
    for f in features() {
        all.extend(f.migrations());
    }
    all.sort_by_key(|m| m.version);
    all
}

/// Runs tillgate until `shutdown` is cancelled, then stops accepting,
/// commits what was received and stops consumers at a clean cursor.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let features = features();
    let mut config = config;
    // A Config built in code (tests, benchmarks) may lack sections: each
    // feature then runs with its validated defaults.
    for f in &features {
        if let Some(s) = f
            .settings(crate::core::config::SectionSource::absent(f.name()))
            .context("default settings")?
        {
            let id = std::any::Any::type_id(s.as_any());
            if !config.sections.contains_id(id) {
                config.sections.insert_any(s);
            }
        }
    }
    crate::core::telemetry::describe_metrics();
    let db = Db::open(&config.storage).await.context("opening storage")?;
    crate::core::migrate::migrate(&db, &migrations())
        .await
        .context("migrating storage")?;
    let (log, writer_task) =
        crate::core::log::writer_with(db.clone(), config.ingest.max_batch, config.log.compression)
            .await
            .context("starting the log writer")?;
    let writer = tokio::spawn(
        writer_task
            .with_quarantine_limits(config.ingest.quarantine)
            .with_dedupe_window(config.log.dedupe_window)
            .run(),
    );

    let api_token = config.api_token.clone();
    let http_config = config.http.clone();
    let runtimes = Runtimes::start().context("starting the workers' runtime")?;
    // Several instances may share a PostgreSQL database: every consumer and
    // worker then runs under a lease (see core::lease and docs/cluster.md).
    // One process owns a SQLite file: nothing changes there.
    let leases =
        (db.backend == Backend::Postgres).then(|| Leases::new(db.clone(), Leases::holder_name()));
    runtimes.install_leases(leases.clone()).await;
    let renewals = CancellationToken::new();
    if let Some(l) = &leases {
        tracing::info!(
            holder = l.holder(),
            "clustered storage: consumers run under leases"
        );
        tokio::spawn(l.clone().run_renewals(renewals.clone()));
    }
    let mut ctx = StartCtx {
        db: db.clone(),
        log,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        runtimes,
        bus: Bus::default(),
        clock: SharedClock::system(),
    };
    if let Some(retention) = ctx.config.log.retention {
        let pruner = crate::core::log::Pruner {
            db: db.clone(),
            log: ctx.log.clone(),
            retention,
        };
        ctx.runtimes.spawn(pruner.run(shutdown.clone()));
    }
    // Features write what the config file says at start (relay
    // destinations, settings): instances starting at once on one
    // PostgreSQL database take turns, so none races another's inserts.
    let start_lock = match db.backend {
        Backend::Postgres => {
            let mut c = db.read.acquire().await.context("starting")?;
            sqlx::query("SELECT pg_advisory_lock(7411020)")
                .execute(&mut *c)
                .await
                .context("waiting for other instances to start")?;
            Some(c)
        }
        Backend::Sqlite => None,
    };
    let mut routes = Vec::with_capacity(features.len());
    for f in &features {
        routes.push(
            f.start(&mut ctx)
                .await
                .with_context(|| format!("starting {}", f.name()))?,
        );
    }
    if let Some(mut c) = start_lock
        && sqlx::query("SELECT pg_advisory_unlock(7411020)")
            .execute(&mut *c)
            .await
            .is_err()
    {
        // The lock dies with its connection.
        c.detach();
    }
    // The writer ends when the last LogWriter handle is gone: the context's
    // copy must not outlive the routers'.
    let runtimes = ctx.into_runtimes();

    let app = http::router(
        db.clone(),
        api_token,
        http_config.clone(),
        routes,
        shutdown.clone(),
    );
    let served = serve::serve(listener, app, &http_config, shutdown.clone()).await;
    // The router (and with it every LogWriter handle) is gone: the writer
    // commits what is queued and ends.
    shutdown.cancel();
    if let Err(e) = writer.await {
        tracing::error!(error = %e, "log writer task failed");
    }
    runtimes.join_all().await;
    // Renewed until every consumer stopped and stored its cursor; then
    // given up so the other instances take over at once.
    if let Some(l) = &leases {
        l.release_all().await;
    }
    renewals.cancel();
    db.close().await;
    served.context("HTTP server failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_section_is_refused_with_the_known_ones() {
        let e = config_from_str("[smss]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `smss`"), "{e}");
        for known in ["listen", "ingest", "relay", "alerts", "sms", "loyalty"] {
            assert!(e.contains(known), "{known} missing from: {e}");
        }
    }

    #[test]
    fn a_section_error_names_the_file_line_and_setting() {
        let e = config_from_str("listen = \"127.0.0.1:11130\"\n\n[relay]\ntimeout_ms = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("<text>"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("timeout_ms"), "{e}");
        let e = config_from_str("[loyalty]\nno_such_key = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `no_such_key`"), "{e}");
        // Validation after parsing still names the setting.
        let e = config_from_str("[relay]\ntimeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("relay.timeout_ms"), "{e}");
    }

    #[test]
    fn each_feature_is_registered_once_with_dense_migrations() {
        let names: Vec<&str> = features().iter().map(|f| f.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let versions: Vec<u32> = migrations().iter().map(|m| m.version).collect();
        let dense: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(versions, dense, "one numbering, no gaps");
    }

    #[test]
    fn every_section_loads_with_defaults() {
        let c = config_from_str("").unwrap();
        assert!(c.sections.get::<crate::relay::Settings>().is_some());
        assert!(c.sections.get::<crate::alerts::Settings>().is_some());
        assert!(c.sections.get::<crate::sms::Settings>().is_some());
        assert!(c.sections.get::<crate::loyalty::Settings>().is_some());
    }
}
