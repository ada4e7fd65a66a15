//! The log writer: the single task that appends, one group commit at a
//! time, and answers each caller after the commit.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sqlx::{Any, Transaction};
use tokio::sync::watch;

use bytes::Bytes;

use super::{AppendError, AppendOutcome, Codec, Committed, LogEntry, NewEvent, NewQuarantine};
use crate::core::clock::now_ms;
use crate::core::group_commit::{self, Group, Groups, Submitter};
use crate::core::store::{self, Db, StoreError};

/// One request to the writer.
enum WriteOp {
    Event(NewEvent),
    Quarantine(NewQuarantine),
    /// Retention: delete events up to `upto` received before `cutoff_ms`.
    /// Through the writer because on SQLite nothing else writes the log's
    /// file, so the writer never waits for its lock.
    Prune {
        upto: i64,
        cutoff_ms: i64,
    },
}

/// What one request became.
#[derive(Debug, Clone, Copy)]
enum Done {
    Append(AppendOutcome),
    Pruned(u64),
}

/// The writer's answer: the outcome, or why the group's commit failed
/// (a `String`, because every caller of the group gets a copy).
type Reply = Result<Done, String>;

/// Cloneable handle to the single log writer.
#[derive(Clone)]
pub struct LogWriter {
    submit: Submitter<WriteOp, Reply>,
    committed: watch::Receiver<Committed>,
}

impl LogWriter {
    pub async fn append(&self, e: NewEvent) -> Result<AppendOutcome, AppendError> {
        self.appended(WriteOp::Event(e)).await
    }

    pub async fn quarantine(&self, q: NewQuarantine) -> Result<AppendOutcome, AppendError> {
        self.appended(WriteOp::Quarantine(q)).await
    }

    /// Deletes events at or below `upto` received before `cutoff_ms`;
    /// returns how many went. See `log::prune` for how `upto` is chosen.
    pub async fn prune(&self, upto: i64, cutoff_ms: i64) -> Result<u64, AppendError> {
        match self.send(WriteOp::Prune { upto, cutoff_ms }).await? {
            Done::Pruned(n) => Ok(n),
            Done::Append(_) => Err(AppendError::Commit(
                "a prune was answered as an append".into(),
            )),
        }
    }

    async fn appended(&self, op: WriteOp) -> Result<AppendOutcome, AppendError> {
        match self.send(op).await? {
            Done::Append(o) => Ok(o),
            Done::Pruned(_) => Err(AppendError::Commit(
                "an append was answered as a prune".into(),
            )),
        }
    }

    async fn send(&self, op: WriteOp) -> Result<Done, AppendError> {
        self.submit
            .submit(op)
            .await
            .map_err(|_| AppendError::Stopped)?
            .map_err(AppendError::Commit)
    }

    /// Watch this to learn about new commits without polling.
    pub fn subscribe(&self) -> watch::Receiver<Committed> {
        self.committed.clone()
    }
}

/// A stream's highest seqnumber, as `streams` holds it.
#[derive(sqlx::FromRow)]
struct StreamLast {
    stream_guid: String,
    last_seq: i64,
}

/// The writer task's state.
pub struct LogWriterTask {
    db: Db,
    /// On SQLite, the writer's own synchronous connection to the log's
    /// file: each statement is a function call on the writer's thread
    /// rather than a round trip to sqlx's worker thread. `None` on
    /// PostgreSQL, which the writer reaches through `db.write`.
    sqlite: Option<rusqlite::Connection>,
    /// How bodies are stored.
    codec: Codec,
    groups: Groups<WriteOp, Reply>,
    /// Shared with the PostgreSQL head follower ([`super::follow`]),
    /// which holds it weakly and so ends with the writer.
    committed: std::sync::Arc<watch::Sender<Committed>>,
    next_offset: i64,
    next_gap_id: i64,
    next_quarantine_id: i64,
    /// Each stream's highest committed seqnumber.
    streams: HashMap<String, i64>,
    /// How much the quarantine may hold (`[ingest] quarantine_*`).
    quarantine_limits: QuarantineLimits,
    /// Quarantined bodies dropped by the batch being committed, counted
    /// once the commit holds.
    quarantine_dropped: u64,
    /// How far back (ms before a suspect's `received_at`) its key's
    /// earlier events are compared with it (`[log] dedupe_window_days`).
    dedupe_window_ms: i64,
}

/// How far back a resend is compared when `[log] dedupe_window_days` is not
/// set: a cash server resends what it was not answered for within minutes
/// or, after an outage, days; a week covers that with room.
pub const DEFAULT_DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// An event already stored under a suspect's key, within the window.
struct Earlier {
    offset: i64,
    received_at: i64,
    /// Decoded: the bytes as received.
    body: Bytes,
}

/// Reads one event under a suspect's key, both backends alike.
#[derive(sqlx::FromRow)]
struct EarlierRow {
    log_offset: i64,
    received_at: i64,
    body: Vec<u8>,
    codec: i64,
}

/// The earlier events under a key, received at or after a cutoff: the same
/// text for both backends (`?n` on the writer's own SQLite connection).
const FIND_EARLIER: &str = "SELECT log_offset, received_at, body, codec FROM events WHERE stream_guid = $1 AND seqnumber = $2 AND received_at >= $3 ORDER BY log_offset";

/// The quarantine's bounds: junk posted by anyone who reaches ingest must
/// not fill the disk. Checked whenever a body is quarantined; the oldest
/// bodies go first, the newest is always kept (it keeps the ids rising).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineLimits {
    /// Total body bytes kept.
    pub max_bytes: i64,
    /// Bodies older than this are dropped.
    pub max_age_ms: i64,
}

impl Default for QuarantineLimits {
    fn default() -> Self {
        QuarantineLimits {
            max_bytes: 64 * 1024 * 1024,
            max_age_ms: 30 * 86_400_000,
        }
    }
}

/// Deletes what is past the quarantine's bounds; the same text for both
/// backends (`$1`: oldest `received_at` kept, `$2`: bytes kept).
const BOUND_QUARANTINE: &str = "DELETE FROM quarantine WHERE id < (SELECT MAX(id) FROM quarantine) AND (received_at < $1 OR id <= COALESCE((SELECT id FROM (SELECT id, SUM(LENGTH(body)) OVER (ORDER BY id DESC) AS total FROM quarantine) t WHERE total > $2 ORDER BY id DESC LIMIT 1), 0))";

impl LogWriterTask {
    /// Bounds the quarantine (the defaults otherwise).
    pub fn with_quarantine_limits(mut self, limits: QuarantineLimits) -> Self {
        self.quarantine_limits = limits;
        self
    }

    /// How far back a resend is compared (the default otherwise).
    pub fn with_dedupe_window(mut self, window: std::time::Duration) -> Self {
        self.dedupe_window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self
    }
}

/// Creates the writer handle and the task that must be spawned to serve it,
/// storing bodies with the default codec.
pub async fn writer(db: Db, max_batch: usize) -> Result<(LogWriter, LogWriterTask), StoreError> {
    writer_with(db, max_batch, Codec::default()).await
}

/// The synchronous connection the writer uses on SQLite.
fn open_log_file(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    // As the pools' pragmas: durable commits, no checkpoint inside a
    // commit (the checkpointer thread copies the WAL back), a lock wait
    // rather than an error if an operator's tool holds the file.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0; PRAGMA busy_timeout=10000; PRAGMA cache_size=-16384;",
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// [`writer`] with the body codec chosen (`[log] compression`).
pub async fn writer_with(
    db: Db,
    max_batch: usize,
    codec: Codec,
) -> Result<(LogWriter, LogWriterTask), StoreError> {
    if db.backend == store::Backend::Postgres {
        raise_head(&db).await?;
    }
    let head: i64 = if db.backend == store::Backend::Postgres {
        shared_head(&db).await?
    } else {
        sqlx::query_scalar("SELECT COALESCE(MAX(log_offset), 0) FROM events")
            .fetch_one(&db.write)
            .await?
    };
    let gap_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM gaps")
        .fetch_one(&db.write)
        .await?;
    let q_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM quarantine")
        .fetch_one(&db.write)
        .await?;
    let streams: Vec<StreamLast> = sqlx::query_as("SELECT stream_guid, last_seq FROM streams")
        .fetch_all(&db.write)
        .await?;
    let streams = streams
        .into_iter()
        .map(|s| (s.stream_guid, s.last_seq))
        .collect();
    // The queue is bounded so a flood waits in HTTP handlers (and so in
    // the senders' TCP windows) instead of growing memory without limit.
    let (submit, groups) = group_commit::channel(max_batch, max_batch * 4);
    let (ctx, crx) = watch::channel(Committed {
        head,
        gaps_found: 0,
    });
    Ok((
        LogWriter {
            submit,
            committed: crx,
        },
        LogWriterTask {
            sqlite: match &db.log_file {
                Some(path) => Some(open_log_file(path)?),
                None => None,
            },
            codec,
            db,
            groups,
            committed: std::sync::Arc::new(ctx),
            next_offset: head + 1,
            next_gap_id: gap_id + 1,
            next_quarantine_id: q_id + 1,
            streams,
            quarantine_limits: QuarantineLimits::default(),
            quarantine_dropped: 0,
            dedupe_window_ms: DEFAULT_DEDUPE_WINDOW.as_millis() as i64,
        },
    ))
}

/// A committed batch.
struct Written {
    /// Each op's outcome.
    outcomes: Vec<Done>,
    /// Each touched stream's new last seqnumber.
    touched: Vec<(String, i64)>,
    gaps: u64,
    /// Events stored under a key that other bytes already had.
    key_reuses: u64,
}

/// What the lookup of a batch's suspects found: each key's earlier events
/// within the window, oldest first.
type Found<'a> = HashMap<(&'a str, i64), Vec<Earlier>>;

/// One event to insert: its offset, the event, and the offset of the first
/// event under its key when it reuses a key.
type Row<'a> = (i64, &'a NewEvent, Option<i64>);

/// What one batch writes, decided in memory before any SQL runs: the rules
/// (duplicates, gaps, new streams) stay apart from the statements, which
/// then need only a handful of round trips whatever the batch size.
struct Plan<'a> {
    outcomes: Vec<Done>,
    /// Retention requests: their place in `outcomes`, `upto`, `cutoff_ms`.
    prunes: Vec<(usize, i64, i64)>,
    rows: Vec<Row<'a>>,
    gaps: Vec<NewGap<'a>>,
    streams: Vec<StreamUpdate<'a>>,
    quarantine: Vec<(i64, &'a NewQuarantine)>,
    /// Each touched stream's highest seqnumber after the batch.
    last_seq: HashMap<&'a str, i64>,
}

/// One row of `gaps` to insert.
struct NewGap<'a> {
    id: i64,
    event: &'a NewEvent,
    from: i64,
    to: i64,
    before_offset: i64,
}

/// One row of `streams` to insert (a new stream) or bump.
struct StreamUpdate<'a> {
    guid: &'a str,
    first: &'a NewEvent,
    last_seq: i64,
    last_seen: i64,
    events: i64,
    new: bool,
}

impl LogWriterTask {
    /// Runs until every `LogWriter` handle is dropped, committing what is
    /// still queued: the server drops its handles only after it stopped
    /// accepting, so nothing received is left behind.
    ///
    /// The loop runs on a thread of its own with a single-threaded runtime.
    /// Every statement is a round trip to the database (sqlx's SQLite worker
    /// thread, or PostgreSQL); on the server's runtime each return trip
    /// waited behind the HTTP tasks, and a batch of 64 events took ~15 ms of
    /// such waits for ~2 ms of work. Here nothing else competes for the
    /// thread, so a round trip costs a thread wake-up.
    pub async fn run(self) {
        match crate::core::runtimes::Background::start("tillgate-log-writer") {
            Ok(own) => {
                if let Err(e) = own.handle.spawn(self.run_here()).await {
                    tracing::error!(error = %e, "log writer task failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the log writer's thread; writing from the server's runtime");
                self.run_here().await;
            }
        }
    }

    /// The writer loop itself, on whatever runtime calls it. Each group is
    /// whatever was queued when the previous commit ended (never waiting
    /// for more, so a lone event is not delayed).
    async fn run_here(mut self) {
        if self.db.backend == store::Backend::Postgres {
            tokio::spawn(super::follow::follow(
                self.db.clone(),
                std::sync::Arc::downgrade(&self.committed),
            ));
        }
        while let Some(group) = self.groups.next().await {
            let started = Instant::now();
            let saved = self.ids();
            let result = self.write_batch(&group.requests).await;
            self.finish(group, result, started, saved);
        }
    }

    fn ids(&self) -> (i64, i64, i64) {
        (self.next_offset, self.next_gap_id, self.next_quarantine_id)
    }

    /// Answers every caller of a group and publishes the commit.
    fn finish(
        &mut self,
        group: Group<WriteOp, Reply>,
        result: Result<Written, StoreError>,
        started: Instant,
        saved: (i64, i64, i64),
    ) {
        let size = group.len();
        match result {
            Ok(Written {
                outcomes,
                touched,
                gaps,
                key_reuses,
            }) => {
                self.streams.extend(touched);
                let mut accepted = 0u64;
                let mut dups = 0u64;
                let mut quarantined = 0u64;
                let mut entries = Vec::with_capacity(size);
                let (ops, replies) = group.into_parts();
                for (op, outcome) in ops.into_iter().zip(&outcomes) {
                    match outcome {
                        Done::Append(AppendOutcome::Stored { .. }) => accepted += 1,
                        Done::Append(AppendOutcome::Duplicate { .. }) => dups += 1,
                        Done::Append(AppendOutcome::Quarantined { .. }) => quarantined += 1,
                        Done::Pruned(_) => {}
                    }
                    if let (WriteOp::Event(e), Done::Append(AppendOutcome::Stored { offset })) =
                        (op, outcome)
                    {
                        entries.push(LogEntry::stored(*offset, e));
                    }
                }
                // Into the tail before the head moves, so whoever hears of
                // the commit finds the entries there.
                self.db.tail.push(entries);
                let head = self.next_offset - 1;
                self.committed.send_modify(|c| {
                    c.head = c.head.max(head);
                    c.gaps_found += gaps;
                });
                replies.answer(outcomes.into_iter().map(Ok));
                metrics::counter!("tillgate_events_accepted_total").increment(accepted);
                metrics::counter!("tillgate_events_duplicate_total").increment(dups);
                metrics::counter!("tillgate_events_quarantined_total").increment(quarantined);
                metrics::counter!("tillgate_quarantine_dropped_total")
                    .increment(std::mem::take(&mut self.quarantine_dropped));
                metrics::counter!("tillgate_event_gaps_total").increment(gaps);
                metrics::counter!("tillgate_events_key_reused_total").increment(key_reuses);
                metrics::histogram!("tillgate_commit_batch_size").record(size as f64);
                metrics::histogram!("tillgate_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!("tillgate_log_head_offset").set(head as f64);
            }
            Err(e) => {
                // Nothing of this batch is committed: undo the offsets we
                // handed out and tell every sender, who then answers 5xx so
                // the cash server keeps the event and sends it again.
                (self.next_offset, self.next_gap_id, self.next_quarantine_id) = saved;
                self.quarantine_dropped = 0;
                tracing::error!(error = %e, size, "log commit failed");
                group.answer_all(Err(e.to_string()));
            }
        }
    }

    /// Events at or below their stream's last seqnumber may be resends and
    /// must be looked up; everything above is new without a query. Each
    /// key once, with the cutoff of its oldest suspect's window (the plan
    /// applies each suspect's own window).
    fn suspects<'a>(&self, batch: &'a [WriteOp]) -> Vec<((&'a str, i64), i64)> {
        let mut keys: HashMap<(&str, i64), i64> = HashMap::new();
        for op in batch {
            if let WriteOp::Event(e) = op {
                let last = self.streams.get(&e.stream_guid).copied();
                if last.is_some_and(|l| e.seqnumber <= l) {
                    let cutoff = e.received_at.saturating_sub(self.dedupe_window_ms);
                    keys.entry((e.stream_guid.as_str(), e.seqnumber))
                        .and_modify(|c| *c = (*c).min(cutoff))
                        .or_insert(cutoff);
                }
            }
        }
        keys.into_iter().collect()
    }

    /// Assigns offsets and ids and applies the duplicate and gap rules.
    /// `existing` holds the suspects' earlier events found in the log.
    ///
    /// A duplicate is the same event again: the same key and the same
    /// bytes, received within the window; it is answered with the stored
    /// event's offset. The same key with other bytes is another event
    /// (r_keeper does not promise a driver run's guid is unique), so it is
    /// stored, marked with the key's first offset, and counted: dropping it
    /// would lose an acknowledged event. It is not a gap either: its
    /// seqnumber is at or below the stream's last.
    fn plan<'a>(&mut self, batch: &'a [WriteOp], existing: &Found<'a>) -> Plan<'a> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rows: Vec<Row<'a>> = Vec::with_capacity(batch.len());
        // This batch's events by key: offset and bytes.
        let mut in_batch: HashMap<(&str, i64), Vec<(i64, &Bytes)>> = HashMap::new();
        let mut last_seq: HashMap<&str, i64> = HashMap::new();
        let mut new_streams: HashSet<&str> = HashSet::new();
        let mut gaps = Vec::new();
        let mut quarantine = Vec::new();
        let mut prunes = Vec::new();
        for op in batch {
            match op {
                WriteOp::Event(e) => {
                    let key = (e.stream_guid.as_str(), e.seqnumber);
                    let cutoff = e.received_at.saturating_sub(self.dedupe_window_ms);
                    let earlier = existing
                        .get(&key)
                        .into_iter()
                        .flatten()
                        .filter(|x| x.received_at >= cutoff)
                        .map(|x| (x.offset, &x.body))
                        .chain(in_batch.get(&key).into_iter().flatten().copied());
                    // A backfilled stream's GUID is tillgate's own, derived
                    // from the order and its version: there the key alone is
                    // the event (its body carries the time it was fetched).
                    let ours = super::is_backfilled(&e.stream_guid);
                    let mut first = None;
                    let mut same = None;
                    for (off, body) in earlier {
                        first = Some(first.map_or(off, |f: i64| f.min(off)));
                        if same.is_none() && (ours || *body == e.body) {
                            same = Some(off);
                        }
                    }
                    if let Some(offset) = same {
                        outcomes.push(Done::Append(AppendOutcome::Duplicate { offset }));
                        continue;
                    }
                    let offset = self.next_offset;
                    self.next_offset += 1;
                    in_batch.entry(key).or_default().push((offset, &e.body));
                    if let Some(first) = first {
                        tracing::warn!(stream = %e.stream_guid, seqnumber = e.seqnumber, offset, first, "an event reuses a (guid, seqnumber) with other bytes: stored as its own event");
                    }
                    let prev = last_seq
                        .get(e.stream_guid.as_str())
                        .copied()
                        .or_else(|| self.streams.get(&e.stream_guid).copied());
                    match prev {
                        Some(prev) if e.seqnumber > prev + 1 => {
                            gaps.push(NewGap {
                                id: self.next_gap_id,
                                event: e,
                                from: prev + 1,
                                to: e.seqnumber - 1,
                                before_offset: offset,
                            });
                            self.next_gap_id += 1;
                        }
                        None => {
                            new_streams.insert(e.stream_guid.as_str());
                        }
                        _ => {}
                    }
                    if prev.is_none_or(|p| e.seqnumber > p) {
                        last_seq.insert(e.stream_guid.as_str(), e.seqnumber);
                    }
                    rows.push((offset, e, first));
                    outcomes.push(Done::Append(AppendOutcome::Stored { offset }));
                }
                WriteOp::Quarantine(q) => {
                    let id = self.next_quarantine_id;
                    self.next_quarantine_id += 1;
                    quarantine.push((id, q));
                    outcomes.push(Done::Append(AppendOutcome::Quarantined { id }));
                }
                WriteOp::Prune { upto, cutoff_ms } => {
                    prunes.push((outcomes.len(), *upto, *cutoff_ms));
                    outcomes.push(Done::Pruned(0));
                }
            }
        }
        // One row per touched stream, not per event.
        let mut streams: Vec<StreamUpdate> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (_, e, _) in &rows {
            let guid = e.stream_guid.as_str();
            match index.get(guid) {
                Some(&i) => {
                    streams[i].events += 1;
                    streams[i].last_seen = streams[i].last_seen.max(e.received_at);
                }
                None => {
                    index.insert(guid, streams.len());
                    streams.push(StreamUpdate {
                        guid,
                        first: e,
                        last_seq: last_seq.get(guid).copied().unwrap_or(e.seqnumber),
                        last_seen: e.received_at,
                        events: 1,
                        new: new_streams.contains(guid),
                    });
                }
            }
        }
        for g in &gaps {
            tracing::warn!(stream = %g.event.stream_guid, from = g.from, to = g.to, "gap in a cash server's event stream: events lost before they reached tillgate");
        }
        Plan {
            outcomes,
            prunes,
            rows,
            gaps,
            streams,
            quarantine,
            last_seq,
        }
    }

    /// One transaction for the batch.
    async fn write_batch(&mut self, batch: &[WriteOp]) -> Result<Written, StoreError> {
        match self.sqlite.take() {
            Some(mut conn) => {
                let written = self.write_sqlite(&mut conn, batch);
                self.sqlite = Some(conn);
                written
            }
            None => self.write_sqlx(batch).await,
        }
    }

    /// SQLite: the batch on the writer's own connection, row by row through
    /// cached statements (a call each, no round trip), one durable commit.
    fn write_sqlite(
        &mut self,
        conn: &mut rusqlite::Connection,
        batch: &[WriteOp],
    ) -> Result<Written, StoreError> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut existing: Found = HashMap::new();
        {
            let mut find = tx.prepare_cached(&FIND_EARLIER.replace('$', "?"))?;
            for ((guid, seq), cutoff) in self.suspects(batch) {
                let mut rows = find.query(rusqlite::params![guid, seq, cutoff])?;
                while let Some(row) = rows.next()? {
                    existing.entry((guid, seq)).or_default().push(Earlier {
                        offset: row.get(0)?,
                        received_at: row.get(1)?,
                        body: super::codec::decode(row.get(3)?, row.get(2)?)?,
                    });
                }
            }
        }
        let mut plan = self.plan(batch, &existing);
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid, body, codec, first_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (offset, e, first) in &plan.rows {
                insert.execute(rusqlite::params![
                    offset,
                    e.received_at,
                    e.stream_guid,
                    e.seqnumber,
                    e.situation,
                    e.rest_code,
                    e.event_time,
                    e.shift_num,
                    e.order_guid,
                    self.codec.encode(&e.body),
                    self.codec.id(),
                    first,
                ])?;
            }
        }
        for g in &plan.gaps {
            tx.prepare_cached(
                "INSERT INTO gaps (id, stream_guid, rest_code, from_seq, to_seq, detected_at, before_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(rusqlite::params![
                g.id,
                g.event.stream_guid,
                g.event.rest_code,
                g.from,
                g.to,
                now_ms(),
                g.before_offset
            ])?;
        }
        for st in &plan.streams {
            if st.new {
                tx.prepare_cached(
                    "INSERT INTO streams (stream_guid, rest_code, first_seq, last_seq, first_seen, last_seen, events) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(rusqlite::params![
                    st.guid,
                    st.first.rest_code,
                    st.first.seqnumber,
                    st.last_seq,
                    st.first.received_at,
                    st.last_seen,
                    st.events
                ])?;
            } else {
                tx.prepare_cached(
                    "UPDATE streams SET last_seq = MAX(last_seq, ?2), last_seen = ?3, events = events + ?4 WHERE stream_guid = ?1",
                )?
                .execute(rusqlite::params![st.guid, st.last_seq, st.last_seen, st.events])?;
            }
        }
        for (id, q) in &plan.quarantine {
            tx.prepare_cached(
                "INSERT INTO quarantine (id, received_at, path, reason, remote, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![
                id,
                q.received_at,
                q.path,
                q.reason,
                q.remote,
                &q.body[..]
            ])?;
        }
        if !plan.quarantine.is_empty() {
            let l = self.quarantine_limits;
            self.quarantine_dropped += tx
                .prepare_cached(&BOUND_QUARANTINE.replace('$', "?"))?
                .execute(rusqlite::params![now_ms() - l.max_age_ms, l.max_bytes])?
                as u64;
        }
        for (at, upto, cutoff) in &plan.prunes {
            let n = tx
                .prepare_cached("DELETE FROM events WHERE log_offset <= ?1 AND received_at < ?2")?
                .execute(rusqlite::params![upto, cutoff])?;
            plan.outcomes[*at] = Done::Pruned(n as u64);
        }
        tx.commit()?;
        Ok(plan.into_result())
    }

    /// PostgreSQL: one transaction in a handful of statements whatever its
    /// size: the suspects, one multi-row insert, one statement for the
    /// touched streams.
    async fn write_sqlx(&mut self, batch: &[WriteOp]) -> Result<Written, StoreError> {
        let mut tx = self.db.write.begin().await?;
        if self.db.backend == store::Backend::Postgres {
            self.take_head(&mut tx, batch).await?;
        }
        let mut existing: Found = HashMap::new();
        for ((guid, seq), cutoff) in self.suspects(batch) {
            let found: Vec<EarlierRow> = sqlx::query_as(FIND_EARLIER)
                .bind(guid)
                .bind(seq)
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
            for r in found {
                existing.entry((guid, seq)).or_default().push(Earlier {
                    offset: r.log_offset,
                    received_at: r.received_at,
                    body: super::codec::decode(r.codec, r.body)?,
                });
            }
        }
        let mut plan = self.plan(batch, &existing);
        insert_events(&mut tx, self.db.backend, self.codec, &plan.rows).await?;
        for g in &plan.gaps {
            sqlx::query(
                "INSERT INTO gaps (id, stream_guid, rest_code, from_seq, to_seq, detected_at, before_offset) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(g.id)
            .bind(&g.event.stream_guid)
            .bind(g.event.rest_code.as_deref())
            .bind(g.from)
            .bind(g.to)
            .bind(now_ms())
            .bind(g.before_offset)
            .execute(&mut *tx)
            .await?;
        }
        upsert_streams(&mut tx, self.db.backend, &plan.streams).await?;
        for (id, q) in &plan.quarantine {
            sqlx::query(
                "INSERT INTO quarantine (id, received_at, path, reason, remote, body) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(*id)
            .bind(q.received_at)
            .bind(&q.path)
            .bind(&q.reason)
            .bind(q.remote.as_deref())
            .bind(q.body.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        if !plan.quarantine.is_empty() {
            let l = self.quarantine_limits;
            self.quarantine_dropped += sqlx::query(BOUND_QUARANTINE)
                .bind(now_ms() - l.max_age_ms)
                .bind(l.max_bytes)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for (at, upto, cutoff) in &plan.prunes {
            let done =
                sqlx::query("DELETE FROM events WHERE log_offset <= $1 AND received_at < $2")
                    .bind(*upto)
                    .bind(*cutoff)
                    .execute(&mut *tx)
                    .await?;
            plan.outcomes[*at] = Done::Pruned(done.rows_affected());
        }
        if self.db.backend == store::Backend::Postgres {
            sqlx::query(
                "UPDATE log_head SET last_offset = $1, last_gap_id = $2, last_quarantine_id = $3 WHERE id = 1",
            )
            .bind(self.next_offset - 1)
            .bind(self.next_gap_id - 1)
            .bind(self.next_quarantine_id - 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(plan.into_result())
    }
}

impl LogWriterTask {
    /// PostgreSQL, where other instances may write the same log: locks the
    /// `log_head` row for the rest of `tx` and loads from the database what
    /// the batch is decided on (next offset and ids, the batch's streams'
    /// last seqnumbers). Every writer of every instance takes this lock
    /// first, so commits are serialised: offsets are dense and in commit
    /// order (a commit becomes visible before its lock is released, so no
    /// reader ever sees offset n+1 without n), and a `(guid, seqnumber)`
    /// sent to two instances at once is stored once. The cost is three
    /// round trips per group commit, not per event.
    async fn take_head(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        batch: &[WriteOp],
    ) -> Result<(), StoreError> {
        let (offset, gap, quarantine): (i64, i64, i64) = sqlx::query_as(
            "SELECT last_offset, last_gap_id, last_quarantine_id FROM log_head WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut **tx)
        .await?;
        self.next_offset = offset + 1;
        self.next_gap_id = gap + 1;
        self.next_quarantine_id = quarantine + 1;
        let mut guids: Vec<&str> = batch
            .iter()
            .filter_map(|op| match op {
                WriteOp::Event(e) => Some(e.stream_guid.as_str()),
                WriteOp::Quarantine(_) | WriteOp::Prune { .. } => None,
            })
            .collect();
        guids.sort_unstable();
        guids.dedup();
        for chunk in guids.chunks(200) {
            for g in chunk {
                self.streams.remove(*g);
            }
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT stream_guid, last_seq FROM streams WHERE stream_guid IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query_as::<_, StreamLast>(sqlx::AssertSqlSafe(sql));
            for g in chunk {
                q = q.bind(*g);
            }
            for s in q.fetch_all(&mut **tx).await? {
                self.streams.insert(s.stream_guid, s.last_seq);
            }
        }
        Ok(())
    }
}

/// Makes sure `log_head` is at least what the tables hold: a log written
/// before the row was kept (or by a SQLite writer, which does not keep it)
/// continues after its highest offset and ids. Safe while other instances
/// write: it only ever raises the row, under its lock.
async fn raise_head(db: &Db) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE log_head SET \
         last_offset = GREATEST(last_offset, (SELECT COALESCE(MAX(log_offset), 0) FROM events)), \
         last_gap_id = GREATEST(last_gap_id, (SELECT COALESCE(MAX(id), 0) FROM gaps)), \
         last_quarantine_id = GREATEST(last_quarantine_id, (SELECT COALESCE(MAX(id), 0) FROM quarantine)) \
         WHERE id = 1",
    )
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The head as `log_head` has it (PostgreSQL): what every instance
/// committed.
pub(super) async fn shared_head(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT last_offset FROM log_head WHERE id = 1")
            .fetch_one(&db.read)
            .await?,
    )
}

impl Plan<'_> {
    fn into_result(self) -> Written {
        let touched = self
            .last_seq
            .into_iter()
            .map(|(g, s)| (g.to_string(), s))
            .collect();
        Written {
            key_reuses: self.rows.iter().filter(|r| r.2.is_some()).count() as u64,
            outcomes: self.outcomes,
            touched,
            gaps: self.gaps.len() as u64,
        }
    }
}

/// The touched streams in at most two statements: a multi-row insert of
/// the new ones and one `UPDATE ... FROM (VALUES ...)` of the others (both
/// SQLite and PostgreSQL name the VALUES columns column1, column2, ...).
async fn upsert_streams(
    tx: &mut Transaction<'static, Any>,
    backend: store::Backend,
    streams: &[StreamUpdate<'_>],
) -> Result<(), StoreError> {
    for chunk in streams
        .iter()
        .filter(|s| s.new)
        .collect::<Vec<_>>()
        .chunks(100)
    {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(store::multi_row(
            backend,
            "INSERT INTO streams (stream_guid, rest_code, first_seq, last_seq, first_seen, last_seen, events) VALUES ",
            chunk.len(),
            7,
        )));
        for s in chunk {
            q = q
                .bind(s.guid)
                .bind(s.first.rest_code.as_deref())
                .bind(s.first.seqnumber)
                .bind(s.last_seq)
                .bind(s.first.received_at)
                .bind(s.last_seen)
                .bind(s.events);
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in streams
        .iter()
        .filter(|s| !s.new)
        .collect::<Vec<_>>()
        .chunks(100)
    {
        let mut sql = String::from(
            "UPDATE streams SET last_seq = CASE WHEN streams.last_seq > v.column2 THEN streams.last_seq ELSE v.column2 END, last_seen = v.column3, events = streams.events + v.column4 FROM (",
        );
        sql.push_str(&store::multi_row(backend, "VALUES ", chunk.len(), 4));
        sql.push_str(") AS v WHERE streams.stream_guid = v.column1");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q
                .bind(s.guid)
                .bind(s.last_seq)
                .bind(s.last_seen)
                .bind(s.events);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Multi-row INSERT: one statement per chunk instead of one per event keeps
/// the per-event cost of a commit small.
async fn insert_events(
    tx: &mut Transaction<'static, Any>,
    backend: store::Backend,
    codec: Codec,
    rows: &[Row<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(200) {
        let sql = store::multi_row(
            backend,
            "INSERT INTO events (log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid, body, codec, first_offset) VALUES ",
            chunk.len(),
            12,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (offset, e, first) in chunk {
            q = q
                .bind(*offset)
                .bind(e.received_at)
                .bind(e.stream_guid.as_str())
                .bind(e.seqnumber)
                .bind(e.situation)
                .bind(e.rest_code.as_deref())
                .bind(e.event_time.as_deref())
                .bind(e.shift_num)
                .bind(e.order_guid.as_deref())
                .bind(codec.encode(&e.body))
                .bind(codec.id())
                .bind(*first);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::log::read_after;
    use bytes::Bytes;

    /// The log record of an emulator body. Ingest's own edge checks are
    /// not the log's business; the emulator's bodies always carry a key.
    fn new_event(body: Bytes, received_at: i64) -> NewEvent {
        let ev = rk7::read(&body).expect("emulator bodies read");
        let guid = ev.guid.as_ref().expect("a guid").canonical();
        let seq = i64::try_from(ev.seqnumber.expect("a seqnumber")).expect("in range");
        NewEvent::from_read(received_at, guid, seq, ev, body)
    }

    /// A log on a fresh SQLite file, its writer running.
    async fn fresh_log(dir: &tempfile::TempDir) -> (Db, LogWriter, tokio::task::JoinHandle<()>) {
        let storage = crate::core::config::Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        };
        let db = Db::open(&storage).await.unwrap();
        crate::core::migrate::migrate(&db, &crate::core::log::migrations())
            .await
            .unwrap();
        let (log, task) = writer(db.clone(), 64).await.unwrap();
        (db, log, tokio::spawn(task.run()))
    }

    fn day_bodies(n: usize) -> Vec<Vec<u8>> {
        let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
            days: 1,
            ..tillgate_simulate::Scenario::default()
        });
        day.servers
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.xml.clone()))
            .take(n)
            .collect()
    }

    #[tokio::test]
    async fn a_failed_commit_answers_every_caller_and_hands_its_offsets_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log, running) = fresh_log(&dir).await;
        let mut events = day_bodies(4)
            .into_iter()
            .enumerate()
            .map(|(i, b)| new_event(Bytes::from(b), i as i64));
        let first = log.append(events.next().unwrap()).await.unwrap();
        assert_eq!(first, AppendOutcome::Stored { offset: 1 });
        // The table is gone while two appends are in flight: their group
        // cannot commit.
        sqlx::query("ALTER TABLE events RENAME TO events_away")
            .execute(&db.write)
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            log.append(events.next().unwrap()),
            log.append(events.next().unwrap())
        );
        assert!(matches!(a, Err(AppendError::Commit(_))), "{a:?}");
        assert!(matches!(b, Err(AppendError::Commit(_))), "{b:?}");
        assert_eq!(log.subscribe().borrow().head, 1, "no head published");
        sqlx::query("ALTER TABLE events_away RENAME TO events")
            .execute(&db.write)
            .await
            .unwrap();
        // Nothing was stored, so the next event takes the next offset.
        let next = log.append(events.next().unwrap()).await.unwrap();
        assert_eq!(next, AppendOutcome::Stored { offset: 2 });
        drop(log);
        running.await.unwrap();
        assert_eq!(read_after(&db, 0, 10, false).await.unwrap().len(), 2);
    }

    /// `body` with one attribute changed: the same key, other bytes.
    fn other_bytes(body: &[u8]) -> Bytes {
        let text = String::from_utf8(body.to_vec()).unwrap();
        let changed = text.replacen("<a ", "<a Note=\"other\" ", 1);
        assert_ne!(changed, text);
        Bytes::from(changed)
    }

    #[tokio::test]
    async fn one_batch_tells_a_resend_from_a_reused_key() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::core::config::Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        };
        let db = Db::open(&storage).await.unwrap();
        crate::core::migrate::migrate(&db, &crate::core::log::migrations())
            .await
            .unwrap();
        let (log, task) = writer(db.clone(), 64).await.unwrap();
        let bodies = day_bodies(3);
        let running = tokio::spawn(task.run());
        // Known stream: its second and third events are suspects below.
        for (i, b) in bodies.iter().enumerate() {
            let stored = log
                .append(new_event(Bytes::from(b.clone()), i as i64))
                .await
                .unwrap();
            assert_eq!(
                stored,
                AppendOutcome::Stored {
                    offset: i as i64 + 1
                }
            );
        }
        drop(log);
        running.await.unwrap();
        // A second writer on the same file, its task not running yet, so
        // every request below is queued when it starts: one group.
        let (log2, task2) = writer(db.clone(), 64).await.unwrap();
        let same = new_event(Bytes::from(bodies[1].clone()), 10);
        let other = new_event(other_bytes(&bodies[1]), 10);
        let new_first = new_event(other_bytes(&bodies[2]), 10);
        let new_again = new_event(other_bytes(&bodies[2]), 11);
        let answers = {
            let log2 = log2.clone();
            tokio::spawn(async move {
                tokio::join!(
                    log2.append(same),
                    log2.append(other.clone()),
                    log2.append(other),
                    log2.append(new_first),
                    log2.append(new_again),
                )
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(log2);
        let running2 = tokio::spawn(task2.run());
        let (same, other, other_again, new_first, new_again) = answers.await.unwrap();
        assert_eq!(same.unwrap(), AppendOutcome::Duplicate { offset: 2 });
        assert_eq!(other.unwrap(), AppendOutcome::Stored { offset: 4 });
        assert_eq!(other_again.unwrap(), AppendOutcome::Duplicate { offset: 4 });
        assert_eq!(new_first.unwrap(), AppendOutcome::Stored { offset: 5 });
        assert_eq!(new_again.unwrap(), AppendOutcome::Duplicate { offset: 5 });
        running2.await.unwrap();
        let reuses = crate::core::log::key_reuses(&db, 0, 10).await.unwrap();
        let listed: Vec<(i64, i64)> = reuses.iter().map(|r| (r.offset, r.first_offset)).collect();
        assert_eq!(listed, vec![(4, 2), (5, 3)]);
        let all = read_after(&db, 0, 10, true).await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[3].body, other_bytes(&bodies[1]));
    }

    #[tokio::test]
    async fn a_backfilled_key_is_its_event_whatever_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, log, running) = fresh_log(&dir).await;
        let body = Bytes::from(day_bodies(1).remove(0));
        let backfilled = |body: Bytes| {
            let mut e = new_event(body, 0);
            e.stream_guid = crate::core::log::backfill_stream_guid("{ORDER}", 3);
            e.seqnumber = 1;
            e
        };
        let first = log.append(backfilled(body.clone())).await.unwrap();
        assert_eq!(first, AppendOutcome::Stored { offset: 1 });
        let again = log.append(backfilled(other_bytes(&body))).await.unwrap();
        assert_eq!(again, AppendOutcome::Duplicate { offset: 1 });
        drop(log);
        running.await.unwrap();
    }

    #[tokio::test]
    async fn only_events_within_the_window_are_compared() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log, running) = fresh_log(&dir).await;
        let body = Bytes::from(day_bodies(1).remove(0));
        let day = 86_400_000;
        let first = log.append(new_event(body.clone(), 0)).await.unwrap();
        assert_eq!(first, AppendOutcome::Stored { offset: 1 });
        // Within seven days of the first: a duplicate.
        let resend = log.append(new_event(body.clone(), 7 * day)).await.unwrap();
        assert_eq!(resend, AppendOutcome::Duplicate { offset: 1 });
        // A moment later the first is out of the window: stored again, and
        // not a reuse (the old event is not compared at all).
        let late = log
            .append(new_event(body.clone(), 7 * day + 1))
            .await
            .unwrap();
        assert_eq!(late, AppendOutcome::Stored { offset: 2 });
        let again = log.append(new_event(body, 7 * day + 2)).await.unwrap();
        assert_eq!(again, AppendOutcome::Duplicate { offset: 2 });
        drop(log);
        running.await.unwrap();
        assert!(
            crate::core::log::key_reuses(&db, 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn entries_from_memory_equal_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log, running) = fresh_log(&dir).await;
        let bodies = day_bodies(200);
        for (i, b) in bodies.iter().enumerate() {
            let ev = new_event(Bytes::from(b.clone()), i as i64);
            log.append(ev).await.unwrap();
        }
        // The same entries, once from memory and once from a handle whose
        // tail is empty, so from the file.
        let hot = read_after(&db, 0, 1000, true).await.unwrap();
        let other = Db::open(&crate::core::config::Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        })
        .await
        .unwrap();
        let cold = read_after(&other, 0, 1000, true).await.unwrap();
        assert_eq!(hot.len(), bodies.len());
        assert_eq!(hot.len(), cold.len());
        for (h, c) in hot.iter().zip(&cold) {
            assert!(h.parsed.is_some() && c.parsed.is_none());
            assert_eq!(
                (
                    h.offset,
                    h.received_at,
                    &h.stream_guid,
                    h.seqnumber,
                    h.situation
                ),
                (
                    c.offset,
                    c.received_at,
                    &c.stream_guid,
                    c.seqnumber,
                    c.situation
                )
            );
            assert_eq!(
                (
                    &h.rest_code,
                    &h.event_time,
                    h.shift_num,
                    &h.order_guid,
                    &h.body
                ),
                (
                    &c.rest_code,
                    &c.event_time,
                    c.shift_num,
                    &c.order_guid,
                    &c.body
                )
            );
            assert_eq!(h.event().unwrap(), c.event().unwrap());
        }
        drop(log);
        running.await.unwrap();
    }
}
