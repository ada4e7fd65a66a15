//! The SMS provider's state and balance for the Overview, without making
//! the page wait on the provider: the answer is kept for [`TTL`] and
//! refreshed in the background; until the first answer the page says
//! "checking".

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::Api;

/// How old a balance the Overview may show.
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ProviderCache {
    last: Mutex<Option<(Instant, Value)>>,
    refreshing: std::sync::Arc<AtomicBool>,
}

impl ProviderCache {
    /// The last answer (any age; `None` before the first), starting a
    /// refresh in the background when it is older than [`TTL`].
    pub fn snapshot(self: &std::sync::Arc<Self>, api: &Api) -> Option<Value> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let due = last.as_ref().is_none_or(|(at, _)| at.elapsed() >= TTL);
        if due && !self.refreshing.swap(true, Ordering::AcqRel) {
            let (me, api) = (self.clone(), api.clone());
            tokio::spawn(async move {
                let v = fetch(&api).await;
                *me.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), v));
                me.refreshing.store(false, Ordering::Release);
            });
        }
        last.map(|(_, v)| v)
    }

    /// The settings behind the answer changed (a token saved): the next
    /// look asks again.
    pub fn forget(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The SMS switch and the provider's balance through the SMS feature's own
/// API (and so its provider client).
async fn fetch(api: &Api) -> Value {
    let enabled = api
        .get("/api/sms/settings")
        .await
        .map(|v| v["enabled"].clone())
        .unwrap_or(Value::Null);
    let balance = match api.get("/api/sms/balance").await {
        Ok(v) => {
            json!({"ok": true, "provider": v["provider"], "balance_kopecks": v["balance_kopecks"]})
        }
        Err(e) => json!({"ok": false, "error": e.message}),
    };
    json!({"enabled": enabled, "balance": balance, "checked_at": crate::core::clock::ms_to_rfc3339(crate::core::clock::now_ms())})
}
