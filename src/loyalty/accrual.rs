//! Accruals: another part of tillgate (the back office's sales journal)
//! storing its rows in the same transaction as a change to a card's
//! accumulated total, so a receipt is never journaled without its
//! accumulation nor counted twice.
//!
//! The caller hands over an [`AccrualWrite`]; loyalty runs it where the
//! card's total is decided: inside the in-memory owner's group transaction
//! on SQLite (the owner writes `accumulated` back as an absolute value, so
//! a change made beside it would be overwritten), under the card's row lock
//! on PostgreSQL (the same lock purchases and confirms take).

use std::sync::Arc;

use serde_json::Value;
use sqlx::AnyConnection;

use super::Handle;
use super::ops::OpError;
use super::ops::owner::Request;
use crate::core::feature::BoxFuture;
use crate::core::store::{Backend, Db};

/// What the caller's rows decided.
#[derive(Debug, Clone)]
pub struct Accrual {
    /// Added to the card's accumulated total (never taken below zero).
    pub delta: i64,
    /// The caller's own answer, handed back as it is.
    pub answer: Value,
}

/// The caller's side of an accrual: writes its rows on `conn`, inside the
/// transaction that changes the card. It must write nothing when it
/// answers a refusal (its `answer` says so); a database error rolls the
/// whole transaction back (on SQLite the whole owner group: every caller
/// in it is told "not stored" and retries).
pub trait AccrualWrite: Send + Sync + 'static {
    fn write<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        backend: Backend,
        accumulated: i64,
    ) -> BoxFuture<'a, Result<Accrual, sqlx::Error>>;
}

/// The card's total after the accrual and the caller's answer.
#[derive(Debug, Clone)]
pub struct Accrued {
    pub accumulated: i64,
    pub answer: Value,
}

impl Handle {
    /// Runs `write` and moves card `number`'s accumulated total by the
    /// delta it answers, in one transaction. `UnknownCard` when there is no
    /// such card (nothing written).
    pub async fn accrue(
        &self,
        db: &Db,
        number: &str,
        write: Arc<dyn AccrualWrite>,
    ) -> Result<Accrued, OpError> {
        if let Some((owner, _)) = &self.inner.owner {
            let v = owner
                .submit(Request::Accrue {
                    number: number.to_string(),
                    write,
                })
                .await
                .map_err(|_| OpError::Task("the loyalty owner has stopped".into()))??;
            return Ok(Accrued {
                accumulated: v["accumulated"].as_i64().unwrap_or_default(),
                answer: v["answer"].clone(),
            });
        }
        accrue_in_tables(db, number, write).await
    }

    /// Verifies a register's HTTP Basic credentials the way the loyalty
    /// API does (same cache, same errors).
    pub async fn verify_register(
        &self,
        db: &Db,
        register: &str,
        password: &secrecy::SecretString,
    ) -> Result<(), super::auth::AuthError> {
        self.creds().verify(db, register, password).await
    }
}

/// An accrual straight on the tables, under the card's row lock on
/// PostgreSQL. On SQLite this is for a process that runs no owner (the
/// operator CLI): the server's owner sees the file changed and reloads.
pub async fn accrue_in_tables(
    db: &Db,
    number: &str,
    write: Arc<dyn AccrualWrite>,
) -> Result<Accrued, OpError> {
    let mut tx = db.write.begin().await?;
    super::cards::lock(&mut tx, db.backend, number).await?;
    let now: Option<i64> =
        sqlx::query_scalar("SELECT accumulated FROM loyalty_cards WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(now) = now else {
        return Err(OpError::UnknownCard(number.to_string()));
    };
    let a = write.write(&mut tx, db.backend, now).await?;
    if a.delta != 0 {
        super::cards::add_accumulated(&mut *tx, number, a.delta).await?;
    }
    let accumulated: i64 =
        sqlx::query_scalar("SELECT accumulated FROM loyalty_cards WHERE number = $1")
            .bind(number)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Accrued {
        accumulated,
        answer: a.answer,
    })
}

/// How the owner decides an accrual: `write` inside its group's
/// transaction, the total changed in memory and written with the group.
pub(crate) fn owner_answer(accumulated: i64, a: Accrual) -> Value {
    serde_json::json!({"accumulated": accumulated, "answer": a.answer})
}

/// `Backend` the owner runs on (SQLite only).
pub(crate) const OWNER_BACKEND: Backend = Backend::Sqlite;

/// Keeps `Arc<dyn AccrualWrite>` nameable in the owner's request.
pub(crate) type Write = Arc<dyn AccrualWrite>;

/// What loyalty's own purchases added to card `number`'s accumulated
/// total: confirmed purchases less what was refunded of them. A resync
/// adds the journal's receipts that closed no purchase to this.
pub async fn purchases_accumulated(
    conn: &mut AnyConnection,
    number: &str,
) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(net - refunded_net) AS BIGINT) FROM loyalty_operations WHERE card_number = $1 AND kind = 'purchase' AND status = $2",
    )
    .bind(number)
    .bind(super::operations::CONFIRMED)
    .fetch_one(&mut *conn)
    .await?;
    Ok(v.unwrap_or(0))
}
