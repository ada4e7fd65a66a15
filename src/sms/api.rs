//! Operator API of the SMS feature.
//!
//! * `GET /api/sms` — outbox messages (phones masked), paginated by id.
//! * `GET /api/sms/balance[?provider=]` — the provider's balance.
//! * `GET /api/sms/settings`, `GET|PUT /api/sms/settings/{restcode}` —
//!   per-restaurant settings; a save answers the template's length and
//!   part count and warns above one part.
//! * `POST /api/sms/resume?provider=` — lift a stop after the owner fixed
//!   money or credentials.
//! * `POST /api/orders/{guid}/contact` — a guest's phone with explicit
//!   consent (e.g. from a QR menu). It lives beside the orders routes; the
//!   paths differ, so the merged router has no clash.
//!
//! Phones appear in answers only masked, also in the error of a body that
//! did not read (serde quotes the value it refused).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::Handle;
use super::global::{self, Source};
use super::provider::{Provider, ProviderError};
use super::redact::hide_phones;
use super::settings::effective_restaurants;
use super::settings::{ProviderSettings, check_sender};
use super::store::{self, ListedRow, MessageState};
use super::{Restaurant, RestaurantFile, validate_restaurant};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::clock::ms_to_rfc3339;
use crate::core::config::ConfigError;
use crate::core::money::rub;
use crate::core::phone::PhoneE164;
use crate::core::store::StoreError;

pub fn api_routes() -> Router<Handle> {
    Router::new()
        .route("/api/sms", get(list))
        .route("/api/sms/balance", get(balance))
        .route("/api/sms/settings", get(list_settings).put(put_global))
        .route(
            "/api/sms/settings/{restcode}",
            get(get_settings).put(put_settings),
        )
        .route("/api/sms/resume", post(resume))
        .route("/api/orders/{guid}/contact", post(post_contact))
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    restaurant: Option<String>,
    state: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// One outbox row as the API shows it: the phone masked, never in full.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub order_guid: String,
    pub restcode: String,
    pub step: i64,
    pub phone: Option<String>,
    pub text: String,
    pub provider: String,
    pub state: MessageState,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub provider_id: Option<String>,
    pub error_code: Option<i64>,
    pub error_text: Option<String>,
    pub delivery: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl TryFrom<ListedRow> for Message {
    type Error = StoreError;
    fn try_from(r: ListedRow) -> Result<Self, StoreError> {
        let state: MessageState = r.state.parse().map_err(|_| {
            StoreError::Corrupt(format!("sms_outbox {}: state {:?}", r.id, r.state))
        })?;
        Ok(Message {
            id: r.id,
            order_guid: r.order_guid,
            restcode: r.rest_code,
            step: r.step,
            phone: r.phone_masked,
            text: r.body,
            provider: r.provider,
            next_attempt_at: (state == MessageState::PENDING)
                .then(|| ms_to_rfc3339(r.next_attempt_at)),
            state,
            attempts: r.attempts,
            provider_id: r.provider_id,
            error_code: r.error_code,
            error_text: r.error_text,
            delivery: r.delivery,
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        })
    }
}

async fn list(
    State(st): State<Handle>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 500",
        ));
    }
    let state = q
        .state
        .as_deref()
        .map(str::parse::<MessageState>)
        .transpose()
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
    let items = store::list(
        &st.db,
        q.restaurant.as_deref(),
        state,
        q.after.unwrap_or(0),
        limit,
    )
    .await?
    .into_iter()
    .map(Message::try_from)
    .collect::<Result<Vec<_>, _>>()?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id))
        .flatten();
    let stopped: Vec<Value> = store::stops(&st.db)
        .await?
        .into_iter()
        .map(|s| json!({"provider": s.provider, "reason": s.reason, "since": ms_to_rfc3339(s.stopped_at)}))
        .collect();
    Ok(Json(
        json!({"items": items, "next": next, "stopped": stopped}),
    ))
}

/// Chooses the named provider, or the only one.
pub fn pick_provider<'a>(
    providers: &'a HashMap<String, Arc<dyn Provider>>,
    name: Option<&str>,
) -> Result<(String, &'a Arc<dyn Provider>), ApiError> {
    match name {
        Some(n) => providers
            .get_key_value(n)
            .map(|(k, v)| (k.clone(), v))
            .ok_or_else(|| ApiError::not_found(format!("no SMS provider named {n:?}"))),
        None if providers.len() == 1 => Ok(providers
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v))
            .expect("one provider")),
        None if providers.is_empty() => Err(ApiError::conflict(
            "no_provider",
            "no SMS provider is configured in [sms.providers]",
        )),
        None => Err(ApiError::bad_request(
            "provider_required",
            "several SMS providers are configured: pass ?provider=NAME",
        )),
    }
}

fn provider_error(name: &str, e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unsupported(_) => {
            ApiError::bad_request("unsupported", format!("{name}: {e}"))
        }
        e => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            format!("{name}: {e}"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderQuery {
    provider: Option<String>,
}

async fn balance(
    State(st): State<Handle>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let (name, p) = pick_provider(&st.providers, q.provider.as_deref())?;
    let b = p.balance().await.map_err(|e| provider_error(&name, e))?;
    Ok(Json(json!({
        "provider": name,
        "balance_kopecks": b.kopecks,
        "balance": rub(b.kopecks),
    })))
}

async fn resume(
    State(st): State<Handle>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let (name, _) = pick_provider(&st.providers, q.provider.as_deref())?;
    let was = store::resume(&st.db, &name).await?;
    // Its held rows are due now: the delivery worker must not sleep on.
    st.wake.notify();
    tracing::info!(provider = %name, was_stopped = was, "sms sending resumed by operator");
    Ok(Json(json!({"provider": name, "was_stopped": was})))
}

#[derive(Serialize)]
struct SettingsView {
    restcode: String,
    enabled: bool,
    step: &'static str,
    step_number: i64,
    template: String,
    provider: String,
    sender: Option<String>,
    name: String,
    register_collects_consent: bool,
}

fn view(code: &str, r: &Restaurant) -> SettingsView {
    SettingsView {
        restcode: code.to_string(),
        enabled: r.enabled,
        step: r.step.as_str(),
        step_number: r.step.number(),
        template: r.template.as_str().to_string(),
        provider: r.provider.clone(),
        sender: r.sender.clone(),
        name: r.name.clone(),
        register_collects_consent: r.register_collects_consent,
    }
}

/// The global settings in effect and where each comes from; tokens only as
/// set or not.
async fn global_view(st: &Handle) -> ApiResult<Value> {
    let g = st.global.get().await?;
    let providers: Vec<Value> = st
        .settings
        .providers
        .iter()
        .map(|(name, p)| {
            let (kind, token_source) = match p {
                ProviderSettings::SmsRu {
                    api_id: Some(_), ..
                } => ("smsru", Source::File),
                ProviderSettings::SmsRu { api_id: None, .. } if g.tokens.contains_key(name) => {
                    ("smsru", Source::Console)
                }
                ProviderSettings::SmsRu { .. } => ("smsru", Source::Default),
                ProviderSettings::Http { .. } => ("http", Source::File),
            };
            json!({
                "name": name,
                "kind": kind,
                "token_set": token_source != Source::Default,
                "token_source": token_source,
                "token_settable": global::token_settable(&st.settings, name),
            })
        })
        .collect();
    Ok(json!({
        "enabled": g.enabled,
        "enabled_source": g.enabled_source,
        "sender": g.sender,
        "sender_source": g.sender_source,
        "providers": providers,
        // Read-only here: the limits against SMS pumping are the file's.
        "allowed_country_codes": st.settings.guard.allowed_country_codes,
        "hourly_cap": st.settings.guard.hourly_cap,
        "daily_cap": st.settings.guard.daily_cap,
    }))
}

async fn list_settings(State(st): State<Handle>) -> ApiResult<Json<Value>> {
    let all = effective_restaurants(&st.db, &st.settings).await?;
    let items: Vec<SettingsView> = all.iter().map(|(c, r)| view(c, r)).collect();
    let global = global_view(&st).await?;
    Ok(Json(
        json!({"enabled": global["enabled"], "global": global, "items": items}),
    ))
}

/// `PUT /api/sms/settings`: the switch, the default sender and providers'
/// tokens, where the config file sets none. A field left out is unchanged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalBody {
    enabled: Option<bool>,
    sender: Option<String>,
    #[serde(default)]
    tokens: BTreeMap<String, SecretString>,
}

async fn put_global(
    State(st): State<Handle>,
    body: Result<Json<GlobalBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    let from_file = |name: &str| {
        ApiError::conflict(
            "set_in_file",
            format!("sms.{name} is set in the config file; change it there"),
        )
    };
    if b.enabled.is_some() && st.settings.enabled_setting.is_some() {
        return Err(from_file("enabled"));
    }
    let sender = match &b.sender {
        Some(_) if st.settings.sender.is_some() => return Err(from_file("sender")),
        Some(s) => Some(
            check_sender(Some(s))
                .map_err(|e| {
                    unprocessable(
                        "invalid_settings",
                        ConfigError::invalid("sms.sender", e.problem).to_string(),
                    )
                })?
                .unwrap_or_default(),
        ),
        None => None,
    };
    for (name, token) in &b.tokens {
        if !st.settings.providers.contains_key(name) {
            return Err(unprocessable(
                "invalid_settings",
                format!("no provider named {name:?} in [sms.providers]"),
            ));
        }
        if !global::token_settable(&st.settings, name) {
            return Err(from_file(&format!("providers.{name}.api_id")));
        }
        global::check_token(name, token)
            .map_err(|e| unprocessable("invalid_settings", e.to_string()))?;
    }
    let now = st.clock.now_ms();
    if let Some(on) = b.enabled {
        crate::core::settings::put(
            &st.db,
            global::ENABLED_KEY,
            Some(if on { "1" } else { "0" }),
            now,
        )
        .await?;
        tracing::info!(enabled = on, "sms switched through the API");
    }
    if let Some(s) = &sender {
        crate::core::settings::put(&st.db, global::SENDER_KEY, Some(s), now).await?;
    }
    for (name, token) in &b.tokens {
        crate::core::settings::put(
            &st.db,
            &global::token_key(name),
            Some(token.expose_secret()),
            now,
        )
        .await?;
        // A stop for want of a token is over: its held rows go now.
        store::resume(&st.db, name).await?;
        tracing::info!(provider = %name, "sms provider token set through the API");
    }
    st.global.changed();
    st.wake.notify();
    Ok(Json(global_view(&st).await?))
}

async fn get_settings(
    State(st): State<Handle>,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let all = effective_restaurants(&st.db, &st.settings).await?;
    let r = all
        .get(&code)
        .ok_or_else(|| ApiError::not_found(format!("no SMS settings for restaurant {code}")))?;
    Ok(Json(json!(view(&code, r))))
}

async fn put_settings(
    State(st): State<Handle>,
    Path(code): Path<String>,
    body: Result<Json<RestaurantFile>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(file) = body?;
    if code.trim().is_empty() || code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(ApiError::bad_request(
            "bad_path",
            "restcode must be 1 to 32 letters or digits",
        ));
    }
    let (rest, checked) = validate_restaurant(&code, &file, &st.settings.providers)
        .map_err(|e| unprocessable("invalid_settings", e.to_string()))?;
    let json = serde_json::to_string(&file).map_err(ApiError::internal)?;
    store::save_settings(&st.db, &code, &json, st.clock.now_ms()).await?;
    Ok(Json(json!({
        "settings": view(&code, &rest),
        "length": checked.length,
        "warnings": checked.warnings,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    phone: String,
    consent: bool,
    /// When the guest consented (RFC 3339); required with consent.
    consent_at: Option<String>,
}

async fn post_contact(
    State(st): State<Handle>,
    Path(guid): Path<String>,
    body: Result<Json<ContactBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(b) = body.map_err(|e| {
        let mut e = ApiError::from(e);
        e.message = hide_phones(&e.message);
        e
    })?;
    let guid = crate::core::book::normalise_guid(&guid).ok_or_else(|| {
        ApiError::bad_request(
            "bad_path",
            "order guid must be a GUID like {9ECCB1B5-97EE-4B88-9840-8568F05586D0}",
        )
    })?;
    let phone =
        PhoneE164::parse(&b.phone).map_err(|e| unprocessable("bad_phone", e.to_string()))?;
    if !b.consent {
        // No consent: nothing is stored, and an earlier consent is
        // withdrawn (its phone deleted).
        let withdrawn = store::delete_contact(&st.db, &guid).await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"order_guid": guid, "stored": false, "withdrawn": withdrawn})),
        ));
    }
    let at = b.consent_at.as_deref().ok_or_else(|| {
        unprocessable(
            "consent_time_required",
            "consent_at (RFC 3339) is required with consent: true",
        )
    })?;
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            unprocessable(
                "bad_consent_time",
                hide_phones(&format!(
                    "consent_at {at:?} is not an RFC 3339 time like 2026-10-03T16:05:00+03:00"
                )),
            )
        })?
        .timestamp_millis();
    let now = st.clock.now_ms();
    if at > now + 5 * 60 * 1000 {
        return Err(unprocessable(
            "bad_consent_time",
            "consent_at is in the future",
        ));
    }
    let mut conn = st.db.write.acquire().await?;
    store::save_contact(&mut conn, &guid, &phone, at, "api", now).await?;
    tracing::info!(order = %guid, phone = %phone, "guest contact stored with consent");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "order_guid": guid,
            "phone": phone.masked(),
            "consent_at": ms_to_rfc3339(at),
            "stored": true,
        })),
    ))
}
