//! The web console: what owners, managers and integrators open in a
//! browser at `/`.
//!
//! Server-rendered pages (minijinja templates and a stylesheet and script
//! compiled into the binary, nothing fetched from any other host: the
//! Content-Security-Policy says so to the browser), a little script for
//! the live parts (Server-Sent Events) and the SMS template counter.
//!
//! The console is app level, like `app`: it may name features. It reads
//! through their public store functions, and makes every change through
//! the feature's own operator API, called in process ([`api`]), so a
//! change made here is validated, stored and applied exactly as the API
//! (and, for settings, the config file) would. What it adds is people:
//! accounts, roles and sessions ([`users`], [`auth`]), and the rule that a
//! manager or viewer sees only the restaurants they are assigned, checked
//! on the server in every handler before anything is read or changed.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod backoffice;
pub mod cli;
pub mod i18n;
pub mod login;
pub mod loyalty;
pub mod orders;
pub mod overview;
pub mod providers;
pub mod relay;
pub mod render;
pub mod shifts;
pub mod sms;
pub mod users;
pub mod users_page;
pub mod zone;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::core::clock::SharedClock;
use crate::core::migrate::Migration;
use crate::core::store::Db;

/// The console's migrations: its accounts and sessions, and the settings
/// table ([`crate::core::settings`]) the console's changes are stored in.
pub fn migrations() -> Vec<Migration> {
    vec![
        crate::migration!("0011_console"),
        crate::migration!("0014_settings"),
    ]
}

/// What every console handler gets.
#[derive(Clone)]
pub struct Console {
    pub db: Db,
    /// The operator API without its token guard: the console has checked
    /// the person already.
    pub api: api::Api,
    pub clock: SharedClock,
    pub limiter: Arc<auth::Limiter>,
    pub pages: Arc<render::Pages>,
    /// The SMS provider's balance, refreshed in the background.
    pub providers: Arc<providers::ProviderCache>,
    /// `[http]`: trusted proxies (the client address a limit is keyed on).
    pub http: Arc<crate::core::config::HttpConfig>,
}

/// The browser may load scripts, styles and images from this server only,
/// connect back only to it, and show the pages in no frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes. `operator` is the operator API as the features
/// built it, before the token guard.
pub fn router(db: Db, operator: Router, http: Arc<crate::core::config::HttpConfig>) -> Router {
    let state = Console {
        db,
        api: api::Api::new(operator),
        clock: SharedClock::system(),
        limiter: Arc::default(),
        pages: Arc::new(render::Pages::new()),
        providers: Arc::default(),
        http,
    };
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/lang/{lang}", get(login::set_lang))
        .route("/assets/{file}", get(render::asset))
        .route("/orders", get(orders::list))
        .route("/orders/live", get(orders::live))
        .route("/orders/{guid}", get(orders::detail))
        .route("/shifts", get(shifts::page))
        .route("/shifts/{rest}/{num}", get(shifts::detail))
        .route("/shifts/{rest}/{num}/chart.png", get(shifts::chart))
        .route("/alerts", get(alerts::page))
        .route("/alerts/telegram", post(alerts::telegram))
        .route("/alerts/{rest}", post(alerts::save))
        .route("/alerts/{rest}/test", post(alerts::test))
        .route("/sms", get(sms::page))
        .route("/sms-global", post(sms::save_global))
        .route("/sms/{rest}", post(sms::save))
        .route("/sms/{rest}/balance", post(sms::balance))
        .route("/relay", get(relay::page).post(relay::add))
        .route("/relay/{id}", get(relay::detail).post(relay::edit))
        .route("/relay/{id}/{action}", post(relay::act))
        .route("/relay/{id}/dead/{offset}", post(relay::resend))
        .route("/loyalty", get(loyalty::page))
        .route("/loyalty/{number}/state", post(loyalty::set_state))
        .route("/loyalty/{number}/adjust", post(loyalty::adjust))
        .route("/backoffice", get(backoffice::page))
        .route("/users", get(users_page::page).post(users_page::add))
        .route("/users/{name}/delete", post(users_page::remove))
        .route("/users/{name}/unlock", post(users_page::unlock))
        .with_state(state)
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers of the console's answers beyond the ones the edge puts on every
/// answer (`app::edge`: `nosniff`, no framing): its own CSP, which lets
/// this server's script and styles load, a referrer kept on this origin,
/// and no caching of pages that show guests' and owners' data.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The restaurants a page offers to pick: for an admin every one with
/// settings (the `items` of a settings answer `all`, each named by its
/// `key` field) and every one a cash server reported; for anyone else
/// their own.
pub async fn offered_restaurants(
    c: &Console,
    s: &users::Session,
    all: &serde_json::Value,
    key: &str,
) -> Vec<String> {
    let configured = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i[key].as_str().map(str::to_string));
    let mut set = std::collections::BTreeSet::new();
    if s.user.is_admin() {
        set.extend(configured);
        if let Ok(servers) = crate::orders::store::servers(&c.db).await {
            set.extend(servers.into_iter().filter_map(|x| x.rest_code));
        }
    }
    set.extend(s.user.restaurants.iter().cloned());
    set.into_iter().collect()
}
