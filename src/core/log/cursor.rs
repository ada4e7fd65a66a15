//! Consumer cursors: each reader's durable position in the log, moved in
//! the reader's own transaction.

use sqlx::{Any, Transaction};

use crate::core::clock::now_ms;
use crate::core::store::{Db, StoreError};

/// A consumer's durable cursor: the last offset it has fully applied.
pub async fn cursor(db: &Db, name: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT position FROM consumer_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&db.read)
            .await?
            .unwrap_or(0),
    )
}

/// Moves a cursor inside the caller's transaction, so that a consumer's
/// state change and its cursor commit together (exactly-once application).
///
/// Clustered (PostgreSQL, several instances), a consumer run under a lease
/// named like its cursor is fenced here: the write is refused, and with it
/// the caller's whole transaction, unless this instance still holds the
/// lease (see [`crate::core::lease`]).
pub async fn set_cursor(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    position: i64,
) -> Result<(), StoreError> {
    if let Some(leases) = crate::core::lease::ambient()
        && leases.manages(name)
    {
        leases.fence(tx, name).await?;
    }
    sqlx::query(
        "INSERT INTO consumer_cursors (name, position, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(position)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Starts cursor `name` at the current head (a new reader that wants only
/// what comes next), inside the caller's transaction; an existing cursor is
/// left where it is. Returns whether it was created.
pub async fn start_cursor_at_head(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<bool, StoreError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT position FROM consumer_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_offset), 0) FROM events")
        .fetch_one(&mut **tx)
        .await?;
    set_cursor(tx, name, head).await?;
    Ok(true)
}

/// Forgets cursor `name` (its reader is gone), inside the caller's
/// transaction. Retention no longer waits for it.
pub async fn delete_cursor(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM consumer_cursors WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A row of `consumer_cursors`.
#[derive(sqlx::FromRow)]
struct CursorRow {
    name: String,
    position: i64,
}

/// Every cursor as (name, position), by name.
pub async fn cursors(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    let rows: Vec<CursorRow> =
        sqlx::query_as("SELECT name, position FROM consumer_cursors ORDER BY name")
            .fetch_all(&db.read)
            .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.position)).collect())
}
