//! Switches per store and per register: discount cards on/off, payment
//! cards on/off (the back office's "switch off discount / payment cards").
//!
//! A row of `loyalty_switches` is `(scope, id)` with `scope` `store` or
//! `register`; each switch is 1 (on), 0 (off) or NULL (not set). What a
//! register gets is its own setting if set, else its store's, else on: so
//! an operator switches a whole store off with one row and may still leave
//! one register of it on (a test till). Nothing is cached: every register
//! request reads its switches in the same query as its credentials
//! ([`super::auth`]), so a switch changed on one tillgate instance holds on
//! every instance sharing the database at once.
//!
//! [`resync_guard`] is what the back office's resync document asks before
//! it recomputes accumulations: which stores it covers still take card
//! operations, and which registers still have offline operations queued
//! (the depth the loyalty client reports, kept in `loyalty_register_queue`).
//! Only this module writes SQL against those two tables.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::AnyExecutor;

use crate::core::store::Db;

/// Scope of a switch row.
pub const STORE: &str = "store";
pub const REGISTER: &str = "register";

/// The store a register has until the operator gives it another; every
/// register registered before stores existed was put there by migration
/// 0013.
pub const DEFAULT_STORE: &str = "default";

/// What the resync document needs to know before it runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResyncGuard {
    /// Covered stores where discount-card operations are on for the store
    /// or for any of its registers.
    pub stores_with_cards_on: Vec<String>,
    /// Registers of the covered stores whose last reported offline queue
    /// depth is above zero.
    pub queued: Vec<QueuedRegister>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueuedRegister {
    pub register_id: String,
    pub store: String,
    pub depth: i64,
    /// tillgate's clock (Unix ms) when the depth was last reported.
    pub seen_at: i64,
}

/// The switches in force for one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub discount_cards: bool,
    pub payment_cards: bool,
}

impl Effective {
    /// Register setting, else store setting, else on.
    pub fn resolve(
        register: (Option<i64>, Option<i64>),
        store: (Option<i64>, Option<i64>),
    ) -> Self {
        let on = |r: Option<i64>, s: Option<i64>| r.or(s).is_none_or(|v| v != 0);
        Effective {
            discount_cards: on(register.0, store.0),
            payment_cards: on(register.1, store.1),
        }
    }
}

/// One stored row, as the operator lists it.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SwitchRow {
    pub scope: String,
    pub id: String,
    pub discount_cards: Option<i64>,
    pub payment_cards: Option<i64>,
    pub updated_at: i64,
}

/// An operator's change: `None` leaves a switch as it is; `Some(None)`
/// (JSON `null`) clears it so the register follows its store again.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchChange {
    #[serde(default, deserialize_with = "tri")]
    pub discount_cards: Option<Option<bool>>,
    #[serde(default, deserialize_with = "tri")]
    pub payment_cards: Option<Option<bool>>,
}

/// A present field (even `null`) is `Some`.
fn tri<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(d).map(Some)
}

fn flag(v: Option<bool>) -> Option<i64> {
    v.map(i64::from)
}

/// Applies `change` to the row `(scope, id)`, creating it if needed.
pub async fn set<'c>(
    db: impl AnyExecutor<'c>,
    scope: &str,
    id: &str,
    current: Option<&SwitchRow>,
    change: &SwitchChange,
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = match change.discount_cards {
        Some(v) => flag(v),
        None => current.and_then(|r| r.discount_cards),
    };
    let p = match change.payment_cards {
        Some(v) => flag(v),
        None => current.and_then(|r| r.payment_cards),
    };
    sqlx::query(
        "INSERT INTO loyalty_switches (scope, id, discount_cards, payment_cards, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (scope, id) DO UPDATE SET discount_cards = excluded.discount_cards, payment_cards = excluded.payment_cards, updated_at = excluded.updated_at",
    )
    .bind(scope)
    .bind(id)
    .bind(d)
    .bind(p)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'c>(
    db: impl AnyExecutor<'c>,
    scope: &str,
    id: &str,
) -> Result<Option<SwitchRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT scope, id, discount_cards, payment_cards, updated_at FROM loyalty_switches WHERE scope = $1 AND id = $2",
    )
    .bind(scope)
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn list<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<SwitchRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT scope, id, discount_cards, payment_cards, updated_at FROM loyalty_switches ORDER BY scope, id",
    )
    .fetch_all(db)
    .await
}

/// Notes the offline queue depth register `register` reported at `now`.
pub async fn note_queue<'c>(
    db: impl AnyExecutor<'c>,
    register: &str,
    depth: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_register_queue (register_id, depth, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (register_id) DO UPDATE SET depth = excluded.depth, seen_at = excluded.seen_at",
    )
    .bind(register)
    .bind(depth)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The last depth register `register` reported, with when.
pub async fn queue_of<'c>(
    db: impl AnyExecutor<'c>,
    register: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT depth, seen_at FROM loyalty_register_queue WHERE register_id = $1")
        .bind(register)
        .fetch_optional(db)
        .await
}

#[derive(Debug, sqlx::FromRow)]
struct RegisterSwitches {
    id: String,
    store: String,
    discount_cards: Option<i64>,
    depth: Option<i64>,
    seen_at: Option<i64>,
}

/// See [`ResyncGuard`]. `stores`: the stores the document covers; `None`
/// means every store tillgate knows (of a register or of a switch row).
pub async fn resync_guard(db: &Db, stores: Option<&[String]>) -> Result<ResyncGuard, sqlx::Error> {
    let regs: Vec<RegisterSwitches> = sqlx::query_as(
        "SELECT r.id, r.store, s.discount_cards, q.depth, q.seen_at FROM loyalty_registers r \
         LEFT JOIN loyalty_switches s ON s.scope = 'register' AND s.id = r.id \
         LEFT JOIN loyalty_register_queue q ON q.register_id = r.id \
         ORDER BY r.store, r.id",
    )
    .fetch_all(&db.read)
    .await?;
    let store_rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, discount_cards FROM loyalty_switches WHERE scope = 'store'")
            .fetch_all(&db.read)
            .await?;
    let store_setting = |s: &str| {
        store_rows
            .iter()
            .find(|(id, _)| id == s)
            .and_then(|(_, d)| *d)
    };
    let known: BTreeSet<String> = regs
        .iter()
        .map(|r| r.store.clone())
        .chain(store_rows.iter().map(|(id, _)| id.clone()))
        .collect();
    let covered: BTreeSet<String> = match stores {
        Some(list) => list.iter().cloned().collect(),
        None => known,
    };
    let mut on = Vec::new();
    for store in &covered {
        let store_on = store_setting(store).is_none_or(|v| v != 0);
        let any_register_on = regs.iter().filter(|r| &r.store == store).any(|r| {
            Effective::resolve((r.discount_cards, None), (store_setting(store), None))
                .discount_cards
        });
        if store_on || any_register_on {
            on.push(store.clone());
        }
    }
    let queued = regs
        .iter()
        .filter(|r| covered.contains(&r.store))
        .filter_map(|r| match (r.depth, r.seen_at) {
            (Some(depth), Some(seen_at)) if depth > 0 => Some(QueuedRegister {
                register_id: r.id.clone(),
                store: r.store.clone(),
                depth,
                seen_at,
            }),
            _ => None,
        })
        .collect();
    Ok(ResyncGuard {
        stores_with_cards_on: on,
        queued,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Storage;

    async fn db(dir: &std::path::Path) -> Db {
        let db = Db::open(&Storage::Sqlite {
            path: dir.join("t.sqlite"),
        })
        .await
        .unwrap();
        crate::core::migrate::migrate(&db, &crate::app::migrations())
            .await
            .unwrap();
        db
    }

    async fn register(db: &Db, id: &str, store: &str) {
        sqlx::query(
            "INSERT INTO loyalty_registers (id, password_hash, description, enabled, created_at, store) VALUES ($1, 'x', '', 1, 0, $2)",
        )
        .bind(id)
        .bind(store)
        .execute(&db.write)
        .await
        .unwrap();
    }

    fn off() -> SwitchChange {
        SwitchChange {
            discount_cards: Some(Some(false)),
            payment_cards: None,
        }
    }

    #[test]
    fn a_register_setting_wins_over_its_store_and_unset_means_on() {
        assert!(Effective::resolve((None, None), (None, None)).discount_cards);
        assert!(!Effective::resolve((None, None), (Some(0), None)).discount_cards);
        assert!(Effective::resolve((Some(1), None), (Some(0), None)).discount_cards);
        assert!(!Effective::resolve((Some(0), None), (Some(1), None)).discount_cards);
        assert!(!Effective::resolve((None, Some(0)), (None, None)).payment_cards);
    }

    #[tokio::test]
    async fn the_guard_names_stores_still_on_and_registers_with_a_queue() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        register(&db, "a1", "A").await;
        register(&db, "a2", "A").await;
        register(&db, "b1", "B").await;
        // Nothing switched off: every store is on.
        let g = resync_guard(&db, None).await.unwrap();
        assert_eq!(g.stores_with_cards_on, ["A", "B"]);
        assert!(g.queued.is_empty());
        // Store A off, but register a2 explicitly on: A is still on.
        set(&db.write, STORE, "A", None, &off(), 1).await.unwrap();
        let on = SwitchChange {
            discount_cards: Some(Some(true)),
            payment_cards: None,
        };
        set(&db.write, REGISTER, "a2", None, &on, 1).await.unwrap();
        let g = resync_guard(&db, None).await.unwrap();
        assert_eq!(g.stores_with_cards_on, ["A", "B"]);
        // a2 back to following its store: A is off.
        let follow = SwitchChange {
            discount_cards: Some(None),
            payment_cards: None,
        };
        let cur = get(&db.read, REGISTER, "a2").await.unwrap();
        set(&db.write, REGISTER, "a2", cur.as_ref(), &follow, 2)
            .await
            .unwrap();
        let g = resync_guard(&db, None).await.unwrap();
        assert_eq!(g.stores_with_cards_on, ["B"]);
        // Only the covered stores count; B's register switched off alone
        // leaves B on (the store itself is on).
        set(&db.write, REGISTER, "b1", None, &off(), 3)
            .await
            .unwrap();
        let b = ["B".to_string()];
        let g = resync_guard(&db, Some(&b)).await.unwrap();
        assert_eq!(g.stores_with_cards_on, ["B"]);
        set(&db.write, STORE, "B", None, &off(), 3).await.unwrap();
        let g = resync_guard(&db, Some(&b)).await.unwrap();
        assert!(g.stores_with_cards_on.is_empty());
        // Queues: a depth above zero is named, zero is not, other stores
        // are not covered.
        note_queue(&db.write, "a1", 3, 10).await.unwrap();
        note_queue(&db.write, "a2", 0, 11).await.unwrap();
        note_queue(&db.write, "b1", 5, 12).await.unwrap();
        let a = ["A".to_string()];
        let g = resync_guard(&db, Some(&a)).await.unwrap();
        assert_eq!(g.queued.len(), 1);
        assert_eq!(
            (g.queued[0].register_id.as_str(), g.queued[0].store.as_str()),
            ("a1", "A")
        );
        assert_eq!((g.queued[0].depth, g.queued[0].seen_at), (3, 10));
        let g = resync_guard(&db, None).await.unwrap();
        assert_eq!(g.queued.len(), 2);
        // A store nobody knows is covered when named, and is on (default).
        let z = ["Z".to_string()];
        let g = resync_guard(&db, Some(&z)).await.unwrap();
        assert_eq!(g.stores_with_cards_on, ["Z"]);
        db.close().await;
    }
}
