//! Operator API for the alert settings changed at run time, and the test
//! message.
//!
//! * `GET /api/alerts/settings` — the Telegram settings (the token only as
//!   set or not, never its value), the default rules, every restaurant's
//!   rules, chat and routing, each with where its values come from;
//! * `GET|PUT|DELETE /api/alerts/settings/{restcode}` — one restaurant;
//!   a save is checked by the config file's own checks (same messages),
//!   stored durably and used by every instance within a second; DELETE
//!   returns the restaurant to the file's settings;
//! * `PUT /api/alerts/settings` — the bot token and the owners' chat, where
//!   the config file sets none (the file wins: it is what was deployed);
//! * `POST /api/alerts/test` — sends a test message now to a chat (given,
//!   or the restaurant's, or the owners') and answers Telegram's result.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Handle;
use super::kind::AlertKind;
use super::settings::live::{self, BOT_TOKEN_KEY, OWNERS_CHAT_KEY, RESTAURANT_PREFIX};
use super::settings::{
    KindSet, RestaurantFile, Rules, Settings, check_bot_token, check_owners_chat,
};
use super::store;
use super::telegram::Client;
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::clock::ms_to_rfc3339;
use crate::core::settings as stored;

pub fn routes() -> Router<Handle> {
    Router::new()
        .route("/api/alerts/settings", get(list).put(put_global))
        .route(
            "/api/alerts/settings/{restcode}",
            get(get_one).put(put_one).delete(delete_one),
        )
        .route("/api/alerts/test", post(test_message))
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn kinds_view(k: &KindSet) -> Value {
    match &k.0 {
        None => Value::Null,
        Some(v) => json!(v.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
    }
}

/// The rules as the config file writes them (minutes, kopecks).
pub fn rules_view(r: &Rules) -> Value {
    json!({
        "receipt_deleted": r.receipt_deleted,
        "prebill_cancelled": r.prebill_cancelled,
        "dish_voided": r.dish_voided,
        "unsaved_dish_deleted": r.unsaved_dish_deleted,
        "discount": r.discount,
        "discount_percent": r.discount_percent,
        "discount_amount": r.discount_amount,
        "payment_deleted": r.payment_deleted,
        "total_lowered_after_prebill": r.total_lowered_after_prebill,
        "station_closed": r.station_closed,
        "station_silent": r.station_silent,
        "station_silence_minutes": r.station_silence.as_secs() / 60,
        "station_restarted": r.station_restarted,
        "stream_gap": r.stream_gap,
        "server_silent": r.server_silent,
        "server_silence_minutes": r.server_silence.as_secs() / 60,
        "shift_report": r.shift_report,
    })
}

fn offset_text(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// One restaurant in effect, with where its values come from.
fn restaurant_view(h: &Handle, s: &Settings, code: &str, saved: Option<&RestaurantFile>) -> Value {
    let file_raw = h.file.file_restaurants.get(code);
    let sources = live::sources(file_raw, saved);
    let source = match (saved.is_some(), file_raw.is_some()) {
        (true, _) => "console",
        (false, true) => "file",
        _ => "default",
    };
    let (name, chat, kinds, closing, hours, offset, rules) = match s.restaurants.get(code) {
        Some(r) => (
            r.name.clone(),
            r.chat,
            kinds_view(&r.kinds),
            r.closing_time.map(|t| t.format("%H:%M").to_string()),
            r.opening_hours
                .map(|(a, b)| format!("{}-{}", a.format("%H:%M"), b.format("%H:%M"))),
            r.utc_offset_minutes,
            &r.rules,
        ),
        None => (
            code.to_string(),
            None,
            Value::Null,
            None,
            None,
            None,
            &s.default_rules,
        ),
    };
    let utc = offset.unwrap_or(s.utc_offset_minutes);
    json!({
        "rest_code": code,
        "name": name,
        "chat": chat,
        "kinds": kinds,
        "closing_time": closing,
        "opening_hours": hours,
        "utc_offset": offset_text(utc),
        "utc_offset_minutes": utc,
        "rules": rules_view(rules),
        "source": source,
        "sources": sources,
        "saved": saved,
        "routes_to": s.route(AlertKind::DishVoided, Some(code)),
    })
}

/// The restaurants' stored (console) settings by RestCode.
async fn saved_all(h: &Handle) -> ApiResult<std::collections::BTreeMap<String, RestaurantFile>> {
    let mut out = std::collections::BTreeMap::new();
    for e in stored::all(&h.db).await? {
        if let Some(code) = e.key.strip_prefix(RESTAURANT_PREFIX)
            && let Ok(f) = serde_json::from_str::<RestaurantFile>(&e.value)
        {
            out.insert(code.to_string(), f);
        }
    }
    Ok(out)
}

async fn list(State(h): State<Handle>) -> ApiResult<Json<Value>> {
    let s = h.live.get().await?;
    let saved = saved_all(&h).await?;
    let mut codes: std::collections::BTreeSet<String> = s.restaurants.keys().cloned().collect();
    codes.extend(saved.keys().cloned());
    let items: Vec<Value> = codes
        .iter()
        .map(|c| restaurant_view(&h, &s, c, saved.get(c)))
        .collect();
    let delivery = store::delivery_state(&h.db).await?;
    let token_source = match (&h.file.bot_token, &s.bot_token) {
        (Some(_), _) => "file",
        (None, Some(_)) => "console",
        (None, None) => "none",
    };
    let owners_source = match (h.file.owners_chat, s.owners_chat) {
        (Some(_), _) => "file",
        (None, Some(_)) => "console",
        (None, None) => "none",
    };
    Ok(Json(json!({
        "telegram": {
            "bot_token_set": s.bot_token.is_some(),
            "bot_token_source": token_source,
            "api_base": s.api_base,
            "owners_chat": s.owners_chat,
            "owners_chat_source": owners_source,
            "owners_kinds": kinds_view(&s.owners_kinds),
            "language": s.language.as_str(),
            "utc_offset": offset_text(s.utc_offset_minutes),
            "commands": s.commands,
            "last_sent_at": delivery.last_sent_at.map(ms_to_rfc3339),
            "pending": delivery.pending,
            "last_error": delivery.last_error,
            "last_error_state": delivery.last_error_state,
        },
        "defaults": rules_view(&s.default_rules),
        "kinds": AlertKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "items": items,
    })))
}

fn check_code(code: &str) -> ApiResult<()> {
    if code.trim().is_empty() || code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(ApiError::bad_request(
            "bad_path",
            "restcode must be 1 to 32 letters or digits",
        ));
    }
    Ok(())
}

async fn get_one(State(h): State<Handle>, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    check_code(&code)?;
    let s = h.live.get().await?;
    let saved = saved_all(&h).await?;
    Ok(Json(restaurant_view(&h, &s, &code, saved.get(&code))))
}

async fn put_one(
    State(h): State<Handle>,
    Path(code): Path<String>,
    body: Result<Json<RestaurantFile>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    check_code(&code)?;
    let Json(mut file) = body?;
    if !file.rest_code.is_empty() && file.rest_code != code {
        return Err(unprocessable(
            "invalid_settings",
            format!(
                "rest_code {:?} is not the restaurant in the path ({code})",
                file.rest_code
            ),
        ));
    }
    file.rest_code = String::new();
    live::check_restaurant(&h.file, &code, &file)
        .map_err(|e| unprocessable("invalid_settings", e.to_string()))?;
    let text = serde_json::to_string(&file).map_err(ApiError::internal)?;
    stored::put(
        &h.db,
        &format!("{RESTAURANT_PREFIX}{code}"),
        Some(&text),
        h.clock.now_ms(),
    )
    .await?;
    h.live.changed();
    tracing::info!(restaurant = %code, "alert settings saved");
    let s = h.live.get().await?;
    Ok(Json(restaurant_view(&h, &s, &code, Some(&file))))
}

async fn delete_one(State(h): State<Handle>, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    check_code(&code)?;
    stored::put(
        &h.db,
        &format!("{RESTAURANT_PREFIX}{code}"),
        None,
        h.clock.now_ms(),
    )
    .await?;
    h.live.changed();
    let s = h.live.get().await?;
    Ok(Json(restaurant_view(&h, &s, &code, None)))
}

/// `PUT /api/alerts/settings`: what the console may set globally. A field
/// left out is unchanged; `reset` lists fields to return to the file's
/// value (or none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalBody {
    bot_token: Option<SecretString>,
    owners_chat: Option<i64>,
    #[serde(default)]
    reset: Vec<String>,
}

async fn put_global(
    State(h): State<Handle>,
    body: Result<Json<GlobalBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    for r in &b.reset {
        if !matches!(r.as_str(), "bot_token" | "owners_chat") {
            return Err(unprocessable(
                "invalid_settings",
                format!("reset: {r:?} is not bot_token or owners_chat"),
            ));
        }
    }
    let from_file = |name: &str| {
        ApiError::conflict(
            "set_in_file",
            format!("alerts.{name} is set in the config file; change it there"),
        )
    };
    if let Some(t) = &b.bot_token {
        if h.file.bot_token.is_some() {
            return Err(from_file("bot_token"));
        }
        check_bot_token(t).map_err(|e| unprocessable("invalid_settings", e.to_string()))?;
    }
    if let Some(c) = b.owners_chat {
        if h.file.owners_chat.is_some() {
            return Err(from_file("owners_chat"));
        }
        check_owners_chat(Some(c)).map_err(|e| unprocessable("invalid_settings", e.to_string()))?;
    }
    let now = h.clock.now_ms();
    for r in &b.reset {
        let key = if r == "bot_token" {
            BOT_TOKEN_KEY
        } else {
            OWNERS_CHAT_KEY
        };
        stored::put(&h.db, key, None, now).await?;
    }
    if let Some(t) = &b.bot_token {
        stored::put(&h.db, BOT_TOKEN_KEY, Some(t.expose_secret()), now).await?;
        tracing::info!("telegram bot token set through the API");
    }
    if let Some(c) = b.owners_chat {
        stored::put(&h.db, OWNERS_CHAT_KEY, Some(&c.to_string()), now).await?;
    }
    h.live.changed();
    list(State(h)).await
}

/// `POST /api/alerts/test`: `chat`, or the chat of `rest_code`, or the
/// owners' chat; `text` or a standard line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    chat: Option<i64>,
    rest_code: Option<String>,
    text: Option<String>,
}

async fn test_message(
    State(h): State<Handle>,
    body: Result<Json<TestBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    let s = h.live.get().await?;
    let chat = match (b.chat, b.rest_code.as_deref()) {
        (Some(0), _) => {
            return Err(unprocessable("bad_chat", "0 is not a Telegram chat id"));
        }
        (Some(c), _) => c,
        (None, Some(r)) => s
            .restaurants
            .get(r)
            .and_then(|x| x.chat)
            .ok_or_else(|| unprocessable("no_chat", format!("restaurant {r} has no chat")))?,
        (None, None) => s
            .owners_chat
            .ok_or_else(|| unprocessable("no_chat", "no chat given and no owners' chat is set"))?,
    };
    let text = b.text.unwrap_or_else(|| match s.language {
        super::settings::Lang::Ru => "Проверка: tillgate пишет в этот чат.".to_string(),
        super::settings::Lang::En => "Test: tillgate writes to this chat.".to_string(),
    });
    if text.trim().is_empty() || text.chars().count() > 1000 {
        return Err(unprocessable(
            "bad_text",
            "text must be 1 to 1000 characters",
        ));
    }
    let Some(token) = s.bot_token.clone() else {
        return Err(ApiError::conflict(
            "no_bot_token",
            "no Telegram bot token is set (alerts.bot_token or the console)",
        ));
    };
    let client = Client::new(&s.api_base, token);
    match client.send_message(chat, &super::text::escape(&text)).await {
        Ok(id) => {
            tracing::info!(chat, "alert test message sent");
            Ok(Json(json!({"ok": true, "chat": chat, "message_id": id})))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "telegram_error",
            format!("Telegram: {e}"),
        )),
    }
}
