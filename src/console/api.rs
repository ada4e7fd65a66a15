//! The operator API called in process: every change the console makes
//! goes through the same handler an integrator's `curl` would reach, so it
//! is validated, stored and applied the same way (a relay destination's
//! worker starts, saved SMS settings are read by the consumer) and refused
//! with the same message.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// What the API refused, with its own message.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Clone)]
pub struct Api(Router);

/// Bodies of the operator API are small JSON; more is not an answer.
const MAX_ANSWER: usize = 16 << 20;

impl Api {
    pub fn new(operator: Router) -> Api {
        Api(operator)
    }

    /// `method uri` with an optional JSON body; the JSON answer, or the
    /// API's error message.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        let refused = |status, message: String| Refused { status, message };
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = req
            .body(body)
            .map_err(|e| refused(StatusCode::BAD_REQUEST, e.to_string()))?;
        let res = match self.0.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(json)
        } else {
            let message = json["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| status.to_string());
            Err(refused(status, message))
        }
    }

    pub async fn get(&self, uri: &str) -> Result<Value, Refused> {
        self.call(Method::GET, uri, None).await
    }
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
