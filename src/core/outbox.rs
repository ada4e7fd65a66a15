//! The one outbox worker: what every feature that talks to the outside world
//! (relay deliveries, Telegram alerts, guest SMS, bot polling) runs on.
//!
//! A feature's consumer writes what must be sent into its outbox table in the
//! same transaction that moves its cursor; a worker then delivers from the
//! outbox. The worker is a loop around the feature's
//! [`OutboxWorker::run_once`], which does one step and says what it did
//! ([`Step`]); the loop (here, once) decides how long to sleep, wakes early
//! when the feature is told new rows were queued ([`Wake`]), backs off when a
//! step fails, and stops at a clean point when the one cancellation token
//! fires (the step in flight is finished and recorded first). Tests call
//! `run_once` directly with a manual clock and never sleep.
//!
//! The rows themselves: every outbox table has `id`, `state`, `attempts` and
//! `next_attempt_at` (clock ms); [`OutboxState`] names the states and
//! [`RetryPolicy`] decides when a failed row goes again or is given up.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::clock::SharedClock;

/// Where an outbox row is in its life. Stored as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its `next_attempt_at`.
    Pending,
    /// Handed to the outside service; the answer is not recorded yet. After
    /// a crash such rows are put back to `pending` (sent at least once).
    Sending,
    /// The outside service accepted it.
    Sent,
    /// Given up on: refused, or out of attempts. Kept for the operator.
    Failed,
    /// Not sent because its recipient asked for silence.
    Muted,
}

impl OutboxState {
    pub const ALL: [OutboxState; 5] = [
        OutboxState::Pending,
        OutboxState::Sending,
        OutboxState::Sent,
        OutboxState::Failed,
        OutboxState::Muted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Muted => "muted",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outbox state {0:?}: expected pending, sending, sent, failed or muted")]
pub struct UnknownState(pub String);

impl FromStr for OutboxState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboxState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// What to do with a row whose attempt just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Back to `pending`, due at this time (clock ms).
    RetryAt(i64),
    /// Out of attempts: `failed`.
    GiveUp,
}

/// When a failed row goes again: the backoff, and how many attempts a row
/// gets at most (`None`: until it succeeds, for things that must not be
/// lost, like an owner's alert).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub max_attempts: Option<u32>,
}

impl RetryPolicy {
    /// `attempts` counts the attempts made so far, the failed one included.
    pub fn after_failure(&self, attempts: u32, now_ms: i64, retry_after: Option<Duration>) -> Next {
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return Next::GiveUp;
        }
        Next::RetryAt(now_ms + self.backoff.delay_ms(attempts, retry_after))
    }
}

/// What one step of a worker did, which tells the loop how long to rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Did something: step again at once.
    Busy,
    /// Nothing to do: rest until woken (or the idle poll passes).
    Idle,
    /// Nothing may go before this time (clock ms): rest until then, or
    /// until woken.
    WaitUntil(i64),
    /// Rest this long (a retry), or until woken.
    Wait(Duration),
}

/// A worker the loop drives: one step at a time.
pub trait OutboxWorker: Send + 'static {
    type Error: fmt::Display + Send;
    /// One step: send what is due (or one part of it), record the results,
    /// and say what happened. Finishes and records a send it started even
    /// when shutdown is requested meanwhile.
    fn run_once(&mut self) -> impl Future<Output = Result<Step, Self::Error>> + Send;

    /// Clustered (PostgreSQL), called each time this instance starts
    /// leading the worker, before its first step: reload whatever another
    /// instance may have moved meanwhile (a cursor). Nothing by default.
    fn on_lead(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

/// Tells a worker that new rows were queued, so it does not sleep through
/// them. Cheap to clone; a notification before the worker rests is kept.
#[derive(Clone, Default, Debug)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn notify(&self) {
        self.0.notify_one();
    }
    pub async fn notified(&self) {
        self.0.notified().await
    }
}

/// How the loop rests.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Longest rest when idle: a safety net for a wake-up that was missed
    /// (e.g. rows queued by another process).
    pub idle_poll: Duration,
    /// Longest rest while waiting for a due time, for the same reason.
    pub max_wait: Duration,
    /// Rest after a failing step (the database is unreachable, say).
    pub on_error: Backoff,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            idle_poll: Duration::from_secs(30),
            max_wait: Duration::from_secs(30),
            on_error: Backoff::doubling(Duration::from_millis(100), Duration::from_secs(30))
                .with_jitter(0.2),
        }
    }
}

/// Runs `worker` until `shutdown`: steps again at once while busy, rests
/// as the step asked otherwise, wakes early on `wake`. A failing step is
/// logged and retried with backoff, never skipped.
pub async fn run<W: OutboxWorker>(
    mut worker: W,
    name: &str,
    wake: Wake,
    clock: SharedClock,
    options: LoopOptions,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    // Clustered (PostgreSQL), the worker steps only while this instance
    // holds the lease named `name`: sends go out from one instance.
    let leases = super::lease::ambient();
    // The token this instance last started leading with: a different
    // one means the lease was lost (and taken again) in between.
    let mut led: Option<i64> = None;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if let Some(l) = &leases {
            if !super::lease::wait_to_lead(l, name, &shutdown).await {
                break;
            }
            if l.token(name) != led {
                if let Err(e) = worker.on_lead().await {
                    tracing::error!(worker = name, error = %e, "cannot start leading; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(super::lease::RETRY_EVERY) => {}
                    }
                    continue;
                }
                led = l.token(name);
            }
        }
        let rest = match worker.run_once().await {
            Ok(step) => {
                failures = 0;
                match step {
                    Step::Busy => continue,
                    // Clustered, rows may be queued by a consumer on
                    // another instance, whose wake-up does not reach here.
                    Step::Idle if leases.is_some() => {
                        options.idle_poll.min(super::lease::IDLE_POLL)
                    }
                    Step::Idle => options.idle_poll,
                    Step::Wait(d) => d.min(options.max_wait),
                    Step::WaitUntil(t) => {
                        let left = (t - clock.now_ms()).max(1) as u64;
                        Duration::from_millis(left).min(options.max_wait)
                    }
                }
            }
            Err(e) if leases.as_ref().is_some_and(|l| l.token(name).is_none()) => {
                tracing::warn!(worker = name, error = %e, "worker lost its lease");
                led = None;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::error!(worker = name, error = %e, failures, "worker step failed; will retry");
                options.on_error.delay(failures, None)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(rest) => {}
        }
    }
    tracing::debug!(worker = name, "worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn states_round_trip_and_refuse_unknown_names() {
        for s in OutboxState::ALL {
            assert_eq!(s.as_str().parse::<OutboxState>(), Ok(s));
        }
        assert!("Sent".parse::<OutboxState>().is_err());
    }

    #[test]
    fn policy_gives_up_after_max_attempts() {
        let p = RetryPolicy {
            backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)),
            max_attempts: Some(3),
        };
        assert_eq!(p.after_failure(1, 1_000, None), Next::RetryAt(2_000));
        assert_eq!(p.after_failure(2, 1_000, None), Next::RetryAt(3_000));
        assert_eq!(p.after_failure(3, 1_000, None), Next::GiveUp);
        let forever = RetryPolicy {
            max_attempts: None,
            ..p
        };
        assert_eq!(forever.after_failure(99, 0, None), Next::RetryAt(60_000));
    }

    struct Counting {
        steps: Arc<AtomicU32>,
        fail_first: u32,
    }

    impl OutboxWorker for Counting {
        type Error = String;
        async fn run_once(&mut self) -> Result<Step, String> {
            let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= self.fail_first {
                return Err(format!("step {n} failed"));
            }
            Ok(if n < 5 { Step::Busy } else { Step::Idle })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn loop_steps_while_busy_retries_failures_and_wakes_on_notify() {
        let steps = Arc::new(AtomicU32::new(0));
        let wake = Wake::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            Counting {
                steps: steps.clone(),
                fail_first: 2,
            },
            "test",
            wake.clone(),
            SharedClock::system(),
            LoopOptions::default(),
            shutdown.clone(),
        ));
        // Two failures (backoff 100 ms, 200 ms ± jitter), then busy steps
        // until the fifth, which is idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 5);
        // Idle rests up to 30 s; a wake-up makes it step at once.
        wake.notify();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 6);
        shutdown.cancel();
        task.await.unwrap();
    }
}
