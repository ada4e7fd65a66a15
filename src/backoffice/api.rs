//! The back office's HTTP side: the registers' journal endpoint
//! (`POST /api/backoffice/v1/receipts`, the loyalty API's register
//! credentials) and the operator's stock, resync and report endpoints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::BackofficeState;
use super::commit::JournalError;
use super::import::{self, ImportError};
use super::journal::Stored;
use super::receipt::{Receipt, TooLong};
use super::reports::{self, By, Filter};
use super::resync::{self, Poster, ResyncError, ResyncRequest};
use super::stock;
use crate::core::api_error::{ApiError, ApiResult};

pub fn register_routes() -> axum::Router<BackofficeState> {
    axum::Router::new().route("/api/backoffice/v1/receipts", post(receipt))
}

pub fn operator_routes() -> axum::Router<BackofficeState> {
    axum::Router::new()
        .route("/api/backoffice/stock", get(stock_now))
        .route("/api/backoffice/stock/movements", get(movements))
        .route("/api/backoffice/stock/imports", post(import_stock))
        .route("/api/backoffice/resyncs", post(run_resync))
        .route("/api/backoffice/resyncs/{id}", get(get_resync))
        .route("/api/backoffice/reports/sales", get(report))
        .route("/api/backoffice/receipts/{id}", get(get_receipt))
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_receipt", msg)
}

/// A field over its length limit: 400, not 422 like a receipt that does
/// not add up, because no value of that length is ever right.
impl From<TooLong> for ApiError {
    fn from(e: TooLong) -> Self {
        ApiError::bad_request("too_long", e.to_string())
    }
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        let msg = e.to_string();
        match e {
            JournalError::UnknownCard(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_card", msg)
            }
            JournalError::NotStored(_) | JournalError::NoLoyalty => ApiError::unavailable(msg),
            JournalError::Loyalty(_) => ApiError::internal(msg),
        }
    }
}

async fn receipt(
    State(s): State<BackofficeState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (register, password) = crate::loyalty::auth::parse_basic(auth)?;
    let h = s
        .journal
        .loyalty()
        .ok_or_else(|| ApiError::unavailable("register credentials need loyalty"))?;
    let from = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let ctx = h.verify_register(&s.db, &register, &password, from).await?;
    // serde names the missing or mistyped field (`lines[2].quantity`).
    let r: Receipt = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    r.lengths()?;
    let r = r.check().map_err(|e| invalid(e.to_string()))?;
    if r.register != register {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "register_mismatch",
            format!(
                "register: the body says {:?} but the credentials are for {register:?}",
                r.register
            ),
        ));
    }
    // A register sells in its own store only: a receipt naming another
    // would move another store's stock and figures.
    if r.store != ctx.store {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "store_mismatch",
            format!(
                "store: the body says {:?} but register {register:?} belongs to store {:?}",
                r.store, ctx.store
            ),
        ));
    }
    let id = r.receipt_id.clone();
    match s.journal.take(r).await? {
        Stored::New { answer, .. } | Stored::Repeat(answer) => Ok(Json(answer)),
        Stored::Conflict => Err(ApiError::conflict(
            "receipt_conflict",
            format!("receipt_id: {id:?} was journaled with a different body"),
        )),
        Stored::Refused(i) => Err(invalid(i.to_string())),
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    Ok(q?.0)
}

#[derive(Deserialize)]
struct StockQuery {
    store: Option<String>,
    goods: Option<String>,
}

async fn stock_now(
    State(s): State<BackofficeState>,
    q: Result<Query<StockQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let rows = stock::current(&s.db, q.store.as_deref(), q.goods.as_deref()).await?;
    let negative = rows.iter().filter(|r| r.quantity < 0).count();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let neg = r.quantity < 0;
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["negative"] = json!(neg);
            v
        })
        .collect();
    Ok(Json(json!({"stock": rows, "negative": negative})))
}

#[derive(Deserialize)]
struct GoodsQuery {
    store: String,
    goods: String,
}

async fn movements(
    State(s): State<BackofficeState>,
    q: Result<Query<GoodsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let m = stock::movements(&s.db, &q.store, &q.goods).await?;
    Ok(Json(
        json!({"store": q.store, "goods": q.goods, "movements": m}),
    ))
}

#[derive(Deserialize)]
struct ImportQuery {
    document: String,
    #[serde(default)]
    format: Option<String>,
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        let msg = e.to_string();
        match e {
            ImportError::Bad { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_document", msg)
            }
            ImportError::TooLong(e) => e.into(),
            ImportError::Repeat(_) => ApiError::conflict("document_imported", msg),
            ImportError::Db(e) => ApiError::internal(e),
        }
    }
}

async fn import_stock(
    State(s): State<BackofficeState>,
    headers: HeaderMap,
    q: Result<Query<ImportQuery>, QueryRejection>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let format = q.format.unwrap_or_else(|| {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if ct.contains("csv") { "csv" } else { "json" }.to_string()
    });
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_document",
            "the body is not UTF-8",
        )
    })?;
    let rows = import::parse(&format, text)?;
    Ok(Json(
        import::import(&s.db, &q.document, &rows, s.clock.now_ms()).await?,
    ))
}

impl From<ResyncError> for ApiError {
    fn from(e: ResyncError) -> Self {
        let msg = e.to_string();
        match e {
            ResyncError::CardsOn(_) => ApiError::conflict("cards_enabled", msg),
            ResyncError::Invalid(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_resync", msg)
            }
            ResyncError::Loyalty(_) => ApiError::internal(msg),
            ResyncError::Db(e) => ApiError::internal(e),
        }
    }
}

async fn run_resync(
    State(s): State<BackofficeState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: ResyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResyncRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_resync",
                e.to_string(),
            )
        })?
    };
    let poster = match s.journal.loyalty() {
        Some(h) => Poster::Server(h.clone()),
        None => Poster::Tables,
    };
    let _one_at_a_time = s.resync_lock.lock().await;
    let doc = resync::run(&s.db, &s.loyalty, &poster, &req, s.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

async fn get_resync(
    State(s): State<BackofficeState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    resync::get(&s.db, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no resync {id:?}")))
}

#[derive(Deserialize)]
struct ReportQuery {
    by: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(flatten)]
    filter: Filter,
}

async fn report(
    State(s): State<BackofficeState>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let by = By::parse(&q.by).ok_or_else(|| {
        ApiError::bad_request(
            "bad_query",
            format!(
                "by: {:?} is not store, day, hour, goods, cashier or card",
                q.by
            ),
        )
    })?;
    let filter = q
        .filter
        .checked()
        .map_err(|e| ApiError::bad_request("bad_query", e))?;
    let r = reports::report(&s.db, by, &filter).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(r).into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::to_csv(&r),
        )
            .into_response()),
        Some(f) => Err(ApiError::bad_request(
            "bad_query",
            format!("format: {f:?} is not json or csv"),
        )),
    }
}

async fn get_receipt(
    State(s): State<BackofficeState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    super::journal::get(&s.db, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no receipt {id:?}")))
}
