//! HTTP wiring: the router, shared state and operator-API authentication.
//! Each feature owns its routes; this module only puts them together.

pub mod error;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::store::Db;
use crate::store::log::LogWriter;
pub use error::{ApiError, ApiResult};

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub log: LogWriter,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub relay: crate::relay::Handle,
    pub alerts: crate::alerts::Handle,
    pub sms: crate::sms::Handle,
    pub loyalty: crate::loyalty::Handle,
}

pub fn router(state: AppState) -> Router {
    let operator_api = Router::new()
        .merge(crate::ingest::api_routes())
        .merge(crate::orders::api_routes())
        .merge(crate::relay::api_routes())
        .merge(crate::alerts::api_routes())
        .merge(crate::sms::api_routes())
        .merge(crate::loyalty::api_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .merge(crate::ingest::routes(&state.config))
        .merge(operator_api)
        .merge(crate::relay::public_routes())
        .merge(crate::alerts::public_routes())
        .merge(crate::sms::public_routes())
        .merge(crate::loyalty::public_routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.db.read)
        .await
    {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response(),
        Err(e) => ApiError::unavailable(format!(
            "storage not reachable: {}",
            e.to_string().chars().take(200).collect::<String>()
        ))
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not accept that method",
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Guards the operator API. Without a configured token the server only runs
/// on loopback (config refuses otherwise), so open access is local access.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.config.api_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = given
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into();
        if !ok {
            return ApiError::unauthorized(
                "the operator API needs `Authorization: Bearer <api_token>`",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Constant-time comparison for shared keys.
pub fn secret_eq(given: &str, expected: &secrecy::SecretString) -> bool {
    given
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}
