//! The Loyalty page (admin): find a card by number or phone (shown
//! masked), its holder, balance, tier, ledger and operations; block,
//! activate, adjust with a reason; the registers. Changes are the loyalty
//! operator API's.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::Console;
use super::api::enc;
use super::auth::{self, Signed};
use super::i18n::Lang;
use crate::core::phone::PhoneE164;

#[derive(Deserialize)]
pub struct FindQuery {
    q: Option<String>,
    error: Option<String>,
}

/// The card a search names: a phone (its holder's best card) or a number.
async fn card_number(c: &Console, q: &str) -> Option<String> {
    let digits = q.chars().filter(char::is_ascii_digit).count();
    if (q.starts_with('+') || digits == 11)
        && let Ok(phone) = PhoneE164::parse(q)
    {
        return crate::loyalty::cards::number_by_phone(&c.db.read, &phone)
            .await
            .ok()
            .flatten();
    }
    Some(q.to_string())
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<FindQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    if !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let query = q.q.as_deref().map(str::trim).filter(|x| !x.is_empty());
    let mut card = json!({});
    let mut error = q.error.clone();
    if let Some(query) = query {
        match card_number(&c, query).await {
            Some(n) => match c.api.get(&format!("/api/loyalty/cards/{}", enc(&n))).await {
                Ok(v) => card = v,
                Err(e) => error = Some(e.message),
            },
            None => error = Some(super::i18n::words(lang)["no_card"].to_string()),
        }
    }
    let registers = c
        .api
        .get("/api/loyalty/registers")
        .await
        .unwrap_or(json!({}));
    c.pages.page(
        StatusCode::OK,
        "loyalty.html",
        lang,
        Some(&s),
        "loyalty",
        context! { q => query, card => card, error => error, registers => registers },
    )
}

#[derive(Deserialize)]
pub struct StateForm {
    csrf: String,
    state: String,
}

fn back(number: &str, error: Option<&str>) -> Response {
    let mut to = format!("/loyalty?q={}", enc(number));
    if let Some(e) = error {
        to.push_str(&format!("&error={}", enc(e)));
    }
    Redirect::to(&to).into_response()
}

pub async fn set_state(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(number): Path<String>,
    Form(f): Form<StateForm>,
) -> Response {
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(Lang::of(&headers), &s);
    }
    let uri = format!("/api/loyalty/cards/{}/state", enc(&number));
    let done = c
        .api
        .call(Method::POST, &uri, Some(json!({"state": f.state})))
        .await;
    tracing::info!(user = ?s.user.name, card = ?crate::loyalty::cards::mask_number(&number), state = ?f.state, ok = done.is_ok(), "console: card state");
    back(&number, done.err().map(|e| e.message).as_deref())
}

#[derive(Deserialize)]
pub struct AdjustForm {
    csrf: String,
    amount: String,
    reason: String,
}

pub async fn adjust(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(number): Path<String>,
    Form(f): Form<AdjustForm>,
) -> Response {
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(Lang::of(&headers), &s);
    }
    let Ok(amount) = f.amount.trim().parse::<i64>() else {
        return back(
            &number,
            Some("amount: a whole number of kopecks, like 5000 or -5000"),
        );
    };
    let uri = format!("/api/loyalty/cards/{}/adjust", enc(&number));
    let body = json!({"amount": amount, "reason": f.reason, "by": s.user.name});
    let done = c.api.call(Method::POST, &uri, Some(body)).await;
    back(&number, done.err().map(|e| e.message).as_deref())
}
