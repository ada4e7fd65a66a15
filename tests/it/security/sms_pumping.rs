//! Issue 25, item 4: "SMS cannot be pumped". The attack as it was seen:
//! events posted to ingest name foreign phone numbers and an order name
//! that is a link, and tillgate texted them from the restaurant's sender.
//! Here it goes through the real server, a local sms.ru and a local
//! Telegram: foreign numbers are never sent to, a flood stops at the
//! restaurant's cap (also across a restart), every refusal is in the
//! outbox with its reason, and the owners hear about it once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tillgate::core::config::Config;

use tillgate::console::users::Role;

use crate::console::{PASSWORD, add_user, sign_in};
use crate::fake_smsru::FakeSmsRu;
use crate::fake_telegram::{FakeTelegram, TOKEN};
use crate::harness::{TestApp, backends, spawn_app_with, start};

const REST: &str = "199990093";
const API_ID: &str = "PUMPING-TEST-API-ID";
const OWNERS: i64 = 4242;
const STREAM: &str = "{0BAD0BAD-D394-4070-BD37-A8E54CCA7B56}";
const EVIL: &str = "https://evil.example/pay";

static SEQ: AtomicU64 = AtomicU64::new(1);

fn guid(n: u32) -> String {
    format!("{{0000BAD0-0000-4000-8000-{n:012}}}")
}

/// An "order changed" event as an attacker posts it: consent given, the
/// phone and the order name theirs, every dish ready.
fn event(guid: &str, phone: &str, kds: &str) -> String {
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="{REST}" DateTime="2026-10-03T16:05:00" Situation="3" seqnumber="{seq}" guid="{STREAM}" name="Order Changed" ShiftNum="1" ShiftDate="2026-10-03T00:00:00">
<Station id="15003" code="1" name="MM_CASH" NetName="MM_CASH_169058"/>
<Order visit="1" orderIdent="1" guid="{guid}" orderName="{EVIL}" orderSum="100" seqNumber="1" openTime="2026-10-03T15:00:00">
<ExternalProps><Prop name="phone" value="{phone}"/><Prop name="phone_consent" value="1"/></ExternalProps>
</Order>
<Session uni="1" state="3"><Dish id="1" code="1" name="Dish" uni="1" state="3" price="100" amount="100" quantity="1000" kdsstate="{kds}"/></Session>
<Item/>
</a>"#
    )
}

fn settings(fake: &FakeSmsRu, caps: &str) -> tillgate::sms::Settings {
    let text = format!(
        r#"
[sms]
enabled = true
{caps}
[sms.providers.smsru]
kind = "smsru"
api_id = "{API_ID}"
base_url = "{}"
[sms.restaurants.{REST}]
step = "ready"
template = "Order {{order_number}} {{status}}"
"#,
        fake.base
    );
    let mut file = tillgate::core::config::parse_file(std::path::Path::new("t.toml"), &text)
        .expect("test sms settings parse");
    tillgate::sms::validate(file.take_section("sms").parse().unwrap())
        .expect("test sms settings are valid")
}

/// The owners' chat on a local Telegram; no restaurant chat, no bot.
fn alerts(telegram: &FakeTelegram) -> tillgate::alerts::settings::Settings {
    use tillgate::alerts::settings::{FileSection, LimitsFile, validate};
    validate(FileSection {
        bot_token: Some(SecretString::from(TOKEN)),
        api_base: Some(telegram.base.clone()),
        owners_chat: Some(OWNERS),
        commands: Some(false),
        limits: LimitsFile {
            per_chat_interval_ms: Some(30),
            ..Default::default()
        },
        ..Default::default()
    })
    .expect("test alert settings are valid")
}

async fn spawn(
    b: crate::harness::Backend,
    fake: &FakeSmsRu,
    telegram: &FakeTelegram,
    caps: &str,
) -> TestApp {
    let (sms, alerts) = (settings(fake, caps), alerts(telegram));
    spawn_app_with(b, move |c: &mut Config| {
        c.set_section(sms);
        c.set_section(alerts);
    })
    .await
}

async fn messages(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/sms?limit=500").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the consumer applied everything and nothing is pending or
/// sending; the rows then.
async fn settled(app: &TestApp) -> Vec<Value> {
    app.wait_consumer("sms").await;
    for _ in 0..1000 {
        let m = messages(app).await;
        if m.iter()
            .all(|m| m["state"] != "pending" && m["state"] != "sending")
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("outbox did not settle: {:?}", messages(app).await);
}

fn state_of(rows: &[Value], guid: &str) -> String {
    rows.iter()
        .find(|m| m["order_guid"] == guid)
        .unwrap_or_else(|| panic!("no outbox row for {guid}: {rows:?}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sent(state: &str) -> bool {
    ["sent", "delivered"].contains(&state)
}

/// The sms_cap_reached alerts queued for the owners.
async fn cap_alerts(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/alerts?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["payload"]["source"] == "sms_cap_reached")
        .cloned()
        .collect()
}

fn refused_metric(text: &str, reason: &str) -> u64 {
    let series = format!("tillgate_sms_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

#[tokio::test]
async fn foreign_numbers_are_refused_and_never_reach_the_provider() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let telegram = FakeTelegram::start(Duration::from_millis(1)).await;
        let app = spawn(b, &fake, &telegram, "").await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let before = refused_metric(&metrics, "country");

        // The attack: three orders, three UK numbers, a link as the name.
        for n in 1..=3u32 {
            let phone = format!("+4470000000{n:02}");
            app.ingest(event(&guid(n), &phone, "ready")).await;
        }
        // A real guest after it, so that "nothing sent" is not "nothing works".
        app.ingest(event(&guid(4), "8 (925) 444-44-44", "ready"))
            .await;
        let rows = settled(&app).await;
        let got = fake.wait_received(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.requests(), 1, "sms.ru was asked to send: {got:?}");
        assert_eq!(fake.received()[0].to, "79254444444");

        for n in 1..=3u32 {
            let row = rows.iter().find(|m| m["order_guid"] == guid(n)).unwrap();
            assert_eq!(row["state"], "refused_country", "{row}");
            let why = row["error_text"].as_str().unwrap_or_default();
            assert!(why.contains("sms.allowed_country_codes"), "{row}");
            // Masked, as every phone the API shows.
            let phone = row["phone"].as_str().unwrap();
            assert!(
                phone.starts_with("+447") && !phone.contains("700000"),
                "{row}"
            );
        }
        assert!(sent(&state_of(&rows, &guid(4))));
        let listed = app
            .get_json("/api/sms?state=refused_country")
            .await
            .to_string();
        assert!(!listed.contains("70000000"), "full number listed: {listed}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(refused_metric(&metrics, "country") >= before + 3);
        // A country refusal is not a cap: the owners are not woken for it.
        assert!(cap_alerts(&app).await.is_empty());
        // The owner sees the refusals, in words, on the console's SMS page.
        add_user(&app, "owner", Role::Admin, &[]).await;
        let owner = sign_in(&app, "owner", PASSWORD).await.unwrap();
        let page = owner
            .get(&app, &format!("/sms?restaurant={REST}"))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            page.matches("Отказ: страна не разрешена").count(),
            3,
            "{page}"
        );
        assert!(page.contains("sms.allowed_country_codes"), "{page}");
        // And the limits in effect.
        assert!(page.contains("<b>300</b> в час"), "{page}");
        assert!(!page.contains("70000000"), "full number on the page");

        // One SMS per phone per order: the same order again, its guid
        // spelled in lower case, a new phone and a later kitchen step.
        app.ingest(event(
            &guid(4).to_lowercase(),
            "+7 925 555-55-55",
            "collected",
        ))
        .await;
        let rows = settled(&app).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), 1, "{:?}", fake.received());
        assert_eq!(rows.len(), 4, "{rows:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_flood_stops_at_the_cap_across_a_restart_and_the_owners_hear_once() {
    const CAP: usize = 3;
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let telegram = FakeTelegram::start(Duration::from_millis(1)).await;
        let caps = format!("hourly_cap = {CAP}\ndaily_cap = 100");
        let app = spawn(b, &fake, &telegram, &caps).await;

        let flood = 8u32;
        for n in 1..=flood {
            let phone = format!("+7 925 000-{:02}-{:02}", n / 100, n % 100);
            app.ingest(event(&guid(100 + n), &phone, "ready")).await;
        }
        let rows = settled(&app).await;
        fake.wait_received(CAP).await;
        for _ in 0..1000 {
            if telegram
                .sent()
                .iter()
                .any(|s| s.text().contains("refused_hourly_cap"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), CAP, "{:?}", fake.received());
        // The first orders in the log got theirs; the rest are refused.
        for n in 1..=flood {
            let state = state_of(&rows, &guid(100 + n));
            if n as usize <= CAP {
                assert!(sent(&state), "order {n}: {state}");
            } else {
                assert_eq!(state, "refused_hourly_cap", "order {n}");
            }
        }
        let why = rows
            .iter()
            .find(|m| m["state"] == "refused_hourly_cap")
            .unwrap();
        assert!(
            why["error_text"]
                .as_str()
                .unwrap()
                .contains("sms.hourly_cap"),
            "{why}"
        );
        let alerts = cap_alerts(&app).await;
        assert_eq!(
            alerts.len(),
            1,
            "one alert, not one per refusal: {alerts:?}"
        );
        assert_eq!(alerts[0]["chat_id"], OWNERS);
        assert_eq!(alerts[0]["rest_code"], REST);
        let told: Vec<String> = telegram
            .sent()
            .iter()
            .filter(|s| s.text().contains("refused_hourly_cap"))
            .map(|s| s.text().to_string())
            .collect();
        assert_eq!(told.len(), 1, "{:?}", telegram.sent());
        assert!(told[0].contains(REST), "{}", told[0]);

        // Restarted, the count and the alert are read from the outbox: the
        // hour is still full, and the owners were already told.
        let (config, dir) = app.stop().await;
        let app = start(config, dir).await;
        for n in 1..=2u32 {
            let phone = format!("+7 925 100-00-{n:02}");
            app.ingest(event(&guid(200 + n), &phone, "ready")).await;
        }
        let rows = settled(&app).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state_of(&rows, &guid(201)), "refused_hourly_cap");
        assert_eq!(state_of(&rows, &guid(202)), "refused_hourly_cap");
        assert_eq!(fake.received().len(), CAP, "{:?}", fake.received());
        assert_eq!(cap_alerts(&app).await.len(), 1);
        let refused = app
            .get_json("/api/sms?state=refused_hourly_cap&limit=500")
            .await["items"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(refused, flood as usize - CAP + 2);
        app.stop().await;
    }
}
