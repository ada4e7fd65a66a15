//! Loyalty processing for cash registers: cards, bonus accounts, discounts.
//!
//! Unlike the other features this one does not read the event log: cash
//! registers call it online while a receipt is open (`/api/loyalty/v1/*`,
//! HTTP Basic per register, see [`api`]) and the operator manages registers,
//! cards and balances through the operator API ([`operator`]) or the
//! `tillgate loyalty` CLI ([`cli`]). Money lives in an append-only
//! double-entry ledger ([`ledger`]); purchases are two-phase holds
//! ([`ops`]). Each table has one module that holds its SQL: [`cards`],
//! [`operations`], [`ledger`], [`registers`], [`catalog`].

pub mod accrual;
pub mod api;
pub mod auth;
pub mod cards;
pub mod cashiers;
pub mod catalog;
pub mod cli;
pub mod ledger;
pub mod operations;
pub mod operator;
pub mod ops;
pub mod payment;
pub mod ping;
pub mod registers;
pub mod rules;
pub mod shops;
pub mod switches;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};

use crate::core::clock::SharedClock;
use crate::core::config::{AnySection, ConfigError};
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::migrate::Migration;
use crate::core::outbox::{self, LoopOptions, Wake};
use crate::core::store::Db;
use crate::core::telemetry::{Kind, describe};
pub use cli::{CliArgs, run_cli};

/// The loyalty feature: the register API, the operator API and CLI, the
/// hold sweeper and (on SQLite) the group committer.
pub struct Loyalty;

/// What loyalty's handlers need.
#[derive(Clone)]
pub struct LoyaltyState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub handle: Handle,
}

impl Feature for Loyalty {
    fn name(&self) -> &'static str {
        "loyalty"
    }

    fn settings(
        &self,
        section: crate::core::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        crate::core::feature::settings_from::<FileSection, _>(section, validate)
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![
            crate::migration!("0007_loyalty"),
            crate::migration!("0013_loyalty_backoffice"),
            crate::migration!("0019_register_open_from"),
        ]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let handle = start(ctx).await?;
            let state = LoyaltyState {
                db: ctx.db.clone(),
                settings: Arc::new(ctx.config.section::<Settings>()),
                handle,
            };
            Ok(Routes {
                operator: operator::routes()
                    .merge(shops::routes())
                    .merge(payment::api::operator_routes())
                    .with_state(state.clone()),
                public: api::routes()
                    .merge(ping::routes())
                    .merge(payment::api::routes())
                    .with_state(state),
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        crate::core::feature::subcommand::<CliArgs>(
            "loyalty",
            "Loyalty processing: registers, cards, catalogue",
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
use rules::{Promotion, Rules, Tier};

/// The `[loyalty]` section of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Seconds a purchase hold waits for `confirm` or `cancel` before it
    /// expires and releases its bonus (default 900).
    pub hold_ttl_secs: Option<u64>,
    /// Bonus earned per kopeck paid, in basis points (default 500 = 5 %).
    pub earn_bp: Option<i64>,
    /// Largest share of the bonus-eligible amount bonus may pay, basis
    /// points (default 5000 = 50 %).
    pub max_bonus_share_bp: Option<i64>,
    /// Days an earned bonus lot lives; unset means it never expires.
    pub bonus_lifetime_days: Option<u32>,
    /// Discount tiers by accumulated purchase total. Default: one tier
    /// `base` with no discount.
    #[serde(default)]
    pub tiers: Vec<TierFile>,
    #[serde(default)]
    pub promotions: Vec<PromotionFile>,
    /// Failed register sign-ins allowed per register in
    /// `auth_failure_window_secs` before it is answered 429 without
    /// checking the password (default 10; 0 turns the limit off).
    pub auth_failures_per_register: Option<u32>,
    /// The same per source address (default 30; 0 turns it off).
    pub auth_failures_per_address: Option<u32>,
    /// The window those failures are counted in, seconds (default 60).
    pub auth_failure_window_secs: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    pub name: String,
    /// Accumulated total in kopecks from which the tier applies.
    pub from_total: i64,
    pub discount_bp: i64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionFile {
    pub name: String,
    /// Goods ids; empty or absent means every product.
    #[serde(default)]
    pub goods: Vec<String>,
    /// First day, `YYYY-MM-DD`, register local date.
    pub from: Option<String>,
    /// Last day (inclusive).
    pub to: Option<String>,
    /// ISO weekdays 1 = Monday ..= 7 = Sunday; absent means every day.
    #[serde(default)]
    pub days: Vec<u32>,
    /// Daily window start `HH:MM` in register local time.
    pub start: Option<String>,
    /// Daily window end `HH:MM` (exclusive; before `start` spans midnight).
    pub end: Option<String>,
    #[serde(default)]
    pub discount_bp: i64,
    #[serde(default)]
    pub earn_bp: i64,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hold_ttl: Duration,
    pub bonus_lifetime: Option<Duration>,
    pub rules: Rules,
    /// Failed sign-in limits of the register API ([`auth`]).
    pub auth_limits: auth::Limits,
    /// tillgate's clock for hold and lot expiry; tests move it forward
    /// (an [`crate::core::clock::OffsetClock`]).
    pub clock: SharedClock,
}

impl Default for Settings {
    fn default() -> Self {
        validate(FileSection::default()).expect("defaults are valid")
    }
}

fn bp(setting: &str, v: i64) -> Result<i64, ConfigError> {
    if (0..=rules::FULL_BP).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            setting,
            format!("{v} is not between 0 and 10000 basis points"),
        ))
    }
}

pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let hold = file.hold_ttl_secs.unwrap_or(900);
    if hold == 0 || hold > 7 * 24 * 3600 {
        return Err(ConfigError::invalid(
            "loyalty.hold_ttl_secs",
            "must be between 1 second and 7 days",
        ));
    }
    let earn_bp = bp("loyalty.earn_bp", file.earn_bp.unwrap_or(500))?;
    let share = bp(
        "loyalty.max_bonus_share_bp",
        file.max_bonus_share_bp.unwrap_or(5000),
    )?;
    if file.bonus_lifetime_days == Some(0) {
        return Err(ConfigError::invalid(
            "loyalty.bonus_lifetime_days",
            "must be at least 1 (leave it out for bonus that never expires)",
        ));
    }
    let mut tiers = Vec::new();
    for (i, t) in file.tiers.into_iter().enumerate() {
        let s = format!("loyalty.tiers[{i}]");
        if t.name.trim().is_empty() {
            return Err(ConfigError::invalid(&s, "name is empty"));
        }
        if t.from_total < 0 {
            return Err(ConfigError::invalid(&s, "from_total is negative"));
        }
        tiers.push(Tier {
            name: t.name,
            from_total: t.from_total,
            discount_bp: bp(&format!("{s}.discount_bp"), t.discount_bp)?,
        });
    }
    tiers.sort_by_key(|t| t.from_total);
    if tiers.is_empty() {
        tiers.push(Tier {
            name: "base".into(),
            from_total: 0,
            discount_bp: 0,
        });
    } else if tiers[0].from_total != 0 {
        return Err(ConfigError::invalid(
            "loyalty.tiers",
            "the lowest tier must start at from_total = 0",
        ));
    }
    if tiers.windows(2).any(|w| w[0].from_total == w[1].from_total) {
        return Err(ConfigError::invalid(
            "loyalty.tiers",
            "two tiers start at the same from_total",
        ));
    }
    let mut promotions = Vec::new();
    for (i, p) in file.promotions.into_iter().enumerate() {
        let s = format!("loyalty.promotions[{i}]");
        let date = |v: &Option<String>, f: &str| -> Result<Option<NaiveDate>, ConfigError> {
            v.as_deref()
                .map(|v| {
                    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                        ConfigError::invalid(
                            &format!("{s}.{f}"),
                            format!("{v:?} is not YYYY-MM-DD"),
                        )
                    })
                })
                .transpose()
        };
        let time = |v: &Option<String>, f: &str| -> Result<Option<NaiveTime>, ConfigError> {
            v.as_deref()
                .map(|v| {
                    NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| {
                        ConfigError::invalid(&format!("{s}.{f}"), format!("{v:?} is not HH:MM"))
                    })
                })
                .transpose()
        };
        if p.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(ConfigError::invalid(
                &format!("{s}.days"),
                "weekdays are 1 (Monday) to 7 (Sunday)",
            ));
        }
        promotions.push(Promotion {
            from_date: date(&p.from, "from")?,
            to_date: date(&p.to, "to")?,
            start: time(&p.start, "start")?,
            end: time(&p.end, "end")?,
            discount_bp: bp(&format!("{s}.discount_bp"), p.discount_bp)?,
            earn_bp: bp(&format!("{s}.earn_bp"), p.earn_bp)?,
            name: p.name,
            goods: p.goods,
            days: p.days,
        });
    }
    let window = file.auth_failure_window_secs.unwrap_or(60);
    if window == 0 || window > 24 * 3600 {
        return Err(ConfigError::invalid(
            "loyalty.auth_failure_window_secs",
            "must be between 1 second and 1 day",
        ));
    }
    let auth_limits = auth::Limits {
        per_register: file.auth_failures_per_register.unwrap_or(10),
        per_address: file.auth_failures_per_address.unwrap_or(30),
        window: Duration::from_secs(window),
    };
    Ok(Settings {
        auth_limits,
        hold_ttl: Duration::from_secs(hold),
        bonus_lifetime: file
            .bonus_lifetime_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
        rules: Rules {
            tiers,
            earn_bp,
            max_bonus_share_bp: share,
            promotions,
        },
        clock: SharedClock::system(),
    })
}

/// What request handlers need from this feature at run time.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where row-locking operations run (see [`crate::workers`]): an
    /// operation is a dozen database round trips, and on the HTTP runtime
    /// each return trip waited behind the other requests.
    runtime: tokio::runtime::Handle,
    /// On SQLite, the in-memory owner of the cards' working state, which
    /// decides every changing operation (see [`ops::owner`]). PostgreSQL,
    /// where several tillgate processes may share the tables, runs
    /// operations side by side on row locks instead (measured on a durable
    /// cluster with 32 registers: 268 flows/s that way against 207 through
    /// one committer; several committers deadlocked between groups).
    owner: Option<(ops::owner::Owner, Arc<ops::owner::Shared>)>,
    /// One FIFO lock per register: tokio's mutex wakes waiters in arrival
    /// order, which is the "one request at a time, in order" registers are
    /// required to keep, enforced here instead of trusted.
    registers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    creds: auth::CredCache,
    /// The offline queue depth each register last reported.
    queues: switches::QueueSeen,
}

impl Handle {
    pub(crate) fn register_lock(&self, register: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self
            .inner
            .registers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.entry(register.to_string()).or_default().clone()
    }

    /// Runs `op`: through the in-memory owner on SQLite, on the
    /// operations' runtime with row locks on PostgreSQL.
    pub(crate) async fn execute(
        &self,
        db: &Db,
        settings: &Settings,
        common: ops::Common,
        op: ops::Op,
    ) -> Result<serde_json::Value, ops::OpError> {
        if let Some((owner, shared)) = &self.inner.owner {
            return ops::owner::reads::execute(owner, shared, db, settings, common, op).await;
        }
        let (db, settings) = (db.clone(), settings.clone());
        self.inner
            .runtime
            .spawn(async move { ops::execute(&db, &settings, &common, op).await })
            .await
            .map_err(|e| ops::OpError::Task(e.to_string()))?
    }

    /// An operator's balance correction, decided where balances are.
    pub(crate) async fn adjust(
        &self,
        db: &Db,
        settings: &Settings,
        number: &str,
        a: &operator::Adjustment,
    ) -> Result<i64, operator::OperatorError> {
        let Some((owner, _)) = &self.inner.owner else {
            return operator::adjust(db, settings, number, a).await;
        };
        operator::check_adjustment(a)?;
        let v = self
            .ask(
                owner,
                ops::owner::Request::Adjust {
                    now: settings.clock.now_ms(),
                    number: number.to_string(),
                    amount: a.amount,
                    reason: a.reason.trim().to_string(),
                    by: a.by.trim().to_string(),
                },
                number,
            )
            .await?;
        Ok(v["balance"].as_i64().unwrap_or_default())
    }

    /// An operator's change of a card's state.
    pub(crate) async fn set_state(
        &self,
        db: &Db,
        number: &str,
        state: &str,
    ) -> Result<(), operator::OperatorError> {
        let Some((owner, _)) = &self.inner.owner else {
            return operator::set_state(db, number, state).await;
        };
        let state = operator::parse_state(state)?.to_string();
        let number_owned = number.to_string();
        self.ask(
            owner,
            ops::owner::Request::SetState {
                number: number_owned,
                state,
            },
            number,
        )
        .await?;
        Ok(())
    }

    async fn ask(
        &self,
        owner: &ops::owner::Owner,
        r: ops::owner::Request,
        number: &str,
    ) -> Result<serde_json::Value, operator::OperatorError> {
        use operator::OperatorError as E;
        let answer = owner
            .submit(r)
            .await
            .map_err(|_| E::Other("the loyalty owner has stopped".into()))?;
        answer.map_err(|e| match e {
            ops::OpError::UnknownCard(_) => E::NoCard(number.to_string()),
            ops::OpError::NotEnough { .. } => E::NotEnough(e.to_string()),
            ops::OpError::Db(e) => E::Db(e),
            e => E::Other(e.to_string()),
        })
    }

    /// The catalogue was imported: cached flags are stale.
    pub(crate) fn catalog_changed(&self) {
        if let Some((_, shared)) = &self.inner.owner {
            shared.forget_catalog();
        }
    }

    pub(crate) fn creds(&self) -> &auth::CredCache {
        &self.inner.creds
    }

    /// Runs a payment-card operation on the operations' runtime (see
    /// [`payment`] for where it is decided), so a register hanging up
    /// does not cut its transaction short.
    pub(crate) async fn pay(
        &self,
        db: &Db,
        settings: &Settings,
        common: ops::Common,
        op: payment::PayOp,
    ) -> Result<serde_json::Value, payment::PayError> {
        let (db, settings) = (db.clone(), settings.clone());
        self.inner
            .runtime
            .spawn(async move { payment::execute(&db, &settings, &common, op).await })
            .await
            .map_err(|e| payment::PayError::Task(e.to_string()))?
    }

    pub(crate) fn queues(&self) -> &switches::QueueSeen {
        &self.inner.queues
    }
}

/// Loyalty's metrics, registered at start so `/metrics` lists them before
/// the first operation.
pub fn describe_metrics() {
    describe(
        Kind::Histogram,
        "tillgate_loyalty_group_size",
        "Changing loyalty operations (purchase, confirm, cancel, refund, corrections, hold sweeps) per group commit of the in-memory owner on SQLite.",
        false,
    );
    describe(
        Kind::Counter,
        "tillgate_loyalty_auth_hashes_total",
        "Register passwords checked against their Argon2 hash (a cache miss: first sign-in, a changed or a wrong password).",
        false,
    );
    describe(
        Kind::Counter,
        "tillgate_loyalty_auth_limited_total",
        "Register sign-ins refused with 429 before any hashing: too many failures for the register or from the address.",
        false,
    );
}

/// Starts the in-memory owner and its hold sweeper (SQLite), or the
/// row-locking hold sweeper (PostgreSQL).
/// The hold sweeper (either decision path's) on the core's worker loop.
fn spawn_sweeper<W>(ctx: &mut StartCtx, sweeper: W, settings: &Settings, name: &'static str)
where
    W: outbox::OutboxWorker + Send + 'static,
{
    ctx.runtimes.spawn(outbox::run(
        sweeper,
        name,
        Wake::new(),
        settings.clock.clone(),
        LoopOptions::default(),
        ctx.shutdown.clone(),
    ));
}

pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    describe_metrics();
    let settings = ctx.config.section::<Settings>();
    // The owner ends when the last Handle (held by the router) and the
    // sweeper are gone, after the server stopped taking requests; each
    // queued operation is answered.
    let owner = match ctx.db.backend {
        crate::core::store::Backend::Sqlite => {
            let (owner, groups) = ops::owner::channel();
            let shared = Arc::new(ops::owner::Shared::default());
            ctx.runtimes.storage_handle().spawn(ops::owner::run(
                ctx.db.clone(),
                shared.clone(),
                groups,
            ));
            let sweeper = ops::owner::OwnerSweeper {
                owner: owner.clone(),
                settings: settings.clone(),
            };
            spawn_sweeper(ctx, sweeper, &settings, "loyalty-hold-sweeper");
            Some((owner, shared))
        }
        crate::core::store::Backend::Postgres => {
            let sweeper = ops::HoldSweeper {
                db: ctx.db.clone(),
                settings: settings.clone(),
            };
            spawn_sweeper(ctx, sweeper, &settings, "loyalty-hold-sweeper");
            None
        }
    };
    let payments = payment::PaymentSweeper {
        db: ctx.db.clone(),
        settings: settings.clone(),
    };
    spawn_sweeper(ctx, payments, &settings, "loyalty-payment-hold-sweeper");
    let handle = Handle {
        inner: Arc::new(Inner {
            owner,
            runtime: ctx.runtimes.storage_handle(),
            registers: Mutex::default(),
            creds: auth::CredCache::new(settings.auth_limits),
            queues: switches::QueueSeen::default(),
        }),
    };
    // The back office journals receipts with a card through this handle
    // (see [`accrual`]).
    ctx.bus.offer(handle.clone());
    Ok(handle)
}
