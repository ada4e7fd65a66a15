//! The hold sweeper: marks purchase holds past their time as expired, every
//! few seconds, as a worker on the core's outbox loop.
//!
//! Expired holds already stop counting against the balance the moment they
//! pass (every balance query compares with the clock); the sweep keeps the
//! stored status honest for the operator and for reports.

use std::time::Duration;

use crate::core::outbox::{OutboxWorker, Step};
use crate::core::store::Db;
use crate::loyalty::{Settings, operations};

/// How often holds are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct HoldSweeper {
    pub db: Db,
    pub settings: Settings,
}

impl HoldSweeper {
    /// One sweep; returns how many holds it expired.
    pub async fn expire_due(&self) -> Result<u64, sqlx::Error> {
        operations::expire_holds(&self.db.write, self.settings.clock.now_ms()).await
    }
}

impl OutboxWorker for HoldSweeper {
    type Error = sqlx::Error;

    /// Sweeps, then rests [`SWEEP_EVERY`]: holds fall due by time alone,
    /// so there is nothing to be woken for.
    async fn run_once(&mut self) -> Result<Step, sqlx::Error> {
        let n = self.expire_due().await?;
        if n > 0 {
            tracing::debug!(expired = n, "loyalty holds expired");
        }
        Ok(Step::Wait(SWEEP_EVERY))
    }
}
