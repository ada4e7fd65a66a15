//! Reports from the journal: sales by store, day, hour or goods, receipts
//! by cashier, cards' accumulations; as JSON or CSV. Every figure is a sum
//! over journal rows (returns negative), so a report's total equals the
//! journal's for the same period.

use serde::{Deserialize, Serialize};

use crate::core::store::Db;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Store,
    Day,
    Hour,
    Goods,
    Cashier,
    Card,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// The grouping key's SQL over `r` (receipts) and `l` (lines).
    fn key(self) -> &'static str {
        match self {
            By::Store => "r.store",
            By::Day => "SUBSTR(r.local_time, 1, 10)",
            By::Hour => "SUBSTR(r.local_time, 1, 13)",
            By::Goods => "l.goods_id",
            By::Cashier => "r.store || '/' || r.cashier",
            By::Card => "r.card",
        }
    }
}

/// Which receipts a report covers: local times `from` ≤ t < `to`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub store: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Row {
    pub key: String,
    pub receipts: i64,
    /// Thousandths sold less returned (goods reports; 0 otherwise).
    pub quantity: i64,
    /// Kopecks: sales less returns.
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub by: By,
    pub rows: Vec<Row>,
    pub total: Row,
}

const SIGN: &str = "CASE WHEN r.kind = 'return' THEN -1 ELSE 1 END";
const WHERE: &str = "($1 IS NULL OR r.store = $1) AND ($2 IS NULL OR r.local_time >= $2) AND ($3 IS NULL OR r.local_time < $3)";

pub async fn report(db: &Db, by: By, f: &Filter) -> Result<Report, sqlx::Error> {
    let sql = match by {
        By::Goods => format!(
            "SELECT {k} AS key, COUNT(DISTINCT r.id) AS receipts, CAST(SUM({SIGN} * l.quantity) AS BIGINT) AS quantity, \
             CAST(SUM({SIGN} * l.amount) AS BIGINT) AS amount FROM backoffice_receipt_lines l \
             JOIN backoffice_receipts r ON r.id = l.receipt_id WHERE {WHERE} GROUP BY {k} ORDER BY 1",
            k = by.key()
        ),
        By::Card => format!(
            "SELECT {k} AS key, COUNT(*) AS receipts, CAST(0 AS BIGINT) AS quantity, CAST(SUM({SIGN} * r.total) AS BIGINT) AS amount \
             FROM backoffice_receipts r WHERE r.card IS NOT NULL AND {WHERE} GROUP BY {k} ORDER BY 1",
            k = by.key()
        ),
        _ => format!(
            "SELECT {k} AS key, COUNT(*) AS receipts, CAST(0 AS BIGINT) AS quantity, CAST(SUM({SIGN} * r.total) AS BIGINT) AS amount \
             FROM backoffice_receipts r WHERE {WHERE} GROUP BY {k} ORDER BY 1",
            k = by.key()
        ),
    };
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.store.clone())
        .bind(f.from.clone())
        .bind(f.to.clone())
        .fetch_all(&db.read)
        .await?;
    let total = Row {
        key: "total".into(),
        receipts: match by {
            // A receipt of several goods counts once in the total.
            By::Goods => journal_total(db, f).await?.receipts,
            _ => rows.iter().map(|r| r.receipts).sum(),
        },
        quantity: rows.iter().map(|r| r.quantity).sum(),
        amount: rows.iter().map(|r| r.amount).sum(),
    };
    Ok(Report { by, rows, total })
}

/// The journal's own total over `f`: receipts and sales less returns.
pub async fn journal_total(db: &Db, f: &Filter) -> Result<Row, sqlx::Error> {
    let sql = format!(
        "SELECT 'journal' AS key, COUNT(*) AS receipts, CAST(0 AS BIGINT) AS quantity, \
         CAST(COALESCE(SUM({SIGN} * r.total), 0) AS BIGINT) AS amount FROM backoffice_receipts r WHERE {WHERE}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.store.clone())
        .bind(f.from.clone())
        .bind(f.to.clone())
        .fetch_one(&db.read)
        .await
}

/// The report as CSV: a header, one line per row, the total last.
pub fn to_csv(r: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["key", "receipts", "quantity", "amount"]);
    for row in r.rows.iter().chain(std::iter::once(&r.total)) {
        let _ = w.write_record([
            row.key.as_str(),
            &row.receipts.to_string(),
            &row.quantity.to_string(),
            &row.amount.to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
