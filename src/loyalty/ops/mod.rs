//! Register operations: balance, calculate, purchase, confirm, cancel,
//! refund. Requests are parsed into [`Op`] at the edge ([`request`]); each
//! changing operation runs in one write transaction that also stores its
//! answer under the register's `operation_id`, so a retry gets the first
//! answer. This module holds the errors and the dispatch; each operation,
//! the group committer and the hold sweeper have a file of their own.
//!
//! Spending is serialised per card: on PostgreSQL the card row is locked
//! (`SELECT ... FOR UPDATE`) for the transaction; SQLite has one writer.
//! The conditional UPDATE in [`super::ledger::debit`] is the last guard.

mod identify;
pub(crate) mod owner;
mod purchase;
mod refund;
pub mod request;
mod settle;
mod sweeper;

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::Settings;
use super::cards::{self, Card};
use super::ledger::LedgerError;
use super::operations::{self, NewOperation};
use super::rules;
use crate::core::store::{Backend, Db};

pub use identify::identify;
pub use request::{
    CardEntry, CardRef, Common, IdKind, Identifier, Kind, Op, Request, parse, parse_local_time,
};
pub use sweeper::HoldSweeper;

/// How often holds (bonus and payment-card ones) are swept.
pub fn sweeper_period() -> std::time::Duration {
    sweeper::SWEEP_EVERY
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Carries [`CardRef::shown`]: a phone only masked.
    #[error("no card matches identifier {0:?}")]
    UnknownCard(String),
    #[error("card {0} is blocked; identify the guest by another identifier (e.g. phone)")]
    CardBlocked(String),
    #[error("card {0} is not activated: it may earn bonus but not spend it")]
    NotActivated(String),
    #[error("not enough bonus: {available} available, {requested} requested")]
    NotEnough { available: i64, requested: i64 },
    #[error("this receipt allows at most {max} bonus, {requested} requested")]
    OverReceiptShare { max: i64, requested: i64 },
    #[error("the hold of purchase {0} expired; run the purchase again")]
    HoldExpired(String),
    #[error("no purchase with operation_id {0}")]
    PurchaseNotFound(String),
    #[error("purchase {id} is {status}, cannot {action} it")]
    PurchaseState {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("operation_id {0} was already used with a different request")]
    Conflict(String),
    #[error("{field}: {why}")]
    Malformed { field: String, why: String },
    /// The ledger refused a posting (unbalanced, or lots and balance
    /// disagree): a bug or damaged data, never stored.
    #[error("ledger refused the operation: {0}")]
    Ledger(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The operation's task panicked or its runtime is shutting down.
    #[error("operation task failed: {0}")]
    Task(String),
    /// The group commit the operation ran in failed: nothing of it is
    /// stored, and the same operation may be sent again.
    #[error("not stored, send the same operation again: {0}")]
    NotStored(String),
}

impl From<LedgerError> for OpError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotEnough {
                available,
                requested,
            } => OpError::NotEnough {
                available,
                requested,
            },
            LedgerError::Db(e) => OpError::Db(e),
            e @ (LedgerError::Unbalanced { .. } | LedgerError::LotsShort(_)) => {
                OpError::Ledger(e.to_string())
            }
        }
    }
}

pub(crate) fn malformed(field: &str, why: impl Into<String>) -> OpError {
    OpError::Malformed {
        field: field.to_string(),
        why: why.into(),
    }
}

/// How a changing operation ended, for the transaction it ran in.
enum Outcome {
    /// Refused: roll its changes back.
    Refuse(OpError),
    /// Refused, but what it changed must be kept (a hold found expired is
    /// marked so, and the register told).
    CommitThenRefuse(OpError),
}

impl<E: Into<OpError>> From<E> for Outcome {
    fn from(e: E) -> Self {
        Outcome::Refuse(e.into())
    }
}

/// The holder block and balances every answer carries: registers show the
/// holder and both balances on every step of a receipt.
fn card_json(settings: &Settings, card: &Card, held: i64) -> Value {
    let tier = settings.rules.tier_for(card.accumulated);
    json!({
        "holder": {
            "name": card.holder_name,
            "card": cards::mask_number(&card.number),
            "tier": tier.name,
            "state": card.state,
        },
        "balance": {
            "bonus": card.balance,
            "held": held,
            "available": spendable(card, held),
            "accumulated": card.accumulated,
        },
    })
}

/// Bonus the card may spend now: none unless it is active.
fn spendable(card: &Card, held: i64) -> i64 {
    if card.state == "active" {
        (card.balance - held).max(0)
    } else {
        0
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Where a changing operation runs: inside the caller's transaction, at
/// one instant of tillgate's clock.
struct At<'a> {
    conn: &'a mut AnyConnection,
    backend: Backend,
    settings: &'a Settings,
    c: &'a Common,
    now: i64,
}

/// The row stored for operation `c` of `kind` with its answer; the caller
/// fills in what the kind adds.
fn record<'a>(c: &'a Common, kind: &'a str, now: i64, answer: &Value) -> NewOperation<'a> {
    NewOperation {
        operation_id: &c.operation_id,
        register: &c.register,
        cashier: &c.cashier,
        kind,
        request: &c.canonical,
        response: answer.to_string(),
        local_time: c.local_time.format("%Y-%m-%dT%H:%M:%S").to_string(),
        now,
        ..NewOperation::default()
    }
}

/// The answer to an operation on purchase `pid` (confirm, cancel, refund):
/// `extra` with the card's block as it is now, stored with the operation.
async fn settled(
    at: &mut At<'_>,
    kind: &str,
    card: &str,
    pid: &str,
    net: i64,
    extra: Value,
) -> Result<Value, OpError> {
    let c = cards::load(&mut *at.conn, card)
        .await?
        .ok_or_else(|| OpError::UnknownCard(card.to_string()))?;
    let h = operations::held(&mut *at.conn, card, at.now).await?;
    let answer = merge(extra, card_json(at.settings, &c, h));
    let row = NewOperation {
        card: Some(card),
        purchase_id: Some(pid),
        net,
        ..record(at.c, kind, at.now, &answer)
    };
    operations::insert(&mut *at.conn, row).await?;
    Ok(answer)
}

/// When a lot credited now expires.
fn lot_expiry(settings: &Settings, now: i64) -> Option<i64> {
    settings.bonus_lifetime.map(|d| now + d.as_millis() as i64)
}

/// Runs one operation. Read-only ones (balance, calculate) use the read
/// pool and store nothing: repeating them is harmless by nature.
pub async fn execute(db: &Db, settings: &Settings, c: &Common, op: Op) -> Result<Value, OpError> {
    let now = settings.clock.now_ms();
    match op {
        Op::Balance(id) => {
            let mut conn = db.read.acquire().await?;
            let card = identify(&mut conn, &id).await?;
            let h = operations::held(&mut *conn, &card.number, now).await?;
            Ok(balance_answer(settings, c, &card, h))
        }
        Op::Calculate(id, lines) => {
            let mut conn = db.read.acquire().await?;
            let card = identify(&mut conn, &id).await?;
            let h = operations::held(&mut *conn, &card.number, now).await?;
            let flags = super::catalog::flags_for(&mut conn, &lines).await?;
            Ok(calculate_answer(settings, c, &card, h, &lines, &flags))
        }
        changing => match changing_alone(db, settings, c, now, &changing).await {
            // Another connection stored the same operation_id between our
            // look-up and our insert (two registers sending it at once):
            // once more, and the stored request answers (same answer or
            // 409), instead of a 500 from the unique key.
            Err(OpError::Db(e)) if is_unique_violation(&e) => {
                changing_alone(db, settings, c, now, &changing).await
            }
            r => r,
        },
    }
}

/// The answer to `balance` for `card` with `h` held.
fn balance_answer(settings: &Settings, c: &Common, card: &Card, h: i64) -> Value {
    merge(
        json!({"operation_id": c.operation_id}),
        card_json(settings, card, h),
    )
}

/// The answer to `calculate`: the receipt priced for `card`, nothing kept.
fn calculate_answer(
    settings: &Settings,
    c: &Common,
    card: &Card,
    h: i64,
    lines: &[rules::Line],
    flags: &std::collections::HashMap<String, rules::ProductFlags>,
) -> Value {
    let tier = settings.rules.tier_for(card.accumulated);
    let p = rules::price(
        &settings.rules,
        tier,
        c.local_time,
        lines,
        &|g| flags.get(g).copied().unwrap_or_default(),
        true,
    );
    merge(
        json!({
            "operation_id": c.operation_id,
            "lines": p.lines,
            "total": p.total,
            "discount": p.discount,
            "net": p.net,
            "bonus_earn": p.earn,
            "bonus_max_spend": p.max_spend_by_receipt.min(spendable(card, h)),
        }),
        card_json(settings, card, h),
    )
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A changing operation in a transaction of its own (PostgreSQL, where
/// row locks let several run side by side; SQLite goes through
/// [`committer`]).
async fn changing_alone(
    db: &Db,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &Op,
) -> Result<Value, OpError> {
    let mut tx = db.write.begin().await?;
    let answer = match changing_in(&mut tx, db.backend, settings, c, now, op).await {
        Ok(v) => Ok(v),
        Err(Outcome::Refuse(e)) => return Err(e),
        Err(Outcome::CommitThenRefuse(e)) => Err(e),
    };
    tx.commit().await?;
    answer
}

/// The first answer to `c.operation_id`, if it was stored; a different
/// request under the same id is a conflict.
async fn stored_answer(conn: &mut AnyConnection, c: &Common) -> Result<Option<Value>, OpError> {
    let Some(stored) = operations::stored(&mut *conn, &c.operation_id).await? else {
        return Ok(None);
    };
    if stored.request != c.canonical {
        return Err(OpError::Conflict(c.operation_id.clone()));
    }
    let v = serde_json::from_str(&stored.response)
        .map_err(|e| OpError::Db(sqlx::Error::Decode(Box::new(e))))?;
    Ok(Some(v))
}

/// A changing operation (purchase, confirm, cancel, refund) run inside the
/// caller's transaction: replays a stored answer, or does the work.
async fn changing_in(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &Op,
) -> Result<Value, Outcome> {
    if let Some(stored) = stored_answer(conn, c).await? {
        return Ok(stored);
    }
    let at = At {
        conn,
        backend,
        settings,
        c,
        now,
    };
    match op {
        Op::Purchase {
            id,
            lines,
            spend,
            offline,
        } => purchase::purchase(at, id, lines, *spend, *offline).await,
        Op::Confirm(p) => settle::confirm(at, p).await,
        Op::Cancel(p) => settle::cancel(at, p).await,
        Op::Refund { purchase, amount } => refund::refund(at, purchase, *amount).await,
        Op::Balance(_) | Op::Calculate(..) => Err(Outcome::Refuse(OpError::Task(
            "a read-only operation was queued for the group commit".into(),
        ))),
    }
}
