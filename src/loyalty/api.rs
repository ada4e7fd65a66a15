//! The register-facing API, `/api/loyalty/v1/*`: JSON in and out, HTTP
//! Basic per register, errors as `{"error": {"code", "message"}}` with codes
//! a cashier can act on.
//!
//! Every request passes the same gate ([`gate`]) on both decision paths
//! (the SQLite owner and PostgreSQL's row locks) before it reaches them:
//! credentials (and the failed sign-in limit), the offline queue depth the
//! client reports, the register's switches (`cards_disabled`) and the
//! cashier's rights (`cashier_not_allowed`).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::Extensions;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::Value;

use super::LoyaltyState;
use super::auth::{AuthError, RegisterCtx};
use super::cashiers::{self, Refusal};
use super::ops::{self, Kind, OpError, Request};
use crate::core::api_error::{ApiError, ApiResult};

type Body = Result<Json<Request>, JsonRejection>;

macro_rules! endpoint {
    ($name:ident, $kind:expr) => {
        async fn $name(
            s: State<LoyaltyState>,
            e: Extensions,
            h: HeaderMap,
            b: Body,
        ) -> ApiResult<Json<Value>> {
            handle($kind, s, e, h, b).await
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
            AuthError::TooMany(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", msg)
            }
            AuthError::Db(e) => ApiError::internal(e),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(e: Refusal) -> Self {
        match e {
            Refusal::Db(e) => ApiError::internal(e),
            e => ApiError::new(StatusCode::FORBIDDEN, "cashier_not_allowed", e.to_string()),
        }
    }
}

/// The answer when a register's cards of `what` are switched off: the
/// register then works without cards, and nothing of a card is shown.
pub fn cards_disabled(what: &str, ctx: &RegisterCtx) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cards_disabled",
        format!(
            "{what} are switched off for register {:?} (store {:?}); work without cards",
            ctx.register, ctx.store
        ),
    )
}

/// Authenticates a register request (HTTP Basic, failed sign-ins limited
/// per register and per source address) and notes the offline queue depth
/// the client reports with it.
pub async fn gate(
    state: &LoyaltyState,
    ext: &Extensions,
    headers: &HeaderMap,
    force_queue_note: bool,
) -> ApiResult<RegisterCtx> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (register, password) = super::auth::parse_basic(auth)?;
    let from = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let ctx = state
        .handle
        .creds()
        .authenticate(&state.db, &register, &password, from)
        .await?;
    let depth = super::switches::parse_queue_header(headers.get(super::switches::QUEUE_HEADER))
        .map_err(|m| ApiError::bad_request("malformed_request", m))?;
    if let Some(depth) = depth {
        state
            .handle
            .queues()
            .note(
                &state.db,
                &register,
                depth,
                state.settings.clock.now_ms(),
                force_queue_note,
            )
            .await?;
    }
    Ok(ctx)
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
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let ctx = gate(&state, &ext, &headers, false).await?;
    let register = ctx.register.clone();
    let h = &state.handle;
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
    // Cancelling releases a hold and moves no balance: always allowed, so
    // switching cards off mid-receipt leaves nothing held.
    if !ctx.switches.discount_cards && kind != Kind::Cancel {
        return Err(cards_disabled("discount cards", &ctx));
    }
    let needs = cashiers::needed(
        matches!(kind, Kind::Calculate | Kind::Purchase),
        matches!(kind, Kind::Balance | Kind::Calculate | Kind::Purchase),
        common.card_entry,
    );
    cashiers::check(&state.db.read, &ctx.store, &common.cashier, &needs).await?;
    let lock = h.register_lock(&register);
    let _one_at_a_time = lock.lock().await;
    let answer = h.execute(&state.db, &state.settings, common, op).await?;
    Ok(Json(answer))
}
