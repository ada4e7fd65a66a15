//! Relay's tables: destinations, their delivery logs and dead letters. All
//! of relay's SQL is here.
//!
//! A destination's cursor is a log cursor named `relay:<id>` (kept by
//! [`crate::core::log`], never queried here), so `/api/consumers` shows
//! relay lag beside every other consumer and a log pruner can see how far
//! each destination has got.

use super::destination::DestinationInput;
use crate::core::clock::{ms_to_rfc3339, now_ms};
use crate::core::log;
use crate::core::store::{Db, StoreError};

/// Delivery-log lines kept per destination; older ones are dropped.
pub const LOG_KEEP: i64 = 10_000;

pub fn cursor_name(id: &str) -> String {
    format!("relay:{id}")
}

/// The last offset destination `id` has gone through, as stored.
pub async fn cursor(db: &Db, id: &str) -> Result<i64, StoreError> {
    log::cursor(db, &cursor_name(id)).await
}

/// Where a destination was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[[relay.destinations]]`: the file is the truth; the API cannot edit it.
    Config,
    Api,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredDestination {
    pub id: String,
    pub source: Source,
    pub input: DestinationInput,
    pub paused: Option<String>,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("relay destination spec: {e}"))
}

/// A `relay_destinations` row as stored: the spec is the input's JSON,
/// `paused` is 0 or 1.
#[derive(sqlx::FromRow)]
struct DestinationRow {
    id: String,
    source: String,
    spec: String,
    paused: i64,
    paused_reason: Option<String>,
}

impl DestinationRow {
    fn parse(self) -> Result<StoredDestination, StoreError> {
        Ok(StoredDestination {
            id: self.id,
            source: if self.source == "config" {
                Source::Config
            } else {
                Source::Api
            },
            input: serde_json::from_str(&self.spec).map_err(corrupt)?,
            paused: (self.paused != 0).then(|| self.paused_reason.unwrap_or_default()),
        })
    }
}

pub async fn list(db: &Db) -> Result<Vec<StoredDestination>, StoreError> {
    sqlx::query_as::<_, DestinationRow>(
        "SELECT id, source, spec, paused, paused_reason FROM relay_destinations ORDER BY id",
    )
    .fetch_all(&db.read)
    .await?
    .into_iter()
    .map(DestinationRow::parse)
    .collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<StoredDestination>, StoreError> {
    sqlx::query_as::<_, DestinationRow>(
        "SELECT id, source, spec, paused, paused_reason FROM relay_destinations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.read)
    .await?
    .map(DestinationRow::parse)
    .transpose()
}

/// Inserts or replaces a destination. A new one starts at the log head:
/// like a newly configured r_keeper destination it gets events from now on
/// (replay sends older ones on request).
pub async fn upsert(
    db: &Db,
    id: &str,
    source: Source,
    input: &DestinationInput,
) -> Result<bool, StoreError> {
    let spec = serde_json::to_string(input).map_err(corrupt)?;
    let now = now_ms();
    let mut tx = db.write.begin().await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM relay_destinations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_some() {
        sqlx::query(
            "UPDATE relay_destinations SET source = $2, spec = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(source.as_str())
        .bind(&spec)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO relay_destinations (id, source, spec, paused, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $4)",
        )
        .bind(id)
        .bind(source.as_str())
        .bind(&spec)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        log::start_cursor_at_head(&mut tx, &cursor_name(id)).await?;
    }
    tx.commit().await?;
    Ok(exists.is_none())
}

/// Removes a destination with its cursor, delivery log and dead letters.
pub async fn delete(db: &Db, id: &str) -> Result<(), StoreError> {
    let mut tx = db.write.begin().await?;
    for sql in [
        "DELETE FROM relay_destinations WHERE id = $1",
        "DELETE FROM relay_log WHERE destination = $1",
        "DELETE FROM relay_dead_letters WHERE destination = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    log::delete_cursor(&mut tx, &cursor_name(id)).await?;
    tx.commit().await?;
    Ok(())
}

/// One delivery-log line waiting to be stored.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub at: i64,
    pub offset: Option<i64>,
    pub kind: &'static str,
    pub status: Option<i64>,
    pub line: String,
}

impl NewLine {
    pub fn now(
        kind: &'static str,
        offset: Option<i64>,
        status: Option<i64>,
        line: impl Into<String>,
    ) -> Self {
        NewLine {
            at: now_ms(),
            offset,
            kind,
            status,
            line: line.into(),
        }
    }
}

/// A dead letter waiting to be stored.
#[derive(Debug, Clone)]
pub struct NewDead {
    pub offset: i64,
    pub status: Option<i64>,
    pub reason: String,
}

/// Pause state change to store with a flush.
#[derive(Debug, Clone)]
pub enum PauseChange {
    Pause(String),
    Resume,
}

/// Everything a worker step changes, committed in one transaction so the
/// cursor never gets ahead of the dead letters and lines that explain it.
#[derive(Debug, Default)]
pub struct Flush {
    pub cursor: Option<i64>,
    pub lines: Vec<NewLine>,
    pub dead: Vec<NewDead>,
    pub pause: Option<PauseChange>,
}

impl Flush {
    pub fn is_empty(&self) -> bool {
        self.cursor.is_none()
            && self.lines.is_empty()
            && self.dead.is_empty()
            && self.pause.is_none()
    }
}

pub async fn flush(db: &Db, id: &str, f: &Flush) -> Result<(), StoreError> {
    if f.is_empty() {
        return Ok(());
    }
    let mut tx = db.write.begin().await?;
    if let Some(c) = f.cursor {
        log::set_cursor(&mut tx, &cursor_name(id), c).await?;
    }
    if !f.lines.is_empty() {
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(line_no), 0) FROM relay_log WHERE destination = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        for (i, l) in f.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO relay_log (destination, line_no, at, log_offset, kind, status, line) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(last + 1 + i as i64)
            .bind(l.at)
            .bind(l.offset)
            .bind(l.kind)
            .bind(l.status)
            .bind(&l.line)
            .execute(&mut *tx)
            .await?;
        }
        let newest = last + f.lines.len() as i64;
        if newest % 100 < f.lines.len() as i64 {
            sqlx::query("DELETE FROM relay_log WHERE destination = $1 AND line_no <= $2")
                .bind(id)
                .bind(newest - LOG_KEEP)
                .execute(&mut *tx)
                .await?;
        }
    }
    for d in &f.dead {
        sqlx::query(
            "INSERT INTO relay_dead_letters (destination, log_offset, status, reason, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (destination, log_offset) DO UPDATE SET status = excluded.status, reason = excluded.reason, at = excluded.at",
        )
        .bind(id)
        .bind(d.offset)
        .bind(d.status)
        .bind(&d.reason)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    match &f.pause {
        Some(PauseChange::Pause(reason)) => {
            sqlx::query(
                "UPDATE relay_destinations SET paused = 1, paused_reason = $2, paused_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(reason)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        Some(PauseChange::Resume) => {
            sqlx::query(
                "UPDATE relay_destinations SET paused = 0, paused_reason = NULL, paused_at = NULL WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        None => {}
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub line_no: i64,
    pub at: String,
    pub offset: Option<i64>,
    pub kind: String,
    pub status: Option<i64>,
    pub line: String,
}

/// A `relay_log` row as stored (`at` in clock ms).
#[derive(sqlx::FromRow)]
struct LogLineRow {
    line_no: i64,
    at: i64,
    log_offset: Option<i64>,
    kind: String,
    status: Option<i64>,
    line: String,
}

impl From<LogLineRow> for LogLine {
    fn from(r: LogLineRow) -> Self {
        LogLine {
            line_no: r.line_no,
            at: ms_to_rfc3339(r.at),
            offset: r.log_offset,
            kind: r.kind,
            status: r.status,
            line: r.line,
        }
    }
}

/// Newest first; `before` pages backwards.
pub async fn log_page(
    db: &Db,
    id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LogLine>, StoreError> {
    let rows = sqlx::query_as::<_, LogLineRow>(
        "SELECT line_no, at, log_offset, kind, status, line FROM relay_log WHERE destination = $1 AND line_no < $2 ORDER BY line_no DESC LIMIT $3",
    )
    .bind(id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.into_iter().map(LogLine::from).collect())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub offset: i64,
    pub status: Option<i64>,
    pub reason: String,
    pub at: String,
}

/// A `relay_dead_letters` row as stored (`at` in clock ms).
#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    log_offset: i64,
    status: Option<i64>,
    reason: String,
    at: i64,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(r: DeadLetterRow) -> Self {
        DeadLetter {
            offset: r.log_offset,
            status: r.status,
            reason: r.reason,
            at: ms_to_rfc3339(r.at),
        }
    }
}

pub async fn dead_letters(
    db: &Db,
    id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query_as::<_, DeadLetterRow>(
        "SELECT log_offset, status, reason, at FROM relay_dead_letters WHERE destination = $1 AND log_offset > $2 ORDER BY log_offset LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.into_iter().map(DeadLetter::from).collect())
}

pub async fn dead_letter_count(db: &Db, id: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM relay_dead_letters WHERE destination = $1")
            .bind(id)
            .fetch_one(&db.read)
            .await?,
    )
}

pub async fn remove_dead_letter(
    db: &Db,
    id: &str,
    offset: i64,
    line: &NewLine,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM relay_dead_letters WHERE destination = $1 AND log_offset = $2")
        .bind(id)
        .bind(offset)
        .execute(&db.write)
        .await?;
    flush(
        db,
        id,
        &Flush {
            lines: vec![line.clone()],
            ..Flush::default()
        },
    )
    .await
}

/// Moves the cursor so the next event sent is the first after `position`.
pub async fn set_cursor(db: &Db, id: &str, position: i64) -> Result<(), StoreError> {
    let mut tx = db.write.begin().await?;
    log::set_cursor(&mut tx, &cursor_name(id), position).await?;
    tx.commit().await?;
    Ok(())
}
