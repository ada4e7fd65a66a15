//! The Alerts page: the history of alerts with their delivery state (also
//! those no chat receives), of the restaurants this person may see.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::Console;
use super::auth::Signed;
use super::i18n::Lang;

#[derive(Deserialize)]
pub struct AlertQuery {
    state: Option<String>,
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let state = q.state.filter(|v| !v.is_empty());
    let uri = match &state {
        Some(st) => format!("/api/alerts?limit=500&state={}", super::api::enc(st)),
        None => "/api/alerts?limit=500".to_string(),
    };
    let (items, error) = match c.api.get(&uri).await {
        Ok(v) => (v["items"].as_array().cloned().unwrap_or_default(), None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let items: Vec<_> = items
        .into_iter()
        .rev()
        .filter(|a| s.user.may_see(a["rest_code"].as_str()))
        .collect();
    c.pages.page(
        StatusCode::OK,
        "alerts.html",
        lang,
        Some(&s),
        "alerts",
        context! { alerts => items, error => error, state => state },
    )
}
