//! Sign-in, sign-out and the language switch.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::Console;
use super::auth::{self, Signed};
use super::i18n::{self, Lang};
use super::users;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a path on this server: never a redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn form(State(c): State<Console>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    c.pages.page(
        StatusCode::OK,
        "login.html",
        Lang::of(&headers),
        None,
        "",
        context! { next => safe_next(q.next.as_deref()) },
    )
}

#[derive(Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    let lang = Lang::of(&headers);
    let words = i18n::words(lang);
    let keys = vec![
        format!("u:{}", f.name.to_lowercase()),
        format!("ip:{}", peer.ip()),
    ];
    let again = |status, msg: &str| {
        c.pages.page(
            status,
            "login.html",
            lang,
            None,
            "",
            context! { next => safe_next(f.next.as_deref()), error => msg, name => &f.name },
        )
    };
    if c.limiter.blocked(&keys) {
        return again(StatusCode::TOO_MANY_REQUESTS, words["too_many"]);
    }
    let user =
        match auth::check_password(&c.db, &f.name, SecretString::from(f.password.clone())).await {
            Ok(u) => u,
            Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
        };
    let Some(user) = user else {
        c.limiter.failed(&keys);
        tracing::warn!(user = %f.name, remote = %peer.ip(), "console sign-in failed");
        return again(StatusCode::UNAUTHORIZED, words["bad_login"]);
    };
    // Only the name's count: one good account must not reset an
    // address that is guessing others.
    c.limiter.succeeded(&keys[..1]);
    let token = match users::open_session(&c.db, &user.name, c.clock.now_ms(), auth::SESSION_TTL_MS)
        .await
    {
        Ok(t) => t,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "console sign-in");
    let mut res = Redirect::to(&safe_next(f.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::session_cookie(&token, auth::over_tls(&headers))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn logout(
    State(c): State<Console>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !auth::csrf_ok(&s, &f.csrf) {
        return c.pages.forbidden(Lang::of(&headers), &s);
    }
    if let Some(token) = auth::cookie(&headers, auth::COOKIE)
        && let Err(e) = users::close_session(&c.db, token).await
    {
        return crate::core::api_error::ApiError::from(e).into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::session_cookie("", auth::over_tls(&headers))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// `GET /lang/{ru|en}`: a cookie only, then back where the person was.
pub async fn set_lang(Path(lang): Path<String>, headers: HeaderMap) -> Response {
    let lang = if lang == "en" { "en" } else { "ru" };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| {
            let mut p = u.path().to_string();
            if let Some(q) = u.query() {
                p.push('?');
                p.push_str(q);
            }
            p
        });
    let mut res = Redirect::to(&safe_next(back.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "tg_lang={lang}; Path=/; SameSite=Strict; Max-Age=31536000"
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/orders?x=1")), "/orders?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
