//! The sales journal's SQL: a receipt and its lines (which are its stock
//! movements) and the stock they move, written in the caller's transaction
//! (the back office's group commit, the r_keeper consumer's batch, or
//! loyalty's when the receipt carries a card). Checks that
//! need the journal (a repeat, a return against its sale) run first, in the
//! same transaction, and a refusal writes nothing.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::receipt::{Invalid, Kind, Receipt};
use super::stock::{self, Level, Movement};
use crate::core::store::Backend;

/// Where a receipt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Register,
    /// A paid or return order of an r_keeper cash server, from the log.
    Rkeeper,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Register => "register",
            Source::Rkeeper => "rkeeper",
        }
    }
}

/// How storing one receipt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Journaled now; the answer the register gets (and every repeat).
    New { answer: Value, accrued: i64 },
    /// The same receipt was journaled before: its first answer.
    Repeat(Value),
    /// The id was used with another body.
    Conflict,
    /// Refused against the journal (a return that exceeds its sale).
    Refused(Invalid),
}

impl Stored {
    /// Tagged, so it passes through loyalty's accrual unchanged.
    pub fn to_json(&self) -> Value {
        match self {
            Stored::New { answer, .. } => json!({"new": answer}),
            Stored::Repeat(a) => json!({"repeat": a}),
            Stored::Conflict => json!({"conflict": true}),
            Stored::Refused(i) => json!({"refused": {"field": i.field, "why": i.why}}),
        }
    }

    pub fn from_json(v: &Value) -> Stored {
        if let Some(a) = v.get("new") {
            Stored::New {
                answer: a.clone(),
                accrued: a["accrued"].as_i64().unwrap_or_default(),
            }
        } else if let Some(a) = v.get("repeat") {
            Stored::Repeat(a.clone())
        } else if let Some(r) = v.get("refused") {
            Stored::Refused(Invalid {
                field: r["field"].as_str().unwrap_or_default().to_string(),
                why: r["why"].as_str().unwrap_or_default().to_string(),
            })
        } else {
            Stored::Conflict
        }
    }
}

#[derive(sqlx::FromRow)]
struct Existing {
    id: String,
    request: String,
    answer: String,
}

#[derive(sqlx::FromRow)]
struct SaleRow {
    store: String,
    kind: String,
}

#[derive(sqlx::FromRow)]
struct GoodsQty {
    goods_id: String,
    quantity: i64,
}

/// What a journaled receipt adds to its card's accumulated total: its
/// amount (negative for a return), unless it closed a loyalty purchase,
/// which counted it already.
pub fn accrual_of(r: &Receipt) -> i64 {
    if r.card.is_none() || r.loyalty_operation_id.is_some() {
        0
    } else {
        r.kind.sign() * r.total
    }
}

/// A return takes back from the card at most what its sale added less
/// what earlier returns of it took: its lines are rounded one by one, so
/// returning a sale's goods in other portions can come to a kopeck more
/// than the sale, and the card's total must still be the sum of what its
/// receipts added (the `accrued` column), never below it.
async fn capped_by_sale(
    conn: &mut AnyConnection,
    r: &Receipt,
    accrued: i64,
) -> Result<i64, sqlx::Error> {
    let (Kind::Return, Some(sale)) = (r.kind, &r.sale_receipt_id) else {
        return Ok(accrued);
    };
    if accrued >= 0 {
        return Ok(accrued);
    }
    let left: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(accrued) AS BIGINT) FROM backoffice_receipts WHERE (id = $1 AND card = $2) OR (sale_id = $1 AND kind = 'return' AND card = $2)",
    )
    .bind(sale)
    .bind(r.card.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    Ok(accrued.max(-left.unwrap_or(0).max(0)))
}

/// Refuses a return that names no sale of this store, or returns more of a
/// goods item than the sale sold less what earlier returns took back.
async fn check_return(
    conn: &mut AnyConnection,
    r: &Receipt,
) -> Result<Option<Invalid>, sqlx::Error> {
    let Some(sale) = &r.sale_receipt_id else {
        return Ok(None);
    };
    let found: Option<SaleRow> =
        sqlx::query_as("SELECT store, kind FROM backoffice_receipts WHERE id = $1")
            .bind(sale)
            .fetch_optional(&mut *conn)
            .await?;
    let bad = |field: String, why: String| Ok(Some(Invalid { field, why }));
    let Some(found) = found else {
        return bad(
            "sale_receipt_id".into(),
            format!("no journaled sale {sale:?}"),
        );
    };
    if found.kind != "sale" {
        return bad(
            "sale_receipt_id".into(),
            format!("{sale:?} is a return, not a sale"),
        );
    }
    if found.store != r.store {
        return bad(
            "sale_receipt_id".into(),
            format!("sale {sale:?} was made in store {:?}", found.store),
        );
    }
    let sold: Vec<GoodsQty> = sqlx::query_as(
        "SELECT goods_id, CAST(SUM(quantity) AS BIGINT) AS quantity FROM backoffice_receipt_lines WHERE receipt_id = $1 GROUP BY goods_id",
    )
    .bind(sale)
    .fetch_all(&mut *conn)
    .await?;
    let returned: Vec<GoodsQty> = sqlx::query_as(
        "SELECT l.goods_id, CAST(SUM(l.quantity) AS BIGINT) AS quantity FROM backoffice_receipt_lines l \
         JOIN backoffice_receipts r ON r.id = l.receipt_id WHERE r.sale_id = $1 GROUP BY l.goods_id",
    )
    .bind(sale)
    .fetch_all(&mut *conn)
    .await?;
    let mut left: BTreeMap<&str, i64> = sold
        .iter()
        .map(|g| (g.goods_id.as_str(), g.quantity))
        .collect();
    for g in &returned {
        *left.entry(g.goods_id.as_str()).or_default() -= g.quantity;
    }
    for (i, l) in r.lines.iter().enumerate() {
        let Some(q) = left.get_mut(l.goods_id.as_str()) else {
            return bad(
                format!("lines[{i}].goods_id"),
                format!("{:?} was not sold in {sale:?}", l.goods_id),
            );
        };
        if l.quantity > *q {
            return bad(
                format!("lines[{i}].quantity"),
                format!(
                    "{} is more than the {} left to return from {sale:?}",
                    l.quantity, *q
                ),
            );
        }
        *q -= l.quantity;
    }
    Ok(None)
}

/// The first answer of a receipt id journaled before: the same receipt
/// (a repeat) or another body (a conflict).
fn seen(e: Existing, canonical: &str) -> Result<Stored, sqlx::Error> {
    if e.request != canonical {
        return Ok(Stored::Conflict);
    }
    let answer = serde_json::from_str(&e.answer).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Stored::Repeat(answer))
}

/// The stock movements a receipt's lines make: a sale takes goods off the
/// floor, a return puts them back.
fn movements_of(r: &Receipt) -> Vec<Movement> {
    let sign = -r.kind.sign();
    r.lines
        .iter()
        .enumerate()
        .map(|(i, l)| Movement {
            id: format!("{}:{i}", r.receipt_id),
            store: r.store.clone(),
            goods_id: l.goods_id.clone(),
            name: l.name.clone(),
            kind: r.kind.as_str().to_string(),
            quantity: sign * l.quantity,
            counted: None,
            local_time: r.local_time.clone(),
            document: r.receipt_id.clone(),
        })
        .collect()
}

/// The answer a journaled receipt gets (and every repeat of it).
fn answer_of(r: &Receipt, accrued: i64, levels: &[Level], accumulated: Option<i64>) -> Value {
    let mut answer = json!({
        "receipt_id": r.receipt_id,
        "kind": r.kind.as_str(),
        "total": r.total,
        "accrued": accrued,
        "stock": stock::levels_json(levels),
    });
    if let Some(before) = accumulated {
        answer["accumulated"] = json!((before + accrued).max(0));
    }
    answer
}

/// A receipt ready to be written: its checks passed, its answer known.
struct Row<'a> {
    r: &'a Receipt,
    canonical: String,
    answer: Value,
    accrued: i64,
}

/// Receipt rows per statement: 20 parameters a row.
const RECEIPTS_PER_STATEMENT: usize = 256;
/// Line rows per statement: 8 parameters a row.
const LINES_PER_STATEMENT: usize = 1024;

/// Writes the receipts and their lines, one statement per table (per
/// chunk) however many receipts there are.
async fn insert(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[Row<'_>],
    source: Source,
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(RECEIPTS_PER_STATEMENT) {
        let sql = crate::core::store::multi_row(
            backend,
            "INSERT INTO backoffice_receipts (id, source, store, register, cashier, shift, local_time, kind, sale_id, total, cash, bank_card, payment_card, bonus, card, loyalty_operation_id, accrued, request, answer, created_at) VALUES ",
            chunk.len(),
            20,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let r = row.r;
            q = q
                .bind(&r.receipt_id)
                .bind(source.as_str())
                .bind(&r.store)
                .bind(&r.register)
                .bind(&r.cashier)
                .bind(r.shift)
                .bind(&r.local_time)
                .bind(r.kind.as_str())
                .bind(r.sale_receipt_id.clone())
                .bind(r.total)
                .bind(r.payments.cash)
                .bind(r.payments.bank_card)
                .bind(r.payments.payment_card)
                .bind(r.payments.bonus)
                .bind(r.card.clone())
                .bind(r.loyalty_operation_id.clone())
                .bind(row.accrued)
                .bind(&row.canonical)
                .bind(row.answer.to_string())
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    let lines: Vec<(&Receipt, usize, &super::receipt::Line)> = rows
        .iter()
        .flat_map(|row| row.r.lines.iter().enumerate().map(|(i, l)| (row.r, i, l)))
        .collect();
    for chunk in lines.chunks(LINES_PER_STATEMENT) {
        let sql = crate::core::store::multi_row(
            backend,
            "INSERT INTO backoffice_receipt_lines (receipt_id, line_no, goods_id, name, quantity, price, amount, discount) VALUES ",
            chunk.len(),
            8,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (r, i, l) in chunk {
            q = q
                .bind(&r.receipt_id)
                .bind(*i as i64)
                .bind(&l.goods_id)
                .bind(&l.name)
                .bind(l.quantity)
                .bind(l.price)
                .bind(l.amount)
                .bind(l.discount);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores `r` (already checked) unless it is a repeat, a conflict or a
/// refused return. `accumulated` is the card's total before this receipt
/// (for the answer), when the receipt has a card.
pub async fn store(
    conn: &mut AnyConnection,
    backend: Backend,
    r: &Receipt,
    source: Source,
    now: i64,
    accumulated: Option<i64>,
) -> Result<Stored, sqlx::Error> {
    let canonical = r.canonical();
    let existing: Option<Existing> =
        sqlx::query_as("SELECT id, request, answer FROM backoffice_receipts WHERE id = $1")
            .bind(&r.receipt_id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(e) = existing {
        return seen(e, &canonical);
    }
    if let Some(refused) = check_return(conn, r).await? {
        return Ok(Stored::Refused(refused));
    }
    let levels = stock::move_stock(conn, backend, &movements_of(r), now).await?;
    let accrued = capped_by_sale(conn, r, accrual_of(r)).await?;
    let answer = answer_of(r, accrued, &levels, accumulated);
    let row = Row {
        r,
        canonical,
        answer,
        accrued,
    };
    insert(conn, backend, std::slice::from_ref(&row), source, now).await?;
    Ok(Stored::New {
        answer: row.answer,
        accrued,
    })
}

/// Stores receipts in the caller's transaction, answering each as
/// [`store`] would taking them one at a time in this order. Runs of plain
/// sales (the bulk of a shop's traffic) go through [`store_sales`], a few
/// statements for the whole run; a return, a receipt with a card, or an id
/// met twice in the run is taken on its own in its place.
pub async fn store_group(
    conn: &mut AnyConnection,
    backend: Backend,
    receipts: &[Receipt],
    source: Source,
    now: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut out = Vec::with_capacity(receipts.len());
    let mut rest = receipts;
    while let Some(first) = rest.first() {
        let mut ids = std::collections::HashSet::new();
        let run: Vec<&Receipt> = rest
            .iter()
            .take_while(|r| plain_sale(r) && ids.insert(r.receipt_id.as_str()))
            .collect();
        if run.is_empty() {
            out.push(store(conn, backend, first, source, now, None).await?);
            rest = &rest[1..];
        } else {
            rest = &rest[run.len()..];
            out.extend(store_sales(conn, backend, &run, source, now).await?);
        }
    }
    Ok(out)
}

/// Whether [`store_sales`] can take the receipt: a sale without a card
/// needs nothing from the journal but its own id (no sale to check against,
/// no card total to move).
pub fn plain_sale(r: &Receipt) -> bool {
    r.kind == Kind::Sale && r.sale_receipt_id.is_none() && r.card.is_none()
}

/// Stores many plain sales ([`plain_sale`], ids all different) with a
/// handful of statements for the whole run rather than a set per receipt:
/// one look-up of the ids, then one statement per table. Each answer equals
/// what [`store`] would give taking them one by one in this order: a
/// receipt's stock levels are the run's final levels less what the
/// receipts after it moved.
pub async fn store_sales(
    conn: &mut AnyConnection,
    backend: Backend,
    receipts: &[&Receipt],
    source: Source,
    now: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    debug_assert!(receipts.iter().all(|r| plain_sale(r)));
    let mut found: BTreeMap<String, Existing> = BTreeMap::new();
    for chunk in receipts.chunks(RECEIPTS_PER_STATEMENT) {
        let marks = crate::core::store::multi_row(backend, "", chunk.len(), 1);
        let sql = format!(
            "SELECT id, request, answer FROM backoffice_receipts WHERE id IN ({})",
            marks.replace(['(', ')'], "")
        );
        let mut q = sqlx::query_as::<_, Existing>(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q.bind(&r.receipt_id);
        }
        for e in q.fetch_all(&mut *conn).await? {
            found.insert(e.id.clone(), e);
        }
    }
    let mut out: Vec<Option<Stored>> = Vec::with_capacity(receipts.len());
    let mut new: Vec<usize> = Vec::new();
    for (i, r) in receipts.iter().enumerate() {
        match found.remove(&r.receipt_id) {
            Some(e) => out.push(Some(seen(e, &r.canonical())?)),
            None => {
                out.push(None);
                new.push(i);
            }
        }
    }
    if new.is_empty() {
        return Ok(out.into_iter().flatten().collect());
    }
    let moves: Vec<Vec<Movement>> = new.iter().map(|&i| movements_of(receipts[i])).collect();
    let all: Vec<Movement> = moves.iter().flatten().cloned().collect();
    let last = stock::move_stock(conn, backend, &all, now).await?;
    // Walk back from the final levels, undoing each receipt's movements to
    // find the levels right after the one before it.
    let mut level: BTreeMap<(String, String), i64> = last
        .into_iter()
        .map(|l| ((l.store, l.goods_id), l.quantity))
        .collect();
    let mut after: Vec<Vec<Level>> = vec![Vec::new(); new.len()];
    for (k, ms) in moves.iter().enumerate().rev() {
        let touched: std::collections::BTreeSet<(String, String)> = ms
            .iter()
            .map(|m| (m.store.clone(), m.goods_id.clone()))
            .collect();
        after[k] = touched
            .into_iter()
            .map(|(store, goods_id)| {
                let quantity = level
                    .get(&(store.clone(), goods_id.clone()))
                    .copied()
                    .unwrap_or(0);
                Level {
                    store,
                    goods_id,
                    quantity,
                }
            })
            .collect();
        for m in ms {
            *level
                .entry((m.store.clone(), m.goods_id.clone()))
                .or_default() -= m.quantity;
        }
    }
    let rows: Vec<Row> = new
        .iter()
        .zip(&after)
        .map(|(&i, levels)| {
            let r = receipts[i];
            let accrued = accrual_of(r);
            Row {
                r,
                canonical: r.canonical(),
                answer: answer_of(r, accrued, levels, None),
                accrued,
            }
        })
        .collect();
    insert(conn, backend, &rows, source, now).await?;
    for (row, &i) in rows.into_iter().zip(&new) {
        out[i] = Some(Stored::New {
            answer: row.answer,
            accrued: row.accrued,
        });
    }
    Ok(out.into_iter().flatten().collect())
}

/// A receipt's kind as stored.
pub fn kind_of(s: &str) -> Kind {
    if s == "return" {
        Kind::Return
    } else {
        Kind::Sale
    }
}

#[derive(sqlx::FromRow, serde::Serialize)]
struct ReceiptRow {
    id: String,
    source: String,
    store: String,
    register: String,
    cashier: String,
    shift: i64,
    local_time: String,
    kind: String,
    sale_id: Option<String>,
    total: i64,
    cash: i64,
    bank_card: i64,
    payment_card: i64,
    bonus: i64,
    card: Option<String>,
    loyalty_operation_id: Option<String>,
    accrued: i64,
}

#[derive(sqlx::FromRow, serde::Serialize)]
struct LineRow {
    goods_id: String,
    name: String,
    quantity: i64,
    price: i64,
    amount: i64,
    discount: i64,
}

/// A journaled receipt with its lines, for the operator.
pub async fn get(db: &crate::core::store::Db, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let row: Option<ReceiptRow> = sqlx::query_as(
        "SELECT id, source, store, register, cashier, shift, local_time, kind, sale_id, total, cash, bank_card, payment_card, bonus, card, loyalty_operation_id, accrued \
         FROM backoffice_receipts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT goods_id, name, quantity, price, amount, discount FROM backoffice_receipt_lines WHERE receipt_id = $1 ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&db.read)
    .await?;
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["lines"] = serde_json::to_value(lines).unwrap_or_default();
    Ok(Some(v))
}
