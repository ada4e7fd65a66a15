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

impl Filter {
    /// The filter as the journal compares it, or what is wrong with it.
    /// Local times are compared as text, so a bound must be written as the
    /// journal writes them: a date (`2026-11-30`, the day's start) or a
    /// local time in any form a receipt may use, rewritten to
    /// `2026-11-30T10:00:00` (with a space or without seconds' fraction it
    /// would compare wrongly, and nonsense would silently match nothing).
    pub fn checked(self) -> Result<Filter, String> {
        let bound = |name: &str, v: Option<String>| -> Result<Option<String>, String> {
            let Some(v) = v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            if chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").is_ok() {
                return Ok(Some(v));
            }
            super::receipt::parse_local(&v)
                .map(|t| Some(t.format(super::receipt::LOCAL_TIME).to_string()))
                .ok_or_else(|| {
                    format!("{name}: {v:?} is not a date (YYYY-MM-DD) nor a local time (YYYY-MM-DDTHH:MM:SS)")
                })
        };
        Ok(Filter {
            store: self.store.filter(|s| !s.trim().is_empty()),
            from: bound("from", self.from)?,
            to: bound("to", self.to)?,
        })
    }
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

/// A text cell as a spreadsheet will take it as text: one that begins
/// with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'` in front.
///
/// Report keys are what registers and files sent (a goods id, a store, a
/// cashier); Excel and LibreOffice run a cell that starts like a formula
/// (`=HYPERLINK("http://evil","x")`, `@SUM(...)`, `-2+3`), so a register
/// could plant a live link or a DDE call in the office's report. The `'` is
/// what spreadsheets themselves use to mark a cell as text (OWASP "CSV
/// injection"). Only for text cells: a numeric column's `-150` must stay a
/// number.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// The report as CSV: a header, one line per row, the total last. The key
/// is text ([`csv_cell`]); the figures are numbers, negative ones too.
pub fn to_csv(r: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["key", "receipts", "quantity", "amount"]);
    for row in r.rows.iter().chain(std::iter::once(&r.total)) {
        let _ = w.write_record([
            &*csv_cell(&row.key),
            &row.receipts.to_string(),
            &row.quantity.to_string(),
            &row.amount.to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{By, Filter, Report, Row, csv_cell, to_csv};

    #[test]
    fn text_cells_that_look_like_formulas_are_text_and_numbers_stay_numbers() {
        for (cell, want) in [
            (
                "=HYPERLINK(\"http://evil\",\"x\")",
                "'=HYPERLINK(\"http://evil\",\"x\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("milk", "milk"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
        let row = |key: &str, amount| Row {
            key: key.into(),
            receipts: 1,
            quantity: -1500,
            amount,
        };
        let csv = to_csv(&Report {
            by: By::Goods,
            rows: vec![row("-5", -150)],
            total: row("total", -150),
        });
        assert_eq!(
            csv,
            "key,receipts,quantity,amount\n'-5,1,-1500,-150\ntotal,1,-1500,-150\n"
        );
    }

    fn f(from: &str, to: &str) -> Result<Filter, String> {
        Filter {
            store: Some(" ".into()),
            from: Some(from.into()),
            to: Some(to.into()),
        }
        .checked()
    }

    #[test]
    fn bounds_are_written_as_the_journal_writes_times() {
        let ok = f("2026-11-30", "2026-11-30 18:00:00").unwrap();
        assert_eq!(ok.from.as_deref(), Some("2026-11-30"));
        assert_eq!(ok.to.as_deref(), Some("2026-11-30T18:00:00"));
        assert_eq!(ok.store, None);
        assert_eq!(f("", " ").unwrap().from, None);
        let e = f("yesterday", "").unwrap_err();
        assert!(e.starts_with("from: \"yesterday\""), "{e}");
        assert!(
            f("2026-11-30", "2026-13-01")
                .unwrap_err()
                .starts_with("to:")
        );
    }
}
