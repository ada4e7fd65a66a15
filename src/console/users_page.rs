//! The Users page (admin): accounts, their roles and restaurants; add,
//! remove, and unlock an account the sign-in limiter has locked.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::Console;
use super::auth::{self, Signed};
use super::i18n::Lang;
use super::users::{self, Session, User};

async fn render(
    c: &Console,
    s: &Session,
    lang: Lang,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    match users::list(&c.db).await {
        Ok(list) => c.pages.page(
            status,
            "users.html",
            lang,
            Some(s),
            "users",
            context! { users => list, error => error, locked => c.limiter.locked_accounts() },
        ),
        Err(e) => crate::core::api_error::ApiError::from(e).into_response(),
    }
}

pub async fn page(State(c): State<Console>, Signed(s): Signed, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    if !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    render(&c, &s, lang, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct NewUser {
    csrf: String,
    name: String,
    password: String,
    role: String,
    restaurants: Option<String>,
}

pub async fn add(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<NewUser>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    let restaurants: Vec<String> = f
        .restaurants
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    let refused = |msg: String| render(&c, &s, lang, StatusCode::UNPROCESSABLE_ENTITY, Some(msg));
    let role = match users::check_new(f.name.trim(), &f.role, &restaurants) {
        Ok(r) => r,
        Err(e) => return refused(e).await,
    };
    if f.password.chars().count() < users::MIN_PASSWORD {
        return refused(format!(
            "password: at least {} characters",
            users::MIN_PASSWORD
        ))
        .await;
    }
    let hash = match crate::loyalty::auth::hash_password(&f.password) {
        Ok(h) => h,
        Err(e) => return refused(e.to_string()).await,
    };
    let user = User {
        name: f.name.trim().to_string(),
        role,
        restaurants,
    };
    match users::add(&c.db, &user, &hash, c.clock.now_ms()).await {
        Ok(true) => {
            tracing::info!(by = ?s.user.name, user = ?user.name, role = role.as_str(), "console: user added");
            Redirect::to("/users").into_response()
        }
        Ok(false) => refused(format!("user {:?} already exists", user.name)).await,
        Err(e) => crate::core::api_error::ApiError::from(e).into_response(),
    }
}

pub async fn remove(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    if name == s.user.name {
        return render(
            &c,
            &s,
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("you cannot remove yourself".into()),
        )
        .await;
    }
    match users::remove(&c.db, &name).await {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(e) => crate::core::api_error::ApiError::from(e).into_response(),
    }
}

/// Unlocks an account the sign-in limiter has locked (from every address).
/// Stored as well as applied here: other instances on the same database,
/// which count their own failures, apply it at the account's next attempt.
pub async fn unlock(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    let lang = Lang::of(&headers);
    if !auth::csrf_ok(&s, &f.csrf) || !s.user.is_admin() {
        return c.pages.forbidden(lang, &s);
    }
    match users::find(&c.db, &name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return c.pages.message(
                StatusCode::NOT_FOUND,
                lang,
                Some(&s),
                &format!("no user {name:?}"),
            );
        }
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    }
    let now = c.clock.now_ms();
    if let Err(e) = auth::record_unlock(&c.db, &name, now).await {
        return crate::core::api_error::ApiError::from(e).into_response();
    }
    c.limiter.apply_unlock(&name, Some(now));
    c.limiter.stored_changed();
    tracing::info!(by = ?s.user.name, user = ?name, "console: user unlocked");
    Redirect::to("/users").into_response()
}
