//! The `loyalty_registers` table: the cash registers allowed to call the
//! register API, with their Argon2 password hashes and the store each
//! belongs to (migration 0013 put every earlier register in store
//! [`super::switches::DEFAULT_STORE`]). Only this module writes SQL
//! against it.

use sqlx::AnyExecutor;

/// What [`super::auth`] checks a request against, with what the request
/// may then do: the register's store and its switches and its store's
/// (each 1, 0 or NULL, see [`super::switches`]), read in the same query so
/// a register request costs one look-up and nothing is cached.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub password_hash: String,
    /// Addresses a register without a password may call from (comma
    /// separated); empty for a register with a password.
    pub open_from: String,
    /// 0 or 1: booleans are stored as BIGINT on both backends.
    pub enabled: i64,
    pub store: String,
    pub reg_discount: Option<i64>,
    pub reg_payment: Option<i64>,
    pub store_discount: Option<i64>,
    pub store_payment: Option<i64>,
}

/// A register as the operator lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct RegisterRow {
    pub id: String,
    pub description: String,
    /// Empty, or the addresses a register without a password calls from.
    pub open_from: String,
    pub store: String,
    pub enabled: i64,
    pub created_at: i64,
}

pub async fn credentials<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.password_hash, r.open_from, r.enabled, r.store, rs.discount_cards AS reg_discount, rs.payment_cards AS reg_payment, \
         ss.discount_cards AS store_discount, ss.payment_cards AS store_payment FROM loyalty_registers r \
         LEFT JOIN loyalty_switches rs ON rs.scope = 'register' AND rs.id = r.id \
         LEFT JOIN loyalty_switches ss ON ss.scope = 'store' AND ss.id = r.store WHERE r.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Registers `id`, or gives it a new password (or none, `open_from` set)
/// and enables it again; a register keeps its store unless `store` names
/// another.
#[allow(clippy::too_many_arguments)]
pub async fn upsert<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    password_hash: &str,
    open_from: &str,
    description: &str,
    store: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_registers (id, password_hash, description, enabled, created_at, store, open_from) VALUES ($1, $2, $3, 1, $4, COALESCE($5, 'default'), $6) \
         ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, description = excluded.description, enabled = 1, \
         store = COALESCE($5, loyalty_registers.store), open_from = excluded.open_from",
    )
    .bind(id)
    .bind(password_hash)
    .bind(description)
    .bind(now)
    .bind(store)
    .bind(open_from)
    .execute(db)
    .await?;
    Ok(())
}

/// Moves register `id` to `store`; whether there is such a register.
pub async fn set_store<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    store: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE loyalty_registers SET store = $1 WHERE id = $2")
        .bind(store)
        .bind(id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn list<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<RegisterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, description, open_from, store, enabled, created_at FROM loyalty_registers ORDER BY id",
    )
    .fetch_all(db)
    .await
}
