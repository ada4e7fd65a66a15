//! Ingest: where cash servers' HTTP Order Notify POSTs land.
//!
//! A body is read with `rk7` at the edge. A good event goes to the log
//! writer and is answered 200 only after its commit; a body that does not
//! read as an event is kept verbatim in the quarantine and also answered 200
//! (by default), because the driver's queue is strictly FIFO: a 4xx would
//! make it resend the same bad body forever and hold back every later event.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::core::api_error::{ApiError, ApiResult, secret_eq};
use crate::core::clock::{ms_to_rfc3339, now_ms};
use crate::core::config::IngestConfig;
use crate::core::feature::{BoxFuture, Feature, Routes, StartCtx};
use crate::core::log::{self, AppendOutcome, LogWriter, NewEvent, NewQuarantine};
use crate::core::store::Db;

/// The paths r_keeper users already point cash servers at.
pub const INGEST_PATHS: &[&str] = &["/rkevent", "/api/v1/events", "/api/v4/kds/events", "/"];

/// The ingest feature: the cash servers' POST paths and the operator API
/// over the log (events, gaps, quarantine, consumers).
pub struct Ingest;

/// What ingest's handlers need.
#[derive(Clone)]
pub struct IngestState {
    pub db: Db,
    pub log: LogWriter,
    pub ingest: Arc<IngestConfig>,
}

impl Feature for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let state = IngestState {
                db: ctx.db.clone(),
                log: ctx.log.clone(),
                ingest: Arc::new(ctx.config.ingest.clone()),
            };
            Ok(Routes {
                operator: api_routes().with_state(state.clone()),
                public: routes(state.ingest.max_body_bytes).with_state(state),
            })
        })
    }
}

pub fn routes(max_body_bytes: usize) -> Router<IngestState> {
    let mut r = Router::new();
    for p in INGEST_PATHS {
        r = r.route(p, post(receive));
    }
    r.layer(DefaultBodyLimit::max(max_body_bytes))
}

pub fn api_routes() -> Router<IngestState> {
    Router::new()
        .route("/api/events", get(list_events))
        .route("/api/events/{offset}", get(get_event))
        .route("/api/events/{offset}/raw", get(get_event_raw))
        .route("/api/gaps", get(list_gaps))
        .route("/api/key-reuses", get(list_key_reuses))
        .route("/api/consumers", get(list_consumers))
        .route("/api/quarantine", get(list_quarantine))
        .route("/api/quarantine/{id}/raw", get(get_quarantine_raw))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// Why a body was not accepted as an event.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("empty body")]
    Empty,
    #[error("{0}")]
    Read(#[from] rk7::ReadError),
    #[error("the event has no {0} attribute, so it cannot be ordered or de-duplicated")]
    Missing(&'static str),
    #[error("seqnumber {0} is out of range")]
    BadSeq(u64),
}

/// Turns a body into a log record, or says why it can't.
pub fn to_new_event(body: Bytes, received_at: i64) -> Result<NewEvent, Unreadable> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Unreadable::Empty);
    }
    let ev = rk7::read(&body)?;
    let guid = ev
        .guid
        .as_ref()
        .ok_or(Unreadable::Missing("guid"))?
        .canonical();
    let seq = ev.seqnumber.ok_or(Unreadable::Missing("seqnumber"))?;
    let seq = i64::try_from(seq).map_err(|_| Unreadable::BadSeq(seq))?;
    Ok(NewEvent::from_read(received_at, guid, seq, ev, body))
}

#[derive(Serialize)]
struct Ack {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantine_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

async fn receive(
    State(state): State<IngestState>,
    uri: Uri,
    Query(q): Query<KeyQuery>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Body,
) -> Response {
    // The key first: a stranger's body is not even read, let alone kept.
    if let Some(key) = &state.ingest.key
        && !q.key.as_deref().is_some_and(|k| secret_eq(k, key))
    {
        return ApiError::unauthorized("this ingest path needs ?key=<ingest key>").into_response();
    }
    let body = match axum::body::to_bytes(body, state.ingest.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let (status, code) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            } else {
                (StatusCode::BAD_REQUEST, "bad_body")
            };
            return ApiError::new(
                status,
                code,
                format!(
                    "the body could not be read: {} (limit {} bytes)",
                    if too_large {
                        "too large"
                    } else {
                        "the connection failed"
                    },
                    state.ingest.max_body_bytes
                ),
            )
            .into_response();
        }
    };
    let received_at = now_ms();
    let outcome = match to_new_event(body.clone(), received_at) {
        Ok(ev) => state.log.append(ev).await,
        Err(why) => {
            let reason = why.to_string();
            tracing::warn!(path = %uri.path(), %reason, size = body.len(), "unreadable event body");
            if state.ingest.reject_bad_input {
                return ApiError::bad_request("unreadable_event", reason).into_response();
            }
            state
                .log
                .quarantine(NewQuarantine {
                    received_at,
                    path: uri.path().to_string(),
                    reason,
                    remote: Some(remote.ip().to_string()),
                    body,
                })
                .await
        }
    };
    match outcome {
        Ok(AppendOutcome::Stored { offset }) => axum::Json(Ack {
            status: "stored",
            offset: Some(offset),
            quarantine_id: None,
            reason: None,
        })
        .into_response(),
        Ok(AppendOutcome::Duplicate { offset }) => axum::Json(Ack {
            status: "duplicate",
            offset: Some(offset),
            quarantine_id: None,
            reason: None,
        })
        .into_response(),
        Ok(AppendOutcome::Quarantined { id }) => axum::Json(Ack {
            status: "quarantined",
            offset: None,
            quarantine_id: Some(id),
            reason: None,
        })
        .into_response(),
        // Not committed: a 503 makes the sender keep the event.
        Err(e) => ApiError::unavailable(format!("event not stored: {e}")).into_response(),
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

impl Page {
    fn limit(&self) -> ApiResult<i64> {
        let l = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&l) {
            return Err(ApiError::bad_request(
                "bad_query",
                "limit must be between 1 and 1000",
            ));
        }
        if self.after < 0 {
            return Err(ApiError::bad_request("bad_query", "after must be >= 0"));
        }
        Ok(l)
    }
}

#[derive(Serialize)]
pub struct EventItem {
    pub offset: i64,
    pub received_at: String,
    pub guid: String,
    pub seqnumber: i64,
    pub situation: i64,
    pub situation_name: String,
    pub restcode: Option<String>,
    pub event_time: Option<String>,
    pub shift_num: Option<i64>,
    pub order_guid: Option<String>,
}

impl From<&log::LogEntry> for EventItem {
    fn from(e: &log::LogEntry) -> Self {
        EventItem {
            offset: e.offset,
            received_at: ms_to_rfc3339(e.received_at),
            guid: e.stream_guid.clone(),
            seqnumber: e.seqnumber,
            situation: e.situation,
            situation_name: format!("{:?}", rk7::Situation::from_code(e.situation)),
            restcode: e.rest_code.clone(),
            event_time: e.event_time.clone(),
            shift_num: e.shift_num,
            order_guid: e.order_guid.clone(),
        }
    }
}

async fn list_events(
    State(state): State<IngestState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let limit = q.limit()?;
    let entries = log::read_after(&state.db, q.after, limit, false).await?;
    let head = log::head(&state.db).await?;
    let items: Vec<EventItem> = entries.iter().map(EventItem::from).collect();
    let next = entries.last().map(|e| e.offset);
    Ok(axum::Json(serde_json::json!({
        "items": items,
        "next_after": next,
        "head": head,
    }))
    .into_response())
}

async fn get_event(
    State(state): State<IngestState>,
    Path(offset): Path<i64>,
) -> ApiResult<Response> {
    let e = log::get(&state.db, offset)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event at offset {offset}")))?;
    let parsed = rk7::read(&e.body).map_err(ApiError::internal)?;
    Ok(axum::Json(serde_json::json!({
        "meta": EventItem::from(&e),
        "event": parsed,
    }))
    .into_response())
}

async fn get_event_raw(
    State(state): State<IngestState>,
    Path(offset): Path<i64>,
) -> ApiResult<Response> {
    let e = log::get(&state.db, offset)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event at offset {offset}")))?;
    Ok(raw_download(e.body, &format!("event-{offset}.xml")))
}

async fn list_gaps(
    State(state): State<IngestState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let items = log::gaps(&state.db, q.after, q.limit()?).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

/// Events stored under a key an earlier event had with other bytes, paged
/// by offset (`after` is an offset).
async fn list_key_reuses(
    State(state): State<IngestState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let items = log::key_reuses(&state.db, q.after, q.limit()?).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn list_quarantine(
    State(state): State<IngestState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let items = log::quarantine_list(&state.db, q.after, q.limit()?).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn get_quarantine_raw(
    State(state): State<IngestState>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let body = log::quarantine_body(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no quarantined body {id}")))?;
    Ok(raw_download(body, &format!("quarantine-{id}.bin")))
}

/// A stored body, byte-exact, as a download no browser renders: whatever a
/// cash server (or someone posing as one) wrote in it, it is never a page
/// on this server's origin. The edge adds `nosniff` and a sandboxing CSP.
fn raw_download(body: impl Into<Body>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// Every consumer's cursor and how far behind the log head it is.
async fn list_consumers(State(state): State<IngestState>) -> ApiResult<Response> {
    let head = log::head(&state.db).await?;
    let items: Vec<serde_json::Value> = log::cursors(&state.db)
        .await?
        .into_iter()
        .map(|(name, position)| {
            serde_json::json!({"name": name, "position": position, "lag_events": (head - position).max(0)})
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "head": head, "items": items })).into_response())
}
