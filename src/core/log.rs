//! The event log: the spine of tillgate.
//!
//! Every accepted event is appended once, with a monotonic offset, by a
//! single writer task. The writer groups whatever requests are waiting into
//! one transaction (group commit), so 64 cash servers posting at once pay for
//! one sync, not 64. A request is answered only after its transaction has
//! committed: that is the durability promise behind every 2xx.
//!
//! Offsets are assigned by the writer in memory (loaded from the table at
//! start) rather than by a database sequence: with one writer they are then
//! strictly in commit order, so a consumer reading `offset > cursor` can never
//! skip a row that commits late (which a PostgreSQL sequence allows).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sqlx::{Any, Row, Transaction};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::now_ms;
use super::migrate::Migration;
use super::store::{Db, StoreError};

/// The log's own tables: events, streams, gaps, quarantine, cursors.
pub fn migrations() -> Vec<Migration> {
    vec![
        crate::migration!("0001_event_log"),
        // The shift report reads one restaurant's shift out of the whole
        // log; without this index it scanned every event ever kept.
        crate::migration!("0002_events_rest_shift"),
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
    /// The same (guid, seqnumber) is already in the log at `offset`.
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

enum WriteOp {
    Event(NewEvent, oneshot::Sender<Result<AppendOutcome, String>>),
    Quarantine(
        NewQuarantine,
        oneshot::Sender<Result<AppendOutcome, String>>,
    ),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the log writer has stopped")]
    Stopped,
    #[error("commit failed: {0}")]
    Commit(String),
}

/// Cloneable handle to the single log writer.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<WriteOp>,
    committed: watch::Receiver<Committed>,
}

impl LogWriter {
    pub async fn append(&self, e: NewEvent) -> Result<AppendOutcome, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(WriteOp::Event(e, tx))
            .await
            .map_err(|_| AppendError::Stopped)?;
        rx.await
            .map_err(|_| AppendError::Stopped)?
            .map_err(AppendError::Commit)
    }

    pub async fn quarantine(&self, q: NewQuarantine) -> Result<AppendOutcome, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(WriteOp::Quarantine(q, tx))
            .await
            .map_err(|_| AppendError::Stopped)?;
        rx.await
            .map_err(|_| AppendError::Stopped)?
            .map_err(AppendError::Commit)
    }

    /// Watch this to learn about new commits without polling.
    pub fn subscribe(&self) -> watch::Receiver<Committed> {
        self.committed.clone()
    }
}

struct StreamState {
    last_seq: i64,
}

/// The writer task's state.
pub struct LogWriterTask {
    db: Db,
    rx: mpsc::Receiver<WriteOp>,
    committed: watch::Sender<Committed>,
    max_batch: usize,
    next_offset: i64,
    next_gap_id: i64,
    next_quarantine_id: i64,
    streams: HashMap<String, StreamState>,
}

/// Creates the writer handle and the task that must be spawned to serve it.
pub async fn writer(db: Db, max_batch: usize) -> Result<(LogWriter, LogWriterTask), StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_offset), 0) FROM events")
        .fetch_one(&db.write)
        .await?;
    let gap_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM gaps")
        .fetch_one(&db.write)
        .await?;
    let q_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM quarantine")
        .fetch_one(&db.write)
        .await?;
    let mut streams = HashMap::new();
    for row in sqlx::query("SELECT stream_guid, last_seq FROM streams")
        .fetch_all(&db.write)
        .await?
    {
        streams.insert(
            row.try_get::<String, _>(0)?,
            StreamState {
                last_seq: row.try_get(1)?,
            },
        );
    }
    // The channel is bounded so a flood waits in HTTP handlers (and so in
    // the senders' TCP windows) instead of growing memory without limit.
    let (tx, rx) = mpsc::channel(max_batch * 4);
    let (ctx, crx) = watch::channel(Committed {
        head,
        gaps_found: 0,
    });
    Ok((
        LogWriter { tx, committed: crx },
        LogWriterTask {
            db,
            rx,
            committed: ctx,
            max_batch,
            next_offset: head + 1,
            next_gap_id: gap_id + 1,
            next_quarantine_id: q_id + 1,
            streams,
        },
    ))
}

/// A committed batch: each op's outcome, each touched stream's new last
/// seqnumber, the number of gaps found.
type Written = (Vec<AppendOutcome>, Vec<(String, i64)>, u64);

/// What one batch writes, decided in memory before any SQL runs: the rules
/// (duplicates, gaps, new streams) stay apart from the statements, which
/// then need only a handful of round trips whatever the batch size.
struct Plan<'a> {
    outcomes: Vec<AppendOutcome>,
    rows: Vec<(i64, &'a NewEvent)>,
    gaps: Vec<GapRow<'a>>,
    streams: Vec<StreamRow<'a>>,
    quarantine: Vec<(i64, &'a NewQuarantine)>,
    /// Each touched stream's highest seqnumber after the batch.
    last_seq: HashMap<&'a str, i64>,
}

struct GapRow<'a> {
    id: i64,
    event: &'a NewEvent,
    from: i64,
    to: i64,
    before_offset: i64,
}

/// One row of `streams` to insert (a new stream) or bump.
struct StreamRow<'a> {
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

    /// The writer loop itself, on whatever runtime calls it.
    async fn run_here(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(op) = self.rx.recv().await {
            batch.push(op);
            self.fill(&mut batch);
            let started = Instant::now();
            let saved = self.ids();
            let result = self.write_batch(&batch).await;
            self.finish(&mut batch, result, started, saved);
        }
    }

    /// Takes whatever else is already queued, up to the batch limit: this
    /// is the group commit. It never waits for more, so a lone event is not
    /// delayed.
    fn fill(&mut self, batch: &mut Vec<WriteOp>) {
        while batch.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
    }

    fn ids(&self) -> (i64, i64, i64) {
        (self.next_offset, self.next_gap_id, self.next_quarantine_id)
    }

    /// Answers every sender of a batch and publishes the commit.
    fn finish(
        &mut self,
        batch: &mut Vec<WriteOp>,
        result: Result<Written, StoreError>,
        started: Instant,
        saved: (i64, i64, i64),
    ) {
        let size = batch.len();
        match result {
            Ok((outcomes, touched, gaps)) => {
                for (guid, seq) in touched {
                    self.streams.insert(guid, StreamState { last_seq: seq });
                }
                let mut accepted = 0u64;
                let mut dups = 0u64;
                let mut quarantined = 0u64;
                let mut entries = Vec::with_capacity(size);
                let mut replies = Vec::with_capacity(size);
                for (op, outcome) in batch.drain(..).zip(outcomes) {
                    match outcome {
                        AppendOutcome::Stored { .. } => accepted += 1,
                        AppendOutcome::Duplicate { .. } => dups += 1,
                        AppendOutcome::Quarantined { .. } => quarantined += 1,
                    }
                    let reply = match op {
                        WriteOp::Event(e, r) => {
                            if let AppendOutcome::Stored { offset } = outcome {
                                entries.push(LogEntry::stored(offset, e));
                            }
                            r
                        }
                        WriteOp::Quarantine(_, r) => r,
                    };
                    replies.push((reply, outcome));
                }
                // Into the tail before the head moves, so whoever hears of
                // the commit finds the entries there.
                self.db.tail.push(entries);
                let head = self.next_offset - 1;
                self.committed.send_modify(|c| {
                    c.head = head;
                    c.gaps_found += gaps;
                });
                for (reply, outcome) in replies {
                    let _ = reply.send(Ok(outcome));
                }
                metrics::counter!("tillgate_events_accepted_total").increment(accepted);
                metrics::counter!("tillgate_events_duplicate_total").increment(dups);
                metrics::counter!("tillgate_events_quarantined_total").increment(quarantined);
                metrics::counter!("tillgate_event_gaps_total").increment(gaps);
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
                tracing::error!(error = %e, size, "log commit failed");
                let msg = e.to_string();
                for op in batch.drain(..) {
                    let reply = match op {
                        WriteOp::Event(_, r) | WriteOp::Quarantine(_, r) => r,
                    };
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }

    /// Events at or below their stream's last seqnumber may be resends and
    /// must be looked up; everything above is new without a query.
    fn suspects<'a>(&self, batch: &'a [WriteOp]) -> Vec<(&'a str, i64)> {
        batch
            .iter()
            .filter_map(|op| match op {
                WriteOp::Event(e, _) => {
                    let last = self.streams.get(&e.stream_guid).map(|s| s.last_seq);
                    last.is_some_and(|l| e.seqnumber <= l)
                        .then_some((e.stream_guid.as_str(), e.seqnumber))
                }
                WriteOp::Quarantine(..) => None,
            })
            .collect()
    }

    /// Assigns offsets and ids and applies the duplicate and gap rules.
    /// `existing` holds the suspects found in the log.
    fn plan<'a>(
        &mut self,
        batch: &'a [WriteOp],
        existing: &HashMap<(&'a str, i64), i64>,
    ) -> Plan<'a> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rows: Vec<(i64, &NewEvent)> = Vec::with_capacity(batch.len());
        let mut in_batch: HashMap<(&str, i64), i64> = HashMap::new();
        let mut last_seq: HashMap<&str, i64> = HashMap::new();
        let mut new_streams: HashSet<&str> = HashSet::new();
        let mut gaps = Vec::new();
        let mut quarantine = Vec::new();
        for op in batch {
            match op {
                WriteOp::Event(e, _) => {
                    let key = (e.stream_guid.as_str(), e.seqnumber);
                    if let Some(off) = existing.get(&key).or_else(|| in_batch.get(&key)) {
                        outcomes.push(AppendOutcome::Duplicate { offset: *off });
                        continue;
                    }
                    let offset = self.next_offset;
                    self.next_offset += 1;
                    in_batch.insert(key, offset);
                    let prev = last_seq
                        .get(e.stream_guid.as_str())
                        .copied()
                        .or_else(|| self.streams.get(&e.stream_guid).map(|s| s.last_seq));
                    match prev {
                        Some(prev) if e.seqnumber > prev + 1 => {
                            gaps.push(GapRow {
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
                    rows.push((offset, e));
                    outcomes.push(AppendOutcome::Stored { offset });
                }
                WriteOp::Quarantine(q, _) => {
                    let id = self.next_quarantine_id;
                    self.next_quarantine_id += 1;
                    quarantine.push((id, q));
                    outcomes.push(AppendOutcome::Quarantined { id });
                }
            }
        }
        // One row per touched stream, not per event.
        let mut streams: Vec<StreamRow> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (_, e) in &rows {
            let guid = e.stream_guid.as_str();
            match index.get(guid) {
                Some(&i) => {
                    streams[i].events += 1;
                    streams[i].last_seen = streams[i].last_seen.max(e.received_at);
                }
                None => {
                    index.insert(guid, streams.len());
                    streams.push(StreamRow {
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
            rows,
            gaps,
            streams,
            quarantine,
            last_seq,
        }
    }

    /// One transaction for the batch, in a handful of statements whatever
    /// its size: the suspects, one multi-row insert, one statement for the
    /// touched streams.
    async fn write_batch(&mut self, batch: &[WriteOp]) -> Result<Written, StoreError> {
        let mut tx = self.db.write.begin().await?;
        let mut existing = HashMap::new();
        for (guid, seq) in self.suspects(batch) {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT log_offset FROM events WHERE stream_guid = $1 AND seqnumber = $2",
            )
            .bind(guid)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(off) = found {
                existing.insert((guid, seq), off);
            }
        }
        let plan = self.plan(batch, &existing);
        insert_events(&mut tx, self.db.backend, &plan.rows).await?;
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
        tx.commit().await?;
        Ok(plan.into_result())
    }
}

impl Plan<'_> {
    fn into_result(self) -> Written {
        let touched = self
            .last_seq
            .into_iter()
            .map(|(g, s)| (g.to_string(), s))
            .collect();
        (self.outcomes, touched, self.gaps.len() as u64)
    }
}

/// The touched streams in at most two statements: a multi-row insert of
/// the new ones and one `UPDATE ... FROM (VALUES ...)` of the others (both
/// SQLite and PostgreSQL name the VALUES columns column1, column2, ...).
async fn upsert_streams(
    tx: &mut Transaction<'static, Any>,
    backend: super::store::Backend,
    streams: &[StreamRow<'_>],
) -> Result<(), StoreError> {
    for chunk in streams
        .iter()
        .filter(|s| s.new)
        .collect::<Vec<_>>()
        .chunks(100)
    {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(super::store::multi_row(
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
        sql.push_str(&super::store::multi_row(backend, "VALUES ", chunk.len(), 4));
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
    backend: super::store::Backend,
    rows: &[(i64, &NewEvent)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(200) {
        let sql = super::store::multi_row(
            backend,
            "INSERT INTO events (log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid, body) VALUES ",
            chunk.len(),
            10,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (offset, e) in chunk {
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
                .bind(e.body.to_vec());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// One event as stored in the log.
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

/// The newest committed entries, in memory.
///
/// Every consumer and relay destination reads what follows its cursor
/// after each commit. Served from the database, that was one read per
/// reader per commit, each on the same connections the API uses, and each
/// event's body was read (parsed) again by every consumer: under load the
/// consumers cost more CPU than ingest itself. The writer appends each
/// committed batch here before it publishes the new head, so a reader that
/// keeps up finds its next entries here and only a reader that fell behind
/// (or one starting after a restart) goes to the database.
///
/// Offsets are dense (one writer hands them out), so the entry after
/// `cursor` is found by subtraction; its offset is still checked, and any
/// mismatch means "not here, ask the database".
#[derive(Default)]
pub struct Tail {
    inner: std::sync::Mutex<TailInner>,
}

#[derive(Default)]
struct TailInner {
    entries: VecDeque<LogEntry>,
    bytes: usize,
}

/// How much the tail keeps: enough for a consumer that coalesces for
/// 50 ms, or a relay destination a few seconds behind, at several thousand
/// events/s; small enough not to matter next to the SQLite page cache.
const TAIL_MAX_ENTRIES: usize = 8192;
const TAIL_MAX_BYTES: usize = 32 << 20;

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.inner.lock().map(|t| t.entries.len()).unwrap_or(0);
        f.debug_struct("Tail").field("entries", &len).finish()
    }
}

impl Tail {
    /// Appends committed entries (in offset order, right after the last).
    fn push(&self, new: Vec<LogEntry>) {
        let Ok(mut t) = self.inner.lock() else { return };
        if let (Some(last), Some(first)) = (t.entries.back(), new.first())
            && first.offset != last.offset + 1
        {
            // Not contiguous (cannot happen with one writer): start over
            // rather than ever serve a hole.
            t.entries.clear();
            t.bytes = 0;
        }
        for e in new {
            t.bytes += e.body.len();
            t.entries.push_back(e);
        }
        while t.entries.len() > TAIL_MAX_ENTRIES || t.bytes > TAIL_MAX_BYTES {
            match t.entries.pop_front() {
                Some(old) => t.bytes -= old.body.len(),
                None => break,
            }
        }
    }

    /// Up to `limit` entries after `after`, or `None` when the tail does
    /// not hold the entry right after it.
    fn after(&self, after: i64, limit: usize) -> Option<Vec<LogEntry>> {
        let t = self.inner.lock().ok()?;
        let first = t.entries.front()?.offset;
        let last = t.entries.back()?.offset;
        if after >= last {
            return Some(Vec::new());
        }
        let idx = usize::try_from(after + 1 - first).ok()?;
        if t.entries.get(idx)?.offset != after + 1 {
            return None;
        }
        Some(t.entries.range(idx..).take(limit).cloned().collect())
    }
}

const ENTRY_COLS: &str = "log_offset, received_at, stream_guid, seqnumber, situation, rest_code, event_time, shift_num, order_guid";

fn entry_from_row(row: &sqlx::any::AnyRow, with_body: bool) -> Result<LogEntry, sqlx::Error> {
    Ok(LogEntry {
        offset: row.try_get(0)?,
        received_at: row.try_get(1)?,
        stream_guid: row.try_get(2)?,
        seqnumber: row.try_get(3)?,
        situation: row.try_get(4)?,
        rest_code: row.try_get(5)?,
        event_time: row.try_get(6)?,
        shift_num: row.try_get(7)?,
        order_guid: row.try_get(8)?,
        body: if with_body {
            row.try_get::<Vec<u8>, _>(9)?.into()
        } else {
            Bytes::new()
        },
        parsed: None,
    })
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
            "SELECT {ENTRY_COLS}, body FROM events WHERE log_offset > $1 ORDER BY log_offset LIMIT $2"
        )
    } else {
        format!(
            "SELECT {ENTRY_COLS} FROM events WHERE log_offset > $1 ORDER BY log_offset LIMIT $2"
        )
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(limit)
        .fetch_all(&db.read)
        .await?;
    rows.iter()
        .map(|r| entry_from_row(r, with_body).map_err(StoreError::from))
        .collect()
}

pub async fn get(db: &Db, offset: i64) -> Result<Option<LogEntry>, StoreError> {
    let sql = format!("SELECT {ENTRY_COLS}, body FROM events WHERE log_offset = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(offset)
        .fetch_optional(&db.read)
        .await?;
    row.map(|r| entry_from_row(&r, true).map_err(StoreError::from))
        .transpose()
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

pub async fn gaps(db: &Db, after_id: i64, limit: i64) -> Result<Vec<Gap>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, stream_guid, rest_code, from_seq, to_seq, detected_at, before_offset FROM gaps WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let from: i64 = r.try_get(3)?;
        let to: i64 = r.try_get(4)?;
        out.push(Gap {
            id: r.try_get(0)?,
            stream_guid: r.try_get(1)?,
            rest_code: r.try_get(2)?,
            from_seq: from,
            to_seq: to,
            missing: to - from + 1,
            detected_at: super::clock::ms_to_rfc3339(r.try_get(5)?),
            before_offset: r.try_get(6)?,
        });
    }
    Ok(out)
}

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

pub async fn quarantine_list(
    db: &Db,
    after_id: i64,
    limit: i64,
) -> Result<Vec<QuarantineItem>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, received_at, path, reason, remote, body FROM quarantine WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let body: Vec<u8> = r.try_get(5)?;
        let preview: String = String::from_utf8_lossy(&body[..body.len().min(2048)]).into();
        out.push(QuarantineItem {
            id: r.try_get(0)?,
            received_at: super::clock::ms_to_rfc3339(r.try_get(1)?),
            path: r.try_get(2)?,
            reason: r.try_get(3)?,
            remote: r.try_get(4)?,
            size: body.len(),
            body_preview: preview,
        });
    }
    Ok(out)
}

pub async fn quarantine_body(db: &Db, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT body FROM quarantine WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.read)
            .await?,
    )
}

/// A consumer's durable cursor: the last offset it has fully applied.
pub async fn cursor(db: &Db, name: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT position FROM consumer_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&db.read)
            .await?
            .unwrap_or(0),
    )
}

/// Moves a cursor inside the caller's transaction, so that a consumer's
/// state change and its cursor commit together (exactly-once application).
pub async fn set_cursor(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    position: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consumer_cursors (name, position, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(position)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Starts cursor `name` at the current head (a new reader that wants only
/// what comes next), inside the caller's transaction; an existing cursor is
/// left where it is. Returns whether it was created.
pub async fn start_cursor_at_head(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<bool, StoreError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT position FROM consumer_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_offset), 0) FROM events")
        .fetch_one(&mut **tx)
        .await?;
    set_cursor(tx, name, head).await?;
    Ok(true)
}

/// Forgets cursor `name` (its reader is gone), inside the caller's
/// transaction. Retention no longer waits for it.
pub async fn delete_cursor(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM consumer_cursors WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
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
        "SELECT {ENTRY_COLS}, body FROM events WHERE rest_code = $1 AND shift_num = $2 AND log_offset <= $3 ORDER BY log_offset"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rest_code)
        .bind(shift_num)
        .bind(upto)
        .fetch_all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(entry_from_row(r, true)?);
    }
    Ok(out)
}

pub async fn cursors(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT name, position FROM consumer_cursors ORDER BY name")
        .fetch_all(&db.read)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Deletes, in one bounded step, events received before `cutoff_ms` that
/// every consumer has already passed; returns how many went.
///
/// The lowest cursor is the bound, so a consumer that is behind (a relay
/// destination that is down, an alert outbox waiting for Telegram) keeps
/// its events however old they are. Pruned events cannot be replayed: the
/// default retention (0) keeps everything.
pub async fn prune(db: &Db, cutoff_ms: i64, max_rows: i64) -> Result<u64, StoreError> {
    let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(position) FROM consumer_cursors")
        .fetch_one(&db.write)
        .await?;
    let Some(lowest) = lowest else {
        return Ok(0);
    };
    let upto: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(log_offset) FROM (SELECT log_offset FROM events WHERE log_offset <= $1 AND received_at < $2 ORDER BY log_offset LIMIT $3) AS oldest",
    )
    .bind(lowest)
    .bind(cutoff_ms)
    .bind(max_rows)
    .fetch_one(&db.write)
    .await?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    let done = sqlx::query("DELETE FROM events WHERE log_offset <= $1 AND received_at < $2")
        .bind(upto)
        .bind(cutoff_ms)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected())
}

/// The retention worker: prunes in small steps so the log writer never
/// waits long behind it.
pub struct Pruner {
    pub db: Db,
    pub retention: std::time::Duration,
}

impl Pruner {
    /// One step; `now_ms` is injectable for tests.
    pub async fn run_once(&self, now_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms - self.retention.as_millis() as i64;
        prune(&self.db, cutoff, 5000).await
    }

    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.run_once(super::clock::now_ms()).await {
                Ok(n) if n > 0 => {
                    tracing::info!(pruned = n, "pruned events past retention");
                    metrics::counter!("tillgate_events_pruned_total").increment(n);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning the log failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64, body_len: usize) -> LogEntry {
        LogEntry {
            offset,
            received_at: offset,
            stream_guid: "{G}".into(),
            seqnumber: offset,
            situation: 3,
            rest_code: None,
            event_time: None,
            shift_num: None,
            order_guid: None,
            body: Bytes::from(vec![b'x'; body_len]),
            parsed: None,
        }
    }

    fn offsets(v: Option<Vec<LogEntry>>) -> Option<Vec<i64>> {
        v.map(|v| v.iter().map(|e| e.offset).collect())
    }

    #[test]
    fn tail_serves_only_what_follows_the_cursor_without_holes() {
        let t = Tail::default();
        assert_eq!(offsets(t.after(0, 10)), None, "empty: ask the database");
        t.push((5..=9).map(|o| entry(o, 1)).collect());
        assert_eq!(offsets(t.after(4, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(offsets(t.after(6, 2)), Some(vec![7, 8]));
        assert_eq!(offsets(t.after(9, 10)), Some(vec![]), "caught up");
        assert_eq!(offsets(t.after(12, 10)), Some(vec![]), "ahead of the tail");
        assert_eq!(offsets(t.after(3, 10)), None, "offset 4 is not held");
        assert_eq!(offsets(t.after(-7, 10)), None);
        // A batch that does not follow on starts the tail over.
        t.push(vec![entry(20, 1), entry(21, 1)]);
        assert_eq!(offsets(t.after(9, 10)), None);
        assert_eq!(offsets(t.after(19, 10)), Some(vec![20, 21]));
    }

    #[test]
    fn tail_forgets_the_oldest_beyond_its_limits() {
        let t = Tail::default();
        t.push(
            (1..=(TAIL_MAX_ENTRIES as i64 + 10))
                .map(|o| entry(o, 1))
                .collect(),
        );
        // Offsets 1..=10 are gone, 11 is the oldest kept.
        assert_eq!(offsets(t.after(9, 1)), None);
        assert_eq!(offsets(t.after(10, 1)), Some(vec![11]));
        let t = Tail::default();
        let big = TAIL_MAX_BYTES / 4 + 1;
        t.push((1..=4).map(|o| entry(o, big)).collect());
        assert_eq!(offsets(t.after(0, 10)), None, "over the byte limit");
        assert_eq!(offsets(t.after(1, 10)), Some(vec![2, 3, 4]));
    }

    #[tokio::test]
    async fn entries_from_memory_equal_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::core::config::Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        };
        let db = Db::open(&storage).await.unwrap();
        crate::core::migrate::migrate(&db, &crate::app::migrations())
            .await
            .unwrap();
        let (log, task) = writer(db.clone(), 64).await.unwrap();
        let running = tokio::spawn(task.run());
        let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
            days: 1,
            ..tillgate_simulate::Scenario::default()
        });
        let bodies: Vec<Vec<u8>> = day
            .servers
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.xml.clone()))
            .take(200)
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            let ev = crate::ingest::to_new_event(Bytes::from(b.clone()), i as i64).unwrap();
            log.append(ev).await.unwrap();
        }
        // The same entries, once from memory and once from a handle whose
        // tail is empty, so from the file.
        let hot = read_after(&db, 0, 1000, true).await.unwrap();
        let other = Db::open(&storage).await.unwrap();
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
