//! Relay: order, durability, failures, signatures, API and replay, against
//! local receivers started by each test.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use tillgate::relay;

use crate::harness::{Backend, TestApp, backends, spawn_app_with, start};
use crate::relay_receiver::{Receiver, Reply, ids};

const G1: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An event whose bytes include Cyrillic text and odd spacing, so a
/// re-encoding anywhere on the way would show.
fn event(seq: u64, situation: i64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<a RestCode=\"199990093\" DateTime=\"2019-12-18T17:18:00\" Situation=\"{situation}\" seqnumber=\"{seq}\" guid=\"{G1}\" name=\"Login\"  ShiftNum=\"1\">\n<Station id=\"15003\" code=\"1\" name=\"Касса №1\" NetName=\"MM_CASH\"/>\n<Waiter id=\"1\" code=\"7\" name=\"Администратор\"/>\n<Item/>\n</a>"
    )
}

fn settings(toml_text: &str) -> relay::Settings {
    relay::validate(toml::from_str(toml_text).expect("relay toml")).expect("relay settings")
}

/// A `[relay]` section with fast retries and one destination `id` → `url`.
fn one_destination(id: &str, url: &str, extra: &str) -> relay::Settings {
    settings(&format!(
        "allow_private_destinations = true\ntimeout_ms = 300\nretry_schedule_ms = [20, 40]\n[[destinations]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n"
    ))
}

async fn app_with(b: Backend, relay: relay::Settings) -> TestApp {
    spawn_app_with(b, move |c| c.set_section(relay)).await
}

async fn post_json(app: &TestApp, path: &str, body: serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn log_lines(app: &TestApp, id: &str) -> Vec<String> {
    let v = app
        .get_json(&format!("/api/destinations/{id}/log?limit=1000"))
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

fn expected_ids(offsets: &[i64]) -> Vec<String> {
    offsets.iter().map(|o| format!("tg-{o}")).collect()
}

/// An independent Standard Webhooks check: HMAC-SHA256 over
/// `{id}.{timestamp}.{body}` with the base64-decoded secret.
fn verify_signature(g: &crate::relay_receiver::Got) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", g.id, g.timestamp).as_bytes());
    mac.update(&g.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let header = g.signature.as_deref().expect("webhook-signature header");
    let ok = header
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()));
    assert!(
        ok,
        "signature {header} does not verify (expected v1,{expected})"
    );
    let ts: i64 = g.timestamp.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - ts).abs() < 300, "timestamp {ts} not near now {now}");
}

#[tokio::test]
async fn original_bytes_arrive_in_order_and_signed() {
    for b in backends() {
        let rx = Receiver::start(vec![]).await;
        let app = app_with(
            b,
            one_destination(
                "sig",
                &rx.url,
                &format!("secret = \"{SECRET}\"\nheaders = {{ \"X-Api-Key\" = \"k-123\" }}"),
            ),
        )
        .await;
        let bodies: Vec<String> = (1..=5).map(|i| event(i, 11)).collect();
        let mut offsets = Vec::new();
        for body in &bodies {
            offsets.push(app.ingest(body.clone()).await["offset"].as_i64().unwrap());
        }
        let got = rx.wait_ok(5).await;
        assert_eq!(ids(&got), expected_ids(&offsets));
        for (g, body) in got.iter().zip(&bodies) {
            assert_eq!(&g.body[..], body.as_bytes(), "bytes changed on the way");
            assert_eq!(g.content_type, "application/xml");
            assert_eq!(g.headers["x-api-key"], "k-123");
            verify_signature(g);
        }
        // A tampered body must not verify: the check above can fail.
        let mut bad = got[0].clone();
        bad.body = axum::body::Bytes::from_static(b"<a/>");
        assert!(std::panic::catch_unwind(|| verify_signature(&bad)).is_err());
        app.stop().await;
    }
}

#[tokio::test]
async fn failures_are_retried_in_order_and_honour_retry_after() {
    for b in backends() {
        let rx = Receiver::start(vec![
            Reply::Status(500, "boom"),
            Reply::Hang(Duration::from_millis(800)),
            Reply::RetryAfter(429, 1),
            Reply::Status(408, ""),
            Reply::Status(503, "busy"),
        ])
        .await;
        // Metrics are process-wide: a name per backend keeps counts apart.
        let id = format!("flaky-{b:?}");
        let app = app_with(b, one_destination(&id, &rx.url, "")).await;
        let mut offsets = Vec::new();
        for i in 1..=3 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        let ok = rx.wait_ok(3).await;
        assert_eq!(ids(&ok), expected_ids(&offsets), "order after failures");
        let all = rx.got();
        // Every failed attempt was the first event, with the same webhook-id.
        assert_eq!(all.len(), 8, "{:?}", ids(&all));
        assert!(all[..6].iter().all(|g| g.id == expected_ids(&offsets)[0]));
        // After the 429 with Retry-After: 1, the next try came >= 1 s later.
        let after_429 = all[3].at.duration_since(all[2].at);
        assert!(after_429 >= Duration::from_millis(990), "{after_429:?}");
        wait_until("the recovery line", || async {
            log_lines(&app, &id)
                .await
                .iter()
                .any(|l| l.contains("Post OK"))
        })
        .await;
        let lines = log_lines(&app, &id).await.join("\n");
        assert!(
            lines.contains("HTTP: Post error: 500 Internal Server Error: boom"),
            "{lines}"
        );
        assert!(
            lines.contains("HTTP: Post error: no answer within 300 ms"),
            "{lines}"
        );
        assert!(
            lines.contains("HTTP: Post error: 429 Too Many Requests"),
            "{lines}"
        );
        assert!(
            lines.contains("HTTP: Post OK after 5 failed attempts"),
            "{lines}"
        );
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(
            m.contains(&format!(
                "tillgate_relay_failed_attempts_total{{destination=\"{id}\"}} 5"
            )),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "tillgate_relay_delivered_total{{destination=\"{id}\"}} 3"
            )),
            "{m}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn restart_resumes_where_each_destination_stood() {
    for b in backends() {
        let rx = Receiver::start(vec![]).await;
        let app = app_with(b, one_destination("durable", &rx.url, "")).await;
        let mut offsets = Vec::new();
        for i in 1..=2 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        rx.wait_ok(2).await;
        rx.fail_all(true);
        for i in 3..=4 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        rx.wait_got(3).await;
        let (config, dir) = app.stop().await;
        rx.fail_all(false);
        let app = start(config, dir).await;
        let ok = rx.wait_ok(4).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ok_after = rx.ok();
        assert_eq!(
            ok_after.len(),
            4,
            "delivered again after restart: {:?}",
            ids(&ok_after)
        );
        assert_eq!(ids(&ok), expected_ids(&offsets));
        wait_until("the cursor stored", || async {
            app.get_json("/api/destinations/durable").await["cursor"] == offsets[3]
        })
        .await;
        let d = app.get_json("/api/destinations/durable").await;
        assert_eq!(d["lag_events"], 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn gone_pauses_until_resumed_and_nothing_is_lost() {
    for b in backends() {
        let rx = Receiver::start(vec![Reply::Status(410, "gone")]).await;
        let app = app_with(b, one_destination("gone", &rx.url, "")).await;
        let mut offsets = vec![app.ingest(event(1, 11)).await["offset"].as_i64().unwrap()];
        wait_until("pause", || async {
            app.get_json("/api/destinations/gone").await["paused"] == true
        })
        .await;
        for i in 2..=3 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            rx.got().len(),
            1,
            "a paused destination must not be sent to"
        );
        let d = app.get_json("/api/destinations/gone").await;
        assert!(d["paused_reason"].as_str().unwrap().contains("410"), "{d}");
        assert_eq!(d["lag_events"], 3);
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(
            m.contains("tillgate_relay_paused{destination=\"gone\"} 1"),
            "{m}"
        );
        let r = post_json(&app, "/api/destinations/gone/resume", serde_json::json!({})).await;
        assert_eq!(r.status(), 200);
        let ok = rx.wait_ok(3).await;
        assert_eq!(ids(&ok), expected_ids(&offsets));
        let lines = log_lines(&app, "gone").await.join("\n");
        assert!(
            lines.contains("paused: the receiver answered 410 Gone"),
            "{lines}"
        );
        assert!(lines.contains("resumed by the operator"), "{lines}");
        app.stop().await;
    }
}

#[tokio::test]
async fn client_error_goes_to_dead_letters_and_can_be_resent() {
    for b in backends() {
        let rx = Receiver::start(vec![Reply::Status(400, "bad order")]).await;
        let app = app_with(b, one_destination("dl", &rx.url, "")).await;
        let mut offsets = Vec::new();
        for i in 1..=3 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        let ok = rx.wait_ok(2).await;
        assert_eq!(ids(&ok), expected_ids(&offsets[1..]));
        wait_until("the dead letter", || async {
            let d = app.get_json("/api/destinations/dl/dead-letters").await;
            !d["items"].as_array().unwrap().is_empty()
        })
        .await;
        let dead = app.get_json("/api/destinations/dl/dead-letters").await;
        let items = dead["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{dead}");
        assert_eq!(items[0]["offset"], offsets[0]);
        assert_eq!(items[0]["status"], 400);
        let lines = log_lines(&app, "dl").await.join("\n");
        assert!(
            lines.contains(
                "HTTP: Post error: 400 Bad Request: bad order (moved to the dead-letter list)"
            ),
            "{lines}"
        );
        let r = post_json(
            &app,
            &format!("/api/destinations/dl/dead-letters/{}/resend", offsets[0]),
            serde_json::json!({}),
        )
        .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert_eq!(ids(&rx.ok()).last().unwrap(), &expected_ids(&offsets)[0]);
        let dead = app.get_json("/api/destinations/dl/dead-letters").await;
        assert_eq!(dead["items"].as_array().unwrap().len(), 0);
        let r = post_json(
            &app,
            "/api/destinations/dl/dead-letters/999/resend",
            serde_json::json!({}),
        )
        .await;
        assert_eq!(r.status(), 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn retry_policy_keeps_retrying_a_4xx() {
    for b in backends() {
        let rx = Receiver::start(vec![Reply::Status(422, "not yet")]).await;
        let app = app_with(
            b,
            one_destination("strict", &rx.url, "on_client_error = \"retry\""),
        )
        .await;
        let o1 = app.ingest(event(1, 11)).await["offset"].as_i64().unwrap();
        let o2 = app.ingest(event(2, 11)).await["offset"].as_i64().unwrap();
        let ok = rx.wait_ok(2).await;
        assert_eq!(ids(&ok), expected_ids(&[o1, o2]));
        let dead = app.get_json("/api/destinations/strict/dead-letters").await;
        assert_eq!(dead["items"].as_array().unwrap().len(), 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn connection_refused_is_logged_in_driver_words_and_lag_shows() {
    for b in backends() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let app = app_with(
            b,
            one_destination("nobody", &format!("http://127.0.0.1:{port}/x"), ""),
        )
        .await;
        app.ingest(event(1, 11)).await;
        app.ingest(event(2, 11)).await;
        wait_until("a failure line", || async {
            log_lines(&app, "nobody")
                .await
                .iter()
                .any(|l| l.starts_with("HTTP: Post error:"))
        })
        .await;
        let lines = log_lines(&app, "nobody").await.join("\n");
        assert!(lines.to_lowercase().contains("connect"), "{lines}");
        wait_until("lag metric", || async {
            let m = app.get("/metrics").await.text().await.unwrap();
            m.contains("tillgate_relay_lag_events{destination=\"nobody\"} 2")
        })
        .await;
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(
            m.contains("tillgate_relay_lag_seconds{destination=\"nobody\"}"),
            "{m}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn filter_and_json_format() {
    for b in backends() {
        let rx = Receiver::start(vec![]).await;
        let app = app_with(
            b,
            one_destination(
                "qr",
                &rx.url,
                "situations = [11]\nrestaurants = [\"199990093\"]\nformat = \"json\"",
            ),
        )
        .await;
        let mut offsets = Vec::new();
        for (i, sit) in [21, 11, 21, 11].iter().enumerate() {
            offsets.push(
                app.ingest(event(i as u64 + 1, *sit)).await["offset"]
                    .as_i64()
                    .unwrap(),
            );
        }
        let ok = rx.wait_ok(2).await;
        assert_eq!(ids(&ok), expected_ids(&[offsets[1], offsets[3]]));
        let v: serde_json::Value = serde_json::from_slice(&ok[0].body).unwrap();
        assert_eq!(ok[0].content_type, "application/json");
        assert_eq!(v["offset"], offsets[1]);
        assert_eq!(v["situation"], 11);
        assert_eq!(v["restcode"], "199990093");
        assert!(v["event"].is_object(), "{v}");
        // Filtered events still move the cursor.
        wait_until("cursor at head", || async {
            app.get_json("/api/destinations/qr").await["cursor"] == offsets[3]
        })
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn several_in_flight_deliver_everything() {
    for b in backends() {
        let rx = Receiver::start(vec![Reply::Status(500, "x")]).await;
        let app = app_with(b, one_destination("par", &rx.url, "in_flight = 4")).await;
        let mut offsets = Vec::new();
        for i in 1..=20 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        wait_until("all 20", || async {
            let mut got: Vec<String> = ids(&rx.ok());
            got.sort();
            got.dedup();
            got.len() == 20
        })
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn replay_from_offset_time_and_cli() {
    for b in backends() {
        let rx = Receiver::start(vec![]).await;
        let app = app_with(b, one_destination("again", &rx.url, "")).await;
        let mut offsets = Vec::new();
        for i in 1..=3 {
            offsets.push(app.ingest(event(i, 11)).await["offset"].as_i64().unwrap());
        }
        rx.wait_ok(3).await;
        let r = post_json(
            &app,
            "/api/destinations/again/replay",
            serde_json::json!({"from_offset": offsets[1]}),
        )
        .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let ok = rx.wait_ok(5).await;
        assert_eq!(
            ids(&ok),
            expected_ids(&[offsets[0], offsets[1], offsets[2], offsets[1], offsets[2]])
        );
        let r = post_json(
            &app,
            "/api/destinations/again/replay",
            serde_json::json!({"from_time": "2000-01-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let ok = rx.wait_ok(8).await;
        assert_eq!(ids(&ok[5..]), expected_ids(&offsets));
        // The CLI goes through the same API.
        let out = relay::replay_via_api(
            &relay::ReplayArgs {
                opts: tillgate::core::config::ServerOpts::default(),
                destination: "again".into(),
                from_offset: Some(offsets[2]),
                from_time: None,
                server: Some(app.base.clone()),
            },
            &tillgate::app::cli::ctx(),
        )
        .await
        .unwrap();
        assert!(out.contains("\"again\""), "{out}");
        let ok = rx.wait_ok(9).await;
        assert_eq!(ids(&ok[8..]), expected_ids(&offsets[2..]));
        let e = relay::replay_via_api(
            &relay::ReplayArgs {
                opts: tillgate::core::config::ServerOpts::default(),
                destination: "nosuch".into(),
                from_offset: Some(1),
                from_time: None,
                server: Some(app.base.clone()),
            },
            &tillgate::app::cli::ctx(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no relay destination"), "{e}");
        for (body, needle) in [
            (serde_json::json!({}), "exactly one"),
            (serde_json::json!({"from_offset": 999}), "between 1 and"),
            (serde_json::json!({"from_time": "yesterday"}), "RFC 3339"),
            (
                serde_json::json!({"from_offset": 1, "from_time": "2000-01-01T00:00:00Z"}),
                "exactly one",
            ),
            (serde_json::json!({"from_ofset": 1}), "unknown field"),
        ] {
            let r = post_json(&app, "/api/destinations/again/replay", body.clone()).await;
            assert!(r.status().is_client_error(), "{body}");
            let t = r.text().await.unwrap();
            assert!(t.contains(needle), "{body}: {t}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn api_refuses_private_destinations_without_the_switch() {
    for b in backends() {
        let app = app_with(b, settings("")).await;
        for (url, needle) in [
            ("http://127.0.0.1:9/x", "http://127.0.0.1:9/x"),
            ("http://localhost:9/x", "loopback"),
            ("http://10.0.0.5/x", "private"),
            ("http://169.254.169.254/latest", "link-local"),
        ] {
            let r = post_json(&app, "/api/destinations", serde_json::json!({"url": url})).await;
            assert_eq!(r.status(), 400, "{url}");
            let t = r.text().await.unwrap();
            assert!(
                t.contains("allow_private_destinations") && t.contains(needle),
                "{url}: {t}"
            );
        }
        let items = app.get_json("/api/destinations").await;
        assert_eq!(items["items"].as_array().unwrap().len(), 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn api_creates_changes_and_deletes_without_showing_secrets() {
    for b in backends() {
        let app = app_with(b, one_destination("fromfile", "http://127.0.0.1:1/f", "")).await;
        let r = post_json(
            &app,
            "/api/destinations",
            serde_json::json!({
                "id": "a",
                "url": "http://127.0.0.1:1/x?key=qkey42;http://user:pw77@127.0.0.1:2/y",
                "secret": SECRET,
                "headers": {"X-Api-Key": "topsecret"},
            }),
        )
        .await;
        assert_eq!(r.status(), 201);
        let t = r.text().await.unwrap();
        for s in ["MfKQ9r8", "topsecret", "qkey42", "pw77"] {
            assert!(!t.contains(s), "{s} leaked: {t}");
        }
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        let ids: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a-1", "a-2"]);
        assert_eq!(v["items"][0]["secret"], "whsec_…(set)");
        assert_eq!(v["items"][0]["headers"]["X-Api-Key"], "(set)");
        let all = app.get_json("/api/destinations").await;
        assert_eq!(all["items"].as_array().unwrap().len(), 3);
        assert!(!all.to_string().contains("topsecret"));

        let patch = |id: &str, body: serde_json::Value| {
            let req = app
                .client
                .patch(app.url(&format!("/api/destinations/{id}")))
                .json(&body);
            async move { req.send().await.unwrap() }
        };
        let r = patch(
            "a-1",
            serde_json::json!({"situations": [11], "secret": null}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["situations"], serde_json::json!([11]));
        assert!(v["secret"].is_null());
        for (body, needle) in [
            (serde_json::json!({"bogus": 1}), "unknown field"),
            (serde_json::json!({"id": "b"}), "cannot change"),
            (serde_json::json!({"url": "ftp://h/"}), "ftp"),
            (serde_json::json!({"secret": "nope"}), "whsec_"),
            (serde_json::json!([1]), "JSON object"),
        ] {
            let r = patch("a-1", body.clone()).await;
            assert_eq!(r.status(), 400, "{body}");
            let t = r.text().await.unwrap();
            assert!(t.contains(needle), "{body}: {t}");
        }
        assert_eq!(
            patch("fromfile", serde_json::json!({"situations": [1]}))
                .await
                .status(),
            409
        );
        assert_eq!(patch("nosuch", serde_json::json!({})).await.status(), 404);

        for (body, needle) in [
            (
                serde_json::json!({"url": "http://127.0.0.1:1/", "sekret": "x"}),
                "unknown field",
            ),
            (serde_json::json!({"url": "not a url"}), "not a url"),
            (
                serde_json::json!({"url": "http://127.0.0.1:1/", "secret": "whsec_abc"}),
                "whsec_",
            ),
            (
                serde_json::json!({"url": "http://127.0.0.1:1/", "format": "yaml"}),
                "yaml",
            ),
            (
                serde_json::json!({"id": "a-2", "url": "http://127.0.0.1:1/"}),
                "already exists",
            ),
        ] {
            let r = post_json(&app, "/api/destinations", body.clone()).await;
            assert!(r.status().is_client_error(), "{body}");
            let t = r.text().await.unwrap();
            assert!(t.contains(needle), "{body}: {t}");
        }
        let r = app
            .client
            .delete(app.url("/api/destinations/a-2"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(app.get("/api/destinations/a-2").await.status(), 404);
        let r = app
            .client
            .delete(app.url("/api/destinations/fromfile"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        // The cursors show beside every other consumer's.
        let c = app.get_json("/api/consumers").await.to_string();
        assert!(c.contains("relay:a-1") && !c.contains("relay:a-2"), "{c}");
        app.stop().await;
    }
}

/// Every relay metric has its HELP line, and a destination's series are
/// listed at zero as soon as its worker runs, before anything is delivered.
#[tokio::test]
async fn metrics_are_listed_before_the_first_delivery() {
    for b in backends() {
        let id = format!("quiet-{b:?}");
        let app = app_with(b, one_destination(&id, "http://127.0.0.1:1/q", "")).await;
        let series = [
            "tillgate_relay_delivered_total",
            "tillgate_relay_failed_attempts_total",
            "tillgate_relay_dead_letters_total",
            "tillgate_relay_paused",
            "tillgate_relay_lag_events",
            "tillgate_relay_lag_seconds",
        ];
        wait_until("the destination's series", || async {
            let m = app.get("/metrics").await.text().await.unwrap();
            series
                .iter()
                .all(|s| m.contains(&format!("{s}{{destination=\"{id}\"}} 0")))
        })
        .await;
        let m = app.get("/metrics").await.text().await.unwrap();
        for s in series {
            assert!(m.contains(&format!("# HELP {s} ")), "no HELP for {s}: {m}");
        }
        app.stop().await;
    }
}

/// Drives a worker with `run_once` against real storage: failing longer
/// than `pause_after` pauses the destination and tells the alerts feature.
#[tokio::test]
async fn failing_too_long_pauses_and_raises_an_operator_event() {
    for b in backends() {
        let dir = tempfile::tempdir().unwrap();
        let storage = match b {
            Backend::Sqlite => tillgate::core::config::Storage::Sqlite {
                path: dir.path().join("t.db"),
            },
            Backend::Postgres => tillgate::core::config::Storage::Postgres {
                url: crate::harness::fresh_pg_database().await.into(),
            },
        };
        let db = tillgate::core::store::Db::open(&storage).await.unwrap();
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .unwrap();
        let (log, task) = tillgate::core::log::writer(db.clone(), 16).await.unwrap();
        let writer = tokio::spawn(task.run());
        let rx = Receiver::start(vec![]).await;
        rx.fail_all(true);
        let s = Arc::new(settings(&format!(
            "allow_private_destinations = true\nretry_schedule_ms = [5]\npause_after_ms = 60\n[[destinations]]\nid = \"w\"\nurl = \"{}\"",
            rx.url
        )));
        let dest = Arc::new(s.destinations[0].clone());
        relay::store::upsert(&db, "w", relay::store::Source::Config, &dest.input)
            .await
            .unwrap();
        let ev = tillgate::ingest::to_new_event(event(1, 11).into_bytes().into(), 1).unwrap();
        log.append(ev).await.unwrap();
        let events_tx = tillgate::core::bus::Bus::default();
        let mut events_rx = events_tx.subscribe();
        let mut w = relay::worker::Worker::new(
            dest,
            db.clone(),
            relay::send::client(true).unwrap(),
            s.clone(),
            events_tx,
            log.subscribe(),
            None,
        )
        .await
        .unwrap();
        // The destination was created at head 0... but upsert ran before the
        // append, so the cursor is 0 and the event is pending.
        match w.run_once().await.unwrap() {
            relay::worker::Outcome::Retry { attempt: 1, after } => {
                assert!(after <= Duration::from_millis(7), "{after:?}")
            }
            o => panic!("expected a retry, got {o:?}"),
        }
        assert!(
            events_rx.try_recv().is_err(),
            "no report before pause_after"
        );
        tokio::time::sleep(Duration::from_millis(70)).await;
        match w.run_once().await.unwrap() {
            relay::worker::Outcome::Paused { reason } => {
                assert!(reason.contains("failing for more than"), "{reason}")
            }
            o => panic!("expected a pause, got {o:?}"),
        }
        let ev = events_rx.try_recv().expect("operator event");
        assert_eq!(ev.kind.as_str(), "relay_destination_paused");
        assert!(
            ev.text.contains("w") && ev.text.contains("resume"),
            "{}",
            ev.text
        );
        // Paused: run_once sends nothing more, and storage says so.
        let before = rx.got().len();
        assert!(matches!(
            w.run_once().await.unwrap(),
            relay::worker::Outcome::Paused { .. }
        ));
        assert_eq!(rx.got().len(), before);
        let stored = relay::store::get(&db, "w").await.unwrap().unwrap();
        assert!(stored.paused.is_some());
        assert_eq!(w.cursor(), 0, "the failed event is still pending");
        drop(log);
        writer.await.unwrap();
        db.close().await;
    }
}

#[test]
fn replay_cli_arguments_are_checked() {
    use clap::FromArgMatches;
    let parse = |args: &[&str]| -> Result<relay::CliArgs, clap::Error> {
        let m = tillgate::app::cli::command().try_get_matches_from(args.iter().copied())?;
        let (name, sub) = m.subcommand().expect("a subcommand");
        assert_eq!(name, "relay");
        relay::CliArgs::from_arg_matches(sub)
    };
    let ok = parse(&[
        "tillgate",
        "relay",
        "replay",
        "--destination",
        "kds",
        "--from-offset",
        "5",
    ])
    .unwrap();
    match ok {
        relay::CliArgs {
            command: relay::RelayCommand::Replay(a),
        } => {
            assert_eq!(a.destination, "kds");
            assert_eq!(a.from_offset, Some(5));
        }
    }
    for bad in [
        &["tillgate", "relay", "replay", "--destination", "kds"][..],
        &[
            "tillgate",
            "relay",
            "replay",
            "--destination",
            "kds",
            "--from-offset",
            "x",
        ],
        &[
            "tillgate",
            "relay",
            "replay",
            "--destination",
            "kds",
            "--from-offset",
            "1",
            "--from-time",
            "2026-01-01T00:00:00Z",
        ],
        &["tillgate", "relay", "replay", "--from-offset", "1"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
}
