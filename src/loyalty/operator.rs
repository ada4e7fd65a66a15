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

use super::LoyaltyState;
use super::ledger::{self, LedgerError, Meta};
use super::{Settings, auth, cards, operations, registers};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::phone::PhoneE164;
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

impl From<LedgerError> for OperatorError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotEnough { .. } => OperatorError::NotEnough(e.to_string()),
            LedgerError::Db(e) => OperatorError::Db(e),
            LedgerError::Unbalanced { .. } | LedgerError::LotsShort(_) => {
                OperatorError::Other(e.to_string())
            }
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
    /// Required unless `no_password`.
    #[serde(default)]
    pub password: Option<secrecy::SecretString>,
    #[serde(default)]
    pub description: String,
    /// The store the register belongs to; a new register without one goes
    /// to the default store, an existing one keeps its store.
    #[serde(default)]
    pub store: Option<String>,
    /// Seed 004: Kassir 5 may be set up without a password. Only when the
    /// operator says so for this register, and only from `allowed_from`.
    #[serde(default)]
    pub no_password: bool,
    /// Addresses or networks (`10.0.0.5`, `10.0.0.0/24`) a register
    /// without a password may call from; required with `no_password`.
    #[serde(default)]
    pub allowed_from: Vec<String>,
}

/// The longest register description.
pub const DESCRIPTION_MAX: usize = 256;

/// The addresses of `allowed_from`, checked, as stored (comma separated).
fn open_from(list: &[String]) -> Result<String, OperatorError> {
    let mut nets = Vec::with_capacity(list.len());
    for a in list {
        let a = a.trim();
        let net = crate::core::client_addr::parse_net(a).ok_or_else(|| {
            invalid(
                "allowed_from",
                format!("{a:?} is not an address or network like 10.0.0.5 or 10.0.0.0/24"),
            )
        })?;
        nets.push(net.to_string());
    }
    Ok(nets.join(","))
}

/// Whether `ip` is in a register's stored `open_from` list.
pub fn open_from_allows(open_from: &str, ip: std::net::IpAddr) -> bool {
    let nets: Vec<ipnet::IpNet> = open_from
        .split(',')
        .filter_map(crate::core::client_addr::parse_net)
        .collect();
    crate::core::client_addr::in_any(&nets, ip)
}

/// Registers a register or sets a new password for it (or none: see
/// [`NewRegister::no_password`]).
pub async fn put_register(db: &Db, r: &NewRegister) -> Result<(), OperatorError> {
    use secrecy::ExposeSecret;
    token("id", &r.id)?;
    // Shown in every register list and the console: a name, not a file.
    if r.description.chars().count() > DESCRIPTION_MAX {
        return Err(invalid(
            "description",
            format!("longer than {DESCRIPTION_MAX} characters (the limit)"),
        ));
    }
    let pw = r.password.as_ref().map(|p| p.expose_secret()).unwrap_or("");
    let (hash, open) = if r.no_password {
        if !pw.is_empty() {
            return Err(invalid(
                "password",
                "leave it out for a register without a password",
            ));
        }
        if r.allowed_from.is_empty() {
            return Err(invalid(
                "allowed_from",
                "a register without a password needs the addresses it may call from",
            ));
        }
        (String::new(), open_from(&r.allowed_from)?)
    } else {
        if !r.allowed_from.is_empty() {
            return Err(invalid(
                "allowed_from",
                "only for a register without a password (no_password)",
            ));
        }
        if pw.len() < 8 {
            return Err(invalid("password", "at least 8 characters"));
        }
        // As the seed says of the register's login: what any register
        // keyboard layout types the same.
        if !pw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(
                "password",
                "only latin letters, digits and punctuation",
            ));
        }
        let hash = auth::hash_password(pw).map_err(|e| OperatorError::Other(e.to_string()))?;
        (hash, String::new())
    };
    if let Some(store) = &r.store {
        super::shops::token("store", store)?;
    }
    registers::upsert(
        &db.write,
        &r.id,
        &hash,
        &open,
        &r.description,
        r.store.as_deref(),
        crate::core::clock::now_ms(),
    )
    .await?;
    Ok(())
}

pub async fn list_registers(db: &Db) -> Result<Value, OperatorError> {
    let mut items = Vec::new();
    for r in registers::list(&db.read).await? {
        let queue = super::switches::queue_of(&db.read, &r.id).await?;
        items.push(json!({
                "id": r.id,
                "description": r.description,
                "store": r.store,
                "no_password": !r.open_from.is_empty(),
                "allowed_from": r.open_from.split(',').filter(|a| !a.is_empty()).collect::<Vec<_>>(),
                "queue": queue.map(|(depth, seen)| json!({"depth": depth, "seen_at": crate::core::clock::ms_to_rfc3339(seen)})),
                "enabled": r.enabled != 0,
                "created_at": crate::core::clock::ms_to_rfc3339(r.created_at),
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

pub(crate) fn parse_state(s: &str) -> Result<&'static str, OperatorError> {
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
    // The reason only: echoing the input would print a phone number.
    let phone = c
        .phone
        .as_deref()
        .map(PhoneE164::parse)
        .transpose()
        .map_err(|e| invalid("phone", format!("not a phone number: {e}")))?;
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
    if cards::exists(&mut *tx, &c.number).await? {
        return Err(OperatorError::Exists(format!(
            "card {} already exists",
            c.number
        )));
    }
    let holder = match &phone {
        Some(p) => cards::holder_by_phone(&mut *tx, p).await?,
        None => None,
    };
    let holder = match holder {
        Some(h) => h,
        None => cards::insert_holder(&mut *tx, c.holder_name.trim(), phone.as_ref(), now).await?,
    };
    cards::insert_card(&mut *tx, &c.number, &holder, state, now).await?;
    for (kind, v) in [
        ("card", Some(&c.number)),
        ("barcode", c.barcode.as_ref()),
        ("track", c.track.as_ref()),
    ] {
        let Some(v) = v else { continue };
        if let Some(t) = cards::number_by_identifier(&mut *tx, kind, v.trim()).await? {
            return Err(OperatorError::Exists(format!(
                "{kind} {v} already belongs to card {t}"
            )));
        }
        cards::insert_identifier(&mut *tx, kind, v.trim(), &c.number).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn set_state(db: &Db, number: &str, state: &str) -> Result<(), OperatorError> {
    let state = parse_state(state)?;
    if !cards::set_state(&db.write, number, state).await? {
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
    check_adjustment(a)?;
    let now = settings.clock.now_ms();
    let mut tx = db.write.begin().await?;
    cards::lock(&mut tx, db.backend, number).await?;
    if !cards::exists(&mut *tx, number).await? {
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
        ledger::debit(&mut tx, number, -a.amount, ledger::ADJUSTMENTS, meta).await?;
    }
    let b = cards::balance(&mut *tx, number)
        .await?
        .ok_or_else(|| OperatorError::NoCard(number.to_string()))?;
    tx.commit().await?;
    Ok(b)
}

/// Refuses a correction that is not one, whichever path applies it.
pub(crate) fn check_adjustment(a: &Adjustment) -> Result<(), OperatorError> {
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
    Ok(())
}

/// A card with its holder, identifiers, ledger entries and operations.
/// The holder's phone is shown masked only.
pub async fn card_history(
    db: &Db,
    settings: &Settings,
    number: &str,
) -> Result<Value, OperatorError> {
    let card = cards::view(&db.read, number)
        .await?
        .ok_or_else(|| OperatorError::NoCard(number.to_string()))?;
    let ids: Vec<Value> = cards::identifiers(&db.read, number)
        .await?
        .into_iter()
        .map(|r| json!({"kind": r.kind, "value": r.value}))
        .collect();
    let entries: Vec<Value> = ledger::entries_of_card(&db.read, number)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "amount": r.amount,
                "kind": r.kind,
                "operation_id": r.operation_id,
                "reason": r.reason,
                "by": r.actor,
                "at": crate::core::clock::ms_to_rfc3339(r.created_at),
            })
        })
        .collect();
    let ops: Vec<Value> = operations::of_card(&db.read, number)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "operation_id": r.operation_id,
                "kind": r.kind,
                "register": r.register_id,
                "cashier": r.cashier,
                "local_time": r.local_time,
                "status": r.status,
                "net": r.net,
                "bonus_spend": r.bonus_spend,
                "bonus_earn": r.bonus_earn,
                "offline": r.offline != 0,
            })
        })
        .collect();
    let ledger_sum = ledger::ledger_balance(&db.read, number).await?;
    Ok(json!({
        "number": number,
        "masked": cards::mask_number(number),
        "state": card.state,
        "holder": {
            "name": card.holder_name,
            "phone": card.holder_phone.as_deref().map(cards::masked_phone),
        },
        "tier": settings.rules.tier_for(card.accumulated).name,
        "balance": card.balance,
        "ledger_balance": ledger_sum,
        "accumulated": card.accumulated,
        "identifiers": ids,
        "ledger": entries,
        "operations": ops,
    }))
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
    s.handle.set_state(&s.db, &n, &body(b)?.state).await?;
    Ok(Json(card_history(&s.db, &s.settings, &n).await?))
}

async fn api_adjust(
    State(s): State<LoyaltyState>,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<Adjustment>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path(n) = p?;
    let balance = s.handle.adjust(&s.db, &s.settings, &n, &body(b)?).await?;
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
    s.handle.catalog_changed();
    Ok(Json(json!({"imported": n})))
}
