//! Orders, stations, cash servers and shifts: the first consumer of the log.
//!
//! [`StateConsumer`] reads each event, folds it into the touched snapshots
//! ([`state::Book`]) and writes them back with its cursor in one
//! transaction. Snapshots are stored as JSON beside a few indexed columns
//! the API filters on.

pub mod api;
pub mod state;

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::core::consumer::{BoxFuture, Consumer, ConsumerError, Runner};
use crate::core::feature::{Feature, Routes, StartCtx};
use crate::core::log::{self, LogEntry};
use crate::core::migrate::Migration;
use crate::core::store::{self, Db, StoreError};
pub use api::api_routes;
use state::{Book, OrderSnapshot, ServerSnapshot, ShiftSnapshot, StationSnapshot};

pub const CONSUMER_NAME: &str = "orders";

/// The order-state feature: its consumer and the read API over its tables.
pub struct Orders;

impl Feature for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![crate::migration!("0003_order_state")]
    }

    fn start<'a>(
        &'a self,
        ctx: &'a mut StartCtx,
    ) -> crate::core::feature::BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let runner = Runner::new(StateConsumer, ctx.db.clone(), crate::core::consumer::BATCH)
                .await?
                .with_coalesce(std::time::Duration::from_millis(50));
            ctx.runtimes
                .spawn(runner.run(ctx.log.subscribe(), ctx.shutdown.clone()));
            Ok(Routes {
                operator: api_routes().with_state(ctx.db.clone()),
                ..Routes::default()
            })
        })
    }
}

#[derive(Default)]
pub struct StateConsumer;

impl Consumer for StateConsumer {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(apply_batch(db, entries))
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

async fn apply_batch(db: &Db, entries: &[LogEntry]) -> Result<(), ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    // Events were validated at ingest; one that no longer reads (a reader
    // change) is skipped with a log line rather than wedging the consumer.
    let mut events = Vec::with_capacity(entries.len());
    for e in entries {
        match e.event() {
            Ok(ev) => events.push((e, ev)),
            Err(err) => {
                tracing::error!(offset = e.offset, error = %err, "stored event no longer reads; skipped by order state")
            }
        }
    }
    let mut order_keys = HashSet::new();
    let mut station_keys = HashSet::new();
    let mut server_keys = HashSet::new();
    let mut rests = HashSet::new();
    for (_, ev) in &events {
        let keys = Book::keys_for(ev);
        order_keys.extend(keys.order);
        station_keys.extend(keys.station);
        server_keys.extend(keys.server);
        rests.extend(keys.shift_rest);
    }
    // Only this consumer writes these tables, so the snapshots can be read
    // on the read pool before taking the (single, shared) write lock: the
    // write transaction then holds it only for the upserts.
    let mut rd = db.read.acquire().await.map_err(StoreError::from)?;
    let mut book = Book::default();
    for key in &order_keys {
        let snap: Option<String> =
            sqlx::query_scalar("SELECT snapshot FROM orders WHERE order_guid = $1")
                .bind(key)
                .fetch_optional(&mut *rd)
                .await?;
        if let Some(s) = snap {
            book.orders
                .insert(key.clone(), serde_json::from_str(&s).map_err(corrupt)?);
        }
    }
    for key in &station_keys {
        let snap: Option<String> =
            sqlx::query_scalar("SELECT snapshot FROM stations WHERE station_key = $1")
                .bind(key)
                .fetch_optional(&mut *rd)
                .await?;
        if let Some(s) = snap {
            book.stations
                .insert(key.clone(), serde_json::from_str(&s).map_err(corrupt)?);
        }
    }
    for key in &server_keys {
        let snap: Option<String> =
            sqlx::query_scalar("SELECT snapshot FROM cash_servers WHERE server_key = $1")
                .bind(key)
                .fetch_optional(&mut *rd)
                .await?;
        if let Some(s) = snap {
            book.servers
                .insert(key.clone(), serde_json::from_str(&s).map_err(corrupt)?);
        }
    }
    for rest in &rests {
        // Open shifts only: a closed shift is never touched again except by
        // its own late events, which load it below.
        let rows = sqlx::query("SELECT snapshot FROM shifts WHERE rest_code = $1 AND closed = 0")
            .bind(rest)
            .fetch_all(&mut *rd)
            .await?;
        for r in rows {
            let s: ShiftSnapshot =
                serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
            book.shifts.insert((s.rest_code.clone(), s.shift_num), s);
        }
    }
    for (_, ev) in &events {
        if let (Some(r), Some(n)) = (&ev.rest_code, ev.shift_num) {
            let key = (r.0.clone(), n);
            if let std::collections::hash_map::Entry::Vacant(slot) = book.shifts.entry(key) {
                let snap: Option<String> = sqlx::query_scalar(
                    "SELECT snapshot FROM shifts WHERE rest_code = $1 AND shift_num = $2",
                )
                .bind(&slot.key().0)
                .bind(slot.key().1)
                .fetch_optional(&mut *rd)
                .await?;
                if let Some(s) = snap {
                    slot.insert(serde_json::from_str(&s).map_err(corrupt)?);
                }
            }
        }
    }
    drop(rd);
    for (entry, ev) in &events {
        book.apply(entry, ev);
    }
    let rows = book_rows(&book)?;
    let mut tx = db.write.begin().await.map_err(StoreError::from)?;
    save_rows(&mut tx, db.backend, &rows).await?;
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The book as rows, serialised before the write lock is taken.
struct BookRows {
    orders: Vec<OrderRow>,
    /// (key, rest_code, snapshot) of stations and of cash servers.
    stations: Vec<(String, Option<String>, String)>,
    servers: Vec<(String, Option<String>, String)>,
    /// (rest_code, shift_num, closed, snapshot)
    shifts: Vec<(String, i64, i64, String)>,
}

struct OrderRow {
    guid: String,
    rest_code: Option<String>,
    status: &'static str,
    opened_at: Option<String>,
    updated_at: Option<String>,
    shift_num: Option<i64>,
    order_sum: i64,
    paid_sum: i64,
    receipts: i64,
    is_return: i64,
    last_offset: i64,
    snapshot: String,
}

fn book_rows(book: &Book) -> Result<BookRows, ConsumerError> {
    let ser = |r: serde_json::Result<String>| r.map_err(|e| ConsumerError::Other(e.to_string()));
    let mut rows = BookRows {
        orders: Vec::with_capacity(book.orders.len()),
        stations: Vec::with_capacity(book.stations.len()),
        servers: Vec::with_capacity(book.servers.len()),
        shifts: Vec::with_capacity(book.shifts.len()),
    };
    for o in book.orders.values() {
        rows.orders.push(OrderRow {
            guid: o.guid.clone(),
            rest_code: o.rest_code.clone(),
            status: o.status.as_str(),
            opened_at: o.opened_at.clone(),
            updated_at: o.updated_at.clone(),
            shift_num: o.shift_num,
            order_sum: o.order_sum,
            paid_sum: o.paid_sum,
            receipts: o.receipts.iter().filter(|r| !r.bill && !r.deleted).count() as i64,
            is_return: o.is_return as i64,
            last_offset: o.events.last().copied().unwrap_or(0),
            snapshot: ser(serde_json::to_string(o))?,
        });
    }
    for s in book.stations.values() {
        rows.stations.push((
            s.key.clone(),
            s.rest_code.clone(),
            ser(serde_json::to_string(s))?,
        ));
    }
    for s in book.servers.values() {
        rows.servers.push((
            s.key.clone(),
            s.rest_code.clone(),
            ser(serde_json::to_string(s))?,
        ));
    }
    for s in book.shifts.values() {
        rows.shifts.push((
            s.rest_code.clone(),
            s.shift_num,
            s.closed as i64,
            ser(serde_json::to_string(s))?,
        ));
    }
    Ok(rows)
}

/// Multi-row upserts, a few statements per batch rather than one per
/// order: the write lock is shared with the event log's writer.
async fn save_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: store::Backend,
    rows: &BookRows,
) -> Result<(), ConsumerError> {
    for chunk in rows.orders.chunks(50) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (order_guid) DO UPDATE SET rest_code = excluded.rest_code, status = excluded.status, opened_at = excluded.opened_at, \
             updated_at = excluded.updated_at, shift_num = excluded.shift_num, order_sum = excluded.order_sum, paid_sum = excluded.paid_sum, \
             receipts = excluded.receipts, is_return = excluded.is_return, last_offset = excluded.last_offset, snapshot = excluded.snapshot",
            store::multi_row(
                backend,
                "INSERT INTO orders (order_guid, rest_code, status, opened_at, updated_at, shift_num, order_sum, paid_sum, receipts, is_return, last_offset, snapshot) VALUES ",
                chunk.len(),
                12
            )
        )));
        for o in chunk {
            q = q
                .bind(&o.guid)
                .bind(o.rest_code.as_deref())
                .bind(o.status)
                .bind(o.opened_at.as_deref())
                .bind(o.updated_at.as_deref())
                .bind(o.shift_num)
                .bind(o.order_sum)
                .bind(o.paid_sum)
                .bind(o.receipts)
                .bind(o.is_return)
                .bind(o.last_offset)
                .bind(&o.snapshot);
        }
        q.execute(&mut **tx).await?;
    }
    for (table, key, list) in [
        ("stations", "station_key", &rows.stations),
        ("cash_servers", "server_key", &rows.servers),
    ] {
        for chunk in list.chunks(100) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{} ON CONFLICT ({key}) DO UPDATE SET rest_code = excluded.rest_code, snapshot = excluded.snapshot",
                store::multi_row(
                    backend,
                    &format!("INSERT INTO {table} ({key}, rest_code, snapshot) VALUES "),
                    chunk.len(),
                    3
                )
            )));
            for (k, rest, json) in chunk {
                q = q.bind(k).bind(rest.as_deref()).bind(json);
            }
            q.execute(&mut **tx).await?;
        }
    }
    for chunk in rows.shifts.chunks(100) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (rest_code, shift_num) DO UPDATE SET closed = excluded.closed, snapshot = excluded.snapshot",
            store::multi_row(
                backend,
                "INSERT INTO shifts (rest_code, shift_num, closed, snapshot) VALUES ",
                chunk.len(),
                4
            )
        )));
        for (rest, num, closed, json) in chunk {
            q = q.bind(rest).bind(*num).bind(*closed).bind(json);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Everything the order-state consumer has stored, loaded into memory.
pub async fn load_all(db: &Db) -> Result<Book, StoreError> {
    let mut book = Book::default();
    for r in sqlx::query("SELECT snapshot FROM orders")
        .fetch_all(&db.read)
        .await?
    {
        let o: OrderSnapshot =
            serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
        book.orders.insert(o.guid.clone(), o);
    }
    for r in sqlx::query("SELECT snapshot FROM stations")
        .fetch_all(&db.read)
        .await?
    {
        let s: StationSnapshot =
            serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
        book.stations.insert(s.key.clone(), s);
    }
    for r in sqlx::query("SELECT snapshot FROM cash_servers")
        .fetch_all(&db.read)
        .await?
    {
        let s: ServerSnapshot =
            serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
        book.servers.insert(s.key.clone(), s);
    }
    for r in sqlx::query("SELECT snapshot FROM shifts")
        .fetch_all(&db.read)
        .await?
    {
        let s: ShiftSnapshot =
            serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
        book.shifts.insert((s.rest_code.clone(), s.shift_num), s);
    }
    Ok(book)
}

/// Folds the whole log from offset 0 in memory, up to `upto`: what the
/// stored state must equal once the consumer has reached `upto`.
pub async fn replay(db: &Db, upto: i64) -> Result<Book, StoreError> {
    let mut book = Book::default();
    let mut after = 0;
    loop {
        let entries = log::read_after(db, after, 1000, true).await?;
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            if e.offset > upto {
                return Ok(book);
            }
            if let Ok(ev) = e.event() {
                book.apply(e, &ev);
            }
            after = e.offset;
        }
    }
    Ok(book)
}

/// Shift totals so far, computed from the orders of that shift.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct ShiftTotals {
    pub orders: i64,
    pub receipts: i64,
    /// Kopecks: receipts of sales minus receipts of returns.
    pub revenue: i64,
    pub open_orders: i64,
    pub deleted_orders: i64,
}

pub async fn shift_totals(
    db: &Db,
    rest_code: &str,
    shift_num: i64,
) -> Result<ShiftTotals, StoreError> {
    let row = sqlx::query(
        // SUM over BIGINT is NUMERIC on PostgreSQL: cast back so both
        // backends answer a 64-bit integer. A return's receipt already
        // carries a negative amount, so revenue is a plain sum.
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(receipts), 0) AS BIGINT), \
         CAST(COALESCE(SUM(paid_sum), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status IN ('open', 'prebill') THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status = 'deleted' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM orders WHERE rest_code = $1 AND shift_num = $2",
    )
    .bind(rest_code)
    .bind(shift_num)
    .fetch_one(&db.read)
    .await?;
    Ok(ShiftTotals {
        orders: row.try_get(0)?,
        receipts: row.try_get(1)?,
        revenue: row.try_get(2)?,
        open_orders: row.try_get(3)?,
        deleted_orders: row.try_get(4)?,
    })
}

/// Used by tests and the crash check: compares stored state with a replay.
pub fn diff_books(stored: &Book, replayed: &Book) -> Vec<String> {
    let mut out = Vec::new();
    let keys: HashSet<&String> = stored.orders.keys().chain(replayed.orders.keys()).collect();
    for k in keys {
        if stored.orders.get(k) != replayed.orders.get(k) {
            out.push(format!("order {k} differs"));
        }
    }
    let a: HashMap<_, _> = stored.stations.iter().collect();
    let b: HashMap<_, _> = replayed.stations.iter().collect();
    if a != b {
        out.push("stations differ".into());
    }
    if stored.servers != replayed.servers {
        out.push("cash servers differ".into());
    }
    if stored.shifts != replayed.shifts {
        out.push("shifts differ".into());
    }
    out
}
