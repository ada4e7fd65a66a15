//! The resync document: recomputes cards' accumulated totals and bonus
//! from the journal and the ledger, posts the corrections, and stores what
//! it changed (before, after, the ledger entries it posted).
//!
//! * Accumulated total = Σ the journal's receipts with the card that closed
//!   no loyalty purchase (sales minus returns) + Σ loyalty's confirmed
//!   purchases less their refunds (those receipts are counted there, once).
//!   Set in loyalty's accrual transaction, so it cannot race a purchase.
//! * Bonus: a receipt paid partly with bonus that closed no loyalty
//!   purchase (a register offline, its queue never flushed) spent bonus the
//!   ledger never saw; a return gives it back. The resync posts the
//!   difference between that and what earlier resyncs posted (ledger
//!   entries by [`ACTOR`]), never taking the balance below zero.
//!
//! Both are differences against what is there, so a second run over the
//! same journal finds nothing to change.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::core::feature::BoxFuture;
use crate::core::store::{Backend, Db};
use crate::loyalty::accrual::{self, Accrual, AccrualWrite};
use crate::loyalty::switches::ResyncGuard;

/// Who the resync's ledger entries are posted by.
pub const ACTOR: &str = "backoffice-resync";

/// The body of `POST /api/backoffice/resyncs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    /// Card numbers; absent or empty means every card (seed 004: "an
    /// empty table means all cards").
    #[serde(default)]
    pub cards: Option<Vec<String>>,
    /// Run even while card operations are switched on for a covered store.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(
        "card operations are switched on in stores {0:?}: switch them off and take every register's report first, or force the resync"
    )]
    CardsOn(Vec<String>),
    #[error("cards: {0}")]
    Invalid(String),
    #[error("{0}")]
    Loyalty(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What card `number`'s journaled receipts that closed no loyalty
/// purchase added to its total (`accrued`: signed, a return capped by its
/// sale) and Σ their signed bonus payments.
async fn journal_sums(conn: &mut AnyConnection, number: &str) -> Result<(i64, i64), sqlx::Error> {
    let (t, b): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT CAST(SUM(accrued) AS BIGINT), \
                CAST(SUM(CASE WHEN kind = 'return' THEN -bonus ELSE bonus END) AS BIGINT) \
         FROM backoffice_receipts WHERE card = $1 AND loyalty_operation_id IS NULL",
    )
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    Ok((t.unwrap_or(0), b.unwrap_or(0)))
}

/// Sets the accumulated total to what the journal and the purchases say,
/// inside loyalty's accrual transaction.
struct Recount {
    number: String,
}

impl AccrualWrite for Recount {
    fn write<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        _backend: Backend,
        accumulated: i64,
    ) -> BoxFuture<'a, Result<Accrual, sqlx::Error>> {
        Box::pin(async move {
            let (journal, _) = journal_sums(conn, &self.number).await?;
            let purchases = accrual::purchases_accumulated(conn, &self.number).await?;
            let after = (journal + purchases).max(0);
            Ok(Accrual {
                delta: after - accumulated,
                answer: json!({"before": accumulated, "after": after}),
            })
        })
    }
}

/// Where corrections are posted: through the running server's loyalty
/// (the owner on SQLite), or straight on the tables (the CLI, no server
/// needed; a running owner sees the file changed and reloads).
#[derive(Clone)]
pub enum Poster {
    Server(crate::loyalty::Handle),
    Tables,
}

impl Poster {
    async fn recount(&self, db: &Db, number: &str) -> Result<Value, ResyncError> {
        let w = Arc::new(Recount {
            number: number.to_string(),
        });
        let r = match self {
            Poster::Server(h) => h.accrue(db, number, w).await,
            Poster::Tables => accrual::accrue_in_tables(db, number, w).await,
        };
        r.map(|a| a.answer)
            .map_err(|e| ResyncError::Loyalty(e.to_string()))
    }

    async fn post(
        &self,
        db: &Db,
        settings: &crate::loyalty::Settings,
        number: &str,
        amount: i64,
        reason: String,
    ) -> Result<(), ResyncError> {
        let a = crate::loyalty::operator::Adjustment {
            amount,
            reason,
            by: ACTOR.to_string(),
        };
        let r = match self {
            Poster::Server(h) => h.adjust(db, settings, number, &a).await,
            Poster::Tables => crate::loyalty::operator::adjust(db, settings, number, &a).await,
        };
        r.map(|_| ())
            .map_err(|e| ResyncError::Loyalty(e.to_string()))
    }
}

/// The stores a resync covers: those where the given cards were used, or
/// every store (`None`).
async fn covered_stores(
    db: &Db,
    cards: Option<&[String]>,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let Some(cards) = cards else {
        return Ok(None);
    };
    let mut stores = std::collections::BTreeSet::new();
    for c in cards {
        let s: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT store FROM backoffice_receipts WHERE card = $1")
                .bind(c)
                .fetch_all(&db.read)
                .await?;
        stores.extend(s);
    }
    Ok(Some(stores.into_iter().collect()))
}

/// Runs the resync and stores its result; answers the stored document.
pub async fn run(
    db: &Db,
    settings: &crate::loyalty::Settings,
    poster: &Poster,
    req: &ResyncRequest,
    now: i64,
) -> Result<Value, ResyncError> {
    // An empty list is every card, as the register protocol has it.
    let listed = req.cards.as_deref().filter(|c| !c.is_empty());
    if let Some(cards) = listed
        && let Some(c) = cards.iter().find(|c| c.trim().is_empty() || c.len() > 64)
    {
        return Err(ResyncError::Invalid(format!("{c:?} is not a card number")));
    }
    let stores = covered_stores(db, listed).await?;
    let guard: ResyncGuard = crate::loyalty::switches::resync_guard(db, stores.as_deref()).await?;
    if !guard.stores_with_cards_on.is_empty() && !req.force {
        return Err(ResyncError::CardsOn(guard.stores_with_cards_on));
    }
    let cards = match listed {
        Some(c) => c.to_vec(),
        None => crate::loyalty::cards::all_numbers(&db.read).await?,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let mut changed = Vec::new();
    let mut unknown = Vec::new();
    for number in &cards {
        if !crate::loyalty::cards::exists(&db.read, number).await? {
            unknown.push(number.clone());
            continue;
        }
        let acc = poster.recount(db, number).await?;
        let mut conn = db.read.acquire().await?;
        let (_, bonus_paid) = journal_sums(&mut conn, number).await?;
        let posted = crate::loyalty::ledger::card_sum_by_actor(&mut *conn, number, ACTOR).await?;
        let before = crate::loyalty::cards::balance(&mut *conn, number)
            .await?
            .unwrap_or(0);
        drop(conn);
        // Bonus paid at registers the ledger never saw is taken away; what
        // the balance cannot cover stays owed (the next resync tries again).
        let mut correction = -bonus_paid - posted;
        if correction < 0 {
            correction = correction.max(-before);
        }
        let mut entries = Vec::new();
        if correction != 0 {
            let reason = format!("resync {id}: bonus paid at registers without loyalty");
            poster
                .post(db, settings, number, correction, reason.clone())
                .await?;
            entries.push(json!({"amount": correction, "reason": reason, "by": ACTOR}));
        }
        let moved = acc["before"] != acc["after"];
        if moved || correction != 0 {
            changed.push(json!({
                "card": number,
                "accumulated": {"before": acc["before"], "after": acc["after"]},
                "bonus": {"before": before, "after": before + correction},
                "entries": entries,
            }));
        }
    }
    let result = json!({
        "id": id,
        "created_at": now,
        "forced": req.force,
        "cards_checked": cards.len() - unknown.len(),
        "unknown_cards": unknown,
        "changed": changed,
        "stores_with_cards_on": guard.stores_with_cards_on,
        "queued_registers": guard.queued,
    });
    sqlx::query(
        "INSERT INTO backoffice_resyncs (id, created_at, request, result) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(now)
    .bind(serde_json::to_string(req).unwrap_or_default())
    .bind(result.to_string())
    .execute(&db.write)
    .await?;
    Ok(result)
}

/// A stored resync document.
pub async fn get(db: &Db, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let r: Option<String> =
        sqlx::query_scalar("SELECT result FROM backoffice_resyncs WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.read)
            .await?;
    Ok(r.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The stored resync documents, newest first, at most `limit`.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT result FROM backoffice_resyncs ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect())
}
