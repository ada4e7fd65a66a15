//! Subscription management: list, add, remove, and `repoint`, the fix for a
//! cash server that sends to a stale address. Every change reports the
//! state it left, step by step, so a failure halfway is never a mystery:
//! `repoint` adds tillgate first (events keep a destination throughout),
//! then removes the others one by one, lists again, and waits for an event.

use std::time::Duration;

use rk7::xmlapi::Client;
use serde::Serialize;

use super::connect::{self, Failure};
use super::settings::CashServer;
use crate::core::clock::now_ms;
use crate::core::store::Db;

/// What `repoint` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Repoint {
    /// The subscriptions before.
    pub before: Vec<String>,
    /// tillgate's URL, when it had to be added.
    pub added: Option<String>,
    pub removed: Vec<String>,
    /// The subscriptions after (listed again), when the listing worked.
    pub after: Vec<String>,
    /// Whether an event from this cash server arrived after the change.
    pub event_arrived: bool,
    /// The step that failed, if one did.
    pub error: Option<Failure>,
    /// In words: what state the cash server was left in.
    pub state: String,
}

/// Same address, give or take a trailing slash and the case of the host.
pub fn same_url(a: &str, b: &str) -> bool {
    let norm = |u: &str| match url::Url::parse(u.trim()) {
        Ok(p) => p.as_str().trim_end_matches('/').to_string(),
        Err(_) => u.trim().trim_end_matches('/').to_ascii_lowercase(),
    };
    norm(a) == norm(b)
}

/// Points the cash server at `ingest_url` only (or removes exactly
/// `remove`), then checks an event arrives within `wait`.
pub async fn repoint(
    db: &Db,
    client: &Client,
    server: &CashServer,
    ingest_url: &str,
    remove: Option<Vec<String>>,
    wait: Duration,
) -> Repoint {
    let started = now_ms();
    let mut r = Repoint::default();
    match client.list_subscriptions().await {
        Ok(s) => r.before = s.urls,
        Err(e) => {
            r.error = Some(e.into());
            r.state = "nothing was changed: the subscriptions could not be listed".into();
            return r;
        }
    }
    if !r.before.iter().any(|u| same_url(u, ingest_url)) {
        if let Err(e) = client.subscribe(ingest_url).await {
            r.error = Some(e.into());
            r.state = format!(
                "nothing was changed: adding {ingest_url} failed, so no address was removed"
            );
            return r;
        }
        r.added = Some(ingest_url.to_string());
    }
    let to_remove: Vec<String> = match remove {
        Some(list) => list,
        None => r
            .before
            .iter()
            .filter(|u| !same_url(u, ingest_url))
            .cloned()
            .collect(),
    };
    for u in &to_remove {
        if same_url(u, ingest_url) {
            continue;
        }
        if let Err(e) = client.unsubscribe(u).await {
            let left: Vec<&String> = to_remove
                .iter()
                .filter(|x| !r.removed.contains(x))
                .collect();
            r.error = Some(e.into());
            r.state = format!(
                "tillgate ({ingest_url}) is subscribed; removed {:?}; removing {u} failed, so these are still subscribed: {left:?}",
                r.removed
            );
            return r;
        }
        r.removed.push(u.clone());
    }
    match client.list_subscriptions().await {
        Ok(s) => r.after = s.urls,
        Err(e) => {
            r.error = Some(e.into());
            r.state = format!(
                "the changes were made (added {:?}, removed {:?}) but listing them again failed",
                r.added, r.removed
            );
            return r;
        }
    }
    if !r.after.iter().any(|u| same_url(u, ingest_url)) {
        r.error = Some(Failure {
            what: format!(
                "the cash server accepted the subscription but does not list {ingest_url}"
            ),
            fix: "check the cash server's version (7.6.5.440 or later) and its notify settings"
                .into(),
        });
        r.state = "the cash server does not list tillgate after the change".into();
        return r;
    }
    r.event_arrived = wait_for_event(db, client, server, started, wait).await;
    r.state = if r.event_arrived {
        format!("points at {ingest_url}; an event arrived")
    } else {
        format!(
            "points at {ingest_url}, but no event arrived within {} s: the cash server may be idle (open an order on a station) or cannot reach tillgate at that address",
            wait.as_secs()
        )
    };
    r
}

/// Waits until an event of this cash server's restaurant (not a backfilled
/// one) is received after `since_ms`.
async fn wait_for_event(
    db: &Db,
    client: &Client,
    server: &CashServer,
    since_ms: i64,
    wait: Duration,
) -> bool {
    let Ok(rest) = connect::rest_code(db, client, server).await else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if last_event_at(db, &rest)
            .await
            .is_some_and(|t| t >= since_ms)
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// When the last event sent by a restaurant's cash servers arrived (ms).
pub async fn last_event_at(db: &Db, rest_code: &str) -> Option<i64> {
    crate::core::log::streams_of(db, rest_code, 500)
        .await
        .ok()?
        .into_iter()
        .filter(|s| !crate::core::log::is_backfilled(&s.stream_guid))
        .map(|s| s.last_seen)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_trailing_slash_and_host_case() {
        assert!(same_url(
            "http://A.example:11130/rkevent",
            "http://a.example:11130/rkevent/"
        ));
        assert!(!same_url("http://a:1/rkevent", "http://a:2/rkevent"));
    }
}
