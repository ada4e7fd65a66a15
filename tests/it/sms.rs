//! Guest SMS: a day of kitchen events through the real server and a fake
//! sms.ru; delivery failures driven with an injected clock; bad input on
//! every path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tillgate::core::clock::{ManualClock, SharedClock};
use tillgate::core::config::{Config, Storage};
use tillgate::core::store::Db;
use tillgate::sms::delivery::Delivery;
use tillgate::sms::retention::Retention;
use tillgate::sms::status::StatusPoll;

use crate::fake_smsru::{FakeSmsRu, Fault};
use crate::harness::{Backend, TestApp, backends, fresh_pg_database, spawn_app_with, start};

const REST: &str = "199990093";
const OTHER_REST: &str = "199990094";
const API_ID: &str = "A1B2C3D4-SECRET-API-ID";
const STREAM: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";

static SEQ: AtomicU64 = AtomicU64::new(1);

fn order_guid(n: u32) -> String {
    format!("{{00000000-0000-4000-8000-{n:012}}}")
}

/// One "order changed" notify event in the notify layout (sessions beside
/// the order), with the dishes' kitchen states and optional phone props.
fn order_event(rest: &str, n: u32, dish_states: &[&str], props: &[(&str, &str)]) -> String {
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    let props_xml = if props.is_empty() {
        String::new()
    } else {
        let p: String = props
            .iter()
            .map(|(k, v)| format!(r#"<Prop name="{k}" value="{v}"/>"#))
            .collect();
        format!("<ExternalProps>{p}</ExternalProps>")
    };
    let dishes: String = dish_states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"<Dish id="{i}" code="{i}" name="Dish {i}" uni="{i}" state="3" price="61725" amount="61725" quantity="1000" kdsstate="{s}"/>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="{rest}" DateTime="2026-10-03T16:05:00" Situation="3" seqnumber="{seq}" guid="{STREAM}" name="Order Changed" ShiftNum="1" ShiftDate="2026-10-03T00:00:00">
<Station id="15003" code="1" name="MM_CASH" NetName="MM_CASH_169058"/>
<Order visit="1" orderIdent="{n}" guid="{guid}" orderName="{n}" orderSum="123450" seqNumber="{n}" openTime="2026-10-03T15:00:00">
<Table id="1" code="7" name="7"/>
{props_xml}
</Order>
<Session uni="1" state="3">{dishes}</Session>
<Item/>
</a>"#,
        guid = order_guid(n)
    )
}

fn sms_config(fake_base: &str, extra_rest: &str) -> tillgate::sms::Settings {
    let text = format!(
        r#"
[sms]
enabled = true
[sms.providers.smsru]
kind = "smsru"
api_id = "{API_ID}"
base_url = "{fake_base}"
[sms.restaurants.{REST}]
step = "ready"
name = "Pizza"
template = "Order {{order_number}} at {{restaurant_name}}: {{status}}. Table {{table}}, {{order_sum}}"
{extra_rest}
"#
    );
    let mut file =
        tillgate::core::config::parse_file(std::path::Path::new("test.toml"), &text).unwrap();
    tillgate::sms::validate(file.take_section("sms").parse().unwrap()).unwrap()
}

async fn spawn(b: Backend, fake: &FakeSmsRu) -> TestApp {
    let settings = sms_config(&fake.base, "");
    spawn_app_with(b, move |c: &mut Config| c.set_section(settings)).await
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn put_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .put(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn messages(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/sms?limit=500").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until no outbox row is pending or sending.
async fn wait_outbox_settled(app: &TestApp) {
    for _ in 0..1000 {
        let m = messages(app).await;
        if m.iter()
            .all(|m| m["state"] != "pending" && m["state"] != "sending")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("outbox did not settle: {:?}", messages(app).await);
}

const YES: (&str, &str) = ("phone_consent", "1");

#[tokio::test]
async fn a_day_sends_one_sms_per_consenting_guest_at_the_chosen_step() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let app = spawn(b, &fake).await;

        // 1: consent in the order's props; goes sent -> started -> ready -> taken.
        let p1 = [("phone", "8 (925) 111-11-11"), YES];
        // 2: phone but no consent.
        let p2 = [("phone", "+7 925 222-22-22")];
        // 4: consent; jumps from sent straight to collected (skips ready).
        let p4 = [("phone", "79254444444"), ("phone_consent", "да")];
        // 5: consent, but the kitchen only starts it today.
        let p5 = [("phone", "9255555555"), YES];
        // 6: consent, but the restaurant has no SMS settings.
        let p6 = [("phone", "9256666666"), YES];
        app.ingest(order_event(REST, 1, &["sent", "sent"], &p1))
            .await;
        app.ingest(order_event(REST, 2, &["sent"], &p2)).await;
        app.ingest(order_event(REST, 3, &["sent"], &[])).await;
        app.ingest(order_event(REST, 4, &["sent"], &p4)).await;
        app.ingest(order_event(REST, 5, &["sent"], &p5)).await;
        app.ingest(order_event(OTHER_REST, 6, &["sent"], &p6)).await;
        // 3: consent through the API (a QR menu form), before the kitchen is done.
        let (s, r) = post_json(
            &app,
            &format!("/api/orders/{}/contact", order_guid(3)),
            json!({"phone": "+7 (925) 333-33-33", "consent": true, "consent_at": "2026-10-03T15:01:00+03:00"}),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["phone"], "+7 925 ***-**-33");

        app.ingest(order_event(REST, 1, &["started", "ready"], &p1))
            .await;
        app.ingest(order_event(REST, 1, &["ready", "ready"], &p1))
            .await;
        app.ingest(order_event(REST, 1, &["taken", "ready"], &p1))
            .await;
        app.ingest(order_event(REST, 1, &["taken", "taken"], &p1))
            .await;
        app.ingest(order_event(REST, 2, &["ready"], &p2)).await;
        app.ingest(order_event(REST, 3, &["ready", "removed"], &[]))
            .await;
        app.ingest(order_event(REST, 4, &["collected"], &p4)).await;
        app.ingest(order_event(REST, 5, &["started"], &p5)).await;
        app.ingest(order_event(OTHER_REST, 6, &["ready"], &p6))
            .await;
        app.wait_consumer("sms").await;
        wait_outbox_settled(&app).await;

        let got = fake.wait_received(3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut to: Vec<String> = fake.received().iter().map(|r| r.to.clone()).collect();
        to.sort();
        assert_eq!(to, ["79251111111", "79253333333", "79254444444"], "{got:?}");
        let one = got.iter().find(|r| r.to == "79251111111").unwrap();
        assert_eq!(one.msg, "Order 1 at Pizza: готов. Table 7, 1 234,50");
        assert_eq!(
            fake.secret_in_url(),
            0,
            "the api_id (and the guest's number) go in the POST body, never in a URL"
        );
        assert_eq!(one.from, None, "empty sender must not be sent");
        let four = got.iter().find(|r| r.to == "79254444444").unwrap();
        assert!(
            four.msg.ends_with("собран. Table 7, 1 234,50"),
            "{}",
            four.msg
        );

        let list = app.get("/api/sms?limit=500").await.text().await.unwrap();
        for full in ["9251111111", "9252222222", "9253333333", "9254444444"] {
            assert!(!list.contains(full), "full phone in API answer: {list}");
        }
        let m = messages(&app).await;
        let states: Vec<(String, String, Value)> = m
            .iter()
            .map(|m| {
                (
                    m["order_guid"].as_str().unwrap().to_string(),
                    m["state"].as_str().unwrap().to_string(),
                    m["phone"].clone(),
                )
            })
            .collect();
        assert_eq!(states.len(), 4, "{states:?}");
        let by = |n: u32| {
            states
                .iter()
                .find(|s| s.0 == order_guid(n))
                .unwrap()
                .clone()
        };
        assert_eq!(by(1).2, "+7 925 ***-**-11");
        assert!(["sent", "delivered"].contains(&by(1).1.as_str()));
        assert_eq!(by(2).1, "no_consent");
        assert_eq!(by(2).2, Value::Null);
        assert!(["sent", "delivered"].contains(&by(3).1.as_str()));
        assert!(["sent", "delivered"].contains(&by(4).1.as_str()));
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tillgate_sms_sent_total"), "{metrics}");

        // Restart with the sms cursor reset (a full replay of the log) and
        // more events of the same orders: nothing is sent again.
        let (config, dir) = app.stop().await;
        let db = Db::open(&config.storage).await.unwrap();
        sqlx::query("UPDATE consumer_cursors SET position = 0 WHERE name = 'sms'")
            .execute(&db.write)
            .await
            .unwrap();
        db.close().await;
        let app = start(config, dir).await;
        app.ingest(order_event(REST, 1, &["collected"], &p1)).await;
        app.ingest(order_event(REST, 4, &["collected"], &p4)).await;
        app.wait_consumer("sms").await;
        wait_outbox_settled(&app).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), 3);
        assert_eq!(messages(&app).await.len(), 4);
        app.stop().await;
    }
}

#[tokio::test]
async fn restart_mid_delivery_neither_loses_nor_repeats() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        fake.set_delay(Duration::from_millis(150));
        let app = spawn(b, &fake).await;
        let n = 6u32;
        for i in 0..n {
            let phone = format!("92570000{:02}", i + 10);
            app.ingest(order_event(
                REST,
                100 + i,
                &["ready"],
                &[("phone", &phone), YES],
            ))
            .await;
        }
        fake.wait_received(1).await;
        let (config, dir) = app.stop().await;
        let before = fake.received().len();
        assert!(
            before < n as usize,
            "all sent before the restart; test proves nothing"
        );
        let app = start(config, dir).await;
        fake.wait_received(n as usize).await;
        wait_outbox_settled(&app).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut to: Vec<String> = fake.received().iter().map(|r| r.to.clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!(to.len(), n as usize, "lost one");
        assert_eq!(fake.received().len(), n as usize, "sent one twice");
        app.stop().await;
    }
}

async fn open_db(b: Backend) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = match b {
        Backend::Sqlite => Storage::Sqlite {
            path: dir.path().join("t.db"),
        },
        Backend::Postgres => Storage::Postgres {
            url: fresh_pg_database().await.into(),
        },
    };
    let db = Db::open(&storage).await.unwrap();
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap();
    (db, dir)
}

async fn insert_row(db: &Db, id: i64, phone: &str, now: i64) {
    sqlx::query(
        "INSERT INTO sms_outbox (id, order_guid, kind, rest_code, step, phone, phone_masked, body, provider, sender, state, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, 'kitchen', $3, 3, $4, 'masked', 'Your order is ready', 'smsru', NULL, 'pending', 0, $5, $5, $5)",
    )
    .bind(id)
    .bind(format!("order-{id}"))
    .bind(REST)
    .bind(phone)
    .bind(now)
    .execute(&db.write)
    .await
    .unwrap();
}

async fn row(db: &Db, id: i64) -> (String, i64, Option<i64>, i64) {
    sqlx::query_as(
        "SELECT state, attempts, error_code, next_attempt_at FROM sms_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db.read)
    .await
    .unwrap()
}

#[tokio::test]
async fn provider_errors_retry_fail_or_stop_as_sms_ru_means_them() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let (db, _dir) = open_db(b).await;
        let mut settings = sms_config(&fake.base, "");
        settings.max_attempts = 3;
        let settings = Arc::new(settings);
        let providers = Arc::new(tillgate::sms::build_providers(&settings));
        let tx = tillgate::core::bus::Bus::default();
        let mut events = tx.subscribe();
        let t0 = 1_800_000_000_000i64;
        let now = Arc::new(ManualClock::new(t0));
        let clock = SharedClock::from(now.clone());
        let d = Delivery::new(
            db.clone(),
            settings.clone(),
            providers.clone(),
            tx,
            clock.clone(),
        );
        let poll = StatusPoll::new(db.clone(), settings.status_poll, providers, clock);

        // Top-level 220 (rows go in id order): retried after retry_base
        // (30 s), then sent.
        fake.fail_next(Fault::Code(220));
        insert_row(&db, 2, "+79250000002", t0).await;
        // Per-number 202 in an OK answer: failed at once, never retried.
        fake.number_error("79250000202", 202);
        insert_row(&db, 10, "+79250000202", t0).await;
        let o = d.pass().await.unwrap();
        assert_eq!((o.sent, o.failed, o.retried), (0, 1, 1), "{o:?}");
        assert_eq!(row(&db, 10).await.0, "failed");
        assert_eq!(row(&db, 10).await.2, Some(202));
        let r2 = row(&db, 2).await;
        assert_eq!(
            (r2.0.as_str(), r2.1, r2.2, r2.3),
            ("pending", 1, Some(220), t0 + 30_000)
        );
        let o = d.pass().await.unwrap();
        assert!(o.is_idle(), "retried before its time: {o:?}");
        now.set(t0 + 30_000);
        let o = d.pass().await.unwrap();
        assert_eq!(o.sent, 1, "{o:?}");
        assert_eq!(row(&db, 2).await.0, "sent");
        assert_eq!(fake.received().len(), 1);

        // HTTP 500 three times: gives up after max_attempts (3) with doubling delays.
        for _ in 0..3 {
            fake.fail_next(Fault::Http500);
        }
        insert_row(&db, 3, "+79250000003", t0 + 30_000).await;
        d.pass().await.unwrap();
        assert_eq!(row(&db, 3).await.3, t0 + 60_000);
        now.set(t0 + 60_000);
        d.pass().await.unwrap();
        assert_eq!(row(&db, 3).await.3, t0 + 120_000);
        now.set(t0 + 120_000);
        d.pass().await.unwrap();
        assert_eq!(row(&db, 3).await.0, "failed");
        assert_eq!(row(&db, 3).await.1, 3);

        // 201 no money: the row waits, sending stops, the owner is told.
        fake.fail_next(Fault::Code(201));
        insert_row(&db, 4, "+79250000004", t0 + 120_000).await;
        insert_row(&db, 5, "+79250000005", t0 + 120_000).await;
        let o = d.pass().await.unwrap();
        assert_eq!((o.sent, o.held), (0, 2), "{o:?}");
        let ev = events.try_recv().unwrap();
        assert_eq!(ev.kind.as_str(), "sms_stopped");
        assert!(ev.text.contains("201"), "{}", ev.text);
        assert!(!ev.text.contains(API_ID));
        let requests = fake.requests();
        let o = d.pass().await.unwrap();
        assert_eq!(o.held, 2);
        assert_eq!(fake.requests(), requests, "a stopped provider was called");
        assert!(tillgate::sms::store::resume(&db, "smsru").await.unwrap());
        let o = d.pass().await.unwrap();
        assert_eq!(o.sent, 2, "{o:?}");

        // Delivery status: polled once the interval has passed.
        now.set(t0 + 120_000 + 300_000);
        let polled = poll.pass().await.unwrap();
        assert_eq!(polled, 3, "{polled:?}");
        assert_eq!(row(&db, 2).await.0, "delivered");
        assert_eq!(row(&db, 4).await.0, "delivered");

        // Interrupted sends are put back by recover().
        sqlx::query("UPDATE sms_outbox SET state = 'sending' WHERE id = 10")
            .execute(&db.write)
            .await
            .unwrap();
        assert_eq!(d.recover().await.unwrap(), 1);
        assert_eq!(row(&db, 10).await.0, "pending");
        db.close().await;
    }
}

/// Rows queued before `sms.allowed_country_codes` was narrowed (or before
/// the rule existed) are refused by delivery, not sent.
#[tokio::test]
async fn delivery_refuses_queued_rows_to_countries_no_longer_allowed() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let (db, _dir) = open_db(b).await;
        let settings = Arc::new(sms_config(&fake.base, ""));
        let providers = Arc::new(tillgate::sms::build_providers(&settings));
        let t0 = 1_800_000_000_000i64;
        let clock = SharedClock::from(Arc::new(ManualClock::new(t0)));
        let bus = tillgate::core::bus::Bus::default();
        let d = Delivery::new(db.clone(), settings, providers, bus, clock);
        insert_row(&db, 1, "+447000000001", t0).await;
        insert_row(&db, 2, "+79250000002", t0).await;
        let o = d.pass().await.unwrap();
        assert_eq!((o.sent, o.refused, o.failed), (1, 1, 0), "{o:?}");
        assert_eq!(fake.requests(), 1);
        assert_eq!(fake.received()[0].to, "79250000002");
        let (state, phone, text): (String, Option<String>, Option<String>) =
            sqlx::query_as("SELECT state, phone, error_text FROM sms_outbox WHERE id = 1")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(state, "refused_country");
        assert_eq!(phone, None, "a refused row keeps the masked phone only");
        assert!(text.unwrap().contains("sms.allowed_country_codes"));
        assert!(d.pass().await.unwrap().is_idle());
        db.close().await;
    }
}

#[tokio::test]
async fn bad_api_id_stops_and_wrong_credentials_never_leak() {
    for b in backends() {
        let fake = FakeSmsRu::start("the-real-key").await;
        let app = spawn(b, &fake).await;
        let r = app.get("/api/sms/balance").await;
        assert_eq!(r.status(), 502);
        let text = r.text().await.unwrap();
        assert!(text.contains("200"), "{text}");
        assert!(!text.contains(API_ID), "{text}");
        app.stop().await;

        // Network error: reqwest's message would carry the URL with api_id.
        let settings = sms_config("http://127.0.0.1:9", "");
        let app = spawn_app_with(b, move |c: &mut Config| c.set_section(settings)).await;
        let r = app.get("/api/sms/balance").await;
        assert_eq!(r.status(), 502);
        let text = r.text().await.unwrap();
        assert!(text.contains("network"), "{text}");
        assert!(!text.contains(API_ID), "{text}");
        app.stop().await;
    }
}

#[tokio::test]
async fn retention_deletes_phones_and_keeps_the_masked_form() {
    for b in backends() {
        let (db, _dir) = open_db(b).await;
        let t0 = 1_800_000_000_000i64;
        insert_row(&db, 1, "+79250000001", t0).await;
        let phone = tillgate::core::phone::PhoneE164::parse("89250000001").unwrap();
        let mut conn = db.write.acquire().await.unwrap();
        tillgate::sms::store::save_contact(&mut conn, "{G}", &phone, t0, "api", t0)
            .await
            .unwrap();
        drop(conn);
        let now = Arc::new(ManualClock::new(t0 + 29 * 86_400_000));
        let r = Retention::new(
            db.clone(),
            Duration::from_secs(30 * 86_400),
            SharedClock::from(now.clone()),
        );
        assert_eq!(r.pass().await.unwrap(), 0);
        now.set(t0 + 30 * 86_400_000 + 1);
        assert_eq!(r.pass().await.unwrap(), 2);
        let left: (Option<String>, Option<String>) =
            sqlx::query_as("SELECT phone, phone_masked FROM sms_outbox WHERE id = 1")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(left, (None, Some("masked".into())));
        let contacts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_contacts")
            .fetch_one(&db.read)
            .await
            .unwrap();
        assert_eq!(contacts, 0);
        db.close().await;
    }
}

#[tokio::test]
async fn balance_settings_and_bad_input_on_every_path() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let app = spawn(b, &fake).await;
        let bal = app.get_json("/api/sms/balance").await;
        assert_eq!(bal["balance_kopecks"], 12345);
        assert_eq!(bal["balance"], "123,45");
        assert_eq!(
            app.get("/api/sms/balance?provider=nope").await.status(),
            404
        );

        // Contacts.
        let g = order_guid(9);
        let path = format!("/api/orders/{g}/contact");
        let cases = [
            (
                json!({"phone": "12345", "consent": true, "consent_at": "2026-10-03T15:00:00Z"}),
                422,
                "bad_phone",
            ),
            (json!({"phone": "+7 925 123-45-67"}), 422, "bad_json"),
            (
                json!({"phone": "+7 925 123-45-67", "consent": "yes"}),
                422,
                "bad_json",
            ),
            (
                json!({"phone": "+7 925 123-45-67", "consent": true}),
                422,
                "consent_time_required",
            ),
            (
                json!({"phone": "+7 925 123-45-67", "consent": true, "consent_at": "yesterday"}),
                422,
                "bad_consent_time",
            ),
            (
                json!({"phone": "+7 925 123-45-67", "consent": true, "consent_at": "2999-01-01T00:00:00Z"}),
                422,
                "bad_consent_time",
            ),
            (
                json!({"phone": "+7 925 123-45-67", "consent": true, "consent_at": "2026-10-03T15:00:00Z", "name": "x"}),
                422,
                "bad_json",
            ),
        ];
        for (body, status, code) in cases {
            let (s, r) = post_json(&app, &path, body.clone()).await;
            assert_eq!(
                (s, r["error"]["code"].as_str().unwrap_or("")),
                (status, code),
                "{body} -> {r}"
            );
        }
        let r = app
            .client
            .post(app.url(&path))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let (s, r) = post_json(
            &app,
            "/api/orders/not-a-guid/contact",
            json!({"phone": "9251234567", "consent": false}),
        )
        .await;
        assert_eq!((s, r["error"]["code"].as_str()), (400, Some("bad_path")));
        let (s, r) = post_json(&app, &path, json!({"phone": "9251234567", "consent": true, "consent_at": "2026-10-03T15:00:00+03:00"})).await;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post_json(
            &app,
            &path,
            json!({"phone": "9251234567", "consent": false}),
        )
        .await;
        assert_eq!(
            (s, &r["stored"], &r["withdrawn"]),
            (200, &json!(false), &json!(true))
        );
        // The orders route beside it still answers.
        assert_eq!(app.get(&format!("/api/orders/{g}")).await.status(), 404);

        // Settings.
        let sp = format!("/api/sms/settings/{REST}");
        let s = app.get_json(&sp).await;
        assert_eq!(s["step"], "ready");
        let (st, r) = put_json(
            &app,
            &sp,
            json!({"step": 6, "template": "Заказ {order_number} {status}", "sender": "Pizza"}),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["length"]["encoding"], "ucs2");
        assert_eq!(r["length"]["parts"], 1);
        assert_eq!(r["warnings"], json!([]));
        assert_eq!(app.get_json(&sp).await["step"], "collected");
        let long = "Ж".repeat(100);
        let (st, r) = put_json(&app, &sp, json!({"template": long})).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["length"]["parts"], 2);
        assert!(
            r["warnings"][0].as_str().unwrap().contains("2 SMS parts"),
            "{r}"
        );
        let bad = [
            (json!({"step": "boiling"}), "`step`"),
            (json!({"step": 1}), "`step`"),
            (json!({"template": "Hi {guest}"}), "`template`"),
            (json!({"template": "Ж".repeat(600)}), "at most 8"),
            (json!({"provider": "other"}), "`provider`"),
            (json!({"sender": "A very long sender"}), "`sender`"),
        ];
        for (body, expect) in bad {
            let (st, r) = put_json(&app, &sp, body.clone()).await;
            assert_eq!(st, 422, "{body} -> {r}");
            assert_eq!(r["error"]["code"], "invalid_settings");
            assert!(
                r["error"]["message"].as_str().unwrap().contains(expect),
                "{r}"
            );
        }
        let (st, _) = put_json(&app, &sp, json!({"colour": "red"})).await;
        assert_eq!(st, 422);
        let (st, _) = put_json(&app, "/api/sms/settings/bad%20code", json!({})).await;
        assert_eq!(st, 400);
        // A refused save left the last good settings in place.
        assert_eq!(app.get_json(&sp).await["template"], "Ж".repeat(100));

        // Listing.
        assert_eq!(app.get("/api/sms?limit=0").await.status(), 400);
        assert_eq!(app.get("/api/sms?state=bogus").await.status(), 400);
        assert_eq!(app.get("/api/sms?after=x").await.status(), 400);
        assert_eq!(app.get("/api/sms?sort=x").await.status(), 400);
        app.stop().await;
    }
}

#[tokio::test]
async fn list_paginates_and_test_mode_and_sender_reach_sms_ru() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let mut settings = sms_config(&fake.base, "sender = \"PizzaBar\"");
        if let Some(tillgate::sms::ProviderSettings::SmsRu { test, .. }) =
            settings.providers.get_mut("smsru")
        {
            *test = true;
        }
        let app = spawn_app_with(b, move |c: &mut Config| c.set_section(settings)).await;
        for i in 0..5u32 {
            let phone = format!("92580000{:02}", i + 10);
            app.ingest(order_event(
                REST,
                200 + i,
                &["ready"],
                &[("phone", &phone), YES],
            ))
            .await;
        }
        app.wait_consumer("sms").await;
        fake.wait_received(5).await;
        assert!(
            fake.received()
                .iter()
                .all(|r| r.test && r.from.as_deref() == Some("PizzaBar"))
        );
        let p1 = app.get_json("/api/sms?limit=2").await;
        assert_eq!(p1["items"].as_array().unwrap().len(), 2);
        let next = p1["next"].as_i64().unwrap();
        let p2 = app
            .get_json(&format!("/api/sms?limit=2&after={next}"))
            .await;
        let p3 = app
            .get_json(&format!(
                "/api/sms?limit=2&after={}",
                p2["next"].as_i64().unwrap()
            ))
            .await;
        assert_eq!(p3["items"].as_array().unwrap().len(), 1);
        assert_eq!(p3["next"], Value::Null);
        app.stop().await;
    }
}

/// A generic aggregator: records what it got; answers from a script.
async fn fake_aggregator(
    script: Vec<(u16, &'static str)>,
) -> (String, Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>) {
    use axum::routing::post;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        script,
    )));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/v1/send",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            let script = script.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                g.lock().unwrap().push((body, auth));
                let (status, answer) = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((200, r#"{"id":1}"#));
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    answer.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

#[tokio::test]
async fn generic_http_provider_renders_the_request_and_maps_statuses() {
    for b in backends() {
        let (base, got) = fake_aggregator(vec![
            (503, "busy"),
            (200, r#"{"result":{"id":"m-77"}}"#),
            (400, r#"{"error":"bad number 79250000001"}"#),
            (401, "unauthorized"),
        ])
        .await;
        let text = format!(
            r#"
[sms]
enabled = true
[sms.providers.agg]
kind = "http"
url = "{base}/v1/send"
body = '{{"to":"{{{{ to }}}}","text":{{{{ text|tojson }}}},"from":"{{{{ sender }}}}"}}'
authorization = "Bearer agg-secret"
id_pointer = "/result/id"
max_parts = 3
"#
        );
        let mut file =
            tillgate::core::config::parse_file(std::path::Path::new("t.toml"), &text).unwrap();
        let settings =
            Arc::new(tillgate::sms::validate(file.take_section("sms").parse().unwrap()).unwrap());
        let (db, _dir) = open_db(b).await;
        let providers = Arc::new(tillgate::sms::build_providers(&settings));
        let tx = tillgate::core::bus::Bus::default();
        let mut events = tx.subscribe();
        let t0 = 1_800_000_000_000i64;
        let now = Arc::new(ManualClock::new(t0));
        let d = Delivery::new(
            db.clone(),
            settings.clone(),
            providers.clone(),
            tx,
            SharedClock::from(now.clone()),
        );
        let ins = |id: i64| {
            let db = db.clone();
            async move {
                insert_row(&db, id, "+79250000001", t0).await;
                sqlx::query(
                    "UPDATE sms_outbox SET provider = 'agg', body = 'Готов \"1\"' WHERE id = $1",
                )
                .bind(id)
                .execute(&db.write)
                .await
                .unwrap();
            }
        };
        ins(1).await;
        let o = d.pass().await.unwrap();
        assert_eq!(o.retried, 1, "503 is temporary: {o:?}");
        now.set(t0 + 30_000);
        let o = d.pass().await.unwrap();
        assert_eq!(o.sent, 1, "{o:?}");
        let pid: Option<String> =
            sqlx::query_scalar("SELECT provider_id FROM sms_outbox WHERE id = 1")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(pid.as_deref(), Some("m-77"));
        {
            let g = got.lock().unwrap();
            let body: Value = serde_json::from_str(&g[1].0).unwrap();
            assert_eq!(
                body,
                json!({"to": "79250000001", "text": "Готов \"1\"", "from": ""})
            );
            assert_eq!(g[1].1.as_deref(), Some("Bearer agg-secret"));
        }
        ins(2).await;
        let o = d.pass().await.unwrap();
        assert_eq!(o.failed, 1, "400 is permanent: {o:?}");
        // The aggregator echoed the number: only its masked form is kept.
        let text: Option<String> =
            sqlx::query_scalar("SELECT error_text FROM sms_outbox WHERE id = 2")
                .fetch_one(&db.read)
                .await
                .unwrap();
        let text = text.unwrap_or_default();
        assert!(
            text.contains("+7 925 ***-**-01") && !text.contains("9250000001"),
            "{text}"
        );
        ins(3).await;
        let o = d.pass().await.unwrap();
        assert_eq!(o.held, 1, "401 stops: {o:?}");
        let ev = events.try_recv().unwrap();
        assert_eq!(ev.kind.as_str(), "sms_stopped");
        assert!(!ev.text.contains("agg-secret"));
        // The generic contract has no balance.
        let e = providers["agg"].balance().await.unwrap_err();
        assert!(e.to_string().contains("does not support"), "{e}");
        db.close().await;
    }
}

#[tokio::test]
async fn cli_balance_reads_the_config_and_asks_the_provider() {
    let fake = FakeSmsRu::start(API_ID).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tillgate.toml");
    let write = |api_id: &str| {
        std::fs::write(
            &path,
            format!(
                "data_dir = \"{}\"\n[sms]\n[sms.providers.main]\nkind = \"smsru\"\napi_id = \"{api_id}\"\nbase_url = \"{}\"\n",
                dir.path().display(),
                fake.base
            ),
        )
        .unwrap();
    };
    let args = |provider: Option<&str>| tillgate::sms::CliArgs {
        opts: tillgate::core::config::ServerOpts {
            config: Some(path.clone()),
            ..Default::default()
        },
        command: tillgate::sms::SmsCommand::Balance {
            provider: provider.map(str::to_string),
        },
    };
    write(API_ID);
    tillgate::sms::run_cli(args(None), &tillgate::app::cli::ctx())
        .await
        .unwrap();
    let e = tillgate::sms::run_cli(args(Some("other")), &tillgate::app::cli::ctx())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no SMS provider named"), "{e}");
    write("wrong-key-123");
    let e = tillgate::sms::run_cli(args(None), &tillgate::app::cli::ctx())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("200") && !e.contains("wrong-key-123"), "{e}");
    std::fs::write(&path, "[sms]\nretention_days = -1\n").unwrap();
    assert!(
        tillgate::sms::run_cli(args(None), &tillgate::app::cli::ctx())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn simulated_day_texts_each_consenting_guest_once_when_ready() {
    use tillgate_simulate::{Scenario, generate};
    let generated = generate(&Scenario {
        restaurants: 2,
        orders: 8,
        phone_share_percent: 50,
        seed: 7,
        ..Scenario::default()
    });
    // Restaurant 100's register asks guests for consent; 101's does not, so
    // its phones must never be texted.
    let (r100, r101) = ("199990100", "199990101");
    let reaches_ready = |steps: &[String]| {
        steps
            .iter()
            .any(|s| ["ready", "taken", "collect", "collected"].contains(&s.as_str()))
    };
    let mut expected: Vec<String> = generated
        .truth
        .orders
        .values()
        .filter(|o| o.rest_code == r100 && reaches_ready(&o.kds_steps))
        .filter_map(|o| {
            o.phone
                .as_ref()
                .map(|p| p.trim_start_matches('+').to_string())
        })
        .collect();
    expected.sort();
    assert!(
        expected.len() >= 2,
        "scenario has too few phones to prove anything"
    );
    let phones_101 = generated
        .truth
        .orders
        .values()
        .filter(|o| o.rest_code == r101 && o.phone.is_some() && reaches_ready(&o.kds_steps))
        .count();
    assert!(phones_101 > 0, "scenario has no unconsented phones");

    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let text = format!(
            r#"
[sms]
enabled = true
[sms.providers.smsru]
kind = "smsru"
api_id = "{API_ID}"
base_url = "{}"
[sms.restaurants.{r100}]
step = 3
register_collects_consent = true
[sms.restaurants.{r101}]
step = "ready"
"#,
            fake.base
        );
        let mut file =
            tillgate::core::config::parse_file(std::path::Path::new("t.toml"), &text).unwrap();
        let settings = tillgate::sms::validate(file.take_section("sms").parse().unwrap()).unwrap();
        let app = spawn_app_with(b, move |c: &mut Config| c.set_section(settings)).await;
        for server in &generated.servers {
            for e in &server.events {
                app.ingest(e.xml.clone()).await;
            }
        }
        app.wait_consumer("sms").await;
        wait_outbox_settled(&app).await;
        fake.wait_received(expected.len()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got: Vec<String> = fake.received().iter().map(|r| r.to.clone()).collect();
        got.sort();
        assert_eq!(
            got, expected,
            "one SMS per consenting guest, none for the others"
        );
        let m = messages(&app).await;
        let no_consent_101 = m
            .iter()
            .filter(|m| m["restcode"] == r101 && m["state"] == "no_consent")
            .count();
        assert!(no_consent_101 >= phones_101, "{m:?}");
        assert!(
            m.iter()
                .all(|m| m["restcode"] != r101 || m["state"] == "no_consent")
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn switching_sms_on_over_old_history_texts_nobody() {
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        // Running for a while with SMS off: orders reach "ready".
        let mut off = sms_config(&fake.base, "");
        off.enabled = false;
        let app = spawn_app_with(b, move |c: &mut Config| c.set_section(off)).await;
        app.ingest(order_event(
            REST,
            300,
            &["ready"],
            &[("phone", "9253000000"), YES],
        ))
        .await;
        app.ingest(order_event(
            REST,
            301,
            &["sent"],
            &[("phone", "9253010000"), YES],
        ))
        .await;
        let (mut config, dir) = app.stop().await;
        // Those events were received two hours ago.
        let db = Db::open(&config.storage).await.unwrap();
        sqlx::query("UPDATE events SET received_at = received_at - 7200000")
            .execute(&db.write)
            .await
            .unwrap();
        db.close().await;
        config.set_section(sms_config(&fake.base, ""));
        let app = start(config, dir).await;
        // A fresh event of the old order 301 reaching "ready" still counts.
        app.ingest(order_event(
            REST,
            301,
            &["ready"],
            &[("phone", "9253010000"), YES],
        ))
        .await;
        app.wait_consumer("sms").await;
        wait_outbox_settled(&app).await;
        let got = fake.wait_received(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), 1, "{got:?}");
        assert_eq!(got[0].to, "79253010000");
        let m = messages(&app).await;
        assert_eq!(m.len(), 1, "{m:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn delivery_rests_until_the_next_due_row_or_a_wake_up() {
    use tillgate::core::outbox::{OutboxWorker, Step};
    for b in backends() {
        let fake = FakeSmsRu::start(API_ID).await;
        let (db, _dir) = open_db(b).await;
        let settings = Arc::new(sms_config(&fake.base, ""));
        let providers = Arc::new(tillgate::sms::build_providers(&settings));
        let t0 = 1_800_000_000_000i64;
        let now = Arc::new(ManualClock::new(t0));
        let mut d = Delivery::new(
            db.clone(),
            settings.clone(),
            providers,
            tillgate::core::bus::Bus::default(),
            SharedClock::from(now.clone()),
        );
        // Nothing queued: rest until woken.
        assert_eq!(d.run_once().await.unwrap(), Step::Idle);
        // A temporary failure: rest until its retry is due.
        fake.fail_next(Fault::Code(220));
        insert_row(&db, 1, "+79250000001", t0).await;
        assert_eq!(d.run_once().await.unwrap(), Step::WaitUntil(t0 + 30_000));
        // A row due sooner shortens the rest.
        insert_row(&db, 2, "+79250000002", t0 + 10_000).await;
        assert_eq!(d.run_once().await.unwrap(), Step::WaitUntil(t0 + 10_000));
        now.set(t0 + 30_000);
        assert_eq!(d.run_once().await.unwrap(), Step::Idle);
        assert_eq!(fake.received().len(), 2);
        // Rows held by a stopped provider are not due: rest until the
        // resume wakes the worker.
        fake.fail_next(Fault::Code(201));
        insert_row(&db, 3, "+79250000003", t0 + 30_000).await;
        assert_eq!(d.run_once().await.unwrap(), Step::Idle);
        assert!(tillgate::sms::store::resume(&db, "smsru").await.unwrap());
        // After a resume the held row is due at once.
        let mut w = Delivery::new(
            db.clone(),
            settings.clone(),
            Arc::new(std::collections::HashMap::new()),
            tillgate::core::bus::Bus::default(),
            SharedClock::from(now.clone()),
        );
        assert_eq!(
            tillgate::sms::store::next_due(&db).await.unwrap(),
            Some(t0 + 30_000)
        );
        // A provider no longer configured: failed, not retried for ever.
        assert_eq!(w.run_once().await.unwrap(), Step::Idle);
        let (state, ..) = row(&db, 3).await;
        assert_eq!(state, "failed");
        db.close().await;
    }
}

#[tokio::test]
async fn sms_metrics_are_listed_before_the_first_message() {
    let fake = FakeSmsRu::start(API_ID).await;
    let app = spawn(Backend::Sqlite, &fake).await;
    let m = app.get("/metrics").await.text().await.unwrap();
    for expect in [
        "# HELP tillgate_sms_sent_total",
        "# HELP tillgate_sms_failed_total",
        r#"tillgate_sms_sent_total{provider="smsru"}"#,
        r#"provider="smsru",reason="gave_up""#,
        r#"provider="smsru",reason="refused""#,
        r#"provider="-",reason="unsendable""#,
        "# HELP tillgate_sms_refused_total",
        r#"tillgate_sms_refused_total{reason="country"}"#,
        r#"tillgate_sms_refused_total{reason="hourly_cap"}"#,
        r#"tillgate_sms_refused_total{reason="daily_cap"}"#,
    ] {
        assert!(m.contains(expect), "{expect} missing from {m}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refused_contact_body_never_echoes_the_phone() {
    let fake = FakeSmsRu::start(API_ID).await;
    let app = spawn(Backend::Sqlite, &fake).await;
    let path = format!("/api/orders/{}/contact", order_guid(11));
    let (s, r) = post_json(
        &app,
        &path,
        json!({"phone": 79251234567u64, "consent": true, "consent_at": "2026-10-03T15:00:00Z"}),
    )
    .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("bad_json")),
        "{r}"
    );
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        !msg.contains("9251234567") && msg.contains("+7 925 ***-**-67"),
        "{msg}"
    );
    let (s, r) = post_json(
        &app,
        &path,
        json!({"phone": "9251234567", "consent": true, "consent_at": "89251234567"}),
    )
    .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("bad_consent_time")),
        "{r}"
    );
    assert!(!r.to_string().contains("9251234567"), "{r}");
    app.stop().await;
}
