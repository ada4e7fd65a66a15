//! Sending what the outbox holds: the SMS feature's outbox worker.
//!
//! [`Delivery`] is an [`OutboxWorker`] run by the core loop
//! ([`crate::core::outbox::run`]): each step sends every due `pending` row
//! ([`Delivery::pass`], which tests call directly with a manual clock) and
//! then tells the loop to rest until the next row is due, or until the
//! consumer or `POST /api/sms/resume` wakes it.
//!
//! Failure handling, by the provider's answer (see [`ProviderError`]):
//! * temporary (sms.ru 220, 500, network): back to `pending` with
//!   `retry_base * 2^(attempt-1)` delay, capped at 30 minutes, and `failed`
//!   after `max_attempts` ([`retry_policy`]; without jitter, so the times
//!   are the documented ones, which tests check to the millisecond);
//! * permanent (202 bad number, 207 no route, 209 stop list...): `failed`
//!   at once, the code and text recorded;
//! * stop (201 no money, 200 and 300..305 credentials, 204 sender): the row
//!   goes back to `pending` untouched, the provider is marked stopped in
//!   `sms_stops` (durable, so a restart does not hammer a dead account) and
//!   an `sms_stopped` operator event is raised for the alerts feature.
//!   `POST /api/sms/resume` clears it.
//!
//! A due row whose number is not in `sms.allowed_country_codes` (queued
//! before the setting was narrowed, or before the rule existed) is
//! `refused_country` instead of sent: the consumer's
//! [`guard`](super::guard) is the first check, this the last.
//!
//! A row is marked `sending` (committed) before the provider is called. A
//! graceful shutdown waits for the call and records its answer; after a
//! crash in that window [`Delivery::recover`] puts `sending` rows back to
//! `pending`: the guest may then get the SMS twice, which is preferred to
//! never getting it (sms.ru has no idempotency key to ask with).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Settings;
use super::guard::{self, Guard, Refusal};
use super::provider::{Provider, ProviderError};
use super::store::{self, Failure};
use crate::core::backoff::Backoff;
use crate::core::bus::{Bus, NoticeKind, OperatorEvent};
use crate::core::clock::SharedClock;
use crate::core::outbox::{Next, OutboxState, OutboxWorker, RetryPolicy, Step};
use crate::core::phone::PhoneE164;
use crate::core::store::{Db, StoreError};
use crate::core::telemetry::{Kind, describe};

/// Rows sent per step at most, so a shutdown or a newly queued row waits
/// for at most one batch.
const BATCH: i64 = 50;
/// The longest wait between two attempts of one message.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 60);

const SENT_TOTAL: &str = "tillgate_sms_sent_total";
const FAILED_TOTAL: &str = "tillgate_sms_failed_total";
/// `provider` label of failures that no provider saw (the row named a
/// provider no longer configured, or its phone was gone).
const NO_PROVIDER: &str = "-";

/// Why a message was given up on: the `reason` label of
/// `tillgate_sms_failed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The provider refused it for good.
    Refused,
    /// Temporary failures until `max_attempts`.
    GaveUp,
    /// Nothing could be sent: no provider, no phone.
    Unsendable,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Refused => "refused",
            FailReason::GaveUp => "gave_up",
            FailReason::Unsendable => "unsendable",
        }
    }
}

fn count_failed(provider: &str, reason: FailReason) {
    metrics::counter!(FAILED_TOTAL, "provider" => provider.to_string(), "reason" => reason.as_str())
        .increment(1);
}

/// Gives the SMS counters their HELP lines and registers them at zero for
/// every configured provider, so `/metrics` lists them before the first
/// message and `rate()` sees the first one.
pub fn describe_metrics<'a>(providers: impl IntoIterator<Item = &'a String>) {
    describe(
        Kind::Counter,
        SENT_TOTAL,
        "Guest SMS accepted by a provider, by provider.",
        true,
    );
    describe(
        Kind::Counter,
        FAILED_TOTAL,
        "Guest SMS given up on, by provider and reason (refused, gave_up, unsendable).",
        true,
    );
    for p in providers {
        metrics::counter!(SENT_TOTAL, "provider" => p.clone()).increment(0);
        for reason in [FailReason::Refused, FailReason::GaveUp] {
            metrics::counter!(FAILED_TOTAL, "provider" => p.clone(), "reason" => reason.as_str())
                .increment(0);
        }
    }
    metrics::counter!(FAILED_TOTAL, "provider" => NO_PROVIDER, "reason" => FailReason::Unsendable.as_str())
        .increment(0);
    guard::describe_metrics();
}

/// The documented schedule: `retry_base · 2^(attempt−1)`, at most 30
/// minutes (also when `retry_base` itself is longer), `failed` after
/// `max_attempts`.
pub fn retry_policy(settings: &Settings) -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::doubling(settings.retry_base.min(MAX_RETRY_DELAY), MAX_RETRY_DELAY),
        max_attempts: Some(settings.max_attempts),
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Due rows left waiting because their provider is stopped.
    pub held: usize,
    /// Due rows not sent because their number's country is not allowed.
    pub refused: usize,
}

impl Outcome {
    pub fn is_idle(&self) -> bool {
        self.sent + self.retried + self.failed + self.refused == 0
    }
}

pub struct Delivery {
    db: Db,
    retry: RetryPolicy,
    guard: Guard,
    providers: Arc<HashMap<String, Arc<dyn Provider>>>,
    events: Bus,
    clock: SharedClock,
    /// Checked between messages so a shutdown does not wait for a whole
    /// batch; the message in flight is still finished and recorded.
    shutdown: CancellationToken,
}

impl Delivery {
    pub fn new(
        db: Db,
        settings: Arc<Settings>,
        providers: Arc<HashMap<String, Arc<dyn Provider>>>,
        events: Bus,
        clock: SharedClock,
    ) -> Self {
        Delivery {
            db,
            retry: retry_policy(&settings),
            guard: settings.guard.clone(),
            providers,
            events,
            clock,
            shutdown: CancellationToken::new(),
        }
    }

    /// The token the server stops with: a pass then ends after the message
    /// in flight.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Puts rows a crash left in `sending` back to `pending` (see the
    /// module docs for why that is the right way round).
    pub async fn recover(&self) -> Result<u64, StoreError> {
        let n = store::recover_sending(&self.db).await?;
        if n > 0 {
            tracing::warn!(rows = n, "sms rows interrupted mid-send will be sent again");
        }
        Ok(n)
    }

    /// One pass: sends the due rows (up to a batch) and records each answer.
    pub async fn pass(&self) -> Result<Outcome, StoreError> {
        let now = self.clock.now_ms();
        let mut out = Outcome {
            held: store::held(&self.db, now).await? as usize,
            ..Outcome::default()
        };
        let mut newly_stopped = HashSet::new();
        for d in store::due(&self.db, now, BATCH).await? {
            if self.shutdown.is_cancelled() {
                break;
            }
            if newly_stopped.contains(&d.provider) {
                out.held += 1;
                continue;
            }
            let Some(provider) = self.providers.get(&d.provider).cloned() else {
                let text = format!("provider {:?} is not configured", d.provider);
                self.unsendable(d.id, &text, now).await?;
                out.failed += 1;
                continue;
            };
            let Some(phone) = d.phone.as_deref().and_then(|p| PhoneE164::parse(p).ok()) else {
                let text = "guest phone was deleted (retention) or is unreadable";
                self.unsendable(d.id, text, now).await?;
                out.failed += 1;
                continue;
            };
            if !self.guard.country_allowed(&phone) {
                let text = self.guard.explain(Refusal::Country, &phone);
                store::refuse(&self.db, d.id, Refusal::Country, &text, now).await?;
                guard::count_refused(Refusal::Country);
                tracing::warn!(id = d.id, phone = %phone, "sms to a country not allowed refused");
                out.refused += 1;
                continue;
            }
            if !store::claim(&self.db, d.id, now).await? {
                continue;
            }
            let attempt = d.attempts + 1;
            let result = provider.send(&phone, &d.body, d.sender.as_deref()).await;
            let now = self.clock.now_ms();
            match result {
                Ok(acc) => {
                    store::mark_sent(&self.db, d.id, attempt, acc.provider_id.as_deref(), now)
                        .await?;
                    metrics::counter!(SENT_TOTAL, "provider" => d.provider.clone()).increment(1);
                    tracing::info!(id = d.id, phone = %phone, "sms sent");
                    out.sent += 1;
                }
                Err(e @ ProviderError::Temporary { .. }) => {
                    let attempts = u32::try_from(attempt).unwrap_or(u32::MAX);
                    match self.retry.after_failure(attempts, now, None) {
                        Next::GiveUp => {
                            self.failure(d.id, OutboxState::Failed, Some(attempt), None, &e, now)
                                .await?;
                            count_failed(&d.provider, FailReason::GaveUp);
                            tracing::warn!(id = d.id, phone = %phone, attempt, error = %e, "sms given up after its last attempt");
                            out.failed += 1;
                        }
                        Next::RetryAt(at) => {
                            let (state, attempts) = (OutboxState::Pending, Some(attempt));
                            self.failure(d.id, state, attempts, Some(at), &e, now)
                                .await?;
                            tracing::warn!(id = d.id, phone = %phone, attempt, error = %e, "sms attempt failed; will retry");
                            out.retried += 1;
                        }
                    }
                }
                Err(e @ ProviderError::Stop { .. }) => {
                    // Not the message's fault: the attempt is not counted.
                    self.failure(d.id, OutboxState::Pending, None, None, &e, now)
                        .await?;
                    self.stop(&d.provider, &d.rest_code, &e, now).await?;
                    newly_stopped.insert(d.provider.clone());
                    out.held += 1;
                }
                Err(e) => {
                    self.failure(d.id, OutboxState::Failed, Some(attempt), None, &e, now)
                        .await?;
                    count_failed(&d.provider, FailReason::Refused);
                    tracing::warn!(id = d.id, phone = %phone, error = %e, "sms refused by the provider");
                    out.failed += 1;
                }
            }
        }
        Ok(out)
    }

    async fn failure(
        &self,
        id: i64,
        state: OutboxState,
        attempts: Option<i64>,
        retry_at: Option<i64>,
        e: &ProviderError,
        now: i64,
    ) -> Result<(), StoreError> {
        let failure = Failure {
            state,
            attempts,
            retry_at,
            error_code: e.code(),
            error_text: &e.to_string(),
        };
        store::record_failure(&self.db, id, failure, now).await
    }

    /// A row nothing can be sent for: `failed` without an attempt.
    async fn unsendable(&self, id: i64, text: &str, now: i64) -> Result<(), StoreError> {
        let failure = Failure {
            state: OutboxState::Failed,
            attempts: None,
            retry_at: None,
            error_code: None,
            error_text: text,
        };
        store::record_failure(&self.db, id, failure, now).await?;
        count_failed(NO_PROVIDER, FailReason::Unsendable);
        tracing::warn!(id, reason = text, "sms cannot be sent");
        Ok(())
    }

    async fn stop(
        &self,
        provider: &str,
        rest_code: &str,
        e: &ProviderError,
        now: i64,
    ) -> Result<(), StoreError> {
        store::stop(&self.db, provider, &e.to_string(), now).await?;
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
}

impl OutboxWorker for Delivery {
    type Error = StoreError;

    /// A pass, then: at once again while rows are due; otherwise rest until
    /// the next row is due, or (none pending, or all held by a stopped
    /// provider) until woken.
    async fn run_once(&mut self) -> Result<Step, StoreError> {
        self.pass().await?;
        Ok(match store::next_due(&self.db).await? {
            None => Step::Idle,
            Some(at) if at <= self.clock.now_ms() => Step::Busy,
            Some(at) => Step::WaitUntil(at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_documented_schedule() {
        let s = Settings {
            retry_base: Duration::from_secs(30),
            max_attempts: 8,
            ..Settings::default()
        };
        let p = retry_policy(&s);
        let waits: Vec<i64> = (1..=7)
            .map(|a| match p.after_failure(a, 0, None) {
                Next::RetryAt(t) => t / 1000,
                Next::GiveUp => -1,
            })
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800]);
        assert_eq!(p.after_failure(8, 0, None), Next::GiveUp);
        let long_base = Settings {
            retry_base: Duration::from_secs(3600),
            ..s
        };
        assert_eq!(
            retry_policy(&long_base).after_failure(1, 0, None),
            Next::RetryAt(1_800_000)
        );
    }
}
