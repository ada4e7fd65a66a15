//! SMS providers behind one trait: sms.ru and a generic HTTP aggregator.
//!
//! The delivery worker only needs to know, for each attempt, whether the
//! message was accepted, may be retried, must not be retried, or whether
//! sending must stop altogether (no money, bad credentials): that is
//! [`ProviderError`]'s three kinds. Each provider maps its own answers onto
//! them here, so the outbox logic is the same for every aggregator.
//!
//! Secrets and personal data: sms.ru takes its parameters by GET or POST.
//! tillgate POSTs them as a form body, so the `api_id`, the guest's number
//! and the text never sit in a URL that proxies and access logs keep. Every
//! transport error still goes through [`reqwest::Error::without_url`] before
//! it is turned into text, and no URL is ever formatted into a message.
//! Text from the provider's answer goes through [`hide_phones`] before it
//! becomes part of an error: it is stored, logged and shown to the owner.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::redact::hide_phones;
use crate::core::consumer::BoxFuture;
use crate::core::phone::PhoneE164;

/// What a provider said about one attempt that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Try again later (provider busy, server error, network).
    #[error("temporary provider error{}: {message}", code_text(*code))]
    Temporary { code: Option<i64>, message: String },
    /// This message can never be sent (bad number, stop list, no route).
    #[error("provider refused the message{}: {message}", code_text(*code))]
    Permanent { code: Option<i64>, message: String },
    /// Nothing can be sent until the owner acts (money, credentials).
    #[error("provider stopped sending{}: {message}", code_text(*code))]
    Stop { code: Option<i64>, message: String },
    #[error("this provider does not support {0}")]
    Unsupported(&'static str),
}

fn code_text(code: Option<i64>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}

impl ProviderError {
    pub fn code(&self) -> Option<i64> {
        match self {
            ProviderError::Temporary { code, .. }
            | ProviderError::Permanent { code, .. }
            | ProviderError::Stop { code, .. } => *code,
            ProviderError::Unsupported(_) => None,
        }
    }

    fn network(e: reqwest::Error) -> Self {
        ProviderError::Temporary {
            code: None,
            message: format!("network: {}", e.without_url()),
        }
    }
}

/// The provider's id of an accepted message, for delivery-status polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_id: Option<String>,
}

/// The account balance, in kopecks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Balance {
    pub kopecks: i64,
}

/// Where a sent message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Still on its way (queued, passed to the operator, sent).
    InFlight {
        code: i64,
    },
    Delivered,
    Undelivered {
        code: i64,
        message: String,
    },
}

pub trait Provider: Send + Sync {
    fn send<'a>(
        &'a self,
        to: &'a PhoneE164,
        text: &'a str,
        sender: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
    fn balance(&self) -> BoxFuture<'_, Result<Balance, ProviderError>>;
    fn status<'a>(&'a self, provider_id: &'a str)
    -> BoxFuture<'a, Result<Delivery, ProviderError>>;
    /// Most SMS parts the provider accepts for one message.
    fn max_parts(&self) -> usize;
}

/// sms.ru's codes sorted into the three kinds (the codes of its API
/// documentation: 100 accepted; 200..212 refusals such as 201 no money
/// or 202 bad number; 300..305 authorisation; 500 a server error).
/// `message` is sms.ru's `status_text`; phones in it are masked.
pub fn classify_smsru(code: i64, message: &str) -> ProviderError {
    let code_opt = Some(code);
    let message = hide_phones(message);
    match code {
        // 206 daily limit and 230..233 anti-flood limits pass with time.
        220 | 500 | 206 | 230..=233 => ProviderError::Temporary {
            code: code_opt,
            message,
        },
        // Money, credentials and an unapproved sender name hit every message.
        200 | 201 | 204 | 300..=305 => ProviderError::Stop {
            code: code_opt,
            message,
        },
        _ => ProviderError::Permanent {
            code: code_opt,
            message,
        },
    }
}

/// Parses a decimal JSON number (`123.45`) into kopecks without floats.
fn kopecks_of(v: &Value) -> Option<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let (neg, t) = match text.strip_prefix('-') {
        Some(t) => (true, t.to_string()),
        None => (false, text),
    };
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut frac2: String = frac.chars().take(2).collect();
    while frac2.len() < 2 {
        frac2.push('0');
    }
    let k = int.parse::<i64>().ok()? * 100 + frac2.parse::<i64>().ok()?;
    Some(if neg { -k } else { k })
}

pub struct SmsRu {
    pub base_url: String,
    pub api_id: SecretString,
    pub test: bool,
    pub max_parts: usize,
    pub client: reqwest::Client,
}

impl SmsRu {
    async fn call(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, ProviderError> {
        let url = format!("{}/{}", self.base_url.trim_end_matches('/'), path);
        let mut form: Vec<(&str, &str)> =
            vec![("api_id", self.api_id.expose_secret()), ("json", "1")];
        form.extend_from_slice(params);
        let resp = self
            .client
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(ProviderError::network)?;
        let status = resp.status();
        let body = resp.text().await.map_err(ProviderError::network)?;
        if status.is_server_error() {
            return Err(ProviderError::Temporary {
                code: None,
                message: format!("HTTP {status}"),
            });
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| ProviderError::Temporary {
            code: None,
            message: format!("HTTP {status}: answer is not sms.ru JSON"),
        })?;
        if v["status"] != "OK" {
            let code = v["status_code"].as_i64().unwrap_or(500);
            let text = v["status_text"].as_str().unwrap_or("error");
            return Err(classify_smsru(code, text));
        }
        Ok(v)
    }
}

impl Provider for SmsRu {
    fn send<'a>(
        &'a self,
        to: &'a PhoneE164,
        text: &'a str,
        sender: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let mut params = vec![("to", to.digits()), ("msg", text)];
            // Seed 003: an empty sender name is not sent at all, so the
            // account's default sender is used.
            if let Some(s) = sender.filter(|s| !s.trim().is_empty()) {
                params.push(("from", s));
            }
            if self.test {
                params.push(("test", "1"));
            }
            let v = self.call("sms/send", &params).await?;
            let one = &v["sms"][to.digits()];
            if one.is_null() {
                return Err(ProviderError::Temporary {
                    code: None,
                    message: "answer has no entry for the number".into(),
                });
            }
            if one["status"] == "OK" {
                return Ok(Accepted {
                    provider_id: one["sms_id"].as_str().map(str::to_string),
                });
            }
            let code = one["status_code"].as_i64().unwrap_or(500);
            let text = one["status_text"].as_str().unwrap_or("error");
            Err(classify_smsru(code, text))
        })
    }

    fn balance(&self) -> BoxFuture<'_, Result<Balance, ProviderError>> {
        Box::pin(async move {
            let v = self.call("my/balance", &[]).await?;
            let kopecks = kopecks_of(&v["balance"]).ok_or(ProviderError::Temporary {
                code: None,
                message: "balance missing from the answer".into(),
            })?;
            Ok(Balance { kopecks })
        })
    }

    fn status<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, ProviderError>> {
        Box::pin(async move {
            let v = self.call("sms/status", &[("sms_id", provider_id)]).await?;
            let one = &v["sms"][provider_id];
            let code = one["status_code"].as_i64().unwrap_or(-1);
            let text = hide_phones(one["status_text"].as_str().unwrap_or(""));
            Ok(match code {
                103 => Delivery::Delivered,
                // sms.ru's delivery-failure codes (104..108, 150); anything else (queued,
                // passing to the operator, an id sms.ru does not know yet)
                // is asked about again at the next poll.
                104..=108 | 150 => Delivery::Undelivered {
                    code,
                    message: text,
                },
                _ => Delivery::InFlight { code },
            })
        })
    }

    fn max_parts(&self) -> usize {
        self.max_parts
    }
}

/// Any aggregator with an HTTP API: the request is built from templates.
///
/// `url` and `body` are minijinja templates with `to` (E.164 digits),
/// `to_e164`, `text` and `sender`; use `{{ text|tojson }}` inside JSON.
/// 2xx is accepted; 401/403 stop sending; 408, 429, 5xx and network errors
/// are retried; any other status is a permanent refusal. Balance and
/// delivery status are not part of this generic contract.
pub struct GenericHttp {
    pub url: String,
    pub body: String,
    pub content_type: String,
    pub authorization: Option<SecretString>,
    /// JSON pointer (`/id`) to the message id in the answer, if any.
    pub id_pointer: Option<String>,
    pub max_parts: usize,
    pub client: reqwest::Client,
}

impl GenericHttp {
    /// Checks the templates compile, for config validation.
    pub fn check_templates(url: &str, body: &str) -> Result<(), String> {
        let env = minijinja::Environment::new();
        env.template_from_str(url)
            .map_err(|e| format!("url template: {e}"))?;
        env.template_from_str(body)
            .map_err(|e| format!("body template: {e}"))?;
        Ok(())
    }

    fn render(&self, tpl: &str, ctx: &BTreeMap<&str, &str>) -> Result<String, ProviderError> {
        let env = minijinja::Environment::new();
        env.render_str(tpl, ctx)
            .map_err(|e| ProviderError::Permanent {
                code: None,
                message: format!("template: {e}"),
            })
    }
}

impl Provider for GenericHttp {
    fn send<'a>(
        &'a self,
        to: &'a PhoneE164,
        text: &'a str,
        sender: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let ctx = BTreeMap::from([
                ("to", to.digits()),
                ("to_e164", to.as_str()),
                ("text", text),
                ("sender", sender.unwrap_or("")),
            ]);
            let url = self.render(&self.url, &ctx)?;
            let body = self.render(&self.body, &ctx)?;
            let mut req = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, &self.content_type)
                .body(body);
            if let Some(a) = &self.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a.expose_secret());
            }
            let resp = req.send().await.map_err(ProviderError::network)?;
            let status = resp.status();
            let answer = resp.text().await.map_err(ProviderError::network)?;
            let code = Some(i64::from(status.as_u16()));
            // Masked before it is cut to 200 characters, so a number cut
            // in two is still recognised as one.
            let head: String = answer.chars().take(400).collect();
            let snippet: String = hide_phones(&head).chars().take(200).collect();
            if status.is_success() {
                let provider_id = self.id_pointer.as_deref().and_then(|p| {
                    let v: Value = serde_json::from_str(&answer).ok()?;
                    match v.pointer(p)? {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }
                });
                return Ok(Accepted { provider_id });
            }
            let message = format!("HTTP {status}: {snippet}");
            Err(match status.as_u16() {
                401 | 403 => ProviderError::Stop { code, message },
                408 | 429 | 500..=599 => ProviderError::Temporary { code, message },
                _ => ProviderError::Permanent { code, message },
            })
        })
    }

    fn balance(&self) -> BoxFuture<'_, Result<Balance, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unsupported("balance checks")) })
    }

    fn status<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<Delivery, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unsupported("delivery status")) })
    }

    fn max_parts(&self) -> usize {
        self.max_parts
    }
}

/// An HTTP client for providers: bounded time, so a hung aggregator turns
/// into a retry instead of a stuck worker.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smsru_codes_sort_into_kinds() {
        for c in [220, 500, 230] {
            assert!(
                matches!(classify_smsru(c, ""), ProviderError::Temporary { .. }),
                "{c}"
            );
        }
        for c in [202, 207, 209, 203, 205, 212] {
            assert!(
                matches!(classify_smsru(c, ""), ProviderError::Permanent { .. }),
                "{c}"
            );
        }
        for c in [200, 201, 204, 300, 303, 305] {
            assert!(
                matches!(classify_smsru(c, ""), ProviderError::Stop { .. }),
                "{c}"
            );
        }
    }

    #[test]
    fn balance_parses_without_floats() {
        assert_eq!(kopecks_of(&serde_json::json!(123.45)), Some(12345));
        assert_eq!(kopecks_of(&serde_json::json!(0.1)), Some(10));
        assert_eq!(kopecks_of(&serde_json::json!(7)), Some(700));
        assert_eq!(kopecks_of(&serde_json::json!("-2.5")), Some(-250));
        assert_eq!(kopecks_of(&serde_json::json!("abc")), None);
        assert_eq!(kopecks_of(&serde_json::json!(null)), None);
    }
}
