//! Operator API for orders, stations, cash servers and shifts.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::store;
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::book::OrderStatus;
use crate::core::store::Db;

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
    let after = match &q.after {
        None => None,
        Some(c) => match c.split_once('|') {
            Some(pair) => Some(pair),
            None => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    "after: not a cursor from `next`",
                ));
            }
        },
    };
    let filter = store::OrderFilter {
        restaurant: q.restaurant.as_deref(),
        status: q.status.as_deref(),
        from: q.from.as_deref(),
        to: q.to.as_deref(),
        after,
        newest_first: false,
    };
    let page = store::orders_page(&db, &filter, limit).await?;
    // The cursor is the last order's (opened_at, GUID), the page's keyset.
    let next = if page.more {
        page.items
            .last()
            .map(|o| format!("{}|{}", page.last_opened_at, o.guid))
    } else {
        None
    };
    Ok(axum::Json(serde_json::json!({ "items": page.items, "next": next })).into_response())
}

async fn get_order(State(db): State<Db>, Path(guid): Path<String>) -> ApiResult<Response> {
    let canon = crate::core::book::normalise_guid(&guid)
        .ok_or_else(|| ApiError::bad_request("bad_guid", format!("{guid:?} is not a GUID")))?;
    let o = store::order(&db, &canon)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {canon}")))?;
    Ok(axum::Json(o).into_response())
}

async fn list_stations(State(db): State<Db>) -> ApiResult<Response> {
    let items = store::stations(&db).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn list_servers(State(db): State<Db>) -> ApiResult<Response> {
    let items = store::servers(&db).await?;
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
    let mut items = Vec::new();
    for s in store::shifts(&db, q.restaurant.as_deref()).await? {
        let totals = store::shift_totals(&db, &s.rest_code, s.shift_num).await?;
        let mut v = serde_json::to_value(&s).map_err(ApiError::internal)?;
        v["totals"] = serde_json::to_value(totals).map_err(ApiError::internal)?;
        items.push(v);
    }
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}
