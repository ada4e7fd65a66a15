//! Marks payment-card holds past their time as expired, as a worker on the
//! core's outbox loop. A due hold already stops reserving money the moment
//! it passes (every check compares with the clock); the sweep keeps the
//! stored status honest for the operator.

use crate::core::outbox::{OutboxWorker, Step};
use crate::core::store::Db;
use crate::loyalty::Settings;
use crate::loyalty::ops::sweeper_period;

pub struct PaymentSweeper {
    pub db: Db,
    pub settings: Settings,
}

impl PaymentSweeper {
    /// One sweep; how many holds it expired.
    pub async fn expire_due(&self) -> Result<u64, sqlx::Error> {
        super::store::expire_holds(&self.db.write, self.settings.clock.now_ms()).await
    }
}

impl OutboxWorker for PaymentSweeper {
    type Error = sqlx::Error;

    async fn run_once(&mut self) -> Result<Step, sqlx::Error> {
        let n = self.expire_due().await?;
        if n > 0 {
            tracing::debug!(expired = n, "payment-card holds expired");
        }
        Ok(Step::Wait(sweeper_period()))
    }
}
