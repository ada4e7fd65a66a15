//! Where a receipt is journaled. Receipts without a card go through the
//! back office's own group commit (the core's [`group_commit`]): many
//! registers, one transaction and one sync per group. A receipt with a
//! card goes through loyalty's accrual ([`crate::loyalty::accrual`]) so
//! the journal row and the card's accumulated total commit together.

use std::sync::Arc;

use crate::core::clock::SharedClock;
use crate::core::feature::BoxFuture;
use crate::core::group_commit::{self, Groups, Submitter};
use crate::core::store::{Backend, Db};
use crate::loyalty::accrual::{Accrual, AccrualWrite};
use crate::loyalty::ops::OpError;

use super::journal::{self, Source, Stored};
use super::receipt::Receipt;

/// Receipts in one group commit at most.
const GROUP_MAX: usize = 256;
const QUEUE: usize = 4096;

type Answer = Result<Stored, String>;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("card: no card {0:?} in loyalty")]
    UnknownCard(String),
    /// Nothing was stored; the register sends the same receipt again.
    #[error("not stored, send the same receipt again: {0}")]
    NotStored(String),
    #[error("receipts with a card need loyalty, which is not running")]
    NoLoyalty,
    #[error("loyalty: {0}")]
    Loyalty(String),
}

/// The journal's writing side, shared by the API and the benchmark.
#[derive(Clone)]
pub struct Journal {
    db: Db,
    plain: Submitter<Receipt, Answer>,
    loyalty: Option<crate::loyalty::Handle>,
    clock: SharedClock,
}

impl Journal {
    /// Starts the committer on `spawn`'s runtime.
    pub fn start(
        db: Db,
        loyalty: Option<crate::loyalty::Handle>,
        clock: SharedClock,
        spawn: &tokio::runtime::Handle,
    ) -> Journal {
        let (plain, groups) = group_commit::channel(GROUP_MAX, QUEUE);
        spawn.spawn(run(db.clone(), clock.clone(), groups));
        Journal {
            db,
            plain,
            loyalty,
            clock,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn loyalty(&self) -> Option<&crate::loyalty::Handle> {
        self.loyalty.as_ref()
    }

    /// Journals a checked receipt; answers after its commit. A transaction
    /// that stored nothing (on PostgreSQL a deadlock between a group and a
    /// card's transaction over the same stock rows is one) is tried again,
    /// twice at most: the receipt id makes a retry safe.
    pub async fn take(&self, r: Receipt) -> Result<Stored, JournalError> {
        let mut tries = 0;
        loop {
            match self.take_once(r.clone()).await {
                Err(JournalError::NotStored(e)) if tries < 2 => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "receipt not stored; trying again");
                }
                other => return other,
            }
        }
    }

    async fn take_once(&self, r: Receipt) -> Result<Stored, JournalError> {
        let stored = match r.card.clone() {
            None => self
                .plain
                .submit(r)
                .await
                .map_err(|e| JournalError::NotStored(e.to_string()))?
                .map_err(JournalError::NotStored)?,
            Some(card) => {
                let h = self.loyalty.as_ref().ok_or(JournalError::NoLoyalty)?;
                let write = Arc::new(JournalWrite {
                    receipt: r,
                    now: self.clock.now_ms(),
                });
                match h.accrue(&self.db, &card, write).await {
                    Ok(a) => Stored::from_json(&a.answer),
                    Err(OpError::UnknownCard(_)) => return Err(JournalError::UnknownCard(card)),
                    // Its transaction rolled back: nothing is stored.
                    Err(e @ (OpError::NotStored(_) | OpError::Db(_))) => {
                        return Err(JournalError::NotStored(e.to_string()));
                    }
                    Err(e) => return Err(JournalError::Loyalty(e.to_string())),
                }
            }
        };
        if let Stored::New { answer, .. } = &stored {
            super::stock::note_negative(answer);
        }
        Ok(stored)
    }
}

/// A receipt with a card, written inside loyalty's transaction.
pub struct JournalWrite {
    pub receipt: Receipt,
    pub now: i64,
}

impl AccrualWrite for JournalWrite {
    fn write<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        backend: Backend,
        accumulated: i64,
    ) -> BoxFuture<'a, Result<Accrual, sqlx::Error>> {
        Box::pin(async move {
            let s = journal::store(
                conn,
                backend,
                &self.receipt,
                Source::Register,
                self.now,
                Some(accumulated),
            )
            .await?;
            let delta = match &s {
                Stored::New { accrued, .. } => *accrued,
                _ => 0,
            };
            Ok(Accrual {
                delta,
                answer: s.to_json(),
            })
        })
    }
}

/// The committer: each group in one transaction; a failed commit answers
/// everyone "not stored".
async fn run(db: Db, clock: SharedClock, mut groups: Groups<Receipt, Answer>) {
    while let Some(group) = groups.next().await {
        let (requests, replies) = group.into_parts();
        match commit_group(&db, &clock, &requests).await {
            Ok(answers) => replies.answer(answers.into_iter().map(Ok)),
            Err(e) => {
                tracing::error!(error = %e, size = requests.len(), "back-office journal commit failed");
                let msg = e.to_string();
                replies.answer(requests.iter().map(|_| Err(msg.clone())));
            }
        }
    }
}

/// One transaction for the group.
async fn commit_group(
    db: &Db,
    clock: &SharedClock,
    requests: &[Receipt],
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let answers = journal::store_group(
        &mut tx,
        db.backend,
        requests,
        Source::Register,
        clock.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(answers)
}
