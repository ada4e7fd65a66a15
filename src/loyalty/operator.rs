//! Operator side: registers, cards, balance corrections, card history.
//! The same functions back the operator API (bearer token) and the
//! `tillgate loyalty` CLI, so both refuse bad input the same way.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::LoyaltyState;
use super::ledger::{self, Meta};
use super::ops::{mask, normalise_phone};
use super::{Settings, auth};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("no card {0}")]
    NoCard(String),
    #[error("{0}")]
    Exists(String),
    #[error("not enough bonus on the card for this correction: {0}")]
    NotEnough(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Other(String),
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> Self {
        let m = e.to_string();
        match e {
            OperatorError::Invalid { .. } => ApiError::bad_request("malformed_request", m),
            OperatorError::NoCard(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_card", m),
            OperatorError::Exists(_) => ApiError::conflict("already_exists", m),
            OperatorError::NotEnough(_) => ApiError::conflict("not_enough_bonus", m),
            OperatorError::Db(e) => ApiError::internal(e),
            OperatorError::Other(e) => ApiError::internal(e),
        }
    }
}

fn invalid(field: &'static str, why: impl Into<String>) -> OperatorError {
    OperatorError::Invalid {
        field,
        why: why.into(),
    }
}

fn token(field: &'static str, v: &str) -> Result<(), OperatorError> {
    if v.is_empty() || v.len() > 64 {
        return Err(invalid(field, "must be 1 to 64 characters"));
    }
    if !v.chars().all(|c| c.is_ascii_graphic()) || v.contains(':') {
        return Err(invalid(
            field,
            "only latin letters, digits and punctuation except ':'",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRegister {
    pub id: String,
    pub password: secrecy::SecretString,
    #[serde(default)]
    pub description: String,
}

/// Registers a register or sets a new password for it.
pub async fn put_register(db: &Db, r: &NewRegister) -> Result<(), OperatorError> {
    use secrecy::ExposeSecret;
    token("id", &r.id)?;
    let pw = r.password.expose_secret();
    if pw.len() < 8 {
        return Err(invalid("password", "at least 8 characters"));
    }
    let hash = auth::hash_password(pw).map_err(|e| OperatorError::Other(e.to_string()))?;
    sqlx::query(
        "INSERT INTO loyalty_registers (id, password_hash, description, enabled, created_at) VALUES ($1, $2, $3, 1, $4) \
         ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, description = excluded.description, enabled = 1",
    )
    .bind(&r.id)
    .bind(hash)
    .bind(&r.description)
    .bind(crate::core::clock::now_ms())
    .execute(&db.write)
    .await?;
    Ok(())
}

pub async fn list_registers(db: &Db) -> Result<Value, OperatorError> {
    let rows = sqlx::query(
        "SELECT id, description, enabled, created_at FROM loyalty_registers ORDER BY id",
    )
    .fetch_all(&db.read)
    .await?;
    let mut items = Vec::new();
    for r in rows {
        items.push(json!({
            "id": r.try_get::<String, _>(0)?,
            "description": r.try_get::<String, _>(1)?,
            "enabled": r.try_get::<i64, _>(2)? != 0,
            "created_at": crate::core::clock::ms_to_rfc3339(r.try_get(3)?),
        }));
    }
    Ok(json!({ "items": items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    pub number: String,
    pub holder_name: String,
    pub phone: Option<String>,
    pub barcode: Option<String>,
    pub track: Option<String>,
    /// `active` (default) or `inactive` (may earn, not spend).
    pub state: Option<String>,
}

fn parse_state(s: &str) -> Result<&'static str, OperatorError> {
    match s {
        "active" => Ok("active"),
        "inactive" | "not_activated" => Ok("inactive"),
        "blocked" => Ok("blocked"),
        _ => Err(invalid(
            "state",
            format!("{s:?} is not active, inactive or blocked"),
        )),
    }
}

/// Issues a card. A phone already known joins the card to that holder, so
/// a holder with a blocked card is still found by phone.
pub async fn issue_card(db: &Db, c: &NewCard) -> Result<(), OperatorError> {
    token("number", &c.number)?;
    if c.holder_name.trim().is_empty() || c.holder_name.chars().count() > 200 {
        return Err(invalid("holder_name", "must be 1 to 200 characters"));
    }
    let phone = match &c.phone {
        Some(p) => Some(
            normalise_phone(p)
                .ok_or_else(|| invalid("phone", format!("{p:?} is not a phone number")))?,
        ),
        None => None,
    };
    for (f, v) in [("barcode", &c.barcode), ("track", &c.track)] {
        if let Some(v) = v
            && (v.trim().is_empty() || v.len() > 200)
        {
            return Err(invalid(f, "must be 1 to 200 characters"));
        }
    }
    let state = parse_state(c.state.as_deref().unwrap_or("active"))?;
    let now = crate::core::clock::now_ms();
    let mut tx = db.write.begin().await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT number FROM loyalty_cards WHERE number = $1")
            .bind(&c.number)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_some() {
        return Err(OperatorError::Exists(format!(
            "card {} already exists",
            c.number
        )));
    }
    let holder: Option<String> = match &phone {
        Some(p) => {
            sqlx::query_scalar("SELECT id FROM loyalty_holders WHERE phone = $1")
                .bind(p)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let holder = match holder {
        Some(h) => h,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO loyalty_holders (id, name, phone, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(c.holder_name.trim())
            .bind(&phone)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    sqlx::query("INSERT INTO loyalty_cards (number, holder_id, state, balance, accumulated, created_at) VALUES ($1, $2, $3, 0, 0, $4)")
        .bind(&c.number)
        .bind(&holder)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    for (kind, v) in [
        ("card", Some(&c.number)),
        ("barcode", c.barcode.as_ref()),
        ("track", c.track.as_ref()),
    ] {
        let Some(v) = v else { continue };
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT card_number FROM loyalty_identifiers WHERE value = $1 AND kind = $2",
        )
        .bind(v.trim())
        .bind(kind)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(t) = taken {
            return Err(OperatorError::Exists(format!(
                "{kind} {v} already belongs to card {t}"
            )));
        }
        sqlx::query(
            "INSERT INTO loyalty_identifiers (value, kind, card_number) VALUES ($1, $2, $3)",
        )
        .bind(v.trim())
        .bind(kind)
        .bind(&c.number)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn set_state(db: &Db, number: &str, state: &str) -> Result<(), OperatorError> {
    let state = parse_state(state)?;
    let r = sqlx::query("UPDATE loyalty_cards SET state = $1 WHERE number = $2")
        .bind(state)
        .bind(number)
        .execute(&db.write)
        .await?;
    if r.rows_affected() == 0 {
        return Err(OperatorError::NoCard(number.to_string()));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// Kopecks of bonus; negative takes bonus away.
    pub amount: i64,
    pub reason: String,
    /// Who made the correction.
    pub by: String,
}

/// A balance correction: a new ledger posting against `bonus:adjustments`.
pub async fn adjust(
    db: &Db,
    settings: &Settings,
    number: &str,
    a: &Adjustment,
) -> Result<i64, OperatorError> {
    if a.amount == 0 || a.amount.abs() > 10_000_000_000 {
        return Err(invalid(
            "amount",
            "must be non-zero kopecks, at most 100 000 000 roubles",
        ));
    }
    if a.reason.trim().is_empty() {
        return Err(invalid("reason", "say why the balance changes"));
    }
    if a.by.trim().is_empty() {
        return Err(invalid("by", "say who changes the balance"));
    }
    let now = settings.clock.now_ms();
    let mut tx = db.write.begin().await?;
    if db.backend == crate::core::store::Backend::Postgres {
        sqlx::query("SELECT number FROM loyalty_cards WHERE number = $1 FOR UPDATE")
            .bind(number)
            .execute(&mut *tx)
            .await?;
    }
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance FROM loyalty_cards WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
    if balance.is_none() {
        return Err(OperatorError::NoCard(number.to_string()));
    }
    let meta = Meta {
        kind: "adjustment",
        operation_id: None,
        reason: Some(a.reason.trim()),
        actor: Some(a.by.trim()),
        now,
    };
    if a.amount > 0 {
        ledger::credit(&mut tx, number, a.amount, None, ledger::ADJUSTMENTS, meta).await?;
    } else {
        ledger::debit(&mut tx, number, -a.amount, ledger::ADJUSTMENTS, meta)
            .await
            .map_err(|e| match e {
                ledger::LedgerError::NotEnough { .. } => OperatorError::NotEnough(e.to_string()),
                ledger::LedgerError::Db(e) => OperatorError::Db(e),
            })?;
    }
    let b: i64 = sqlx::query_scalar("SELECT balance FROM loyalty_cards WHERE number = $1")
        .bind(number)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(b)
}

/// A card with its holder, identifiers, ledger entries and operations.
pub async fn card_history(
    db: &Db,
    settings: &Settings,
    number: &str,
) -> Result<Value, OperatorError> {
    let row = sqlx::query(
        "SELECT c.state, c.balance, c.accumulated, h.name, h.phone FROM loyalty_cards c JOIN loyalty_holders h ON h.id = c.holder_id WHERE c.number = $1",
    )
    .bind(number)
    .fetch_optional(&db.read)
    .await?
    .ok_or_else(|| OperatorError::NoCard(number.to_string()))?;
    let accumulated: i64 = row.try_get(2)?;
    let phone: Option<String> = row.try_get(4)?;
    let mut ids = Vec::new();
    for r in sqlx::query(
        "SELECT kind, value FROM loyalty_identifiers WHERE card_number = $1 ORDER BY kind",
    )
    .bind(number)
    .fetch_all(&db.read)
    .await?
    {
        ids.push(json!({"kind": r.try_get::<String, _>(0)?, "value": r.try_get::<String, _>(1)?}));
    }
    let mut entries = Vec::new();
    for r in sqlx::query(
        "SELECT amount, kind, operation_id, reason, actor, created_at FROM loyalty_ledger WHERE account = $1 ORDER BY posting_id, seq",
    )
    .bind(ledger::card_account(number))
    .fetch_all(&db.read)
    .await?
    {
        entries.push(json!({
            "amount": r.try_get::<i64, _>(0)?,
            "kind": r.try_get::<String, _>(1)?,
            "operation_id": r.try_get::<Option<String>, _>(2)?,
            "reason": r.try_get::<Option<String>, _>(3)?,
            "by": r.try_get::<Option<String>, _>(4)?,
            "at": crate::core::clock::ms_to_rfc3339(r.try_get(5)?),
        }));
    }
    let mut ops = Vec::new();
    for r in sqlx::query(
        "SELECT operation_id, kind, register_id, cashier, local_time, status, net, bonus_spend, bonus_earn, offline FROM loyalty_operations WHERE card_number = $1 ORDER BY created_at, operation_id",
    )
    .bind(number)
    .fetch_all(&db.read)
    .await?
    {
        ops.push(json!({
            "operation_id": r.try_get::<String, _>(0)?,
            "kind": r.try_get::<String, _>(1)?,
            "register": r.try_get::<String, _>(2)?,
            "cashier": r.try_get::<String, _>(3)?,
            "local_time": r.try_get::<String, _>(4)?,
            "status": r.try_get::<Option<String>, _>(5)?,
            "net": r.try_get::<i64, _>(6)?,
            "bonus_spend": r.try_get::<i64, _>(7)?,
            "bonus_earn": r.try_get::<i64, _>(8)?,
            "offline": r.try_get::<i64, _>(9)? != 0,
        }));
    }
    let mut conn = db.read.acquire().await?;
    let ledger_sum = ledger::ledger_balance(&mut conn, number).await?;
    Ok(json!({
        "number": number,
        "masked": mask(number),
        "state": row.try_get::<String, _>(0)?,
        "holder": {"name": row.try_get::<String, _>(3)?, "phone": phone.as_deref().map(mask_phone)},
        "tier": settings.rules.tier_for(accumulated).name,
        "balance": row.try_get::<i64, _>(1)?,
        "ledger_balance": ledger_sum,
        "accumulated": accumulated,
        "identifiers": ids,
        "ledger": entries,
        "operations": ops,
    }))
}

/// Guest phones are shown masked to operators too.
pub fn mask_phone(p: &str) -> String {
    let n = p.chars().count();
    p.chars()
        .enumerate()
        .map(|(i, c)| if i >= 2 && i + 2 < n { '*' } else { c })
        .collect()
}

pub fn routes() -> axum::Router<LoyaltyState> {
    axum::Router::new()
        .route(
            "/api/loyalty/registers",
            get(api_list_registers).post(api_put_register),
        )
        .route("/api/loyalty/cards", post(api_issue_card))
        .route("/api/loyalty/cards/{number}", get(api_card))
        .route("/api/loyalty/cards/{number}/state", post(api_set_state))
        .route("/api/loyalty/cards/{number}/adjust", post(api_adjust))
        .route("/api/loyalty/catalog", post(api_catalog))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    b.map(|Json(v)| v).map_err(super::api::json_rejection)
}

async fn api_list_registers(State(s): State<LoyaltyState>) -> ApiResult<Json<Value>> {
    Ok(Json(list_registers(&s.db).await?))
}

async fn api_put_register(
    State(s): State<LoyaltyState>,
    b: Result<Json<NewRegister>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = body(b)?;
    put_register(&s.db, &r).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": r.id}))))
}

async fn api_issue_card(
    State(s): State<LoyaltyState>,
    b: Result<Json<NewCard>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = body(b)?;
    issue_card(&s.db, &c).await?;
    Ok((
        StatusCode::CREATED,
        Json(card_history(&s.db, &s.settings, &c.number).await?),
    ))
}

async fn api_card(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    Ok(Json(card_history(&s.db, &s.settings, &n).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn api_set_state(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<StateBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    set_state(&s.db, &n, &body(b)?.state).await?;
    Ok(Json(card_history(&s.db, &s.settings, &n).await?))
}

async fn api_adjust(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<Adjustment>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    let balance = adjust(&s.db, &s.settings, &n, &body(b)?).await?;
    Ok(Json(json!({"number": n, "balance": balance})))
}

async fn api_catalog(
    State(s): State<LoyaltyState>,
    b: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let v = body(b)?;
    let products = super::catalog::from_json_value(v)
        .map_err(|e| ApiError::bad_request("malformed_request", e.to_string()))?;
    let n = super::catalog::store(&s.db, &products).await?;
    Ok(Json(json!({"imported": n})))
}
