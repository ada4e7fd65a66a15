//! The `loyalty_operations` table: every changing register operation with
//! its request and first answer (idempotency by `operation_id`), and for
//! purchases the hold and what was refunded so far. Only this module writes
//! SQL against it.

use sqlx::{AnyConnection, AnyExecutor};

use crate::core::store::{Backend, multi_row};

/// Hold and purchase states, stored as these words.
pub const HELD: &str = "held";
pub const CONFIRMED: &str = "confirmed";
pub const CANCELLED: &str = "cancelled";
pub const EXPIRED: &str = "expired";

/// A stored request and the answer it got.
#[derive(Debug, sqlx::FromRow)]
pub struct Stored {
    pub request: String,
    pub response: String,
}

/// A purchase as confirm, cancel and refund see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Purchase {
    #[sqlx(default)]
    pub operation_id: String,
    #[sqlx(rename = "card_number")]
    pub card: String,
    pub status: Option<String>,
    pub hold_expires_at: Option<i64>,
    pub net: i64,
    #[sqlx(rename = "bonus_spend")]
    pub spend: i64,
    #[sqlx(rename = "bonus_earn")]
    pub earn: i64,
    pub refunded_net: i64,
    pub refunded_spend: i64,
    pub refunded_earn: i64,
}

/// An operation in the operator's card history.
#[derive(Debug, sqlx::FromRow)]
pub struct HistoryRow {
    pub operation_id: String,
    pub kind: String,
    pub register_id: String,
    pub cashier: String,
    pub local_time: String,
    pub status: Option<String>,
    pub net: i64,
    pub bonus_spend: i64,
    pub bonus_earn: i64,
    /// 0 or 1.
    pub offline: i64,
}

/// What is stored for one operation besides its request and answer.
#[derive(Debug, Default)]
pub struct NewOperation<'a> {
    pub operation_id: &'a str,
    pub register: &'a str,
    pub cashier: &'a str,
    pub kind: &'a str,
    /// The canonical request, compared on a retry.
    pub request: &'a str,
    pub response: String,
    /// Register local time, `YYYY-MM-DDTHH:MM:SS`.
    pub local_time: String,
    pub card: Option<&'a str>,
    pub status: Option<&'a str>,
    pub hold_expires_at: Option<i64>,
    pub purchase_id: Option<&'a str>,
    pub offline: bool,
    pub net: i64,
    pub spend: i64,
    pub earn: i64,
    pub now: i64,
}

pub async fn stored<'c>(
    db: impl AnyExecutor<'c>,
    operation_id: &str,
) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as("SELECT request, response FROM loyalty_operations WHERE operation_id = $1")
        .bind(operation_id)
        .fetch_optional(db)
        .await
}

pub async fn insert<'c>(db: impl AnyExecutor<'c>, o: NewOperation<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_operations (operation_id, register_id, cashier, kind, request, response, card_number, local_time, created_at, offline, status, hold_expires_at, purchase_id, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, 0, 0)",
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
    .bind(i64::from(o.offline))
    .bind(o.status)
    .bind(o.hold_expires_at)
    .bind(o.purchase_id)
    .bind(o.net)
    .bind(o.spend)
    .bind(o.earn)
    .execute(db)
    .await?;
    Ok(())
}

/// Bonus reserved on a card by open, unexpired holds.
pub async fn held<'c>(db: impl AnyExecutor<'c>, card: &str, now: i64) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(bonus_spend) AS BIGINT) FROM loyalty_operations WHERE card_number = $1 AND status = 'held' AND hold_expires_at > $2",
    )
    .bind(card)
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(v.unwrap_or(0))
}

/// The card of purchase `id` (`None`: no such purchase).
pub async fn purchase_card<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let card: Option<Option<String>> = sqlx::query_scalar(
        "SELECT card_number FROM loyalty_operations WHERE operation_id = $1 AND kind = 'purchase'",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(card.flatten())
}

/// Purchase `id`; read after its card is locked (see
/// [`super::ops`]), so it cannot change under the caller.
pub async fn purchase(conn: &mut AnyConnection, id: &str) -> Result<Purchase, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, card_number, status, hold_expires_at, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn \
         FROM loyalty_operations WHERE operation_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
}

pub async fn set_status<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_operations SET status = $1 WHERE operation_id = $2")
        .bind(status)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a refund of purchase `id`: the cumulative net refunded, and the
/// spend returned and earn taken back by this refund.
pub async fn add_refund<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    refunded_net: i64,
    spend_returned: i64,
    earn_taken: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_operations SET refunded_net = $1, refunded_spend = refunded_spend + $2, refunded_earn = refunded_earn + $3 WHERE operation_id = $4")
        .bind(refunded_net)
        .bind(spend_returned)
        .bind(earn_taken)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks holds past their time as expired; returns how many.
pub async fn expire_holds<'c>(db: impl AnyExecutor<'c>, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE loyalty_operations SET status = 'expired' WHERE status = 'held' AND hold_expires_at <= $1",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A card's operations, oldest first.
pub async fn of_card<'c>(
    db: impl AnyExecutor<'c>,
    card: &str,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, kind, register_id, cashier, local_time, status, net, bonus_spend, bonus_earn, offline FROM loyalty_operations WHERE card_number = $1 ORDER BY created_at, operation_id",
    )
    .bind(card)
    .fetch_all(db)
    .await
}

/// An operation row as the in-memory owner ([`super::ops::owner`]) writes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperationRow {
    pub operation_id: String,
    pub register: String,
    pub cashier: String,
    pub kind: String,
    pub request: String,
    pub response: String,
    pub card: Option<String>,
    pub local_time: String,
    pub now: i64,
    pub offline: bool,
    pub status: Option<String>,
    pub hold_expires_at: Option<i64>,
    pub purchase_id: Option<String>,
    pub net: i64,
    pub spend: i64,
    pub earn: i64,
    pub refunded_net: i64,
    pub refunded_spend: i64,
    pub refunded_earn: i64,
}

/// Inserts operation rows, 300 per statement.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[OperationRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(300) {
        let sql = multi_row(
            backend,
            "INSERT INTO loyalty_operations (operation_id, register_id, cashier, kind, request, response, card_number, local_time, created_at, offline, status, hold_expires_at, purchase_id, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn) VALUES ",
            chunk.len(),
            19,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for o in chunk {
            q = q
                .bind(o.operation_id.clone())
                .bind(o.register.clone())
                .bind(o.cashier.clone())
                .bind(o.kind.clone())
                .bind(o.request.clone())
                .bind(o.response.clone())
                .bind(o.card.clone())
                .bind(o.local_time.clone())
                .bind(o.now)
                .bind(i64::from(o.offline))
                .bind(o.status.clone())
                .bind(o.hold_expires_at)
                .bind(o.purchase_id.clone())
                .bind(o.net)
                .bind(o.spend)
                .bind(o.earn)
                .bind(o.refunded_net)
                .bind(o.refunded_spend)
                .bind(o.refunded_earn);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Gives stored purchases their status and refund totals as they are now:
/// one statement per 200 purchases (a `VALUES` list joined by id).
pub(crate) async fn write_purchases(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[Purchase],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(200) {
        let values = multi_row(backend, "", chunk.len(), 5);
        let sql = format!(
            "WITH v (id, st, rn, rs, re) AS (VALUES {values}) \
             UPDATE loyalty_operations SET \
             status = (SELECT st FROM v WHERE v.id = loyalty_operations.operation_id), \
             refunded_net = (SELECT rn FROM v WHERE v.id = loyalty_operations.operation_id), \
             refunded_spend = (SELECT rs FROM v WHERE v.id = loyalty_operations.operation_id), \
             refunded_earn = (SELECT re FROM v WHERE v.id = loyalty_operations.operation_id) \
             WHERE operation_id IN (SELECT id FROM v)"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            q = q
                .bind(p.operation_id.clone())
                .bind(p.status.clone())
                .bind(p.refunded_net)
                .bind(p.refunded_spend)
                .bind(p.refunded_earn);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A card's purchases still holding bonus (status `held`, due or not).
pub(crate) async fn held_purchases(
    conn: &mut AnyConnection,
    card: &str,
) -> Result<Vec<Purchase>, sqlx::Error> {
    sqlx::query_as(
        "SELECT operation_id, card_number, status, hold_expires_at, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn \
         FROM loyalty_operations WHERE card_number = $1 AND status = 'held'",
    )
    .bind(card)
    .fetch_all(&mut *conn)
    .await
}

/// Every stored operation id, for the owner's "seen" filter.
pub(crate) async fn all_ids(conn: &mut AnyConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT operation_id FROM loyalty_operations")
        .fetch_all(&mut *conn)
        .await
}
