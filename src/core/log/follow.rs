//! Following the other instances' commits (PostgreSQL): the writer
//! publishes its own commits at once, and this polls the shared head so an
//! instance's consumers and relay workers also wake for what another
//! instance committed.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::Committed;
use crate::core::store::Db;

/// How often the shared head is read. A row read by primary key every
/// 100 ms costs the database little, and bounds how late a consumer on
/// this instance learns of an event ingested by another (docs/cluster.md).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// Polls `log_head` until the writer (the sender's owner) is gone. A head
/// beyond what this instance published means another instance committed:
/// the tail may then lack entries right after its last one, so it is
/// emptied before the new head is published (readers go to the database),
/// and every reader is woken.
pub(super) async fn follow(db: Db, committed: Weak<watch::Sender<Committed>>) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if committed.strong_count() == 0 {
            return;
        }
        let head = match super::writer::shared_head(&db).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared log head");
                continue;
            }
        };
        let Some(sender) = committed.upgrade() else {
            return;
        };
        if head > sender.borrow().head {
            db.tail.behind(head);
            sender.send_modify(|c| c.head = c.head.max(head));
        }
    }
}
