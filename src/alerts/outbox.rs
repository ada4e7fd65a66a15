//! The durable outbox: one row per (alert, chat), plus the alert feature's
//! own memory tables.
//!
//! Rows are written in the same transaction as whatever produced them (the
//! rule consumer's cursor, the gap cursor, the shift-close marker), so an
//! alert is neither lost nor produced twice by a crash on our side. Delivery
//! state lives in the row: `parts_sent` counts the Telegram messages of the
//! alert already accepted, so a long alert split into parts resumes where it
//! stopped.

use sqlx::Row;

use super::payload::{Alert, PAYLOAD_VERSION};
use crate::core::store::{Db, StoreError};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Writes one row per chat the alert is routed to, inside `tx`. Chats that
/// Telegram migrated are followed to their new id.
pub async fn enqueue(
    tx: &mut Tx,
    alert: &Alert,
    chats: &[i64],
    now_ms: i64,
) -> Result<usize, StoreError> {
    let payload = serde_json::to_string(alert).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut n = 0;
    for &chat in chats {
        let chat = resolve_chat(tx, chat).await?;
        // A counter row instead of an autoincrement column: the same SQL on
        // SQLite and PostgreSQL, and the row lock orders concurrent writers.
        let id: i64 = sqlx::query_scalar(
            "UPDATE alerts_meta SET value = value + 1 WHERE key = 'outbox_id' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO alerts_outbox (id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, 0, NULL, NULL)",
        )
        .bind(id)
        .bind(now_ms)
        .bind(alert.rest_code())
        .bind(alert.kind())
        .bind(chat)
        .bind(PAYLOAD_VERSION)
        .bind(&payload)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        n += 1;
    }
    Ok(n)
}

async fn resolve_chat(tx: &mut Tx, chat: i64) -> Result<i64, StoreError> {
    let mut chat = chat;
    // Follow a short chain (a group can migrate once; be safe against loops).
    for _ in 0..4 {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT new_chat FROM alerts_chats WHERE old_chat = $1")
                .bind(chat)
                .fetch_optional(&mut **tx)
                .await?;
        match next {
            Some(n) if n != chat => chat = n,
            _ => break,
        }
    }
    Ok(chat)
}

pub async fn meta(db: &Db, key: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM alerts_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&db.read)
            .await?
            .unwrap_or(0),
    )
}

pub async fn set_meta(tx: &mut Tx, key: &str, value: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts_meta SET value = $2 WHERE key = $1")
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One outbox row as the sender and the API see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row_ {
    pub id: i64,
    pub created_at: i64,
    pub rest_code: Option<String>,
    pub kind: String,
    pub chat_id: i64,
    pub payload_version: i64,
    #[serde(skip)]
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub parts_sent: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

pub use Row_ as OutboxRow;

const COLS: &str = "id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error";

fn row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: r.try_get(0)?,
        created_at: r.try_get(1)?,
        rest_code: r.try_get(2)?,
        kind: r.try_get(3)?,
        chat_id: r.try_get(4)?,
        payload_version: r.try_get(5)?,
        payload: r.try_get(6)?,
        state: r.try_get(7)?,
        attempts: r.try_get(8)?,
        next_attempt_at: r.try_get(9)?,
        parts_sent: r.try_get(10)?,
        sent_at: r.try_get(11)?,
        last_error: r.try_get(12)?,
    })
}

impl OutboxRow {
    pub fn alert(&self) -> Result<Alert, StoreError> {
        if self.payload_version != PAYLOAD_VERSION {
            return Err(StoreError::Corrupt(format!(
                "alert {} has payload version {}",
                self.id, self.payload_version
            )));
        }
        serde_json::from_str(&self.payload).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Pending rows in id order (the order alerts happened), oldest first.
pub async fn pending(db: &Db, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM alerts_outbox WHERE state = 'pending' ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
}

pub async fn list(
    db: &Db,
    after_id: i64,
    limit: i64,
    state: Option<&str>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM alerts_outbox WHERE id > $1 AND ($2 = '' OR state = $2) ORDER BY id LIMIT $3"
    )))
    .bind(after_id)
    .bind(state.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
}

pub async fn count_pending(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts_outbox WHERE state = 'pending'")
            .fetch_one(&db.read)
            .await?,
    )
}

/// Records that part `parts_sent` (0-based count after this part) was
/// accepted by Telegram; `done` marks the whole row sent. One statement, so
/// success is recorded the moment we learn of it.
pub async fn record_part(
    db: &Db,
    id: i64,
    parts_sent: i64,
    done: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE alerts_outbox SET parts_sent = $2, state = $3, sent_at = $4, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(parts_sent)
    .bind(if done { "sent" } else { "pending" })
    .bind(if done { Some(now_ms) } else { None })
    .execute(&db.write)
    .await?;
    Ok(())
}

pub async fn record_failure(
    db: &Db,
    id: i64,
    next_attempt_at: i64,
    error: &str,
    give_up: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE alerts_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, state = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(error)
    .bind(if give_up { "failed" } else { "pending" })
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The group became a supergroup: remember the new id and move every
/// pending row there.
pub async fn migrate_chat(db: &Db, old: i64, new: i64) -> Result<(), StoreError> {
    let mut tx = db.write.begin().await?;
    sqlx::query(
        "INSERT INTO alerts_chats (old_chat, new_chat) VALUES ($1, $2) ON CONFLICT (old_chat) DO UPDATE SET new_chat = excluded.new_chat",
    )
    .bind(old)
    .bind(new)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE alerts_outbox SET chat_id = $2 WHERE chat_id = $1 AND state = 'pending'")
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn muted_until(db: &Db, chat: i64) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT until_ms FROM alerts_mutes WHERE chat_id = $1")
            .bind(chat)
            .fetch_optional(&db.read)
            .await?
            .unwrap_or(0),
    )
}

pub async fn mute(db: &Db, chat: i64, until_ms: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alerts_mutes (chat_id, until_ms) VALUES ($1, $2) ON CONFLICT (chat_id) DO UPDATE SET until_ms = excluded.until_ms",
    )
    .bind(chat)
    .bind(until_ms)
    .execute(&db.write)
    .await?;
    Ok(())
}
