//! Delivery from the outbox to Telegram, one message per step.
//!
//! [`Sender::run_once`] sends at most one Telegram message (one part of one
//! alert) and records the result before returning, so tests drive it step by
//! step with a [`ManualClock`] and never sleep.
//!
//! Exactly-once and its limit: Telegram has no idempotency key. A part is
//! recorded as sent by one UPDATE right after Telegram accepts it. If the
//! process dies between Telegram's answer and that UPDATE, that one part is
//! sent again after the restart; nothing else is (every other part is either
//! recorded or was never sent). A clean shutdown finishes the in-flight
//! request and records it, so restarts never duplicate. Nothing is ever lost:
//! a row stays pending until Telegram accepted all its parts, whatever the
//! outage.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, OutboxRow};
use super::payload::Alert;
use super::report;
use super::settings::Limits;
use super::telegram::{Client, TgError};
use super::text::{self, Texts};
use crate::core::store::{Db, StoreError};

/// tillgate's clock for delivery decisions; tests use [`ManualClock`].
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::core::clock::now_ms()
    }
}

/// A clock that only moves when told to.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Telegram's limits, kept in memory: after a restart the first messages
/// may come a little fast, and Telegram's 429 covers that.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    per_chat: HashMap<i64, VecDeque<i64>>,
    global: VecDeque<i64>,
    blocked_until: HashMap<i64, i64>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            limits,
            per_chat: HashMap::new(),
            global: VecDeque::new(),
            blocked_until: HashMap::new(),
        }
    }

    /// `Ok` if a message to `chat` may go now, else the time it may.
    pub fn check(&mut self, chat: i64, now: i64) -> Result<(), i64> {
        let mut wait = now;
        if let Some(&until) = self.blocked_until.get(&chat) {
            wait = wait.max(until);
        }
        let interval = self.limits.per_chat_interval.as_millis() as i64;
        let sent = self.per_chat.entry(chat).or_default();
        while sent.front().is_some_and(|&t| t <= now - 60_000) {
            sent.pop_front();
        }
        if let Some(&last) = sent.back() {
            wait = wait.max(last + interval);
        }
        if chat < 0 && sent.len() >= self.limits.group_per_minute as usize {
            let idx = sent.len() - self.limits.group_per_minute as usize;
            wait = wait.max(sent[idx] + 60_000);
        }
        while self.global.front().is_some_and(|&t| t <= now - 1000) {
            self.global.pop_front();
        }
        if self.global.len() >= self.limits.global_per_second as usize {
            let idx = self.global.len() - self.limits.global_per_second as usize;
            wait = wait.max(self.global[idx] + 1000);
        }
        if wait > now { Err(wait) } else { Ok(()) }
    }

    pub fn record(&mut self, chat: i64, now: i64) {
        self.per_chat.entry(chat).or_default().push_back(now);
        self.global.push_back(now);
    }

    /// Telegram said 429 for `chat`: nothing goes there before `until`.
    pub fn block(&mut self, chat: i64, until: i64) {
        self.blocked_until.insert(chat, until);
    }
}

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

pub struct Sender {
    pub db: Db,
    pub client: Client,
    pub texts: Arc<Texts>,
    pub clock: Arc<dyn Clock>,
    pub limiter: RateLimiter,
    pub max_backoff: Duration,
}

impl Sender {
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

    pub async fn run_once(&mut self) -> Result<Outcome, StoreError> {
        let now = self.clock.now_ms();
        let rows = outbox::pending(&self.db, 200).await?;
        let pending = if rows.len() < 200 {
            rows.len() as i64
        } else {
            outbox::count_pending(&self.db).await?
        };
        metrics::gauge!("tillgate_alerts_pending").set(pending as f64);
        if rows.is_empty() {
            return Ok(Outcome::Idle);
        }
        let mut blocked: HashSet<i64> = HashSet::new();
        let mut wake = i64::MAX;
        let mut chosen: Option<OutboxRow> = None;
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
            chosen = Some(row);
            break;
        }
        let Some(row) = chosen else {
            return Ok(Outcome::WaitUntil(wake));
        };
        if !matches!(row.kind.as_str(), "operator" | "shift_report")
            && row.parts_sent == 0
            && outbox::muted_until(&self.db, row.chat_id).await? > now
        {
            sqlx::query("UPDATE alerts_outbox SET state = 'muted' WHERE id = $1")
                .bind(row.id)
                .execute(&self.db.write)
                .await?;
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
                outbox::record_failure(&self.db, row.id, now, &e, true).await?;
                return Ok(Outcome::Failed {
                    id: row.id,
                    error: e,
                });
            }
        };
        let idx = row.parts_sent.max(0) as usize;
        let Some(part) = parts.get(idx) else {
            // Already complete (templates changed to fewer parts): done.
            outbox::record_part(&self.db, row.id, row.parts_sent, true, now).await?;
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
                outbox::record_part(&self.db, row.id, idx as i64 + 1, done, self.clock.now_ms())
                    .await?;
                if done {
                    metrics::counter!("tillgate_alerts_sent_total", "kind" => row.kind.clone())
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
                outbox::migrate_chat(&self.db, row.chat_id, to).await?;
                Ok(Outcome::Migrated {
                    from: row.chat_id,
                    to,
                })
            }
            Err(e) => {
                let msg = e.to_string();
                let (next, give_up) = match &e {
                    TgError::RetryAfter(d) => {
                        let until = now + d.as_millis() as i64;
                        self.limiter.block(row.chat_id, until);
                        (until, false)
                    }
                    TgError::Transient(_) => {
                        let exp = row.attempts.clamp(0, 20) as u32;
                        let backoff = Duration::from_secs(1)
                            .saturating_mul(2u32.saturating_pow(exp))
                            .min(self.max_backoff);
                        (now + backoff.as_millis() as i64, false)
                    }
                    TgError::Rejected { .. } => (now, true),
                    TgError::Migrated(_) => unreachable!("handled above"),
                };
                if give_up {
                    tracing::error!(alert = row.id, chat = row.chat_id, error = %msg, "Telegram refused the alert; giving up on it");
                } else {
                    tracing::warn!(alert = row.id, chat = row.chat_id, error = %msg, "alert delivery failed; will retry");
                }
                outbox::record_failure(&self.db, row.id, next, &msg, give_up).await?;
                Ok(Outcome::Failed {
                    id: row.id,
                    error: msg,
                })
            }
        }
    }

    /// Runs until `shutdown`; `wake` is notified when new rows are queued.
    pub async fn run(mut self, wake: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let pause = match self.run_once().await {
                Ok(Outcome::Sent { .. } | Outcome::Migrated { .. } | Outcome::Muted { .. }) => {
                    continue;
                }
                Ok(Outcome::Failed { .. }) => Duration::ZERO,
                Ok(Outcome::Idle) => Duration::from_secs(30),
                Ok(Outcome::WaitUntil(t)) => {
                    Duration::from_millis((t - self.clock.now_ms()).clamp(1, 30_000) as u64)
                }
                Err(e) => {
                    tracing::error!(error = %e, "alert outbox unreadable; retrying");
                    Duration::from_secs(1)
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_chat_interval: Duration::from_millis(1000),
            group_per_minute: 20,
            global_per_second: 30,
            max_backoff: Duration::from_secs(300),
        }
    }

    #[test]
    fn per_chat_interval_and_group_minute() {
        let mut l = RateLimiter::new(limits());
        let mut now = 0;
        // A group: 20 messages, one per second, then the 21st waits for the
        // first to leave the one-minute window.
        for i in 0..20 {
            assert_eq!(l.check(-7, now), Ok(()));
            l.record(-7, now);
            let next = if i < 19 { now + 1000 } else { 60_000 };
            assert_eq!(l.check(-7, now), Err(next));
            now += 1000;
        }
        assert_eq!(l.check(-7, now), Err(60_000));
        assert_eq!(l.check(-7, 60_000), Ok(()));
        // A private chat has no per-minute cap.
        let mut now = 0;
        for _ in 0..30 {
            assert_eq!(l.check(5, now), Ok(()));
            l.record(5, now);
            now += 1000;
        }
    }

    #[test]
    fn global_thirty_per_second_and_429_block() {
        let mut l = RateLimiter::new(limits());
        for chat in 0..30 {
            assert_eq!(l.check(chat, 100), Ok(()));
            l.record(chat, 100);
        }
        assert_eq!(l.check(99, 100), Err(1100));
        assert_eq!(l.check(99, 1100), Ok(()));
        l.block(99, 9000);
        assert_eq!(l.check(99, 1100), Err(9000));
        assert_eq!(l.check(98, 1100), Ok(()));
    }
}
