//! The Alerts page: Telegram (token write-only, owners' chat), a
//! restaurant's rules, thresholds, chat and routing with where each value
//! comes from, "send a test message", and the history of alerts with their
//! delivery state (also those no chat receives), of the restaurants this
//! person may see, in each restaurant's local time.
//!
//! Chats are an admin's: only an admin sees chat ids and Telegram's
//! delivery errors, and sets a restaurant's chat; a manager changes the
//! rest of their restaurants' settings.
//!
//! Saving goes through `PUT /api/alerts/settings/{restcode}`, checked by
//! the config file's own checks (same messages). The form sends only what
//! differs from the values in effect, laid over what the console saved
//! before, so a value the file sets stays "from the file" until changed.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Console;
use super::api::enc;
use super::auth::{self, Signed};
use super::i18n::{self, Lang};
use super::users::Session;
use super::zone::Zones;

#[derive(Deserialize)]
pub struct AlertQuery {
    state: Option<String>,
    restaurant: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn render(
    c: &Console,
    s: &Session,
    lang: Lang,
    rest: Option<String>,
    state: Option<String>,
    notice: Value,
    status: StatusCode,
) -> Response {
    let all = c.api.get("/api/alerts/settings").await.unwrap_or(json!({}));
    let restaurants = super::offered_restaurants(c, s, &all, "rest_code").await;
    let rest = rest.or_else(|| restaurants.first().cloned());
    let mut settings = match &rest {
        Some(r) => c
            .api
            .get(&format!("/api/alerts/settings/{}", enc(r)))
            .await
            .ok(),
        None => None,
    };
    let mut notice = notice;
    let admin = s.user.is_admin();
    if !admin {
        hide_chats(settings.as_mut(), &mut notice);
    }
    let uri = match &state {
        Some(st) => format!("/api/alerts?limit=500&state={}", enc(st)),
        None => "/api/alerts?limit=500".to_string(),
    };
    let (items, error) = match c.api.get(&uri).await {
        Ok(v) => (v["items"].as_array().cloned().unwrap_or_default(), None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let zones = Zones::from_settings(&all);
    let items: Vec<Value> = items
        .into_iter()
        .rev()
        .filter(|a| s.user.may_see(a["rest_code"].as_str()))
        .map(|mut a| {
            let local = zones.show(a["created_at"].as_str(), a["rest_code"].as_str());
            a["created_local"] = json!(local);
            if !admin {
                // Where an alert went and why it failed are an admin's:
                // chats are routed by admins only.
                a["chat_id"] = Value::Null;
                a["last_error"] = Value::Null;
            }
            a
        })
        .collect();
    let may_change = rest.as_deref().is_some_and(|r| s.user.may_change(r));
    let mut telegram = all["telegram"].clone();
    if !admin {
        // Chats and delivery errors are an admin's; a manager sees whether
        // alerts can go at all.
        telegram = json!({"bot_token_set": telegram["bot_token_set"], "utc_offset": telegram["utc_offset"]});
    }
    c.pages.page(
        status,
        "alerts.html",
        lang,
        Some(s),
        "alerts",
        context! {
            alerts => items,
            error => error,
            state => state,
            restaurant => rest,
            restaurants => restaurants,
            settings => settings,
            kinds => all["kinds"],
            telegram => telegram,
            may_change => may_change,
            notice => notice,
        },
    )
}

/// What a manager or viewer is not shown of a restaurant's settings and a
/// test message's outcome: the chat ids (an admin routes chats), and
/// Telegram's own words on a failed delivery.
fn hide_chats(settings: Option<&mut Value>, notice: &mut Value) {
    if let Some(st) = settings {
        st["chat"] = Value::Null;
        if let Some(o) = st.as_object_mut() {
            o.remove("saved");
            o.remove("routes_to");
        }
        if let Some(src) = st["sources"].as_object_mut() {
            src.remove("chat");
        }
    }
    if let Some(test) = notice["test"].as_object_mut() {
        test.remove("chat");
    }
}

pub async fn page(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Response {
    let lang = Lang::of(&headers);
    let rest = q.restaurant.filter(|r| !r.is_empty());
    if let Some(r) = &rest
        && !s.user.may_see(Some(r))
    {
        return c.pages.forbidden(lang, &s);
    }
    let state = q.state.filter(|v| !v.is_empty());
    render(&c, &s, lang, rest, state, json!({}), StatusCode::OK).await
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
}

/// A number as typed, or the text itself so the API refuses it with its
/// own words.
fn number(v: &str) -> Value {
    v.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(v))
}

/// The API body for a restaurant's form: what the console saved before,
/// with every field that differs from the values in effect.
pub fn body_from_form(
    form: &[(String, String)],
    current: &Value,
    saved: &Value,
    kinds: &[String],
) -> Value {
    let mut body = saved.as_object().cloned().unwrap_or_default();
    body.remove("rest_code");
    for name in ["name", "closing_time", "opening_hours", "utc_offset"] {
        if let Some(v) = field(form, name).filter(|v| !v.is_empty())
            && current[name].as_str() != Some(v)
        {
            body.insert(name.into(), json!(v));
        }
    }
    if let Some(v) = field(form, "chat").filter(|v| !v.is_empty()) {
        let v = number(v);
        if current["chat"] != v {
            body.insert("chat".into(), v);
        }
    }
    let checked: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "kind")
        .map(|(_, v)| v.clone())
        .collect();
    let now: Vec<String> = match current["kinds"].as_array() {
        None => kinds.to_vec(),
        Some(a) => a
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
    };
    let same = |a: &[String], b: &[String]| a.len() == b.len() && a.iter().all(|x| b.contains(x));
    if !same(&checked, &now) {
        let list = if same(&checked, kinds) {
            vec!["*".to_string()]
        } else {
            checked
        };
        body.insert("kinds".into(), json!(list));
    }
    let mut rules: Map<String, Value> = body
        .get("rules")
        .and_then(|r| r.as_object().cloned())
        .unwrap_or_default();
    if let Some(cur) = current["rules"].as_object() {
        for (k, v) in cur {
            let name = format!("rules.{k}");
            let new = if v.is_boolean() {
                json!(field(form, &name).is_some())
            } else {
                match field(form, &name).filter(|x| !x.is_empty()) {
                    Some(x) => number(x),
                    None => continue,
                }
            };
            if &new != v {
                rules.insert(k.clone(), new);
            }
        }
    }
    if !rules.is_empty() {
        body.insert("rules".into(), Value::Object(rules));
    }
    Value::Object(body)
}

pub async fn save(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let lang = Lang::of(&headers);
    let csrf = field(&form, "csrf").unwrap_or_default();
    if !auth::csrf_ok(&s, csrf) || !s.user.may_change(&rest) {
        return c.pages.forbidden(lang, &s);
    }
    // A manager changes their restaurant's rules, not where its alerts go:
    // a chat is an admin's to route (their form has no chat field).
    if !s.user.is_admin() && field(&form, "chat").is_some_and(|v| !v.is_empty()) {
        tracing::warn!(user = ?s.user.name, restaurant = ?rest, "console: chat change by a non-admin refused");
        return c.pages.forbidden(lang, &s);
    }
    let uri = format!("/api/alerts/settings/{}", enc(&rest));
    let current = c.api.get(&uri).await.unwrap_or(json!({}));
    let kinds: Vec<String> = c
        .api
        .get("/api/alerts/settings")
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v["kinds"].clone()).ok())
        .unwrap_or_default();
    let body = body_from_form(&form, &current, &current["saved"], &kinds);
    let (outcome, status) = match c.api.call(Method::PUT, &uri, Some(body)).await {
        Ok(_) => {
            tracing::info!(user = ?s.user.name, restaurant = ?rest, "console: alert settings saved");
            (json!({"ok": true, "saved": true}), StatusCode::OK)
        }
        Err(e) => (
            json!({"ok": false, "error": e.message}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    };
    render(&c, &s, lang, Some(rest), None, outcome, status).await
}

/// "Send a test message" to the restaurant's chat.
pub async fn test(
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
    let (notice, status) = match c
        .api
        .call(
            Method::POST,
            "/api/alerts/test",
            Some(json!({"rest_code": rest})),
        )
        .await
    {
        Ok(v) => (json!({"ok": true, "test": v}), StatusCode::OK),
        // Telegram's refusal names the chat and why: an admin's to read.
        Err(e) if e.status == StatusCode::BAD_GATEWAY && !s.user.is_admin() => (
            json!({"ok": false, "error": i18n::words(lang)["test_failed"]}),
            e.status,
        ),
        Err(e) => (json!({"ok": false, "error": e.message}), e.status),
    };
    tracing::info!(user = ?s.user.name, restaurant = ?rest, ok = status.is_success(), "console: alert test message");
    render(&c, &s, lang, Some(rest), None, notice, status).await
}

#[derive(Deserialize)]
pub struct TelegramForm {
    csrf: String,
    bot_token: Option<String>,
    owners_chat: Option<String>,
}

/// The bot token (write-only) and the owners' chat: an admin's.
pub async fn telegram(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<TelegramForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let current = c.api.get("/api/alerts/settings").await.unwrap_or(json!({}));
    let mut body = Map::new();
    if let Some(t) = f
        .bot_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        body.insert("bot_token".into(), json!(t));
    }
    match f.owners_chat.as_deref().map(str::trim) {
        Some("")
            if !current["telegram"]["owners_chat"].is_null()
                && current["telegram"]["owners_chat_source"] == "console" =>
        {
            body.insert("reset".into(), json!(["owners_chat"]));
        }
        Some(v) if !v.is_empty() && current["telegram"]["owners_chat"] != number(v) => {
            body.insert("owners_chat".into(), number(v));
        }
        _ => {}
    }
    let (notice, status) = match c
        .api
        .call(
            Method::PUT,
            "/api/alerts/settings",
            Some(Value::Object(body)),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(user = ?s.user.name, "console: telegram settings saved");
            (json!({"ok": true, "saved": true}), StatusCode::OK)
        }
        Err(e) => (json!({"ok": false, "error": e.message}), e.status),
    };
    render(&c, &s, lang, None, None, notice, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_form_sends_only_what_changed_over_what_was_saved() {
        let kinds = vec!["dish_voided".to_string(), "discount".to_string()];
        let current = json!({
            "name": "R1", "chat": -100, "kinds": null, "closing_time": "03:00",
            "opening_hours": null, "utc_offset": "+03:00",
            "rules": {"dish_voided": true, "discount": true, "discount_percent": 30},
        });
        let saved = json!({"rest_code": "", "name": "R1", "rules": {"discount": true}});
        let form = pairs(&[
            ("csrf", "x"),
            ("name", "R1"),
            ("chat", "-100"),
            ("closing_time", "03:00"),
            ("utc_offset", "+05:00"),
            ("kind", "dish_voided"),
            ("kind", "discount"),
            ("rules.discount", "on"),
            ("rules.discount_percent", "25"),
        ]);
        let body = body_from_form(&form, &current, &saved, &kinds);
        assert_eq!(
            body,
            json!({"name": "R1", "utc_offset": "+05:00",
                   "rules": {"discount": true, "dish_voided": false, "discount_percent": 25}})
        );
        let form = pairs(&[
            ("chat", "abc"),
            ("kind", "discount"),
            ("rules.discount_percent", "x"),
        ]);
        let body = body_from_form(&form, &current, &Value::Null, &kinds);
        assert_eq!(
            body["chat"], "abc",
            "left for the API to refuse in its words"
        );
        assert_eq!(body["kinds"], json!(["discount"]));
        assert_eq!(body["rules"]["discount_percent"], "x");
    }
}
