//! One worker per destination: reads the log after the destination's cursor
//! and POSTs each matching event, strictly in log order.
//!
//! [`Worker::run_once`] is one step (a batch, or until the first failure);
//! [`Worker::run`] runs it on the core's outbox loop ([`outbox::run`]),
//! which rests for retries, wakes at once when the log commits past the
//! cursor, and stops at a clean point. Tests drive `run_once` directly.
//!
//! The cursor is stored at most every `flush_ms` while busy (and at once
//! when caught up, on a failure and at shutdown) instead of after every
//! delivery: one SQLite sync per delivery would cap relay at a few hundred
//! events per second. A crash can then re-send what was delivered since the
//! last flush; that is the at-least-once promise, and receivers dedupe on
//! `webhook-id`, which is the same on every send of an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::destination::{Destination, OnClientError};
use super::metrics;
use super::send::{Failure, send};
use super::store::{self, Flush, NewDead, NewLine, PauseChange};
use crate::core::backoff::Backoff;
use crate::core::bus::{Bus, NoticeKind, OperatorEvent};
use crate::core::clock::{SharedClock, now_ms};
use crate::core::log::{self, Committed, LogEntry};
use crate::core::outbox::{self, LoopOptions, OutboxWorker, Step, Wake};
use crate::core::store::{Db, StoreError};

/// Longest idle rest without a commit: a safety net for a wake-up that was
/// missed.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing after the cursor.
    Idle,
    /// Went through (delivered, filtered out or dead-lettered) up to `cursor`.
    Progressed { delivered: usize, cursor: i64 },
    /// A send failed; try again after `after`.
    Retry { after: Duration, attempt: u32 },
    /// Paused (410, failing too long, or earlier): sends nothing until resumed.
    Paused { reason: String },
}

pub struct Worker {
    pub dest: Arc<Destination>,
    db: Db,
    client: reqwest::Client,
    settings: Arc<Settings>,
    bus: Bus,
    committed: watch::Receiver<Committed>,
    /// Last offset gone through, in memory.
    cursor: i64,
    /// Last offset stored.
    stored: i64,
    last_flush: Instant,
    paused: Option<String>,
    attempt: u32,
    failing_since: Option<Instant>,
    /// Deliveries not yet summed up in the delivery log.
    summary: Option<(usize, i64, i64)>,
    last_summary: Option<Instant>,
    /// While `run` runs: where cursor-only progress goes to be stored in
    /// the background (see [`save_cursors`]).
    saver: Option<watch::Sender<i64>>,
    /// The retry schedule with ±25 % jitter, so many destinations failing
    /// at once do not retry in lockstep.
    backoff: Backoff,
    /// Fires when `run` is told to stop: a step then ends after the window
    /// of sends in flight, and records it.
    stop: CancellationToken,
}

impl Worker {
    pub async fn new(
        dest: Arc<Destination>,
        db: Db,
        client: reqwest::Client,
        settings: Arc<Settings>,
        bus: Bus,
        committed: watch::Receiver<Committed>,
        paused: Option<String>,
    ) -> Result<Worker, StoreError> {
        let cursor = store::cursor(&db, &dest.id).await?;
        Ok(Worker {
            dest,
            db,
            client,
            bus,
            committed,
            cursor,
            stored: cursor,
            last_flush: Instant::now(),
            paused,
            attempt: 0,
            failing_since: None,
            summary: None,
            last_summary: None,
            saver: None,
            backoff: settings.backoff(),
            stop: CancellationToken::new(),
            settings,
        })
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// One step: send what follows the cursor until a batch is done, a send
    /// fails or `flush_ms` has passed; then store progress if due.
    pub async fn run_once(&mut self) -> Result<Outcome, StoreError> {
        if let Some(reason) = &self.paused {
            return Ok(Outcome::Paused {
                reason: reason.clone(),
            });
        }
        let entries = log::read_after(&self.db, self.cursor, self.settings.batch, true).await?;
        if entries.is_empty() {
            // Caught up: store the cursor, but not more often than the
            // flush interval (a trickle of events would otherwise cost a
            // sync per event and per destination, taken from ingest's one
            // SQLite writer). `run` stores it when the interval is over.
            self.flush(Flush::default(), false).await?;
            self.set_lag(None);
            return Ok(Outcome::Idle);
        }
        let started = Instant::now();
        let mut pending = Flush::default();
        let mut delivered = 0usize;
        let mut stop: Option<Outcome> = None;
        let n = self.dest.in_flight.max(1);
        let mut i = 0;
        'outer: while i < entries.len() {
            // A window: up to `n` matching events (and the filtered-out
            // ones between them), sent at once.
            let mut j = i;
            let mut matching = 0;
            while j < entries.len() && matching < n {
                if self.wants(&entries[j]) {
                    matching += 1;
                }
                j += 1;
            }
            let window = &entries[i..j];
            let results: Vec<Option<Result<(), Failure>>> = if matching == 1 {
                let mut v = Vec::with_capacity(window.len());
                for e in window {
                    v.push(if self.wants(e) {
                        Some(send(&self.client, &self.dest, e).await)
                    } else {
                        None
                    });
                }
                v
            } else {
                futures::future::join_all(window.iter().map(|e| {
                    let wanted = self.wants(e);
                    let client = &self.client;
                    let dest = &self.dest;
                    async move {
                        if wanted {
                            Some(send(client, dest, e).await)
                        } else {
                            None
                        }
                    }
                }))
                .await
            };
            for (e, r) in window.iter().zip(results) {
                match r {
                    None => self.cursor = e.offset,
                    Some(Ok(())) => {
                        self.cursor = e.offset;
                        delivered += 1;
                        metrics::delivered(&self.dest.id).increment(1);
                        self.note_delivered(e.offset, &mut pending);
                    }
                    Some(Err(f)) => {
                        metrics::failed_attempts(&self.dest.id).increment(1);
                        match self.on_failure(e, f, &mut pending) {
                            Some(o) => {
                                stop = Some(o);
                                break 'outer;
                            }
                            None => self.cursor = e.offset,
                        }
                    }
                }
            }
            i = j;
            if started.elapsed() >= self.settings.flush_interval || self.stop.is_cancelled() {
                break;
            }
        }
        if let Err(e) = self.flush(pending, false).await {
            // The dead letters and lines of this step were not stored: go
            // back to the stored cursor and send those events again rather
            // than lose a dead letter (at-least-once).
            self.cursor = self.stored;
            return Err(e);
        }
        let next = entries.iter().find(|e| e.offset > self.cursor);
        self.set_lag(next.map(|e| e.received_at));
        if next.is_none() && self.committed.borrow().head > self.cursor {
            // The batch was full; the next event's age needs one more look.
            if let Some(e) = log::read_after(&self.db, self.cursor, 1, false)
                .await?
                .first()
            {
                self.set_lag(Some(e.received_at));
            }
        }
        Ok(stop.unwrap_or(Outcome::Progressed {
            delivered,
            cursor: self.cursor,
        }))
    }

    fn wants(&self, e: &LogEntry) -> bool {
        self.dest
            .filter
            .matches(e.situation, e.rest_code.as_deref())
            && (self.dest.filter.backfilled || !crate::core::log::is_backfilled(&e.stream_guid))
    }

    fn note_delivered(&mut self, offset: i64, pending: &mut Flush) {
        if self.failing_since.take().is_some() {
            pending.lines.push(NewLine::now(
                "recovered",
                Some(offset),
                None,
                format!(
                    "HTTP: Post OK after {} failed attempts: delivering again",
                    self.attempt
                ),
            ));
        }
        self.attempt = 0;
        let s = self.summary.get_or_insert((0, offset, offset));
        s.0 += 1;
        s.2 = offset;
        // Successes are summed up at most once a minute: a line per event
        // would be a second write per delivery.
        let due = self
            .last_summary
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due && let Some((count, from, to)) = self.summary.take() {
            pending.lines.push(NewLine::now(
                "delivered",
                Some(to),
                None,
                format!("HTTP: Post OK: {count} events (offsets {from}..{to})"),
            ));
            self.last_summary = Some(Instant::now());
        }
    }

    /// Decides what a failed send means. `None`: the event is done with
    /// (dead-lettered), go on; `Some`: stop this step.
    fn on_failure(&mut self, e: &LogEntry, f: Failure, pending: &mut Flush) -> Option<Outcome> {
        let line = f.line().to_string();
        let status = f.status();
        let retry_after = match &f {
            Failure::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        };
        match f {
            Failure::Refused { status: code, .. }
                if self.dest.on_client_error == OnClientError::DeadLetter =>
            {
                pending.lines.push(NewLine::now(
                    "dead_letter",
                    Some(e.offset),
                    status,
                    format!("{line} (moved to the dead-letter list)"),
                ));
                pending.dead.push(NewDead {
                    offset: e.offset,
                    status: Some(i64::from(code)),
                    reason: line,
                });
                metrics::dead_letters(&self.dest.id).increment(1);
                None
            }
            Failure::Gone { .. } => {
                pending
                    .lines
                    .push(NewLine::now("failed", Some(e.offset), status, line.clone()));
                let reason = format!("the receiver answered 410 Gone: {line}");
                Some(self.pause(reason, pending))
            }
            Failure::Retryable { .. } | Failure::Refused { .. } => {
                self.attempt += 1;
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                pending
                    .lines
                    .push(NewLine::now("failed", Some(e.offset), status, line.clone()));
                tracing::warn!(destination = %self.dest.id, offset = e.offset, attempt = self.attempt, "{line}");
                if since.elapsed() >= self.settings.pause_after {
                    let reason = format!(
                        "failing for more than {} s (last: {line})",
                        self.settings.pause_after.as_secs()
                    );
                    return Some(self.pause(reason, pending));
                }
                let after = self.backoff.delay(self.attempt, retry_after);
                Some(Outcome::Retry {
                    after,
                    attempt: self.attempt,
                })
            }
        }
    }

    fn pause(&mut self, reason: String, pending: &mut Flush) -> Outcome {
        tracing::warn!(destination = %self.dest.id, url = %self.dest.display_url(), %reason, "relay destination paused");
        pending.lines.push(NewLine::now(
            "paused",
            None,
            None,
            format!("paused: {reason}"),
        ));
        pending.pause = Some(PauseChange::Pause(reason.clone()));
        metrics::set_paused(&self.dest.id, true);
        self.bus.raise(OperatorEvent {
            kind: NoticeKind::RelayDestinationPaused,
            rest_code: None,
            text: format!(
                "Relay destination {} ({}) is paused: {reason}. Events for it are kept; resume it with POST /api/destinations/{}/resume.",
                self.dest.id,
                self.dest.display_url(),
                self.dest.id
            ),
        });
        self.paused = Some(reason.clone());
        self.failing_since = None;
        self.attempt = 0;
        Outcome::Paused { reason }
    }

    /// Stores the cursor with `pending` when something needs storing now or
    /// the flush interval has passed; `force` stores any cursor movement.
    pub async fn flush(&mut self, mut pending: Flush, force: bool) -> Result<(), StoreError> {
        let moved = self.cursor != self.stored;
        let due = force
            || !pending.is_empty()
            || self.last_flush.elapsed() >= self.settings.flush_interval;
        if !(moved && due) && pending.is_empty() {
            return Ok(());
        }
        match &self.saver {
            // Lines, dead letters and pauses are stored here and now: the
            // cursor must not pass a dead letter before it is stored. The
            // cursor itself goes to the saver afterwards, so delivery never
            // waits for the shared write lock just to note its progress.
            Some(saver) if moved && !force => {
                store::flush(&self.db, &self.dest.id, &pending).await?;
                saver.send_replace(self.cursor);
            }
            _ => {
                if moved {
                    pending.cursor = Some(self.cursor);
                }
                store::flush(&self.db, &self.dest.id, &pending).await?;
            }
        }
        self.stored = self.cursor;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// When the cursor has moved past what is stored: how long until the
    /// flush interval is over.
    fn unstored_for(&self) -> Option<Duration> {
        (self.cursor != self.stored).then(|| {
            self.settings
                .flush_interval
                .saturating_sub(self.last_flush.elapsed())
        })
    }

    fn set_lag(&self, oldest_pending_received_at: Option<i64>) {
        let head = self.committed.borrow().head;
        metrics::lag_events(&self.dest.id).set((head - self.cursor).max(0) as f64);
        let secs = oldest_pending_received_at
            .map(|t| ((now_ms() - t).max(0) as f64) / 1000.0)
            .unwrap_or(0.0);
        metrics::lag_seconds(&self.dest.id).set(secs);
    }

    /// Runs the worker on the core's outbox loop until `stop` fires, then
    /// stores the cursor where it stands. The destination's series are
    /// registered first, so `/metrics` shows them before any delivery.
    pub async fn run(mut self, stop: CancellationToken, clock: SharedClock) {
        let id = self.dest.id.clone();
        metrics::register(&id, self.paused.is_some());
        let (saver, positions) = watch::channel(self.stored);
        self.saver = Some(saver);
        let saving = tokio::spawn(save_cursors(self.db.clone(), id.clone(), positions));
        let wake = Wake::new();
        let (idle, idle_at) = watch::channel(None);
        tokio::spawn(wake_on_commit(
            self.committed.clone(),
            idle_at,
            wake.clone(),
        ));
        let position = Arc::new(AtomicI64::new(self.cursor));
        let db = self.db.clone();
        self.stop = stop.clone();
        let driven = Driven {
            worker: self,
            idle,
            retry_at: None,
            flush_when_due: false,
            position: position.clone(),
        };
        let options = LoopOptions {
            idle_poll: IDLE_POLL,
            ..LoopOptions::default()
        };
        outbox::run(driven, &store::cursor_name(&id), wake, clock, options, stop).await;
        // The worker is gone, and with it the saver's sender: the saver
        // ends, and the last position is stored here, after it, so an older
        // one can never overwrite it.
        let _ = saving.await;
        let last = Flush {
            cursor: Some(position.load(Ordering::Acquire)),
            ..Flush::default()
        };
        if let Err(e) = store::flush(&db, &id, &last).await {
            tracing::error!(destination = %id, error = %e, "could not store the relay cursor at stop; some events will be sent again");
        }
    }
}

/// The worker as the core's outbox loop drives it: each [`Outcome`] becomes
/// a [`Step`]. A retry keeps its whole wait however early the loop wakes; an
/// idle rest is cut short by a commit past the cursor ([`wake_on_commit`])
/// and, when the cursor moved, ends when the flush interval is over so the
/// cursor is stored then.
struct Driven {
    worker: Worker,
    /// `Some(cursor)` while resting idle at `cursor`, `None` otherwise:
    /// what [`wake_on_commit`] watches.
    idle: watch::Sender<Option<i64>>,
    /// No send before this (a retry's wait).
    retry_at: Option<tokio::time::Instant>,
    /// The last rest was idle with an unstored cursor.
    flush_when_due: bool,
    /// The worker's cursor after each step, for `run` to store at stop.
    position: Arc<AtomicI64>,
}

impl OutboxWorker for Driven {
    type Error = StoreError;

    async fn run_once(&mut self) -> Result<Step, StoreError> {
        self.idle.send_replace(None);
        if let Some(at) = self.retry_at {
            let now = tokio::time::Instant::now();
            if now < at {
                return Ok(Step::Wait(at - now));
            }
            self.retry_at = None;
        }
        let w = &mut self.worker;
        if std::mem::take(&mut self.flush_when_due) && w.unstored_for() == Some(Duration::ZERO) {
            // Idle since the cursor last moved, for the whole flush
            // interval: store it now, in the foreground.
            w.flush(Flush::default(), true).await?;
        }
        let outcome = w.run_once().await;
        self.position.store(w.cursor, Ordering::Release);
        Ok(match outcome? {
            Outcome::Progressed { .. } => Step::Busy,
            Outcome::Idle => {
                self.idle.send_replace(Some(w.cursor));
                match w.unstored_for() {
                    Some(left) => {
                        self.flush_when_due = true;
                        Step::Wait(left)
                    }
                    None => Step::Idle,
                }
            }
            Outcome::Retry { after, .. } => {
                self.retry_at = Some(tokio::time::Instant::now() + after);
                Step::Wait(after)
            }
            // Until resumed: resuming starts a new worker.
            Outcome::Paused { .. } => Step::Idle,
        })
    }

    /// Clustered: another instance delivered meanwhile; carry on from the
    /// cursor it stored (what it sent after that goes again, with the same
    /// `webhook-id`, as after a crash).
    async fn on_lead(&mut self) -> Result<(), StoreError> {
        let w = &mut self.worker;
        let c = store::cursor(&w.db, &w.dest.id).await?;
        w.cursor = c;
        w.stored = c;
        self.position.store(c, Ordering::Release);
        Ok(())
    }
}

/// Wakes the loop as soon as the log commits past the cursor the worker
/// rests idle at (relay's added latency is this wake-up). Only idle rests
/// are woken, once each: a retry's wait is not cut short by new events.
/// Ends when the worker is gone or the log writer has stopped.
async fn wake_on_commit(
    mut committed: watch::Receiver<Committed>,
    mut idle_at: watch::Receiver<Option<i64>>,
    wake: Wake,
) {
    loop {
        let at = *idle_at.borrow_and_update();
        let Some(cursor) = at else {
            if idle_at.changed().await.is_err() {
                return;
            }
            continue;
        };
        let passed = async { committed.wait_for(|c| c.head > cursor).await.is_ok() };
        tokio::select! {
            passed = passed => {
                if !passed {
                    return;
                }
                wake.notify();
                if idle_at.changed().await.is_err() {
                    return;
                }
            }
            r = idle_at.changed() => if r.is_err() {
                return;
            },
        }
    }
}

/// Stores a running worker's cursor whenever it moved, off the delivery
/// path. A failed store is retried with the newest position; a crash before
/// it lands only means those events are delivered again (at-least-once,
/// with the same `webhook-id`).
async fn save_cursors(db: Db, id: String, mut positions: watch::Receiver<i64>) {
    let backoff =
        crate::core::backoff::Backoff::doubling(Duration::from_millis(200), Duration::from_secs(5));
    let mut failures = 0u32;
    while positions.changed().await.is_ok() {
        let position = *positions.borrow_and_update();
        match store::set_cursor(&db, &id, position).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(destination = %id, error = %e, "could not store the relay cursor; will retry");
                tokio::time::sleep(backoff.delay(failures, None)).await;
                positions.mark_changed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(n: i64) -> Committed {
        Committed {
            head: n,
            ..Committed::default()
        }
    }

    /// Commits wake an idle rest at once, once; a busy worker or one
    /// waiting for a retry is left alone.
    #[tokio::test]
    async fn commits_wake_only_an_idle_rest() {
        let (commit, committed) = watch::channel(head(0));
        let (idle, idle_at) = watch::channel(None);
        let wake = Wake::new();
        let task = tokio::spawn(wake_on_commit(committed, idle_at, wake.clone()));
        let woken = |ms| tokio::time::timeout(Duration::from_millis(ms), wake.notified());
        commit.send_replace(head(1));
        assert!(woken(50).await.is_err(), "not idle: no wake");
        idle.send_replace(Some(1));
        assert!(woken(50).await.is_err(), "nothing past the cursor yet");
        commit.send_replace(head(2));
        assert!(woken(1000).await.is_ok(), "a commit past the cursor wakes");
        commit.send_replace(head(3));
        assert!(woken(50).await.is_err(), "one wake per rest");
        idle.send_replace(Some(2));
        assert!(
            woken(1000).await.is_ok(),
            "resting behind the head: woken at once"
        );
        drop(idle);
        task.await.unwrap();
    }
}
