//! Settling a held purchase: confirm moves the bonus (spend, then earn),
//! cancel releases the hold. A hold found past its time is marked expired
//! and refused.

use serde_json::{Value, json};

use super::{At, OpError, Outcome, lot_expiry, settled};
use crate::loyalty::cards;
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::operations::{self, CANCELLED, CONFIRMED, EXPIRED, HELD, Purchase};

/// Loads a purchase with its card locked, so confirm/cancel/refund of one
/// purchase (and spends from its card) are serialised.
pub(super) async fn load_purchase(at: &mut At<'_>, id: &str) -> Result<Purchase, OpError> {
    let card = operations::purchase_card(&mut *at.conn, id)
        .await?
        .ok_or_else(|| OpError::PurchaseNotFound(id.to_string()))?;
    cards::lock(at.conn, at.backend, &card).await?;
    Ok(operations::purchase(at.conn, id).await?)
}

pub(super) async fn confirm(mut at: At<'_>, pid: &str) -> Result<Value, Outcome> {
    let p = load_purchase(&mut at, pid).await?;
    let now = at.now;
    if let Err(refused) = confirmable(pid, &p, now) {
        if matches!(refused, Outcome::CommitThenRefuse(_)) {
            operations::set_status(&mut *at.conn, pid, EXPIRED).await?;
        }
        return Err(refused);
    }
    ledger::expire_lots(at.conn, &p.card, now).await?;
    // Release the hold first so it does not count against its own spend.
    operations::set_status(&mut *at.conn, pid, CONFIRMED).await?;
    let c = at.c;
    let meta = |kind| Meta {
        kind,
        operation_id: Some(pid),
        reason: None,
        actor: Some(&c.cashier),
        now,
    };
    ledger::debit(at.conn, &p.card, p.spend, ledger::REDEEMED, meta("spend")).await?;
    let expiry = lot_expiry(at.settings, now);
    ledger::credit(
        at.conn,
        &p.card,
        p.earn,
        expiry,
        ledger::ISSUED,
        meta("earn"),
    )
    .await?;
    cards::add_accumulated(&mut *at.conn, &p.card, p.net).await?;
    let extra = json!({"operation_id": c.operation_id, "purchase_operation_id": pid, "status": CONFIRMED, "bonus_spent": p.spend, "bonus_earned": p.earn});
    Ok(settled(&mut at, "confirm", &p.card, pid, 0, extra).await?)
}

pub(super) async fn cancel(mut at: At<'_>, pid: &str) -> Result<Value, Outcome> {
    let p = load_purchase(&mut at, pid).await?;
    let status = cancelled(pid, &p, at.now)?;
    operations::set_status(&mut *at.conn, pid, status).await?;
    let extra =
        json!({"operation_id": at.c.operation_id, "purchase_operation_id": pid, "status": status});
    Ok(settled(&mut at, "cancel", &p.card, pid, 0, extra).await?)
}

/// Whether purchase `p` may be confirmed at `now`. A hold found past its
/// time is refused with [`Outcome::CommitThenRefuse`]: the caller marks it
/// expired first.
pub(super) fn confirmable(pid: &str, p: &Purchase, now: i64) -> Result<(), Outcome> {
    let status = p.status.as_deref().unwrap_or_default();
    if status == HELD && p.hold_expires_at.is_some_and(|e| e <= now) {
        return Err(Outcome::CommitThenRefuse(OpError::HoldExpired(
            pid.to_string(),
        )));
    }
    if status == EXPIRED {
        return Err(OpError::HoldExpired(pid.to_string()).into());
    }
    if status != HELD {
        return Err(OpError::PurchaseState {
            id: pid.to_string(),
            status: status.to_string(),
            action: "confirm",
        }
        .into());
    }
    Ok(())
}

/// The status cancelling purchase `p` at `now` leaves it in.
pub(super) fn cancelled(pid: &str, p: &Purchase, now: i64) -> Result<&'static str, OpError> {
    Ok(match p.status.as_deref().unwrap_or_default() {
        HELD if p.hold_expires_at.is_some_and(|e| e <= now) => EXPIRED,
        HELD => CANCELLED,
        // Nothing is held any more; cancelling is then a no-op.
        EXPIRED => EXPIRED,
        CANCELLED => CANCELLED,
        other => {
            return Err(OpError::PurchaseState {
                id: pid.to_string(),
                status: other.to_string(),
                action: "cancel (refund it instead)",
            });
        }
    })
}
