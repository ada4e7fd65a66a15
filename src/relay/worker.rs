//! One worker per destination: reads the log after the destination's cursor
//! and POSTs each matching event, strictly in log order.
//!
//! [`Worker::run_once`] is one step (a batch, or until the first failure);
//! [`Worker::run`] is the loop around it that sleeps for retries and wakes on
//! commits. Tests drive `run_once` directly.
//!
//! The cursor is stored at most every `flush_ms` while busy (and at once
//! when caught up, on a failure and at shutdown) instead of after every
//! delivery: one SQLite sync per delivery would cap relay at a few hundred
//! events per second. A crash can then re-send what was delivered since the
//! last flush; that is the at-least-once promise, and receivers dedupe on
//! `webhook-id`, which is the same on every send of an event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::destination::{Destination, Format};
use super::sign;
use super::store::{self, Flush, NewDead, NewLine, PauseChange};
use crate::core::bus::{Bus, NoticeKind, OperatorEvent};
use crate::core::clock::now_ms;
use crate::core::log::{self, Committed, LogEntry};
use crate::core::store::{Db, StoreError};

/// How one send went wrong.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Timeout, connection error, 5xx, 408, 429, 3xx: try again later.
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        line: String,
    },
    /// Another 4xx: the receiver refuses this body.
    Refused { status: u16, line: String },
    /// 410: the receiver says the endpoint is gone.
    Gone { line: String },
}

impl Failure {
    pub fn line(&self) -> &str {
        match self {
            Failure::Retryable { line, .. }
            | Failure::Refused { line, .. }
            | Failure::Gone { line } => line,
        }
    }
    fn status(&self) -> Option<i64> {
        match self {
            Failure::Retryable { status, .. } => status.map(i64::from),
            Failure::Refused { status, .. } => Some(i64::from(*status)),
            Failure::Gone { .. } => Some(410),
        }
    }
}

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

/// The webhook-id of the event at `offset`: the same on every send, so it is
/// the receiver's dedupe key.
pub fn webhook_id(offset: i64) -> String {
    format!("tg-{offset}")
}

/// The body sent for `e` in `format`.
pub fn body_for(e: &LogEntry, format: Format) -> Vec<u8> {
    match format {
        Format::Raw => e.body.to_vec(),
        Format::Json => {
            let event = e
                .event()
                .ok()
                .and_then(|ev| serde_json::to_value(&*ev).ok());
            let v = serde_json::json!({
                "offset": e.offset,
                "received_at": crate::core::clock::ms_to_rfc3339(e.received_at),
                "guid": e.stream_guid,
                "seqnumber": e.seqnumber,
                "situation": e.situation,
                "restcode": e.rest_code,
                "event_time": e.event_time,
                "shift_num": e.shift_num,
                "order_guid": e.order_guid,
                "event": event,
            });
            serde_json::to_vec(&v).unwrap_or_default()
        }
    }
}

/// The shared delivery client: keep-alive pool, no redirects (a redirect to
/// an internal address would bypass the SSRF guard; Standard Webhooks treats
/// 3xx as a failure anyway), and the guarded resolver.
pub fn client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .dns_resolver(super::destination::GuardedResolver { allow_private })
        .user_agent(concat!("tillgate-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends one event once. Lines are written in the r_keeper driver's words
/// (`HTTP: Post error: ...`) so people who read its logs recognise them.
pub async fn send(
    client: &reqwest::Client,
    dest: &Destination,
    e: &LogEntry,
) -> Result<(), Failure> {
    let body = body_for(e, dest.format);
    let id = webhook_id(e.offset);
    let ts = now_ms() / 1000;
    let mut req = client
        .post(dest.url.clone())
        .timeout(dest.timeout)
        .header(
            CONTENT_TYPE,
            match dest.format {
                Format::Raw => "application/xml",
                Format::Json => "application/json",
            },
        )
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = &dest.secret {
        req = req.header("webhook-signature", sign::signature(key, &id, ts, &body));
    }
    for (name, value) in &dest.headers {
        if let Ok(v) = HeaderValue::from_str(value.expose_secret()) {
            req = req.header(name.clone(), v);
        }
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(err) => {
            let line = if err.is_timeout() {
                format!(
                    "HTTP: Post error: no answer within {} ms",
                    dest.timeout.as_millis()
                )
            } else {
                format!("HTTP: Post error: {}", error_chain(err.without_url()))
            };
            return Err(Failure::Retryable {
                status: None,
                retry_after: None,
                line,
            });
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // Read the body to the end so the connection goes back to the pool.
    let text = match tokio::time::timeout(dest.timeout, resp.bytes()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned(),
        _ => String::new(),
    };
    if status.is_success() {
        return Ok(());
    }
    let mut line = format!("HTTP: Post error: {status}");
    let text = text.trim();
    if !text.is_empty() {
        line.push_str(": ");
        line.push_str(&text.replace(['\r', '\n'], " "));
    }
    let code = status.as_u16();
    Err(match status {
        StatusCode::GONE => Failure::Gone { line },
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Failure::Retryable {
            status: Some(code),
            retry_after,
            line,
        },
        s if s.is_client_error() => Failure::Refused { status: code, line },
        _ => Failure::Retryable {
            status: Some(code),
            retry_after,
            line,
        },
    })
}

fn error_chain(e: reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = when.timestamp_millis() - now_ms();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// Longest wait a `Retry-After` can impose: past this the pause-after-failing
/// rule is the better judge.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
        let cursor = log::cursor(&db, &store::cursor_name(&dest.id)).await?;
        Ok(Worker {
            dest,
            db,
            client,
            settings,
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
        })
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    fn label(&self) -> String {
        self.dest.id.clone()
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
                        metrics::counter!("tillgate_relay_delivered_total", "destination" => self.label())
                            .increment(1);
                        self.note_delivered(e.offset, &mut pending);
                    }
                    Some(Err(f)) => {
                        metrics::counter!("tillgate_relay_failed_attempts_total", "destination" => self.label())
                            .increment(1);
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
            if started.elapsed() >= self.settings.flush_interval {
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
                if self.dest.on_client_error == super::destination::OnClientError::DeadLetter =>
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
                metrics::counter!("tillgate_relay_dead_letters_total", "destination" => self.label())
                    .increment(1);
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
                let after = self.backoff(self.attempt, retry_after);
                Some(Outcome::Retry {
                    after,
                    attempt: self.attempt,
                })
            }
        }
    }

    /// The wait before attempt `attempt + 1`: the schedule's step with
    /// ±25 % jitter (so many destinations failing at once do not retry in
    /// lockstep), and never shorter than the receiver's `Retry-After`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let sched = &self.settings.retry_schedule;
        let step = sched
            .get((attempt as usize).saturating_sub(1))
            .or(sched.last())
            .copied()
            .unwrap_or(Duration::from_secs(1));
        let jitter = rand::rng().random_range(0.75..1.25);
        let wait = step.mul_f64(jitter);
        match retry_after {
            Some(ra) => wait.max(ra.min(MAX_RETRY_AFTER)),
            None => wait,
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
        metrics::gauge!("tillgate_relay_paused", "destination" => self.label()).set(1.0);
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
        metrics::gauge!("tillgate_relay_lag_events", "destination" => self.label())
            .set((head - self.cursor).max(0) as f64);
        let secs = oldest_pending_received_at
            .map(|t| ((now_ms() - t).max(0) as f64) / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("tillgate_relay_lag_seconds", "destination" => self.label()).set(secs);
    }

    /// The loop: steps, sleeps for retries, waits for commits; stores the
    /// cursor and returns when `stop` fires.
    pub async fn run(mut self, stop: CancellationToken) {
        metrics::gauge!("tillgate_relay_paused", "destination" => self.label())
            .set(if self.paused.is_some() { 1.0 } else { 0.0 });
        let (saver, positions) = watch::channel(self.stored);
        self.saver = Some(saver);
        let saving = tokio::spawn(save_cursors(
            self.db.clone(),
            self.dest.id.clone(),
            positions,
        ));
        let mut error_pause = Duration::from_millis(100);
        loop {
            let step = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.run_once() => r,
            };
            match step {
                Ok(Outcome::Progressed { .. }) => {
                    error_pause = Duration::from_millis(100);
                }
                Ok(Outcome::Idle) => {
                    let flush_in = self.unstored_for();
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(flush_in.unwrap_or(Duration::MAX)), if flush_in.is_some() => {
                            if let Err(e) = self.flush(Flush::default(), true).await {
                                tracing::error!(destination = %self.dest.id, error = %e, "could not store the relay cursor; will retry");
                            }
                        }
                        r = self.committed.changed() => if r.is_err() {
                            // The log writer has stopped: nothing new will come.
                            stop.cancelled().await;
                            break;
                        },
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
                Ok(Outcome::Retry { after, .. }) => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(after) => {}
                    }
                }
                Ok(Outcome::Paused { .. }) => {
                    stop.cancelled().await;
                    break;
                }
                Err(e) => {
                    tracing::error!(destination = %self.dest.id, error = %e, "relay step failed; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(error_pause) => {}
                    }
                    error_pause = (error_pause * 2).min(Duration::from_secs(30));
                }
            }
        }
        // The saver ends once its sender is gone; the last position is then
        // stored here, after it, so an older one can never overwrite it.
        self.saver = None;
        let _ = saving.await;
        let last = Flush {
            cursor: Some(self.cursor),
            ..Flush::default()
        };
        if let Err(e) = store::flush(&self.db, &self.dest.id, &last).await {
            tracing::error!(destination = %self.dest.id, error = %e, "could not store the relay cursor at stop; some events will be sent again");
        }
    }
}

/// Stores a running worker's cursor whenever it moved, off the delivery
/// path. A failed store is retried with the newest position; a crash before
/// it lands only means those events are delivered again (at-least-once,
/// with the same `webhook-id`).
async fn save_cursors(db: Db, id: String, mut positions: watch::Receiver<i64>) {
    let name = store::cursor_name(&id);
    while positions.changed().await.is_ok() {
        let position = *positions.borrow_and_update();
        let saved = async {
            let mut tx = db.write.begin().await?;
            log::set_cursor(&mut tx, &name, position).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = saved {
            tracing::warn!(destination = %id, error = %e, "could not store the relay cursor; will retry");
            tokio::time::sleep(Duration::from_millis(200)).await;
            positions.mark_changed();
        }
    }
}
