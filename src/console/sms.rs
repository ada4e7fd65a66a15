//! The Guest SMS page: a restaurant's settings (enable, provider, sender,
//! kitchen step, template with a live preview and SMS-part counter,
//! consent), where each comes from, "check balance", and the outbox with
//! masked phones.
//!
//! Saving goes through `PUT /api/sms/settings/{restcode}`, which checks
//! the settings with the same `validate_restaurant` the config file is
//! checked with (same messages), stores them, and the SMS consumer uses
//! them from its next event on: no restart.

use std::collections::BTreeSet;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use super::api::enc;
use super::auth::{self, Signed};
use super::i18n::Lang;
use super::users::Session;

#[derive(Deserialize)]
pub struct SmsQuery {
    restaurant: Option<String>,
}

/// Where each restaurant's settings come from.
async fn source(c: &Console, rest: &str, all: &Value) -> &'static str {
    let saved = crate::sms::store::saved_settings(&c.db)
        .await
        .map(|v| v.iter().any(|x| x.rest_code == rest))
        .unwrap_or(false);
    let listed = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["restcode"].as_str() == Some(rest));
    match (saved, listed) {
        (true, _) => "from_console",
        (false, true) => "from_file",
        _ => "defaults",
    }
}

/// The page for `rest` with `notice` (a save's outcome) and the form as
/// sent when it was refused.
async fn render(
    c: &Console,
    s: &Session,
    lang: Lang,
    rest: Option<String>,
    notice: Value,
    form: Option<Value>,
) -> Response {
    let all = c.api.get("/api/sms/settings").await.unwrap_or(json!({}));
    let restaurants = super::offered_restaurants(c, s, &all, "restcode").await;
    let rest = rest.or_else(|| restaurants.first().cloned());
    let (settings, src, outbox, providers) = match &rest {
        Some(r) => {
            let current = c
                .api
                .get(&format!("/api/sms/settings/{}", enc(r)))
                .await
                .ok();
            let outbox = c
                .api
                .get(&format!("/api/sms?restaurant={}&limit=50", enc(r)))
                .await
                .map(|v| v["items"].clone())
                .unwrap_or(json!({}));
            let providers: BTreeSet<String> = all["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["provider"].as_str().map(str::to_string))
                .collect();
            (
                form.or(current).unwrap_or(json!({})),
                source(c, r, &all).await,
                outbox,
                providers,
            )
        }
        None => (json!({}), "defaults", json!({}), BTreeSet::new()),
    };
    // Queued times in the restaurant's local time.
    let zones = super::zone::Zones::from_settings(
        &c.api.get("/api/alerts/settings").await.unwrap_or_default(),
    );
    let mut outbox = outbox;
    for m in outbox.as_array_mut().into_iter().flatten() {
        let local = zones.show(m["created_at"].as_str(), m["restcode"].as_str());
        m["created_local"] = json!(local);
    }
    let may_change = rest.as_deref().is_some_and(|r| s.user.may_change(r));
    c.pages.page(
        StatusCode::OK,
        "sms.html",
        lang,
        Some(s),
        "sms",
        context! {
            restaurant => rest,
            restaurants => restaurants,
            settings => settings,
            source => src,
            outbox => outbox,
            providers => providers,
            global_enabled => all["enabled"],
            global => all["global"],
            may_change => may_change,
            notice => notice,
            steps => ["started", "ready", "taken", "collect", "collected"],
            default_template => crate::sms::DEFAULT_TEMPLATE,
        },
    )
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<SmsQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let rest = q.restaurant.filter(|r| !r.is_empty());
    if let Some(r) = &rest
        && !s.user.may_see(Some(r))
    {
        return c.pages.forbidden(lang, &s);
    }
    render(&c, &s, lang, rest, json!({}), None).await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    enabled: Option<String>,
    step: String,
    template: String,
    provider: Option<String>,
    sender: Option<String>,
    name: Option<String>,
    register_collects_consent: Option<String>,
}

fn some(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub async fn save(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Form(f): Form<SettingsForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.may_change(&rest) {
        return c.pages.forbidden(lang, &s);
    }
    let body = json!({
        "enabled": f.enabled.is_some(),
        "step": f.step.trim(),
        "template": f.template,
        "provider": some(&f.provider),
        "sender": some(&f.sender),
        "name": some(&f.name),
        "register_collects_consent": f.register_collects_consent.is_some(),
    });
    let uri = format!("/api/sms/settings/{}", enc(&rest));
    match c.api.call(Method::PUT, &uri, Some(body.clone())).await {
        Ok(v) => {
            tracing::info!(user = ?s.user.name, restaurant = ?rest, "console: sms settings saved");
            let notice = json!({"ok": true, "length": v["length"], "warnings": v["warnings"]});
            render(&c, &s, lang, Some(rest), notice, None).await
        }
        Err(e) => {
            let mut form = body;
            form["restcode"] = json!(rest);
            let mut page = render(
                &c,
                &s,
                lang,
                Some(rest),
                json!({"ok": false, "error": e.message}),
                Some(form),
            )
            .await;
            // A refused save answers 422, like the API, with the page.
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            page
        }
    }
}

pub async fn balance(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.may_change(&rest) {
        return c.pages.forbidden(lang, &s);
    }
    let provider = c
        .api
        .get(&format!("/api/sms/settings/{}", enc(&rest)))
        .await
        .ok()
        .and_then(|v| v["provider"].as_str().map(str::to_string));
    let uri = match &provider {
        Some(p) => format!("/api/sms/balance?provider={}", enc(p)),
        None => "/api/sms/balance".to_string(),
    };
    let notice = match c.api.get(&uri).await {
        Ok(v) => json!({"ok": true, "balance": v}),
        Err(e) => json!({"ok": false, "error": e.message}),
    };
    render(&c, &s, lang, Some(rest), notice, None).await
}

/// The switch, default sender and providers' tokens (write-only): an
/// admin's, through `PUT /api/sms/settings`. A blank token field leaves
/// the token as it is; the switch and sender are sent only when changed.
pub async fn save_global(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let lang = Lang::of(&headers);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    if !auth::csrf_ok(&s, field("csrf").unwrap_or_default()) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let all = c.api.get("/api/sms/settings").await.unwrap_or(json!({}));
    let g = &all["global"];
    let mut body = serde_json::Map::new();
    if g["enabled_source"] != "file" {
        let on = field("enabled").is_some();
        if g["enabled"].as_bool() != Some(on) {
            body.insert("enabled".into(), json!(on));
        }
    }
    if g["sender_source"] != "file"
        && let Some(v) = field("sender")
        && g["sender"].as_str().unwrap_or("") != v
    {
        body.insert("sender".into(), json!(v));
    }
    let tokens: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("token.")?.to_string(), v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, json!(v)))
        .collect();
    if !tokens.is_empty() {
        body.insert("tokens".into(), Value::Object(tokens));
    }
    let (notice, status) = match c
        .api
        .call(Method::PUT, "/api/sms/settings", Some(Value::Object(body)))
        .await
    {
        Ok(_) => {
            tracing::info!(user = ?s.user.name, "console: global sms settings saved");
            c.providers.forget();
            (json!({"ok": true, "global_saved": true}), StatusCode::OK)
        }
        Err(e) => (json!({"ok": false, "error": e.message}), e.status),
    };
    let mut page = render(&c, &s, lang, None, notice, None).await;
    *page.status_mut() = status;
    page
}
