//! A small Telegram Bot API client: sendMessage, sendPhoto, getUpdates.
//!
//! The token is part of every request URL, and reqwest puts the URL into its
//! error messages. Every reqwest error is therefore stripped of its URL
//! (`without_url`) before it becomes a [`TgError`], so nothing this module
//! returns can carry the token into a log line or the outbox.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TgError {
    /// 429: wait this long, then retry.
    #[error("rate limited by Telegram: retry after {0:?}")]
    RetryAfter(Duration),
    /// The group became a supergroup with this id.
    #[error("chat migrated to {0}")]
    Migrated(i64),
    /// Network error or 5xx: retry with backoff.
    #[error("Telegram unreachable or failing: {0}")]
    Transient(String),
    /// Any other refusal (bad HTML, chat not found, bot blocked...):
    /// retrying the same request would fail the same way.
    #[error("Telegram refused ({code}): {description}")]
    Rejected { code: u16, description: String },
}

#[derive(Debug, Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Params>,
}

#[derive(Debug, Deserialize)]
struct Params {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct SentMessage {
    pub message_id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub chat: Chat,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn net(e: reqwest::Error) -> TgError {
    TgError::Transient(e.without_url().to_string())
}

impl Client {
    pub fn new(base: &str, token: SecretString) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(70))
            .build()
            .unwrap_or_default();
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token.expose_secret())
    }

    async fn answer<T: for<'de> Deserialize<'de>>(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, TgError> {
        let resp = resp.map_err(net)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(net)?;
        let parsed: Result<Answer<T>, _> = serde_json::from_slice(&body);
        match parsed {
            Ok(a) if a.ok => a
                .result
                .ok_or_else(|| TgError::Transient("answer without result".into())),
            Ok(a) => {
                let code = a.error_code.unwrap_or(status.as_u16());
                let description = a.description.unwrap_or_default();
                let params = a.parameters;
                if let Some(id) = params.as_ref().and_then(|p| p.migrate_to_chat_id) {
                    return Err(TgError::Migrated(id));
                }
                if code == 429 {
                    let secs = params.and_then(|p| p.retry_after).unwrap_or(5);
                    return Err(TgError::RetryAfter(Duration::from_secs(secs)));
                }
                if code >= 500 {
                    return Err(TgError::Transient(format!("{code}: {description}")));
                }
                Err(TgError::Rejected { code, description })
            }
            Err(_) if status.is_server_error() || status.as_u16() == 429 => Err(
                TgError::Transient(format!("HTTP {status} with an unreadable body")),
            ),
            Err(e) => Err(TgError::Rejected {
                code: status.as_u16(),
                description: format!("unreadable answer: {e}"),
            }),
        }
    }

    pub async fn send_message(&self, chat: i64, html: &str) -> Result<i64, TgError> {
        let body = serde_json::json!({
            "chat_id": chat,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        let r = self
            .http
            .post(self.url("sendMessage"))
            .json(&body)
            .send()
            .await;
        self.answer::<SentMessage>(r).await.map(|m| m.message_id)
    }

    pub async fn send_photo(&self, chat: i64, png: Vec<u8>, caption: &str) -> Result<i64, TgError> {
        let part = reqwest::multipart::Part::bytes(png)
            .file_name("chart.png")
            .mime_str("image/png")
            .map_err(net)?;
        let form = reqwest::multipart::Form::new()
            .text("chat_id", chat.to_string())
            .text("caption", caption.to_string())
            .text("parse_mode", "HTML")
            .part("photo", part);
        let r = self
            .http
            .post(self.url("sendPhoto"))
            .multipart(form)
            .send()
            .await;
        self.answer::<SentMessage>(r).await.map(|m| m.message_id)
    }

    /// Long polling: waits up to `timeout` for updates after `offset`.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Update>, TgError> {
        let body = serde_json::json!({
            "offset": offset,
            "timeout": timeout.as_secs(),
            "allowed_updates": ["message"],
        });
        let r = self
            .http
            .post(self.url("getUpdates"))
            .timeout(timeout + Duration::from_secs(15))
            .json(&body)
            .send()
            .await;
        self.answer::<Vec<Update>>(r).await
    }
}
