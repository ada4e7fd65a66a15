//! An event's identity: a duplicate is the same `(guid, seqnumber)` with
//! the same bytes; the same key with other bytes is another event, stored,
//! counted and listed at `/api/key-reuses`, never dropped (issue 26). Only
//! events received within `[log] dedupe_window_days` are compared.

use serde_json::Value;
use tillgate::core::store::Db;

use crate::harness::{TestApp, backends, spawn_app};

const G: &str = "{5D1C6E0A-2B8E-4C39-9F51-0E7A3C2B9D44}";

/// A Login event; `station` changes the bytes, not the key.
fn event(seq: u64, station: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="199990093" DateTime="2019-12-18T17:18:00" Situation="21" seqnumber="{seq}" guid="{G}" name="Login" ShiftNum="1" ShiftDate="2019-11-18T00:00:00">
<Station id="15003" code="1" name="{station}" NetName="MM_CASH_169058"/>
<Waiter id="1" code="7" name="Administrator"><Role id="100007" code="7" name="Administrators"/></Waiter>
<Item/>
</a>"#
    )
}

/// The acknowledgement's status and offset.
async fn post(app: &TestApp, body: impl Into<reqwest::Body>) -> (String, i64) {
    let ack = app.ingest(body).await;
    (
        ack["status"].as_str().unwrap().to_string(),
        ack["offset"].as_i64().unwrap(),
    )
}

async fn raw(app: &TestApp, offset: i64) -> Vec<u8> {
    let r = app.get(&format!("/api/events/{offset}/raw")).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

/// The counter's value in the `/metrics` text (0 when absent).
async fn key_reused_total(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tillgate_events_key_reused_total "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_same_key_with_other_bytes_is_stored_counted_and_listed() {
    for b in backends() {
        let app = spawn_app(b).await;
        let (s1, o1) = post(&app, event(1, "MM_CASH")).await;
        assert_eq!(s1, "stored");
        let (s, o) = post(&app, event(1, "MM_CASH")).await;
        assert_eq!((s.as_str(), o), ("duplicate", o1), "same key, same bytes");
        let before = key_reused_total(&app).await;

        // The key again with other bytes: its own event.
        let (s2, o2) = post(&app, event(1, "MM_CASH_2")).await;
        assert_eq!(s2, "stored");
        assert!(o2 > o1);
        // Each variant resent is a duplicate of its own offset.
        assert_eq!(
            post(&app, event(1, "MM_CASH_2")).await,
            ("duplicate".into(), o2)
        );
        assert_eq!(
            post(&app, event(1, "MM_CASH")).await,
            ("duplicate".into(), o1)
        );
        // The stream goes on; a reused key is not a gap.
        let (s3, o3) = post(&app, event(2, "MM_CASH")).await;
        assert_eq!((s3.as_str(), o3), ("stored", o2 + 1));

        let log = app.get_json("/api/events?after=0&limit=10").await;
        assert_eq!(items(&log).len(), 3, "{log}");
        assert_eq!(raw(&app, o1).await, event(1, "MM_CASH").into_bytes());
        assert_eq!(raw(&app, o2).await, event(1, "MM_CASH_2").into_bytes());
        let gaps = app.get_json("/api/gaps").await;
        assert!(items(&gaps).is_empty(), "{gaps}");

        let reuses = app.get_json("/api/key-reuses").await;
        let list = items(&reuses);
        assert_eq!(list.len(), 1, "{reuses}");
        assert_eq!(list[0]["offset"], o2);
        assert_eq!(list[0]["stream_guid"], G);
        assert_eq!(list[0]["seqnumber"], 1);
        assert_eq!(list[0]["first_offset"], o1);
        assert!(list[0]["received_at"].as_str().unwrap().ends_with('Z'));
        // Paged like the gaps: `after` is an offset.
        let rest = app
            .get_json(&format!("/api/key-reuses?after={o2}&limit=10"))
            .await;
        assert!(items(&rest).is_empty(), "{rest}");
        assert!(key_reused_total(&app).await > before);
        app.stop().await;
    }
}

#[tokio::test]
async fn both_variants_posted_at_once_are_each_stored_once() {
    for b in backends() {
        let app = spawn_app(b).await;
        // The stream exists, so the key below is a suspect in its batch.
        post(&app, event(1, "MM_CASH")).await;
        let mut posts = Vec::new();
        for i in 0..24 {
            let body = match i % 3 {
                0 => event(2, "A"),
                1 => event(2, "B"),
                _ => event(3 + i, "MM_CASH"),
            };
            posts.push(post(&app, body));
        }
        let acks = futures::future::join_all(posts).await;
        let offset_of = |station: &str| -> Vec<i64> {
            acks.iter()
                .enumerate()
                .filter(|(i, _)| match i % 3 {
                    0 => station == "A",
                    1 => station == "B",
                    _ => false,
                })
                .map(|(_, (_, o))| *o)
                .collect()
        };
        let (a, bb) = (offset_of("A"), offset_of("B"));
        assert!(a.iter().all(|o| *o == a[0]), "{acks:?}");
        assert!(bb.iter().all(|o| *o == bb[0]), "{acks:?}");
        assert_ne!(a[0], bb[0]);
        let stored = acks.iter().filter(|(s, _)| s == "stored").count();
        assert_eq!(stored, 2 + 8, "{acks:?}");
        assert_eq!(raw(&app, a[0]).await, event(2, "A").into_bytes());
        assert_eq!(raw(&app, bb[0]).await, event(2, "B").into_bytes());
        let reuses = app.get_json("/api/key-reuses").await;
        let list = items(&reuses);
        assert_eq!(list.len(), 1, "{reuses}");
        assert_eq!(list[0]["offset"], a[0].max(bb[0]));
        assert_eq!(list[0]["first_offset"], a[0].min(bb[0]));
        let log = app.get_json("/api/events?after=0&limit=100").await;
        assert_eq!(items(&log).len(), 1 + 2 + 8);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_key_older_than_the_window_is_not_compared() {
    for b in backends() {
        let app = spawn_app(b).await;
        let (_, o1) = post(&app, event(1, "MM_CASH")).await;
        post(&app, event(2, "MM_CASH")).await;
        // The first event was received eight days ago (the window is
        // seven by default).
        let db = Db::open(&app.config.storage).await.unwrap();
        sqlx::query("UPDATE events SET received_at = received_at - $1 WHERE log_offset = $2")
            .bind(8 * 86_400_000_i64)
            .bind(o1)
            .execute(&db.write)
            .await
            .unwrap();
        db.close().await;
        // The writer keeps nothing of the first event in memory but its
        // stream's last seqnumber: the resend is looked up, found too old,
        // and stored.
        let (s, o) = post(&app, event(1, "MM_CASH")).await;
        assert_eq!(s, "stored");
        assert!(o > o1);
        // Not a reuse either: the old event is out of the comparison.
        let reuses = app.get_json("/api/key-reuses").await;
        assert!(items(&reuses).is_empty(), "{reuses}");
        // The new copy is within the window: the next resend is its
        // duplicate.
        assert_eq!(
            post(&app, event(1, "MM_CASH")).await,
            ("duplicate".into(), o)
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_reused_key_leaves_order_state_equal_to_a_replay() {
    for b in backends() {
        let app = spawn_app(b).await;
        let day = tillgate_simulate::generate(&tillgate_simulate::Scenario {
            orders: 3,
            stations: 1,
            seed: 26,
            ..Default::default()
        });
        let events = &day.servers[0].events;
        for e in events {
            post(&app, e.xml.clone()).await;
        }
        // An event of the day again under its key with other bytes (a
        // trailing newline): kept, and state still equals a replay.
        let mut other = events[events.len() / 2].xml.clone();
        other.extend_from_slice(b"\n");
        let (s, _) = post(&app, other).await;
        assert_eq!(s, "stored");
        // And each original resent is a duplicate.
        for e in events {
            let (s, _) = post(&app, e.xml.clone()).await;
            assert_eq!(s, "duplicate");
        }
        app.wait_consumer("orders").await;
        let db = Db::open(&app.config.storage).await.unwrap();
        let head = app.get_json("/api/events?limit=1").await["head"]
            .as_i64()
            .unwrap();
        assert_eq!(head, events.len() as i64 + 1);
        let stored = tillgate::orders::load_all(&db).await.unwrap();
        let replayed = tillgate::orders::replay(&db, head).await.unwrap();
        let diff = tillgate::orders::diff_books(&stored, &replayed);
        assert!(diff.is_empty(), "state differs from replay: {diff:?}");
        assert_eq!(stored.orders.len(), day.truth.orders.len());
        db.close().await;
        app.stop().await;
    }
}
