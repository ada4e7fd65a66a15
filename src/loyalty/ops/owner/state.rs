//! The owner's working state: each card it has touched with its lots and
//! held purchases, and the ledger done in memory. Every change is also
//! noted in [`Writes`], the rows the group commit writes as projections.

use std::collections::{BTreeSet, HashMap};

use crate::loyalty::cards::CardRow;
use crate::loyalty::ledger::{self, LedgerError, LedgerRow, LotRow, Meta};
use crate::loyalty::operations::{HELD, OperationRow, Purchase};

/// A card as the owner holds it.
#[derive(Debug, Clone)]
pub(crate) struct CardW {
    pub row: CardRow,
    /// Lots with bonus left, in spending order (soonest expiry first, lots
    /// that never expire last; then oldest).
    pub lots: Vec<LotRow>,
    /// Purchases of this card with status `held` (due or not).
    pub holds: BTreeSet<String>,
}

/// What one group changed, written in its commit.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub ledger: Vec<LedgerRow>,
    pub operations: Vec<OperationRow>,
    /// Lots created or changed, by id, as they are now.
    pub lots: HashMap<String, LotRow>,
    /// Cards changed, by number.
    pub cards: BTreeSet<String>,
    /// Purchases whose status or refund totals changed, by id.
    pub purchases: BTreeSet<String>,
    /// Sweep holds due at this time in the tables too.
    pub sweep: Option<i64>,
}

impl Writes {
    /// Adds what one operation wrote to its group's writes.
    pub fn merge(&mut self, other: Writes) {
        self.ledger.extend(other.ledger);
        self.operations.extend(other.operations);
        self.lots.extend(other.lots);
        self.cards.extend(other.cards);
        self.purchases.extend(other.purchases);
        self.sweep = self.sweep.max(other.sweep);
    }
}

fn spend_order(l: &LotRow) -> (bool, Option<i64>, i64, String) {
    (
        l.expires_at.is_none(),
        l.expires_at,
        l.created_at,
        l.id.clone(),
    )
}

impl CardW {
    pub fn new(row: CardRow, mut lots: Vec<LotRow>, holds: BTreeSet<String>) -> CardW {
        lots.sort_by_key(spend_order);
        CardW { row, lots, holds }
    }

    fn account(&self) -> String {
        ledger::card_account(&self.row.number)
    }

    /// Bonus reserved by holds not yet due at `now`.
    pub fn held(&self, purchases: &HashMap<String, Purchase>, now: i64) -> i64 {
        self.holds
            .iter()
            .filter_map(|id| purchases.get(id))
            .filter(|p| {
                p.status.as_deref() == Some(HELD) && p.hold_expires_at.is_some_and(|e| e > now)
            })
            .map(|p| p.spend)
            .sum()
    }

    /// Writes off lots past their expiry, as postings (see
    /// [`ledger::expire_lots`], the same on the row-locking path).
    pub fn expire_lots(&mut self, now: i64, w: &mut Writes) -> Result<(), LedgerError> {
        let acc = self.account();
        let mut changed = false;
        for lot in self.lots.iter_mut() {
            if lot.remaining > 0 && lot.expires_at.is_some_and(|e| e <= now) {
                changed = true;
                let rows = ledger::posting(
                    &[
                        (&acc, -lot.remaining, Some(&lot.id)),
                        (ledger::EXPIRED, lot.remaining, None),
                    ],
                    Meta {
                        kind: "expiry",
                        operation_id: None,
                        reason: Some("bonus lot expired"),
                        actor: Some("tillgate"),
                        now,
                    },
                )?;
                w.ledger.extend(rows);
                self.row.balance -= lot.remaining;
                lot.remaining = 0;
                w.lots.insert(lot.id.clone(), lot.clone());
            }
        }
        if changed {
            self.lots.retain(|l| l.remaining > 0);
            w.cards.insert(self.row.number.clone());
        }
        Ok(())
    }

    /// Credits `amount` as a new lot against `counter`.
    pub fn credit(
        &mut self,
        amount: i64,
        expires_at: Option<i64>,
        counter: &str,
        meta: Meta<'_>,
        w: &mut Writes,
    ) -> Result<(), LedgerError> {
        if amount <= 0 {
            return Ok(());
        }
        let lot = LotRow {
            id: ledger::ordered_id(meta.now),
            card_number: self.row.number.clone(),
            amount,
            remaining: amount,
            expires_at,
            created_at: meta.now,
        };
        let acc = self.account();
        w.ledger.extend(ledger::posting(
            &[(&acc, amount, Some(&lot.id)), (counter, -amount, None)],
            meta,
        )?);
        self.row.balance += amount;
        w.lots.insert(lot.id.clone(), lot.clone());
        let at = self
            .lots
            .partition_point(|l| spend_order(l) < spend_order(&lot));
        self.lots.insert(at, lot);
        w.cards.insert(self.row.number.clone());
        Ok(())
    }

    /// Debits `amount`, soonest-expiring lots first, to `counter`. Checks
    /// everything before changing anything, so a refusal leaves the card
    /// as it was.
    pub fn debit(
        &mut self,
        amount: i64,
        counter: &str,
        meta: Meta<'_>,
        w: &mut Writes,
    ) -> Result<(), LedgerError> {
        if amount <= 0 {
            return Ok(());
        }
        if self.row.balance < amount {
            return Err(LedgerError::NotEnough {
                available: self.row.balance,
                requested: amount,
            });
        }
        if self.lots.iter().map(|l| l.remaining).sum::<i64>() < amount {
            return Err(LedgerError::LotsShort(self.row.number.clone()));
        }
        let acc = self.account();
        let mut left = amount;
        let mut entries: Vec<(String, i64, Option<String>)> = Vec::new();
        for lot in self.lots.iter_mut() {
            if left == 0 {
                break;
            }
            let take = lot.remaining.min(left);
            lot.remaining -= take;
            left -= take;
            entries.push((acc.clone(), -take, Some(lot.id.clone())));
            w.lots.insert(lot.id.clone(), lot.clone());
        }
        entries.push((counter.to_string(), amount, None));
        let refs: Vec<(&str, i64, Option<&str>)> = entries
            .iter()
            .map(|(a, v, l)| (a.as_str(), *v, l.as_deref()))
            .collect();
        w.ledger.extend(ledger::posting(&refs, meta)?);
        self.row.balance -= amount;
        self.lots.retain(|l| l.remaining > 0);
        w.cards.insert(self.row.number.clone());
        Ok(())
    }

    /// Moves the purchase total that decides the tier; never below zero.
    pub fn add_accumulated(&mut self, delta: i64, w: &mut Writes) {
        self.row.accumulated = (self.row.accumulated + delta).max(0);
        w.cards.insert(self.row.number.clone());
    }
}
