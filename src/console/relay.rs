//! The Relay pages (admin): destinations with their state; add, edit,
//! pause, resume, replay from a time, delete; a destination's delivery log
//! and dead letters with re-send. Each change is the relay API's own
//! (`/api/destinations...`), so its checks (address guard, config-defined
//! destinations refused with "change it there") are the same.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use super::api::enc;
use super::auth::{self, Signed};
use super::i18n::Lang;
use super::users::Session;

async fn list_page(
    c: &Console,
    s: &Session,
    lang: Lang,
    status: StatusCode,
    error: Option<String>,
    form: Value,
) -> Response {
    let items = c
        .api
        .get("/api/destinations")
        .await
        .map(|v| v["items"].clone())
        .unwrap_or(json!({}));
    c.pages.page(
        status,
        "relay.html",
        lang,
        Some(s),
        "relay",
        context! { destinations => items, error => error, form => form },
    )
}

pub async fn page(State(c): State<Console>, Signed(s): Signed, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    if !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    list_page(&c, &s, lang, StatusCode::OK, None, json!({})).await
}

#[derive(Deserialize)]
pub struct DestinationForm {
    csrf: String,
    id: Option<String>,
    url: String,
    restaurants: Option<String>,
    situations: Option<String>,
    format: Option<String>,
}

fn csv(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// The form as the API's JSON; a situation that is not a number is left
/// as text, so the API refuses it with its own message.
fn body_of(f: &DestinationForm) -> Value {
    let situations: Vec<Value> = csv(&f.situations)
        .into_iter()
        .map(|x| {
            x.parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(x))
        })
        .collect();
    let mut b = json!({
        "url": f.url.trim(),
        "restaurants": csv(&f.restaurants),
        "situations": situations,
    });
    if let Some(id) = f.id.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
        b["id"] = json!(id);
    }
    if let Some(fmt) = f.format.as_deref().filter(|x| !x.is_empty()) {
        b["format"] = json!(fmt);
    }
    b
}

pub async fn add(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<DestinationForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let body = body_of(&f);
    match c
        .api
        .call(Method::POST, "/api/destinations", Some(body.clone()))
        .await
    {
        Ok(_) => {
            tracing::info!(user = ?s.user.name, "console: relay destination added");
            Redirect::to("/relay").into_response()
        }
        Err(e) => {
            list_page(
                &c,
                &s,
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(e.message),
                body,
            )
            .await
        }
    }
}

async fn detail_page(
    c: &Console,
    s: &Session,
    lang: Lang,
    id: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let dest = match c.api.get(&format!("/api/destinations/{}", enc(id))).await {
        Ok(v) => v,
        Err(e) => return c.pages.message(e.status, lang, Some(s), &e.message),
    };
    let log = c
        .api
        .get(&format!("/api/destinations/{}/log?limit=100", enc(id)))
        .await
        .map(|v| v["items"].clone())
        .unwrap_or(json!({}));
    let dead = c
        .api
        .get(&format!(
            "/api/destinations/{}/dead-letters?limit=100",
            enc(id)
        ))
        .await
        .map(|v| v["items"].clone())
        .unwrap_or(json!({}));
    c.pages.page(
        status,
        "relay_dest.html",
        lang,
        Some(s),
        "relay",
        context! { d => dest, log => log, dead => dead, error => error },
    )
}

pub async fn detail(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let lang = Lang::of(&headers);
    if !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    detail_page(&c, &s, lang, &id, StatusCode::OK, None).await
}

/// `POST /relay/{id}`: edit the URL and filters (a JSON merge).
pub async fn edit(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DestinationForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let mut body = body_of(&f);
    body["id"] = json!(id);
    let uri = format!("/api/destinations/{}", enc(&id));
    let done = c.api.call(Method::PATCH, &uri, Some(body)).await;
    after_change(&c, &s, lang, &id, done).await
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    /// Replay: local time or date to replay from.
    from_time: Option<String>,
}

/// `POST /relay/{id}/{pause|resume|replay|delete}`.
pub async fn act(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let base = format!("/api/destinations/{}", enc(&id));
    let done = match action.as_str() {
        "pause" => {
            c.api
                .call(Method::PATCH, &base, Some(json!({"enabled": false})))
                .await
        }
        "resume" => match c
            .api
            .call(Method::PATCH, &base, Some(json!({"enabled": true})))
            .await
        {
            Ok(_) => {
                c.api
                    .call(Method::POST, &format!("{base}/resume"), None)
                    .await
            }
            Err(e) => Err(e),
        },
        "replay" => {
            let from = f.from_time.unwrap_or_default();
            c.api
                .call(
                    Method::POST,
                    &format!("{base}/replay"),
                    Some(json!({"from_time": from.trim()})),
                )
                .await
        }
        "delete" => c.api.call(Method::DELETE, &base, None).await,
        _ => {
            return c
                .pages
                .message(StatusCode::NOT_FOUND, lang, Some(&s), "no such action");
        }
    };
    tracing::info!(user = ?s.user.name, destination = ?id, action = ?action, ok = done.is_ok(), "console: relay action");
    match done {
        Ok(_) if action == "delete" => Redirect::to("/relay").into_response(),
        done => after_change(&c, &s, lang, &id, done).await,
    }
}

pub async fn resend(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path((id, offset)): Path<(String, i64)>,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let uri = format!(
        "/api/destinations/{}/dead-letters/{offset}/resend",
        enc(&id)
    );
    let done = c.api.call(Method::POST, &uri, None).await;
    after_change(&c, &s, lang, &id, done).await
}

/// After a change to destination `id`: back to its page, or its page with
/// the API's refusal.
async fn after_change(
    c: &Console,
    s: &Session,
    lang: Lang,
    id: &str,
    done: Result<Value, super::api::Refused>,
) -> Response {
    match done {
        Ok(_) => Redirect::to(&format!("/relay/{}", enc(id))).into_response(),
        Err(e) => {
            detail_page(
                c,
                s,
                lang,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(e.message),
            )
            .await
        }
    }
}
