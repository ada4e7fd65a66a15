//! Payment-card operations, each in one transaction on the write pool (see
//! the module doc of [`super`] for why here and not in the SQLite owner):
//! the card row locked on PostgreSQL, `BEGIN IMMEDIATE` on SQLite, the
//! answer stored under the register's `operation_id` so a retry gets the
//! first answer.

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::store::{self, CANCELLED, CONFIRMED, EXPIRED, HELD, NewOp};
use super::{PayError, PayOp, REDEEMED, SOLD, account, malformed};
use crate::core::store::{Backend, Db};
use crate::loyalty::Settings;
use crate::loyalty::cards::mask_number;
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::ops::Common;

/// What a changing operation gives its transaction: `Err` rolls back;
/// `Ok(Err(..))` is refused but keeps what it changed (a hold found
/// expired is marked so).
type Decided = Result<Result<Value, PayError>, PayError>;

/// A write transaction that has the card to itself (module doc).
async fn begin(db: &Db) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match db.backend {
        Backend::Sqlite => db.write.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => db.write.begin().await,
    }
}

/// The card block every answer carries; a card that may not pay shows
/// nothing available.
fn card_json(card: &store::CardRow, held: i64) -> Value {
    json!({
        "card": mask_number(&card.number),
        "state": card.state,
        "balance": card.balance,
        "held": held,
        "available": if card.state == "active" { (card.balance - held).max(0) } else { 0 },
    })
}

/// Posts `amount` from `from` to `to` (a balanced posting of two entries).
async fn post(
    conn: &mut AnyConnection,
    backend: Backend,
    to: &str,
    from: &str,
    amount: i64,
    meta: Meta<'_>,
) -> Result<(), PayError> {
    let rows = ledger::posting(&[(to, amount, None), (from, -amount, None)], meta)?;
    ledger::insert_rows(conn, backend, &rows).await?;
    Ok(())
}

/// Runs one register operation on a payment card.
pub async fn execute(
    db: &Db,
    settings: &Settings,
    c: &Common,
    op: PayOp,
) -> Result<Value, PayError> {
    let now = settings.clock.now_ms();
    if let PayOp::Balance(number) = &op {
        let card = store::load(&db.read, number)
            .await?
            .ok_or_else(|| PayError::UnknownCard(mask_number(number)))?;
        if card.state == "blocked" {
            return Err(PayError::Blocked(mask_number(number)));
        }
        let h = store::held(&db.read, number, now).await?;
        return Ok(json!({"operation_id": c.operation_id, "card": card_json(&card, h)}));
    }
    match changing(db, settings, c, now, &op).await {
        // The same operation_id stored by another connection between our
        // look-up and our insert: once more, and the stored one answers.
        Err(PayError::Db(sqlx::Error::Database(d))) if d.is_unique_violation() => {
            changing(db, settings, c, now, &op).await
        }
        r => r,
    }
}

async fn changing(
    db: &Db,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &PayOp,
) -> Result<Value, PayError> {
    let mut tx = begin(db).await?;
    let answer = changing_in(&mut tx, db.backend, settings, c, now, op).await?;
    tx.commit().await?;
    answer
}

async fn changing_in(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &PayOp,
) -> Decided {
    if let Some(s) = store::stored(&mut *conn, &c.operation_id).await? {
        if s.request != c.canonical {
            return Err(PayError::Conflict(c.operation_id.clone()));
        }
        return serde_json::from_str(&s.response)
            .map(Ok)
            .map_err(|e| PayError::Db(sqlx::Error::Decode(Box::new(e))));
    }
    let row = |kind, card, amount, answer: &Value| NewOp {
        operation_id: &c.operation_id,
        register: &c.register,
        cashier: &c.cashier,
        kind,
        request: &c.canonical,
        response: answer.to_string(),
        card,
        local_time: c.local_time.format("%Y-%m-%dT%H:%M:%S").to_string(),
        now,
        amount,
        ..NewOp::default()
    };
    let meta = |kind, op_id| Meta {
        kind,
        operation_id: Some(op_id),
        reason: None,
        actor: Some(&c.cashier),
        now,
    };
    match op {
        PayOp::Balance(_) => Err(PayError::Malformed {
            field: "kind".into(),
            why: "balance changes nothing".into(),
        }),
        PayOp::Hold { card, amount } => {
            let k = locked(conn, backend, card).await?;
            if k.state == "inactive" {
                return Err(PayError::NotActivated(mask_number(card)));
            }
            let h = store::held(&mut *conn, card, now).await?;
            let available = k.balance - h;
            if *amount > available {
                return Err(PayError::NotEnough {
                    available: available.max(0),
                    requested: *amount,
                });
            }
            let ttl = settings.hold_ttl.as_millis() as i64;
            let answer = json!({
                "operation_id": c.operation_id,
                "status": HELD,
                "amount": amount,
                "hold_expires_in_secs": ttl / 1000,
                "card": card_json(&k, h + amount),
            });
            let o = NewOp {
                status: Some(HELD),
                hold_expires_at: Some(now + ttl),
                ..row("hold", card, *amount, &answer)
            };
            store::insert_op(&mut *conn, o).await?;
            Ok(Ok(answer))
        }
        PayOp::Confirm(pid) => {
            let (k, p) = payment_locked(conn, backend, pid).await?;
            let status = p.status.as_deref().unwrap_or_default();
            if status == HELD && p.hold_expires_at.is_some_and(|e| e <= now) {
                store::set_status(&mut *conn, pid, EXPIRED).await?;
                return Ok(Err(PayError::HoldExpired(pid.clone())));
            }
            if status == EXPIRED {
                return Err(PayError::HoldExpired(pid.clone()));
            }
            if status != HELD {
                return Err(state(pid, status, "confirm"));
            }
            if k.state == "blocked" {
                return Err(PayError::Blocked(mask_number(&k.number)));
            }
            store::set_status(&mut *conn, pid, CONFIRMED).await?;
            if !store::move_balance(&mut *conn, &k.number, -p.amount).await? {
                // The holds make this unreachable; the UPDATE's condition is
                // the guard that keeps the balance from ever going negative.
                return Err(PayError::NotEnough {
                    available: k.balance,
                    requested: p.amount,
                });
            }
            post(
                conn,
                backend,
                REDEEMED,
                &account(&k.number),
                p.amount,
                meta("paycard_pay", pid),
            )
            .await?;
            let after = reload(conn, &k.number).await?;
            let h = store::held(&mut *conn, &k.number, now).await?;
            let answer = json!({
                "operation_id": c.operation_id,
                "payment_operation_id": pid,
                "status": CONFIRMED,
                "paid": p.amount,
                "card": card_json(&after, h),
            });
            let o = NewOp {
                payment_id: Some(pid),
                ..row("confirm", &k.number, p.amount, &answer)
            };
            store::insert_op(&mut *conn, o).await?;
            Ok(Ok(answer))
        }
        PayOp::Cancel(pid) => {
            let (k, p) = payment_locked(conn, backend, pid).await?;
            let next = match p.status.as_deref().unwrap_or_default() {
                HELD if p.hold_expires_at.is_some_and(|e| e <= now) => EXPIRED,
                HELD => CANCELLED,
                // Nothing is held any more: cancelling again is a no-op.
                EXPIRED => EXPIRED,
                CANCELLED => CANCELLED,
                other => return Err(state(pid, other, "cancel (refund it instead)")),
            };
            store::set_status(&mut *conn, pid, next).await?;
            let h = store::held(&mut *conn, &k.number, now).await?;
            let answer = json!({
                "operation_id": c.operation_id,
                "payment_operation_id": pid,
                "status": next,
                "card": card_json(&k, h),
            });
            let o = NewOp {
                payment_id: Some(pid),
                ..row("cancel", &k.number, 0, &answer)
            };
            store::insert_op(&mut *conn, o).await?;
            Ok(Ok(answer))
        }
        PayOp::Refund { payment, amount } => {
            let (k, p) = payment_locked(conn, backend, payment).await?;
            let status = p.status.as_deref().unwrap_or_default();
            if status != CONFIRMED {
                return Err(state(payment, status, "refund"));
            }
            let left = p.amount - p.refunded;
            let amount = amount.unwrap_or(left);
            if amount <= 0 || amount > left {
                return Err(malformed(
                    "amount",
                    format!("{left} kopecks of this payment are left to refund, {amount} asked"),
                ));
            }
            store::move_balance(&mut *conn, &k.number, amount).await?;
            post(
                conn,
                backend,
                &account(&k.number),
                REDEEMED,
                amount,
                meta("paycard_refund", &c.operation_id),
            )
            .await?;
            store::add_refunded(&mut *conn, payment, amount).await?;
            let after = reload(conn, &k.number).await?;
            let h = store::held(&mut *conn, &k.number, now).await?;
            let answer = json!({
                "operation_id": c.operation_id,
                "payment_operation_id": payment,
                "refunded": amount,
                "left_to_refund": left - amount,
                "card": card_json(&after, h),
            });
            let o = NewOp {
                payment_id: Some(payment),
                ..row("refund", &k.number, amount, &answer)
            };
            store::insert_op(&mut *conn, o).await?;
            Ok(Ok(answer))
        }
        PayOp::TopUp { card, amount } => {
            let k = locked(conn, backend, card).await?;
            credit(
                conn,
                backend,
                &k.number,
                *amount,
                meta("paycard_top_up", &c.operation_id),
            )
            .await?;
            let after = reload(conn, &k.number).await?;
            let h = store::held(&mut *conn, card, now).await?;
            let answer = json!({
                "operation_id": c.operation_id,
                "topped_up": amount,
                "card": card_json(&after, h),
            });
            store::insert_op(&mut *conn, row("top_up", card, *amount, &answer)).await?;
            Ok(Ok(answer))
        }
    }
}

fn state(id: &str, status: &str, action: &'static str) -> PayError {
    PayError::State {
        id: id.to_string(),
        status: status.to_string(),
        action,
    }
}

/// Card `number` locked, refused if unknown or blocked.
async fn locked(
    conn: &mut AnyConnection,
    backend: Backend,
    number: &str,
) -> Result<store::CardRow, PayError> {
    let k = store::load_locked(conn, backend, number)
        .await?
        .ok_or_else(|| PayError::UnknownCard(mask_number(number)))?;
    if k.state == "blocked" {
        return Err(PayError::Blocked(mask_number(number)));
    }
    Ok(k)
}

/// Hold `pid` with its card locked first, so everything on one card runs
/// one at a time.
async fn payment_locked(
    conn: &mut AnyConnection,
    backend: Backend,
    pid: &str,
) -> Result<(store::CardRow, store::Payment), PayError> {
    let number = store::payment_card(&mut *conn, pid)
        .await?
        .ok_or_else(|| PayError::NotFound(pid.to_string()))?;
    let k = store::load_locked(conn, backend, &number)
        .await?
        .ok_or_else(|| PayError::UnknownCard(mask_number(&number)))?;
    let p = store::payment(&mut *conn, pid)
        .await?
        .ok_or_else(|| PayError::NotFound(pid.to_string()))?;
    Ok((k, p))
}

async fn reload(conn: &mut AnyConnection, number: &str) -> Result<store::CardRow, PayError> {
    store::load(&mut *conn, number)
        .await?
        .ok_or_else(|| PayError::UnknownCard(mask_number(number)))
}

/// Puts `amount` on card `number` against [`SOLD`].
async fn credit(
    conn: &mut AnyConnection,
    backend: Backend,
    number: &str,
    amount: i64,
    meta: Meta<'_>,
) -> Result<(), PayError> {
    store::move_balance(&mut *conn, number, amount).await?;
    post(conn, backend, &account(number), SOLD, amount, meta).await
}

/// The operator's new payment card.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPaymentCard {
    pub number: String,
    /// Kopecks put on the card when issued.
    pub nominal: i64,
    /// `active` (default), `inactive` (not sold yet: cannot pay) or
    /// `blocked`.
    pub state: Option<String>,
}

fn check_number(number: &str) -> Result<(), PayError> {
    if number.is_empty()
        || number.len() > 64
        || !number.chars().all(|c| c.is_ascii_graphic() && c != ':')
    {
        return Err(malformed(
            "number",
            "1 to 64 latin letters, digits or punctuation except ':'",
        ));
    }
    Ok(())
}

fn check_amount(field: &str, v: i64, zero_ok: bool) -> Result<(), PayError> {
    let min = if zero_ok { 0 } else { 1 };
    if !(min..=super::request::MAX_AMOUNT).contains(&v) {
        return Err(malformed(
            field,
            format!("must be {min} to {} kopecks", super::request::MAX_AMOUNT),
        ));
    }
    Ok(())
}

pub(crate) fn parse_state(s: &str) -> Result<&'static str, PayError> {
    crate::loyalty::operator::parse_state(s).map_err(|e| malformed("state", e.to_string()))
}

/// Issues a payment card with its nominal on it.
pub async fn issue(db: &Db, c: &NewPaymentCard, by: &str) -> Result<(), PayError> {
    check_number(&c.number)?;
    check_amount("nominal", c.nominal, true)?;
    let state = parse_state(c.state.as_deref().unwrap_or("active"))?;
    let now = crate::core::clock::now_ms();
    let mut tx = begin(db).await?;
    if !store::insert_card(&mut *tx, &c.number, state, c.nominal, now).await? {
        return Err(PayError::Exists(format!("payment card {}", c.number)));
    }
    if c.nominal > 0 {
        let meta = Meta {
            kind: "paycard_issue",
            operation_id: None,
            reason: Some("nominal"),
            actor: Some(by),
            now,
        };
        credit(&mut tx, db.backend, &c.number, c.nominal, meta).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The operator tops card `number` up by `amount`; its balance after.
pub async fn top_up_by_operator(
    db: &Db,
    number: &str,
    amount: i64,
    by: &str,
) -> Result<i64, PayError> {
    check_amount("amount", amount, false)?;
    if by.trim().is_empty() {
        return Err(malformed("by", "say who tops the card up"));
    }
    let now = crate::core::clock::now_ms();
    let mut tx = begin(db).await?;
    let k = locked(&mut tx, db.backend, number).await?;
    let meta = Meta {
        kind: "paycard_top_up",
        operation_id: None,
        reason: Some("top up by the operator"),
        actor: Some(by.trim()),
        now,
    };
    credit(&mut tx, db.backend, &k.number, amount, meta).await?;
    let after = reload(&mut tx, number).await?;
    tx.commit().await?;
    Ok(after.balance)
}

/// Sets a payment card's state (`active`, `inactive`, `blocked`).
pub async fn set_state(db: &Db, number: &str, s: &str) -> Result<(), PayError> {
    let s = parse_state(s)?;
    if !store::set_state(&db.write, number, s).await? {
        return Err(PayError::UnknownCard(mask_number(number)));
    }
    Ok(())
}
