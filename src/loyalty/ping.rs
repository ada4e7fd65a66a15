//! `GET /api/backoffice/v1/ping`: the register's "check connection" button.
//! With the register's credentials it answers what the register needs to
//! set itself up: tillgate's time, the register's store, the switches in
//! force for it and the cashiers of its store with their rights (so the
//! till can grey out what a cashier may not do). A wrong password gets the
//! same 401 JSON error as every register call, and counts against the
//! failed sign-in limit ([`super::auth`]). The queue depth the client
//! sends with it is always stored, so the operator sees when a register
//! last checked in.

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::routing::get;
use serde_json::{Value, json};

use super::{LoyaltyState, cashiers, switches};
use crate::core::api_error::ApiResult;
use crate::core::clock::ms_to_rfc3339;

pub fn routes() -> axum::Router<LoyaltyState> {
    axum::Router::new().route("/api/backoffice/v1/ping", get(ping))
}

async fn ping(
    State(state): State<LoyaltyState>,
    ext: Extensions,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let ctx = super::api::gate(&state, &ext, &headers, true).await?;
    let now = state.settings.clock.now_ms();
    let cashiers = cashiers::list(&state.db.read, Some(&ctx.store)).await?;
    let queue = switches::queue_of(&state.db.read, &ctx.register).await?;
    Ok(Json(json!({
        "server_time": ms_to_rfc3339(now),
        "server_time_ms": now,
        "register": ctx.register,
        "store": ctx.store,
        "switches": ctx.switches,
        "cashier_rights": {
            // A store without cashiers does not check rights at all.
            "enforced": !cashiers.is_empty(),
            "cashiers": cashiers.iter().map(cashiers::CashierRow::json).collect::<Vec<_>>(),
        },
        "queue": queue.map(|(depth, seen_at)| json!({"depth": depth, "seen_at": ms_to_rfc3339(seen_at)})),
    })))
}
