//! The event log: the spine of tillgate.
//!
//! Every accepted event is appended once, with a monotonic offset, by a
//! single writer task. The writer groups whatever requests are waiting into
//! one transaction (group commit), so 64 cash servers posting at once pay for
//! one sync, not 64. A request is answered only after its transaction has
//! committed: that is the durability promise behind every 2xx.
//!
//! An event's key is its stream's GUID and seqnumber, but r_keeper does not
//! promise a driver run's GUID is unique, so the key alone does not make a
//! duplicate: a duplicate is the same key with the same bytes. Only a
//! suspect (an event at or below its stream's last seqnumber) is looked up,
//! and only against its key's events received within `[log]
//! dedupe_window_days`. The window is a bound on the lookup, not a table
//! to prune: the key's index is a plain (non-unique) index on `events`,
//! which retention already prunes with the rows, so there is no second
//! structure to keep in step with the log, nothing more to write per event,
//! and no hash to fill for rows written before (their bodies are compared).
//!
//! Offsets are assigned by the writer in memory (loaded from the table at
//! start) rather than by a database sequence: with one writer they are then
//! strictly in commit order, so a consumer reading `offset > cursor` can never
//! skip a row that commits late (which a PostgreSQL sequence allows).
//! On PostgreSQL several tillgate instances may write one log: there each
//! commit first locks the `log_head` row and reads the head, the ids and the
//! touched streams' last seqnumbers inside its transaction, so commits are
//! serialised, offsets stay dense and in commit order, and duplicates and
//! gaps are decided against what every instance committed (see
//! docs/cluster.md). A follower of the shared head tells an instance of the others' commits.
//!
//! This module holds the log's types; the work is split by job:
//!
//! * [`writer`](writer()): the single writer and its group commit;
//! * [`Tail`]: the newest committed entries, in memory;
//! * reads: entries after an offset, one entry, the head, gaps, key reuses,
//!   quarantine, streams, a shift's events;
//! * cursors: each consumer's durable position;
//! * retention: [`prune`] and the [`Pruner`] worker.
//!
//! Nothing outside this module touches the log's tables (`events`,
//! `streams`, `gaps`, `quarantine`, `consumer_cursors`).

mod backfill;
mod codec;
mod cursor;
mod follow;
mod prune;
mod read;
mod split;
mod tail;
mod writer;

use std::sync::Arc;

use bytes::Bytes;

use super::migrate::Migration;

pub use backfill::{
    BACKFILL_GUID_PREFIX, BackfillError, BackfillMark, GapRepair, append_backfilled, backfill_mark,
    backfill_stream_guid, gap_repairs, is_backfilled, mark_gap_filled,
};
pub use codec::Codec;
pub use cursor::{cursor, cursors, delete_cursor, set_cursor, start_cursor_at_head};
pub use follow::FOLLOW_EVERY;
pub use prune::{PruneError, Pruner, prune};
pub use read::{
    gaps, get, head, key_reuses, offset_at_time, quarantine_body, quarantine_list, read_after,
    shift_events, streams_of,
};
pub use split::into_own_file as move_into_own_file;
pub use tail::Tail;
pub use writer::{
    DEFAULT_DEDUPE_WINDOW, LogWriter, LogWriterTask, QuarantineLimits, writer, writer_with,
};

/// The log's own tables: events, streams, gaps, quarantine, cursors.
pub fn migrations() -> Vec<Migration> {
    vec![
        crate::migration!("0001_event_log"),
        // The shift report reads one restaurant's shift out of the whole
        // log; without this index it scanned every event ever kept.
        crate::migration!("0002_events_rest_shift"),
        // Bodies stored compressed; the column says how (see `Codec`).
        crate::migration!("0009_events_codec"),
        // Several instances on one PostgreSQL: the log's head row, locked by
        // each committing writer, and the consumers' leadership leases.
        crate::migration!("0015_cluster"),
        // A key repeated with other bytes is another event: the key is no
        // longer unique, and such events are marked and listed.
        crate::migration!("0018_events_key_reuse"),
    ]
}

/// An event that read correctly and is ready to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub received_at: i64,
    /// Canonical (upper case, braced) driver-run GUID.
    pub stream_guid: String,
    pub seqnumber: i64,
    pub situation: i64,
    pub rest_code: Option<String>,
    /// Cash-server local time, ISO text without zone.
    pub event_time: Option<String>,
    pub shift_num: Option<i64>,
    pub order_guid: Option<String>,
    /// The bytes exactly as received.
    pub body: Bytes,
    /// The body as ingest read it, handed on to consumers through the
    /// [`Tail`] so they need not read it again.
    pub parsed: Option<Arc<rk7::Event>>,
}

impl NewEvent {
    /// The record of `ev`, read from `body`, in the stream the caller found
    /// it in. The key (canonical stream GUID, seqnumber) is the caller's to
    /// check, because what to do with an event lacking one is the edge's
    /// decision (ingest quarantines it); the indexed columns are taken from
    /// the event here, so every writer of the log fills them alike.
    pub fn from_read(
        received_at: i64,
        stream_guid: String,
        seqnumber: i64,
        ev: rk7::Event,
        body: Bytes,
    ) -> NewEvent {
        NewEvent {
            received_at,
            stream_guid,
            seqnumber,
            situation: ev.situation.code(),
            rest_code: ev.rest_code.as_ref().map(|r| r.0.clone()),
            event_time: ev.date_time.as_ref().map(|d| d.to_string()),
            shift_num: ev.shift_num,
            order_guid: ev
                .order
                .as_ref()
                .and_then(|o| o.guid.as_ref())
                .map(|g| g.canonical()),
            body,
            parsed: Some(Arc::new(ev)),
        }
    }
}

/// A body that did not read as an event, kept verbatim.
#[derive(Debug, Clone)]
pub struct NewQuarantine {
    pub received_at: i64,
    pub path: String,
    pub reason: String,
    pub remote: Option<String>,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Stored {
        offset: i64,
    },
    /// The same event is already in the log at `offset`: the same
    /// (guid, seqnumber) and the same bytes, received within the dedupe
    /// window. The same key with other bytes is `Stored`.
    Duplicate {
        offset: i64,
    },
    Quarantined {
        id: i64,
    },
}

/// What the writer tells the rest of the process after each commit.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Highest offset committed so far (0 = empty log).
    pub head: i64,
    pub gaps_found: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the log writer has stopped")]
    Stopped,
    #[error("commit failed: {0}")]
    Commit(String),
}

/// One event as stored in the log (its body as received, whatever the
/// stored encoding). A read without bodies leaves `body` empty.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub offset: i64,
    pub received_at: i64,
    pub stream_guid: String,
    pub seqnumber: i64,
    pub situation: i64,
    pub rest_code: Option<String>,
    pub event_time: Option<String>,
    pub shift_num: Option<i64>,
    pub order_guid: Option<String>,
    pub body: Bytes,
    /// The body already read, when the entry came from the [`Tail`].
    pub parsed: Option<Arc<rk7::Event>>,
}

impl LogEntry {
    /// The entry an appended event became at `offset`.
    fn stored(offset: i64, e: NewEvent) -> LogEntry {
        LogEntry {
            offset,
            received_at: e.received_at,
            stream_guid: e.stream_guid,
            seqnumber: e.seqnumber,
            situation: e.situation,
            rest_code: e.rest_code,
            event_time: e.event_time,
            shift_num: e.shift_num,
            order_guid: e.order_guid,
            body: e.body,
            parsed: e.parsed,
        }
    }

    /// The event in the body: the copy ingest read when there is one,
    /// otherwise the body read now.
    pub fn event(&self) -> Result<Arc<rk7::Event>, rk7::ReadError> {
        match &self.parsed {
            Some(ev) => Ok(ev.clone()),
            None => rk7::read(&self.body).map(Arc::new),
        }
    }
}

/// A seqnumber jump in a cash server's stream: events r_keeper did not
/// deliver.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gap {
    pub id: i64,
    pub stream_guid: String,
    pub rest_code: Option<String>,
    pub from_seq: i64,
    pub to_seq: i64,
    pub missing: i64,
    pub detected_at: String,
    pub before_offset: i64,
}

/// An event stored under a `(guid, seqnumber)` that an earlier event
/// within the dedupe window had with other bytes, as the operator API lists
/// it. Not a duplicate (the bytes differ), not a gap (the seqnumber is not
/// new): r_keeper reused the key, and both events are kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyReuse {
    pub offset: i64,
    pub stream_guid: String,
    pub seqnumber: i64,
    /// The first event stored under the key within the window.
    pub first_offset: i64,
    pub received_at: String,
}

/// A quarantined body as the operator API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantineItem {
    pub id: i64,
    pub received_at: String,
    pub path: String,
    pub reason: String,
    pub remote: Option<String>,
    pub size: usize,
    /// The body as text (lossy UTF-8) for a quick look; the exact bytes are
    /// kept in storage.
    pub body_preview: String,
}

/// A cash server's stream of events, as the log knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StreamInfo {
    pub stream_guid: String,
    pub rest_code: Option<String>,
    pub first_seq: i64,
    pub last_seq: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: i64,
}
