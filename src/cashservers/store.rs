//! The feature's tables: cash servers added through the API or CLI, the
//! latest version of each order seen in the log, backfill jobs, and small
//! state (the last gap looked at, learned restaurant codes).

use secrecy::ExposeSecret;

use super::settings::{CashServer, CashServerFile, validate_cash_server};
use crate::core::clock::now_ms;
use crate::core::store::{Db, StoreError};

#[derive(sqlx::FromRow)]
struct ServerRow {
    name: String,
    url: String,
    user_name: String,
    password: String,
    rest_code: Option<String>,
    tls_fingerprint: Option<String>,
    insecure_tls: i64,
}

/// Cash servers added through the API or CLI (stored validated; a row
/// that no longer validates is skipped with a log line).
pub async fn added_servers(db: &Db) -> Result<Vec<CashServer>, StoreError> {
    let rows: Vec<ServerRow> = sqlx::query_as(
        "SELECT name, url, user_name, password, rest_code, tls_fingerprint, insecure_tls FROM rk7_cash_servers ORDER BY name",
    )
    .fetch_all(&db.read)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name = r.name.clone();
            validate_cash_server(CashServerFile {
                name: r.name,
                url: r.url,
                user: r.user_name,
                password: Some(r.password),
                rest_code: r.rest_code,
                tls_fingerprint: r.tls_fingerprint,
                insecure_tls: Some(r.insecure_tls != 0),
            })
            .inspect_err(|(f, p)| tracing::error!(cash_server = %name, field = f, problem = %p, "stored cash server no longer valid; skipped"))
            .ok()
        })
        .collect())
}

/// Stores (or replaces) a cash server added through the API or CLI.
pub async fn save_server(db: &Db, s: &CashServer, file: &CashServerFile) -> Result<(), StoreError> {
    let mut tx = db.write.begin().await?;
    sqlx::query("DELETE FROM rk7_cash_servers WHERE name = $1")
        .bind(&s.name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO rk7_cash_servers (name, url, user_name, password, rest_code, tls_fingerprint, insecure_tls, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.name)
    .bind(&s.url)
    .bind(&s.user)
    .bind(s.password.expose_secret())
    .bind(s.rest_code.as_deref())
    .bind(file.tls_fingerprint.as_deref())
    .bind(i64::from(file.insecure_tls.unwrap_or(false)))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The highest version of an order seen in the log.
pub async fn known_version(db: &Db, order_guid: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM rk7_order_versions WHERE order_guid = $1")
            .bind(order_guid)
            .fetch_optional(&db.read)
            .await?,
    )
}

/// A state value.
pub async fn state(db: &Db, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM rk7_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&db.read)
            .await?,
    )
}

pub async fn set_state(db: &Db, key: &str, value: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rk7_state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// A backfill job: one gap (or one reconciliation) of one cash server.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub cash_server: String,
    pub gap_id: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub repaired: i64,
    pub last_error: Option<String>,
}

/// Queues a job, due at `now` (the worker's clock), unless one exists for
/// the same cash server and gap.
pub async fn queue_job(
    db: &Db,
    cash_server: &str,
    gap_id: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = db.write.begin().await?;
    let exists: Option<i64> = match gap_id {
        Some(g) => sqlx::query_scalar(
            "SELECT id FROM rk7_backfill_jobs WHERE cash_server = $1 AND gap_id = $2",
        )
        .bind(cash_server)
        .bind(g)
        .fetch_optional(&mut *tx)
        .await?,
        None => sqlx::query_scalar(
            "SELECT id FROM rk7_backfill_jobs WHERE cash_server = $1 AND gap_id IS NULL AND state = 'pending'",
        )
        .bind(cash_server)
        .fetch_optional(&mut *tx)
        .await?,
    };
    if exists.is_none() {
        let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM rk7_backfill_jobs")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO rk7_backfill_jobs (id, cash_server, gap_id, state, attempts, next_attempt_at, repaired, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, 0, $4)",
        )
        .bind(id)
        .bind(cash_server)
        .bind(gap_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The next pending job due by `now`, and the earliest due time of the rest.
pub async fn next_job(db: &Db, now: i64) -> Result<(Option<Job>, Option<i64>), StoreError> {
    let due: Option<Job> = sqlx::query_as(
        "SELECT id, cash_server, gap_id, state, attempts, next_attempt_at, repaired, last_error FROM rk7_backfill_jobs WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT 1",
    )
    .bind(now)
    .fetch_optional(&db.read)
    .await?;
    let later: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM rk7_backfill_jobs WHERE state = 'pending'",
    )
    .fetch_one(&db.read)
    .await?;
    Ok((due, later))
}

/// Records the outcome of an attempt.
pub async fn finish_job(
    db: &Db,
    id: i64,
    state: &str,
    attempts: i64,
    next_attempt_at: i64,
    repaired: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rk7_backfill_jobs SET state = $2, attempts = $3, next_attempt_at = $4, repaired = $5, last_error = $6, done_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(repaired)
    .bind(error)
    .bind((state != "pending").then(now_ms))
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Every job, newest first (the operator API).
pub async fn jobs(db: &Db, limit: i64) -> Result<Vec<Job>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, cash_server, gap_id, state, attempts, next_attempt_at, repaired, last_error FROM rk7_backfill_jobs ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}
