//! Backfilled events: orders that a cash server never delivered (a gap, a
//! full queue, a receiver that was down), asked for afterwards through its
//! XML interface and appended to the log as synthetic events, marked so
//! that everyone can tell them from what the cash server sent.
//!
//! A backfilled event is one event in a stream of its own, whose GUID is
//! derived from the order and its version ([`backfill_stream_guid`]) and
//! starts with [`BACKFILL_GUID_PREFIX`]; its seqnumber is 1. So:
//!
//! * appending the same order at the same version twice is a duplicate to
//!   the writer (idempotent, whoever runs it), even though the two bodies
//!   differ (each carries the time it was fetched): the writer takes the key
//!   of a backfilled stream as the event, since tillgate made it; no
//!   seqnumber gap can ever be recorded for it;
//! * whether an entry is backfilled is a look at its stream GUID
//!   ([`is_backfilled`]), with no query (relay destinations filter on it);
//! * where it came from (the source and the gap it fills) is in
//!   `log_backfills`, and a gap's repair in `log_gap_repairs` (both made by
//!   migration `0010_cash_servers`).

use sha2::{Digest, Sha256};

use super::{AppendError, AppendOutcome, LogWriter, NewEvent};
use crate::core::clock::now_ms;
use crate::core::store::{Db, StoreError};

/// The first group of every backfill stream GUID (hex, so still a GUID).
pub const BACKFILL_GUID_PREFIX: &str = "{BAC4F111-";

/// The stream GUID of the backfilled event of `order_guid` at `version`.
pub fn backfill_stream_guid(order_guid: &str, version: i64) -> String {
    let h = Sha256::digest(format!("{}|{version}", order_guid.to_ascii_uppercase()));
    let hex: String = h.iter().take(12).map(|b| format!("{b:02X}")).collect();
    format!(
        "{BACKFILL_GUID_PREFIX}{}-{}-{}-{}}}",
        &hex[0..4],
        &hex[4..8],
        &hex[8..12],
        &hex[12..24]
    )
}

/// Whether an entry of this stream was backfilled rather than sent.
pub fn is_backfilled(stream_guid: &str) -> bool {
    stream_guid.starts_with(BACKFILL_GUID_PREFIX)
}

/// Where a backfilled event came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackfillMark {
    /// Who asked the cash server, e.g. `rk7:main-hall` (the cash server's
    /// name as configured).
    pub source: String,
    /// The gap it fills, when it was run for one.
    pub gap_id: Option<i64>,
    pub order_guid: String,
    pub order_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackfillError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Appends `event` (its `stream_guid` and `seqnumber` are set here) and
/// records where it came from. A second call for the same order and version
/// is answered `Duplicate` and records nothing new.
pub async fn append_backfilled(
    log: &LogWriter,
    db: &Db,
    mut event: NewEvent,
    mark: &BackfillMark,
) -> Result<AppendOutcome, BackfillError> {
    event.stream_guid = backfill_stream_guid(&mark.order_guid, mark.order_version);
    event.seqnumber = 1;
    let outcome = log.append(event).await?;
    if let AppendOutcome::Stored { offset } = outcome {
        sqlx::query(
            "INSERT INTO log_backfills (log_offset, source, gap_id, order_guid, order_version, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (log_offset) DO NOTHING",
        )
        .bind(offset)
        .bind(&mark.source)
        .bind(mark.gap_id)
        .bind(&mark.order_guid)
        .bind(mark.order_version)
        .bind(now_ms())
        .execute(&db.write)
        .await?;
    }
    Ok(outcome)
}

/// The mark of a backfilled entry, if it is one.
pub async fn backfill_mark(db: &Db, offset: i64) -> Result<Option<BackfillMark>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        source: String,
        gap_id: Option<i64>,
        order_guid: String,
        order_version: i64,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT source, gap_id, order_guid, order_version FROM log_backfills WHERE log_offset = $1",
    )
    .bind(offset)
    .fetch_optional(&db.read)
    .await?;
    Ok(row.map(|r| BackfillMark {
        source: r.source,
        gap_id: r.gap_id,
        order_guid: r.order_guid,
        order_version: r.order_version,
    }))
}

/// A gap shown as filled: how many orders the backfill repaired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct GapRepair {
    pub gap_id: i64,
    pub repaired: i64,
    pub source: String,
    pub filled_at: i64,
}

/// Marks `gap_id` filled (again: the latest run's count wins).
pub async fn mark_gap_filled(
    db: &Db,
    gap_id: i64,
    repaired: i64,
    source: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO log_gap_repairs (gap_id, repaired, source, filled_at) VALUES ($1, $2, $3, $4) ON CONFLICT (gap_id) DO UPDATE SET repaired = excluded.repaired, source = excluded.source, filled_at = excluded.filled_at",
    )
    .bind(gap_id)
    .bind(repaired)
    .bind(source)
    .bind(now_ms())
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Every filled gap, by gap id.
pub async fn gap_repairs(db: &Db) -> Result<Vec<GapRepair>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT gap_id, repaired, source, filled_at FROM log_gap_repairs ORDER BY gap_id",
    )
    .fetch_all(&db.read)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_guids_are_stable_per_order_version_and_recognisable() {
        let a = backfill_stream_guid("{1234ABCD-0000-0000-0000-000000000001}", 7);
        assert_eq!(
            a,
            backfill_stream_guid("{1234abcd-0000-0000-0000-000000000001}", 7)
        );
        assert_ne!(
            a,
            backfill_stream_guid("{1234ABCD-0000-0000-0000-000000000001}", 8)
        );
        assert!(is_backfilled(&a));
        assert_eq!(a.len(), 38, "{a}");
        assert!(
            crate::core::book::normalise_guid(&a).is_some(),
            "{a} is a GUID"
        );
        assert!(!is_backfilled("{1234ABCD-0000-0000-0000-000000000001}"));
    }
}
