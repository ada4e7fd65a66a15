//! Signing in and staying signed in: password checks (Argon2), the
//! failure limiter, the session cookie and the CSRF token every change
//! carries.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no
//! other site's page sends it) and `Secure` when the request came over TLS
//! (a proxy in front says so with `X-Forwarded-Proto: https`). Every form
//! that changes something also carries the session's CSRF token, compared
//! in constant time.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};

use super::Console;

/// A form that carries nothing but its CSRF token (a button that acts).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}
use super::users::{self, Session};

pub const COOKIE: &str = "tg_session";
/// A session lasts 12 hours: a working day, then sign in again.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Failures allowed per user name and per address in [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-ins per key (a user name, an address): the core's limiter
/// with [`MAX_FAILURES`] in [`WINDOW`].
pub struct Limiter(crate::core::limiter::FailureLimiter);

impl Default for Limiter {
    fn default() -> Self {
        Limiter(crate::core::limiter::FailureLimiter::new(
            MAX_FAILURES,
            WINDOW,
        ))
    }
}

impl std::ops::Deref for Limiter {
    type Target = crate::core::limiter::FailureLimiter;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A hash no password matches, verified for unknown names so that a wrong
/// name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        crate::loyalty::auth::hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
    })
}

/// Checks `password` against the account `name`; the account when right.
pub async fn check_password(
    db: &crate::core::store::Db,
    name: &str,
    password: SecretString,
) -> Result<Option<users::User>, crate::core::store::StoreError> {
    let found = users::find(db, name).await?;
    let hash = found
        .as_ref()
        .map(|(_, h)| h.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    // Argon2 costs tens of milliseconds by design: off the async workers.
    let good = tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false);
    Ok(found.filter(|_| good).map(|(u, _)| u))
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (directly or through a proxy).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for a session token (empty token: sign out).
pub fn session_cookie(token: &str, tls: bool) -> String {
    let max_age = if token.is_empty() {
        0
    } else {
        SESSION_TTL_MS / 1000
    };
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if tls { "; Secure" } else { "" }
    )
}

/// Whether the form's token is the session's.
pub fn csrf_ok(session: &Session, given: &str) -> bool {
    crate::core::api_error::secret_eq(given, &SecretString::from(session.csrf.clone()))
}

/// A handler's signed-in caller; anyone else is sent to the sign-in page.
pub struct Signed(pub Session);

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Response> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        match users::session(&state.db, token, state.clock.now_ms()).await {
            Ok(Some(s)) => Ok(Signed(s)),
            Ok(None) => Err(to_login()),
            Err(e) => Err(crate::core::api_error::ApiError::from(e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_five_failures_per_key() {
        let l = Limiter::default();
        let keys = vec!["u:anna".to_string(), "ip:1".to_string()];
        for _ in 0..MAX_FAILURES {
            assert!(!l.blocked(&keys));
            l.failed(&keys);
        }
        assert!(l.blocked(&keys));
        assert!(l.blocked(&["ip:1".to_string()]));
        assert!(!l.blocked(&["u:boris".to_string()]));
        l.succeeded(&keys);
        assert!(!l.blocked(&keys));
    }

    #[test]
    fn the_cookie_is_strict_and_secure_behind_tls() {
        let c = session_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(!c.contains("Secure"));
        assert!(session_cookie("abc", true).ends_with("; Secure"));
        assert!(session_cookie("", false).contains("Max-Age=0"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; tg_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
