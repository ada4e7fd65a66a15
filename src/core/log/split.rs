//! Moving the log's tables out of the state database into the log's own
//! file (SQLite only), for a data directory made before the two were apart
//! and for a new one alike (the file migrations create the tables in the
//! state database; this moves them).
//!
//! SQLite commits a transaction over two WAL files atomically per file, not
//! as a whole, so the move is two steps that are each safe to repeat: copy
//! every row into the log file (replacing whatever an interrupted earlier
//! copy left there) and commit; then drop the tables from the state file.
//! A crash between the two leaves both copies, and the next start copies
//! again from the state file, which is still whole.

use sqlx::Row;

use crate::core::store::{Backend, Db, StoreError};

/// The log's tables. The consumers' cursors stay in the state database:
/// a consumer moves its cursor in the transaction that changes its state.
const TABLES: [&str; 4] = ["events", "streams", "gaps", "quarantine"];

/// Moves the log's tables into the attached log file if they are still in
/// the state file. Returns how many events moved (0 when nothing had to).
pub async fn into_own_file(db: &Db) -> Result<u64, StoreError> {
    if db.backend != Backend::Sqlite || db.log_file.is_none() {
        return Ok(0);
    }
    let in_main: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'events'",
    )
    .fetch_one(&db.write)
    .await?;
    if in_main == 0 {
        return Ok(0);
    }
    let mut conn = db.write.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut moved = 0u64;
    for table in TABLES {
        let ddl: Vec<sqlx::any::AnyRow> = sqlx::query(
            "SELECT type, name, sql FROM main.sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS log.{table}"
        )))
        .execute(&mut *tx)
        .await?;
        for row in &ddl {
            let kind: String = row.try_get("type")?;
            let name: String = row.try_get("name")?;
            let sql: String = row.try_get("sql")?;
            let create = in_log_schema(&kind, &name, &sql).ok_or_else(|| {
                StoreError::Corrupt(format!("cannot move {kind} {name}: unexpected DDL {sql}"))
            })?;
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut *tx)
                .await?;
        }
        let copied = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO log.{table} SELECT * FROM main.{table}"
        )))
        .execute(&mut *tx)
        .await?;
        if table == "events" {
            moved = copied.rows_affected();
        }
    }
    tx.commit().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for table in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE main.{table}")))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if moved > 0 {
        tracing::info!(events = moved, "moved the event log into its own file");
    }
    Ok(moved)
}

/// `CREATE TABLE name (...)` / `CREATE [UNIQUE] INDEX name ON ...` as
/// created in schema `log`. The DDL is tillgate's own migrations' text,
/// so the forms are known; anything else is refused rather than guessed.
fn in_log_schema(kind: &str, name: &str, sql: &str) -> Option<String> {
    let head = match kind {
        "table" => format!("CREATE TABLE {name}"),
        "index" if sql.starts_with("CREATE UNIQUE INDEX") => {
            format!("CREATE UNIQUE INDEX {name}")
        }
        "index" => format!("CREATE INDEX {name}"),
        _ => return None,
    };
    let rest = sql.strip_prefix(&head)?;
    let qualified = head.replacen(name, &format!("log.{name}"), 1);
    Some(format!("{qualified}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::in_log_schema;

    #[test]
    fn ddl_is_requalified_or_refused() {
        assert_eq!(
            in_log_schema("table", "gaps", "CREATE TABLE gaps (\n id BIGINT)").unwrap(),
            "CREATE TABLE log.gaps (\n id BIGINT)"
        );
        assert_eq!(
            in_log_schema(
                "index",
                "events_stream_seq",
                "CREATE UNIQUE INDEX events_stream_seq ON events (stream_guid, seqnumber)"
            )
            .unwrap(),
            "CREATE UNIQUE INDEX log.events_stream_seq ON events (stream_guid, seqnumber)"
        );
        assert!(in_log_schema("index", "x", "CREATE INDEX y ON events (a)").is_none());
        assert!(in_log_schema("trigger", "t", "CREATE TRIGGER t").is_none());
    }
}
