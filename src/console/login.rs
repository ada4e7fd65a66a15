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
use crate::core::client_addr::client_ip;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a path on this server: never a redirect to another site. Printable
/// ASCII only (a path from the address bar arrives percent-encoded): a
/// browser drops a tab or a line break from `/\t/host`, which leaves the
/// off-site `//host`, and a control character in `Location` is not a
/// header value at all.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The sign-in page with a fresh form token (and its cookie); `data` is
/// the page's own (`next`, and after a refusal `error` and `name`).
fn login_page(
    c: &Console,
    headers: &HeaderMap,
    status: StatusCode,
    data: minijinja::Value,
) -> Response {
    let token = auth::login_token();
    let mut res = c.pages.page(
        status,
        "login.html",
        Lang::of(headers),
        None,
        "",
        context! { login_csrf => &token, ..data },
    );
    if let Ok(v) = HeaderValue::from_str(&auth::login_cookie(&token, auth::over_tls(headers))) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn form(State(c): State<Console>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let next = safe_next(q.next.as_deref());
    login_page(&c, &headers, StatusCode::OK, context! { next => next })
}

/// The sign-in form. Every field may be missing, so that a form without
/// its token is refused in words rather than by the form parser.
#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    let words = i18n::words(Lang::of(&headers));
    let next = safe_next(f.next.as_deref());
    let again = |status, msg: String| {
        login_page(
            &c,
            &headers,
            status,
            context! { next => &next, error => msg, name => &f.name },
        )
    };
    // Before anything else: a post another site made the browser send
    // checks no password and counts nothing.
    if !auth::login_csrf_ok(&headers, &f.csrf) {
        return again(StatusCode::FORBIDDEN, words["login_expired"].to_string());
    }
    let from = client_ip(peer, &headers, &c.http.trusted_proxies);
    c.limiter.apply_stored_unlock(&c.db, &f.name).await;
    let attempt = match c.limiter.attempt(&f.name, from) {
        Ok(a) => a,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            tracing::warn!(user = ?f.name, remote = %from, retry_after = secs, "console sign-in refused: too many failures");
            let msg = format!(
                "{} {} {}",
                words["too_many"],
                secs.div_ceil(60),
                words["minutes"]
            );
            let mut res = again(StatusCode::TOO_MANY_REQUESTS, msg);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return res;
        }
    };
    let user =
        match auth::check_password(&c.db, &f.name, SecretString::from(f.password.clone())).await {
            Ok(u) => u,
            Err(e) => {
                c.limiter.not_checked(&attempt);
                return crate::core::api_error::ApiError::from(e).into_response();
            }
        };
    let Some(user) = user else {
        // Typed by anyone: `?` escapes it, so a line break in a name
        // cannot forge a log line.
        tracing::warn!(user = ?f.name, remote = %from, "console sign-in failed");
        return again(StatusCode::UNAUTHORIZED, words["bad_login"].to_string());
    };
    c.limiter.passed(&attempt);
    let token = match users::open_session(&c.db, &user.name, c.clock.now_ms(), auth::SESSION_TTL_MS)
        .await
    {
        Ok(t) => t,
        Err(e) => return crate::core::api_error::ApiError::from(e).into_response(),
    };
    tracing::info!(user = ?user.name, role = user.role.as_str(), remote = %from, "console sign-in");
    let mut res = Redirect::to(&next).into_response();
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
        // A browser drops tabs and line breaks: `/\t/evil` would be `//evil`.
        assert_eq!(safe_next(Some("/\t/evil.example/")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example/")), "/");
        assert_eq!(safe_next(Some("/\r\nSet-Cookie: x=1")), "/");
        assert_eq!(safe_next(Some("/ /evil")), "/");
        assert_eq!(safe_next(Some("/заказы")), "/");
        assert_eq!(
            safe_next(Some("/orders?restaurant=101&state=open")),
            "/orders?restaurant=101&state=open"
        );
    }
}
