//! The backfill worker, on the core's outbox loop: turns each recorded gap
//! of a known cash server (and, with `reconcile_every_mins`, each
//! reconciliation) into a job, and runs due jobs with the core's retry
//! policy. A gap's job waits until the `rk7-versions` consumer has read past
//! the gap, so what did arrive is known and skipped.

use std::time::Duration;

use crate::core::backoff::Backoff;
use crate::core::clock::SharedClock;
use crate::core::log::{LogWriter, gaps, mark_gap_filled};
use crate::core::outbox::{Next, OutboxWorker, RetryPolicy, Step};
use crate::core::store::{Db, StoreError};

use super::settings::Settings;
use super::{backfill, connect, store, versions};

pub struct Backfiller {
    pub db: Db,
    pub log: LogWriter,
    pub settings: Settings,
    pub clock: SharedClock,
    pub retry: RetryPolicy,
}

impl Backfiller {
    pub fn new(db: Db, log: LogWriter, settings: Settings, clock: SharedClock) -> Self {
        Self {
            db,
            log,
            settings,
            clock,
            retry: RetryPolicy {
                backoff: Backoff::doubling(Duration::from_secs(5), Duration::from_secs(600))
                    .with_jitter(0.2),
                max_attempts: Some(12),
            },
        }
    }

    /// New gaps become jobs of the cash servers of their restaurant.
    async fn queue_gaps(&self) -> Result<bool, StoreError> {
        let last: i64 = store::state(&self.db, "last_gap")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let new = gaps(&self.db, last, 100).await?;
        let Some(max) = new.last().map(|g| g.id) else {
            return Ok(false);
        };
        let servers = connect::all(&self.db, &self.settings).await?;
        for g in &new {
            for s in &servers {
                let rest = match &s.rest_code {
                    Some(r) => Some(r.clone()),
                    None => store::state(&self.db, &format!("rest_code:{}", s.name)).await?,
                };
                // A cash server whose restaurant is not known yet gets the
                // job too; the backfill learns the code and appends only
                // orders tillgate does not hold.
                if rest.is_none() || rest.as_deref() == g.rest_code.as_deref() {
                    store::queue_job(&self.db, &s.name, Some(g.id), self.clock.now_ms()).await?;
                }
            }
        }
        store::set_state(&self.db, "last_gap", &max.to_string()).await?;
        Ok(true)
    }

    /// A reconciliation job per cash server when the period has passed.
    async fn queue_reconcile(&self, now: i64) -> Result<Option<i64>, StoreError> {
        let Some(every) = self.settings.reconcile_every else {
            return Ok(None);
        };
        let every = every.as_millis() as i64;
        let last: i64 = store::state(&self.db, "reconciled_at")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if now - last >= every {
            for s in connect::all(&self.db, &self.settings).await? {
                store::queue_job(&self.db, &s.name, None, now).await?;
            }
            store::set_state(&self.db, "reconciled_at", &now.to_string()).await?;
            return Ok(Some(now + every));
        }
        Ok(Some(last + every))
    }
}

impl OutboxWorker for Backfiller {
    type Error = StoreError;

    async fn run_once(&mut self) -> Result<Step, StoreError> {
        let now = self.clock.now_ms();
        if self.settings.backfill_on_gap && self.queue_gaps().await? {
            return Ok(Step::Busy);
        }
        let reconcile_at = self.queue_reconcile(now).await?;
        let (job, later) = store::next_job(&self.db, now).await?;
        let Some(job) = job else {
            return Ok(match later.into_iter().chain(reconcile_at).min() {
                Some(t) => Step::WaitUntil(t),
                None => Step::Idle,
            });
        };
        let gap = match job.gap_id {
            Some(id) => gaps(&self.db, id - 1, 1)
                .await?
                .into_iter()
                .find(|g| g.id == id),
            None => None,
        };
        if let Some(g) = &gap {
            let read = crate::core::log::cursor(&self.db, versions::CONSUMER_NAME).await?;
            if read < g.before_offset {
                return Ok(Step::Wait(Duration::from_millis(200)));
            }
        }
        let Some(server) = connect::find(&self.db, &self.settings, &job.cash_server).await? else {
            store::finish_job(
                &self.db,
                job.id,
                "failed",
                job.attempts,
                now,
                0,
                Some("the cash server is no longer configured"),
            )
            .await?;
            return Ok(Step::Busy);
        };
        let attempts = job.attempts + 1;
        let outcome = match connect::client(&server, self.settings.timeout) {
            Ok(client) => {
                backfill::run(&self.db, &self.log, &client, &server, None, job.gap_id).await
            }
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(report) => {
                if let Some(g) = job.gap_id {
                    mark_gap_filled(
                        &self.db,
                        g,
                        report.repaired as i64,
                        &format!("rk7:{}", server.name),
                    )
                    .await?;
                }
                store::finish_job(
                    &self.db,
                    job.id,
                    "sent",
                    attempts,
                    now,
                    report.repaired as i64,
                    None,
                )
                .await?;
            }
            Err(f) => {
                tracing::warn!(cash_server = %server.name, gap = ?job.gap_id, attempts, error = %f, "backfill failed");
                let (state, at) = match self.retry.after_failure(attempts as u32, now, None) {
                    Next::RetryAt(at) => ("pending", at),
                    Next::GiveUp => ("failed", now),
                };
                store::finish_job(
                    &self.db,
                    job.id,
                    state,
                    attempts,
                    at,
                    0,
                    Some(&f.to_string()),
                )
                .await?;
            }
        }
        Ok(Step::Busy)
    }
}
