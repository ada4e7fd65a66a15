//! HTTP wiring: the features' routes put together, the operator token in
//! front of the operator API, the edge's rules (`edge`) and a tracing span
//! around every request, and the
//! routes that belong to no feature (`/healthz`, `/readyz`, `/metrics`,
//! fallbacks).

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

/// What `/readyz` checks: storage, the schema, and whether the server is
/// stopping.
#[derive(Clone)]
struct Readiness {
    db: Db,
    shutdown: tokio_util::sync::CancellationToken,
    /// The highest migration this binary carries.
    schema: i64,
}

/// The whole router: each feature's routes, with their own state.
/// `shutdown` fires when the server begins to stop; `/readyz` then answers
/// 503 so a load balancer sends new requests elsewhere.
pub fn router(
    db: Db,
    api_token: Option<SecretString>,
    http: crate::core::config::HttpConfig,
    features: Vec<Routes>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Router {
    let readiness = Readiness {
        db: db.clone(),
        shutdown,
        schema: super::migrations()
            .iter()
            .map(|m| i64::from(m.version))
            .max()
            .unwrap_or(0),
    };
    let mut operator = Router::new();
    let mut public = Router::new();
    for r in features {
        operator = operator.merge(r.operator);
        public = public.merge(r.public);
    }
    let edge = super::edge::Edge {
        tokenless: api_token.is_none(),
        public_hosts: std::sync::Arc::new(http.public_hosts.clone()),
        ingest_paths: crate::ingest::INGEST_PATHS,
    };
    let console = crate::console::router(db.clone(), operator.clone(), std::sync::Arc::new(http));
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
        .merge(
            Router::new()
                .route("/readyz", get(readyz))
                .with_state(readiness),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            edge,
            super::edge::guard,
        ))
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

/// Ready for traffic: not stopping, storage answering within two seconds,
/// every migration this binary knows applied. A load balancer's health
/// check (docs/cluster.md) takes an instance out on anything but 200;
/// `/healthz` only says the process is alive.
async fn readyz(State(r): State<Readiness>) -> Response {
    if r.shutdown.is_cancelled() {
        return ApiError::unavailable("shutting down").into_response();
    }
    let schema = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(version), 0) FROM tillgate_schema")
            .fetch_one(&r.db.read),
    )
    .await;
    match schema {
        Err(_) => ApiError::unavailable("storage did not answer within 2 s").into_response(),
        Ok(Err(e)) => ApiError::unavailable(format!(
            "storage not reachable: {}",
            e.to_string().chars().take(200).collect::<String>()
        ))
        .into_response(),
        Ok(Ok(applied)) if applied < r.schema => ApiError::unavailable(format!(
            "migrations not applied: the database is at {applied}, this tillgate needs {}",
            r.schema
        ))
        .into_response(),
        Ok(Ok(applied)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "schema": applied})),
        )
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
/// on loopback (config refuses otherwise), so open access is local access;
/// the edge keeps web pages out of it (loopback names, cross-site marks),
/// and here a body must be of a type no HTML form can send.
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
    } else if let Some(refused) = super::edge::operator_body(&req) {
        return refused;
    }
    next.run(req).await
}
