//! For `tillgate doctor`: whether the configured Telegram bot token is
//! accepted (`getMe`), so a revoked token is found before an alert is lost.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The bot's username when Telegram accepts the token; otherwise why not,
/// in words (never containing the token).
pub async fn check_token(api_base: &str, token: &SecretString) -> Result<String, String> {
    let url = format!(
        "{}/bot{}/getMe",
        api_base.trim_end_matches('/'),
        token.expose_secret()
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach Telegram: {}", e.without_url()))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.map_err(|e| {
        format!(
            "unreadable answer from Telegram (HTTP {status}): {}",
            e.without_url()
        )
    })?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v["result"]["username"].as_str().unwrap_or("?").to_string())
    } else {
        Err(format!(
            "Telegram refused the bot token (HTTP {status}): {}",
            v["description"].as_str().unwrap_or("no description")
        ))
    }
}
