//! Signing in and staying signed in: password checks (Argon2), the
//! failure limiter, the session cookie, the CSRF token every change
//! carries, and the sign-in form's own token.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no
//! other site's page sends it) and `Secure` when the request came over TLS
//! (a proxy in front says so with `X-Forwarded-Proto: https`). Every form
//! that changes something also carries the session's CSRF token, compared
//! in constant time. The sign-in form, which has no session yet, carries a
//! token of its own ([`LOGIN_COOKIE`]): another site cannot sign a browser
//! in to an account of the attacker's choosing.
//!
//! A sign-in attempt is counted before its password is hashed
//! ([`Limiter::attempt`]), so parallel guesses cannot all slip under the
//! limit while the first are still being verified; and the check is the
//! core's bounded one ([`crate::core::password`]), so a burst costs
//! queueing time, not memory.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;

use super::Console;
use crate::core::limiter::FailureLimiter;
use crate::core::settings::{Entry, Live};
use crate::core::store::{Db, StoreError};

/// A form that carries nothing but its CSRF token (a button that acts).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}
use super::users::{self, Session};

pub const COOKIE: &str = "tg_session";
/// A session lasts 12 hours: a working day, then sign in again.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Failures allowed for one account from one client address in
/// [`WINDOW`]. Keyed on the pair so that one person's typos behind a
/// shared address (an office, a proxy) lock out only that person there.
pub const MAX_FAILURES: u32 = 5;
/// Failures allowed from one client address whatever the names, in
/// [`WINDOW`]: one address trying a common password on many accounts
/// (spraying) is stopped, while a few people's typos behind one address
/// are far from it.
pub const MAX_ADDRESS_FAILURES: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-ins: the core's limiter per (account, client address) with
/// [`MAX_FAILURES`] and per client address with [`MAX_ADDRESS_FAILURES`],
/// and the operators' unlocks applied so far.
pub struct Limiter {
    by_account: FailureLimiter,
    by_address: FailureLimiter,
    /// Per account (lower case), the newest stored unlock
    /// ([`record_unlock`]) already applied here.
    unlocks_applied: Mutex<HashMap<String, i64>>,
    /// The stored unlocks, opened on the first attempt (the limiter is
    /// made with the console's state, storage comes with each call).
    stored: OnceLock<Arc<Live<Unlocks>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            by_account: FailureLimiter::new(MAX_FAILURES, WINDOW),
            by_address: FailureLimiter::new(MAX_ADDRESS_FAILURES, WINDOW),
            unlocks_applied: Mutex::default(),
            stored: OnceLock::new(),
        }
    }
}

/// The keys one sign-in attempt was counted under.
pub struct Attempt {
    account: Vec<String>,
    address: Vec<String>,
}

/// The account part of a key: names are compared without case, as a
/// person types them, and cut at the longest an account name may be
/// ([`users::check_new`]), so a guesser's megabyte-long names cost the
/// limiter no more than real ones.
fn account_prefix(name: &str) -> String {
    let name: String = name.chars().take(64).collect();
    format!("u:{}|", name.to_lowercase())
}

/// Where an attempt comes from, as the limiter counts it: an IPv4 address,
/// or an IPv6 address's /64 network. One IPv6 client holds a whole /64
/// (a household, an office, a server) and can pick a fresh address from it
/// for every guess.
fn origin(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Limiter {
    /// Counts an attempt for `name` from `from` before its password is
    /// checked; the wait when either key is used up (then nothing counts).
    pub fn attempt(&self, name: &str, from: IpAddr) -> Result<Attempt, Duration> {
        let from = origin(from);
        let account = vec![format!("{}{from}", account_prefix(name))];
        let address = vec![format!("ip:{from}")];
        self.by_account.attempt(&account)?;
        if let Err(wait) = self.by_address.attempt(&address) {
            self.by_account.forgive(&account);
            return Err(wait);
        }
        Ok(Attempt { account, address })
    }

    /// The password was right: the account's count from there is cleared;
    /// the address only gets this attempt back (one good account must not
    /// reset an address that is guessing others).
    pub fn passed(&self, a: &Attempt) {
        self.by_account.succeeded(&a.account);
        self.by_address.forgive(&a.address);
    }

    /// The password could not be checked (storage failed): not a failure.
    pub fn not_checked(&self, a: &Attempt) {
        self.by_account.forgive(&a.account);
        self.by_address.forgive(&a.address);
    }

    /// An operator's unlock of `name`: its counts from every address are
    /// forgotten, and so are those addresses' own counts, so the person
    /// can sign in from where they were locked out. How many keys went.
    pub fn unlock(&self, name: &str) -> usize {
        let prefix = account_prefix(name);
        let gone = self.by_account.forget_where(|k| k.starts_with(&prefix));
        let addresses: BTreeSet<String> = gone
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|ip| format!("ip:{ip}"))
            .collect();
        self.by_address.forget_where(|k| addresses.contains(k));
        gone.len()
    }

    /// Applies the stored unlock of `name`, if a newer one than this
    /// instance applied: an unlock made by the CLI or on another instance
    /// reaches this one at the account's next attempt. Called before
    /// [`Self::attempt`].
    pub async fn apply_stored_unlock(&self, db: &Db, name: &str) {
        let stored = self.stored.get_or_init(|| unlocks(db.clone()));
        let stamp = stored.current().await.get(&name.to_lowercase()).copied();
        self.apply_unlock(name, stamp);
    }

    /// This instance stored an unlock: the next attempt reads it at once.
    pub fn stored_changed(&self) {
        if let Some(stored) = self.stored.get() {
            stored.changed();
        }
    }

    /// Applies an unlock of `name` made at `stamp` (ms) unless it was
    /// applied here already.
    pub fn apply_unlock(&self, name: &str, stamp: Option<i64>) {
        let Some(stamp) = stamp else { return };
        {
            let mut applied = self
                .unlocks_applied
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let key = name.to_lowercase();
            if applied.get(&key).is_some_and(|a| *a >= stamp) {
                return;
            }
            applied.insert(key, stamp);
        }
        self.unlock(name);
    }

    /// Accounts (lower case) locked from some address on this instance.
    pub fn locked_accounts(&self) -> BTreeSet<String> {
        self.by_account
            .blocked_keys()
            .iter()
            .filter_map(|k| k.strip_prefix("u:")?.rsplit_once('|'))
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

/// Where stored unlocks live in the settings table: one key per account,
/// the value the time of the unlock (ms).
const UNLOCK_PREFIX: &str = "console.unlock.";

/// Stored unlocks: account (lower case) to the time it was unlocked.
type Unlocks = HashMap<String, i64>;

/// The stored unlocks, read from the settings table and re-read when it
/// changed (checked at most every second): the limiter is in memory in
/// each server, so an unlock made by `tillgate users unlock` or on
/// another instance travels through storage.
fn unlocks(db: Db) -> Arc<Live<Unlocks>> {
    Live::new(db, Unlocks::new(), |entries: &[Entry]| {
        entries
            .iter()
            .filter_map(|e| {
                let name = e.key.strip_prefix(UNLOCK_PREFIX)?;
                Some((name.to_string(), e.value.parse().ok()?))
            })
            .collect()
    })
}

/// Stores an unlock of `name` at `now_ms` for every server to apply.
pub async fn record_unlock(db: &Db, name: &str, now_ms: i64) -> Result<(), StoreError> {
    let key = format!("{UNLOCK_PREFIX}{}", name.to_lowercase());
    crate::core::settings::put(db, &key, Some(&now_ms.to_string()), now_ms).await?;
    Ok(())
}

/// Checks `password` against the account `name`; the account when right.
pub async fn check_password(
    db: &Db,
    name: &str,
    password: SecretString,
) -> Result<Option<users::User>, StoreError> {
    let found = users::find(db, name).await?;
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let good = crate::core::password::check(password, hash).await;
    Ok(found.filter(|_| good).map(|(u, _)| u))
}

/// The sign-in form's token cookie: set with the form, sent back only to
/// `/login` and only by this site's own pages (`SameSite=Strict`).
pub const LOGIN_COOKIE: &str = "tg_login";
/// How long a sign-in form may be left open before it is sent.
const LOGIN_FORM_TTL_SECS: u64 = 3600;

/// A fresh token for a sign-in form.
pub fn login_token() -> String {
    users::random_token()
}

/// The `Set-Cookie` value carrying a sign-in form's token.
pub fn login_cookie(token: &str, tls: bool) -> String {
    format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={LOGIN_FORM_TTL_SECS}{}",
        if tls { "; Secure" } else { "" }
    )
}

/// Whether a sign-in form's token is the one its cookie carries. A page
/// of another site can post to `/login`, but cannot read or set the
/// cookie, so it cannot send the pair.
pub fn login_csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    match cookie(headers, LOGIN_COOKIE) {
        Some(c) if !c.is_empty() && !given.is_empty() => {
            crate::core::api_error::secret_eq(given, &SecretString::from(c.to_string()))
        }
        _ => false,
    }
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_account_is_limited_per_address_and_an_address_over_all_accounts() {
        let l = Limiter::default();
        let (office, home) = (ip("203.0.113.1"), ip("198.51.100.7"));
        for _ in 0..MAX_FAILURES {
            assert!(l.attempt("Anna", office).is_ok());
        }
        // Counted before any check: the sixth waits, in any case.
        let wait = l.attempt("anna", office).err().expect("anna is locked");
        assert!(wait > WINDOW - Duration::from_secs(5) && wait <= WINDOW);
        // Others behind the same address, and Anna elsewhere, are not.
        assert!(l.attempt("boris", office).is_ok());
        assert!(l.attempt("anna", home).is_ok());
        assert_eq!(l.locked_accounts(), BTreeSet::from(["anna".to_string()]));
        // Spraying: one address over many names stops at its own limit.
        let sprayer = ip("192.0.2.9");
        for n in 0..MAX_ADDRESS_FAILURES {
            assert!(l.attempt(&format!("user{n}"), sprayer).is_ok());
        }
        assert!(l.attempt("someone-else", sprayer).is_err());
        // ...and the refused attempt counted nothing for that account.
        assert!(l.attempt("someone-else", home).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_long_names_by_their_first_64_characters() {
        let l = Limiter::default();
        for i in 0..MAX_FAILURES {
            assert!(
                l.attempt("anna", ip(&format!("2001:db8:1:2::{i:x}")))
                    .is_ok()
            );
        }
        // A fresh address in the same /64 buys nothing...
        assert!(l.attempt("anna", ip("2001:db8:1:2:ffff::1")).is_err());
        // ...another /64 is someone else.
        assert!(l.attempt("anna", ip("2001:db8:1:3::1")).is_ok());
        let long = "x".repeat(100_000);
        let from = ip("203.0.113.1");
        for _ in 0..MAX_FAILURES {
            l.attempt(&long, from).unwrap();
        }
        assert!(l.attempt(&"x".repeat(64), from).is_err(), "the same key");
        assert!(l.by_account.blocked_keys().iter().all(|k| k.len() < 200));
        assert_eq!(origin(ip("203.0.113.1")), "203.0.113.1");
        assert_eq!(origin(ip("2001:db8::1")), "2001:db8:0:0::/64");
    }

    #[test]
    fn a_right_password_clears_the_account_and_gives_the_address_its_attempt_back() {
        let l = Limiter::default();
        let from = ip("203.0.113.1");
        for _ in 0..MAX_FAILURES - 1 {
            l.attempt("anna", from).unwrap();
        }
        let a = l.attempt("anna", from).unwrap();
        l.passed(&a);
        for _ in 0..MAX_FAILURES {
            assert!(l.attempt("anna", from).is_ok());
        }
        assert!(l.attempt("anna", from).is_err());
        // Not checked (storage failed) is not a failure either.
        let b = l.attempt("boris", from).unwrap();
        l.not_checked(&b);
        for _ in 0..MAX_FAILURES {
            assert!(l.attempt("boris", from).is_ok());
        }
        assert!(l.attempt("boris", from).is_err());
    }

    #[test]
    fn an_unlock_frees_the_account_everywhere_once_per_stored_stamp() {
        let l = Limiter::default();
        let (a, b) = (ip("203.0.113.1"), ip("::1"));
        for from in [a, b] {
            for _ in 0..MAX_FAILURES {
                l.attempt("anna", from).unwrap();
            }
            assert!(l.attempt("anna", from).is_err());
        }
        for _ in 0..MAX_FAILURES {
            l.attempt("boris", a).unwrap();
        }
        l.apply_unlock("ANNA", Some(10));
        assert!(l.attempt("anna", a).is_ok() && l.attempt("anna", b).is_ok());
        assert!(l.attempt("boris", a).is_err(), "only Anna was unlocked");
        for _ in 0..MAX_FAILURES - 1 {
            l.attempt("anna", a).unwrap();
        }
        // The same stored unlock seen again does not free her twice...
        l.apply_unlock("anna", Some(10));
        assert!(l.attempt("anna", a).is_err());
        // ...a newer one does.
        l.apply_unlock("anna", Some(11));
        assert!(l.attempt("anna", a).is_ok());
        l.apply_unlock("anna", None);
        assert_eq!(l.unlock("nobody"), 0);
    }

    #[test]
    fn the_login_token_must_match_its_cookie() {
        let c = login_cookie("tok", true);
        assert!(c.starts_with("tg_login=tok; Path=/login; HttpOnly; SameSite=Strict"));
        assert!(c.ends_with("; Secure"));
        let mut h = HeaderMap::new();
        assert!(!login_csrf_ok(&h, "tok"), "no cookie");
        h.insert(header::COOKIE, "tg_login=tok".parse().unwrap());
        assert!(login_csrf_ok(&h, "tok"));
        assert!(!login_csrf_ok(&h, "tok2") && !login_csrf_ok(&h, ""));
        h.insert(header::COOKIE, "tg_login=".parse().unwrap());
        assert!(!login_csrf_ok(&h, ""), "empty matches nothing");
        assert_ne!(login_token(), login_token());
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
