//! Every SQL statement of the SMS feature, and the states its messages go
//! through.
//!
//! The feature's tables (`sms_outbox`, `sms_contacts`, `sms_settings`,
//! `sms_stops`) are read and written here only, so a schema change is one
//! file to read, and rows come back as named structs. Rows that carry a raw
//! guest phone do not derive `Debug`: a stray `{:?}` in a log line must
//! not print a full number (152-FZ); they are turned into [`PhoneE164`]
//! (which prints masked) by their user.

use std::fmt;
use std::str::FromStr;

use sqlx::AnyConnection;

use super::guard::Refusal;
use crate::core::outbox::OutboxState;
use crate::core::phone::PhoneE164;
use crate::core::store::{Db, StoreError};

/// Where an SMS is: the outbox's own states, plus those only SMS has (what
/// the provider later reported about delivery, "never sendable: no
/// consent", and the refusals of [`super::guard`]). Stored, filtered on and
/// answered as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// `pending`, `sending`, `sent` or `failed` (`muted` is not used).
    Outbox(OutboxState),
    /// The provider reported the message delivered to the phone.
    Delivered,
    /// The provider reported it could not deliver the message.
    Undelivered,
    /// The step was reached but no consented phone was known.
    NoConsent,
    /// Not sent: the number or the restaurant's volume broke a rule
    /// against SMS pumping (`refused_country`, `refused_hourly_cap`,
    /// `refused_daily_cap`).
    Refused(Refusal),
}

impl MessageState {
    pub const PENDING: MessageState = MessageState::Outbox(OutboxState::Pending);
    pub const SENDING: MessageState = MessageState::Outbox(OutboxState::Sending);
    pub const SENT: MessageState = MessageState::Outbox(OutboxState::Sent);
    pub const FAILED: MessageState = MessageState::Outbox(OutboxState::Failed);

    /// Every state a message can be in, in the order of its life.
    pub const ALL: [MessageState; 10] = [
        MessageState::PENDING,
        MessageState::SENDING,
        MessageState::SENT,
        MessageState::Delivered,
        MessageState::Undelivered,
        MessageState::FAILED,
        MessageState::NoConsent,
        MessageState::Refused(Refusal::Country),
        MessageState::Refused(Refusal::HourlyCap),
        MessageState::Refused(Refusal::DailyCap),
    ];

    /// States of rows that were never meant to reach a provider: they do
    /// not use up a restaurant's cap.
    pub const NEVER_SENT: [MessageState; 4] = [
        MessageState::NoConsent,
        MessageState::Refused(Refusal::Country),
        MessageState::Refused(Refusal::HourlyCap),
        MessageState::Refused(Refusal::DailyCap),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Outbox(s) => s.as_str(),
            MessageState::Delivered => "delivered",
            MessageState::Undelivered => "undelivered",
            MessageState::NoConsent => "no_consent",
            MessageState::Refused(r) => r.as_str(),
        }
    }

    /// The names, for error messages.
    pub fn names() -> String {
        MessageState::ALL.map(MessageState::as_str).join(", ")
    }
}

impl From<OutboxState> for MessageState {
    fn from(s: OutboxState) -> Self {
        MessageState::Outbox(s)
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for MessageState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state must be one of {}", MessageState::names())]
pub struct UnknownState;

impl FromStr for MessageState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownState)
    }
}

// ---- contacts and the consumer's outbox rows ----

/// Stores (or replaces) a consented contact for an order.
pub async fn save_contact(
    conn: &mut AnyConnection,
    order_guid: &str,
    phone: &PhoneE164,
    consent_at: i64,
    source: &str,
    now: i64,
) -> Result<(), StoreError> {
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

/// Deletes an order's contact (consent withdrawn); answers whether there
/// was one.
pub async fn delete_contact(db: &Db, order_guid: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM sms_contacts WHERE order_guid = $1")
        .bind(order_guid)
        .execute(&db.write)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// A stored contact: the full phone (for the outbox row only) and its
/// masked form. No `Debug`, see the module docs.
#[derive(sqlx::FromRow)]
pub struct Contact {
    pub phone: String,
    pub phone_masked: String,
}

pub async fn contact(
    conn: &mut AnyConnection,
    order_guid: &str,
) -> Result<Option<Contact>, StoreError> {
    Ok(
        sqlx::query_as("SELECT phone, phone_masked FROM sms_contacts WHERE order_guid = $1")
            .bind(order_guid)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Whether a message of `kind` was already queued for the order.
pub async fn queued(
    conn: &mut AnyConnection,
    order_guid: &str,
    kind: &str,
) -> Result<bool, StoreError> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM sms_outbox WHERE order_guid = $1 AND kind = $2")
            .bind(order_guid)
            .bind(kind)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(id.is_some())
}

/// How many rows of the restaurant created after `since` used up its cap:
/// every row meant for a provider, whatever became of it (a retried or
/// failed SMS may still have cost money), but none of [`MessageState::NEVER_SENT`].
pub async fn queued_since(
    conn: &mut AnyConnection,
    rest_code: &str,
    since: i64,
) -> Result<i64, StoreError> {
    let [a, b, c, d] = MessageState::NEVER_SENT.map(MessageState::as_str);
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM sms_outbox WHERE rest_code = $1 AND created_at > $2 \
         AND state NOT IN ($3, $4, $5, $6)",
    )
    .bind(rest_code)
    .bind(since)
    .bind(a)
    .bind(b)
    .bind(c)
    .bind(d)
    .fetch_one(&mut *conn)
    .await?)
}

/// Whether a row of the restaurant refused by `r` and created after
/// `since` raised the owners' notice.
pub async fn noticed_since(
    conn: &mut AnyConnection,
    rest_code: &str,
    r: Refusal,
    since: i64,
) -> Result<bool, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM sms_outbox WHERE rest_code = $1 AND state = $2 AND created_at > $3 AND noticed = 1 LIMIT 1",
    )
    .bind(rest_code)
    .bind(r.as_str())
    .bind(since)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.is_some())
}

/// A message the consumer queues. No `Debug`: it carries the full phone.
pub struct NewMessage<'a> {
    /// The log offset of the event that crossed the threshold.
    pub id: i64,
    pub order_guid: &'a str,
    pub kind: &'a str,
    pub rest_code: &'a str,
    pub step: i64,
    pub contact: Option<Contact>,
    pub body: &'a str,
    pub provider: &'a str,
    pub sender: Option<&'a str>,
    pub state: MessageState,
    /// Why it is not sent, for the operator (a refusal's explanation).
    pub error_text: Option<&'a str>,
    /// This refusal raised the owners' notice for its window.
    pub noticed: bool,
    pub now: i64,
}

/// Queues a message, once per (order, kind); answers whether it was new.
/// Only a row that is to be sent keeps the full phone: a refused one
/// keeps the masked form, enough for the operator and nothing more
/// (152-FZ).
pub async fn queue(conn: &mut AnyConnection, m: NewMessage<'_>) -> Result<bool, StoreError> {
    let (phone, masked) = match m.contact {
        Some(c) => (
            (m.state == MessageState::PENDING).then_some(c.phone),
            Some(c.phone_masked),
        ),
        None => (None, None),
    };
    let r = sqlx::query(
        "INSERT INTO sms_outbox (id, order_guid, kind, rest_code, step, phone, phone_masked, body, provider, sender, state, attempts, next_attempt_at, error_text, noticed, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $12, $12) ON CONFLICT DO NOTHING",
    )
    .bind(m.id)
    .bind(m.order_guid)
    .bind(m.kind)
    .bind(m.rest_code)
    .bind(m.step)
    .bind(phone)
    .bind(masked)
    .bind(m.body)
    .bind(m.provider)
    .bind(m.sender)
    .bind(m.state.as_str())
    .bind(m.now)
    .bind(m.error_text)
    .bind(i64::from(m.noticed))
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

// ---- per-restaurant settings saved through the API ----

#[derive(Debug, sqlx::FromRow)]
pub struct SavedSettings {
    pub rest_code: String,
    /// The `RestaurantFile` as JSON.
    pub settings: String,
}

pub async fn saved_settings(db: &Db) -> Result<Vec<SavedSettings>, StoreError> {
    Ok(
        sqlx::query_as("SELECT rest_code, settings FROM sms_settings ORDER BY rest_code")
            .fetch_all(&db.read)
            .await?,
    )
}

pub async fn save_settings(
    db: &Db,
    rest_code: &str,
    json: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sms_settings (rest_code, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (rest_code) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(rest_code)
    .bind(json)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

// ---- the operator's view of the outbox ----

/// One outbox row as the API lists it: the masked phone only.
#[derive(Debug, sqlx::FromRow)]
pub struct ListedRow {
    pub id: i64,
    pub order_guid: String,
    pub rest_code: String,
    pub step: i64,
    pub phone_masked: Option<String>,
    pub body: String,
    pub provider: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub provider_id: Option<String>,
    pub error_code: Option<i64>,
    pub error_text: Option<String>,
    pub delivery: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Rows after id `after`, of one restaurant and one state when given.
pub async fn list(
    db: &Db,
    restaurant: Option<&str>,
    state: Option<MessageState>,
    after: i64,
    limit: i64,
) -> Result<Vec<ListedRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, order_guid, rest_code, step, phone_masked, body, provider, state, attempts, next_attempt_at, provider_id, error_code, error_text, delivery, created_at, updated_at \
         FROM sms_outbox WHERE id > $1 AND ($2 = '' OR rest_code = $2) AND ($3 = '' OR state = $3) ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(restaurant.unwrap_or(""))
    .bind(state.map_or("", MessageState::as_str))
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

// ---- provider stops ----

/// A provider stopped until the operator resumes it, and why.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stop {
    pub provider: String,
    pub reason: String,
    pub stopped_at: i64,
}

pub async fn stops(db: &Db) -> Result<Vec<Stop>, StoreError> {
    Ok(
        sqlx::query_as("SELECT provider, reason, stopped_at FROM sms_stops ORDER BY provider")
            .fetch_all(&db.read)
            .await?,
    )
}

/// Records a stop; an earlier stop of the provider is kept (its time is
/// when sending really stopped).
pub async fn stop(db: &Db, provider: &str, reason: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sms_stops (provider, reason, stopped_at) VALUES ($1, $2, $3) ON CONFLICT (provider) DO NOTHING",
    )
    .bind(provider)
    .bind(reason)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Lifts a provider stop; answers whether there was one.
pub async fn resume(db: &Db, provider: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM sms_stops WHERE provider = $1")
        .bind(provider)
        .execute(&db.write)
        .await?;
    Ok(r.rows_affected() > 0)
}

// ---- delivery ----

/// Puts rows a crash left in `sending` back to `pending`.
pub async fn recover_sending(db: &Db) -> Result<u64, StoreError> {
    let r = sqlx::query("UPDATE sms_outbox SET state = $1 WHERE state = $2")
        .bind(OutboxState::Pending.as_str())
        .bind(OutboxState::Sending.as_str())
        .execute(&db.write)
        .await?;
    Ok(r.rows_affected())
}

/// A row due for sending. No `Debug`: it carries the full phone.
#[derive(sqlx::FromRow)]
pub struct DueRow {
    pub id: i64,
    pub rest_code: String,
    /// `None` once retention deleted it.
    pub phone: Option<String>,
    pub body: String,
    pub provider: String,
    pub sender: Option<String>,
    pub attempts: i64,
}

/// Pending rows due at `now` whose provider is not stopped, oldest first.
/// Rows of a stopped provider are left out here rather than skipped by the
/// caller, so that a long queue of held rows cannot hide another
/// provider's rows behind the limit.
pub async fn due(db: &Db, now: i64, limit: i64) -> Result<Vec<DueRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, rest_code, phone, body, provider, sender, attempts FROM sms_outbox \
         WHERE state = $1 AND next_attempt_at <= $2 AND provider NOT IN (SELECT provider FROM sms_stops) \
         ORDER BY id LIMIT $3",
    )
    .bind(OutboxState::Pending.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

/// How many rows are due at `now` but held by a stopped provider.
pub async fn held(db: &Db, now: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM sms_outbox WHERE state = $1 AND next_attempt_at <= $2 \
         AND provider IN (SELECT provider FROM sms_stops)",
    )
    .bind(OutboxState::Pending.as_str())
    .bind(now)
    .fetch_one(&db.read)
    .await?)
}

/// When the next row may go (clock ms): the earliest pending row of a
/// provider that is not stopped. `None`: nothing to send until new rows
/// are queued or a stop is lifted.
pub async fn next_due(db: &Db) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM sms_outbox WHERE state = $1 \
         AND provider NOT IN (SELECT provider FROM sms_stops)",
    )
    .bind(OutboxState::Pending.as_str())
    .fetch_one(&db.read)
    .await?)
}

/// Marks a pending row `sending` (committed before the provider is
/// called); answers whether it was still pending.
pub async fn claim(db: &Db, id: i64, now: i64) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE sms_outbox SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
    )
    .bind(OutboxState::Sending.as_str())
    .bind(now)
    .bind(id)
    .bind(OutboxState::Pending.as_str())
    .execute(&db.write)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The provider accepted the message: `sent`, first status poll counted
/// from now.
pub async fn mark_sent(
    db: &Db,
    id: i64,
    attempts: i64,
    provider_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sms_outbox SET state = $1, attempts = $2, provider_id = $3, error_code = NULL, error_text = NULL, polled_at = $4, updated_at = $4 WHERE id = $5",
    )
    .bind(OutboxState::Sent.as_str())
    .bind(attempts)
    .bind(provider_id)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// What became of a row whose send did not succeed (or was never tried).
pub struct Failure<'a> {
    /// `pending` (retried later, or held by a stopped provider) or
    /// `failed`.
    pub state: OutboxState,
    /// The attempts made, the failed one included; `None` when this was
    /// not an attempt of the message (its provider stopped, or nothing
    /// could be sent), so the count stays.
    pub attempts: Option<i64>,
    /// When it goes again; `None` keeps the due time (a held row is due as
    /// soon as its provider is resumed).
    pub retry_at: Option<i64>,
    pub error_code: Option<i64>,
    pub error_text: &'a str,
}

pub async fn record_failure(db: &Db, id: i64, f: Failure<'_>, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sms_outbox SET state = $1, attempts = COALESCE($2, attempts), next_attempt_at = COALESCE($3, next_attempt_at), \
         error_code = $4, error_text = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(f.state.as_str())
    .bind(f.attempts)
    .bind(f.retry_at)
    .bind(f.error_code)
    .bind(f.error_text)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// A pending row that must not go after all (its number's country is no
/// longer allowed): refused, its full phone forgotten.
pub async fn refuse(
    db: &Db,
    id: i64,
    r: Refusal,
    error_text: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sms_outbox SET state = $1, phone = NULL, error_text = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(MessageState::Refused(r).as_str())
    .bind(error_text)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

// ---- delivery status ----

/// A sent message to ask its provider about.
#[derive(Debug, sqlx::FromRow)]
pub struct ToPoll {
    pub id: i64,
    pub provider: String,
    pub provider_id: String,
}

/// Sent messages created after `since` whose last poll (or send) was at or
/// before `polled_before`, oldest first.
pub async fn to_poll(
    db: &Db,
    since: i64,
    polled_before: i64,
    limit: i64,
) -> Result<Vec<ToPoll>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, provider, provider_id FROM sms_outbox WHERE state = $1 AND provider_id IS NOT NULL \
         AND created_at > $2 AND (polled_at IS NULL OR polled_at <= $3) ORDER BY id LIMIT $4",
    )
    .bind(OutboxState::Sent.as_str())
    .bind(since)
    .bind(polled_before)
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

/// The oldest last poll (or send) among the messages [`to_poll`] would
/// consider: the next poll is due one interval after it.
pub async fn oldest_poll(db: &Db, since: i64) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(COALESCE(polled_at, 0)) FROM sms_outbox WHERE state = $1 AND provider_id IS NOT NULL AND created_at > $2",
    )
    .bind(OutboxState::Sent.as_str())
    .bind(since)
    .fetch_one(&db.read)
    .await?)
}

pub async fn record_status(
    db: &Db,
    id: i64,
    state: MessageState,
    delivery: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sms_outbox SET state = $1, delivery = $2, polled_at = $3, updated_at = $3 WHERE id = $4",
    )
    .bind(state.as_str())
    .bind(delivery)
    .bind(now)
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

// ---- retention ----

/// Deletes contacts created before `cutoff` and the full phone of older
/// outbox rows (their masked form stays); answers how many phones went.
pub async fn forget_phones(db: &Db, cutoff: i64) -> Result<u64, StoreError> {
    let contacts = sqlx::query("DELETE FROM sms_contacts WHERE created_at < $1")
        .bind(cutoff)
        .execute(&db.write)
        .await?
        .rows_affected();
    let outbox = sqlx::query(
        "UPDATE sms_outbox SET phone = NULL WHERE created_at < $1 AND phone IS NOT NULL",
    )
    .bind(cutoff)
    .execute(&db.write)
    .await?
    .rows_affected();
    Ok(contacts + outbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_with_their_stored_names() {
        for s in MessageState::ALL {
            assert_eq!(s.as_str().parse::<MessageState>(), Ok(s));
        }
        assert_eq!(
            MessageState::names(),
            "pending, sending, sent, delivered, undelivered, failed, no_consent, refused_country, refused_hourly_cap, refused_daily_cap"
        );
        for s in MessageState::NEVER_SENT {
            assert!(MessageState::ALL.contains(&s));
        }
        assert!("muted".parse::<MessageState>().is_err());
        assert_eq!(
            serde_json::to_value(MessageState::NoConsent).unwrap(),
            "no_consent"
        );
    }
}
