//! HTTP wiring: the features' routes put together, the operator token in
//! front of the operator API, a tracing span around every request, and the
//! routes that belong to no feature (`/healthz`, `/metrics`, fallbacks).

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use tracing::Instrument;

use crate::core::api_error::{ApiError, secret_eq};
use crate::core::feature::Routes;
use crate::core::store::Db;

/// The whole router: each feature's routes, with their own state.
pub fn router(db: Db, api_token: Option<SecretString>, features: Vec<Routes>) -> Router {
    let mut operator = Router::new();
    let mut public = Router::new();
    for r in features {
        operator = operator.merge(r.operator);
        public = public.merge(r.public);
    }
    let console = crate::console::router(db.clone(), operator.clone());
    let operator = operator.layer(axum::middleware::from_fn_with_state(
        api_token,
        require_token,
    ));
    Router::new()
        .merge(public)
        .merge(operator)
        .merge(console)
        .merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/metrics", get(metrics))
                .with_state(db),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(trace_request))
}

/// One span per request with method, path, status and latency; the
/// request's own events are logged inside it. The span is at `debug`: at the
/// default level it costs next to nothing (an `info` span, formatted for
/// every request, took a quarter off the server's trivial-request ceiling),
/// and a failed request (5xx) is logged at `warn` with the same fields
/// whatever the level.
async fn trace_request(req: Request, next: Next) -> Response {
    let span = tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty
    );
    // Cheap clones (a standard method is a tag, a URI shares its bytes),
    // kept for the warning of a failed request.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    if status >= 500 {
        tracing::warn!(%method, path = %uri.path(), status, latency_ms, "request failed");
    } else {
        span.in_scope(|| tracing::debug!(status, latency_ms, "request"));
    }
    response
}

async fn healthz(State(db): State<Db>) -> Response {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&db.read)
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

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::core::telemetry::metrics_handle().render(),
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
async fn require_token(
    State(token): State<Option<SecretString>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !secret_eq(given, token) {
            return ApiError::unauthorized(
                "the operator API needs `Authorization: Bearer <api_token>`",
            )
            .into_response();
        }
    }
    next.run(req).await
}
