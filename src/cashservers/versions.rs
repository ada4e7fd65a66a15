//! The `rk7-versions` consumer: the highest version of each order seen in
//! the log (sent or backfilled), so a backfill skips every order tillgate
//! already holds at the cash server's version and never appends it twice.

use std::collections::HashMap;

use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{LogEntry, set_cursor};
use crate::core::store::Db;

pub const CONSUMER_NAME: &str = "rk7-versions";

pub struct Versions;

impl Consumer for Versions {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(apply(db, entries))
    }
}

async fn apply(db: &Db, entries: &[LogEntry]) -> Result<(), ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    // Newest version per order in this batch, then one upsert each.
    let mut seen: HashMap<&str, (i64, Option<&str>, i64)> = HashMap::new();
    for e in entries {
        let Some(guid) = e.order_guid.as_deref() else {
            continue;
        };
        let version = match e.event() {
            Ok(ev) => ev.order.as_ref().and_then(|o| o.version),
            Err(err) => {
                tracing::warn!(offset = e.offset, error = %err, "stored event no longer reads; its order version is not known");
                None
            }
        };
        let Some(version) = version else { continue };
        let slot = seen
            .entry(guid)
            .or_insert((version, e.rest_code.as_deref(), e.offset));
        if version >= slot.0 {
            *slot = (version, e.rest_code.as_deref(), e.offset);
        }
    }
    let mut tx = db.write.begin().await?;
    for (guid, (version, rest, offset)) in seen {
        sqlx::query(
            "INSERT INTO rk7_order_versions (order_guid, rest_code, version, last_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (order_guid) DO UPDATE SET \
             version = CASE WHEN excluded.version > rk7_order_versions.version THEN excluded.version ELSE rk7_order_versions.version END, \
             rest_code = COALESCE(excluded.rest_code, rk7_order_versions.rest_code), \
             last_offset = excluded.last_offset",
        )
        .bind(guid)
        .bind(rest)
        .bind(version)
        .bind(offset)
        .execute(&mut *tx)
        .await?;
    }
    set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await?;
    Ok(())
}
