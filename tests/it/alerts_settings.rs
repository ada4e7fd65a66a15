//! Alert settings changed at run time through the operator API (the
//! console's path): stored durably, checked with the config file's words,
//! used without a restart (routing, the bot token), the test message
//! through the fake Telegram, and a change on one instance seen by another
//! on the same PostgreSQL. Also the SMS switch, default sender and token
//! set through `PUT /api/sms/settings`.

use std::time::Duration;

use reqwest::StatusCode;
use rk7::{Event, Guid, LocalDateTime, RestCode, Server, Situation, Station};
use secrecy::SecretString;
use serde_json::{Value, json};
use tillgate::core::config::Storage;

use crate::fake_smsru::FakeSmsRu;
use crate::fake_telegram::{FakeTelegram, TOKEN};
use crate::harness::{Backend, TestApp, backends, fresh_pg_database, spawn_app_with};

const REST: &str = "555";
const G1: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";

/// A station start: the second without a close is a `station_restarted`.
fn start_event(seq: u64) -> Vec<u8> {
    rk7::write(&Event {
        rest_code: Some(RestCode(REST.into())),
        date_time: Some(LocalDateTime::parse("2026-11-23T10:00:00").unwrap()),
        seqnumber: Some(seq),
        guid: Some(Guid::parse(G1).unwrap()),
        shift_num: Some(1),
        shift_date: Some(LocalDateTime::parse("2026-11-23T00:00:00").unwrap()),
        station: Some(Station {
            id: Some(15003),
            code: Some(1),
            name: Some("CASH_1".into()),
            ..Default::default()
        }),
        server: Some(Server {
            id: Some(15002),
            code: Some(15002),
            name: Some("MID".into()),
            ..Default::default()
        }),
        ..Event::new(Situation::ServerOrStationStarted)
    })
}

fn config(toml: &str) -> impl FnOnce(&mut tillgate::core::config::Config) {
    let toml = toml.to_string();
    move |c| {
        let loaded = tillgate::app::config_from_str(&toml).unwrap();
        c.sections = loaded.sections;
    }
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = app.client.request(method, app.url(path));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, reqwest::Method::PUT, path, Some(body)).await
}

async fn raw_put(app: &TestApp, path: &str, body: &str) -> (StatusCode, String) {
    let r = app
        .client
        .put(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_restaurants_rules_and_chat_saved_through_the_api_route_the_next_alert_without_a_restart()
{
    for backend in backends() {
        let tg = FakeTelegram::start(Duration::ZERO).await;
        let app = spawn_app_with(
            backend,
            config(&format!(
                "[alerts]\nbot_token = \"{TOKEN}\"\napi_base = \"{}\"\n[alerts.limits]\nper_chat_interval_ms = 1\n[[alerts.restaurants]]\nrest_code = \"{REST}\"\nclosing_time = \"03:00\"\n[alerts.restaurants.rules]\ndiscount_percent = 40\n",
                tg.base
            )),
        )
        .await;
        // Nothing routes the restaurant's alerts yet: recorded, unrouted.
        app.ingest(start_event(1)).await;
        app.ingest(start_event(2)).await;
        app.wait_consumer("alerts").await;
        let rows = app.get_json("/api/alerts?limit=100").await;
        assert!(
            rows["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["state"] == "unrouted"),
            "{rows}"
        );
        let one = app.get_json(&format!("/api/alerts/settings/{REST}")).await;
        assert_eq!(one["source"], "file");
        assert_eq!(one["sources"]["rules.discount_percent"], "file");
        assert_eq!(one["sources"]["closing_time"], "file");
        assert!(one["chat"].is_null());

        let (st, saved) = put(
            &app,
            &format!("/api/alerts/settings/{REST}"),
            json!({"chat": -777, "kinds": ["station_restarted"], "rules": {"discount_amount": 5000}, "utc_offset": "+05:00"}),
        )
        .await;
        assert_eq!(st, 200, "{saved}");
        assert_eq!(saved["chat"], -777);
        assert_eq!(
            saved["rules"]["discount_percent"], 40,
            "the file's value stays"
        );
        assert_eq!(saved["rules"]["discount_amount"], 5000);
        assert_eq!(saved["sources"]["chat"], "console");
        assert_eq!(saved["sources"]["rules.discount_percent"], "file");
        assert_eq!(saved["utc_offset"], "+05:00");
        assert_eq!(saved["source"], "console");

        // The next restart of the station goes to the new chat.
        app.ingest(start_event(3)).await;
        let sent = tg.wait_sent(1).await;
        assert_eq!(sent[0].chat(), -777, "{sent:?}");

        // DELETE returns the restaurant to the file's settings.
        let (st, back) = send(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/alerts/settings/{REST}"),
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert!(back["chat"].is_null() && back["source"] == "file", "{back}");

        // Stored durably: a save survives a restart.
        put(
            &app,
            &format!("/api/alerts/settings/{REST}"),
            json!({"chat": -778}),
        )
        .await;
        let (config, dir) = app.stop().await;
        let app = crate::harness::start(config, dir).await;
        let one = app.get_json(&format!("/api/alerts/settings/{REST}")).await;
        assert_eq!(one["chat"], -778);
        app.stop().await;
    }
}

#[tokio::test]
async fn broken_alert_settings_are_refused_with_the_config_files_words_and_nothing_is_stored() {
    for backend in backends() {
        let app = spawn_app_with(backend, |_| {}).await;
        let path = format!("/api/alerts/settings/{REST}");
        let cases: Vec<(&str, u16, &str)> = vec![
            (
                r#"{"chat": 0}"#,
                422,
                "setting `alerts.restaurants.555.chat`: 0 is not a Telegram chat id",
            ),
            (
                r#"{"rules": {"discount_percent": 101}}"#,
                422,
                "alerts.restaurants.555.rules.discount_percent`: must be between 1 and 100",
            ),
            (
                r#"{"rules": {"discount_amount": -1}}"#,
                422,
                "must be a positive number of kopecks",
            ),
            (
                r#"{"rules": {"station_silence_minutes": 0}}"#,
                422,
                "must be between 1 and 10080 minutes",
            ),
            (
                r#"{"closing_time": "3 o'clock"}"#,
                422,
                "is not a time like 03:00",
            ),
            (
                r#"{"opening_hours": "10:00"}"#,
                422,
                "is not like 10:00-23:00",
            ),
            (r#"{"kinds": ["everything"]}"#, 422, "unknown alert kind"),
            (r#"{"utc_offset": "UTC+3"}"#, 422, "is not like +03:00"),
            (
                r#"{"rest_code": "999"}"#,
                422,
                "is not the restaurant in the path",
            ),
            (r#"{"chat": "abc"}"#, 422, "invalid type"),
            (r#"{"colour": "red"}"#, 422, "unknown field"),
            (r#"{"chat": -1"#, 400, ""),
            ("", 400, ""),
        ];
        for (body, status, words) in cases {
            let (st, text) = raw_put(&app, &path, body).await;
            assert_eq!(st.as_u16(), status, "{body}: {text}");
            assert!(text.contains(words), "{body}: {text}");
        }
        let (st, _) = raw_put(&app, "/api/alerts/settings/a%20b", "{}").await;
        assert_eq!(st, 400);
        let one = app.get_json(&path).await;
        assert_eq!(one["source"], "default", "nothing stored: {one}");
        // The global settings: a broken token, a zero chat, unknown resets.
        for (body, status, words) in [
            (
                json!({"bot_token": "not-a-token"}),
                422,
                "setting `alerts.bot_token`: does not look like a Telegram bot token",
            ),
            (
                json!({"owners_chat": 0}),
                422,
                "setting `alerts.owners_chat`: 0 is not a Telegram chat id",
            ),
            (
                json!({"reset": ["everything"]}),
                422,
                "is not bot_token or owners_chat",
            ),
            (json!({"token": "x"}), 422, "unknown field"),
        ] {
            let (st, v) = put(&app, "/api/alerts/settings", body.clone()).await;
            assert_eq!(st.as_u16(), status, "{body}: {v}");
            assert!(v.to_string().contains(words), "{body}: {v}");
        }
        // The test message: broken bodies, then no token to send with.
        for (body, status, words) in [
            (json!({"chat": 0}), 422, "0 is not a Telegram chat id"),
            (
                json!({"rest_code": "404"}),
                422,
                "restaurant 404 has no chat",
            ),
            (json!({}), 422, "no owners' chat"),
            (json!({"chat": 5, "text": ""}), 422, "text must be"),
            (json!({"chat": 5, "to": 1}), 422, "unknown field"),
            (json!({"chat": 5}), 409, "no Telegram bot token"),
        ] {
            let (st, v) = send(
                &app,
                reqwest::Method::POST,
                "/api/alerts/test",
                Some(body.clone()),
            )
            .await;
            assert_eq!(st.as_u16(), status, "{body}: {v}");
            assert!(v.to_string().contains(words), "{body}: {v}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn a_bot_token_set_through_the_api_delivers_waiting_alerts_and_the_test_message_without_a_restart()
 {
    for backend in backends() {
        let tg = FakeTelegram::start(Duration::ZERO).await;
        let app = spawn_app_with(
            backend,
            config(&format!(
                "[alerts]\napi_base = \"{}\"\n[alerts.limits]\nper_chat_interval_ms = 1\n[[alerts.restaurants]]\nrest_code = \"{REST}\"\nchat = -900\n",
                tg.base
            )),
        )
        .await;
        app.ingest(start_event(1)).await;
        app.ingest(start_event(2)).await;
        app.wait_consumer("alerts").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(tg.sent().is_empty(), "no token yet");
        let all = app.get_json("/api/alerts/settings").await;
        assert_eq!(all["telegram"]["bot_token_set"], false);
        assert_eq!(all["telegram"]["pending"], 1, "{all}");

        let (st, v) = put(
            &app,
            "/api/alerts/settings",
            json!({"bot_token": TOKEN, "owners_chat": 4242}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["telegram"]["bot_token_set"], true);
        assert_eq!(v["telegram"]["bot_token_source"], "console");
        assert!(!v.to_string().contains(TOKEN), "the token is never echoed");
        let sent = tg.wait_sent(1).await;
        assert_eq!(sent[0].chat(), -900);

        let (st, v) = send(
            &app,
            reqwest::Method::POST,
            "/api/alerts/test",
            Some(json!({"rest_code": REST})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["chat"], -900);
        let sent = tg.wait_sent(2).await;
        assert!(sent[1].text().contains("tillgate"), "{sent:?}");
        let (st, _) = send(
            &app,
            reqwest::Method::POST,
            "/api/alerts/test",
            Some(json!({})),
        )
        .await;
        assert_eq!(st, 200, "the owners' chat set in the console");
        assert_eq!(tg.wait_sent(3).await[2].chat(), 4242);

        // Where the file sets a value, the API refuses to change it.
        let status = app.get_json("/api/alerts/settings").await;
        assert!(status["telegram"]["last_sent_at"].is_string(), "{status}");
        app.stop().await;

        let app = spawn_app_with(
            backend,
            config(&format!(
                "[alerts]\nbot_token = \"{TOKEN}\"\napi_base = \"{}\"\n",
                tg.base
            )),
        )
        .await;
        let (st, v) = put(&app, "/api/alerts/settings", json!({"bot_token": "1:x"})).await;
        assert_eq!(st, 409, "{v}");
        assert!(v.to_string().contains("set in the config file"));
        let all = app.get_json("/api/alerts/settings").await;
        assert_eq!(all["telegram"]["bot_token_source"], "file");
        app.stop().await;
    }
}

#[tokio::test]
async fn sms_switch_sender_and_token_set_through_the_api_take_effect_and_broken_ones_are_refused() {
    for backend in backends() {
        let fake = FakeSmsRu::start("SECRET-API-ID-9").await;
        let app = spawn_app_with(
            backend,
            config(&format!(
                "[sms.providers.main]\nkind = \"smsru\"\nbase_url = \"{}\"\n",
                fake.base
            )),
        )
        .await;
        let s = app.get_json("/api/sms/settings").await;
        assert_eq!(s["enabled"], false);
        assert_eq!(s["global"]["enabled_source"], "default");
        assert_eq!(s["global"]["providers"][0]["token_set"], false);
        // No token yet: the balance says so.
        let r = app.get("/api/sms/balance").await;
        assert_eq!(r.status(), 502);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("no token for provider main")
        );
        for (body, status, words) in [
            (
                json!({"sender": "Pizza Napoletana"}),
                422,
                "setting `sms.sender`: must be at most 11",
            ),
            (
                json!({"tokens": {"main": "  "}}),
                422,
                "setting `sms.providers.main.api_id`: must not be empty",
            ),
            (json!({"tokens": {"other": "x"}}), 422, "no provider named"),
            (json!({"enabled": "yes"}), 422, "invalid type"),
            (json!({"switch": true}), 422, "unknown field"),
        ] {
            let (st, v) = put(&app, "/api/sms/settings", body.clone()).await;
            assert_eq!(st.as_u16(), status, "{body}: {v}");
            assert!(v.to_string().contains(words), "{body}: {v}");
        }
        assert!(
            !app.get_json("/api/consumers")
                .await
                .to_string()
                .contains("\"sms\"")
        );
        let (st, v) = put(
            &app,
            "/api/sms/settings",
            json!({"enabled": true, "sender": "Pizza", "tokens": {"main": "SECRET-API-ID-9"}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert!(
            !v.to_string().contains("SECRET-API-ID-9"),
            "never echoed: {v}"
        );
        assert_eq!(v["enabled"], true);
        assert_eq!(v["enabled_source"], "console");
        assert_eq!(v["sender"], "Pizza");
        assert_eq!(v["providers"][0]["token_source"], "console");
        // The token is used at once; the workers start within a second.
        let b = app.get_json("/api/sms/balance").await;
        assert_eq!(b["balance_kopecks"], 12345, "{b}");
        // An event after switching on moves the consumer's cursor.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        app.ingest(crate::console::order_event(
            "101",
            crate::console::STREAM_A,
            1,
            crate::console::ORDER_A,
            1000,
        ))
        .await;
        let mut started = false;
        for _ in 0..100 {
            if app
                .get_json("/api/consumers")
                .await
                .to_string()
                .contains("\"sms\"")
            {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            started,
            "switching SMS on starts its consumer without a restart"
        );
        app.stop().await;
    }
}

/// Issue 19, item 4: a setting changed on one instance takes effect on
/// another on the same PostgreSQL within a second or two.
#[tokio::test]
async fn a_setting_changed_on_one_instance_takes_effect_on_another_on_the_same_database() {
    if !backends().contains(&Backend::Postgres) {
        eprintln!(
            "note: two instances need PostgreSQL: SKIPPED (TILLGATE_TEST_DATABASE_URL unset)"
        );
        return;
    }
    let url = fresh_pg_database().await;
    let tg = FakeTelegram::start(Duration::ZERO).await;
    let toml = format!(
        "[alerts]\nbot_token = \"{TOKEN}\"\napi_base = \"{}\"\n",
        tg.base
    );
    let on_pg = |toml: String, url: String| {
        move |c: &mut tillgate::core::config::Config| {
            config(&toml)(c);
            c.storage = Storage::Postgres {
                url: SecretString::from(url),
            };
        }
    };
    let a = spawn_app_with(Backend::Sqlite, on_pg(toml.clone(), url.clone())).await;
    let b = spawn_app_with(Backend::Sqlite, on_pg(toml, url)).await;
    let (st, _) = put(
        &a,
        &format!("/api/alerts/settings/{REST}"),
        json!({"chat": -4040}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = put(&a, "/api/sms/settings", json!({"enabled": true})).await;
    assert_eq!(st, 200);
    let t0 = std::time::Instant::now();
    // B sends the test message to the chat A saved: B's live settings
    // moved, not only its answers.
    loop {
        let (st, v) = send(
            &b,
            reqwest::Method::POST,
            "/api/alerts/test",
            Some(json!({"rest_code": REST})),
        )
        .await;
        if st == 200 {
            assert_eq!(v["chat"], -4040);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "B never saw A's change: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() <= Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(tg.wait_sent(1).await[0].chat(), -4040);
    loop {
        if b.get_json("/api/sms/settings").await["enabled"] == true {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "B never saw SMS switched on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("instance B saw A's changes after {:?}", t0.elapsed());
    a.stop().await;
    b.stop().await;
}
