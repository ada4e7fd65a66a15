//! Consumers: every feature reads the event log through one of these.
//!
//! A consumer has a name and a durable cursor (the last offset it has fully
//! applied). The runner feeds it batches after its cursor; the consumer
//! applies a batch and moves its cursor in the same transaction, so a crash
//! never applies an event twice or skips one. Resetting the cursor to 0 and
//! running again rebuilds the feature's state from the log.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::log::{self, Committed, LogEntry};
use super::store::{Db, StoreError};

pub use super::feature::BoxFuture;

/// Events a consumer applies per transaction at most. Measured with
/// `tillgate bench`: 100 made the consumers take the shared SQLite write
/// lock in more, shorter turns, and the log writer waited longer in total
/// (p50 acknowledgement 27 ms against 17 ms with 500).
pub const BATCH: i64 = 500;

/// The lag gauge every runner keeps for its consumer (described with the
/// core's metrics).
const LAG: &str = "tillgate_consumer_lag_events";

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Other(String),
}

pub trait Consumer: Send + 'static {
    /// Stable name: the key of the durable cursor.
    fn name(&self) -> String;

    /// Applies `entries` (offset order, after the cursor) and stores the new
    /// cursor (the last entry's offset) in the same transaction.
    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing after the cursor.
    Idle,
    Applied {
        events: usize,
        cursor: i64,
    },
}

pub struct Runner<C: Consumer> {
    pub consumer: C,
    db: Db,
    batch: i64,
    cursor: i64,
    coalesce: Duration,
}

impl<C: Consumer> Runner<C> {
    pub async fn new(consumer: C, db: Db, batch: i64) -> Result<Self, StoreError> {
        let name = consumer.name();
        let cursor = log::cursor(&db, &name).await?;
        // Listed from the start, so /metrics shows every consumer before
        // its first batch; the first step sets the real value.
        metrics::gauge!(LAG, "consumer" => name).set(0.0);
        Ok(Runner {
            consumer,
            db,
            batch,
            cursor,
            coalesce: Duration::ZERO,
        })
    }

    /// After a wake-up with less than a full batch waiting, wait this long
    /// for more before applying. Under load a consumer then commits one
    /// transaction per many events instead of one per group commit, which
    /// keeps it off the single SQLite write lock the log writer needs; the
    /// cost is that much extra lag. Zero (the default) applies at once.
    pub fn with_coalesce(mut self, coalesce: Duration) -> Self {
        self.coalesce = coalesce;
        self
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// One step: read the next batch and apply it. Tests call this directly.
    pub async fn run_once(&mut self) -> Result<Outcome, ConsumerError> {
        let entries = log::read_after(&self.db, self.cursor, self.batch, true).await?;
        let Some(last) = entries.last() else {
            return Ok(Outcome::Idle);
        };
        let last = last.offset;
        self.consumer.apply(&self.db, &entries).await?;
        self.cursor = last;
        Ok(Outcome::Applied {
            events: entries.len(),
            cursor: last,
        })
    }

    /// Runs until `shutdown`, waking on every commit. A failing batch is
    /// retried after a pause (100 ms, doubling up to 30 s); it is never
    /// skipped, because skipping would make the state differ from a
    /// replay.
    pub async fn run(
        mut self,
        mut committed: watch::Receiver<Committed>,
        shutdown: CancellationToken,
    ) {
        let name = self.consumer.name();
        let backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(30));
        let mut failures = 0u32;
        // Clustered (PostgreSQL), the consumer runs only while this
        // instance holds its lease; elsewhere it always runs.
        let leases = crate::core::lease::ambient();
        // The token this instance last started leading with: a different
        // one means the lease was lost (and taken again) in between.
        let mut led: Option<i64> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if let Some(l) = &leases {
                if !crate::core::lease::wait_to_lead(l, &name, &shutdown).await {
                    break;
                }
                if l.token(&name) != led {
                    // Taken over: the previous leader moved the cursor.
                    match log::cursor(&self.db, &name).await {
                        Ok(c) => {
                            tracing::info!(consumer = %name, cursor = c, "consumer runs on this instance");
                            self.cursor = c;
                            led = l.token(&name);
                        }
                        Err(e) => {
                            tracing::error!(consumer = %name, error = %e, "cannot read the cursor after taking the lease");
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                _ = tokio::time::sleep(crate::core::lease::RETRY_EVERY) => {}
                            }
                            continue;
                        }
                    }
                }
            }
            match self.run_once().await {
                Ok(Outcome::Applied { events, .. }) => {
                    failures = 0;
                    let head = committed.borrow().head;
                    metrics::gauge!(LAG, "consumer" => name.clone())
                        .set((head - self.cursor).max(0) as f64);
                    if (events as i64) < self.batch && !self.coalesce.is_zero() {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(self.coalesce) => {}
                        }
                    }
                }
                Ok(Outcome::Idle) => {
                    metrics::gauge!(LAG, "consumer" => name.clone()).set(0.0);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        r = committed.changed() => if r.is_err() {
                            // The writer has stopped: drain what is left, then stop.
                            if matches!(self.run_once().await, Ok(Outcome::Idle) | Err(_)) { break; }
                        } else if !self.coalesce.is_zero() {
                            tokio::select! {
                                _ = shutdown.cancelled() => {}
                                _ = tokio::time::sleep(self.coalesce) => {}
                            }
                        },
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
                Err(e) if leases.as_ref().is_some_and(|l| l.token(&name).is_none()) => {
                    // Fenced or lost the lease mid-batch: nothing was
                    // applied; another instance carries on.
                    tracing::warn!(consumer = %name, error = %e, "consumer lost its lease");
                    led = None;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(consumer = %name, error = %e, cursor = self.cursor, failures, "consumer batch failed; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.delay(failures, None)) => {}
                    }
                }
            }
        }
        tracing::debug!(consumer = %name, cursor = self.cursor, "consumer stopped");
    }
}
