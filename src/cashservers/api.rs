//! The operator API: the cash servers (list, add), their subscriptions
//! (`POST /api/cash-servers/{name}/subscriptions`), backfill on request and
//! the backfill jobs. A cash server's password is accepted, never returned.
//!
//! These routes are the operator API's (its token is admin-level). The
//! listing's `raw` is whatever the cash server's URL answered, so it is
//! shown only here, cut to [`RAW_MAX`]: the URL can be pointed at any
//! service the machine reaches, and a larger or wider echo of it would make
//! tillgate a reader of that service.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::connect::{self, Failure};
use super::settings::{
    CashServer, CashServerFile, Settings, check_ingest_url, validate_cash_server,
};
use super::{backfill, store, subscriptions};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::log::LogWriter;
use crate::core::store::Db;

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub log: LogWriter,
    pub settings: Settings,
}

pub fn routes(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/cash-servers", post(add_server))
        .route("/api/cash-servers/configured", get(list_servers))
        .route("/api/cash-servers/backfills", get(list_backfills))
        .route(
            "/api/cash-servers/{name}/subscriptions",
            post(subscriptions_op),
        )
        .route("/api/cash-servers/{name}/backfill", post(backfill_now))
        .with_state(state)
}

/// A cash server as the API shows it: everything but the password.
#[derive(Serialize)]
struct Shown {
    name: String,
    url: String,
    user: String,
    rest_code: Option<String>,
    tls: String,
    source: &'static str,
}

fn shown(s: &CashServer, source: &'static str) -> Shown {
    Shown {
        name: s.name.clone(),
        url: s.url.clone(),
        user: s.user.clone(),
        rest_code: s.rest_code.clone(),
        tls: s.tls_words(),
        source,
    }
}

async fn list_servers(State(st): State<ApiState>) -> ApiResult<Json<serde_json::Value>> {
    let items: Vec<Shown> = connect::all(&st.db, &st.settings)
        .await?
        .iter()
        .map(|s| {
            let from_file = st.settings.cash_servers.iter().any(|c| c.name == s.name);
            shown(s, if from_file { "config" } else { "api" })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn add_server(
    State(st): State<ApiState>,
    body: Result<Json<CashServerFile>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(file) = body?;
    if st
        .settings
        .cash_servers
        .iter()
        .any(|c| c.name == file.name.trim())
    {
        return Err(ApiError::conflict(
            "configured_in_file",
            format!(
                "{:?} is in the config file; change it there",
                file.name.trim()
            ),
        ));
    }
    let server = validate_cash_server(file.clone())
        .map_err(|(field, p)| ApiError::bad_request("invalid", format!("{field}: {p}")))?;
    store::save_server(&st.db, &server, &file).await?;
    Ok((StatusCode::CREATED, Json(shown(&server, "api"))).into_response())
}

async fn server(st: &ApiState, name: &str) -> ApiResult<CashServer> {
    connect::find(&st.db, &st.settings, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cash server named {name:?}")))
}

/// The most of a subscription listing's body shown as `raw` (a real listing
/// is a few hundred bytes).
pub const RAW_MAX: usize = 64 * 1024;

/// `raw` as shown: at most [`RAW_MAX`] bytes (cut at a character), and
/// whether it was cut.
fn raw_shown(raw: &str) -> (&str, bool) {
    if raw.len() <= RAW_MAX {
        return (raw, false);
    }
    let mut end = RAW_MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    (&raw[..end], true)
}

/// A failure talking to the cash server: 502 with the plain words and fix.
fn failed(f: Failure) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "cash_server", f.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionsBody {
    /// `list`, `add`, `remove` or `repoint`.
    action: String,
    /// The address to add or remove.
    url: Option<String>,
    /// repoint: remove exactly these (default: every address but tillgate's).
    remove: Option<Vec<String>>,
    /// repoint: tillgate's ingest URL (default `[rk7] ingest_url`).
    ingest_url: Option<String>,
    /// repoint: how long to wait for an event (default 30 s, at most 300).
    wait_secs: Option<u64>,
}

async fn subscriptions_op(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<SubscriptionsBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(b) = body?;
    let server = server(&st, &name).await?;
    let client = connect::client(&server, st.settings.timeout).map_err(|e| failed(e.into()))?;
    let url = || {
        b.url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| ApiError::bad_request("invalid", format!("{} needs url", b.action)))
            .and_then(|u| check_ingest_url(u).map_err(|p| ApiError::bad_request("invalid", p)))
    };
    match b.action.as_str() {
        "list" => {
            let s = client
                .list_subscriptions()
                .await
                .map_err(|e| failed(e.into()))?;
            let (raw, raw_truncated) = raw_shown(&s.raw);
            Ok(Json(
                json!({ "urls": s.urls, "raw": raw, "raw_truncated": raw_truncated }),
            ))
        }
        "add" => {
            let u = url()?;
            client.subscribe(&u).await.map_err(|e| failed(e.into()))?;
            Ok(Json(json!({ "added": u })))
        }
        "remove" => {
            // Any text the cash server lists may be removed, even one that
            // is not a usable URL (that is often why it is stale).
            let u = b
                .url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| ApiError::bad_request("invalid", "remove needs url"))?;
            client.unsubscribe(&u).await.map_err(|e| failed(e.into()))?;
            Ok(Json(json!({ "removed": u })))
        }
        "repoint" => {
            let ingest = match b
                .ingest_url
                .as_deref()
                .or(st.settings.ingest_url.as_deref())
            {
                Some(u) => check_ingest_url(u).map_err(|p| ApiError::bad_request("invalid", p))?,
                None => {
                    return Err(ApiError::bad_request(
                        "invalid",
                        "repoint needs tillgate's ingest URL: give ingest_url or set [rk7] ingest_url",
                    ));
                }
            };
            let wait = Duration::from_secs(b.wait_secs.unwrap_or(30).min(300));
            let r = subscriptions::repoint(&st.db, &client, &server, &ingest, b.remove, wait).await;
            Ok(Json(serde_json::to_value(r).map_err(ApiError::internal)?))
        }
        other => Err(ApiError::bad_request(
            "invalid",
            format!("action {other:?}: expected list, add, remove or repoint"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// Cash-server local time; orders finished before it are left alone.
    since: Option<String>,
}

async fn backfill_now(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<BackfillBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(b) = body?;
    let server = server(&st, &name).await?;
    let since = match &b.since {
        Some(s) => Some(backfill::parse_since(s).map_err(|p| ApiError::bad_request("invalid", p))?),
        None => None,
    };
    let client = connect::client(&server, st.settings.timeout).map_err(|e| failed(e.into()))?;
    let report = backfill::run(&st.db, &st.log, &client, &server, since, None)
        .await
        .map_err(failed)?;
    // A backfill on request fills every open gap of the cash server's
    // restaurant that was recorded before it started.
    let rest = connect::rest_code(&st.db, &client, &server)
        .await
        .map_err(failed)?;
    let filled: Vec<i64> = open_gaps(&st.db, &rest).await?;
    for g in &filled {
        crate::core::log::mark_gap_filled(
            &st.db,
            *g,
            report.repaired as i64,
            &format!("rk7:{}", server.name),
        )
        .await?;
    }
    Ok(Json(json!({ "report": report, "gaps_filled": filled })))
}

/// Gaps of a restaurant not yet shown as filled.
pub async fn open_gaps(
    db: &Db,
    rest_code: &str,
) -> Result<Vec<i64>, crate::core::store::StoreError> {
    let filled: Vec<i64> = crate::core::log::gap_repairs(db)
        .await?
        .into_iter()
        .map(|r| r.gap_id)
        .collect();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = crate::core::log::gaps(db, after, 500).await?;
        let Some(last) = page.last().map(|g| g.id) else {
            break;
        };
        out.extend(
            page.into_iter()
                .filter(|g| g.rest_code.as_deref() == Some(rest_code) && !filled.contains(&g.id))
                .map(|g| g.id),
        );
        after = last;
    }
    Ok(out)
}

async fn list_backfills(State(st): State<ApiState>) -> ApiResult<Json<serde_json::Value>> {
    let jobs = store::jobs(&st.db, 200).await?;
    let filled = crate::core::log::gap_repairs(&st.db).await?;
    Ok(Json(json!({ "jobs": jobs, "gaps_filled": filled })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_is_cut_at_its_limit_on_a_character() {
        assert_eq!(raw_shown("<a/>"), ("<a/>", false));
        let long = "я".repeat(RAW_MAX);
        let (cut, truncated) = raw_shown(&long);
        assert!(truncated);
        assert!(cut.len() <= RAW_MAX && cut.len() > RAW_MAX - 4);
        assert!(long.starts_with(cut));
    }
}
