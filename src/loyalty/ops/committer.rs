//! The group committer of changing operations on SQLite, on the core's
//! [`group_commit`](crate::core::group_commit): many registers, one
//! transaction and one sync per group, a savepoint per operation.

use serde_json::Value;

use super::{OpError, Outcome, changing_in};
use crate::core::group_commit::{self, Group, Groups, Submitter};
use crate::core::store::Db;
use crate::loyalty::Settings;

/// A changing operation waiting for its group commit.
pub(crate) struct Queued {
    pub settings: Settings,
    pub common: super::Common,
    pub op: super::Op,
}

/// What a register gets back after its group's commit.
pub(crate) type Answer = Result<Value, OpError>;

/// The registers' side of the committer.
pub(crate) type Changes = Submitter<Queued, Answer>;

/// Changing operations in one group commit at most.
const GROUP_MAX: usize = 64;
/// Operations waiting before registers wait to queue.
const QUEUE: usize = 1024;

/// The registers' side and the committer's queue.
pub(crate) fn channel() -> (Changes, Groups<Queued, Answer>) {
    group_commit::channel(GROUP_MAX, QUEUE)
}

/// Runs changing operations in group commits, one group at a time (on
/// SQLite; PostgreSQL runs them side by side, see [`super::execute`]).
///
/// Each changing operation is a handful of statements and a commit, and
/// SQLite has one writer: with 32 registers, each operation waited for
/// every other operation's sync (~2 ms each on this class of disk), and
/// flows took 100 ms at p50. Here whatever is queued when a group starts
/// runs in one transaction, each operation inside a savepoint of its own
/// (a refused operation rolls back to it and leaves the others alone), and
/// every answer is sent only after the shared commit. Running the group's
/// operations one after the other also settles two registers sending the
/// same operation_id at once: the second one finds the first's stored answer.
///
/// Ends when every [`Changes`] is gone, after answering what was queued.
pub(crate) async fn committer(db: Db, mut groups: Groups<Queued, Answer>) {
    while let Some(group) = groups.next().await {
        metrics::histogram!("tillgate_loyalty_group_size").record(group.len() as f64);
        run_group(&db, group).await;
    }
}

async fn run_group(db: &Db, group: Group<Queued, Answer>) {
    match commit_group(db, &group.requests).await {
        Ok(answers) => group.answer(answers),
        Err(e) => {
            // Nothing of the group is committed; each register gets the
            // error and sends the same operation again (idempotent).
            tracing::error!(error = %e, size = group.len(), "loyalty group commit failed");
            let msg = e.to_string();
            let n = group.len();
            group.answer((0..n).map(|_| Err(OpError::NotStored(msg.clone()))));
        }
    }
}

/// One transaction for the whole group: each operation in a savepoint,
/// rolled back to it when the operation is refused.
async fn commit_group(db: &Db, group: &[Queued]) -> Result<Vec<Answer>, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let mut answers = Vec::with_capacity(group.len());
    for q in group {
        sqlx::query("SAVEPOINT loyalty_op")
            .execute(&mut *tx)
            .await?;
        let now = q.settings.clock.now_ms();
        let r = changing_in(&mut tx, db.backend, &q.settings, &q.common, now, &q.op).await;
        if let Err(Outcome::Refuse(_)) = r {
            sqlx::query("ROLLBACK TO SAVEPOINT loyalty_op")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("RELEASE SAVEPOINT loyalty_op")
            .execute(&mut *tx)
            .await?;
        answers.push(match r {
            Ok(v) => Ok(v),
            Err(Outcome::Refuse(e) | Outcome::CommitThenRefuse(e)) => Err(e),
        });
    }
    tx.commit().await?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Storage;
    use crate::loyalty::ops::{Kind, Request, parse};

    async fn db(dir: &std::path::Path) -> Db {
        let db = Db::open(&Storage::Sqlite {
            path: dir.join("t.sqlite"),
        })
        .await
        .unwrap();
        crate::core::migrate::migrate(&db, &[crate::migration!("0007_loyalty")])
            .await
            .unwrap();
        db
    }

    fn cancel(op: &str, purchase: &str) -> Queued {
        let (common, op) = parse(
            Kind::Cancel,
            Request {
                operation_id: op.into(),
                register: "r1".into(),
                cashier: "c".into(),
                local_time: "2026-10-03T12:00:00".into(),
                identifier: None,
                lines: None,
                bonus_spend: None,
                offline: None,
                purchase_operation_id: Some(purchase.into()),
                amount: None,
            },
        )
        .unwrap();
        Queued {
            settings: Settings::default(),
            common,
            op,
        }
    }

    #[tokio::test]
    async fn a_refused_operation_leaves_the_rest_of_its_group_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        let (changes, groups) = channel();
        let task = tokio::spawn(committer(db.clone(), groups));
        // No such purchase: each is refused, in its own savepoint.
        let (a, b) = tokio::join!(
            changes.submit(cancel("x1", "nope")),
            changes.submit(cancel("x2", "nope")),
        );
        assert!(matches!(a.unwrap(), Err(OpError::PurchaseNotFound(_))));
        assert!(matches!(b.unwrap(), Err(OpError::PurchaseNotFound(_))));
        drop(changes);
        task.await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM loyalty_operations")
            .fetch_one(&db.read)
            .await
            .unwrap();
        assert_eq!(stored, 0);
        db.close().await;
    }

    /// A group whose transaction fails answers every caller "not stored"
    /// (503 at the API), so registers send the same operations again.
    #[tokio::test]
    async fn a_failed_group_commit_answers_not_stored_to_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.write.close().await;
        let (changes, groups) = channel();
        let task = tokio::spawn(committer(db.clone(), groups));
        let (a, b) = tokio::join!(
            changes.submit(cancel("x1", "p")),
            changes.submit(cancel("x2", "p")),
        );
        for r in [a, b] {
            assert!(matches!(r.unwrap(), Err(OpError::NotStored(_))));
        }
        drop(changes);
        task.await.unwrap();
    }
}
