//! Reading the log: entries after an offset (from the tail when it holds
//! them), one entry, the head, gaps, the quarantine, streams, and a shift's
//! events.

use bytes::Bytes;

use super::{Gap, KeyReuse, LogEntry, QuarantineItem, StreamInfo, codec};
use crate::core::clock::ms_to_rfc3339;
use crate::core::store::{Db, StoreError};

const ENTRY_COLS: &str = "log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid";

/// A row of `events` as stored (body still encoded).
#[derive(sqlx::FromRow)]
struct EntryRow {
    log_offset: i64,
    received_at: i64,
    stream_guid: String,
    seqnumber: i64,
    situation: i64,
    rest_code: Option<String>,
    event_time: Option<String>,
    shift_num: Option<i64>,
    order_guid: Option<String>,
    #[sqlx(default)]
    body: Option<Vec<u8>>,
    #[sqlx(default)]
    codec: Option<i64>,
}

impl TryFrom<EntryRow> for LogEntry {
    type Error = StoreError;

    fn try_from(r: EntryRow) -> Result<LogEntry, StoreError> {
        let body = match r.body {
            Some(stored) => codec::decode(r.codec.unwrap_or(0), stored)?,
            None => Bytes::new(),
        };
        Ok(LogEntry {
            offset: r.log_offset,
            received_at: r.received_at,
            stream_guid: r.stream_guid,
            seqnumber: r.seqnumber,
            situation: r.situation,
            rest_code: r.rest_code,
            event_time: r.event_time,
            shift_num: r.shift_num,
            order_guid: r.order_guid,
            body,
            parsed: None,
        })
    }
}

fn entries(rows: Vec<EntryRow>) -> Result<Vec<LogEntry>, StoreError> {
    rows.into_iter().map(LogEntry::try_from).collect()
}

/// Reads up to `limit` entries after `after`, in offset order.
pub async fn read_after(
    db: &Db,
    after: i64,
    limit: i64,
    with_body: bool,
) -> Result<Vec<LogEntry>, StoreError> {
    if let Some(hit) = db.tail.after(after, usize::try_from(limit).unwrap_or(0)) {
        metrics::counter!("tillgate_log_reads_total", "from" => "memory").increment(1);
        return Ok(hit);
    }
    metrics::counter!("tillgate_log_reads_total", "from" => "database").increment(1);
    let sql = if with_body {
        format!(
            "SELECT {ENTRY_COLS}, body, codec FROM events WHERE log_offset > $1 ORDER BY log_offset LIMIT $2"
        )
    } else {
        format!(
            "SELECT {ENTRY_COLS} FROM events WHERE log_offset > $1 ORDER BY log_offset LIMIT $2"
        )
    };
    entries(
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&db.read)
            .await?,
    )
}

pub async fn get(db: &Db, offset: i64) -> Result<Option<LogEntry>, StoreError> {
    let sql = format!("SELECT {ENTRY_COLS}, body, codec FROM events WHERE log_offset = $1");
    let row: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(offset)
        .fetch_optional(&db.read)
        .await?;
    row.map(LogEntry::try_from).transpose()
}

pub async fn head(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(log_offset), 0) FROM events")
            .fetch_one(&db.read)
            .await?,
    )
}

/// The first offset whose event was received at or after `ms`.
pub async fn offset_at_time(db: &Db, ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT MIN(log_offset) FROM events WHERE received_at >= $1")
            .bind(ms)
            .fetch_one(&db.read)
            .await?,
    )
}

/// A row of `gaps`, before its times are shown.
#[derive(sqlx::FromRow)]
struct GapRow {
    id: i64,
    stream_guid: String,
    rest_code: Option<String>,
    from_seq: i64,
    to_seq: i64,
    detected_at: i64,
    before_offset: i64,
}

impl From<GapRow> for Gap {
    fn from(r: GapRow) -> Gap {
        Gap {
            id: r.id,
            stream_guid: r.stream_guid,
            rest_code: r.rest_code,
            from_seq: r.from_seq,
            to_seq: r.to_seq,
            missing: r.to_seq - r.from_seq + 1,
            detected_at: ms_to_rfc3339(r.detected_at),
            before_offset: r.before_offset,
        }
    }
}

pub async fn gaps(db: &Db, after_id: i64, limit: i64) -> Result<Vec<Gap>, StoreError> {
    page::<GapRow, _>(
        db,
        "SELECT id, stream_guid, rest_code, from_seq, to_seq, detected_at, before_offset FROM gaps WHERE id > $1 ORDER BY id LIMIT $2",
        after_id,
        limit,
    )
    .await
}

/// An event that reused a key, as `events` holds it.
#[derive(sqlx::FromRow)]
struct KeyReuseRow {
    log_offset: i64,
    stream_guid: String,
    seqnumber: i64,
    first_offset: i64,
    received_at: i64,
}

impl From<KeyReuseRow> for KeyReuse {
    fn from(r: KeyReuseRow) -> KeyReuse {
        KeyReuse {
            offset: r.log_offset,
            stream_guid: r.stream_guid,
            seqnumber: r.seqnumber,
            first_offset: r.first_offset,
            received_at: ms_to_rfc3339(r.received_at),
        }
    }
}

/// Events stored under a `(guid, seqnumber)` that other bytes already had,
/// after offset `after`, oldest first (through the partial index
/// `events_key_reused`, so the other events are not read).
pub async fn key_reuses(db: &Db, after: i64, limit: i64) -> Result<Vec<KeyReuse>, StoreError> {
    page::<KeyReuseRow, _>(
        db,
        "SELECT log_offset, stream_guid, seqnumber, first_offset, received_at FROM events WHERE first_offset IS NOT NULL AND log_offset > $1 ORDER BY log_offset LIMIT $2",
        after,
        limit,
    )
    .await
}

/// A row of `quarantine`, body included.
#[derive(sqlx::FromRow)]
struct QuarantineRow {
    id: i64,
    received_at: i64,
    path: String,
    reason: String,
    remote: Option<String>,
    body: Vec<u8>,
}

impl From<QuarantineRow> for QuarantineItem {
    fn from(r: QuarantineRow) -> QuarantineItem {
        let preview = String::from_utf8_lossy(&r.body[..r.body.len().min(2048)]).into();
        QuarantineItem {
            id: r.id,
            received_at: ms_to_rfc3339(r.received_at),
            path: r.path,
            reason: r.reason,
            remote: r.remote,
            size: r.body.len(),
            body_preview: preview,
        }
    }
}

pub async fn quarantine_list(
    db: &Db,
    after_id: i64,
    limit: i64,
) -> Result<Vec<QuarantineItem>, StoreError> {
    page::<QuarantineRow, _>(
        db,
        "SELECT id, received_at, path, reason, remote, body FROM quarantine WHERE id > $1 ORDER BY id LIMIT $2",
        after_id,
        limit,
    )
    .await
}

/// One page of an id-keyed table (`sql` binds the id to go after and the
/// limit), each row turned into what the API shows.
async fn page<R, T>(
    db: &Db,
    sql: &'static str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<T>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    T: From<R>,
{
    let rows: Vec<R> = sqlx::query_as(sql)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&db.read)
        .await?;
    Ok(rows.into_iter().map(T::from).collect())
}

pub async fn quarantine_body(db: &Db, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT body FROM quarantine WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.read)
            .await?,
    )
}

/// The streams of restaurant `rest_code`, most recently heard first.
pub async fn streams_of(
    db: &Db,
    rest_code: &str,
    limit: i64,
) -> Result<Vec<StreamInfo>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT stream_guid, rest_code, first_seq, last_seq, first_seen, last_seen, events FROM streams WHERE rest_code = $1 ORDER BY last_seen DESC LIMIT $2",
    )
    .bind(rest_code)
    .bind(limit)
    .fetch_all(&db.read)
    .await?)
}

/// Every event of one restaurant's shift up to offset `upto`, in log order,
/// on the caller's connection (a transaction sees its own snapshot). Uses
/// the `(rest_code, shift_num, log_offset)` index.
pub async fn shift_events(
    conn: &mut sqlx::AnyConnection,
    rest_code: &str,
    shift_num: i64,
    upto: i64,
) -> Result<Vec<LogEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLS}, body, codec FROM events WHERE rest_code = $1 AND shift_num = $2 AND log_offset <= $3 ORDER BY log_offset"
    );
    entries(
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(rest_code)
            .bind(shift_num)
            .bind(upto)
            .fetch_all(conn)
            .await?,
    )
}
