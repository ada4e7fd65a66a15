//! The SMS outbox and the log consumer that fills it.
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
//!
//! Rows are identified by the log offset of the event that crossed the
//! threshold: unique (one order per event), increasing, and assigned
//! without a sequence, which SQLite and PostgreSQL spell differently.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::Row;

use super::kitchen::{self, Step};
use super::template::{Vars, format_rubles};
use super::{Restaurant, RestaurantFile, Settings};
use crate::core::clock::now_ms;
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{self, LogEntry};
use crate::core::phone::PhoneE164;
use crate::core::store::{Db, StoreError};

pub const CONSUMER_NAME: &str = "sms";
/// The one kind of message so far; part of the uniqueness key so that a
/// later kind (e.g. "order delayed") gets its own once-per-order guarantee.
pub const KIND_KITCHEN: &str = "kitchen";

/// Outbox row states.
pub mod state {
    /// Waiting for its `next_attempt_at`.
    pub const PENDING: &str = "pending";
    /// Handed to the provider; the answer is not recorded yet.
    pub const SENDING: &str = "sending";
    /// Accepted by the provider.
    pub const SENT: &str = "sent";
    pub const DELIVERED: &str = "delivered";
    pub const UNDELIVERED: &str = "undelivered";
    /// Refused for good, or given up after the last attempt.
    pub const FAILED: &str = "failed";
    /// The step was reached but no consented phone was known.
    pub const NO_CONSENT: &str = "no_consent";
    pub const ALL: [&str; 7] = [
        PENDING,
        SENDING,
        SENT,
        DELIVERED,
        UNDELIVERED,
        FAILED,
        NO_CONSENT,
    ];
}

/// Restaurant settings in effect: those saved through the API override the
/// config file's.
pub async fn effective_restaurants(
    db: &Db,
    settings: &Settings,
) -> Result<BTreeMap<String, Restaurant>, StoreError> {
    let mut out = settings.restaurants.clone();
    let rows = sqlx::query("SELECT rest_code, settings FROM sms_settings")
        .fetch_all(&db.read)
        .await?;
    for r in rows {
        let code: String = r.try_get(0)?;
        let json: String = r.try_get(1)?;
        let file: RestaurantFile =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match super::validate_restaurant(&code, &file, &settings.providers) {
            Ok((rest, _)) => {
                out.insert(code, rest);
            }
            // A provider removed from the config since the save: keep the
            // config's settings (or none) rather than wedging the consumer.
            Err(e) => {
                tracing::error!(restaurant = %code, error = %e, "saved sms settings no longer valid; ignored")
            }
        }
    }
    Ok(out)
}

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

/// Stores (or replaces) a consented contact for an order.
pub async fn save_contact(
    conn: &mut sqlx::AnyConnection,
    order_guid: &str,
    phone: &PhoneE164,
    consent_at: i64,
    source: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sms_contacts (order_guid, phone, phone_masked, consent_at, source, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (order_guid) DO UPDATE SET phone = excluded.phone, phone_masked = excluded.phone_masked, consent_at = excluded.consent_at, source = excluded.source",
    )
    .bind(order_guid)
    .bind(phone.as_str())
    .bind(phone.masked())
    .bind(consent_at)
    .bind(source)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub struct SmsConsumer {
    settings: Arc<Settings>,
}

impl SmsConsumer {
    pub fn new(settings: Arc<Settings>) -> Self {
        SmsConsumer { settings }
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
        Box::pin(apply_batch(db, &self.settings, entries))
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
        order_sum: format_rubles(order.order_sum.map(|k| k.0).unwrap_or(0)),
    }
}

async fn apply_batch(
    db: &Db,
    settings: &Settings,
    entries: &[LogEntry],
) -> Result<(), ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let restaurants = effective_restaurants(db, settings).await?;
    let now = now_ms();
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
            save_contact(
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
        let done: Option<i64> =
            sqlx::query_scalar("SELECT id FROM sms_outbox WHERE order_guid = $1 AND kind = $2")
                .bind(&guid)
                .bind(KIND_KITCHEN)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        let contact: Option<(String, String)> =
            sqlx::query_as("SELECT phone, phone_masked FROM sms_contacts WHERE order_guid = $1")
                .bind(&guid)
                .fetch_optional(&mut *tx)
                .await?;
        let body = rest.template.render(&vars(order, rest, step));
        let state = if contact.is_some() {
            state::PENDING
        } else {
            state::NO_CONSENT
        };
        let (phone, masked) = contact.unzip();
        sqlx::query(
            "INSERT INTO sms_outbox (id, order_guid, kind, rest_code, step, phone, phone_masked, body, provider, sender, state, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $12, $12) ON CONFLICT DO NOTHING",
        )
        .bind(entry.offset)
        .bind(&guid)
        .bind(KIND_KITCHEN)
        .bind(&rest_code)
        .bind(step.number())
        .bind(phone)
        .bind(masked.clone())
        .bind(&body)
        .bind(&rest.provider)
        .bind(rest.sender.as_deref())
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tracing::info!(order = %guid, restaurant = %rest_code, step = step.as_str(), phone = masked.as_deref().unwrap_or("-"), state, "sms queued");
    }
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// One outbox row as the API shows it: the phone masked, never in full.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub order_guid: String,
    pub restcode: String,
    pub step: i64,
    pub phone: Option<String>,
    pub text: String,
    pub provider: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub provider_id: Option<String>,
    pub error_code: Option<i64>,
    pub error_text: Option<String>,
    pub delivery: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub async fn list(
    db: &Db,
    restaurant: Option<&str>,
    state: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, order_guid, rest_code, step, phone_masked, body, provider, state, attempts, next_attempt_at, provider_id, error_code, error_text, delivery, created_at, updated_at \
         FROM sms_outbox WHERE id > $1 AND ($2 = '' OR rest_code = $2) AND ($3 = '' OR state = $3) ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(restaurant.unwrap_or(""))
    .bind(state.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let state: String = r.try_get(7)?;
        let next: i64 = r.try_get(9)?;
        out.push(Message {
            id: r.try_get(0)?,
            order_guid: r.try_get(1)?,
            restcode: r.try_get(2)?,
            step: r.try_get(3)?,
            phone: r.try_get(4)?,
            text: r.try_get(5)?,
            provider: r.try_get(6)?,
            next_attempt_at: (state == state::PENDING)
                .then(|| crate::core::clock::ms_to_rfc3339(next)),
            state,
            attempts: r.try_get(8)?,
            provider_id: r.try_get(10)?,
            error_code: r.try_get(11)?,
            error_text: r.try_get(12)?,
            delivery: r.try_get(13)?,
            created_at: crate::core::clock::ms_to_rfc3339(r.try_get(14)?),
            updated_at: crate::core::clock::ms_to_rfc3339(r.try_get(15)?),
        });
    }
    Ok(out)
}
