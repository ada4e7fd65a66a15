//! Every SQL statement of the alerts feature: the outbox (one row per alert
//! and chat, here), the rules' memory of orders, restaurants and stations
//! and the watchdog's marks (`memory.rs`), mutes, migrated chats and
//! counters. Rows are read into named structs; the rest of the feature
//! never writes SQL.
//!
//! Outbox rows are written in the same transaction as whatever produced
//! them (the rule consumer's cursor, the gap cursor, the shift-close
//! marker), so an alert is neither lost nor produced twice by a crash on our
//! side. Delivery state lives in the row: `parts_sent` counts the Telegram
//! messages of the alert already accepted, so a long alert split into parts
//! resumes where it stopped.

mod memory;

use std::fmt;
use std::str::FromStr;

use super::kind::AlertKind;
use super::payload::{Alert, PAYLOAD_VERSION};
use crate::core::outbox::OutboxState;
use crate::core::store::{Db, StoreError};
pub use memory::{
    OnlineStation, QuietStation, RestRow, StationWrite, current_shift, online_stations,
    order_memory, quiet_stations, rest, save_order_memories, save_rests, save_stations,
    set_reported_shift, set_rest_silent, set_station_silent, station_started,
};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Where an alert row is. Every alert is recorded, routed or not; one that
/// no chat is configured to receive is `unrouted`: listed by the API, never
/// picked by the sender (configuring a chat later does not flood it with
/// the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Outbox(OutboxState),
    Unrouted,
}

impl AlertState {
    pub const PENDING: AlertState = AlertState::Outbox(OutboxState::Pending);
    pub const SENT: AlertState = AlertState::Outbox(OutboxState::Sent);
    pub const FAILED: AlertState = AlertState::Outbox(OutboxState::Failed);
    pub const MUTED: AlertState = AlertState::Outbox(OutboxState::Muted);
    /// The states an alert row can take (alerts record each Telegram
    /// message as it is accepted, so no row is ever left `sending`).
    pub const ALL: [AlertState; 5] = [
        AlertState::PENDING,
        AlertState::SENT,
        AlertState::FAILED,
        AlertState::MUTED,
        AlertState::Unrouted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Outbox(s) => s.as_str(),
            AlertState::Unrouted => "unrouted",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AlertState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert state {0:?}: expected pending, sent, failed, muted or unrouted")]
pub struct UnknownState(pub String);

impl FromStr for AlertState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Read from the outbox's `state` column.
impl TryFrom<String> for AlertState {
    type Error = UnknownState;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Decodes a stored payload, refusing versions this build cannot read.
fn decode(id: i64, version: i64, payload: &str) -> Result<Alert, StoreError> {
    if version != PAYLOAD_VERSION {
        return Err(StoreError::Corrupt(format!(
            "alert {id} has payload version {version}"
        )));
    }
    serde_json::from_str(payload).map_err(corrupt)
}

/// Records `alert`: one row per chat it is routed to, inside `tx`, or one
/// `unrouted` row when it is routed nowhere. Chats that Telegram migrated
/// are followed to their new id. Returns the rows that wait for delivery.
pub async fn enqueue(
    tx: &mut Tx,
    alert: &Alert,
    chats: &[i64],
    now_ms: i64,
) -> Result<usize, StoreError> {
    let payload = serde_json::to_string(alert).map_err(corrupt)?;
    if chats.is_empty() {
        insert_row(tx, alert, &payload, None, AlertState::Unrouted, now_ms).await?;
        return Ok(0);
    }
    for &chat in chats {
        let chat = resolve_chat(tx, chat).await?;
        insert_row(tx, alert, &payload, Some(chat), AlertState::PENDING, now_ms).await?;
    }
    Ok(chats.len())
}

async fn insert_row(
    tx: &mut Tx,
    alert: &Alert,
    payload: &str,
    chat: Option<i64>,
    state: AlertState,
    now_ms: i64,
) -> Result<(), StoreError> {
    // A counter row instead of an autoincrement column: the same SQL on
    // SQLite and PostgreSQL, and the row lock orders concurrent writers.
    let id: i64 = sqlx::query_scalar(
        "UPDATE alerts_meta SET value = value + 1 WHERE key = 'outbox_id' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO alerts_outbox (id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, 0, NULL, NULL)",
    )
    .bind(id)
    .bind(now_ms)
    .bind(alert.rest_code())
    .bind(alert.kind().as_str())
    .bind(chat)
    .bind(PAYLOAD_VERSION)
    .bind(payload)
    .bind(state.as_str())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

/// One outbox row as the API shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub created_at: i64,
    pub rest_code: Option<String>,
    #[sqlx(try_from = "String")]
    pub kind: AlertKind,
    /// `None` for an `unrouted` alert.
    pub chat_id: Option<i64>,
    pub payload_version: i64,
    #[serde(skip)]
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub state: AlertState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub parts_sent: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

impl OutboxRow {
    pub fn alert(&self) -> Result<Alert, StoreError> {
        decode(self.id, self.payload_version, &self.payload)
    }
}

/// A row waiting for delivery, as the sender needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: AlertKind,
    pub chat_id: i64,
    pub payload_version: i64,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub parts_sent: i64,
}

impl PendingRow {
    pub fn alert(&self) -> Result<Alert, StoreError> {
        decode(self.id, self.payload_version, &self.payload)
    }
}

/// Pending rows in id order (the order alerts happened), oldest first.
pub async fn pending(db: &Db, limit: i64) -> Result<Vec<PendingRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, chat_id, payload_version, payload, attempts, next_attempt_at, parts_sent \
         FROM alerts_outbox WHERE state = $1 AND chat_id IS NOT NULL ORDER BY id LIMIT $2",
    )
    .bind(AlertState::PENDING.as_str())
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

pub async fn count_pending(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts_outbox WHERE state = $1")
            .bind(AlertState::PENDING.as_str())
            .fetch_one(&db.read)
            .await?,
    )
}

/// A page of rows after `after_id`, of one state or all.
pub async fn list(
    db: &Db,
    after_id: i64,
    limit: i64,
    state: Option<AlertState>,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error \
         FROM alerts_outbox WHERE id > $1 AND ($2 = '' OR state = $2) ORDER BY id LIMIT $3",
    )
    .bind(after_id)
    .bind(state.map_or("", AlertState::as_str))
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

/// Records that Telegram accepted parts up to `parts_sent`; `done` marks
/// the whole row sent. One statement, so success is recorded the moment we
/// learn of it.
pub async fn record_part(
    db: &Db,
    id: i64,
    parts_sent: i64,
    done: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    let state = if done {
        AlertState::SENT
    } else {
        AlertState::PENDING
    };
    sqlx::query(
        "UPDATE alerts_outbox SET parts_sent = $2, state = $3, sent_at = $4, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(parts_sent)
    .bind(state.as_str())
    .bind(done.then_some(now_ms))
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again at `next_attempt_at`, or `failed`.
pub async fn record_failure(
    db: &Db,
    id: i64,
    next_attempt_at: i64,
    error: &str,
    give_up: bool,
) -> Result<(), StoreError> {
    let state = if give_up {
        AlertState::FAILED
    } else {
        AlertState::PENDING
    };
    sqlx::query(
        "UPDATE alerts_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, state = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(error)
    .bind(state.as_str())
    .execute(&db.write)
    .await?;
    Ok(())
}

pub async fn mark_muted(db: &Db, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE alerts_outbox SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(AlertState::MUTED.as_str())
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
    sqlx::query("UPDATE alerts_outbox SET chat_id = $2 WHERE chat_id = $1 AND state = $3")
        .bind(old)
        .bind(new)
        .bind(AlertState::PENDING.as_str())
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

/// The Telegram update offset the bot polls from.
pub const UPDATE_OFFSET: &str = "tg_update_offset";
/// The last gap (of the log's gaps table) alerted on.
pub const GAP_CURSOR: &str = "gap_cursor";

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

/// Reads a counter inside `tx` after writing to it: a SQLite transaction
/// that reads and then writes fails at once (not after busy_timeout) if
/// another connection wrote in between, so the write lock is taken first.
pub async fn meta_for_update(tx: &mut Tx, key: &str) -> Result<i64, StoreError> {
    sqlx::query("UPDATE alerts_meta SET value = value WHERE key = $1")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM alerts_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or(0),
    )
}

/// How delivery to Telegram is going, for the console's overview.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeliveryState {
    /// When Telegram last accepted an alert (ms).
    pub last_sent_at: Option<i64>,
    /// Alerts waiting for delivery.
    pub pending: i64,
    /// The newest alert whose last attempt failed: its error and state.
    pub last_error: Option<String>,
    pub last_error_state: Option<String>,
}

/// The figures of [`DeliveryState`]: three index-backed reads.
pub async fn delivery_state(db: &Db) -> Result<DeliveryState, StoreError> {
    let last_sent_at: Option<i64> = sqlx::query_scalar("SELECT MAX(sent_at) FROM alerts_outbox")
        .fetch_one(&db.read)
        .await?;
    let failed: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT last_error, state FROM alerts_outbox WHERE last_error IS NOT NULL AND state <> $1 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(AlertState::SENT.as_str())
    .fetch_optional(&db.read)
    .await?;
    let (last_error, last_error_state) = match failed {
        Some((e, s)) => (e, Some(s)),
        None => (None, None),
    };
    Ok(DeliveryState {
        last_sent_at,
        pending: count_pending(db).await?,
        last_error,
        last_error_state,
    })
}
