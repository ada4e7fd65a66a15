//! The order rules: what changed in one order between two of its events.
//!
//! r_keeper sends the whole current order with every order event, so a rule
//! cannot look at one event alone ("this PrintCheck says deleted" is true in
//! every later event of that order too). The rules keep, per order, the
//! order as it looked before (folded by the same pure fold the order-state
//! feature uses, [`crate::core::book::Book`]) plus what they already
//! alerted on, and alert on the *difference*. Pure: no storage, no clock.

use std::collections::BTreeSet;

use rk7::{Event, LineState, Situation};
use serde::{Deserialize, Serialize};

use crate::alerts::payload::{Alert, OrderRef};
use crate::alerts::settings::Settings;
use crate::core::book::{Book, OrderSnapshot};
use crate::core::log::LogEntry;

/// What the rules remember about one order between events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderMemory {
    pub snap: OrderSnapshot,
    /// Receipts/pre-bills already alerted as deleted: (check_num, bill, print_time).
    pub deleted_alerted: BTreeSet<(Option<i64>, bool, Option<String>)>,
    pub discount_alerted: bool,
    /// Payments already alerted as deleted: (code, name, amount, prepay).
    pub pays_alerted: BTreeSet<(Option<i64>, Option<String>, i64, bool)>,
    /// Order total when the last pre-bill was printed; an order total below
    /// it later means money was taken off after the guest saw the bill.
    pub prebill_total: Option<i64>,
}

fn order_ref(s: &OrderSnapshot) -> OrderRef {
    OrderRef {
        guid: s.guid.clone(),
        name: s.order_name.clone().or_else(|| {
            s.visit
                .map(|v| format!("{v}/{}", s.order_ident.unwrap_or(0)))
        }),
        table: s.table.clone(),
        waiter: s.waiter.clone(),
    }
}

/// The order rules: fold the event into the remembered order, compare.
pub fn order_rules(
    settings: &Settings,
    m: &mut OrderMemory,
    entry: &LogEntry,
    ev: &Event,
    alerts: &mut Vec<Alert>,
) {
    let rest = ev.rest_code.as_ref().map(|r| r.0.clone());
    let rules = settings.rules_for(rest.as_deref()).clone();
    let before = m.snap.clone();
    let mut book = Book::default();
    let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) else {
        return;
    };
    let key = guid.canonical();
    if !before.guid.is_empty() {
        book.orders.insert(key.clone(), before.clone());
    }
    book.apply(entry, ev);
    let Some(mut after) = book.orders.remove(&key) else {
        return;
    };
    // Only the order's own state is kept; the offsets list would grow forever.
    after.events.clear();
    let at = ev.date_time.as_ref().map(|t| t.to_string());
    let oref = order_ref(&after);

    // Receipts and pre-bills that became deleted.
    let mut receipt_alerted_now = false;
    for r in &after.receipts {
        let k = (r.check_num, r.bill, r.print_time.clone());
        if !r.deleted || m.deleted_alerted.contains(&k) {
            continue;
        }
        m.deleted_alerted.insert(k);
        let (enabled, alert) = if r.bill {
            (
                rules.prebill_cancelled,
                Alert::PrebillCancelled {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    check_num: r.check_num,
                    amount: r.amount,
                    cashier: r.author.clone(),
                    manager: r.deleted_by.clone(),
                    reason: r.reason.clone(),
                    at: at.clone(),
                },
            )
        } else {
            receipt_alerted_now = true;
            (
                rules.receipt_deleted,
                Alert::ReceiptDeleted {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    check_num: r.check_num,
                    amount: r.amount,
                    cashier: r.author.clone(),
                    manager: r.deleted_by.clone(),
                    reason: r.reason.clone(),
                    at: at.clone(),
                },
            )
        };
        if enabled {
            alerts.push(alert);
        }
    }
    // Situation 14 can come before the order shows which receipt is gone:
    // alert on the last live receipt and remember it, so the later
    // `deleted="1"` of that receipt does not alert a second time.
    let receipt_deleted_now = receipt_alerted_now || ev.situation == Situation::ReceiptDeleted;
    if ev.situation == Situation::ReceiptDeleted && !receipt_alerted_now {
        let last = after.receipts.iter().rev().find(|r| {
            !r.bill
                && !m
                    .deleted_alerted
                    .contains(&(r.check_num, r.bill, r.print_time.clone()))
        });
        let (check_num, amount, cashier, manager, reason) = match last {
            Some(r) => {
                m.deleted_alerted
                    .insert((r.check_num, r.bill, r.print_time.clone()));
                (
                    r.check_num,
                    r.amount,
                    r.author.clone(),
                    r.deleted_by.clone(),
                    r.reason.clone(),
                )
            }
            None => (None, after.order_sum, None, None, None),
        };
        if rules.receipt_deleted {
            alerts.push(Alert::ReceiptDeleted {
                rest_code: rest.clone(),
                order: oref.clone(),
                check_num,
                amount,
                cashier,
                manager: manager.or_else(|| ev.waiter.as_ref().and_then(|w| w.name.clone())),
                reason,
                at: at.clone(),
            });
        }
    }

    // Voids: the fold keeps every void ever seen; new ones are the difference.
    for v in after.voids.iter().filter(|v| !before.voids.contains(v)) {
        if rules.dish_voided {
            alerts.push(Alert::DishVoided {
                rest_code: rest.clone(),
                order: oref.clone(),
                dish: v.dish_name.clone(),
                quantity: v.quantity,
                amount: v.amount,
                who: v.who.clone(),
                reason: v.reason.clone(),
                at: v.at.clone().or(at.clone()),
            });
        }
    }

    // Unsaved dish deletion: the ChangeLog says a dish line lost quantity,
    // and the line was never printed (no Void is made for those).
    if let Some(cl) = &ev.change_log {
        for d in &cl.dishes {
            let removed = removed_quantity(
                d.old_value.map(|v| v.0).unwrap_or(0),
                d.new_value.map(|v| v.0).unwrap_or(0),
            );
            if removed <= 0 {
                continue;
            }
            let printed = before.dishes.iter().any(|x| {
                x.uni == d.uni
                    && x.state.is_some_and(|s| {
                        s != LineState::Open.code() && s != LineState::Deleted.code()
                    })
            });
            if !printed && rules.unsaved_dish_deleted {
                alerts.push(Alert::UnsavedDishDeleted {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    dish: d.name.clone(),
                    quantity: removed,
                    who: ev.waiter.as_ref().and_then(|w| w.name.clone()),
                    at: at.clone(),
                });
            }
        }
    }

    // Discounts above the threshold, once per order. Discount lines carry
    // negative amounts (markups positive); `discountSum` is the fallback.
    let lines: i64 = after
        .discounts
        .iter()
        .filter(|d| !d.deleted && d.amount < 0)
        .map(|d| -d.amount)
        .sum();
    let discount = lines.max(after.discount_sum.abs());
    let gross = after.order_sum + discount;
    if !m.discount_alerted && discount > 0 && gross > 0 {
        let percent = discount * 100 / gross;
        if percent >= rules.discount_percent as i64 || discount >= rules.discount_amount {
            m.discount_alerted = true;
            if rules.discount {
                alerts.push(Alert::DiscountOverThreshold {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    discount,
                    order_sum: gross,
                    percent,
                    names: after
                        .discounts
                        .iter()
                        .filter(|d| !d.deleted)
                        .filter_map(|d| d.name.clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    at: at.clone(),
                });
            }
        }
    }

    // Payments that are deleted now: shown with deleted="1", or gone from
    // an order that had them live. Deleting a receipt deletes its payments
    // too; that is one operation and already alerted as the receipt.
    let key_of = |p: &crate::core::book::PaymentLine| (p.code, p.name.clone(), p.amount, p.prepay);
    let mut deleted_pays: Vec<_> = after
        .payments
        .iter()
        .filter(|p| p.deleted)
        .map(key_of)
        .collect();
    if !after.payments.is_empty() || !after.dishes.is_empty() {
        for p in before.payments.iter().filter(|p| !p.deleted) {
            let k = key_of(p);
            if !after.payments.iter().any(|x| key_of(x) == k) {
                deleted_pays.push(k);
            }
        }
    }
    for k in deleted_pays {
        if m.pays_alerted.insert(k.clone()) && rules.payment_deleted && !receipt_deleted_now {
            alerts.push(Alert::PaymentDeleted {
                rest_code: rest.clone(),
                order: oref.clone(),
                currency: k.1.clone(),
                amount: k.2,
                at: at.clone(),
            });
        }
    }

    // Order total lowered after a pre-bill: remember the total each time a
    // pre-bill is printed; a later, lower total is money taken off after
    // the guest saw the bill.
    let new_prebill = after.receipts.iter().any(|r| {
        r.bill
            && !r.deleted
            && !before
                .receipts
                .iter()
                .any(|b| b.bill && b.check_num == r.check_num && b.print_time == r.print_time)
    });
    if new_prebill {
        m.prebill_total = Some(after.order_sum);
    } else if let Some(t) = m.prebill_total
        && after.order_sum < t
        && after.status != crate::core::book::OrderStatus::Deleted
    {
        if rules.total_lowered_after_prebill {
            alerts.push(Alert::TotalLoweredAfterPrebill {
                rest_code: rest.clone(),
                order: oref.clone(),
                before: t,
                after: after.order_sum,
                at: at.clone(),
            });
        }
        m.prebill_total = Some(after.order_sum);
    }
    m.snap = after;
}

/// How much of a dish line a ChangeLog entry took away (thousandths), 0 if
/// it took nothing. A deletion moves the quantity toward zero: `2 -> 1`
/// removes one portion, and so does `-2 -> -1` on a return line. A return
/// line being added (`0 -> -1`) lowers the number but removes nothing: it
/// is not a deletion, though a plain "went down" comparison said it was.
pub fn removed_quantity(old: i64, new: i64) -> i64 {
    if old > 0 {
        (old - new.max(0)).max(0)
    } else if old < 0 {
        (new.min(0) - old).max(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::removed_quantity;

    #[test]
    fn a_deletion_moves_the_quantity_toward_zero() {
        assert_eq!(removed_quantity(1000, 0), 1000);
        assert_eq!(removed_quantity(2000, 1500), 500);
        assert_eq!(removed_quantity(-2000, -1000), 1000, "part of a return");
        assert_eq!(removed_quantity(-1000, 0), 1000, "a return line deleted");
        assert_eq!(removed_quantity(0, -1000), 0, "a return line added");
        assert_eq!(removed_quantity(0, 1000), 0, "a dish added");
        assert_eq!(removed_quantity(1000, 2000), 0);
        assert_eq!(removed_quantity(-1000, -2000), 0, "more returned");
        assert_eq!(
            removed_quantity(1000, -1000),
            1000,
            "at most the whole line"
        );
    }
}
