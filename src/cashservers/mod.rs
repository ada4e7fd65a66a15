//! Cash-server tooling (`[rk7]`, `tillgate rk7 ...`): tillgate talks back
//! to the cash servers it hears from, through their XML interface and
//! subscription endpoint (the `rk7` crate's client): it manages where they
//! send (`subscriptions`, `repoint`), fills lost events from their order
//! tables (`backfill`, on a gap or on request, and a periodic
//! reconciliation), and tells `tillgate doctor` how they are.
//!
//! Files: `settings.rs` (the section), `connect.rs` (clients, the list of
//! cash servers, failures in plain words), `subscriptions.rs`,
//! `backfill.rs`, `versions.rs` (the consumer knowing each order's version),
//! `worker.rs` (gap → job → backfill on the outbox loop), `store.rs`,
//! `api.rs`, `cli.rs`.

pub mod api;
pub mod backfill;
pub mod cli;
pub mod connect;
pub mod settings;
pub mod store;
pub mod subscriptions;
pub mod versions;
pub mod worker;

use anyhow::Context;

use crate::core::config::{AnySection, ConfigError, SectionSource};
use crate::core::consumer::Runner;
use crate::core::feature::{
    BoxFuture, CliCtx, Feature, Routes, StartCtx, run_subcommand, settings_from, subcommand,
};
use crate::core::migrate::Migration;
use crate::core::outbox::{self, LoopOptions, Wake};

pub use settings::{FileSection, Settings, validate};

/// The feature value registered in `app::features()`.
pub struct Rk7;

impl Feature for Rk7 {
    fn name(&self) -> &'static str {
        "rk7"
    }

    fn settings(&self, section: SectionSource) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        settings_from(section, validate)
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![crate::migration!("0010_cash_servers")]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let settings = ctx.config.section::<Settings>();
            let runner = Runner::new(
                versions::Versions,
                ctx.db.clone(),
                crate::core::consumer::BATCH,
            )
            .await
            .context("starting the rk7-versions consumer")?;
            ctx.runtimes
                .spawn(runner.run(ctx.log.subscribe(), ctx.shutdown.clone()));

            // A recorded gap wakes the backfill worker at once.
            let wake = Wake::new();
            let (w, mut committed, stop) =
                (wake.clone(), ctx.log.subscribe(), ctx.shutdown.clone());
            ctx.runtimes.spawn(async move {
                let mut seen = committed.borrow().gaps_found;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        r = committed.changed() => {
                            if r.is_err() { break; }
                            let now = committed.borrow().gaps_found;
                            if now != seen { seen = now; w.notify(); }
                        }
                    }
                }
            });
            let worker = worker::Backfiller::new(
                ctx.db.clone(),
                ctx.log.clone(),
                settings.clone(),
                ctx.clock.clone(),
            );
            ctx.runtimes.spawn(outbox::run(
                worker,
                "rk7-backfill",
                wake,
                ctx.clock.clone(),
                LoopOptions::default(),
                ctx.shutdown.clone(),
            ));
            let state = api::ApiState {
                db: ctx.db.clone(),
                log: ctx.log.clone(),
                settings,
            };
            Ok(Routes {
                operator: api::routes(state),
                ..Routes::default()
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        subcommand::<cli::CliArgs>(
            "rk7",
            "Cash servers: their subscriptions (list, add, remove, repoint) and backfill of lost events",
        )
    }

    fn run_command<'a>(
        &'a self,
        matches: &'a clap::ArgMatches,
        ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        run_subcommand(matches, move |a: cli::CliArgs| cli::run_cli(a, ctx))
    }
}
