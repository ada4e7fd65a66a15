//! The register-facing API, `/api/loyalty/v1/*`: JSON in and out, HTTP
//! Basic per register, errors as `{"error": {"code", "message"}}` with codes
//! a cashier can act on.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::Value;

use super::LoyaltyState;
use super::auth::AuthError;
use super::ops::{self, Kind, OpError, Request};
use crate::core::api_error::{ApiError, ApiResult};

type Body = Result<Json<Request>, JsonRejection>;

macro_rules! endpoint {
    ($name:ident, $kind:expr) => {
        async fn $name(s: State<LoyaltyState>, h: HeaderMap, b: Body) -> ApiResult<Json<Value>> {
            handle($kind, s, h, b).await
        }
    };
}
endpoint!(balance, Kind::Balance);
endpoint!(calculate, Kind::Calculate);
endpoint!(purchase, Kind::Purchase);
endpoint!(confirm, Kind::Confirm);
endpoint!(cancel, Kind::Cancel);
endpoint!(refund, Kind::Refund);

pub fn routes() -> axum::Router<LoyaltyState> {
    axum::Router::new()
        .route("/api/loyalty/v1/balance", post(balance))
        .route("/api/loyalty/v1/calculate", post(calculate))
        .route("/api/loyalty/v1/purchase", post(purchase))
        .route("/api/loyalty/v1/confirm", post(confirm))
        .route("/api/loyalty/v1/cancel", post(cancel))
        .route("/api/loyalty/v1/refund", post(refund))
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let msg = e.to_string();
        match e {
            OpError::UnknownCard(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_card", msg),
            OpError::CardBlocked(_) => ApiError::new(StatusCode::FORBIDDEN, "card_blocked", msg),
            OpError::NotActivated(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "card_not_activated", msg)
            }
            OpError::NotEnough { .. } => ApiError::conflict("not_enough_bonus", msg),
            OpError::OverReceiptShare { .. } => ApiError::conflict("bonus_over_limit", msg),
            OpError::HoldExpired(_) => ApiError::conflict("hold_expired", msg),
            OpError::PurchaseNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "purchase_not_found", msg)
            }
            OpError::PurchaseState { .. } => ApiError::conflict("purchase_not_open", msg),
            OpError::Conflict(_) => ApiError::conflict("operation_conflict", msg),
            OpError::Malformed { .. } => ApiError::bad_request("malformed_request", msg),
            OpError::Db(e) => ApiError::internal(e),
            OpError::Ledger(_) | OpError::Task(_) => ApiError::internal(msg),
            OpError::NotStored(_) => ApiError::unavailable(msg),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::Missing | AuthError::BadCredentials(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", msg)
            }
            AuthError::NotRegistered(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "register_not_registered", msg)
            }
            AuthError::Db(e) => ApiError::internal(e),
        }
    }
}

/// axum's JSON rejections name the field and the reason (it uses the
/// serde path); they get the one error shape with a stable code.
pub fn json_rejection(e: JsonRejection) -> ApiError {
    let status = if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::new(status, "malformed_request", e.body_text())
}

async fn handle(
    kind: Kind,
    State(state): State<LoyaltyState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (register, password) = super::auth::parse_basic(auth)?;
    let h = &state.handle;
    h.creds().verify(&state.db, &register, &password).await?;
    let Json(req) = body.map_err(json_rejection)?;
    let (common, op) = ops::parse(kind, req)?;
    if common.register != register {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "register_mismatch",
            format!(
                "register: the body says {:?} but the credentials are for {register:?}",
                common.register
            ),
        ));
    }
    let lock = h.register_lock(&register);
    let _one_at_a_time = lock.lock().await;
    let answer = h.execute(&state.db, &state.settings, common, op).await?;
    Ok(Json(answer))
}
