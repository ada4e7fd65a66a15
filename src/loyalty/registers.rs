//! The `loyalty_registers` table: the cash registers allowed to call the
//! register API, with their Argon2 password hashes. Only this module
//! writes SQL against it.

use sqlx::AnyExecutor;

/// What [`super::auth`] checks a request against.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub password_hash: String,
    /// 0 or 1: booleans are stored as BIGINT on both backends.
    pub enabled: i64,
}

/// A register as the operator lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct RegisterRow {
    pub id: String,
    pub description: String,
    pub enabled: i64,
    pub created_at: i64,
}

pub async fn credentials<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT password_hash, enabled FROM loyalty_registers WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Registers `id`, or gives it a new password and enables it again.
pub async fn upsert<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    password_hash: &str,
    description: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_registers (id, password_hash, description, enabled, created_at) VALUES ($1, $2, $3, 1, $4) \
         ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, description = excluded.description, enabled = 1",
    )
    .bind(id)
    .bind(password_hash)
    .bind(description)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn list<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<RegisterRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, description, enabled, created_at FROM loyalty_registers ORDER BY id")
        .fetch_all(db)
        .await
}
