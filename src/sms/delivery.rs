//! Sending what the outbox holds, polling delivery, and forgetting phones.
//!
//! [`Delivery::run_once`] does one pass: send every due `pending` row, then
//! ask the provider about sent messages whose status is not final. Tests
//! call it directly with an injected clock, so retry schedules are checked
//! without sleeping.
//!
//! Failure handling, by the provider's answer (see [`ProviderError`]):
//! * temporary (sms.ru 220, 500, network): back to `pending` with
//!   `retry_base * 2^(attempt-1)` delay, capped at 30 minutes, and `failed`
//!   after `max_attempts`;
//! * permanent (202 bad number, 207 no route, 209 stop list...): `failed`
//!   at once, the code and text recorded;
//! * stop (201 no money, 200 and 300..305 credentials, 204 sender): the row
//!   goes back to `pending` untouched, the provider is marked stopped in
//!   `sms_stops` (durable, so a restart does not hammer a dead account) and
//!   an `sms_stopped` operator event is raised for the alerts feature.
//!   `POST /api/sms/resume` clears it.
//!
//! A row is marked `sending` (committed) before the provider is called. A
//! graceful shutdown waits for the call and records its answer; after a
//! crash in that window [`Delivery::recover`] puts `sending` rows back to
//! `pending`: the guest may then get the SMS twice, which is preferred to
//! never getting it (sms.ru has no idempotency key to ask with).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::outbox::state;
use super::provider::{Delivery as Report, Provider, ProviderError};
use crate::core::bus::{Bus, NoticeKind, OperatorEvent};
use crate::core::phone::PhoneE164;
use crate::core::store::{Db, StoreError};

/// Unix milliseconds; injected so tests control time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(crate::core::clock::now_ms)
}

const BATCH: i64 = 50;
const MAX_DELAY_MS: i64 = 30 * 60 * 1000;
/// Sent messages are polled for a day; after that a missing report will
/// not come.
const POLL_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Rows left waiting because their provider is stopped.
    pub held: usize,
    pub polled: usize,
}

impl Outcome {
    pub fn is_idle(&self) -> bool {
        self.sent + self.retried + self.failed + self.polled == 0
    }
}

pub struct Delivery {
    db: Db,
    settings: Arc<Settings>,
    providers: Arc<HashMap<String, Arc<dyn Provider>>>,
    events: Bus,
    clock: Clock,
    /// Checked between messages so a shutdown does not wait for a whole
    /// batch; the message in flight is still finished and recorded.
    shutdown: CancellationToken,
}

struct Due {
    id: i64,
    rest_code: String,
    phone: Option<String>,
    body: String,
    provider: String,
    sender: Option<String>,
    attempts: i64,
}

impl Delivery {
    pub fn new(
        db: Db,
        settings: Arc<Settings>,
        providers: Arc<HashMap<String, Arc<dyn Provider>>>,
        events: Bus,
        clock: Clock,
    ) -> Self {
        Delivery {
            db,
            settings,
            providers,
            events,
            clock,
            shutdown: CancellationToken::new(),
        }
    }

    /// Puts rows a crash left in `sending` back to `pending` (see the
    /// module docs for why that is the right way round).
    pub async fn recover(&self) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE sms_outbox SET state = $1 WHERE state = $2")
            .bind(state::PENDING)
            .bind(state::SENDING)
            .execute(&self.db.write)
            .await?;
        if r.rows_affected() > 0 {
            tracing::warn!(
                rows = r.rows_affected(),
                "sms rows interrupted mid-send will be sent again"
            );
        }
        Ok(r.rows_affected())
    }

    pub async fn run_once(&self) -> Result<Outcome, StoreError> {
        let now = (self.clock)();
        let mut out = Outcome::default();
        let stopped: HashSet<String> = sqlx::query_scalar("SELECT provider FROM sms_stops")
            .fetch_all(&self.db.read)
            .await?
            .into_iter()
            .collect();
        let rows = sqlx::query(
            "SELECT id, rest_code, phone, body, provider, sender, attempts FROM sms_outbox \
             WHERE state = $1 AND next_attempt_at <= $2 ORDER BY id LIMIT $3",
        )
        .bind(state::PENDING)
        .bind(now)
        .bind(BATCH)
        .fetch_all(&self.db.read)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in rows {
            due.push(Due {
                id: r.try_get(0)?,
                rest_code: r.try_get(1)?,
                phone: r.try_get(2)?,
                body: r.try_get(3)?,
                provider: r.try_get(4)?,
                sender: r.try_get(5)?,
                attempts: r.try_get(6)?,
            });
        }
        let mut newly_stopped = HashSet::new();
        for d in due {
            if self.shutdown.is_cancelled() {
                break;
            }
            if stopped.contains(&d.provider) || newly_stopped.contains(&d.provider) {
                out.held += 1;
                continue;
            }
            let Some(provider) = self.providers.get(&d.provider).cloned() else {
                self.fail(
                    d.id,
                    None,
                    &format!("provider {:?} is not configured", d.provider),
                    now,
                )
                .await?;
                out.failed += 1;
                continue;
            };
            let phone = match d.phone.as_deref().map(PhoneE164::parse) {
                Some(Ok(p)) => p,
                _ => {
                    self.fail(
                        d.id,
                        None,
                        "guest phone was deleted (retention) or is unreadable",
                        now,
                    )
                    .await?;
                    out.failed += 1;
                    continue;
                }
            };
            let claimed = sqlx::query(
                "UPDATE sms_outbox SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
            )
            .bind(state::SENDING)
            .bind(now)
            .bind(d.id)
            .bind(state::PENDING)
            .execute(&self.db.write)
            .await?;
            if claimed.rows_affected() == 0 {
                continue;
            }
            let attempt = d.attempts + 1;
            let result = provider.send(&phone, &d.body, d.sender.as_deref()).await;
            let now = (self.clock)();
            match result {
                Ok(acc) => {
                    sqlx::query(
                        "UPDATE sms_outbox SET state = $1, attempts = $2, provider_id = $3, error_code = NULL, error_text = NULL, polled_at = $4, updated_at = $4 WHERE id = $5",
                    )
                    .bind(state::SENT)
                    .bind(attempt)
                    .bind(acc.provider_id)
                    .bind(now)
                    .bind(d.id)
                    .execute(&self.db.write)
                    .await?;
                    metrics::counter!("tillgate_sms_sent_total", "provider" => d.provider.clone())
                        .increment(1);
                    tracing::info!(id = d.id, phone = %phone, "sms sent");
                    out.sent += 1;
                }
                Err(e @ ProviderError::Temporary { .. }) => {
                    if attempt >= i64::from(self.settings.max_attempts) {
                        self.fail_attempt(d.id, attempt, &e, now).await?;
                        metrics::counter!("tillgate_sms_failed_total", "provider" => d.provider.clone(), "reason" => "gave_up").increment(1);
                        out.failed += 1;
                    } else {
                        let base = self.settings.retry_base.as_millis() as i64;
                        let delay = base
                            .saturating_mul(1i64 << (attempt - 1).min(20))
                            .min(MAX_DELAY_MS);
                        sqlx::query(
                            "UPDATE sms_outbox SET state = $1, attempts = $2, next_attempt_at = $3, error_code = $4, error_text = $5, updated_at = $6 WHERE id = $7",
                        )
                        .bind(state::PENDING)
                        .bind(attempt)
                        .bind(now + delay)
                        .bind(e.code())
                        .bind(e.to_string())
                        .bind(now)
                        .bind(d.id)
                        .execute(&self.db.write)
                        .await?;
                        tracing::warn!(id = d.id, phone = %phone, attempt, error = %e, "sms attempt failed; will retry");
                        out.retried += 1;
                    }
                }
                Err(e @ ProviderError::Stop { .. }) => {
                    sqlx::query(
                        "UPDATE sms_outbox SET state = $1, error_code = $2, error_text = $3, updated_at = $4 WHERE id = $5",
                    )
                    .bind(state::PENDING)
                    .bind(e.code())
                    .bind(e.to_string())
                    .bind(now)
                    .bind(d.id)
                    .execute(&self.db.write)
                    .await?;
                    self.stop(&d.provider, &d.rest_code, &e, now).await?;
                    newly_stopped.insert(d.provider.clone());
                    out.held += 1;
                }
                Err(e) => {
                    self.fail_attempt(d.id, attempt, &e, now).await?;
                    metrics::counter!("tillgate_sms_failed_total", "provider" => d.provider.clone(), "reason" => "refused").increment(1);
                    tracing::warn!(id = d.id, phone = %phone, error = %e, "sms refused by the provider");
                    out.failed += 1;
                }
            }
        }
        out.polled = self.poll(now).await?;
        Ok(out)
    }

    async fn fail(
        &self,
        id: i64,
        code: Option<i64>,
        text: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sms_outbox SET state = $1, error_code = $2, error_text = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(state::FAILED)
        .bind(code)
        .bind(text)
        .bind(now)
        .bind(id)
        .execute(&self.db.write)
        .await?;
        metrics::counter!("tillgate_sms_failed_total", "provider" => "-", "reason" => "unsendable")
            .increment(1);
        Ok(())
    }

    async fn fail_attempt(
        &self,
        id: i64,
        attempt: i64,
        e: &ProviderError,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sms_outbox SET state = $1, attempts = $2, error_code = $3, error_text = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(state::FAILED)
        .bind(attempt)
        .bind(e.code())
        .bind(e.to_string())
        .bind(now)
        .bind(id)
        .execute(&self.db.write)
        .await?;
        Ok(())
    }

    async fn stop(
        &self,
        provider: &str,
        rest_code: &str,
        e: &ProviderError,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sms_stops (provider, reason, stopped_at) VALUES ($1, $2, $3) ON CONFLICT (provider) DO NOTHING",
        )
        .bind(provider)
        .bind(e.to_string())
        .bind(now)
        .execute(&self.db.write)
        .await?;
        tracing::error!(provider, error = %e, "sms sending stopped until resumed");
        // No receiver (alerts off) is fine: the stop is durable and visible
        // in the API.
        self.events.raise(OperatorEvent {
            kind: NoticeKind::SmsStopped,
            rest_code: Some(rest_code.to_string()),
            text: format!(
                "Guest SMS through {provider} stopped: {e}. Fix the account, then POST /api/sms/resume."
            ),
        });
        Ok(())
    }

    /// Asks the provider about sent messages that have no final status,
    /// every `status_poll` (counted from the send, so a message is not
    /// asked about before it could have arrived).
    async fn poll(&self, now: i64) -> Result<usize, StoreError> {
        let every = self.settings.status_poll.as_millis() as i64;
        let rows = sqlx::query(
            "SELECT id, provider, provider_id FROM sms_outbox WHERE state = $1 AND provider_id IS NOT NULL \
             AND created_at > $2 AND (polled_at IS NULL OR polled_at <= $3) ORDER BY id LIMIT $4",
        )
        .bind(state::SENT)
        .bind(now - POLL_WINDOW_MS)
        .bind(now - every)
        .bind(BATCH)
        .fetch_all(&self.db.read)
        .await?;
        let mut polled = 0;
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let provider: String = r.try_get(1)?;
            let pid: String = r.try_get(2)?;
            let Some(p) = self.providers.get(&provider) else {
                continue;
            };
            let (new_state, delivery) = match p.status(&pid).await {
                Ok(Report::Delivered) => (state::DELIVERED, "delivered".to_string()),
                Ok(Report::InFlight { code }) => (state::SENT, format!("in flight ({code})")),
                Ok(Report::Undelivered { code, message }) => {
                    (state::UNDELIVERED, format!("{code}: {message}"))
                }
                Err(ProviderError::Unsupported(_)) => {
                    (state::SENT, "not reported by provider".into())
                }
                Err(e) => (state::SENT, format!("status unknown: {e}")),
            };
            sqlx::query(
                "UPDATE sms_outbox SET state = $1, delivery = $2, polled_at = $3, updated_at = $3 WHERE id = $4",
            )
            .bind(new_state)
            .bind(delivery)
            .bind(now)
            .bind(id)
            .execute(&self.db.write)
            .await?;
            polled += 1;
        }
        Ok(polled)
    }

    /// Runs passes until `shutdown`; an idle pass waits a second. An
    /// in-flight send is finished before stopping.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.shutdown = shutdown.clone();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let pause = match self.run_once().await {
                Ok(o) if !o.is_idle() => Duration::from_millis(0),
                Ok(_) => Duration::from_secs(1),
                Err(e) => {
                    tracing::error!(error = %e, "sms delivery pass failed; will retry");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Lifts a provider stop; answers whether there was one.
pub async fn resume(db: &Db, provider: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM sms_stops WHERE provider = $1")
        .bind(provider)
        .execute(&db.write)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Stopped providers and why.
pub async fn stops(db: &Db) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT provider, reason, stopped_at FROM sms_stops ORDER BY provider")
            .fetch_all(&db.read)
            .await?,
    )
}

/// Deletes guest phones older than the retention period (152-FZ: keep
/// personal data no longer than needed). Outbox rows keep only the masked
/// form.
pub struct Retention {
    db: Db,
    retention: Duration,
    clock: Clock,
}

impl Retention {
    pub fn new(db: Db, retention: Duration, clock: Clock) -> Self {
        Retention {
            db,
            retention,
            clock,
        }
    }

    /// Returns how many phones were deleted.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let cutoff = (self.clock)() - self.retention.as_millis() as i64;
        let contacts = sqlx::query("DELETE FROM sms_contacts WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.db.write)
            .await?
            .rows_affected();
        let outbox = sqlx::query(
            "UPDATE sms_outbox SET phone = NULL WHERE created_at < $1 AND phone IS NOT NULL",
        )
        .bind(cutoff)
        .execute(&self.db.write)
        .await?
        .rows_affected();
        Ok(contacts + outbox)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.run_once().await {
                Ok(n) if n > 0 => {
                    tracing::info!(deleted = n, "guest phones past retention deleted")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sms retention pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }
}
