//! Delivery from the outbox to Telegram, one message per step, on the one
//! outbox worker loop ([`crate::core::outbox::run`]).
//!
//! [`Sender::send_one`] sends at most one Telegram message (one part of one
//! alert) and records the result before returning, so tests drive it step by
//! step with a [`crate::core::clock::ManualClock`] and never sleep.
//!
//! Exactly-once and its limit: Telegram has no idempotency key. A part is
//! recorded as sent by one UPDATE right after Telegram accepts it. If the
//! process dies between Telegram's answer and that UPDATE, that one part is
//! sent again after the restart; nothing else is (every other part is either
//! recorded or was never sent). A clean shutdown finishes the in-flight
//! request and records it, so restarts never duplicate. Nothing is ever lost:
//! a row stays pending until Telegram accepted all its parts, whatever the
//! outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::kind::AlertKind;
use super::limiter::RateLimiter;
use super::payload::Alert;
use super::report;
use super::settings::live::LiveSettings;
use super::settings::{Limits, Settings};
use super::store::{self, PendingRow};
use super::telegram::{Client, TgError};
use super::text::{self, Texts};
use crate::core::backoff::Backoff;
use crate::core::clock::SharedClock;
use crate::core::outbox::{Next, OutboxWorker, RetryPolicy, Step};
use crate::core::store::{Db, StoreError};

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing pending.
    Idle,
    /// Pending rows exist but none may go before this time (ms).
    WaitUntil(i64),
    /// One part of alert `id` was accepted; `done` when it was the last.
    Sent { id: i64, part: i64, done: bool },
    /// The attempt failed; the row is retried later (or given up).
    Failed { id: i64, error: String },
    /// The chat moved; the row is retried at the new id.
    Migrated { from: i64, to: i64 },
    /// The row was not sent because its chat is muted.
    Muted { id: i64 },
}

/// One Telegram message of an alert.
enum Part {
    Text(String),
    Photo(Vec<u8>, String),
}

/// How many pending rows one step looks at to find one that may go.
const SCAN: i64 = 200;

pub struct Sender {
    pub db: Db,
    pub client: Client,
    pub texts: Arc<Texts>,
    pub clock: SharedClock,
    pub limiter: RateLimiter,
    /// When a failed row goes again. Alerts are never given up for an
    /// outage (`max_attempts: None`), only for a refusal.
    pub retry: RetryPolicy,
    /// The live settings the client (token) and texts (restaurant names)
    /// follow, and the settings they were last built from.
    pub live: Option<(LiveSettings, Option<Arc<Settings>>)>,
}

impl Sender {
    /// A sender within `limits`. Network errors and 5xx wait 1 s, 2 s,
    /// 4 s ... up to `limits.max_backoff`, without jitter: there is one
    /// destination (Telegram), so there is no herd to spread, and the
    /// documented schedule is exact. Telegram's `retry_after` is a floor.
    pub fn new(
        db: Db,
        client: Client,
        texts: Arc<Texts>,
        clock: SharedClock,
        limits: &Limits,
    ) -> Sender {
        Sender {
            db,
            client,
            texts,
            clock,
            limiter: RateLimiter::new(limits.clone()),
            retry: RetryPolicy {
                backoff: Backoff::doubling(Duration::from_secs(1), limits.max_backoff),
                max_attempts: None,
            },
            live: None,
        }
    }

    /// Follows the live settings: a token set or changed in the console is
    /// used from the next message on, without a restart.
    pub fn with_live(mut self, live: LiveSettings) -> Sender {
        self.live = Some((live, None));
        self
    }

    /// Rebuilds the client and texts when the live settings changed; false
    /// while there is no token (alerts wait in the outbox).
    async fn refresh(&mut self) -> Result<bool, StoreError> {
        let Some((live, seen)) = &mut self.live else {
            return Ok(true);
        };
        let s = live.get().await?;
        if seen.as_ref().is_some_and(|x| Arc::ptr_eq(x, &s)) {
            return Ok(s.bot_token.is_some());
        }
        *seen = Some(s.clone());
        let Some(token) = s.bot_token.clone() else {
            return Ok(false);
        };
        self.client = Client::new(&s.api_base, token);
        match super::texts(&s) {
            Ok(t) => self.texts = Arc::new(t),
            Err(e) => tracing::error!(error = %e, "alert texts not rebuilt; keeping the last"),
        }
        Ok(true)
    }

    fn parts(&self, alert: &Alert) -> Result<Vec<Part>, String> {
        let text = self.texts.render(alert).map_err(|e| e.to_string())?;
        let mut parts = Vec::new();
        if let Alert::ShiftReport(r) = alert {
            let png = report::chart_png(r)?;
            parts.push(Part::Photo(png, self.texts.chart_caption(r)));
        }
        parts.extend(
            text::split(&text, text::MAX_TEXT)
                .into_iter()
                .map(Part::Text),
        );
        Ok(parts)
    }

    /// The first pending row that may go now, or the earliest time one may.
    fn choose(&mut self, rows: Vec<PendingRow>, now: i64) -> Result<PendingRow, Outcome> {
        let mut blocked: HashSet<i64> = HashSet::new();
        let mut wake = i64::MAX;
        for row in rows {
            if blocked.contains(&row.chat_id) {
                continue;
            }
            // Alerts to one chat keep their order: a later one waits for an
            // earlier one's backoff.
            if row.next_attempt_at > now {
                blocked.insert(row.chat_id);
                wake = wake.min(row.next_attempt_at);
                continue;
            }
            if let Err(at) = self.limiter.check(row.chat_id, now) {
                blocked.insert(row.chat_id);
                wake = wake.min(at);
                continue;
            }
            return Ok(row);
        }
        Err(Outcome::WaitUntil(wake))
    }

    /// Sends at most one message and records what happened.
    pub async fn send_one(&mut self) -> Result<Outcome, StoreError> {
        let now = self.clock.now_ms();
        let rows = store::pending(&self.db, SCAN).await?;
        let pending = if rows.len() < SCAN as usize {
            rows.len() as i64
        } else {
            store::count_pending(&self.db).await?
        };
        metrics::gauge!("tillgate_alerts_pending").set(pending as f64);
        if rows.is_empty() {
            return Ok(Outcome::Idle);
        }
        let row = match self.choose(rows, now) {
            Ok(row) => row,
            Err(wait) => return Ok(wait),
        };
        // Reports and command answers come even to a muted chat: the owner
        // asked for silence about incidents, not for no answers.
        if !matches!(row.kind, AlertKind::Operator | AlertKind::ShiftReport)
            && row.parts_sent == 0
            && store::muted_until(&self.db, row.chat_id).await? > now
        {
            store::mark_muted(&self.db, row.id).await?;
            return Ok(Outcome::Muted { id: row.id });
        }
        let parts = match row
            .alert()
            .map_err(|e| e.to_string())
            .and_then(|a| self.parts(&a))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(alert = row.id, error = %e, "alert cannot be rendered; giving up on it");
                store::record_failure(&self.db, row.id, now, &e, true).await?;
                return Ok(Outcome::Failed {
                    id: row.id,
                    error: e,
                });
            }
        };
        let idx = row.parts_sent.max(0) as usize;
        let Some(part) = parts.get(idx) else {
            // Already complete (templates changed to fewer parts): done.
            store::record_part(&self.db, row.id, row.parts_sent, true, now).await?;
            return Ok(Outcome::Sent {
                id: row.id,
                part: row.parts_sent,
                done: true,
            });
        };
        self.limiter.record(row.chat_id, now);
        let result = match part {
            Part::Text(t) => self.client.send_message(row.chat_id, t).await,
            Part::Photo(png, caption) => {
                self.client
                    .send_photo(row.chat_id, png.clone(), caption)
                    .await
            }
        };
        match result {
            Ok(_) => {
                let done = idx + 1 >= parts.len();
                store::record_part(&self.db, row.id, idx as i64 + 1, done, self.clock.now_ms())
                    .await?;
                if done {
                    metrics::counter!("tillgate_alerts_sent_total", "kind" => row.kind.as_str())
                        .increment(1);
                }
                Ok(Outcome::Sent {
                    id: row.id,
                    part: idx as i64 + 1,
                    done,
                })
            }
            Err(TgError::Migrated(to)) => {
                tracing::warn!(
                    from = row.chat_id,
                    to,
                    "Telegram chat migrated; following it"
                );
                store::migrate_chat(&self.db, row.chat_id, to).await?;
                Ok(Outcome::Migrated {
                    from: row.chat_id,
                    to,
                })
            }
            Err(e) => self.failed(&row, now, e).await,
        }
    }

    /// Records a failed attempt: retried with backoff (a 429's
    /// `retry_after` as the floor, and the chat blocked until then), or
    /// given up when Telegram refused the request itself.
    async fn failed(
        &mut self,
        row: &PendingRow,
        now: i64,
        e: TgError,
    ) -> Result<Outcome, StoreError> {
        let msg = e.to_string();
        let attempts = (row.attempts.max(0) as u32).saturating_add(1);
        let next = match &e {
            TgError::RetryAfter(d) => self.retry.after_failure(attempts, now, Some(*d)),
            TgError::Transient(_) => self.retry.after_failure(attempts, now, None),
            TgError::Rejected { .. } | TgError::Migrated(_) => Next::GiveUp,
        };
        let (next_at, give_up) = match next {
            Next::RetryAt(t) => (t, false),
            Next::GiveUp => (now, true),
        };
        if matches!(e, TgError::RetryAfter(_)) {
            self.limiter.block(row.chat_id, next_at);
        }
        if give_up {
            tracing::error!(alert = row.id, chat = row.chat_id, error = %msg, "Telegram refused the alert; giving up on it");
        } else {
            tracing::warn!(alert = row.id, chat = row.chat_id, error = %msg, "alert delivery failed; will retry");
        }
        store::record_failure(&self.db, row.id, next_at, &msg, give_up).await?;
        Ok(Outcome::Failed {
            id: row.id,
            error: msg,
        })
    }
}

impl OutboxWorker for Sender {
    type Error = StoreError;

    async fn run_once(&mut self) -> Result<Step, StoreError> {
        if !self.refresh().await? {
            // No token yet: look again when the settings may have changed.
            return Ok(Step::Wait(crate::core::settings::CHECK_EVERY));
        }
        Ok(match self.send_one().await? {
            // A failure is recorded with its due time; the next step finds
            // the next row that may go (another chat's), or says when.
            Outcome::Sent { .. }
            | Outcome::Migrated { .. }
            | Outcome::Muted { .. }
            | Outcome::Failed { .. } => Step::Busy,
            Outcome::Idle => Step::Idle,
            Outcome::WaitUntil(t) => Step::WaitUntil(t),
        })
    }
}
