//! The register API's side of the in-memory owner: `balance` and
//! `calculate` answered from committed snapshots, changing operations
//! handed to the owner with their card and catalogue flags already found
//! (on the read pool and caches, so the owner never waits for them).

use std::sync::Arc;

use serde_json::Value;

use super::{Change, Owner, Request, Shared, Snap, catalog};
use crate::core::store::Db;
use crate::loyalty::Settings;
use crate::loyalty::cards;
use crate::loyalty::ops::{self, CardRef, Common, Op, OpError, balance_answer, calculate_answer};

/// The card number `id` names, from the identifier cache when it can.
/// `auto` tries card number, barcode, track, then phone, as
/// [`ops::identify`] does; phones are not cached (which card of a holder is
/// preferred depends on the cards' states).
async fn resolve(db: &Db, shared: &Shared, id: &CardRef) -> Result<Option<String>, sqlx::Error> {
    let by = |kind: &'static str, value: &str| {
        let key = (kind.to_string(), value.to_string());
        async move {
            if let Some(n) = shared
                .identifiers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                return Ok::<_, sqlx::Error>(Some(n.clone()));
            }
            let found = cards::number_by_identifier(&db.read, &key.0, &key.1).await?;
            if let Some(n) = &found {
                shared
                    .identifiers
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, n.clone());
            }
            Ok(found)
        }
    };
    Ok(match id {
        CardRef::Card(v) => by("card", v).await?,
        CardRef::Barcode(v) => by("barcode", v).await?,
        CardRef::Track(v) => by("track", v).await?,
        CardRef::Phone(p) => cards::number_by_phone(&db.read, p).await?,
        CardRef::Auto { value, phone } => {
            let mut found = None;
            for kind in ["card", "barcode", "track"] {
                found = by(kind, value).await?;
                if found.is_some() {
                    break;
                }
            }
            match (found, phone) {
                (None, Some(p)) => cards::number_by_phone(&db.read, p).await?,
                (found, _) => found,
            }
        }
    })
}

fn snapshot(shared: &Shared, number: &str) -> Option<Arc<Snap>> {
    shared
        .snaps
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(number)
        .cloned()
}

/// Bonus held on `snap`'s card by holds not yet due at `now`.
fn held(snap: &Snap, now: i64) -> i64 {
    snap.holds
        .iter()
        .filter(|(expires, _)| *expires > now)
        .map(|(_, spend)| spend)
        .sum()
}

/// Runs one register operation through the owner (see the module doc).
pub(crate) async fn execute(
    owner: &Owner,
    shared: &Shared,
    db: &Db,
    settings: &Settings,
    common: Common,
    op: Op,
) -> Result<Value, OpError> {
    let now = settings.clock.now_ms();
    let change = match op {
        Op::Balance(ref id) | Op::Calculate(ref id, _) => {
            let snap = match resolve(db, shared, id).await? {
                Some(n) => snapshot(shared, &n),
                None => None,
            };
            // A card no operation has touched since start: its committed
            // state is in the tables.
            let Some(snap) = snap else {
                return ops::execute(db, settings, &common, op).await;
            };
            if snap.card.state == "blocked" {
                return Err(OpError::CardBlocked(cards::mask_number(&snap.card.number)));
            }
            let h = held(&snap, now);
            return Ok(match op {
                Op::Calculate(_, lines) => {
                    let flags = catalog(db, shared).await?;
                    calculate_answer(settings, &common, &snap.card, h, &lines, &flags)
                }
                _ => balance_answer(settings, &common, &snap.card, h),
            });
        }
        Op::Purchase {
            id,
            lines,
            spend,
            offline,
        } => {
            let card = resolve(db, shared, &id).await?;
            let all = catalog(db, shared).await?;
            let flags = lines
                .iter()
                .filter_map(|l| all.get(&l.goods_id).map(|f| (l.goods_id.clone(), *f)))
                .collect();
            Change::Purchase {
                card,
                shown: id.shown(),
                lines,
                flags,
                spend,
                offline,
            }
        }
        Op::Confirm(p) => Change::Confirm(p),
        Op::Cancel(p) => Change::Cancel(p),
        Op::Refund { purchase, amount } => Change::Refund { purchase, amount },
    };
    owner
        .submit(Request::Register {
            settings: settings.clone(),
            common,
            change,
        })
        .await
        .map_err(|_| OpError::Task("the loyalty owner has stopped".into()))?
}
