//! The register operations and operator changes decided in memory: the
//! same rules as the row-locking path ([`super::super::purchase`],
//! [`super::super::settle`], [`super::super::refund`]), checked before
//! anything changes, so a refused operation leaves the state as it was.

use serde_json::{Value, json};

use super::state::CardW;
use super::{Change, Ctx};
use crate::loyalty::cards;
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::operations::{CONFIRMED, EXPIRED, HELD, OperationRow, Purchase};
use crate::loyalty::ops::{
    OpError, Outcome, card_json, lot_expiry, merge, purchase, refund, settle,
};
use crate::loyalty::rules;

impl Ctx<'_> {
    /// The stored operation row for the current request with `answer`.
    fn row(&self, kind: &str, answer: &Value) -> OperationRow {
        let c = self.c;
        OperationRow {
            operation_id: c.operation_id.clone(),
            register: c.register.clone(),
            cashier: c.cashier.clone(),
            kind: kind.to_string(),
            request: c.canonical.clone(),
            response: answer.to_string(),
            local_time: c.local_time.format("%Y-%m-%dT%H:%M:%S").to_string(),
            now: self.now,
            ..OperationRow::default()
        }
    }

    pub(super) async fn change(&mut self, change: &Change) -> Result<Value, Outcome> {
        match change {
            Change::Purchase {
                card,
                shown,
                lines,
                flags,
                spend,
                offline,
            } => {
                let Some(number) = card else {
                    return Err(OpError::UnknownCard(shown.clone()).into());
                };
                self.purchase(number, shown, lines, flags, *spend, *offline)
                    .await
            }
            Change::Confirm(p) => self.confirm(p).await,
            Change::Cancel(p) => self.cancel(p).await,
            Change::Refund { purchase, amount } => self.refund(purchase, *amount).await,
        }
    }

    async fn purchase(
        &mut self,
        number: &str,
        shown: &str,
        lines: &[rules::Line],
        flags: &std::collections::HashMap<String, rules::ProductFlags>,
        spend: i64,
        offline: bool,
    ) -> Result<Value, Outcome> {
        let (now, settings) = (self.now, self.settings);
        self.load_card(number)
            .await?
            .ok_or_else(|| OpError::UnknownCard(shown.to_string()))?;
        let held = self.held(number);
        self.save(number);
        let (c, st, w) = (self.c, &mut *self.st, &mut *self.w);
        let card: &mut CardW = st.cards.get_mut(number).expect("loaded above");
        if card.row.state == "blocked" {
            return Err(OpError::CardBlocked(cards::mask_number(number)).into());
        }
        card.expire_lots(now, w)?;
        let (p, earn) = purchase::priced(
            settings,
            c,
            &card.row.card(),
            held,
            lines,
            flags,
            spend,
            offline,
        )?;
        let (status, expires, held_after) = if offline {
            let meta = Meta {
                kind: "earn",
                operation_id: Some(&c.operation_id),
                reason: Some("offline purchase"),
                actor: Some(&c.cashier),
                now,
            };
            card.credit(earn, lot_expiry(settings, now), ledger::ISSUED, meta, w)?;
            card.add_accumulated(p.net, w);
            (CONFIRMED, None, held)
        } else {
            (
                HELD,
                Some(now + settings.hold_ttl.as_millis() as i64),
                held + spend,
            )
        };
        let answer = purchase::answer(
            settings,
            c,
            &p,
            status,
            offline,
            spend,
            earn,
            &card.row.card(),
            held_after,
            expires.map(|e| e - now),
        );
        w.cards.insert(number.to_string());
        if status == HELD {
            card.holds.insert(c.operation_id.clone());
            st.purchases.insert(
                c.operation_id.clone(),
                Purchase {
                    operation_id: c.operation_id.clone(),
                    card: number.to_string(),
                    status: Some(HELD.to_string()),
                    hold_expires_at: expires,
                    net: p.net,
                    spend,
                    earn,
                    refunded_net: 0,
                    refunded_spend: 0,
                    refunded_earn: 0,
                },
            );
        }
        let row = OperationRow {
            card: Some(number.to_string()),
            status: Some(status.to_string()),
            hold_expires_at: expires,
            offline,
            net: p.net,
            spend,
            earn,
            ..self.row("purchase", &answer)
        };
        self.w.operations.push(row);
        Ok(answer)
    }

    /// Gives purchase `pid` its new status; a purchase no longer held stops
    /// reserving bonus on its card.
    fn set_status(&mut self, pid: &str, status: &str) {
        if let Some(p) = self.st.purchases.get_mut(pid) {
            p.status = Some(status.to_string());
            if status != HELD
                && let Some(card) = self.st.cards.get_mut(&p.card)
            {
                card.holds.remove(pid);
                self.w.cards.insert(p.card.clone());
            }
            self.w.purchases.insert(pid.to_string());
        }
    }

    /// The answer to an operation on purchase `pid`, stored with it.
    fn settled(&mut self, kind: &str, card: &str, pid: &str, net: i64, extra: Value) -> Value {
        let held = self.held(card);
        let row = self.st.cards[card].row.card();
        let answer = merge(extra, card_json(self.settings, &row, held));
        let op = OperationRow {
            card: Some(card.to_string()),
            purchase_id: Some(pid.to_string()),
            net,
            ..self.row(kind, &answer)
        };
        self.w.operations.push(op);
        self.w.cards.insert(card.to_string());
        answer
    }

    async fn confirm(&mut self, pid: &str) -> Result<Value, Outcome> {
        let p = self.purchase_of(pid).await?;
        let (now, settings, c) = (self.now, self.settings, self.c);
        if let Err(refused) = settle::confirmable(pid, &p, now) {
            if matches!(refused, Outcome::CommitThenRefuse(_)) {
                self.set_status(pid, EXPIRED);
            }
            return Err(refused);
        }
        self.save(&p.card);
        let w = &mut *self.w;
        let card = self
            .st
            .cards
            .get_mut(&p.card)
            .expect("loaded with its purchase");
        card.expire_lots(now, w)?;
        let meta = |kind| Meta {
            kind,
            operation_id: Some(pid),
            reason: None,
            actor: Some(&c.cashier),
            now,
        };
        card.debit(p.spend, ledger::REDEEMED, meta("spend"), w)?;
        card.credit(
            p.earn,
            lot_expiry(settings, now),
            ledger::ISSUED,
            meta("earn"),
            w,
        )?;
        card.add_accumulated(p.net, w);
        self.set_status(pid, CONFIRMED);
        let extra = json!({"operation_id": c.operation_id, "purchase_operation_id": pid, "status": CONFIRMED, "bonus_spent": p.spend, "bonus_earned": p.earn});
        Ok(self.settled("confirm", &p.card, pid, 0, extra))
    }

    async fn cancel(&mut self, pid: &str) -> Result<Value, Outcome> {
        let p = self.purchase_of(pid).await?;
        let status = settle::cancelled(pid, &p, self.now)?;
        self.set_status(pid, status);
        let extra = json!({"operation_id": self.c.operation_id, "purchase_operation_id": pid, "status": status});
        Ok(self.settled("cancel", &p.card, pid, 0, extra))
    }

    async fn refund(&mut self, pid: &str, amount: Option<i64>) -> Result<Value, Outcome> {
        let p = self.purchase_of(pid).await?;
        let (now, settings) = (self.now, self.settings);
        let refund::Plan {
            amount,
            refunded_net,
            give_back,
            take_back,
        } = refund::plan(pid, &p, amount)?;
        let held = self.held(&p.card);
        let c = self.c;
        let meta = |kind| Meta {
            kind,
            operation_id: Some(&c.operation_id),
            reason: Some("refund"),
            actor: Some(&c.cashier),
            now,
        };
        self.save(&p.card);
        let w = &mut *self.w;
        let card = self
            .st
            .cards
            .get_mut(&p.card)
            .expect("loaded with its purchase");
        card.expire_lots(now, w)?;
        let expiry = lot_expiry(settings, now);
        card.credit(give_back, expiry, ledger::REDEEMED, meta("refund_spend"), w)?;
        // Earned bonus already spent cannot be taken back without a
        // negative balance: take what is there and report the rest.
        let can_take = take_back.min((card.row.balance - held).max(0));
        card.debit(can_take, ledger::ISSUED, meta("refund_earn"), w)?;
        card.add_accumulated(-amount, w);
        if let Some(stored) = self.st.purchases.get_mut(pid) {
            stored.refunded_net = refunded_net;
            stored.refunded_spend += give_back;
            stored.refunded_earn += take_back;
            self.w.purchases.insert(pid.to_string());
        }
        let plan = refund::Plan {
            amount,
            refunded_net,
            give_back,
            take_back,
        };
        let extra = plan.answer(&c.operation_id, pid, &p, can_take);
        Ok(self.settled("refund", &p.card, pid, -amount, extra))
    }
}
