//! The log consumer that fills the SMS outbox.
//!
//! [`SmsConsumer`] is the only writer of new outbox rows. For every order
//! event of a restaurant with SMS on it
//!
//! 1. stores the guest phone from the order's external property, if the
//!    guest consented (see [`consent_from_props`]);
//! 2. computes the kitchen step ([`super::kitchen::order_step`]); once it is
//!    at or past the chosen step, writes one outbox row keyed by
//!    (order guid, kind). The row is `pending` when a consented phone is
//!    known, and `no_consent` otherwise, so the operator can see why a guest
//!    got nothing. The unique key plus `ON CONFLICT DO NOTHING` make this
//!    happen once per order, whatever replays or restarts do; the row and
//!    the cursor commit in one transaction. Events received more than
//!    `stale_after_mins` ago queue nothing (late news is no news).
//! 3. passes a consented phone through the [`guard`](super::guard) against
//!    SMS pumping: a number outside the allowed countries, or a restaurant
//!    past its hourly or daily cap, gets a `refused_*` row instead of a
//!    `pending` one. The first refusal by a cap in its window raises an
//!    `sms_cap_reached` notice, after the commit (a batch retried after a
//!    failed commit must not notify twice).
//!
//! After a commit that queued a sendable row it wakes the delivery worker
//! ([`super::delivery`]), which otherwise sleeps until its next due row.
//!
//! Rows are identified by the log offset of the event that crossed the
//! threshold: unique (one order per event), increasing, and assigned
//! without a sequence, which SQLite and PostgreSQL spell differently.

use std::sync::Arc;

use super::guard::{self, Refusal};
use super::kitchen::{self, Step};
use super::settings::effective_restaurants;
use super::store::{self, MessageState, NewMessage};
use super::template::Vars;
use super::{Restaurant, Settings};
use crate::core::bus::{Bus, OperatorEvent};
use crate::core::clock::SharedClock;
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{self, LogEntry};
use crate::core::money::rub_sms;
use crate::core::outbox::Wake;
use crate::core::phone::PhoneE164;
use crate::core::store::{Db, StoreError};

pub const CONSUMER_NAME: &str = "sms";
/// The one kind of message so far; part of the uniqueness key so that a
/// later kind (e.g. "order delayed") gets its own once-per-order guarantee.
pub const KIND_KITCHEN: &str = "kitchen";

fn yes(v: &str) -> bool {
    matches!(
        v.trim().to_lowercase().as_str(),
        "1" | "true" | "yes" | "y" | "да" | "on"
    )
}

/// The guest phone an order carries, if the guest consented.
///
/// Consent on this path is either the consent property saying yes, or the
/// restaurant declaring that its register collects consent before a phone
/// is entered (`register_collects_consent`). A phone without consent is
/// dropped here and never stored. An unreadable phone is logged (masked by
/// construction: only the error is logged) and ignored.
pub fn consent_from_props(
    order: &rk7::Order,
    settings: &Settings,
    rest: &Restaurant,
) -> Option<PhoneE164> {
    let prop = |name: &str| {
        order
            .external_props
            .iter()
            .find(|p| {
                p.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|p| p.value.as_deref())
    };
    let raw = prop(&settings.phone_prop).filter(|v| !v.trim().is_empty())?;
    let consent = rest.register_collects_consent || prop(&settings.consent_prop).is_some_and(yes);
    if !consent {
        return None;
    }
    match PhoneE164::parse(raw) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "order phone property is not a usable number; ignored");
            None
        }
    }
}

pub struct SmsConsumer {
    settings: Arc<Settings>,
    clock: SharedClock,
    /// The delivery worker's: told when a sendable row was queued, so it
    /// does not sleep through it.
    wake: Wake,
    /// The console's switch and default sender, when they apply.
    global: Option<super::global::LiveGlobal>,
    /// Where a reached cap is told (the alerts feature listens).
    bus: Bus,
}

impl SmsConsumer {
    pub fn new(settings: Arc<Settings>, clock: SharedClock, wake: Wake, bus: Bus) -> Self {
        SmsConsumer {
            settings,
            clock,
            wake,
            global: None,
            bus,
        }
    }

    /// Follows the switch and default sender set in the console: while SMS
    /// is switched off the consumer moves on without queuing or keeping
    /// phones.
    pub fn with_global(mut self, global: super::global::LiveGlobal) -> Self {
        self.global = Some(global);
        self
    }
}

impl Consumer for SmsConsumer {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(async move {
            let mut default_sender = None;
            if let Some(g) = &self.global {
                let g = g.get().await?;
                if !g.enabled {
                    if let Some(last) = entries.last() {
                        let mut tx = db.write.begin().await.map_err(StoreError::from)?;
                        log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
                        tx.commit().await.map_err(StoreError::from)?;
                    }
                    return Ok(());
                }
                default_sender = g.sender.clone();
            }
            let applied = apply_batch(
                db,
                &self.settings,
                default_sender.as_deref(),
                self.clock.now_ms(),
                entries,
            )
            .await?;
            if applied.queued > 0 {
                self.wake.notify();
            }
            for r in applied.refused {
                guard::count_refused(r);
            }
            for n in applied.notices {
                tracing::warn!(
                    restaurant = n.rest_code.as_deref().unwrap_or("-"),
                    "sms cap reached; owners notified"
                );
                // No receiver (alerts off) is fine: the refusals are in the
                // outbox and the metric.
                self.bus.raise(n);
            }
            Ok(())
        })
    }
}

fn vars(order: &rk7::Order, rest: &Restaurant, step: Step) -> Vars {
    let order_number = order
        .order_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| order.seq_number.map(|n| n.to_string()))
        .or_else(|| order.visit.map(|n| n.to_string()))
        .unwrap_or_default();
    let table = order
        .table
        .as_ref()
        .and_then(|t| t.name.clone().or_else(|| t.code.map(|c| c.to_string())))
        .unwrap_or_default();
    Vars {
        order_number,
        restaurant_name: rest.name.clone(),
        status: step.guest_text().to_string(),
        table,
        order_sum: rub_sms(order.order_sum.map(|k| k.0).unwrap_or(0)),
    }
}

/// What a committed batch did, for what follows the commit.
#[derive(Debug, Default)]
struct Applied {
    /// Sendable (`pending`) rows queued.
    queued: usize,
    /// Rows refused by the guard, one entry each.
    refused: Vec<Refusal>,
    /// Notices of caps reached, one per restaurant and window.
    notices: Vec<OperatorEvent>,
}

/// Applies a batch in one transaction with the cursor.
async fn apply_batch(
    db: &Db,
    settings: &Settings,
    default_sender: Option<&str>,
    now: i64,
    entries: &[LogEntry],
) -> Result<Applied, ConsumerError> {
    let mut applied = Applied::default();
    let Some(last) = entries.last() else {
        return Ok(applied);
    };
    let restaurants = effective_restaurants(db, settings).await?;
    let mut tx = db.write.begin().await.map_err(StoreError::from)?;
    for entry in entries {
        let Some(rest) = entry
            .rest_code
            .as_deref()
            .and_then(|c| restaurants.get(c))
            .filter(|r| r.enabled)
        else {
            continue;
        };
        let rest_code = entry.rest_code.clone().unwrap_or_default();
        if entry.order_guid.is_none() {
            continue;
        }
        let ev = match entry.event() {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(offset = entry.offset, error = %e, "stored event no longer reads; skipped by sms");
                continue;
            }
        };
        let Some(order) = &ev.order else { continue };
        let Some(guid) = order.guid.as_ref().map(|g| g.canonical()) else {
            continue;
        };
        // A replay must not bring back phones the retention worker already
        // deleted: the retention clock of a property-borne contact starts
        // when its event was received, not when it is (re)applied.
        let fresh = entry.received_at >= now - settings.retention.as_millis() as i64;
        if fresh && let Some(phone) = consent_from_props(order, settings, rest) {
            store::save_contact(
                &mut tx,
                &guid,
                &phone,
                entry.received_at,
                "order_prop",
                entry.received_at,
            )
            .await?;
        }
        if order.deleted == Some(true) {
            continue;
        }
        let Some(step) = kitchen::order_step(order, ev.sessions.iter()) else {
            continue;
        };
        if step < rest.step {
            continue;
        }
        if entry.received_at < now - settings.stale_after.as_millis() as i64 {
            tracing::debug!(order = %guid, offset = entry.offset, "kitchen step reached too long ago; no sms");
            continue;
        }
        if store::queued(&mut tx, &guid, KIND_KITCHEN).await? {
            continue;
        }
        let contact = store::contact(&mut tx, &guid).await?;
        let body = rest.template.render(&vars(order, rest, step));
        // A stored phone that no longer reads stays pending: delivery
        // records it as unsendable.
        let phone = contact
            .as_ref()
            .and_then(|c| PhoneE164::parse(&c.phone).ok());
        let refusal = match &phone {
            Some(p) => settings.guard.check(&mut tx, &rest_code, p, now).await?,
            None => None,
        };
        let state = match (&contact, refusal) {
            (None, _) => MessageState::NoConsent,
            (Some(_), None) => MessageState::PENDING,
            (Some(_), Some(r)) => MessageState::Refused(r),
        };
        let explanation = refusal
            .zip(phone.as_ref())
            .map(|(r, p)| settings.guard.explain(r, p));
        let noticed = match refusal {
            Some(r) => guard::first_in_window(&mut tx, &rest_code, r, now).await?,
            None => false,
        };
        let masked = contact.as_ref().map(|c| c.phone_masked.clone());
        let new = store::queue(
            &mut tx,
            NewMessage {
                id: entry.offset,
                order_guid: &guid,
                kind: KIND_KITCHEN,
                rest_code: &rest_code,
                step: step.number(),
                contact,
                body: &body,
                provider: &rest.provider,
                sender: rest.sender.as_deref().or(default_sender),
                state,
                error_text: explanation.as_deref(),
                noticed,
                now,
            },
        )
        .await?;
        if new && state == MessageState::PENDING {
            applied.queued += 1;
        }
        if new && let Some(r) = refusal {
            applied.refused.push(r);
            if noticed {
                applied.notices.push(settings.guard.notice(r, &rest_code));
            }
        }
        tracing::info!(order = %guid, restaurant = %rest_code, step = step.as_str(), phone = masked.as_deref().unwrap_or("-"), %state, "sms queued");
    }
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(applied)
}
