//! Retention: deleting old events every consumer has passed, in small
//! steps, on the core's worker loop.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AppendError, LogWriter};
use crate::core::backoff::Backoff;
use crate::core::clock::{SharedClock, now_ms};
use crate::core::outbox::{self, LoopOptions, OutboxWorker, Step, Wake};
use crate::core::store::{Db, StoreError};

/// Rows deleted per step at most: the log writer shares the write lock and
/// must never wait long behind retention.
const STEP_ROWS: i64 = 5000;

/// The rest between steps once nothing is old enough, and after a failed
/// step: retention is not urgent, and an hour's retention is not harmed by
/// a minute's delay.
const REST: Duration = Duration::from_secs(60);

/// Deletes, in one bounded step, events received before `cutoff_ms` that
/// every consumer has already passed; returns how many went.
///
/// The lowest cursor is the bound, so a consumer that is behind (a relay
/// destination that is down, an alert outbox waiting for Telegram) keeps
/// its events however old they are. Pruned events cannot be replayed: the
/// default retention (0) keeps everything.
///
/// The bound is found by reading; the delete itself is the log writer's
/// (on SQLite nothing else writes the log's file).
pub async fn prune(
    db: &Db,
    log: &LogWriter,
    cutoff_ms: i64,
    max_rows: i64,
) -> Result<u64, PruneError> {
    let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(position) FROM consumer_cursors")
        .fetch_one(&db.read)
        .await
        .map_err(StoreError::from)?;
    let Some(lowest) = lowest else {
        return Ok(0);
    };
    let upto: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(log_offset) FROM (SELECT log_offset FROM events WHERE log_offset <= $1 AND received_at < $2 ORDER BY log_offset LIMIT $3) AS oldest",
    )
    .bind(lowest)
    .bind(cutoff_ms)
    .bind(max_rows)
    .fetch_one(&db.read)
    .await
    .map_err(StoreError::from)?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    Ok(log.prune(upto, cutoff_ms).await?)
}

/// Why a retention step failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Writer(#[from] AppendError),
}

/// The retention worker: prunes in small steps so the log writer never
/// waits long behind it.
pub struct Pruner {
    pub db: Db,
    pub log: LogWriter,
    pub retention: std::time::Duration,
}

impl Pruner {
    /// One step; `now_ms` is injectable for tests.
    pub async fn run_once(&self, now_ms: i64) -> Result<u64, PruneError> {
        let cutoff = now_ms - self.retention.as_millis() as i64;
        prune(&self.db, &self.log, cutoff, STEP_ROWS).await
    }

    /// Prunes step after step while there is something to prune, then
    /// rests a minute; a failed step is logged and tried again a minute
    /// later. Stops at `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let options = LoopOptions {
            idle_poll: REST,
            max_wait: REST,
            on_error: Backoff::doubling(REST, REST),
        };
        outbox::run(
            Steps(self),
            "log-pruner",
            Wake::new(),
            SharedClock::system(),
            options,
            shutdown,
        )
        .await
    }
}

/// The pruner as a step of the core's worker loop.
struct Steps(Pruner);

impl OutboxWorker for Steps {
    type Error = PruneError;

    async fn run_once(&mut self) -> Result<Step, PruneError> {
        let n = self.0.run_once(now_ms()).await?;
        if n == 0 {
            return Ok(Step::Wait(REST));
        }
        tracing::info!(pruned = n, "pruned events past retention");
        metrics::counter!("tillgate_events_pruned_total").increment(n);
        Ok(Step::Busy)
    }
}
