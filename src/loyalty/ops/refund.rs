//! Refund of a confirmed purchase, whole or in parts: the bonus it spent
//! comes back and the bonus it earned is taken back, in proportion.

use serde_json::{Value, json};

use super::settle::load_purchase;
use super::{At, OpError, Outcome, lot_expiry, malformed, settled};
use crate::loyalty::cards;
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::operations::{self, CONFIRMED, Purchase};

pub(super) async fn refund(
    mut at: At<'_>,
    pid: &str,
    amount: Option<i64>,
) -> Result<Value, Outcome> {
    let p = load_purchase(&mut at, pid).await?;
    let now = at.now;
    let Plan {
        amount,
        refunded_net,
        give_back,
        take_back,
    } = plan(pid, &p, amount)?;
    ledger::expire_lots(at.conn, &p.card, now).await?;
    let c = at.c;
    let meta = |kind| Meta {
        kind,
        operation_id: Some(&c.operation_id),
        reason: Some("refund"),
        actor: Some(&c.cashier),
        now,
    };
    let expiry = lot_expiry(at.settings, now);
    ledger::credit(
        at.conn,
        &p.card,
        give_back,
        expiry,
        ledger::REDEEMED,
        meta("refund_spend"),
    )
    .await?;
    // Earned bonus the guest has already spent cannot be taken back without
    // a negative balance, which tillgate never allows: take what is there
    // and report the rest.
    let card = cards::load(&mut *at.conn, &p.card)
        .await?
        .ok_or_else(|| OpError::UnknownCard(p.card.clone()))?;
    let h = operations::held(&mut *at.conn, &p.card, now).await?;
    let can_take = take_back.min((card.balance - h).max(0));
    ledger::debit(
        at.conn,
        &p.card,
        can_take,
        ledger::ISSUED,
        meta("refund_earn"),
    )
    .await?;
    cards::add_accumulated(&mut *at.conn, &p.card, -amount).await?;
    operations::add_refund(&mut *at.conn, pid, refunded_net, give_back, take_back).await?;
    let plan = Plan {
        amount,
        refunded_net,
        give_back,
        take_back,
    };
    let extra = plan.answer(&c.operation_id, pid, &p, can_take);
    Ok(settled(&mut at, "refund", &p.card, pid, -amount, extra).await?)
}

/// What a refund of `amount` (all that is left if `None`) of purchase `p`
/// does.
pub(super) struct Plan {
    pub amount: i64,
    /// Net refunded so far, this refund included.
    pub refunded_net: i64,
    /// Spent bonus that comes back.
    pub give_back: i64,
    /// Earned bonus to take back (if the card still has it).
    pub take_back: i64,
}

impl Plan {
    /// The fields a refund's answer adds, once `can_take` of `take_back`
    /// was taken back (both decision paths answer alike).
    pub(super) fn answer(
        &self,
        operation_id: &str,
        pid: &str,
        p: &Purchase,
        can_take: i64,
    ) -> serde_json::Value {
        json!({
            "operation_id": operation_id,
            "purchase_operation_id": pid,
            "refunded": self.amount,
            "bonus_returned": self.give_back,
            "bonus_taken_back": can_take,
            "bonus_not_recovered": self.take_back - can_take,
            "left_to_refund": p.net - self.refunded_net,
        })
    }
}

pub(super) fn plan(pid: &str, p: &Purchase, amount: Option<i64>) -> Result<Plan, OpError> {
    let status = p.status.clone().unwrap_or_default();
    if status != CONFIRMED {
        return Err(OpError::PurchaseState {
            id: pid.to_string(),
            status,
            action: "refund",
        });
    }
    let left = p.net - p.refunded_net;
    let amount = amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(malformed(
            "amount",
            format!("{left} kopecks of this purchase are left to refund, {amount} asked"),
        ));
    }
    let refunded_net = p.refunded_net + amount;
    // Proportions of the cumulative refund, so several partial refunds add
    // up to exactly the whole spend and earn (no rounding drift).
    let prop = |total: i64| -> i64 {
        if p.net == 0 {
            total
        } else {
            ((total as i128 * refunded_net as i128) / p.net as i128) as i64
        }
    };
    Ok(Plan {
        amount,
        refunded_net,
        give_back: prop(p.spend) - p.refunded_spend,
        take_back: prop(p.earn) - p.refunded_earn,
    })
}
