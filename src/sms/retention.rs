//! Forgetting guest phones after the retention period (152-FZ: personal
//! data kept no longer than needed).
//!
//! [`Retention`] is an [`OutboxWorker`] on the core loop that runs once an
//! hour: contacts older than `retention_days` are deleted, and outbox rows
//! of that age lose the full phone but keep its masked form, so the
//! operator still sees who was texted.

use std::time::Duration;

use super::store;
use crate::core::clock::SharedClock;
use crate::core::outbox::{LoopOptions, OutboxWorker, Step};
use crate::core::store::{Db, StoreError};

/// How often phones past retention are looked for. Retention is counted in
/// days; an hour late is well inside it.
pub const EVERY: Duration = Duration::from_secs(3600);

pub struct Retention {
    db: Db,
    retention: Duration,
    clock: SharedClock,
}

impl Retention {
    pub fn new(db: Db, retention: Duration, clock: SharedClock) -> Self {
        Retention {
            db,
            retention,
            clock,
        }
    }

    /// The loop's rests for this worker: an hour, not the outbox default.
    pub fn loop_options() -> LoopOptions {
        LoopOptions {
            idle_poll: EVERY,
            max_wait: EVERY,
            ..LoopOptions::default()
        }
    }

    /// Deletes what is past retention; answers how many phones went.
    pub async fn pass(&self) -> Result<u64, StoreError> {
        let cutoff = self.clock.now_ms() - self.retention.as_millis() as i64;
        store::forget_phones(&self.db, cutoff).await
    }
}

impl OutboxWorker for Retention {
    type Error = StoreError;

    async fn run_once(&mut self) -> Result<Step, StoreError> {
        let n = self.pass().await?;
        if n > 0 {
            tracing::info!(deleted = n, "guest phones past retention deleted");
        }
        Ok(Step::Wait(EVERY))
    }
}
