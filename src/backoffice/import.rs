//! Stock documents from the operator: arrivals, write-offs and counts
//! (inventory results) as CSV or JSON. A file with any bad row is refused
//! whole, naming the row and field; a document name is taken once, so the
//! same file sent twice is refused rather than counted twice.
//!
//! CSV: a header row `store,goods_id,name,unit,kind,quantity,local_time`
//! (`name`, `unit` optional). JSON: an array of rows with those fields, or
//! `{"rows": [...]}`. Quantities are thousandths of the unit; a count
//! gives the quantity found, the others the quantity moved.

use serde::Deserialize;

use super::receipt::{DOCUMENT_MAX, ID_MAX, LOCAL_TIME, NAME_MAX, TooLong, parse_local, within};
use super::stock::{self, Movement};
use crate::core::store::Db;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub store: String,
    pub goods_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    pub kind: String,
    pub quantity: i64,
    pub local_time: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{at}: {why}")]
    Bad { at: String, why: String },
    /// A text field over its limit (400 `too_long`).
    #[error(transparent)]
    TooLong(#[from] TooLong),
    #[error("document {0:?} was imported already")]
    Repeat(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn bad(at: impl Into<String>, why: impl Into<String>) -> ImportError {
    ImportError::Bad {
        at: at.into(),
        why: why.into(),
    }
}

pub fn from_csv(text: &str) -> Result<Vec<Row>, ImportError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<Row>().enumerate() {
        rows.push(row.map_err(|e| bad(format!("row {}", i + 1), e.to_string()))?);
    }
    Ok(rows)
}

pub fn from_json(text: &str) -> Result<Vec<Row>, ImportError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Doc {
        Rows(Vec<Row>),
        Wrapped { rows: Vec<Row> },
    }
    match serde_json::from_str::<Doc>(text) {
        Ok(Doc::Rows(r) | Doc::Wrapped { rows: r }) => Ok(r),
        // The untagged error says nothing useful: read as a plain array
        // again for a message that names the row and field.
        Err(_) => serde_json::from_str::<Vec<Row>>(text).map_err(|e| bad("json", e.to_string())),
    }
}

/// Parses by format name (`csv` or `json`).
pub fn parse(format: &str, text: &str) -> Result<Vec<Row>, ImportError> {
    match format {
        "csv" => from_csv(text),
        "json" => from_json(text),
        other => Err(bad("format", format!("{other:?} is not csv or json"))),
    }
}

/// Every text field of every row within its limit (the limits of
/// registers' receipts: a name is kept in the goods list and every
/// movement, so a file must not bring megabytes of one).
fn lengths(rows: &[Row]) -> Result<(), TooLong> {
    for (i, r) in rows.iter().enumerate() {
        let at = |f: &'static str| move || format!("row {}: {f}", i + 1);
        within(at("store"), &r.store, ID_MAX)?;
        within(at("goods_id"), &r.goods_id, ID_MAX)?;
        within(at("kind"), &r.kind, ID_MAX)?;
        within(at("local_time"), &r.local_time, ID_MAX)?;
        if let Some(n) = &r.name {
            within(at("name"), n, NAME_MAX)?;
        }
        if let Some(u) = &r.unit {
            within(at("unit"), u, ID_MAX)?;
        }
    }
    Ok(())
}

fn check(rows: &[Row]) -> Result<(), ImportError> {
    if rows.is_empty() {
        return Err(bad("rows", "the document has no rows"));
    }
    lengths(rows)?;
    for (i, r) in rows.iter().enumerate() {
        let at = |f: &str| format!("row {}: {f}", i + 1);
        for (f, v) in [("store", &r.store), ("goods_id", &r.goods_id)] {
            if v.trim().is_empty() {
                return Err(bad(at(f), "must not be empty"));
            }
        }
        if !["arrival", "write_off", "count"].contains(&r.kind.as_str()) {
            return Err(bad(
                at("kind"),
                format!(
                    "{:?} is not arrival, write_off or count (sales and returns come from receipts)",
                    r.kind
                ),
            ));
        }
        if r.quantity < 0 || (r.quantity == 0 && r.kind != "count") {
            return Err(bad(
                at("quantity"),
                "must be positive (thousandths; a count may be 0)",
            ));
        }
        if parse_local(&r.local_time).is_none() {
            return Err(bad(at("local_time"), "is not YYYY-MM-DDTHH:MM:SS"));
        }
    }
    Ok(())
}

/// Stores a document's movements in one transaction; answers the levels
/// after it.
pub async fn import(
    db: &Db,
    document: &str,
    rows: &[Row],
    now: i64,
) -> Result<serde_json::Value, ImportError> {
    within(|| "document".into(), document, DOCUMENT_MAX)?;
    if document.trim().is_empty() {
        return Err(bad("document", "must not be empty"));
    }
    check(rows)?;
    let mut tx = db.write.begin().await?;
    let seen: Option<String> =
        sqlx::query_scalar("SELECT id FROM backoffice_movements WHERE document = $1 LIMIT 1")
            .bind(document)
            .fetch_optional(&mut *tx)
            .await?;
    if seen.is_some() {
        return Err(ImportError::Repeat(document.to_string()));
    }
    let mut answers = Vec::new();
    // Row by row: a count after an arrival in the same document counts
    // from the quantity the arrival left.
    for (i, r) in rows.iter().enumerate() {
        let time = parse_local(&r.local_time)
            .map(|t| t.format(LOCAL_TIME).to_string())
            .unwrap_or_default();
        if let Some(unit) = &r.unit {
            sqlx::query(
                "INSERT INTO backoffice_goods (store, goods_id, name, unit, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (store, goods_id) DO UPDATE SET unit = excluded.unit, name = excluded.name, updated_at = excluded.updated_at",
            )
            .bind(&r.store)
            .bind(&r.goods_id)
            .bind(r.name.clone().unwrap_or_else(|| r.goods_id.clone()))
            .bind(unit)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let (quantity, counted) = match r.kind.as_str() {
            "arrival" => (r.quantity, None),
            "write_off" => (-r.quantity, None),
            _ => {
                let have: Option<i64> = sqlx::query_scalar(
                    "SELECT quantity FROM backoffice_stock WHERE store = $1 AND goods_id = $2",
                )
                .bind(&r.store)
                .bind(&r.goods_id)
                .fetch_optional(&mut *tx)
                .await?;
                (r.quantity - have.unwrap_or(0), Some(r.quantity))
            }
        };
        let m = Movement {
            id: format!("{document}:{i}"),
            store: r.store.clone(),
            goods_id: r.goods_id.clone(),
            name: r.name.clone().unwrap_or_else(|| r.goods_id.clone()),
            kind: r.kind.clone(),
            quantity,
            counted,
            local_time: time,
            document: document.to_string(),
        };
        let levels = stock::apply(&mut tx, db.backend, &[m], now).await?;
        if let Some(a) = stock::levels_json(&levels).as_array() {
            answers.extend(a.iter().cloned());
        }
    }
    tx.commit().await?;
    let answer = serde_json::json!({"document": document, "rows": rows.len(), "stock": answers});
    stock::note_negative(&answer);
    Ok(answer)
}
