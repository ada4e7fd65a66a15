//! Operator API for orders, stations, cash servers and shifts.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sqlx::Row;

use super::state::{OrderSnapshot, OrderStatus, ServerSnapshot, ShiftSnapshot, StationSnapshot};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::store::Db;
use crate::core::store::StoreError;

pub fn api_routes() -> Router<Db> {
    Router::new()
        .route("/api/orders", get(list_orders))
        .route("/api/orders/{guid}", get(get_order))
        .route("/api/stations", get(list_stations))
        .route("/api/cash-servers", get(list_servers))
        .route("/api/shifts", get(list_shifts))
}

#[derive(Deserialize)]
struct OrderQuery {
    restaurant: Option<String>,
    status: Option<String>,
    /// Cash-server local time, inclusive: orders opened at or after.
    from: Option<String>,
    /// Cash-server local time, exclusive: orders opened before.
    to: Option<String>,
    limit: Option<i64>,
    /// Opaque cursor from the previous page's `next`.
    after: Option<String>,
}

/// Accepts `{GUID}`, `GUID`, with or without dashes, any case; answers the
/// canonical form the order table is keyed by.
pub fn normalise_guid(s: &str) -> Option<String> {
    rk7::Guid::parse(s).ok().map(|g| g.canonical())
}

fn check_local_time(name: &str, v: &Option<String>) -> ApiResult<()> {
    if let Some(v) = v
        && rk7::LocalDateTime::parse(v).is_err()
        && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err()
    {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("{name}: {v:?} is not a local time like 2026-10-03T16:05:00 or a date"),
        ));
    }
    Ok(())
}

async fn list_orders(
    State(db): State<Db>,
    q: Result<Query<OrderQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 500",
        ));
    }
    if let Some(s) = &q.status
        && OrderStatus::parse(s).is_none()
    {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("status {s:?} is not one of open, prebill, paid, closed, deleted, return"),
        ));
    }
    check_local_time("from", &q.from)?;
    check_local_time("to", &q.to)?;
    // Keyset pagination on (opened_at, order_guid): stable while orders
    // change, unlike OFFSET.
    let (after_time, after_guid) = match &q.after {
        None => (None, None),
        Some(c) => match c.split_once('|') {
            Some((t, g)) => (Some(t.to_string()), Some(g.to_string())),
            None => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    "after: not a cursor from `next`",
                ));
            }
        },
    };
    let mut sql = String::from("SELECT snapshot, COALESCE(opened_at, '') FROM orders WHERE 1=1");
    let mut binds: Vec<String> = Vec::new();
    let mut push = |cond: &str, v: String, binds: &mut Vec<String>| {
        binds.push(v);
        sql.push_str(&cond.replace('?', &format!("${}", binds.len())));
    };
    if let Some(r) = &q.restaurant {
        push(" AND rest_code = ?", r.clone(), &mut binds);
    }
    if let Some(s) = &q.status {
        push(" AND status = ?", s.clone(), &mut binds);
    }
    if let Some(f) = &q.from {
        push(" AND opened_at >= ?", f.clone(), &mut binds);
    }
    if let Some(t) = &q.to {
        push(" AND opened_at < ?", t.clone(), &mut binds);
    }
    if let (Some(t), Some(g)) = (after_time, after_guid) {
        binds.push(t);
        let a = binds.len();
        binds.push(g);
        let b = binds.len();
        sql.push_str(&format!(
            " AND (COALESCE(opened_at, '') > ${a} OR (COALESCE(opened_at, '') = ${a} AND order_guid > ${b}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY COALESCE(opened_at, ''), order_guid LIMIT {}",
        limit + 1
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query.fetch_all(&db.read).await?;
    let mut items: Vec<OrderSnapshot> = Vec::with_capacity(rows.len());
    let mut last_time = String::new();
    for r in rows.iter().take(limit as usize) {
        let snap: String = r.try_get(0)?;
        last_time = r.try_get(1)?;
        items.push(
            serde_json::from_str(&snap)
                .map_err(|e| ApiError::internal(StoreError::Corrupt(e.to_string())))?,
        );
    }
    let next = if rows.len() as i64 > limit {
        items.last().map(|o| format!("{last_time}|{}", o.guid))
    } else {
        None
    };
    Ok(axum::Json(serde_json::json!({ "items": items, "next": next })).into_response())
}

async fn get_order(State(db): State<Db>, Path(guid): Path<String>) -> ApiResult<Response> {
    let canon = normalise_guid(&guid)
        .ok_or_else(|| ApiError::bad_request("bad_guid", format!("{guid:?} is not a GUID")))?;
    let snap: Option<String> =
        sqlx::query_scalar("SELECT snapshot FROM orders WHERE order_guid = $1")
            .bind(&canon)
            .fetch_optional(&db.read)
            .await?;
    let snap = snap.ok_or_else(|| ApiError::not_found(format!("no order {canon}")))?;
    let o: OrderSnapshot = serde_json::from_str(&snap)
        .map_err(|e| ApiError::internal(StoreError::Corrupt(e.to_string())))?;
    Ok(axum::Json(o).into_response())
}

async fn list_stations(State(db): State<Db>) -> ApiResult<Response> {
    let rows = sqlx::query("SELECT snapshot FROM stations ORDER BY station_key")
        .fetch_all(&db.read)
        .await?;
    let mut items: Vec<StationSnapshot> = Vec::new();
    for r in rows {
        items.push(
            serde_json::from_str(&r.try_get::<String, _>(0)?)
                .map_err(|e| ApiError::internal(StoreError::Corrupt(e.to_string())))?,
        );
    }
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn list_servers(State(db): State<Db>) -> ApiResult<Response> {
    let rows = sqlx::query("SELECT snapshot FROM cash_servers ORDER BY server_key")
        .fetch_all(&db.read)
        .await?;
    let mut items: Vec<ServerSnapshot> = Vec::new();
    for r in rows {
        items.push(
            serde_json::from_str(&r.try_get::<String, _>(0)?)
                .map_err(|e| ApiError::internal(StoreError::Corrupt(e.to_string())))?,
        );
    }
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
struct ShiftQuery {
    restaurant: Option<String>,
}

async fn list_shifts(
    State(db): State<Db>,
    q: Result<Query<ShiftQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let rows =
        match &q.restaurant {
            Some(r) => sqlx::query(
                "SELECT snapshot FROM shifts WHERE rest_code = $1 ORDER BY rest_code, shift_num",
            )
            .bind(r)
            .fetch_all(&db.read)
            .await?,
            None => {
                sqlx::query("SELECT snapshot FROM shifts ORDER BY rest_code, shift_num")
                    .fetch_all(&db.read)
                    .await?
            }
        };
    let mut items = Vec::new();
    for r in rows {
        let s: ShiftSnapshot = serde_json::from_str(&r.try_get::<String, _>(0)?)
            .map_err(|e| ApiError::internal(StoreError::Corrupt(e.to_string())))?;
        let totals = super::shift_totals(&db, &s.rest_code, s.shift_num).await?;
        let mut v = serde_json::to_value(&s).map_err(ApiError::internal)?;
        v["totals"] = serde_json::to_value(totals).map_err(ApiError::internal)?;
        items.push(v);
    }
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}
