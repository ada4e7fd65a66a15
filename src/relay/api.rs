//! `/api/destinations`: create, inspect, change, pause/resume and replay
//! relay destinations, and read their delivery logs and dead letters.
//!
//! Secrets (signing keys, header values, URL passwords and query values)
//! are never sent back: the view says only that they are set.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::destination::{self, DestinationInput, Format, OnClientError};
use super::store::{self, NewLine, Source, StoredDestination};
use super::{Handle, guard, metrics, send};
use crate::core::api_error::{ApiError, ApiResult};
use crate::core::log;

pub fn api_routes() -> axum::Router<Handle> {
    axum::Router::new()
        .route("/api/destinations", get(list).post(create))
        .route(
            "/api/destinations/{id}",
            get(show).patch(change).delete(remove),
        )
        .route("/api/destinations/{id}/resume", post(resume))
        .route("/api/destinations/{id}/replay", post(replay))
        .route("/api/destinations/{id}/log", get(delivery_log))
        .route("/api/destinations/{id}/dead-letters", get(dead_letters))
        .route(
            "/api/destinations/{id}/dead-letters/{offset}/resend",
            post(resend),
        )
}

/// A destination as the API shows it.
#[derive(Serialize)]
struct View {
    id: String,
    source: Source,
    url: String,
    enabled: bool,
    paused: bool,
    paused_reason: Option<String>,
    format: Format,
    situations: Vec<i64>,
    restaurants: Vec<String>,
    /// Header names; values are not shown.
    headers: BTreeMap<String, &'static str>,
    /// `"whsec_…(set)"` or null.
    secret: Option<&'static str>,
    in_flight: u32,
    on_client_error: OnClientError,
    timeout_ms: Option<u64>,
    cursor: i64,
    lag_events: i64,
    dead_letters: i64,
}

async fn view(state: &Handle, d: StoredDestination) -> ApiResult<View> {
    let cursor = store::cursor(&state.relay().db, &d.id).await?;
    let head = log::head(&state.relay().db).await?;
    let dead = store::dead_letter_count(&state.relay().db, &d.id).await?;
    let i = d.input;
    let url = reqwest::Url::parse(&i.url)
        .map(|u| destination::redact_url(&u))
        .unwrap_or_default();
    Ok(View {
        id: d.id,
        source: d.source,
        url,
        enabled: i.enabled.unwrap_or(true),
        paused: d.paused.is_some(),
        paused_reason: d.paused,
        format: i.format.unwrap_or_default(),
        situations: i.situations,
        restaurants: i.restaurants,
        headers: i.headers.keys().map(|k| (k.clone(), "(set)")).collect(),
        secret: i.secret.map(|_| "whsec_…(set)"),
        in_flight: i.in_flight.unwrap_or(1),
        on_client_error: i.on_client_error.unwrap_or_default(),
        timeout_ms: i.timeout_ms,
        cursor,
        lag_events: (head - cursor).max(0),
        dead_letters: dead,
    })
}

fn bad(e: destination::DestinationError) -> ApiError {
    ApiError::bad_request("bad_destination", e.to_string())
}

async fn find(state: &Handle, id: &str) -> ApiResult<StoredDestination> {
    store::get(&state.relay().db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no relay destination {id:?}")))
}

async fn list(State(state): State<Handle>) -> ApiResult<Response> {
    let mut items = Vec::new();
    for d in store::list(&state.relay().db).await? {
        items.push(view(&state, d).await?);
    }
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn show(State(state): State<Handle>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&state, &id).await?;
    Ok(Json(view(&state, d).await?).into_response())
}

/// `POST /api/destinations`: a `;` list in `url` creates one destination
/// per URL, all or none.
async fn create(
    State(state): State<Handle>,
    body: Result<Json<DestinationInput>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(mut input) = body?;
    let relay = state.relay();
    let s = &relay.settings;
    if input.id.as_deref().is_none_or(str::is_empty) {
        input.id = Some(format!(
            "d-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
    }
    let dests = destination::expand(input, s.timeout, s.allow_private_destinations).map_err(bad)?;
    for d in &dests {
        guard::check_resolved(&d.url, s.allow_private_destinations)
            .await
            .map_err(bad)?;
    }
    let mut map = relay.lock().await;
    for d in &dests {
        if store::get(&state.relay().db, &d.id).await?.is_some() {
            return Err(ApiError::conflict(
                "destination_exists",
                format!("a relay destination {:?} already exists", d.id),
            ));
        }
    }
    let mut items = Vec::new();
    for d in dests {
        store::upsert(&state.relay().db, &d.id, Source::Api, &d.input).await?;
        relay.start_worker(&mut map, &d.id).await?;
        items.push(view(&state, find(&state, &d.id).await?).await?);
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "items": items })),
    )
        .into_response())
}

/// `PATCH`: a JSON merge of the given fields (null removes an optional one).
async fn change(
    State(state): State<Handle>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(patch) = body?;
    let serde_json::Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "bad_json",
            "the body must be a JSON object of the fields to change",
        ));
    };
    let relay = state.relay();
    let s = &relay.settings;
    let mut map = relay.lock().await;
    let current = find(&state, &id).await?;
    if current.source == Source::Config {
        return Err(ApiError::conflict(
            "defined_in_config",
            format!("destination {id:?} is defined in the config file; change it there"),
        ));
    }
    let mut merged = serde_json::to_value(&current.input).map_err(ApiError::internal)?;
    for (k, v) in patch {
        if k == "id" && v != serde_json::Value::String(id.clone()) {
            return Err(ApiError::bad_request(
                "bad_destination",
                "the id of a destination cannot change (it keys its cursor and log)",
            ));
        }
        if v.is_null() {
            merged.as_object_mut().map(|o| o.remove(&k));
        } else {
            merged[k] = v;
        }
    }
    let input: DestinationInput = serde_json::from_value(merged)
        .map_err(|e| ApiError::bad_request("bad_destination", e.to_string()))?;
    let dest =
        destination::validate_one(input, s.timeout, s.allow_private_destinations).map_err(bad)?;
    guard::check_resolved(&dest.url, s.allow_private_destinations)
        .await
        .map_err(bad)?;
    super::Service::stop_worker(&mut map, &id).await;
    store::upsert(&state.relay().db, &id, Source::Api, &dest.input).await?;
    relay.start_worker(&mut map, &id).await?;
    drop(map);
    Ok(Json(view(&state, find(&state, &id).await?).await?).into_response())
}

async fn remove(State(state): State<Handle>, Path(id): Path<String>) -> ApiResult<Response> {
    let relay = state.relay();
    let mut map = relay.lock().await;
    let current = find(&state, &id).await?;
    if current.source == Source::Config {
        return Err(ApiError::conflict(
            "defined_in_config",
            format!("destination {id:?} is defined in the config file; remove it there"),
        ));
    }
    super::Service::stop_worker(&mut map, &id).await;
    store::delete(&state.relay().db, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn resume(State(state): State<Handle>, Path(id): Path<String>) -> ApiResult<Response> {
    let relay = state.relay();
    let mut map = relay.lock().await;
    find(&state, &id).await?;
    super::Service::stop_worker(&mut map, &id).await;
    store::flush(
        &state.relay().db,
        &id,
        &store::Flush {
            lines: vec![NewLine::now(
                "resumed",
                None,
                None,
                "resumed by the operator",
            )],
            pause: Some(store::PauseChange::Resume),
            ..Default::default()
        },
    )
    .await?;
    metrics::set_paused(&id, false);
    relay.start_worker(&mut map, &id).await?;
    drop(map);
    Ok(Json(view(&state, find(&state, &id).await?).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from_offset: Option<i64>,
    from_time: Option<String>,
}

/// Moves the destination's cursor back (or forward) so the next event sent
/// is the one at `from_offset`, or the first received at `from_time`.
async fn replay(
    State(state): State<Handle>,
    Path(id): Path<String>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(b) = body?;
    let head = log::head(&state.relay().db).await?;
    let first = match (b.from_offset, b.from_time.as_deref()) {
        (Some(o), None) => {
            if o < 1 || o > head + 1 {
                return Err(ApiError::bad_request(
                    "bad_replay",
                    format!(
                        "from_offset must be between 1 and {} (the log head + 1)",
                        head + 1
                    ),
                ));
            }
            o
        }
        (None, Some(t)) => {
            let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                ApiError::bad_request(
                    "bad_replay",
                    format!(
                        "from_time {t:?} is not an RFC 3339 time like 2026-11-23T10:00:00Z: {e}"
                    ),
                )
            })?;
            log::offset_at_time(&state.relay().db, at.timestamp_millis())
                .await?
                .unwrap_or(head + 1)
        }
        _ => {
            return Err(ApiError::bad_request(
                "bad_replay",
                "give exactly one of from_offset or from_time",
            ));
        }
    };
    let relay = state.relay();
    let mut map = relay.lock().await;
    find(&state, &id).await?;
    super::Service::stop_worker(&mut map, &id).await;
    store::set_cursor(&state.relay().db, &id, first - 1).await?;
    store::flush(
        &state.relay().db,
        &id,
        &store::Flush {
            lines: vec![NewLine::now(
                "replay",
                Some(first),
                None,
                format!("replay requested: sending again from offset {first}"),
            )],
            ..Default::default()
        },
    )
    .await?;
    relay.start_worker(&mut map, &id).await?;
    drop(map);
    Ok(Json(view(&state, find(&state, &id).await?).await?).into_response())
}

#[derive(Deserialize)]
struct LogQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

fn limit(l: Option<i64>) -> ApiResult<i64> {
    let l = l.unwrap_or(100);
    if !(1..=1000).contains(&l) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 1000",
        ));
    }
    Ok(l)
}

/// Newest first; pass `next_before` as `before` for the next page.
async fn delivery_log(
    State(state): State<Handle>,
    Path(id): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let limit = limit(q.limit)?;
    find(&state, &id).await?;
    let items = store::log_page(&state.relay().db, &id, q.before, limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|l| l.line_no))
        .flatten();
    Ok(Json(serde_json::json!({ "items": items, "next_before": next })).into_response())
}

#[derive(Deserialize)]
struct DeadQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

async fn dead_letters(
    State(state): State<Handle>,
    Path(id): Path<String>,
    q: Result<Query<DeadQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let limit = limit(q.limit)?;
    find(&state, &id).await?;
    let items = store::dead_letters(&state.relay().db, &id, q.after, limit).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// Sends one dead letter again, now, and answers with how it went; on 2xx
/// it leaves the list.
async fn resend(
    State(state): State<Handle>,
    Path((id, offset)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let relay = state.relay();
    let s = &relay.settings;
    let mut map = relay.lock().await;
    let d = find(&state, &id).await?;
    let listed = store::dead_letters(&state.relay().db, &id, offset - 1, 1).await?;
    if listed.first().is_none_or(|l| l.offset != offset) {
        return Err(ApiError::not_found(format!(
            "offset {offset} is not in the dead-letter list of {id:?}"
        )));
    }
    let entry = log::get(&state.relay().db, offset).await?.ok_or_else(|| {
        ApiError::conflict(
            "event_pruned",
            format!("the event at offset {offset} is no longer in the log"),
        )
    })?;
    let dest =
        destination::validate_one(d.input, s.timeout, s.allow_private_destinations).map_err(bad)?;
    // The worker is stopped meanwhile: it writes the same delivery log.
    super::Service::stop_worker(&mut map, &id).await;
    let sent = send::send(&relay.client, &dest, &entry).await;
    let stored = record_resend(&state, &id, offset, &sent).await;
    relay.start_worker(&mut map, &id).await?;
    stored?;
    match sent {
        Ok(()) => {
            Ok(Json(serde_json::json!({ "offset": offset, "delivered": true })).into_response())
        }
        Err(f) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "resend_failed",
            format!("the destination did not take it: {}", f.line()),
        )),
    }
}

async fn record_resend(
    state: &Handle,
    id: &str,
    offset: i64,
    sent: &Result<(), send::Failure>,
) -> ApiResult<()> {
    match sent {
        Ok(()) => {
            store::remove_dead_letter(
                &state.relay().db,
                id,
                offset,
                &NewLine::now(
                    "resent",
                    Some(offset),
                    None,
                    "HTTP: Post OK: dead letter re-sent by the operator",
                ),
            )
            .await?;
            metrics::delivered(id).increment(1);
        }
        Err(f) => {
            store::flush(
                &state.relay().db,
                id,
                &store::Flush {
                    lines: vec![NewLine::now("failed", Some(offset), None, f.line())],
                    ..Default::default()
                },
            )
            .await?;
        }
    }
    Ok(())
}
