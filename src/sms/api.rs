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

use super::Handle;
use super::outbox::{self, state};
use super::provider::{Provider, ProviderError};
use super::template::format_rubles;
use super::{Restaurant, RestaurantFile, delivery, validate_restaurant};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::clock::now_ms;
use crate::core::phone::PhoneE164;

pub fn api_routes() -> Router<Handle> {
    Router::new()
        .route("/api/sms", get(list))
        .route("/api/sms/balance", get(balance))
        .route("/api/sms/settings", get(list_settings))
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
    if let Some(s) = &q.state
        && !state::ALL.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("state must be one of {}", state::ALL.join(", ")),
        ));
    }
    let items = outbox::list(
        &st.db,
        q.restaurant.as_deref(),
        q.state.as_deref(),
        q.after.unwrap_or(0),
        limit,
    )
    .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id))
        .flatten();
    let stopped: Vec<Value> = delivery::stops(&st.db)
        .await?
        .into_iter()
        .map(|(p, reason, at)| {
            json!({"provider": p, "reason": reason, "since": crate::core::clock::ms_to_rfc3339(at)})
        })
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
        "balance": format_rubles(b.kopecks),
    })))
}

async fn resume(
    State(st): State<Handle>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let (name, _) = pick_provider(&st.providers, q.provider.as_deref())?;
    let was = delivery::resume(&st.db, &name).await?;
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

async fn list_settings(State(st): State<Handle>) -> ApiResult<Json<Value>> {
    let all = outbox::effective_restaurants(&st.db, &st.settings).await?;
    let items: Vec<SettingsView> = all.iter().map(|(c, r)| view(c, r)).collect();
    Ok(Json(
        json!({"enabled": st.settings.enabled, "items": items}),
    ))
}

async fn get_settings(
    State(st): State<Handle>,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let all = outbox::effective_restaurants(&st.db, &st.settings).await?;
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
    sqlx::query(
        "INSERT INTO sms_settings (rest_code, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (rest_code) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(&code)
    .bind(json)
    .bind(now_ms())
    .execute(&st.db.write)
    .await?;
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
    let Json(b) = body?;
    let guid = crate::orders::api::normalise_guid(&guid).ok_or_else(|| {
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
        let r = sqlx::query("DELETE FROM sms_contacts WHERE order_guid = $1")
            .bind(&guid)
            .execute(&st.db.write)
            .await?;
        return Ok((
            StatusCode::OK,
            Json(json!({"order_guid": guid, "stored": false, "withdrawn": r.rows_affected() > 0})),
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
                format!("consent_at {at:?} is not an RFC 3339 time like 2026-10-03T16:05:00+03:00"),
            )
        })?
        .timestamp_millis();
    let now = now_ms();
    if at > now + 5 * 60 * 1000 {
        return Err(unprocessable(
            "bad_consent_time",
            "consent_at is in the future",
        ));
    }
    let mut conn = st.db.write.acquire().await?;
    outbox::save_contact(&mut conn, &guid, &phone, at, "api", now).await?;
    tracing::info!(order = %guid, phone = %phone, "guest contact stored with consent");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "order_guid": guid,
            "phone": phone.masked(),
            "consent_at": crate::core::clock::ms_to_rfc3339(at),
            "stored": true,
        })),
    ))
}
