//! The order-state tables (`orders`, `stations`, `cash_servers`, `shifts`):
//! every query of the feature, for its consumer and its API.
//!
//! Snapshots are stored as JSON beside a few indexed columns the API
//! filters on; only the consumer writes them.

use std::collections::{HashMap, HashSet};

use crate::core::book::{Book, OrderSnapshot, ServerSnapshot, ShiftSnapshot, StationSnapshot};
use crate::core::consumer::ConsumerError;
use crate::core::log;
use crate::core::store::{self, Db, StoreError};

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stored snapshot, before it is read.
#[derive(sqlx::FromRow)]
struct SnapshotRow {
    snapshot: String,
}

impl SnapshotRow {
    fn read<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(&self.snapshot).map_err(corrupt)
    }
}

/// The snapshot in one row found by key, if there is one.
async fn one_snapshot<T: serde::de::DeserializeOwned>(
    conn: &mut sqlx::AnyConnection,
    sql: &'static str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let row: Option<SnapshotRow> = sqlx::query_as(sql).bind(key).fetch_optional(conn).await?;
    row.map(|r| r.read()).transpose()
}

/// The snapshots of `keys` that are stored, into `into`.
async fn load_by_key<T: serde::de::DeserializeOwned>(
    conn: &mut sqlx::AnyConnection,
    sql: &'static str,
    keys: &HashSet<String>,
    into: &mut HashMap<String, T>,
) -> Result<(), StoreError> {
    for key in keys {
        if let Some(v) = one_snapshot(conn, sql, key).await? {
            into.insert(key.clone(), v);
        }
    }
    Ok(())
}

/// Every snapshot a query returns, in its order.
async fn all_snapshots<T: serde::de::DeserializeOwned>(
    db: &Db,
    sql: &'static str,
) -> Result<Vec<T>, StoreError> {
    let rows: Vec<SnapshotRow> = sqlx::query_as(sql).fetch_all(&db.read).await?;
    rows.iter().map(SnapshotRow::read).collect()
}

/// The snapshots a batch of events touches.
#[derive(Default)]
pub(super) struct Touched {
    pub orders: HashSet<String>,
    pub stations: HashSet<String>,
    pub servers: HashSet<String>,
    /// Restaurants whose open shifts the batch may close or add to.
    pub shift_rests: HashSet<String>,
    /// (rest_code, shift_num) the events name, open or not.
    pub shifts: Vec<(String, i64)>,
}

/// Loads the touched snapshots into a book.
///
/// Only the consumer writes these tables, so the snapshots can be read on
/// the read pool before taking the (single, shared) write lock: the write
/// transaction then holds it only for the upserts.
pub(super) async fn load_touched(db: &Db, touched: &Touched) -> Result<Book, StoreError> {
    let mut rd = db.read.acquire().await?;
    let mut book = Book::default();
    load_by_key(
        &mut rd,
        "SELECT snapshot FROM orders WHERE order_guid = $1",
        &touched.orders,
        &mut book.orders,
    )
    .await?;
    load_by_key(
        &mut rd,
        "SELECT snapshot FROM stations WHERE station_key = $1",
        &touched.stations,
        &mut book.stations,
    )
    .await?;
    load_by_key(
        &mut rd,
        "SELECT snapshot FROM cash_servers WHERE server_key = $1",
        &touched.servers,
        &mut book.servers,
    )
    .await?;
    for rest in &touched.shift_rests {
        // Open shifts only: a closed shift is never touched again except by
        // its own late events, which load it below.
        let rows: Vec<SnapshotRow> =
            sqlx::query_as("SELECT snapshot FROM shifts WHERE rest_code = $1 AND closed = 0")
                .bind(rest)
                .fetch_all(&mut *rd)
                .await?;
        for r in rows {
            let s: ShiftSnapshot = r.read()?;
            book.shifts.insert((s.rest_code.clone(), s.shift_num), s);
        }
    }
    for key in &touched.shifts {
        if let std::collections::hash_map::Entry::Vacant(slot) = book.shifts.entry(key.clone()) {
            let row: Option<SnapshotRow> = sqlx::query_as(
                "SELECT snapshot FROM shifts WHERE rest_code = $1 AND shift_num = $2",
            )
            .bind(&slot.key().0)
            .bind(slot.key().1)
            .fetch_optional(&mut *rd)
            .await?;
            if let Some(r) = row {
                slot.insert(r.read()?);
            }
        }
    }
    Ok(book)
}

/// Writes the book's snapshots and moves consumer `cursor_name` to
/// `offset`, in one transaction: the state and its cursor never disagree.
pub(super) async fn save(
    db: &Db,
    book: &Book,
    cursor_name: &str,
    offset: i64,
) -> Result<(), ConsumerError> {
    let rows = book_rows(book)?;
    let mut tx = db.write.begin().await.map_err(StoreError::from)?;
    save_rows(&mut tx, db.backend, &rows).await?;
    log::set_cursor(&mut tx, cursor_name, offset).await?;
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
    for o in all_snapshots::<OrderSnapshot>(db, "SELECT snapshot FROM orders").await? {
        book.orders.insert(o.guid.clone(), o);
    }
    for s in all_snapshots::<StationSnapshot>(db, "SELECT snapshot FROM stations").await? {
        book.stations.insert(s.key.clone(), s);
    }
    for s in all_snapshots::<ServerSnapshot>(db, "SELECT snapshot FROM cash_servers").await? {
        book.servers.insert(s.key.clone(), s);
    }
    for s in all_snapshots::<ShiftSnapshot>(db, "SELECT snapshot FROM shifts").await? {
        book.shifts.insert((s.rest_code.clone(), s.shift_num), s);
    }
    Ok(book)
}

/// Shift totals so far, computed from the orders of that shift.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, sqlx::FromRow)]
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
    Ok(sqlx::query_as(
        // SUM over BIGINT is NUMERIC on PostgreSQL: cast back so both
        // backends answer a 64-bit integer. A return's receipt already
        // carries a negative amount, so revenue is a plain sum.
        "SELECT CAST(COUNT(*) AS BIGINT) AS orders, \
         CAST(COALESCE(SUM(receipts), 0) AS BIGINT) AS receipts, \
         CAST(COALESCE(SUM(paid_sum), 0) AS BIGINT) AS revenue, \
         CAST(COALESCE(SUM(CASE WHEN status IN ('open', 'prebill') THEN 1 ELSE 0 END), 0) AS BIGINT) AS open_orders, \
         CAST(COALESCE(SUM(CASE WHEN status = 'deleted' THEN 1 ELSE 0 END), 0) AS BIGINT) AS deleted_orders \
         FROM orders WHERE rest_code = $1 AND shift_num = $2",
    )
    .bind(rest_code)
    .bind(shift_num)
    .fetch_one(&db.read)
    .await?)
}

/// Which orders the API lists; every filter optional. Times are
/// cash-server local time (text compares in time order).
#[derive(Debug, Default)]
pub struct OrderFilter<'a> {
    pub restaurant: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Inclusive: orders opened at or after.
    pub from: Option<&'a str>,
    /// Exclusive: orders opened before.
    pub to: Option<&'a str>,
    /// Keyset position: after this (opened_at, order_guid).
    pub after: Option<(&'a str, &'a str)>,
    /// Newest first (the console), walking the same index backwards: the
    /// next page is then the one before `after`.
    pub newest_first: bool,
}

/// One page of orders.
#[derive(Debug)]
pub struct OrderPage {
    pub items: Vec<OrderSnapshot>,
    /// The last listed order's `opened_at` ("" when it has none): with its
    /// GUID, where the next page starts.
    pub last_opened_at: String,
    /// Whether more orders follow this page.
    pub more: bool,
}

/// An `orders` row as a page lists it.
#[derive(sqlx::FromRow)]
struct ListedRow {
    snapshot: String,
    opened_at: String,
}

/// Up to `limit` orders by (opened_at, order_guid). Keyset pagination:
/// stable while orders change, unlike OFFSET.
pub async fn orders_page(
    db: &Db,
    filter: &OrderFilter<'_>,
    limit: i64,
) -> Result<OrderPage, StoreError> {
    let mut sql =
        String::from("SELECT snapshot, COALESCE(opened_at, '') AS opened_at FROM orders WHERE 1=1");
    let mut binds: Vec<&str> = Vec::new();
    for (cond, v) in [
        (" AND rest_code = ", filter.restaurant),
        (" AND status = ", filter.status),
        (" AND opened_at >= ", filter.from),
        (" AND opened_at < ", filter.to),
    ] {
        if let Some(v) = v {
            binds.push(v);
            sql.push_str(&format!("{cond}${}", binds.len()));
        }
    }
    if let Some((t, g)) = filter.after {
        binds.push(t);
        let a = binds.len();
        binds.push(g);
        let b = binds.len();
        // A row comparison, not `a > x OR (a = x AND b > y)`: PostgreSQL
        // seeks the (opened_at, guid) index with it, and walked the pages
        // before the cursor with the OR (a deep page near 50 ms at 100,000
        // orders, `cargo bench --bench console_orders`).
        let cmp = if filter.newest_first { "<" } else { ">" };
        sql.push_str(&format!(
            " AND (COALESCE(opened_at, ''), order_guid) {cmp} (${a}, ${b})"
        ));
    }
    let dir = if filter.newest_first { " DESC" } else { "" };
    sql.push_str(&format!(
        " ORDER BY COALESCE(opened_at, ''){dir}, order_guid{dir} LIMIT {}",
        limit + 1
    ));
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(*b);
    }
    let rows: Vec<ListedRow> = query.fetch_all(&db.read).await?;
    let mut page = OrderPage {
        items: Vec::with_capacity(rows.len()),
        last_opened_at: String::new(),
        more: rows.len() as i64 > limit,
    };
    for r in rows.into_iter().take(limit as usize) {
        page.items
            .push(serde_json::from_str(&r.snapshot).map_err(corrupt)?);
        page.last_opened_at = r.opened_at;
    }
    Ok(page)
}

/// One order by its canonical GUID.
pub async fn order(db: &Db, guid: &str) -> Result<Option<OrderSnapshot>, StoreError> {
    let mut conn = db.read.acquire().await?;
    one_snapshot(
        &mut conn,
        "SELECT snapshot FROM orders WHERE order_guid = $1",
        guid,
    )
    .await
}

/// Every station, by key.
pub async fn stations(db: &Db) -> Result<Vec<StationSnapshot>, StoreError> {
    all_snapshots(db, "SELECT snapshot FROM stations ORDER BY station_key").await
}

/// Every cash server, by key.
pub async fn servers(db: &Db) -> Result<Vec<ServerSnapshot>, StoreError> {
    all_snapshots(db, "SELECT snapshot FROM cash_servers ORDER BY server_key").await
}

/// The shifts of one restaurant, or of all, by restaurant and number.
pub async fn shifts(db: &Db, restaurant: Option<&str>) -> Result<Vec<ShiftSnapshot>, StoreError> {
    match restaurant {
        Some(r) => {
            let rows: Vec<SnapshotRow> = sqlx::query_as(
                "SELECT snapshot FROM shifts WHERE rest_code = $1 ORDER BY rest_code, shift_num",
            )
            .bind(r)
            .fetch_all(&db.read)
            .await?;
            rows.iter().map(SnapshotRow::read).collect()
        }
        None => {
            all_snapshots(
                db,
                "SELECT snapshot FROM shifts ORDER BY rest_code, shift_num",
            )
            .await
        }
    }
}
