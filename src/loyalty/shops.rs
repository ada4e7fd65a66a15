//! The operator's side of shops: which store a register belongs to, the
//! switches per store and per register ([`super::switches`]) and the
//! cashiers with their rights ([`super::cashiers`]). The same functions
//! back the operator API (bearer token beyond loopback) and the
//! `tillgate loyalty` CLI, so both refuse bad input the same way.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::cashiers::{self, NewCashier};
use super::operator::OperatorError;
use super::switches::{self, REGISTER, STORE, SwitchChange};
use super::{LoyaltyState, registers};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::store::Db;

fn invalid(field: &'static str, why: impl Into<String>) -> OperatorError {
    OperatorError::Invalid {
        field,
        why: why.into(),
    }
}

/// Store names, register and cashier ids: what registers send, 1 to 64
/// latin letters, digits and punctuation.
pub fn token(field: &'static str, v: &str) -> Result<(), OperatorError> {
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            field,
            "must be 1 to 64 latin letters, digits or punctuation",
        ));
    }
    Ok(())
}

/// Moves register `id` to `store`.
pub async fn set_register_store(db: &Db, id: &str, store: &str) -> Result<(), OperatorError> {
    token("store", store)?;
    if !registers::set_store(&db.write, id, store).await? {
        return Err(OperatorError::Other(format!("no register {id}")));
    }
    Ok(())
}

/// Changes the switches of a store (`scope` = `store`) or a register.
pub async fn set_switches(
    db: &Db,
    scope: &str,
    id: &str,
    change: &SwitchChange,
) -> Result<Value, OperatorError> {
    token(if scope == STORE { "store" } else { "register" }, id)?;
    if change.discount_cards.is_none() && change.payment_cards.is_none() {
        return Err(invalid(
            "body",
            "say discount_cards and/or payment_cards: true, false or null (follow the store)",
        ));
    }
    if scope == REGISTER && registers::credentials(&db.read, id).await?.is_none() {
        return Err(OperatorError::Other(format!("no register {id}")));
    }
    let mut tx = db.write.begin().await?;
    let current = switches::get(&mut *tx, scope, id).await?;
    switches::set(
        &mut *tx,
        scope,
        id,
        current.as_ref(),
        change,
        crate::core::clock::now_ms(),
    )
    .await?;
    let after = switches::get(&mut *tx, scope, id).await?;
    tx.commit().await?;
    Ok(json!(after))
}

/// Every switch row, with the resync guard over all stores.
pub async fn list_switches(db: &Db) -> Result<Value, OperatorError> {
    let rows = switches::list(&db.read).await?;
    let guard = switches::resync_guard(db, None).await?;
    Ok(
        json!({"items": rows, "stores_with_cards_on": guard.stores_with_cards_on, "queued": guard.queued}),
    )
}

/// Registers or changes a cashier.
pub async fn put_cashier(db: &Db, c: &NewCashier) -> Result<(), OperatorError> {
    token("id", &c.id)?;
    token("store", &c.store)?;
    if c.name.trim().is_empty() || c.name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    cashiers::upsert(&db.write, c, crate::core::clock::now_ms()).await?;
    Ok(())
}

pub async fn remove_cashier(db: &Db, id: &str) -> Result<(), OperatorError> {
    if !cashiers::delete(&db.write, id).await? {
        return Err(OperatorError::Other(format!("no cashier {id}")));
    }
    Ok(())
}

pub async fn list_cashiers(db: &Db, store: Option<&str>) -> Result<Value, OperatorError> {
    let items: Vec<Value> = cashiers::list(&db.read, store)
        .await?
        .iter()
        .map(cashiers::CashierRow::json)
        .collect();
    Ok(json!({ "items": items }))
}

pub fn routes() -> axum::Router<LoyaltyState> {
    axum::Router::new()
        .route(
            "/api/loyalty/registers/{id}/store",
            post(api_register_store),
        )
        .route("/api/loyalty/switches", get(api_switches))
        .route(
            "/api/loyalty/switches/stores/{id}",
            post(api_store_switches),
        )
        .route(
            "/api/loyalty/switches/registers/{id}",
            post(api_register_switches),
        )
        .route(
            "/api/loyalty/cashiers",
            get(api_cashiers).post(api_put_cashier),
        )
        .route(
            "/api/loyalty/cashiers/{id}",
            axum::routing::delete(api_remove_cashier),
        )
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    b.map(|Json(v)| v).map_err(super::api::json_rejection)
}

/// "no register/cashier X" is a 404 here, not a 500.
fn not_found(e: OperatorError) -> ApiError {
    match e {
        OperatorError::Other(m) if m.starts_with("no ") => ApiError::not_found(m),
        e => e.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreBody {
    store: String,
}

async fn api_register_store(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<StoreBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = p?;
    let st = body(b)?;
    set_register_store(&s.db, &id, &st.store)
        .await
        .map_err(not_found)?;
    Ok(Json(json!({"id": id, "store": st.store})))
}

async fn api_switches(State(s): State<LoyaltyState>) -> ApiResult<Json<Value>> {
    Ok(Json(list_switches(&s.db).await?))
}

async fn api_store_switches(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<SwitchChange>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = p?;
    let c = body(b)?;
    Ok(Json(set_switches(&s.db, STORE, &id, &c).await?))
}

async fn api_register_switches(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<SwitchChange>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = p?;
    let c = body(b)?;
    Ok(Json(
        set_switches(&s.db, REGISTER, &id, &c)
            .await
            .map_err(not_found)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreQuery {
    store: Option<String>,
}

async fn api_cashiers(
    State(s): State<LoyaltyState>,
    q: Result<Query<StoreQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    Ok(Json(list_cashiers(&s.db, q.store.as_deref()).await?))
}

async fn api_put_cashier(
    State(s): State<LoyaltyState>,
    b: Result<Json<NewCashier>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = body(b)?;
    put_cashier(&s.db, &c).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": c.id}))))
}

async fn api_remove_cashier(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = p?;
    remove_cashier(&s.db, &id).await.map_err(not_found)?;
    Ok(Json(json!({"id": id, "removed": true})))
}
