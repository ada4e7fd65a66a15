//! One delivery attempt: the HTTP request for one event (body, Standard
//! Webhooks headers and signature, the destination's own headers), and
//! what the receiver's answer means ([`Failure`]).
//!
//! The worker ([`super::worker`]) decides what to send and what to do about
//! a failure; the operator's "resend" of a dead letter uses [`send`] too.
//! Every request goes through the one guarded [`client`].

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;

use super::destination::{Destination, Format};
use super::guard::GuardedResolver;
use super::sign;
use crate::core::backoff::parse_retry_after;
use crate::core::clock::now_ms;
use crate::core::log::LogEntry;

/// How one send went wrong.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Timeout, connection error, 5xx, 408, 429, 3xx: try again later.
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        line: String,
    },
    /// Another 4xx: the receiver refuses this body.
    Refused { status: u16, line: String },
    /// 410: the receiver says the endpoint is gone.
    Gone { line: String },
}

impl Failure {
    pub fn line(&self) -> &str {
        match self {
            Failure::Retryable { line, .. }
            | Failure::Refused { line, .. }
            | Failure::Gone { line } => line,
        }
    }
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<i64> {
        match self {
            Failure::Retryable { status, .. } => status.map(i64::from),
            Failure::Refused { status, .. } => Some(i64::from(*status)),
            Failure::Gone { .. } => Some(410),
        }
    }
}

/// The webhook-id of the event at `offset`: the same on every send, so it is
/// the receiver's dedupe key.
pub fn webhook_id(offset: i64) -> String {
    format!("tg-{offset}")
}

/// The body sent for `e` in `format`.
pub fn body_for(e: &LogEntry, format: Format) -> Vec<u8> {
    match format {
        Format::Raw => e.body.to_vec(),
        Format::Json => {
            let event = e
                .event()
                .ok()
                .and_then(|ev| serde_json::to_value(&*ev).ok());
            let v = serde_json::json!({
                "offset": e.offset,
                "received_at": crate::core::clock::ms_to_rfc3339(e.received_at),
                "guid": e.stream_guid,
                "seqnumber": e.seqnumber,
                "situation": e.situation,
                "restcode": e.rest_code,
                "event_time": e.event_time,
                "shift_num": e.shift_num,
                "order_guid": e.order_guid,
                "event": event,
            });
            serde_json::to_vec(&v).unwrap_or_default()
        }
    }
}

/// The delivery client could not be built with its guard. Relay then does
/// not start: a client without the guarded resolver and the no-redirect
/// policy would post wherever a name or a redirect points, inside the
/// network included.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot build the relay delivery client with its SSRF guard (guarded resolver, no redirects): {0}"
)]
pub struct ClientError(#[source] pub reqwest::Error);

/// The shared delivery client: keep-alive pool, no redirects (a redirect to
/// an internal address would bypass the SSRF guard; Standard Webhooks treats
/// 3xx as a failure anyway), and the guarded resolver. Fails rather than
/// fall back to a client without them.
pub fn client(allow_private: bool) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .dns_resolver(GuardedResolver { allow_private })
        .user_agent(concat!("tillgate-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ClientError)
}

/// Sends one event once. Lines are written in the r_keeper driver's words
/// (`HTTP: Post error: ...`) so people who read its logs recognise them.
pub async fn send(
    client: &reqwest::Client,
    dest: &Destination,
    e: &LogEntry,
) -> Result<(), Failure> {
    let body = body_for(e, dest.format);
    let id = webhook_id(e.offset);
    let ts = now_ms() / 1000;
    let mut req = client
        .post(dest.url.clone())
        .timeout(dest.timeout)
        .header(
            CONTENT_TYPE,
            match dest.format {
                Format::Raw => "application/xml",
                Format::Json => "application/json",
            },
        )
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = &dest.secret {
        req = req.header("webhook-signature", sign::signature(key, &id, ts, &body));
    }
    for (name, value) in &dest.headers {
        if let Ok(v) = HeaderValue::from_str(value.expose_secret()) {
            req = req.header(name.clone(), v);
        }
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(err) => {
            let line = if err.is_timeout() {
                format!(
                    "HTTP: Post error: no answer within {} ms",
                    dest.timeout.as_millis()
                )
            } else {
                format!("HTTP: Post error: {}", error_chain(err.without_url()))
            };
            return Err(Failure::Retryable {
                status: None,
                retry_after: None,
                line,
            });
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // Read the body to the end so the connection goes back to the pool.
    let text = match tokio::time::timeout(dest.timeout, resp.bytes()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned(),
        _ => String::new(),
    };
    if status.is_success() {
        return Ok(());
    }
    let mut line = format!("HTTP: Post error: {status}");
    let text = text.trim();
    if !text.is_empty() {
        line.push_str(": ");
        line.push_str(&text.replace(['\r', '\n'], " "));
    }
    let code = status.as_u16();
    Err(match status {
        StatusCode::GONE => Failure::Gone { line },
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Failure::Retryable {
            status: Some(code),
            retry_after,
            line,
        },
        s if s.is_client_error() => Failure::Refused { status: code, line },
        _ => Failure::Retryable {
            status: Some(code),
            retry_after,
            line,
        },
    })
}

fn error_chain(e: reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client is built with its guard: a name that resolves only to
    /// loopback is refused at connect time, before any request leaves.
    #[tokio::test]
    async fn client_is_built_with_the_guard() {
        let guarded = client(false).expect("the guarded client builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let e = guarded
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = error_chain(e);
        assert!(chain.contains("allow_private_destinations"), "{chain}");
        // With the switch on, the same name is reachable.
        let open = client(true).expect("the client builds");
        let accept = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(2), listener.accept())
                .await
                .is_ok_and(|r| r.is_ok())
        });
        let _ = open
            .get(format!("http://localhost:{port}/"))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(accept.await.unwrap(), "the allowed client connected");
    }
}
