//! The Overview page: cash servers and stations (online, who is logged in,
//! the last event), the log (events, gaps, quarantine), consumers' lag,
//! relay destinations, the SMS switch, and (an admin's) Telegram's and
//! the SMS provider's state and balance. A manager or viewer sees the
//! servers and stations of their restaurants; the log-wide figures are an
//! admin's.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde_json::json;

use super::Console;
use super::auth::Signed;
use super::i18n::Lang;
use crate::orders::store;

pub async fn page(State(c): State<Console>, Signed(s): Signed, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    let (servers, stations) = match (store::servers(&c.db).await, store::stations(&c.db).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return crate::core::api_error::ApiError::from(e).into_response();
        }
    };
    // Read for every role: the zones say how to show tillgate's own times.
    let alerts = c.api.get("/api/alerts/settings").await.unwrap_or(json!({}));
    let zones = super::zone::Zones::from_settings(&alerts);
    let servers: Vec<_> = servers
        .into_iter()
        .filter(|x| s.user.may_see(x.rest_code.as_deref()))
        .map(|x| {
            let last = zones.format(x.last_received_at, x.rest_code.as_deref());
            context! { s => x, last_received => last }
        })
        .collect();
    let stations: Vec<_> = stations
        .into_iter()
        .filter(|x| s.user.may_see(x.rest_code.as_deref()))
        .collect();
    let admin = s.user.is_admin();
    // Log-wide and integration figures: an admin's only.
    let api = |uri: &'static str| {
        let api = c.api.clone();
        async move {
            if admin {
                api.get(uri).await.unwrap_or(json!({}))
            } else {
                json!({})
            }
        }
    };
    let consumers = api("/api/consumers").await;
    let gaps = api("/api/gaps?limit=100").await;
    let quarantine = api("/api/quarantine?limit=100").await;
    let destinations = api("/api/destinations").await;
    let sms = c.api.get("/api/sms/settings").await.unwrap_or(json!({}));
    // Telegram from the database (fast, always fresh); the SMS balance from
    // the provider, cached and refreshed in the background. Both an admin's.
    let mut telegram = if admin {
        alerts["telegram"].clone()
    } else {
        json!({})
    };
    if let Some(at) = telegram["last_sent_at"].as_str().map(str::to_string) {
        telegram["last_sent_local"] = json!(zones.show(Some(&at), None));
    }
    let sms_provider = if admin {
        c.providers.snapshot(&c.api)
    } else {
        None
    };
    c.pages.page(
        StatusCode::OK,
        "overview.html",
        lang,
        Some(&s),
        "overview",
        context! {
            servers => servers,
            stations => stations,
            admin => admin,
            consumers => consumers,
            gaps => gaps["items"].as_array().map(Vec::len),
            quarantine => quarantine["items"].as_array().map(Vec::len),
            destinations => destinations["items"],
            sms_enabled => sms["enabled"],
            telegram => telegram,
            sms_provider => sms_provider,
        },
    )
}
