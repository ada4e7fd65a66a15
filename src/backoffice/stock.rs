//! Stock on the sales floor: movements (`arrival`, `sale`, `return`,
//! `write_off`, `count`) are the truth and are never edited; the current
//! quantity per store and goods is their sum, kept in `backoffice_stock`
//! in the same transaction as each movement (as loyalty keeps a card's
//! balance beside its ledger), so reading it does not add up history.
//! The operator's documents (arrival, write-off, count) are rows of
//! `backoffice_movements`; sales and returns are the lines of journaled
//! receipts, not copied a second time. A count (inventory result) is
//! stored as the movement from the quantity before it to the quantity
//! counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::core::store::{Backend, Db};

/// Movements that left a goods item below zero, as a metric.
pub const NEGATIVE: &str = "tillgate_backoffice_negative_stock_total";

pub const KINDS: &[&str] = &["arrival", "sale", "return", "write_off", "count"];

/// One movement to store. `quantity` is signed thousandths (a sale is
/// negative); a count carries the quantity counted.
#[derive(Debug, Clone)]
pub struct Movement {
    pub id: String,
    pub store: String,
    pub goods_id: String,
    pub name: String,
    pub kind: String,
    pub quantity: i64,
    pub counted: Option<i64>,
    pub local_time: String,
    pub document: String,
}

/// A goods item's quantity after a movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Level {
    pub store: String,
    pub goods_id: String,
    pub quantity: i64,
}

impl Level {
    pub fn negative(&self) -> bool {
        self.quantity < 0
    }
}

/// The answer's view of levels: quantity and a flag for negative stock.
pub fn levels_json(levels: &[Level]) -> serde_json::Value {
    serde_json::Value::Array(
        levels
            .iter()
            .map(|l| {
                serde_json::json!({
                    "store": l.store, "goods_id": l.goods_id,
                    "quantity": l.quantity, "negative": l.negative(),
                })
            })
            .collect(),
    )
}

/// Counts, after a commit, the levels a change left negative.
pub fn note_negative(answer: &serde_json::Value) {
    let n = answer["stock"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|l| l["negative"] == true).count());
    if n > 0 {
        metrics::counter!(NEGATIVE).increment(n as u64);
    }
}

/// Rows per multi-row statement: a group's movements go in one statement
/// (a group of 256 ten-line receipts is 2,560 rows, 23,040 parameters, under
/// SQLite's 32,766 and PostgreSQL's 65,535).
const ROWS: usize = 3000;

/// Stores an operator document's `movements` and moves the current
/// quantities; answers the level of each goods item touched.
pub async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    movements: &[Movement],
    now: i64,
) -> Result<Vec<Level>, sqlx::Error> {
    for chunk in movements.chunks(ROWS) {
        let sql = crate::core::store::multi_row(
            backend,
            "INSERT INTO backoffice_movements (id, store, goods_id, kind, quantity, counted, local_time, document, created_at) VALUES ",
            chunk.len(),
            9,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q
                .bind(&m.id)
                .bind(&m.store)
                .bind(&m.goods_id)
                .bind(&m.kind)
                .bind(m.quantity)
                .bind(m.counted)
                .bind(&m.local_time)
                .bind(&m.document)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    move_stock(conn, backend, movements, now).await
}

/// Moves the current quantities by `movements` without storing them as
/// movement rows: a receipt's lines are its movements already. One
/// statement per table however many receipts the movements come from;
/// answers the level of each goods item touched after all of them, by
/// store and goods.
pub async fn move_stock(
    conn: &mut AnyConnection,
    backend: Backend,
    movements: &[Movement],
    now: i64,
) -> Result<Vec<Level>, sqlx::Error> {
    if movements.is_empty() {
        return Ok(Vec::new());
    }
    // One row per goods item: PostgreSQL refuses an upsert that touches a
    // row twice in one statement.
    let mut by: BTreeMap<(&str, &str), (i64, &str, &str)> = BTreeMap::new();
    for m in movements {
        let e = by
            .entry((m.store.as_str(), m.goods_id.as_str()))
            .or_insert((0, &m.local_time, &m.name));
        e.0 += m.quantity;
        e.1 = &m.local_time;
    }
    let rows: Vec<_> = by.into_iter().collect();
    let mut levels = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS) {
        let mut goods = crate::core::store::multi_row(
            backend,
            "INSERT INTO backoffice_goods (store, goods_id, name, unit, updated_at) VALUES ",
            chunk.len(),
            5,
        );
        goods.push_str(" ON CONFLICT (store, goods_id) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(goods));
        for ((store, goods_id), (_, _, name)) in chunk {
            q = q
                .bind(*store)
                .bind(*goods_id)
                .bind(*name)
                .bind("pcs")
                .bind(now);
        }
        q.execute(&mut *conn).await?;
        let mut sql = crate::core::store::multi_row(
            backend,
            "INSERT INTO backoffice_stock (store, goods_id, quantity, last_movement_at, last_local_time) VALUES ",
            chunk.len(),
            5,
        );
        sql.push_str(
            " ON CONFLICT (store, goods_id) DO UPDATE SET quantity = backoffice_stock.quantity + excluded.quantity, \
             last_movement_at = excluded.last_movement_at, last_local_time = excluded.last_local_time \
             RETURNING store, goods_id, quantity",
        );
        let mut q = sqlx::query_as::<_, Level>(sqlx::AssertSqlSafe(sql));
        for ((store, goods_id), (delta, time, _)) in chunk {
            q = q
                .bind(*store)
                .bind(*goods_id)
                .bind(*delta)
                .bind(now)
                .bind(*time);
        }
        levels.extend(q.fetch_all(&mut *conn).await?);
    }
    levels.sort_by(|a, b| (&a.store, &a.goods_id).cmp(&(&b.store, &b.goods_id)));
    Ok(levels)
}

/// A goods item's stock as the operator API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StockRow {
    pub store: String,
    pub goods_id: String,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub quantity: i64,
    pub last_movement_at: i64,
    pub last_local_time: String,
}

/// Current stock, optionally of one store and/or one goods item.
pub async fn current(
    db: &Db,
    store: Option<&str>,
    goods: Option<&str>,
) -> Result<Vec<StockRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.store, s.goods_id, g.name, g.unit, s.quantity, s.last_movement_at, s.last_local_time \
         FROM backoffice_stock s LEFT JOIN backoffice_goods g ON g.store = s.store AND g.goods_id = s.goods_id \
         WHERE ($1 IS NULL OR s.store = $1) AND ($2 IS NULL OR s.goods_id = $2) ORDER BY s.store, s.goods_id",
    )
    .bind(store)
    .bind(goods)
    .fetch_all(&db.read)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MovementRow {
    pub id: String,
    pub kind: String,
    pub quantity: i64,
    pub counted: Option<i64>,
    pub local_time: String,
    pub document: String,
    pub created_at: i64,
}

/// The movements of one goods item in a store, oldest first: the
/// operator's documents and the lines of journaled receipts (a sale's line
/// takes its quantity off the floor, a return's puts it back), each line
/// named `{receipt}:{line}`.
pub async fn movements(db: &Db, store: &str, goods: &str) -> Result<Vec<MovementRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, quantity, counted, local_time, document, created_at FROM backoffice_movements \
         WHERE store = $1 AND goods_id = $2 \
         UNION ALL \
         SELECT r.id || ':' || CAST(l.line_no AS TEXT), r.kind, \
         CASE WHEN r.kind = 'return' THEN l.quantity ELSE -l.quantity END, NULL, r.local_time, r.id, r.created_at \
         FROM backoffice_receipt_lines l JOIN backoffice_receipts r ON r.id = l.receipt_id \
         WHERE r.store = $1 AND l.goods_id = $2 \
         ORDER BY created_at, id",
    )
    .bind(store)
    .bind(goods)
    .fetch_all(&db.read)
    .await
}

/// Σ movements per store and goods, straight from the documents and the
/// receipt lines: what the kept quantities must equal (tests,
/// `doctor`-style checks).
pub async fn sums_of_movements(db: &Db) -> Result<Vec<Level>, sqlx::Error> {
    sqlx::query_as(
        "SELECT store, goods_id, CAST(SUM(quantity) AS BIGINT) AS quantity FROM ( \
         SELECT store, goods_id, quantity FROM backoffice_movements \
         UNION ALL \
         SELECT r.store, l.goods_id, CASE WHEN r.kind = 'return' THEN l.quantity ELSE -l.quantity END \
         FROM backoffice_receipt_lines l JOIN backoffice_receipts r ON r.id = l.receipt_id \
         ) m GROUP BY store, goods_id ORDER BY store, goods_id",
    )
    .fetch_all(&db.read)
    .await
}

/// Kept quantities, in the same order as [`sums_of_movements`].
pub async fn kept(db: &Db) -> Result<Vec<Level>, sqlx::Error> {
    sqlx::query_as(
        "SELECT store, goods_id, quantity FROM backoffice_stock ORDER BY store, goods_id",
    )
    .fetch_all(&db.read)
    .await
}
