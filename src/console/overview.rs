//! The Overview page: cash servers and stations (online, who is logged in,
//! the last event), the log (events, gaps, quarantine), consumers' lag,
//! relay destinations and the SMS switch. A manager or viewer sees the
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
    let servers: Vec<_> = servers
        .into_iter()
        .filter(|x| s.user.may_see(x.rest_code.as_deref()))
        .map(|x| {
            let last = crate::core::clock::ms_to_rfc3339(x.last_received_at);
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
        },
    )
}
