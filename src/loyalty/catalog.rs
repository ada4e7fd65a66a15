//! The product catalogue from the ERP: goods ids with flags that exclude a
//! product from discounts or from bonus (tobacco, say).
//!
//! CSV: a header row with `goods_id,name,no_discount,no_bonus` (flags as
//! `0/1`, `true/false`, `yes/no` or empty for no). JSON: an array of
//! `{"goods_id", "name", "no_discount", "no_bonus"}`, or `{"products": [...]}`.
//! A file with any bad row is refused whole, naming the row, so a half
//! catalogue never goes live.
//!
//! Only this module writes SQL against `loyalty_products`.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use sqlx::AnyConnection;

use super::rules::{Line, ProductFlags};
use crate::core::store::Db;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub goods_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub no_discount: bool,
    #[serde(default)]
    pub no_bonus: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{where_}: {why}")]
    Bad { where_: String, why: String },
}

fn bad(where_: impl Into<String>, why: impl Into<String>) -> CatalogError {
    CatalogError::Bad {
        where_: where_.into(),
        why: why.into(),
    }
}

/// The longest product name: the catalogue is kept in memory for every
/// register's calculation, so a file must not bring megabytes of one.
pub const NAME_MAX: usize = 256;

fn check(products: &[Product]) -> Result<(), CatalogError> {
    let mut seen = HashSet::new();
    for (i, p) in products.iter().enumerate() {
        // The goods id is quoted only once it is known to be short.
        if p.goods_id.trim().is_empty() || p.goods_id.chars().count() > 64 {
            return Err(bad(
                format!("product {}", i + 1),
                "goods_id must be 1 to 64 characters",
            ));
        }
        let at = format!("product {} ({:?})", i + 1, p.goods_id);
        if p.name.chars().count() > NAME_MAX {
            return Err(bad(
                at,
                format!("name: longer than {NAME_MAX} characters (the limit)"),
            ));
        }
        if !seen.insert(p.goods_id.trim().to_string()) {
            return Err(bad(at, "goods_id appears twice"));
        }
    }
    Ok(())
}

fn flag(v: &str, at: &str, field: &str) -> Result<bool, CatalogError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "n" => Ok(false),
        "1" | "true" | "yes" | "y" => Ok(true),
        other => Err(bad(
            at,
            format!("{field}: {other:?} is not 0/1, true/false or yes/no"),
        )),
    }
}

pub fn from_csv(text: &str) -> Result<Vec<Product>, CatalogError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| bad("header", e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let goods = col("goods_id").ok_or_else(|| bad("header", "no goods_id column"))?;
    let (name, nd, nb) = (col("name"), col("no_discount"), col("no_bonus"));
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let at = format!("line {}", i + 2);
        let rec = rec.map_err(|e| bad(&at, e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("");
        out.push(Product {
            goods_id: get(Some(goods)).to_string(),
            name: get(name).to_string(),
            no_discount: flag(get(nd), &at, "no_discount")?,
            no_bonus: flag(get(nb), &at, "no_bonus")?,
        });
    }
    check(&out)?;
    Ok(out)
}

pub fn from_json_value(v: serde_json::Value) -> Result<Vec<Product>, CatalogError> {
    let v = match v {
        serde_json::Value::Object(mut m) if m.contains_key("products") => {
            m.remove("products").unwrap_or_default()
        }
        v => v,
    };
    let out: Vec<Product> = serde_json::from_value(v).map_err(|e| bad("JSON", e.to_string()))?;
    check(&out)?;
    Ok(out)
}

pub fn from_json(text: &str) -> Result<Vec<Product>, CatalogError> {
    let v = serde_json::from_str(text).map_err(|e| bad("JSON", e.to_string()))?;
    from_json_value(v)
}

/// Upserts every product in one transaction.
pub async fn store(db: &Db, products: &[Product]) -> Result<usize, sqlx::Error> {
    let now = crate::core::clock::now_ms();
    let mut tx = db.write.begin().await?;
    for p in products {
        sqlx::query(
            "INSERT INTO loyalty_products (goods_id, name, no_discount, no_bonus, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (goods_id) DO UPDATE SET name = excluded.name, no_discount = excluded.no_discount, no_bonus = excluded.no_bonus, updated_at = excluded.updated_at",
        )
        .bind(p.goods_id.trim())
        .bind(&p.name)
        .bind(i64::from(p.no_discount))
        .bind(i64::from(p.no_bonus))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(products.len())
}

/// A product's flags as stored: 0/1 BIGINTs on both backends.
#[derive(Debug, sqlx::FromRow)]
struct FlagsRow {
    no_discount: i64,
    no_bonus: i64,
}

/// The flags of every product on a receipt; a product not in the catalogue
/// has none.
pub async fn flags_for(
    conn: &mut AnyConnection,
    lines: &[Line],
) -> Result<HashMap<String, ProductFlags>, sqlx::Error> {
    let mut out = HashMap::new();
    for l in lines {
        if out.contains_key(&l.goods_id) {
            continue;
        }
        let row: Option<FlagsRow> = sqlx::query_as(
            "SELECT no_discount, no_bonus FROM loyalty_products WHERE goods_id = $1",
        )
        .bind(&l.goods_id)
        .fetch_optional(&mut *conn)
        .await?;
        let f = row
            .map(|r| ProductFlags {
                no_discount: r.no_discount != 0,
                no_bonus: r.no_bonus != 0,
            })
            .unwrap_or_default();
        out.insert(l.goods_id.clone(), f);
    }
    Ok(out)
}

/// The whole catalogue's flags, for the in-memory owner's cache.
pub(crate) async fn all_flags(db: &Db) -> Result<HashMap<String, ProductFlags>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT goods_id, no_discount, no_bonus FROM loyalty_products")
            .fetch_all(&db.read)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(g, d, b)| {
            (
                g,
                ProductFlags {
                    no_discount: d != 0,
                    no_bonus: b != 0,
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json() {
        let p = from_csv(
            "goods_id,name,no_discount,no_bonus\n100,Beer,0,0\n200,\"Tobacco, red\",1,yes\n",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[1].no_discount && p[1].no_bonus);
        assert_eq!(p[1].name, "Tobacco, red");
        let j = from_json(r#"{"products":[{"goods_id":"1","no_bonus":true}]}"#).unwrap();
        assert!(j[0].no_bonus);
    }

    #[test]
    fn broken_input_names_the_row() {
        let e = from_csv("goods_id,no_bonus\n1,maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("no_bonus"), "{e}");
        assert!(
            from_csv("name\nx\n")
                .unwrap_err()
                .to_string()
                .contains("goods_id")
        );
        assert!(
            from_csv("goods_id\n1\n1\n")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(from_json("[{\"goods_id\":\"1\",\"price\":3}]").is_err());
        assert!(from_json("[{\"goods_id\":\"\"}]").is_err());
        let long_id = format!("goods_id\n{}\n", "9".repeat(100_000));
        let e = from_csv(&long_id).unwrap_err().to_string();
        assert!(e.contains("1 to 64") && e.len() < 200, "{}", &e[..200]);
        let long_name = format!("goods_id,name\n1,{}\n", "n".repeat(257));
        let e = from_csv(&long_name).unwrap_err().to_string();
        assert!(e.contains("name") && e.contains("256"), "{e}");
        assert!(from_json("{").is_err());
    }
}
