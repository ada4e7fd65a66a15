//! Cashiers and their card rights: "card in an open receipt" (apply a
//! card to a receipt being rung up: `calculate`, `purchase`, a payment
//! card's `hold`) and "manual card number entry" (a card typed by hand
//! rather than scanned), as the back office grants them per user.
//!
//! Rights are enforced per store from the moment the operator registers
//! the first cashier of that store: a store without cashiers works as
//! before cashiers existed (every register in the field sends some
//! cashier name, and refusing all of them on upgrade would stop every
//! till). In a store with cashiers, an unknown cashier has no rights, and
//! a request that does not say how the card was entered counts as typed.
//! Nothing is cached: the check reads the table on every request, so a
//! right taken away on one instance holds on all at once.
//!
//! Only this module writes SQL against `loyalty_cashiers`.

use serde::{Deserialize, Serialize};
use sqlx::AnyExecutor;

use super::ops::CardEntry;

/// A cashier right, by the name requests and answers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    CardInOpenReceipt,
    ManualCardEntry,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::CardInOpenReceipt => "card_in_open_receipt",
            Right::ManualCardEntry => "manual_card_entry",
        }
    }
}

/// Why a cashier was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("cashier {cashier:?} of store {store:?} lacks the right {}", right.name())]
    Lacks {
        cashier: String,
        store: String,
        right: Right,
    },
    #[error(
        "cashier {cashier:?} is not a cashier of store {store:?}; the operator registers cashiers and their rights"
    )]
    Unknown { cashier: String, store: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A cashier as stored and listed.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct CashierRow {
    pub id: String,
    pub name: String,
    pub store: String,
    pub card_in_open_receipt: i64,
    pub manual_card_entry: i64,
    pub updated_at: i64,
}

impl CashierRow {
    /// The JSON the operator API, the CLI and `ping` show.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "store": self.store,
            "rights": {
                "card_in_open_receipt": self.card_in_open_receipt != 0,
                "manual_card_entry": self.manual_card_entry != 0,
            },
        })
    }
}

/// The operator's cashier, as the API and CLI take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCashier {
    pub id: String,
    pub name: String,
    pub store: String,
    #[serde(default)]
    pub card_in_open_receipt: bool,
    #[serde(default)]
    pub manual_card_entry: bool,
}

pub async fn upsert<'c>(
    db: impl AnyExecutor<'c>,
    c: &NewCashier,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_cashiers (id, name, store, card_in_open_receipt, manual_card_entry, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, store = excluded.store, card_in_open_receipt = excluded.card_in_open_receipt, \
         manual_card_entry = excluded.manual_card_entry, updated_at = excluded.updated_at",
    )
    .bind(&c.id)
    .bind(c.name.trim())
    .bind(&c.store)
    .bind(i64::from(c.card_in_open_receipt))
    .bind(i64::from(c.manual_card_entry))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes cashier `id`; whether there was one.
pub async fn delete<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM loyalty_cashiers WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Cashiers of `store`, or of every store.
pub async fn list<'c>(
    db: impl AnyExecutor<'c>,
    store: Option<&str>,
) -> Result<Vec<CashierRow>, sqlx::Error> {
    match store {
        Some(s) => sqlx::query_as(
            "SELECT id, name, store, card_in_open_receipt, manual_card_entry, updated_at FROM loyalty_cashiers WHERE store = $1 ORDER BY id",
        )
        .bind(s)
        .fetch_all(db)
        .await,
        None => sqlx::query_as(
            "SELECT id, name, store, card_in_open_receipt, manual_card_entry, updated_at FROM loyalty_cashiers ORDER BY store, id",
        )
        .fetch_all(db)
        .await,
    }
}

/// The rights a request needs: `open_receipt` when it applies a card to a
/// receipt; the manual right when the card was typed (or not said).
pub fn needed(open_receipt: bool, names_card: bool, entry: Option<CardEntry>) -> Vec<Right> {
    let mut r = Vec::new();
    if open_receipt {
        r.push(Right::CardInOpenReceipt);
    }
    if names_card && entry != Some(CardEntry::Scanned) {
        r.push(Right::ManualCardEntry);
    }
    r
}

#[derive(Debug, sqlx::FromRow)]
struct Grant {
    in_store: i64,
    card_in_open_receipt: Option<i64>,
    manual_card_entry: Option<i64>,
}

/// Refuses `cashier` at a register of `store` unless it holds every right
/// in `needs` (see the module doc for stores without cashiers). One query.
pub async fn check<'c>(
    db: impl AnyExecutor<'c>,
    store: &str,
    cashier: &str,
    needs: &[Right],
) -> Result<(), Refusal> {
    if needs.is_empty() {
        return Ok(());
    }
    let g: Grant = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM loyalty_cashiers WHERE store = $1 LIMIT 1) x) AS in_store, \
         (SELECT card_in_open_receipt FROM loyalty_cashiers WHERE id = $2 AND store = $1) AS card_in_open_receipt, \
         (SELECT manual_card_entry FROM loyalty_cashiers WHERE id = $2 AND store = $1) AS manual_card_entry",
    )
    .bind(store)
    .bind(cashier)
    .fetch_one(db)
    .await?;
    if g.in_store == 0 {
        return Ok(());
    }
    let (Some(open), Some(manual)) = (g.card_in_open_receipt, g.manual_card_entry) else {
        return Err(Refusal::Unknown {
            cashier: cashier.to_string(),
            store: store.to_string(),
        });
    };
    for right in needs {
        let has = match right {
            Right::CardInOpenReceipt => open != 0,
            Right::ManualCardEntry => manual != 0,
        };
        if !has {
            return Err(Refusal::Lacks {
                cashier: cashier.to_string(),
                store: store.to_string(),
                right: *right,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_or_unsaid_entry_needs_the_manual_right() {
        assert!(needed(false, true, Some(CardEntry::Scanned)).is_empty());
        assert_eq!(
            needed(false, true, Some(CardEntry::Manual)),
            [Right::ManualCardEntry]
        );
        assert_eq!(needed(false, true, None), [Right::ManualCardEntry]);
        assert_eq!(
            needed(true, true, Some(CardEntry::Scanned)),
            [Right::CardInOpenReceipt]
        );
        // Confirm and cancel name no card and apply none.
        assert!(needed(false, false, None).is_empty());
    }
}
