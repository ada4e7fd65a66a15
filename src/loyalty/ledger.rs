//! The bonus ledger: append-only and double-entry.
//!
//! Every movement is a posting of two or more entries that sum to zero over
//! accounts (`card:<number>` for a holder's bonus, `bonus:issued`,
//! `bonus:redeemed`, `bonus:expired`, `bonus:adjustments` on the other
//! side). Nothing is updated or deleted; a correction is a new posting. A
//! card's balance is the sum of its entries; `loyalty_cards.balance` is a
//! cache of that sum kept in the same transaction, so the spend check is a
//! single conditional UPDATE (`balance >= amount`) that cannot go negative
//! even if two transactions race on PostgreSQL.
//!
//! Bonus is also kept in lots (one per credit, optional expiry) so spending
//! takes the soonest-expiring bonus first.

use sqlx::{AnyConnection, Row};

pub const ISSUED: &str = "bonus:issued";
pub const REDEEMED: &str = "bonus:redeemed";
pub const EXPIRED: &str = "bonus:expired";
pub const ADJUSTMENTS: &str = "bonus:adjustments";

pub fn card_account(number: &str) -> String {
    format!("card:{number}")
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not enough bonus: {available} available, {requested} requested")]
    NotEnough { available: i64, requested: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Who and why, kept with every entry.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub kind: &'a str,
    pub operation_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub now: i64,
}

/// Appends one balanced posting. Posting ids sort by time so history reads
/// in order on both backends without a sequence.
async fn post(
    conn: &mut AnyConnection,
    entries: &[(&str, i64, Option<&str>)],
    meta: Meta<'_>,
) -> Result<(), sqlx::Error> {
    debug_assert_eq!(entries.iter().map(|e| e.1).sum::<i64>(), 0);
    // Within one millisecond the process-wide counter keeps order.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let posting = format!(
        "{:015}-{n:012}-{}",
        meta.now,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    for (seq, (account, amount, lot)) in entries.iter().enumerate() {
        sqlx::query(
            "INSERT INTO loyalty_ledger (id, posting_id, account, amount, kind, operation_id, lot_id, reason, actor, created_at, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&posting)
        .bind(*account)
        .bind(*amount)
        .bind(meta.kind)
        .bind(meta.operation_id)
        .bind(*lot)
        .bind(meta.reason)
        .bind(meta.actor)
        .bind(meta.now)
        .bind(seq as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Credits `amount` to a card as a new lot, against `counter`.
pub async fn credit(
    conn: &mut AnyConnection,
    card: &str,
    amount: i64,
    expires_at: Option<i64>,
    counter: &str,
    meta: Meta<'_>,
) -> Result<(), sqlx::Error> {
    if amount <= 0 {
        return Ok(());
    }
    let lot = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO loyalty_lots (id, card_number, amount, remaining, expires_at, created_at) VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(&lot)
    .bind(card)
    .bind(amount)
    .bind(expires_at)
    .bind(meta.now)
    .execute(&mut *conn)
    .await?;
    let acc = card_account(card);
    post(
        conn,
        &[(&acc, amount, Some(&lot)), (counter, -amount, None)],
        meta,
    )
    .await?;
    sqlx::query("UPDATE loyalty_cards SET balance = balance + $1 WHERE number = $2")
        .bind(amount)
        .bind(card)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Debits `amount` from a card, soonest-expiring lots first, to `counter`.
/// Refuses (changing nothing the caller commits) when the balance is short.
pub async fn debit(
    conn: &mut AnyConnection,
    card: &str,
    amount: i64,
    counter: &str,
    meta: Meta<'_>,
) -> Result<(), LedgerError> {
    if amount <= 0 {
        return Ok(());
    }
    let updated = sqlx::query(
        "UPDATE loyalty_cards SET balance = balance - $1 WHERE number = $2 AND balance >= $1",
    )
    .bind(amount)
    .bind(card)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        let available: i64 =
            sqlx::query_scalar("SELECT balance FROM loyalty_cards WHERE number = $1")
                .bind(card)
                .fetch_one(&mut *conn)
                .await?;
        return Err(LedgerError::NotEnough {
            available,
            requested: amount,
        });
    }
    let lots = sqlx::query(
        "SELECT id, remaining FROM loyalty_lots WHERE card_number = $1 AND remaining > 0 \
         ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, created_at, id",
    )
    .bind(card)
    .fetch_all(&mut *conn)
    .await?;
    let mut left = amount;
    let acc = card_account(card);
    let mut entries: Vec<(String, i64, Option<String>)> = Vec::new();
    for lot in lots {
        if left == 0 {
            break;
        }
        let id: String = lot.try_get("id")?;
        let remaining: i64 = lot.try_get("remaining")?;
        let take = remaining.min(left);
        sqlx::query("UPDATE loyalty_lots SET remaining = remaining - $1 WHERE id = $2")
            .bind(take)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        entries.push((acc.clone(), -take, Some(id)));
        left -= take;
    }
    if left != 0 {
        // The cached balance and the lots disagree: refuse rather than guess.
        return Err(LedgerError::Db(sqlx::Error::Protocol(format!(
            "card {card}: lots hold less than the balance"
        ))));
    }
    entries.push((counter.to_string(), amount, None));
    let refs: Vec<(&str, i64, Option<&str>)> = entries
        .iter()
        .map(|(a, v, l)| (a.as_str(), *v, l.as_deref()))
        .collect();
    post(conn, &refs, meta).await?;
    Ok(())
}

/// Writes off lots whose expiry has passed, as new entries.
pub async fn expire_lots(
    conn: &mut AnyConnection,
    card: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let lots = sqlx::query(
        "SELECT id, remaining FROM loyalty_lots WHERE card_number = $1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $2",
    )
    .bind(card)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let acc = card_account(card);
    for lot in lots {
        let id: String = lot.try_get("id")?;
        let remaining: i64 = lot.try_get("remaining")?;
        sqlx::query("UPDATE loyalty_lots SET remaining = 0 WHERE id = $1")
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE loyalty_cards SET balance = balance - $1 WHERE number = $2")
            .bind(remaining)
            .bind(card)
            .execute(&mut *conn)
            .await?;
        post(
            conn,
            &[(&acc, -remaining, Some(&id)), (EXPIRED, remaining, None)],
            Meta {
                kind: "expiry",
                operation_id: None,
                reason: Some("bonus lot expired"),
                actor: Some("tillgate"),
                now,
            },
        )
        .await?;
    }
    Ok(())
}

/// Sum of a card's ledger entries: the balance by definition.
pub async fn ledger_balance(conn: &mut AnyConnection, card: &str) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM loyalty_ledger WHERE account = $1",
    )
    .bind(card_account(card))
    .fetch_one(&mut *conn)
    .await?;
    Ok(v.unwrap_or(0))
}
