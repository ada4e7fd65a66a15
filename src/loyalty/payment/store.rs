//! The payment-card tables, `loyalty_payment_cards` and
//! `loyalty_payment_operations`: only this module writes SQL against them.

use sqlx::{AnyConnection, AnyExecutor};

use crate::core::store::Backend;

pub const HELD: &str = "held";
pub const CONFIRMED: &str = "confirmed";
pub const CANCELLED: &str = "cancelled";
pub const EXPIRED: &str = "expired";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct CardRow {
    pub number: String,
    pub state: String,
    pub balance: i64,
    pub nominal: i64,
    pub created_at: i64,
}

/// A hold (a payment), as confirm, cancel and refund need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Payment {
    pub operation_id: String,
    pub card_number: String,
    pub amount: i64,
    pub status: Option<String>,
    pub hold_expires_at: Option<i64>,
    pub refunded: i64,
}

/// An operation's stored request and answer, for retries.
#[derive(Debug, sqlx::FromRow)]
pub struct Stored {
    pub request: String,
    pub response: String,
}

/// One operation to store.
#[derive(Debug, Default)]
pub struct NewOp<'a> {
    pub operation_id: &'a str,
    pub register: &'a str,
    pub cashier: &'a str,
    pub kind: &'a str,
    pub request: &'a str,
    pub response: String,
    pub card: &'a str,
    pub local_time: String,
    pub now: i64,
    pub amount: i64,
    pub status: Option<&'a str>,
    pub hold_expires_at: Option<i64>,
    pub payment_id: Option<&'a str>,
}

pub async fn insert_card<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    state: &str,
    nominal: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO loyalty_payment_cards (number, state, balance, nominal, created_at) VALUES ($1, $2, 0, $3, $4) ON CONFLICT (number) DO NOTHING",
    )
    .bind(number)
    .bind(state)
    .bind(nominal)
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Card `number`, its row locked for the transaction on PostgreSQL (SQLite
/// transactions here begin IMMEDIATE: the file is locked already).
pub async fn load_locked(
    conn: &mut AnyConnection,
    backend: Backend,
    number: &str,
) -> Result<Option<CardRow>, sqlx::Error> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT number, state, balance, nominal, created_at FROM loyalty_payment_cards WHERE number = $1 FOR UPDATE"
        }
        Backend::Sqlite => {
            "SELECT number, state, balance, nominal, created_at FROM loyalty_payment_cards WHERE number = $1"
        }
    };
    sqlx::query_as(sql).bind(number).fetch_optional(conn).await
}

pub async fn load<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
) -> Result<Option<CardRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT number, state, balance, nominal, created_at FROM loyalty_payment_cards WHERE number = $1",
    )
    .bind(number)
    .fetch_optional(db)
    .await
}

pub async fn set_state<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    state: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE loyalty_payment_cards SET state = $1 WHERE number = $2")
        .bind(state)
        .bind(number)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Moves the cached balance by `delta`; refuses (no row changed) when it
/// would go below zero, whatever the caller computed.
pub async fn move_balance(
    conn: &mut AnyConnection,
    number: &str,
    delta: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE loyalty_payment_cards SET balance = balance + $1 WHERE number = $2 AND balance + $1 >= 0",
    )
    .bind(delta)
    .bind(number)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Money held on card `number` by holds not yet due at `now`.
pub async fn held<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM loyalty_payment_operations WHERE card_number = $1 AND status = 'held' AND hold_expires_at > $2",
    )
    .bind(number)
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(v.unwrap_or(0))
}

pub async fn stored<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request, response FROM loyalty_payment_operations WHERE operation_id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The card a hold was made on, to lock it before reading the hold.
pub async fn payment_card<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT card_number FROM loyalty_payment_operations WHERE operation_id = $1 AND kind = 'hold'",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn payment<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, card_number, amount, status, hold_expires_at, refunded FROM loyalty_payment_operations WHERE operation_id = $1 AND kind = 'hold'",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn set_status<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_payment_operations SET status = $1 WHERE operation_id = $2")
        .bind(status)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn add_refunded<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE loyalty_payment_operations SET refunded = refunded + $1 WHERE operation_id = $2",
    )
    .bind(amount)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn insert_op<'c>(db: impl AnyExecutor<'c>, o: NewOp<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_payment_operations (operation_id, register_id, cashier, kind, request, response, card_number, local_time, created_at, amount, status, hold_expires_at, payment_id, refunded) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)",
    )
    .bind(o.operation_id)
    .bind(o.register)
    .bind(o.cashier)
    .bind(o.kind)
    .bind(o.request)
    .bind(o.response)
    .bind(o.card)
    .bind(o.local_time)
    .bind(o.now)
    .bind(o.amount)
    .bind(o.status)
    .bind(o.hold_expires_at)
    .bind(o.payment_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks holds due at `now` expired; how many.
pub async fn expire_holds<'c>(db: impl AnyExecutor<'c>, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE loyalty_payment_operations SET status = 'expired' WHERE status = 'held' AND hold_expires_at <= $1",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A card's operations, newest first, for the operator.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct OpRow {
    pub operation_id: String,
    pub register_id: String,
    pub cashier: String,
    pub kind: String,
    pub amount: i64,
    pub status: Option<String>,
    pub payment_id: Option<String>,
    pub refunded: i64,
    pub local_time: String,
    pub created_at: i64,
}

pub async fn operations_of<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
) -> Result<Vec<OpRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, register_id, cashier, kind, amount, status, payment_id, refunded, local_time, created_at \
         FROM loyalty_payment_operations WHERE card_number = $1 ORDER BY created_at DESC, operation_id LIMIT 200",
    )
    .bind(number)
    .fetch_all(db)
    .await
}
