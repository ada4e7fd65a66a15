//! `tillgate doctor`: green on a healthy setup (a cash server pointing at
//! tillgate with events flowing, a valid Telegram token, an sms.ru key with
//! a balance), and naming each injected fault with its fix.

use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use tillgate::cashservers::settings::{CashServerFile, FileSection};
use tillgate::core::config::Config;
use tillgate::doctor::{Level, Report};
use tillgate_simulate::CashServerOptions;

use crate::cashservers::{day, deliver, emulator, entry, lossy, post, set_rk7, spawn};
use crate::fake_smsru::FakeSmsRu;
use crate::harness::{TestApp, backends};

const GOOD_TOKEN: &str = "123456:good-token";

/// Telegram's getMe, as the real API answers it: the bot for a good
/// token, 401 Unauthorized otherwise.
async fn fake_get_me() -> String {
    async fn get_me(Path(bot): Path<String>) -> axum::response::Response {
        if bot == format!("bot{GOOD_TOKEN}") {
            Json(json!({"ok": true, "result": {"id": 123456, "is_bot": true, "username": "tillgate_test_bot"}})).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
            )
                .into_response()
        }
    }
    let app = axum::Router::new().route("/{bot}/getMe", axum::routing::get(get_me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The doctor's config: the app's, with `[rk7]`, Telegram and sms.ru.
fn doctor_config(
    app: &TestApp,
    rk7: FileSection,
    tg: &str,
    token: &str,
    sms: &FakeSmsRu,
) -> Config {
    let mut c = app.config.clone();
    set_rk7(&mut c, rk7);
    let other = tillgate::app::config_from_str(&format!(
        "[alerts]\nbot_token = \"{token}\"\napi_base = \"{tg}\"\nowners_chat = 1\n\n[sms]\n[sms.providers.main]\nkind = \"smsru\"\napi_id = \"key-1\"\nbase_url = \"{}\"\n",
        sms.base
    ))
    .expect("doctor config");
    c.set_section(other.section::<tillgate::alerts::Settings>());
    c.set_section(other.section::<tillgate::sms::settings::Settings>());
    c
}

fn find<'a>(r: &'a Report, name: &str) -> &'a tillgate::doctor::Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in\n{}", r.text()))
}

#[tokio::test]
async fn doctor_is_green_on_a_healthy_setup() {
    for b in backends() {
        let g = day();
        let cs = emulator(&g, CashServerOptions::default()).await;
        let rk7 = || FileSection {
            cash_servers: vec![entry("hall", &cs)],
            ..Default::default()
        };
        let app = spawn(b, rk7()).await;
        deliver(&app, &cs).await;
        app.wait_consumer("orders").await;
        let tg = fake_get_me().await;
        let sms = FakeSmsRu::start("key-1").await;
        let config = doctor_config(
            &app,
            FileSection {
                ingest_url: Some(app.url("/rkevent")),
                ..rk7()
            },
            &tg,
            GOOD_TOKEN,
            &sms,
        );
        let report = tillgate::doctor::check(&config).await;
        let text = report.text();
        assert!(report.healthy, "{text}");
        assert_eq!(report.failures().count(), 0, "{text}");
        for name in [
            "config",
            "storage",
            "cash server hall",
            "cash server hall version",
            "cash server hall subscription",
            "cash server hall events",
            "gaps",
            "quarantine",
            "consumers",
            "relay",
            "telegram",
            "sms main",
        ] {
            assert_eq!(find(&report, name).level, Level::Ok, "{name}: {text}");
        }
        assert!(
            find(&report, "sms main").message.contains("123,45"),
            "{text}"
        );
        assert!(text.ends_with("all checks passed\n"), "{text}");
        app.stop().await;
    }
}

#[tokio::test]
async fn doctor_names_each_injected_fault_with_its_fix() {
    for b in backends() {
        let g = day();
        // Fault: 40 events lost and no backfill yet (a gap not filled).
        let cs = lossy(&g).await;
        // Fault: a cash server sending to a stale address.
        let stale = emulator(
            &g,
            CashServerOptions {
                subscriptions: vec!["http://10.0.0.99:11130/rkevent".into()],
                ..Default::default()
            },
        )
        .await;
        let hall = || entry("hall", &cs);
        let rk7 = || FileSection {
            cash_servers: vec![hall()],
            backfill_on_gap: Some(false),
            ..Default::default()
        };
        let app = spawn(b, rk7()).await;
        deliver(&app, &cs).await;
        // Fault: an unreadable body in the quarantine.
        assert_eq!(
            app.post_event("/rkevent", "<not an event").await.status(),
            200
        );
        let tg = fake_get_me().await;
        let sms = FakeSmsRu::start("key-1").await;
        let servers = vec![
            hall(),
            // Fault: a wrong password.
            CashServerFile {
                name: "badpass".into(),
                password: Some("nope".into()),
                ..hall()
            },
            // Fault: a certificate that is not the pinned one.
            CashServerFile {
                name: "badpin".into(),
                tls_fingerprint: Some("01".repeat(32)),
                ..hall()
            },
            // Fault: a cash server that is down.
            CashServerFile {
                name: "gone".into(),
                url: "https://127.0.0.1:9".into(),
                ..hall()
            },
            entry("stale", &stale),
        ];
        // Fault: a Telegram token that was revoked.
        let config = doctor_config(
            &app,
            FileSection {
                ingest_url: Some(app.url("/rkevent")),
                cash_servers: servers,
                ..rk7()
            },
            &tg,
            "999:revoked",
            &sms,
        );
        let report = tillgate::doctor::check(&config).await;
        let text = report.text();
        assert!(!report.healthy, "{text}");
        for (name, words, fix) in [
            (
                "gaps",
                "1 gap(s) in the last day not filled (40 events lost",
                "tillgate rk7 backfill",
            ),
            ("quarantine", "1 unreadable body", "/api/quarantine"),
            (
                "cash server badpass",
                "refused the user or password",
                "HTTP Access",
            ),
            ("cash server badpin", "not the pinned", "tls_fingerprint"),
            (
                "cash server gone",
                "cannot talk to the cash server",
                "is running",
            ),
            (
                "cash server stale subscription",
                "10.0.0.99",
                "tillgate rk7 subscriptions repoint --cash-server stale",
            ),
            ("telegram", "Unauthorized", "@BotFather"),
        ] {
            let c = find(&report, name);
            assert_eq!(c.level, Level::Fail, "{name}: {text}");
            assert!(c.message.contains(words), "{name}: {text}");
            assert!(
                c.fix.as_deref().unwrap_or("").contains(fix),
                "{name}: {text}"
            );
        }
        // The healthy parts stay green beside the faults.
        assert_eq!(
            find(&report, "cash server hall subscription").level,
            Level::Ok,
            "{text}"
        );
        assert_eq!(find(&report, "sms main").level, Level::Ok, "{text}");
        assert!(
            !text.contains("nope") && !text.contains(crate::cashservers::PASSWORD),
            "no secret in the report"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"level\":\"fail\""), "{json}");

        // After a backfill the gap is shown as filled and doctor agrees.
        let (s, r) = post(&app, "/api/cash-servers/hall/backfill", json!({})).await;
        assert_eq!(s, 200, "{r}");
        let report = tillgate::doctor::check(&config).await;
        assert_eq!(find(&report, "gaps").level, Level::Ok, "{}", report.text());
        tokio::time::sleep(Duration::from_millis(1)).await;
        app.stop().await;
    }
}
