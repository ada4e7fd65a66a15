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
//!
//! Only this module writes SQL against `loyalty_ledger` and `loyalty_lots`.

use sqlx::{AnyConnection, AnyExecutor};

use crate::core::store::{Backend, multi_row};

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
    /// A posting whose entries do not sum to zero: a bug in the caller.
    /// Refused in every build, so money is never created or lost silently;
    /// the caller's transaction is not committed.
    #[error("ledger posting {kind:?} does not balance: its entries sum to {sum}, not 0")]
    Unbalanced { kind: String, sum: i64 },
    /// The cached balance and the lots disagree.
    #[error("card {0}: lots hold less than the balance")]
    LotsShort(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A lot with bonus left.
#[derive(Debug, sqlx::FromRow)]
struct Lot {
    id: String,
    remaining: i64,
}

/// An entry of a card's account, for the operator's card history.
#[derive(Debug, sqlx::FromRow)]
pub struct EntryRow {
    pub amount: i64,
    pub kind: String,
    pub operation_id: Option<String>,
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub created_at: i64,
}

/// Refuses a posting that does not sum to zero (see
/// [`LedgerError::Unbalanced`]). Checked before anything is written.
fn check_balanced(entries: &[(&str, i64, Option<&str>)], kind: &str) -> Result<(), LedgerError> {
    let sum = entries
        .iter()
        .try_fold(0i64, |acc, e| acc.checked_add(e.1))
        .unwrap_or(i64::MAX);
    if sum != 0 {
        return Err(LedgerError::Unbalanced {
            kind: kind.to_string(),
            sum,
        });
    }
    Ok(())
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

/// A unique id that sorts by time: milliseconds, then a process-wide
/// counter (order within one millisecond), then 8 random hex digits (two
/// processes on one PostgreSQL). New rows keyed by it land at the end of
/// their B-tree instead of on a random page, so a group commit dirties (and
/// syncs) a few pages rather than one per row.
pub(crate) fn ordered_id(now: i64) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{now:015}-{n:012}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// One stored ledger entry (a row of `loyalty_ledger`).
#[derive(Debug, Clone)]
pub(crate) struct LedgerRow {
    pub id: String,
    pub posting_id: String,
    pub account: String,
    pub amount: i64,
    pub kind: String,
    pub operation_id: Option<String>,
    pub lot_id: Option<String>,
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub created_at: i64,
    pub seq: i64,
}

/// The rows of one balanced posting. Posting ids sort by time so history
/// reads in order on both backends without a sequence.
pub(crate) fn posting(
    entries: &[(&str, i64, Option<&str>)],
    meta: Meta<'_>,
) -> Result<Vec<LedgerRow>, LedgerError> {
    check_balanced(entries, meta.kind)?;
    let posting = ordered_id(meta.now);
    Ok(entries
        .iter()
        .enumerate()
        .map(|(seq, (account, amount, lot))| LedgerRow {
            id: format!("{posting}-{seq}"),
            posting_id: posting.clone(),
            account: account.to_string(),
            amount: *amount,
            kind: meta.kind.to_string(),
            operation_id: meta.operation_id.map(str::to_string),
            lot_id: lot.map(str::to_string),
            reason: meta.reason.map(str::to_string),
            actor: meta.actor.map(str::to_string),
            created_at: meta.now,
            seq: seq as i64,
        })
        .collect())
}

/// Appends one balanced posting.
async fn post(
    conn: &mut AnyConnection,
    entries: &[(&str, i64, Option<&str>)],
    meta: Meta<'_>,
) -> Result<(), LedgerError> {
    for r in posting(entries, meta)? {
        sqlx::query(
            "INSERT INTO loyalty_ledger (id, posting_id, account, amount, kind, operation_id, lot_id, reason, actor, created_at, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(r.id)
        .bind(r.posting_id)
        .bind(r.account)
        .bind(r.amount)
        .bind(r.kind)
        .bind(r.operation_id)
        .bind(r.lot_id)
        .bind(r.reason)
        .bind(r.actor)
        .bind(r.created_at)
        .bind(r.seq)
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
) -> Result<(), LedgerError> {
    if amount <= 0 {
        return Ok(());
    }
    let lot = ordered_id(meta.now);
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
    let lots: Vec<Lot> = sqlx::query_as(
        "SELECT id, remaining FROM loyalty_lots WHERE card_number = $1 AND remaining > 0 \
         ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, created_at, id",
    )
    .bind(card)
    .fetch_all(&mut *conn)
    .await?;
    let mut left = amount;
    let acc = card_account(card);
    let mut entries: Vec<(String, i64, Option<String>)> = Vec::new();
    for Lot { id, remaining } in lots {
        if left == 0 {
            break;
        }
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
        return Err(LedgerError::LotsShort(card.to_string()));
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
) -> Result<(), LedgerError> {
    let lots: Vec<Lot> = sqlx::query_as(
        "SELECT id, remaining FROM loyalty_lots WHERE card_number = $1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $2",
    )
    .bind(card)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let acc = card_account(card);
    for Lot { id, remaining } in lots {
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
pub async fn ledger_balance<'c>(db: impl AnyExecutor<'c>, card: &str) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM loyalty_ledger WHERE account = $1",
    )
    .bind(card_account(card))
    .fetch_one(db)
    .await?;
    Ok(v.unwrap_or(0))
}

/// The sum of the entries on a card's account that `actor` posted (the
/// back office's resync finds what it corrected before).
pub async fn card_sum_by_actor<'c>(
    db: impl AnyExecutor<'c>,
    card: &str,
    actor: &str,
) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM loyalty_ledger WHERE account = $1 AND actor = $2",
    )
    .bind(card_account(card))
    .bind(actor)
    .fetch_one(db)
    .await?;
    Ok(v.unwrap_or(0))
}

/// A card's entries in posting order.
pub async fn entries_of_card<'c>(
    db: impl AnyExecutor<'c>,
    card: &str,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT amount, kind, operation_id, reason, actor, created_at FROM loyalty_ledger WHERE account = $1 ORDER BY posting_id, seq",
    )
    .bind(card_account(card))
    .fetch_all(db)
    .await
}

/// Entries of any account in posting order (a payment card's
/// `paycard:<number>`, see [`super::payment`]).
pub async fn entries_of_account<'c>(
    db: impl AnyExecutor<'c>,
    account: &str,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT amount, kind, operation_id, reason, actor, created_at FROM loyalty_ledger WHERE account = $1 ORDER BY posting_id, seq",
    )
    .bind(account)
    .fetch_all(db)
    .await
}

/// Sum of any account's entries.
pub async fn account_balance<'c>(
    db: impl AnyExecutor<'c>,
    account: &str,
) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM loyalty_ledger WHERE account = $1",
    )
    .bind(account)
    .fetch_one(db)
    .await?;
    Ok(v.unwrap_or(0))
}

/// A lot as the in-memory owner keeps it ([`super::ops::owner`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LotRow {
    pub id: String,
    pub card_number: String,
    pub amount: i64,
    pub remaining: i64,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// A card's lots with bonus left, in no particular order.
pub(crate) async fn open_lots(
    conn: &mut AnyConnection,
    card: &str,
) -> Result<Vec<LotRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, card_number, amount, remaining, expires_at, created_at FROM loyalty_lots \
         WHERE card_number = $1 AND remaining > 0",
    )
    .bind(card)
    .fetch_all(&mut *conn)
    .await
}

/// Rows per multi-row statement: far below SQLite's bound-parameter limit.
const CHUNK: usize = 400;

/// Writes lots as they are now: new ones inserted, known ones given their
/// remaining bonus. One statement per [`CHUNK`] lots.
pub(crate) async fn upsert_lots(
    conn: &mut AnyConnection,
    backend: Backend,
    lots: &[LotRow],
) -> Result<(), sqlx::Error> {
    for chunk in lots.chunks(CHUNK) {
        let mut sql = multi_row(
            backend,
            "INSERT INTO loyalty_lots (id, card_number, amount, remaining, expires_at, created_at) VALUES ",
            chunk.len(),
            6,
        );
        sql.push_str(" ON CONFLICT (id) DO UPDATE SET remaining = excluded.remaining");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for l in chunk {
            q = q
                .bind(l.id.clone())
                .bind(l.card_number.clone())
                .bind(l.amount)
                .bind(l.remaining)
                .bind(l.expires_at)
                .bind(l.created_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends ledger rows, [`CHUNK`] per statement.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[LedgerRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let sql = multi_row(
            backend,
            "INSERT INTO loyalty_ledger (id, posting_id, account, amount, kind, operation_id, lot_id, reason, actor, created_at, seq) VALUES ",
            chunk.len(),
            11,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.id.clone())
                .bind(r.posting_id.clone())
                .bind(r.account.clone())
                .bind(r.amount)
                .bind(r.kind.clone())
                .bind(r.operation_id.clone())
                .bind(r.lot_id.clone())
                .bind(r.reason.clone())
                .bind(r.actor.clone())
                .bind(r.created_at)
                .bind(r.seq);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Storage;
    use crate::core::store::Db;

    #[test]
    fn only_balanced_postings_pass() {
        assert!(check_balanced(&[("card:1", 5, None), (ISSUED, -5, None)], "earn").is_ok());
        let e = check_balanced(&[("card:1", 5, None), (ISSUED, -4, None)], "earn").unwrap_err();
        assert!(matches!(e, LedgerError::Unbalanced { sum: 1, .. }), "{e}");
        assert!(e.to_string().contains("earn"), "{e}");
        // An overflowing sum is not zero either.
        assert!(check_balanced(&[("a", i64::MAX, None), ("b", 1, None)], "x").is_err());
    }

    /// The check holds in release builds too: an unbalanced posting is an
    /// error and nothing of it is written.
    #[tokio::test]
    async fn an_unbalanced_posting_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        })
        .await
        .unwrap();
        crate::core::migrate::migrate(&db, &[crate::migration!("0007_loyalty")])
            .await
            .unwrap();
        let mut conn = db.write.acquire().await.unwrap();
        let meta = Meta {
            kind: "adjustment",
            operation_id: None,
            reason: Some("test"),
            actor: Some("test"),
            now: 1,
        };
        let e = post(
            &mut conn,
            &[("card:1", 100, None), (ADJUSTMENTS, -99, None)],
            meta,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, LedgerError::Unbalanced { sum: 1, .. }), "{e}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM loyalty_ledger")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(rows, 0);
        post(
            &mut conn,
            &[("card:1", 100, None), (ADJUSTMENTS, -100, None)],
            meta,
        )
        .await
        .unwrap();
        assert_eq!(ledger_balance(&mut *conn, "1").await.unwrap(), 100);
        drop(conn);
        db.close().await;
    }
}
