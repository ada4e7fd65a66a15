//! Delivery status: asking the provider what became of sent messages.
//!
//! [`StatusPoll`] is an [`OutboxWorker`] on the core loop. A sent message
//! whose status is not final is asked about every `status_poll` (counted
//! from the send, so it is not asked about before it could have arrived),
//! for a day; then `sent` becomes `delivered` or `undelivered`. The loop
//! rests until the next message is due a poll.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::provider::{Delivery as Report, Provider, ProviderError};
use super::store::{self, MessageState};
use crate::core::clock::SharedClock;
use crate::core::outbox::{OutboxWorker, Step};
use crate::core::store::{Db, StoreError};

/// Sent messages are polled for a day; after that a missing report will
/// not come.
const POLL_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Messages asked about per step at most.
const BATCH: i64 = 50;

pub struct StatusPoll {
    db: Db,
    every_ms: i64,
    providers: Arc<HashMap<String, Arc<dyn Provider>>>,
    clock: SharedClock,
    /// Checked between messages: a shutdown waits for one question only.
    shutdown: CancellationToken,
}

impl StatusPoll {
    pub fn new(
        db: Db,
        every: std::time::Duration,
        providers: Arc<HashMap<String, Arc<dyn Provider>>>,
        clock: SharedClock,
    ) -> Self {
        StatusPoll {
            db,
            every_ms: every.as_millis() as i64,
            providers,
            clock,
            shutdown: CancellationToken::new(),
        }
    }

    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Asks about the messages due a poll (up to a batch); answers how many
    /// were asked about.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let rows =
            store::to_poll(&self.db, now - POLL_WINDOW_MS, now - self.every_ms, BATCH).await?;
        let mut polled = 0;
        for r in rows {
            if self.shutdown.is_cancelled() {
                break;
            }
            let (state, delivery) = match self.providers.get(&r.provider) {
                // Recorded rather than skipped, so the message does not
                // come back due at every step.
                None => (
                    MessageState::SENT,
                    format!(
                        "status unknown: provider {:?} is not configured",
                        r.provider
                    ),
                ),
                Some(p) => match p.status(&r.provider_id).await {
                    Ok(Report::Delivered) => (MessageState::Delivered, "delivered".to_string()),
                    Ok(Report::InFlight { code }) => {
                        (MessageState::SENT, format!("in flight ({code})"))
                    }
                    Ok(Report::Undelivered { code, message }) => {
                        (MessageState::Undelivered, format!("{code}: {message}"))
                    }
                    Err(ProviderError::Unsupported(_)) => {
                        (MessageState::SENT, "not reported by provider".into())
                    }
                    Err(e) => (MessageState::SENT, format!("status unknown: {e}")),
                },
            };
            store::record_status(&self.db, r.id, state, &delivery, now).await?;
            polled += 1;
        }
        Ok(polled)
    }
}

impl OutboxWorker for StatusPoll {
    type Error = StoreError;

    /// A pass, then rest until the message polled longest ago is due again.
    async fn run_once(&mut self) -> Result<Step, StoreError> {
        self.pass().await?;
        let now = self.clock.now_ms();
        Ok(
            match store::oldest_poll(&self.db, now - POLL_WINDOW_MS).await? {
                None => Step::Idle,
                Some(last) if last + self.every_ms <= now => Step::Busy,
                Some(last) => Step::WaitUntil(last + self.every_ms),
            },
        )
    }
}
