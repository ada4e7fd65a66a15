//! The back office for shop registers: the sales journal (registers post
//! closed receipts; r_keeper paid and return orders arrive from the event
//! log), stock on the sales floor computed from movements, accumulations
//! of discount cards from the journal, the resync document and reports.
//!
//! It stands on loyalty: registers authenticate with loyalty's
//! credentials, and a receipt with a card is journaled inside loyalty's
//! accrual transaction ([`crate::loyalty::accrual`]), so the journal row
//! and the card's accumulated total commit together. Loyalty offers its
//! handle on the bus when it starts (it starts first).

pub mod api;
pub mod cli;
pub mod commit;
pub mod import;
pub mod journal;
pub mod receipt;
pub mod reports;
pub mod resync;
pub mod rkeeper;
pub mod stock;

use std::sync::Arc;

use crate::core::clock::SharedClock;
use crate::core::consumer::Runner;
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::migrate::Migration;
use crate::core::store::Db;
use crate::core::telemetry::{Kind, describe};
pub use cli::{CliArgs, run_cli};

pub struct Backoffice;

/// What the back office's handlers need.
#[derive(Clone)]
pub struct BackofficeState {
    pub db: Db,
    pub journal: commit::Journal,
    /// Loyalty's settings: a resync posts corrections by its rules.
    pub loyalty: Arc<crate::loyalty::Settings>,
    pub clock: SharedClock,
    /// One resync at a time: two at once would both post the same
    /// correction.
    pub resync_lock: Arc<tokio::sync::Mutex<()>>,
}

pub fn describe_metrics() {
    describe(
        Kind::Counter,
        stock::NEGATIVE,
        "Stock movements (sales, write-offs, counts) that left a goods item of a store below zero.",
        false,
    );
}

impl Feature for Backoffice {
    fn name(&self) -> &'static str {
        "backoffice"
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![
            crate::migration!("0012_backoffice"),
            crate::migration!("0016_backoffice_lines_are_movements"),
        ]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            describe_metrics();
            let loyalty_settings = ctx.config.section::<crate::loyalty::Settings>();
            let clock = loyalty_settings.clock.clone();
            let handle = ctx.bus.take::<crate::loyalty::Handle>();
            if handle.is_none() {
                tracing::warn!("loyalty is not running: receipts with a card will be refused");
            }
            let journal = commit::Journal::start(
                ctx.db.clone(),
                handle,
                clock.clone(),
                &ctx.runtimes.storage_handle(),
            );
            let runner = Runner::new(
                rkeeper::RkeeperJournal {
                    clock: clock.clone(),
                },
                ctx.db.clone(),
                crate::core::consumer::BATCH,
            )
            .await?
            .with_coalesce(std::time::Duration::from_millis(50));
            ctx.runtimes
                .spawn(runner.run(ctx.log.subscribe(), ctx.shutdown.clone()));
            let state = BackofficeState {
                db: ctx.db.clone(),
                journal,
                loyalty: Arc::new(loyalty_settings),
                clock,
                resync_lock: Arc::default(),
            };
            Ok(Routes {
                operator: api::operator_routes().with_state(state.clone()),
                public: api::register_routes().with_state(state),
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        crate::core::feature::subcommand::<CliArgs>(
            "backoffice",
            "Back office for shop registers: stock documents, resync, reports, bench",
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
