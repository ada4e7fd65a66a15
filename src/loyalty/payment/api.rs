//! HTTP for payment cards. Registers: `/api/loyalty/v1/payment-cards/*`
//! (`balance`, `hold`, `confirm`, `cancel`, `refund`, `top-up`) through the
//! same gate as discount cards (credentials, switches, cashier rights).
//! Operator: `/api/loyalty/payment-cards` (issue), `/{number}` (card,
//! held money, ledger, operations), `/{number}/top-up`, `/{number}/state`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::decide::NewPaymentCard;
use super::request::{PayKind, PayRequest, parse};
use super::{PayError, account, store};
use crate::core::api_error::{ApiError, ApiResult};
use crate::loyalty::api::{cards_disabled, gate, json_rejection};
use crate::loyalty::cards::mask_number;
use crate::loyalty::{LoyaltyState, cashiers, ledger};

type Body = Result<Json<PayRequest>, JsonRejection>;

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
endpoint!(balance, PayKind::Balance);
endpoint!(hold, PayKind::Hold);
endpoint!(confirm, PayKind::Confirm);
endpoint!(cancel, PayKind::Cancel);
endpoint!(refund, PayKind::Refund);
endpoint!(top_up, PayKind::TopUp);

/// The register's routes.
pub fn routes() -> axum::Router<LoyaltyState> {
    let p = "/api/loyalty/v1/payment-cards";
    axum::Router::new()
        .route(&format!("{p}/balance"), post(balance))
        .route(&format!("{p}/hold"), post(hold))
        .route(&format!("{p}/confirm"), post(confirm))
        .route(&format!("{p}/cancel"), post(cancel))
        .route(&format!("{p}/refund"), post(refund))
        .route(&format!("{p}/top-up"), post(top_up))
}

async fn handle(
    kind: PayKind,
    State(state): State<LoyaltyState>,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let ctx = gate(&state, &ext, &headers, false).await?;
    let Json(req) = body.map_err(json_rejection)?;
    let (common, op) = parse(kind, req)?;
    if common.register != ctx.register {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "register_mismatch",
            format!(
                "register: the body says {:?} but the credentials are for {:?}",
                common.register, ctx.register
            ),
        ));
    }
    if !ctx.switches.payment_cards && kind != PayKind::Cancel {
        return Err(cards_disabled("payment cards", &ctx));
    }
    let needs = cashiers::needed(kind == PayKind::Hold, kind.names_card(), common.card_entry);
    cashiers::check(&state.db.read, &ctx.store, &common.cashier, &needs).await?;
    let h = &state.handle;
    let lock = h.register_lock(&ctx.register);
    let _one_at_a_time = lock.lock().await;
    Ok(Json(h.pay(&state.db, &state.settings, common, op).await?))
}

/// The operator's routes.
pub fn operator_routes() -> axum::Router<LoyaltyState> {
    axum::Router::new()
        .route("/api/loyalty/payment-cards", post(api_issue))
        .route("/api/loyalty/payment-cards/{number}", get(api_card))
        .route(
            "/api/loyalty/payment-cards/{number}/top-up",
            post(api_top_up),
        )
        .route("/api/loyalty/payment-cards/{number}/state", post(api_state))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    b.map(|Json(v)| v).map_err(json_rejection)
}

async fn api_issue(
    State(s): State<LoyaltyState>,
    b: Result<Json<NewPaymentCard>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = body(b)?;
    super::issue(&s.db, &c, "operator").await?;
    Ok((StatusCode::CREATED, Json(json!({"number": c.number}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    pub amount: i64,
    pub by: String,
}

async fn api_top_up(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<TopUp>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    let t = body(b)?;
    let balance = super::top_up_by_operator(&s.db, &n, t.amount, &t.by).await?;
    Ok(Json(json!({"number": n, "balance": balance})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn api_state(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<StateBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    let st = body(b)?;
    super::set_state(&s.db, &n, &st.state).await?;
    Ok(Json(json!({"number": n, "state": st.state})))
}

async fn api_card(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    Ok(Json(card_view(&s.db, &s.settings, &n).await?))
}

/// A payment card as the operator sees it (API and CLI): the card, money
/// held now, its ledger account and its operations.
pub async fn card_view(
    db: &crate::core::store::Db,
    settings: &crate::loyalty::Settings,
    number: &str,
) -> Result<Value, PayError> {
    let card = store::load(&db.read, number)
        .await?
        .ok_or_else(|| PayError::UnknownCard(mask_number(number)))?;
    let held = store::held(&db.read, number, settings.clock.now_ms()).await?;
    let acc = account(number);
    let entries: Vec<Value> = ledger::entries_of_account(&db.read, &acc)
        .await?
        .into_iter()
        .map(|e| {
            json!({"amount": e.amount, "kind": e.kind, "operation_id": e.operation_id,
                   "reason": e.reason, "actor": e.actor,
                   "at": crate::core::clock::ms_to_rfc3339(e.created_at)})
        })
        .collect();
    Ok(json!({
        "card": card,
        "held": held,
        "ledger_balance": ledger::account_balance(&db.read, &acc).await?,
        "ledger": entries,
        "operations": store::operations_of(&db.read, number).await?,
    }))
}
