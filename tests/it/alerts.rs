//! Owner alerts: rules, shift report, Telegram delivery, bot commands.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rk7::{
    Discount, Dish, Event, Guid, Kopecks, LineState, LocalDateTime, Order, Pay, Person, PrintCheck,
    Ref, RestCode, Server, Session, Situation, Station, Thousandths, Void,
};
use secrecy::SecretString;
use tillgate::alerts::AlertKind;
use tillgate::alerts::payload::{Alert, OrderRef};
use tillgate::alerts::report::{self, ShiftReport};
use tillgate::alerts::sender::{Outcome, Sender};
use tillgate::alerts::settings::{self, FileSection, Lang};
use tillgate::alerts::store::{self, AlertState};
use tillgate::alerts::telegram::Client;
use tillgate::core::clock::{ManualClock, SharedClock};
use tillgate::core::config::Config;
use tillgate::core::store::Db;

use crate::fake_telegram::{FakeTelegram, Script, Sent, TOKEN};
use crate::harness::{Backend, TestApp, backends, fresh_pg_database, spawn_app_with, start};

const REST: &str = "199990093";
const REST_CHAT: i64 = -100_500;
const OWNERS: i64 = 4242;
const G1: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";
const G2: &str = "{9ECCB1B5-97EE-4B88-9840-8568F05586D0}";

fn t(s: &str) -> LocalDateTime {
    LocalDateTime::parse(s).unwrap()
}

fn person(name: &str) -> Person {
    Person {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// An event of cash server 1 (stream G1) or 2 (stream G2).
fn ev(server: u8, seq: u64, situation: Situation, time: &str, shift: i64) -> Event {
    let (guid, sid, stid, sname) = match server {
        1 => (G1, 15002, 15003, "CASH_1"),
        _ => (G2, 25002, 25003, "CASH_2"),
    };
    Event {
        rest_code: Some(RestCode(REST.into())),
        date_time: Some(t(time)),
        seqnumber: Some(seq),
        guid: Some(Guid::parse(guid).unwrap()),
        shift_num: Some(shift),
        shift_date: Some(t("2026-11-23T00:00:00")),
        station: Some(Station {
            id: Some(stid),
            code: Some(1),
            name: Some(sname.into()),
            ..Default::default()
        }),
        server: Some(Server {
            id: Some(sid),
            code: Some(sid),
            name: Some("MID".into()),
            ..Default::default()
        }),
        waiter: Some(person("Кассир Анна")),
        ..Event::new(situation)
    }
}

fn dish(uni: i64, name: &str, qty: i64, price: i64, state: LineState) -> Dish {
    Dish {
        id: Some(1000 + uni),
        code: Some(uni),
        name: Some(name.into()),
        uni: Some(uni),
        state: Some(state),
        price: Some(Kopecks(price)),
        amount: Some(Kopecks(price * qty / 1000)),
        quantity: Some(Thousandths(qty)),
        ..Default::default()
    }
}

fn order(guid: u128, name: &str, sum: i64, session: Session) -> Order {
    Order {
        visit: Some(guid as i64),
        order_ident: Some(1),
        guid: Some(Guid::from_u128(guid)),
        order_name: Some(name.into()),
        order_sum: Some(Kopecks(sum)),
        table: Some(Ref {
            name: Some("5".into()),
            ..Default::default()
        }),
        waiter: Some(person("Официант Олег")),
        sessions: vec![session],
        ..Default::default()
    }
}

fn check(num: i64, bill: bool, amount: i64, time: &str) -> PrintCheck {
    PrintCheck {
        check_num: Some(num),
        amount: Some(Kopecks(amount)),
        bill: Some(bill),
        deleted: Some(false),
        print_time: Some(t(time)),
        author: Some(person("Кассир Анна")),
        ..Default::default()
    }
}

fn deleted(mut c: PrintCheck, manager: &str, reason: &str) -> PrintCheck {
    c.deleted = Some(true);
    c.delete_manager = Some(person(manager));
    c.reason = Some(Ref {
        name: Some(reason.into()),
        ..Default::default()
    });
    c
}

fn pay(name: &str, amount: i64) -> Pay {
    Pay {
        code: Some(if name == "Наличные" { 1 } else { 2 }),
        name: Some(name.into()),
        amount: Some(Kopecks(amount)),
        deleted: Some(false),
        ..Default::default()
    }
}

fn alerts_config(c: &mut Config, api_base: &str, extra: impl FnOnce(&mut FileSection)) {
    let mut f = FileSection {
        bot_token: Some(SecretString::from(TOKEN)),
        api_base: Some(api_base.to_string()),
        owners_chat: Some(OWNERS),
        commands: Some(false),
        limits: settings::LimitsFile {
            per_chat_interval_ms: Some(30),
            ..Default::default()
        },
        restaurants: vec![settings::RestaurantFile {
            rest_code: REST.into(),
            name: Some("Кафе <Ромашка> & Co".into()),
            chat: Some(REST_CHAT),
            ..Default::default()
        }],
        ..Default::default()
    };
    extra(&mut f);
    c.set_section(settings::validate(f).expect("test alert settings are valid"));
}

async fn app_with_telegram(
    b: Backend,
    fake: &FakeTelegram,
    extra: impl FnOnce(&mut FileSection),
) -> TestApp {
    let base = fake.base.clone();
    spawn_app_with(b, move |c| alerts_config(c, &base, extra)).await
}

async fn alert_rows(app: &TestApp) -> Vec<serde_json::Value> {
    app.wait_consumer("alerts").await;
    app.get_json("/api/alerts?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn kinds_for(rows: &[serde_json::Value], chat: i64) -> Vec<String> {
    rows.iter()
        .filter(|r| r["chat_id"] == chat)
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

/// One order's story: pre-bill, void, pre-bill cancelled, discount, receipt,
/// receipt deleted, station closed.
fn story() -> Vec<Event> {
    let o = 0xA1;
    let borscht = |qty, state| dish(1, "Борщ <острый>", qty, 30000, state);
    let mut out = vec![ev(
        1,
        1,
        Situation::ServerOrStationStarted,
        "2026-11-23T10:00:00",
        1,
    )];
    let mut e = ev(1, 2, Situation::NewOrder, "2026-11-23T12:00:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        60000,
        Session {
            dishes: vec![borscht(2000, LineState::Open)],
            ..Default::default()
        },
    ));
    out.push(e);
    let prebill = check(1, true, 60000, "2026-11-23T12:10:00");
    let mut e = ev(1, 3, Situation::OrderChanged, "2026-11-23T12:10:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        60000,
        Session {
            dishes: vec![borscht(2000, LineState::Printed)],
            print_checks: vec![prebill.clone()],
            ..Default::default()
        },
    ));
    out.push(e);
    let mut voided = borscht(1000, LineState::Printed);
    voided.voids = vec![Void {
        quantity: Some(Thousandths(1000)),
        amount: Some(Kopecks(30000)),
        open_name: Some("Гость передумал".into()),
        author: Some(person("Менеджер Пётр")),
        date_time: Some(t("2026-11-23T12:20:00")),
        ..Default::default()
    }];
    let mut e = ev(1, 4, Situation::OrderChanged, "2026-11-23T12:20:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        30000,
        Session {
            dishes: vec![voided.clone()],
            print_checks: vec![prebill.clone()],
            ..Default::default()
        },
    ));
    out.push(e);
    let prebill_del = deleted(prebill, "Менеджер Пётр", "Ошибка");
    let mut e = ev(1, 5, Situation::OrderChanged, "2026-11-23T12:30:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        30000,
        Session {
            dishes: vec![voided.clone()],
            print_checks: vec![prebill_del.clone()],
            ..Default::default()
        },
    ));
    out.push(e);
    let disc = Discount {
        code: Some(7),
        name: Some("Сотрудник".into()),
        amount: Some(Kopecks(-15000)),
        deleted: Some(false),
        ..Default::default()
    };
    let mut e = ev(1, 6, Situation::OrderChanged, "2026-11-23T12:40:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        15000,
        Session {
            dishes: vec![voided.clone()],
            discounts: vec![disc.clone()],
            print_checks: vec![prebill_del.clone()],
            ..Default::default()
        },
    ));
    out.push(e);
    let receipt = check(7, false, 15000, "2026-11-23T12:50:00");
    let mut e = ev(1, 7, Situation::ReceiptClosed, "2026-11-23T12:50:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        15000,
        Session {
            dishes: vec![voided.clone()],
            discounts: vec![disc.clone()],
            pays: vec![pay("Наличные", 15000), {
                let mut p = pay("Visa", 5000);
                p.deleted = Some(true);
                p
            }],
            print_checks: vec![prebill_del.clone(), receipt.clone()],
            ..Default::default()
        },
    ));
    out.push(e);
    let mut dead_pay = pay("Наличные", 15000);
    dead_pay.deleted = Some(true);
    let mut e = ev(1, 8, Situation::ReceiptDeleted, "2026-11-23T13:00:00", 1);
    e.order = Some(order(
        o,
        "Заказ 1",
        15000,
        Session {
            dishes: vec![voided],
            discounts: vec![disc],
            pays: vec![dead_pay],
            print_checks: vec![
                prebill_del,
                deleted(receipt, "Менеджер Пётр", "Возврат <по просьбе>"),
            ],
            ..Default::default()
        },
    ));
    out.push(e);
    out.push(ev(1, 9, Situation::StationClosed, "2026-11-23T23:00:00", 1));
    out
}

#[tokio::test]
async fn each_rule_fires_once_with_its_content_and_is_delivered() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::from_millis(10)).await;
        let app = app_with_telegram(b, &fake, |_| {}).await;
        for e in story() {
            app.ingest(rk7::write(&e)).await;
        }
        let rows = alert_rows(&app).await;
        let mut expected = vec![
            "dish_voided",
            "total_lowered_after_prebill",
            "prebill_cancelled",
            "discount_over_threshold",
            "total_lowered_after_prebill",
            "receipt_deleted",
            "payment_deleted",
            "station_closed",
        ];
        expected.sort();
        for chat in [REST_CHAT, OWNERS] {
            let mut got = kinds_for(&rows, chat);
            got.sort();
            assert_eq!(got, expected, "chat {chat}: {rows:#?}");
        }
        let find = |kind: &str| {
            rows.iter()
                .find(|r| r["kind"] == kind)
                .map(|r| r["payload"].clone())
                .unwrap()
        };
        let v = find("dish_voided");
        assert_eq!(v["dish"], "Борщ <острый>");
        assert_eq!(v["quantity"], 1000);
        assert_eq!(v["amount"], 30000);
        assert_eq!(v["who"], "Менеджер Пётр");
        assert_eq!(v["reason"], "Гость передумал");
        let r = find("receipt_deleted");
        assert_eq!(r["check_num"], 7);
        assert_eq!(r["amount"], 15000);
        assert_eq!(r["cashier"], "Кассир Анна");
        assert_eq!(r["manager"], "Менеджер Пётр");
        assert_eq!(r["reason"], "Возврат <по просьбе>");
        let p = find("prebill_cancelled");
        assert_eq!(
            (p["check_num"].as_i64(), p["amount"].as_i64()),
            (Some(1), Some(60000))
        );
        // The Visa payment deleted on its own alerts; the cash payment
        // deleted with the receipt is part of the receipt alert.
        let p = find("payment_deleted");
        assert_eq!(
            (p["currency"].as_str(), p["amount"].as_i64()),
            (Some("Visa"), Some(5000))
        );
        let d = find("discount_over_threshold");
        assert_eq!(
            (d["discount"].as_i64(), d["percent"].as_i64()),
            (Some(15000), Some(50))
        );
        let lowered: Vec<_> = rows
            .iter()
            .filter(|r| r["kind"] == "total_lowered_after_prebill" && r["chat_id"] == OWNERS)
            .map(|r| {
                (
                    r["payload"]["before"].as_i64().unwrap(),
                    r["payload"]["after"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(lowered, vec![(60000, 30000), (30000, 15000)]);

        // Delivered: 16 messages (8 alerts x 2 chats), HTML-escaped, in order per chat.
        let sent = fake.wait_sent(16).await;
        assert_eq!(fake.too_many(), 0, "the sender exceeded the per-chat limit");
        let void_text = sent
            .iter()
            .find(|s| s.chat() == REST_CHAT && s.text().contains("Борщ"))
            .unwrap()
            .text()
            .to_string();
        assert!(
            void_text.contains("Борщ &lt;острый&gt; × 1 на 300,00 ₽"),
            "{void_text}"
        );
        assert!(
            void_text.contains("Кафе &lt;Ромашка&gt; &amp; Co"),
            "{void_text}"
        );
        app.wait_pending_zero().await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tillgate_alerts_sent_total"), "{metrics}");
        // Metrics are process-wide (other tests run in parallel): the gauge
        // exists; its value is checked through the API above.
        assert!(metrics.contains("tillgate_alerts_pending "), "{metrics}");
        app.stop().await;
    }
}

#[tokio::test]
async fn replaying_the_same_events_raises_nothing_new_and_unsaved_rule_is_off_by_default() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let app = app_with_telegram(b, &fake, |_| {}).await;
        let mut e = ev(1, 1, Situation::OrderChanged, "2026-11-23T12:00:00", 1);
        e.order = Some(order(
            0xB1,
            "Заказ 2",
            0,
            Session {
                dishes: vec![dish(1, "Чай", 0, 10000, LineState::Open)],
                ..Default::default()
            },
        ));
        e.change_log = Some(rk7::ChangeLog {
            dishes: vec![rk7::ChangeLogDish {
                name: Some("Чай".into()),
                uni: Some(1),
                old_value: Some(Thousandths(1000)),
                new_value: Some(Thousandths(0)),
                ..Default::default()
            }],
            ..Default::default()
        });
        app.ingest(rk7::write(&e)).await;
        let rows = alert_rows(&app).await;
        assert!(rows.is_empty(), "{rows:#?}");
        app.stop().await;

        // Switched on for the restaurant: it fires.
        let app = app_with_telegram(b, &fake, |f| {
            f.restaurants[0].rules.unsaved_dish_deleted = Some(true);
        })
        .await;
        app.ingest(rk7::write(&e)).await;
        let rows = alert_rows(&app).await;
        assert_eq!(kinds_for(&rows, REST_CHAT), vec!["unsaved_dish_deleted"]);
        assert_eq!(rows[0]["payload"]["dish"], "Чай");
        app.stop().await;
    }
}

/// Two cash servers, one restaurant: the report counts both, and equals the
/// totals computed here from the same hand-built day.
#[tokio::test]
async fn shift_report_counts_every_cash_server_and_matches_independent_totals() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let app = app_with_telegram(b, &fake, |_| {}).await;
        // (server, order, hour, amount, currency, deleted receipt?)
        let day = [
            (1u8, 1u128, 11, 125000i64, "Наличные", false),
            (1, 2, 12, 34050, "Visa", false),
            (2, 3, 12, 99900, "Наличные", false),
            (2, 4, 19, 250000, "Visa", false),
            (1, 5, 19, 10000, "Наличные", true),
            (2, 6, 21, 77777, "Visa", false),
        ];
        let mut seq = [0u64; 3];
        for (server, o, hour, amount, currency, del) in day {
            let time = format!("2026-11-23T{hour:02}:15:00");
            let rc = check(o as i64, false, amount, &time);
            let rc = if del {
                deleted(rc, "Менеджер Пётр", "Ошибка")
            } else {
                rc
            };
            seq[server as usize] += 1;
            let mut e = ev(
                server,
                seq[server as usize],
                Situation::ReceiptClosed,
                &time,
                7,
            );
            e.order = Some(order(
                0xC00 + o,
                &format!("Заказ {o}"),
                amount,
                Session {
                    dishes: vec![dish(
                        1,
                        &format!("Блюдо {o}"),
                        1000,
                        amount,
                        LineState::Closed,
                    )],
                    pays: vec![pay(currency, amount)],
                    print_checks: vec![rc],
                    ..Default::default()
                },
            ));
            app.ingest(rk7::write(&e)).await;
        }
        // The first event of shift 8 closes shift 7.
        seq[2] += 1;
        app.ingest(rk7::write(&ev(
            2,
            seq[2],
            Situation::StationSignIn,
            "2026-11-24T09:00:00",
            8,
        )))
        .await;
        let rows = alert_rows(&app).await;
        let rep = rows
            .iter()
            .find(|r| r["kind"] == "shift_report" && r["chat_id"] == REST_CHAT)
            .expect("report queued")["payload"]
            .clone();
        let live: Vec<_> = day.iter().filter(|d| !d.5).collect();
        let revenue: i64 = live.iter().map(|d| d.3).sum();
        let mut by_hour = vec![0i64; 24];
        let mut payments: BTreeMap<String, i64> = BTreeMap::new();
        for d in &live {
            by_hour[d.2] += d.3;
            *payments.entry(d.4.to_string()).or_default() += d.3;
        }
        assert_eq!(rep["shift_num"], 7);
        assert_eq!(rep["cash_servers"], 2);
        assert_eq!(rep["receipts"].as_i64().unwrap(), live.len() as i64);
        assert_eq!(rep["revenue"].as_i64().unwrap(), revenue);
        assert_eq!(
            rep["average_check"].as_i64().unwrap(),
            revenue / live.len() as i64
        );
        assert_eq!(rep["by_hour"], serde_json::json!(by_hour));
        assert_eq!(rep["payments"], serde_json::json!(payments));
        assert_eq!(rep["deleted_receipts"].as_array().unwrap().len(), 1);
        assert_eq!(rep["deleted_receipts"][0]["amount"], 10000);
        assert_eq!(rep["top_dishes"][0]["name"], "Блюдо 4");
        // Sent as a chart (a real PNG) followed by the text.
        // Per chat: the deleted-receipt alert, then the report's chart and text.
        let sent = fake.wait_sent(6).await;
        let to_rest: Vec<_> = sent
            .iter()
            .filter(|s| s.chat() == REST_CHAT && !s.text().contains("Удалён чек"))
            .collect();
        let shown = tillgate::core::money::rub(revenue);
        // Grouped from four digits, as in the console (issue 26: `2464,65 ₽`).
        assert_eq!(shown, "5\u{a0}867,27");
        match to_rest.as_slice() {
            [Sent::Photo { png, caption, .. }, Sent::Text { text, .. }] => {
                assert!(png.starts_with(b"\x89PNG"));
                assert!(caption.contains(&shown), "{caption}");
                assert!(
                    text.contains(&format!("Выручка: <b>{shown} ₽</b>")),
                    "{text}"
                );
                assert!(text.contains("Кассовых серверов: 2"), "{text}");
            }
            other => panic!("unexpected messages {other:#?}"),
        }
        app.stop().await;
    }
}

async fn open_db(app: &TestApp) -> Db {
    Db::open(&app.config.storage).await.unwrap()
}

#[tokio::test]
async fn watchdog_alerts_on_gaps_silence_and_closes_the_shift_by_clock() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let app = app_with_telegram(b, &fake, |f| {
            f.restaurants[0].opening_hours = Some("00:00-23:59".into());
            f.restaurants[0].closing_time = Some("04:00".into());
            f.restaurants[0].rules.station_silence_minutes = Some(10);
            f.restaurants[0].rules.server_silence_minutes = Some(20);
        })
        .await;
        app.ingest(rk7::write(&ev(
            1,
            1,
            Situation::ServerOrStationStarted,
            "2026-11-23T10:00:00",
            3,
        )))
        .await;
        app.ingest(rk7::write(&ev(
            1,
            5,
            Situation::StationSignIn,
            "2026-11-23T10:01:00",
            3,
        )))
        .await; // 2..4 lost
        // A second start without a close in between.
        app.ingest(rk7::write(&ev(
            1,
            6,
            Situation::ServerOrStationStarted,
            "2026-11-23T10:02:00",
            3,
        )))
        .await;
        app.wait_consumer("alerts").await;
        let db = open_db(&app).await;
        let dog = tillgate::alerts::watch::Watchdog {
            db: db.clone(),
            settings: app.config.section::<tillgate::alerts::Settings>(),
        };
        let now = tillgate::core::clock::now_ms();
        dog.run_once(now).await.unwrap();
        let rows = alert_rows(&app).await;
        let mut kinds = kinds_for(&rows, OWNERS);
        kinds.sort();
        assert_eq!(kinds, vec!["station_restarted", "stream_gap"], "{rows:#?}");
        let gap = rows.iter().find(|r| r["kind"] == "stream_gap").unwrap();
        assert_eq!(
            (
                gap["payload"]["from_seq"].as_i64(),
                gap["payload"]["missing"].as_i64()
            ),
            (Some(2), Some(3))
        );
        // 11 minutes later: the station is silent; 21: the server too; once each.
        dog.run_once(now + 11 * 60_000).await.unwrap();
        dog.run_once(now + 21 * 60_000).await.unwrap();
        dog.run_once(now + 22 * 60_000).await.unwrap();
        let rows = alert_rows(&app).await;
        let mut kinds = kinds_for(&rows, OWNERS);
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                "server_silent",
                "station_restarted",
                "station_silent",
                "stream_gap"
            ],
            "{rows:#?}"
        );
        // A day later, past the closing time with no activity: shift 3 closes.
        dog.run_once(now + 26 * 3_600_000).await.unwrap();
        dog.run_once(now + 27 * 3_600_000).await.unwrap();
        let rows = alert_rows(&app).await;
        let reports: Vec<_> = rows
            .iter()
            .filter(|r| r["kind"] == "shift_report" && r["chat_id"] == OWNERS)
            .collect();
        assert_eq!(reports.len(), 1, "{rows:#?}");
        assert_eq!(reports[0]["payload"]["shift_num"], 3);
        db.close().await;
        app.stop().await;
    }
}

impl TestApp {
    async fn wait_pending_zero(&self) {
        for _ in 0..1000 {
            let v = self.get_json("/api/alerts?state=pending&limit=1000").await;
            if v["items"].as_array().unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("alerts still pending");
    }
}

#[tokio::test]
async fn restart_in_the_middle_of_sending_loses_and_duplicates_nothing() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::ZERO).await;
        // Slow sending (per-chat pause 150 ms) so the stop lands mid-way.
        let base = fake.base.clone();
        let app = spawn_app_with(b, move |c| {
            alerts_config(c, &base, |f| {
                f.limits.per_chat_interval_ms = Some(150);
            })
        })
        .await;
        for i in 0..8u64 {
            let mut e = ev(
                1,
                i + 1,
                Situation::StationClosed,
                &format!("2026-11-23T10:{i:02}:00"),
                1,
            );
            e.waiter = Some(person(&format!("Кассир {i}")));
            app.ingest(rk7::write(&e)).await;
        }
        app.wait_consumer("alerts").await;
        fake.wait_sent(3).await;
        let (config, dir) = app.stop().await;
        let before = fake.sent().len();
        assert!(
            before < 16,
            "all were sent before the stop; the test proves nothing"
        );
        let app = start(config, dir).await;
        let sent = fake.wait_sent(16).await;
        app.wait_pending_zero().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent_after = fake.sent();
        assert_eq!(sent_after.len(), 16, "duplicates: {sent_after:#?}");
        for chat in [REST_CHAT, OWNERS] {
            let texts: Vec<_> = sent
                .iter()
                .filter(|s| s.chat() == chat)
                .map(|s| s.text().to_string())
                .collect();
            for i in 0..8 {
                let n = texts
                    .iter()
                    .filter(|t| t.contains(&format!("Кассир {i}")))
                    .count();
                assert_eq!(n, 1, "chat {chat} alert {i}: {texts:#?}");
            }
            // Order kept per chat.
            let order: Vec<usize> = (0..8)
                .map(|i| {
                    texts
                        .iter()
                        .position(|t| t.contains(&format!("Кассир {i}")))
                        .unwrap()
                })
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{texts:#?}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn telegram_unreachable_keeps_alerts_and_the_error_never_shows_the_token() {
    for b in backends() {
        // A port nobody listens on.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let d2 = dead.clone();
        let app = spawn_app_with(b, move |c| alerts_config(c, &d2, |_| {})).await;
        app.ingest(rk7::write(&ev(
            1,
            1,
            Situation::StationClosed,
            "2026-11-23T10:00:00",
            1,
        )))
        .await;
        app.wait_consumer("alerts").await;
        let mut rows = Vec::new();
        for _ in 0..500 {
            rows = alert_rows(&app).await;
            if rows.iter().all(|r| r["attempts"].as_i64().unwrap() > 0) && !rows.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rows.iter().all(|r| r["state"] == "pending"), "{rows:#?}");
        let err = rows[0]["last_error"].as_str().unwrap();
        assert!(err.contains("unreachable"), "{err}");
        let secret_part = TOKEN.split(':').nth(1).unwrap();
        let api = app.get("/api/alerts").await.text().await.unwrap();
        assert!(
            !api.contains(secret_part),
            "token leaked into the API: {api}"
        );
        let (mut config, dir) = app.stop().await;
        // Telegram comes back (new address in config): everything goes, once.
        let fake = FakeTelegram::start(Duration::ZERO).await;
        alerts_config(&mut config, &fake.base, |_| {});
        let app = start(config, dir).await;
        fake.wait_sent(2).await;
        app.wait_pending_zero().await;
        assert_eq!(fake.sent().len(), 2);
        app.stop().await;
    }
}

/// Sender driven step by step with a manual clock: 429, 5xx, migration,
/// long texts, refusals.
#[tokio::test]
async fn sender_handles_429_5xx_migration_and_long_texts() {
    let fake = FakeTelegram::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&tillgate::core::config::Storage::Sqlite {
        path: dir.path().join("t.db"),
    })
    .await
    .unwrap();
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap();
    let mut cfg = Config::for_tests(dir.path());
    alerts_config(&mut cfg, &fake.base, |f| {
        f.limits.per_chat_interval_ms = Some(1000);
    });
    let s = cfg.section::<tillgate::alerts::Settings>();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut sender = Sender::new(
        db.clone(),
        Client::new(&fake.base, SecretString::from(TOKEN)),
        Arc::new(tillgate::alerts::texts(&s).unwrap()),
        SharedClock::from(clock.clone()),
        &s.limits,
    );
    let queue = |a: Alert, chat: i64| {
        let db = db.clone();
        async move {
            let mut tx = db.write.begin().await.unwrap();
            store::enqueue(&mut tx, &a, &[chat], 1_000_000)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    let op = |text: &str| Alert::Operator {
        rest_code: None,
        source: "test".into(),
        text: text.into(),
    };
    queue(op("один"), 1).await;
    queue(op("два"), 1).await;
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::Sent {
            id: 1,
            part: 1,
            done: true
        }
    );
    // Same chat within a second: wait, no request made.
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::WaitUntil(1_001_000)
    );
    clock.advance(Duration::from_secs(1));
    // Telegram says 429 retry after 7: wait exactly that.
    fake.script(Script::TooManyRequests(7));
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Failed { id: 2, .. }
    ));
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::WaitUntil(1_008_000)
    );
    clock.advance(Duration::from_secs(7));
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::Sent {
            id: 2,
            part: 1,
            done: true
        }
    );
    assert_eq!(sender.send_one().await.unwrap(), Outcome::Idle);

    // 5xx: backoff 1 s, 2 s, then success.
    queue(op("три"), 2).await;
    fake.script(Script::ServerError);
    fake.script(Script::ServerError);
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Failed { .. }
    ));
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::WaitUntil(1_008_000 + 1000)
    );
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Failed { .. }
    ));
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::WaitUntil(1_009_000 + 2000)
    );
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Sent { done: true, .. }
    ));

    // The group became a supergroup: follow it, and later alerts go there too.
    fake.migrate(-5, -1005);
    queue(op("четыре"), -5).await;
    assert_eq!(
        sender.send_one().await.unwrap(),
        Outcome::Migrated {
            from: -5,
            to: -1005
        }
    );
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Sent { done: true, .. }
    ));
    queue(op("пять"), -5).await;
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        sender.send_one().await.unwrap(),
        Outcome::Sent { done: true, .. }
    ));
    let sent = fake.sent();
    assert_eq!(sent.iter().filter(|s| s.chat() == -1005).count(), 2);
    assert_eq!(sent.iter().filter(|s| s.chat() == -5).count(), 0);

    // A report too long for one message: split on lines, each part accepted.
    let mut rep = sample_report();
    rep.voids = (0..120)
        .map(|i| report::VoidLine {
            dish: Some(format!("Очень длинное название блюда номер {i} & <гарнир>")),
            quantity: 1000,
            amount: 12345,
            who: Some("Менеджер".into()),
            reason: Some("Причина".into()),
        })
        .collect();
    queue(Alert::ShiftReport(rep), 3).await;
    let mut parts = 0;
    loop {
        clock.advance(Duration::from_secs(1));
        match sender.send_one().await.unwrap() {
            Outcome::Sent { done, .. } => {
                parts += 1;
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(parts >= 3, "photo + at least two text parts, got {parts}");
    let to3: Vec<_> = fake.sent().into_iter().filter(|s| s.chat() == 3).collect();
    assert!(matches!(to3[0], Sent::Photo { .. }));
    assert!(to3[1..].iter().all(|s| s.text().chars().count() <= 4096));
    assert!(fake.inner.lock().unwrap().rejected.is_empty());

    // A refusal (bad token) is final and the recorded error has no token.
    let mut bad = Sender {
        client: Client::new(&fake.base, SecretString::from("999:wrongtoken")),
        ..sender
    };
    queue(op("шесть"), 4).await;
    let out = bad.send_one().await.unwrap();
    assert!(matches!(out, Outcome::Failed { .. }), "{out:?}");
    let rows = store::list(&db, 0, 100, Some(AlertState::FAILED))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let e = rows[0].last_error.clone().unwrap();
    assert!(e.contains("401") && !e.contains("wrongtoken"), "{e}");
    db.close().await;
}

#[tokio::test]
async fn bot_answers_configured_chats_only() {
    for b in backends() {
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let app = app_with_telegram(b, &fake, |f| f.commands = Some(true)).await;
        let mut e = ev(1, 1, Situation::ReceiptClosed, "2026-11-23T12:00:00", 4);
        e.order = Some(order(
            0xD1,
            "Заказ",
            5000,
            Session {
                pays: vec![pay("Наличные", 5000)],
                print_checks: vec![check(1, false, 5000, "2026-11-23T12:00:00")],
                ..Default::default()
            },
        ));
        app.ingest(rk7::write(&e)).await;
        app.wait_consumer("alerts").await;
        fake.push_command(999_999, "/status"); // a stranger
        fake.push_command(REST_CHAT, "/status");
        fake.push_command(REST_CHAT, "/report");
        fake.push_command(OWNERS, "/mute 1h");
        let sent = fake.wait_sent(4).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent_all = fake.sent();
        assert!(
            sent_all.iter().all(|s| s.chat() != 999_999),
            "{sent_all:#?}"
        );
        let status = sent
            .iter()
            .find(|s| s.chat() == REST_CHAT && s.text().contains("Кассы онлайн"))
            .unwrap();
        assert!(status.text().contains("CASH_1"), "{}", status.text());
        // Escaped once, by the template: the name reads as typed, no
        // `&lt;b&gt;` or `&amp;lt;` shown to owners.
        assert!(
            status.text().contains("\nКафе &lt;Ромашка&gt; &amp; Co\n")
                && !status.text().contains("&amp;lt;")
                && !status.text().contains("&lt;b&gt;"),
            "{}",
            status.text()
        );
        assert!(
            status.text().contains("Обработчик alerts: отставание 0"),
            "{}",
            status.text()
        );
        let report = sent_all
            .iter()
            .find(|s| matches!(s, Sent::Text { text, .. } if text.contains("Смена 4")))
            .unwrap();
        assert!(report.text().contains("50,00 ₽"), "{}", report.text());
        assert!(
            sent_all
                .iter()
                .any(|s| s.chat() == OWNERS && s.text().contains("выключены на 60 мин"))
        );
        // Muted: a new alert for the owners' chat is kept, not sent.
        app.ingest(rk7::write(&ev(
            1,
            2,
            Situation::StationClosed,
            "2026-11-23T13:00:00",
            4,
        )))
        .await;
        let mut muted = false;
        for _ in 0..500 {
            let rows = alert_rows(&app).await;
            if rows
                .iter()
                .any(|r| r["chat_id"] == OWNERS && r["state"] == "muted")
            {
                muted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(muted);
        app.stop().await;
    }
}

#[test]
fn bot_command_parsing() {
    use tillgate::alerts::bot::{Command, parse};
    assert_eq!(parse("/report"), Some(Command::Report(None)));
    assert_eq!(
        parse("/report@tillgate_bot 12"),
        Some(Command::Report(Some(12)))
    );
    assert_eq!(
        parse("/mute 1h"),
        Some(Command::Mute(Duration::from_secs(3600)))
    );
    assert_eq!(
        parse("/mute 30m"),
        Some(Command::Mute(Duration::from_secs(1800)))
    );
    assert!(matches!(parse("/mute forever"), Some(Command::Unknown(_))));
    assert!(matches!(parse("/mute 99d"), Some(Command::Unknown(_))));
    assert!(matches!(parse("/report -1"), Some(Command::Unknown(_))));
    assert_eq!(parse("hello"), None);
}

#[tokio::test]
async fn api_rejects_bad_queries() {
    let b = Backend::Sqlite;
    let fake = FakeTelegram::start(Duration::ZERO).await;
    let app = app_with_telegram(b, &fake, |_| {}).await;
    for q in ["limit=0", "limit=5000", "state=lost", "after=abc"] {
        let r = app.get(&format!("/api/alerts?{q}")).await;
        assert_eq!(r.status(), 400, "{q}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    app.stop().await;
}

pub fn sample_report() -> ShiftReport {
    ShiftReport {
        rest_code: REST.into(),
        rest_name: "Кафе".into(),
        shift_num: 12,
        shift_date: Some("2026-11-23".into()),
        first_event: Some("2026-11-23T10:00:00".into()),
        last_event: Some("2026-11-23T23:10:00".into()),
        cash_servers: 2,
        orders: 41,
        receipts: 38,
        revenue: 8_765_400,
        average_check: 230_668,
        payments: [
            ("Наличные".to_string(), 3_000_000),
            ("Visa".to_string(), 5_765_400),
        ]
        .into_iter()
        .collect(),
        discounts: 120_000,
        discount_lines: 4,
        deleted_receipts: vec![report::Deletion {
            check_num: Some(17),
            amount: 45_000,
            cashier: Some("Анна".into()),
            manager: Some("Пётр".into()),
            reason: Some("Ошибка кассира".into()),
        }],
        cancelled_prebills: 2,
        voids: vec![report::VoidLine {
            dish: Some("Стейк <рибай>".into()),
            quantity: 1000,
            amount: 250_000,
            who: Some("Пётр".into()),
            reason: Some("Пережарен".into()),
        }],
        top_dishes: vec![report::TopDish {
            name: "Борщ".into(),
            quantity: 23_500,
            amount: 705_000,
        }],
        by_hour: (0..24)
            .map(|h| {
                if (11..23).contains(&h) {
                    h as i64 * 10_000
                } else {
                    0
                }
            })
            .collect(),
    }
}

fn samples() -> Vec<Alert> {
    let o = OrderRef {
        guid: "{X}".into(),
        name: Some("Стол 5 <VIP>".into()),
        table: Some("5".into()),
        waiter: Some("Олег".into()),
    };
    let r = Some(REST.to_string());
    let at = Some("2026-11-23T12:30:00".to_string());
    vec![
        Alert::ReceiptDeleted {
            rest_code: r.clone(),
            order: o.clone(),
            check_num: Some(7),
            amount: 150_050,
            cashier: Some("Анна".into()),
            manager: Some("Пётр".into()),
            reason: Some("Возврат & отмена".into()),
            at: at.clone(),
        },
        Alert::PrebillCancelled {
            rest_code: r.clone(),
            order: o.clone(),
            check_num: Some(3),
            amount: 60_000,
            cashier: Some("Анна".into()),
            manager: None,
            reason: None,
            at: at.clone(),
        },
        Alert::DishVoided {
            rest_code: r.clone(),
            order: o.clone(),
            dish: Some("Борщ".into()),
            quantity: 1500,
            amount: 45_000,
            who: Some("Пётр".into()),
            reason: Some("Гость передумал".into()),
            at: at.clone(),
        },
        Alert::UnsavedDishDeleted {
            rest_code: r.clone(),
            order: o.clone(),
            dish: Some("Чай".into()),
            quantity: 1000,
            who: Some("Олег".into()),
            at: at.clone(),
        },
        Alert::DiscountOverThreshold {
            rest_code: r.clone(),
            order: o.clone(),
            discount: 30_000,
            order_sum: 60_000,
            percent: 50,
            names: vec!["Сотрудник".into()],
            at: at.clone(),
        },
        Alert::PaymentDeleted {
            rest_code: r.clone(),
            order: o.clone(),
            currency: Some("Visa".into()),
            amount: 10_000,
            at: at.clone(),
        },
        Alert::TotalLoweredAfterPrebill {
            rest_code: r.clone(),
            order: o.clone(),
            before: 60_000,
            after: 30_000,
            at: at.clone(),
        },
        Alert::StationClosed {
            rest_code: r.clone(),
            station: "КАССА 1".into(),
            who: Some("Анна".into()),
            at: at.clone(),
        },
        Alert::StationSilent {
            rest_code: r.clone(),
            station: "КАССА 2".into(),
            minutes: 65,
            last_event_time: at.clone(),
        },
        Alert::StationRestarted {
            rest_code: r.clone(),
            station: "КАССА 2".into(),
            at: at.clone(),
        },
        Alert::StreamGap {
            rest_code: r.clone(),
            stream: G1.into(),
            from_seq: 10,
            to_seq: 14,
            missing: 5,
        },
        Alert::ServerSilent {
            rest_code: r.clone(),
            minutes: 31,
            last_event_time: at.clone(),
        },
        Alert::Operator {
            rest_code: None,
            source: "relay_destination_paused".into(),
            text: "Relay to <crm> paused".into(),
        },
        Alert::ShiftReport(sample_report()),
    ]
}

#[test]
fn message_texts_in_both_languages() {
    let s = settings::validate(FileSection {
        restaurants: vec![settings::RestaurantFile {
            rest_code: REST.into(),
            name: Some("Кафе «Ромашка»".into()),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    let texts = tillgate::alerts::texts(&s).unwrap();
    for lang in [Lang::Ru, Lang::En] {
        for a in samples() {
            let text = texts.render_in(lang, &a).unwrap();
            crate::fake_telegram::check_html(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            insta::assert_snapshot!(format!("{}_{}", lang.as_str(), a.kind()), text);
        }
    }
}

#[test]
fn templates_can_be_overridden_from_files_and_broken_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("en")).unwrap();
    std::fs::write(
        dir.path().join("en/station_closed.txt"),
        "Closed: {{ station }} at {{ rest }}",
    )
    .unwrap();
    let s = settings::validate(FileSection {
        language: Some("en".into()),
        templates_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let texts = tillgate::alerts::texts(&s).unwrap();
    let a = &samples()[7];
    assert_eq!(
        texts.render(a).unwrap(),
        format!("Closed: КАССА 1 at {REST}")
    );
    std::fs::write(dir.path().join("en/station_closed.txt"), "{% if %}").unwrap();
    let e = tillgate::alerts::texts(&s).unwrap_err().to_string();
    assert!(e.contains("en/station_closed"), "{e}");
}

#[test]
fn chart_is_a_png_of_the_right_size() {
    let png = report::chart_png(&sample_report()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    // IHDR width/height.
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 720);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 360);
}

#[test]
fn config_validation_names_the_setting() {
    let parse = |text: &str| -> Result<settings::Settings, String> {
        let f: FileSection = toml::from_str(text).map_err(|e| e.to_string())?;
        settings::validate(f).map_err(|e| e.to_string())
    };
    let ok = parse(
        r#"
bot_token = "123:abc_DEF-9"
owners_chat = 42
language = "en"
[routing]
owners = ["receipt_deleted", "shift_report"]
[[restaurants]]
rest_code = "1"
chat = -100
kinds = ["*"]
closing_time = "03:30"
opening_hours = "10:00-02:00"
[restaurants.rules]
discount_percent = 15
unsaved_dish_deleted = true
"#,
    )
    .unwrap();
    assert_eq!(
        ok.route(AlertKind::ReceiptDeleted, Some("1")),
        vec![-100, 42]
    );
    assert_eq!(ok.route(AlertKind::DishVoided, Some("1")), vec![-100]);
    assert_eq!(ok.route(AlertKind::ShiftReport, Some("2")), vec![42]);
    assert_eq!(ok.rules_for(Some("1")).discount_percent, 15);
    assert!(ok.rules_for(Some("1")).unsaved_dish_deleted);
    assert!(!ok.rules_for(Some("2")).unsaved_dish_deleted);
    assert!(!format!("{ok:?}").contains("abc_DEF"), "token in Debug");
    for (text, needle) in [
        ("bot_token = \"not a token\"", "alerts.bot_token"),
        ("bot_token = \"123:abc/../x\"", "alerts.bot_token"),
        ("api_base = \"ftp://x\"", "alerts.api_base"),
        ("language = \"de\"", "alerts.language"),
        ("utc_offset = \"3\"", "alerts.utc_offset"),
        ("owners_chat = 0", "alerts.owners_chat"),
        ("templates_dir = \"/no/such/dir\"", "alerts.templates_dir"),
        (
            "[routing]\nowners = [\"everything\"]",
            "alerts.routing.owners",
        ),
        (
            "[rules]\ndiscount_percent = 0",
            "alerts.rules.discount_percent",
        ),
        (
            "[rules]\ndiscount_amount = -1",
            "alerts.rules.discount_amount",
        ),
        (
            "[rules]\nstation_silence_minutes = 0",
            "alerts.rules.station_silence_minutes",
        ),
        ("[limits]\nglobal_per_second = 0", "alerts.limits"),
        (
            "[[restaurants]]\nrest_code = \"\"",
            "alerts.restaurants[0].rest_code",
        ),
        (
            "[[restaurants]]\nrest_code = \"1\"\n[[restaurants]]\nrest_code = \"1\"",
            "listed twice",
        ),
        (
            "[[restaurants]]\nrest_code = \"1\"\nclosing_time = \"25:00\"",
            "closing_time",
        ),
        (
            "[[restaurants]]\nrest_code = \"1\"\nopening_hours = \"10:00\"",
            "opening_hours",
        ),
        ("[[restaurants]]\nrest_code = \"1\"\nchat = 0", "chat"),
        ("unknown = 1", "unknown field"),
        ("[rules]\nreceipt_deleted = \"yes\"", "invalid type"),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

/// Posts the generated streams interleaved by event time (each stream keeps
/// its own order), as several cash servers of one restaurant would.
async fn post_interleaved(app: &TestApp, g: &tillgate_simulate::Generated) {
    let mut idx = vec![0usize; g.servers.len()];
    loop {
        let mut best: Option<(usize, String)> = None;
        for (s, stream) in g.servers.iter().enumerate() {
            if let Some(e) = stream.events.get(idx[s]) {
                let t = e.event.date_time.map(|t| t.to_string()).unwrap_or_default();
                if best.as_ref().is_none_or(|(_, bt)| &t < bt) {
                    best = Some((s, t));
                }
            }
        }
        let Some((s, _)) = best else { break };
        app.ingest(g.servers[s].events[idx[s]].xml.clone()).await;
        idx[s] += 1;
    }
}

#[tokio::test]
async fn simulated_days_yield_the_expected_alerts_and_report_totals_equal_truth() {
    use tillgate_simulate::{Scenario, generate};
    for b in backends() {
        let g = generate(&Scenario {
            cash_servers: 2,
            days: 2,
            orders: 6,
            ..Scenario::default()
        });
        let rest = g.servers[0].rest_code.clone();
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let base = fake.base.clone();
        let rest2 = rest.clone();
        let app = spawn_app_with(b, move |c| {
            alerts_config(c, &base, |f| {
                f.restaurants[0].rest_code = rest2;
                f.bot_token = None; // compute only; delivery is tested elsewhere
            })
        })
        .await;
        post_interleaved(&app, &g).await;
        let rows = alert_rows(&app).await;
        let owners: Vec<_> = rows.iter().filter(|r| r["chat_id"] == OWNERS).collect();
        let count = |k: &str| owners.iter().filter(|r| r["kind"] == k).count();
        let t = &g.truth;
        assert_eq!(
            count("receipt_deleted"),
            t.deleted_receipts.len(),
            "{owners:#?}"
        );
        assert_eq!(count("prebill_cancelled"), t.cancelled_prebills.len());
        assert_eq!(count("dish_voided"), t.voids_after_print.len());
        assert_eq!(count("unsaved_dish_deleted"), 0, "off by default");
        let closed = t
            .station_events
            .iter()
            .filter(|e| e.situation == 18)
            .count();
        assert_eq!(count("station_closed"), closed);
        assert_eq!(count("stream_gap"), 0);
        assert_eq!(
            count("payment_deleted"),
            0,
            "only with deleted receipts here"
        );
        // The amounts and people of the deleted receipts are the true ones.
        let mut got: Vec<(i64, String)> = owners
            .iter()
            .filter(|r| r["kind"] == "receipt_deleted")
            .map(|r| {
                (
                    r["payload"]["amount"].as_i64().unwrap(),
                    r["payload"]["order"]["guid"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut want: Vec<(i64, String)> = t
            .deleted_receipts
            .iter()
            .map(|d| (d.amount, d.order_guid.clone()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        let mut voids: Vec<(i64, String)> = owners
            .iter()
            .filter(|r| r["kind"] == "dish_voided")
            .map(|r| {
                (
                    r["payload"]["amount"].as_i64().unwrap(),
                    r["payload"]["who"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut want: Vec<(i64, String)> = t
            .voids_after_print
            .iter()
            .map(|d| (d.amount, d.who.clone()))
            .collect();
        voids.sort();
        want.sort();
        assert_eq!(voids, want);

        // Day 2's first event closed shift 1: its report was queued, once.
        let reports: Vec<_> = owners
            .iter()
            .filter(|r| r["kind"] == "shift_report")
            .collect();
        assert_eq!(reports.len(), 1, "{reports:#?}");
        let db = open_db(&app).await;
        for st in t.shifts.iter().filter(|s| s.rest_code == rest) {
            let rep = if st.shift_num == 1 {
                serde_json::from_value::<ShiftReport>(reports[0]["payload"].clone()).unwrap()
            } else {
                report::compute(
                    &db,
                    &app.config.section::<tillgate::alerts::Settings>(),
                    &rest,
                    st.shift_num,
                )
                .await
                .unwrap()
            };
            assert_eq!(rep.shift_num, st.shift_num);
            assert_eq!(rep.cash_servers, 2);
            assert_eq!(rep.revenue, st.revenue, "shift {}", st.shift_num);
            assert_eq!(rep.receipts, st.receipts as i64);
            assert_eq!(rep.payments, st.payments_by_currency);
            assert_eq!(rep.discounts, st.discounts);
            assert_eq!(rep.voids.len(), st.voids as usize);
            assert_eq!(rep.deleted_receipts.len(), st.deleted_receipts as usize);
            let by_hour: BTreeMap<u32, i64> = rep
                .by_hour
                .iter()
                .enumerate()
                .filter(|(_, a)| **a != 0)
                .map(|(h, a)| (h as u32, *a))
                .collect();
            let want: BTreeMap<u32, i64> = st
                .sales_by_hour
                .iter()
                .filter(|(_, a)| **a != 0)
                .map(|(h, a)| (*h, *a))
                .collect();
            assert_eq!(by_hour, want);
        }
        // Everything else the rules raised, for the record.
        let mut other: BTreeMap<String, usize> = BTreeMap::new();
        for r in &owners {
            *other
                .entry(r["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        eprintln!("alerts raised by the simulated days: {other:?}");
        db.close().await;
        app.stop().await;
    }
}

/// A newcomer with no chat configured: every alert is still recorded and
/// listed (`unrouted`), none is picked for sending.
#[tokio::test]
async fn alerts_with_no_chat_are_recorded_as_unrouted_and_never_sent() {
    use tillgate_simulate::{Scenario, generate};
    for b in backends() {
        let g = generate(&Scenario {
            cash_servers: 1,
            orders: 10,
            ..Scenario::default()
        });
        let t = &g.truth;
        assert!(
            !t.deleted_receipts.is_empty(),
            "the day has deleted receipts"
        );
        let rest = g.servers[0].rest_code.clone();
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let base = fake.base.clone();
        let app = spawn_app_with(b, move |c| {
            alerts_config(c, &base, |f| {
                f.owners_chat = None;
                f.restaurants[0].rest_code = rest;
                f.restaurants[0].chat = None;
            })
        })
        .await;
        post_interleaved(&app, &g).await;
        let rows = alert_rows(&app).await;
        let deleted = rows
            .iter()
            .filter(|r| r["kind"] == "receipt_deleted")
            .count();
        assert_eq!(deleted, t.deleted_receipts.len(), "{rows:#?}");
        assert!(
            rows.iter()
                .all(|r| r["state"] == "unrouted" && r["chat_id"].is_null()),
            "{rows:#?}"
        );
        let unrouted = app.get_json("/api/alerts?state=unrouted&limit=1000").await;
        assert_eq!(unrouted["items"].as_array().unwrap().len(), rows.len());
        let pending = app.get_json("/api/alerts?state=pending&limit=1000").await;
        assert!(pending["items"].as_array().unwrap().is_empty(), "{pending}");
        // The sender runs (a token is set) and finds nothing to send.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(fake.sent().is_empty(), "{:#?}", fake.sent());
        app.stop().await;
    }
}

/// `/metrics` lists the alert metrics from the start, the sent counter for
/// every kind, before any alert.
#[tokio::test]
async fn alert_metrics_are_listed_before_the_first_alert() {
    let fake = FakeTelegram::start(Duration::ZERO).await;
    let app = app_with_telegram(Backend::Sqlite, &fake, |_| {}).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "# HELP tillgate_alerts_pending",
        "# HELP tillgate_alerts_raised_total",
        "# HELP tillgate_alerts_sent_total",
        "tillgate_alerts_pending ",
        "tillgate_alerts_raised_total ",
    ] {
        assert!(metrics.contains(name), "{name} missing: {metrics}");
    }
    for kind in AlertKind::ALL {
        let series = format!("tillgate_alerts_sent_total{{kind=\"{kind}\"}}");
        assert!(metrics.contains(&series), "{series} missing: {metrics}");
    }
    app.stop().await;
}

/// An outbox written before alerts could be unrouted keeps its rows
/// through the upgrade, and takes unrouted ones after it.
#[tokio::test]
async fn upgrade_keeps_queued_alerts() {
    for b in backends() {
        let dir = tempfile::tempdir().unwrap();
        let storage = match b {
            Backend::Sqlite => tillgate::core::config::Storage::Sqlite {
                path: dir.path().join("t.db"),
            },
            Backend::Postgres => tillgate::core::config::Storage::Postgres {
                url: SecretString::from(fresh_pg_database().await),
            },
        };
        let db = Db::open(&storage).await.unwrap();
        let all = tillgate::app::migrations();
        let before: Vec<_> = all.iter().copied().filter(|m| m.version < 8).collect();
        tillgate::core::migrate::migrate(&db, &before)
            .await
            .unwrap();
        let op = |text: &str| Alert::Operator {
            rest_code: None,
            source: "test".into(),
            text: text.into(),
        };
        let mut tx = db.write.begin().await.unwrap();
        store::enqueue(&mut tx, &op("old"), &[OWNERS], 1_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        tillgate::core::migrate::migrate(&db, &all).await.unwrap();
        let mut tx = db.write.begin().await.unwrap();
        store::enqueue(&mut tx, &op("new"), &[], 2_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = store::list(&db, 0, 10, None).await.unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.chat_id, r.state)).collect();
        assert_eq!(
            got,
            vec![
                (Some(OWNERS), AlertState::PENDING),
                (None, AlertState::Unrouted)
            ]
        );
        assert_eq!(store::pending(&db, 10).await.unwrap().len(), 1);
        db.close().await;
    }
}

/// The day of the issue: 40 orders a station, seed 21. The day has a return
/// order, whose line is added with a negative quantity (ChangeLog `0 ->
/// -1000`); the rule took that for a deletion and raised one alert more
/// than the day's 12 unsaved deletions.
#[tokio::test]
async fn unsaved_dish_deletions_of_a_simulated_day_equal_truth() {
    use tillgate_simulate::{Scenario, generate};
    for b in backends() {
        let g = generate(&Scenario {
            restaurants: 1,
            stations: 2,
            orders: 40,
            seed: 21,
            ..Scenario::default()
        });
        let t = &g.truth;
        assert!(!t.returns.is_empty(), "the day has a return order");
        let rest = g.servers[0].rest_code.clone();
        let fake = FakeTelegram::start(Duration::ZERO).await;
        let base = fake.base.clone();
        let app = spawn_app_with(b, move |c| {
            alerts_config(c, &base, |f| {
                f.restaurants[0].rest_code = rest;
                f.rules.unsaved_dish_deleted = Some(true);
                f.bot_token = None;
            })
        })
        .await;
        post_interleaved(&app, &g).await;
        let rows = alert_rows(&app).await;
        let owners: Vec<_> = rows.iter().filter(|r| r["chat_id"] == OWNERS).collect();
        let mut got: Vec<(String, String, i64)> = owners
            .iter()
            .filter(|r| r["kind"] == "unsaved_dish_deleted")
            .map(|r| {
                let p = &r["payload"];
                (
                    p["order"]["guid"].as_str().unwrap().to_string(),
                    p["dish"].as_str().unwrap_or("").to_string(),
                    p["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = t
            .unsaved_deletions
            .iter()
            .map(|d| (d.order_guid.clone(), d.detail.clone()))
            .collect();
        assert_eq!(want.len(), 12);
        assert!(got.iter().all(|(_, _, q)| *q > 0), "{got:#?}");
        got.sort();
        want.sort();
        let got: Vec<(String, String)> = got.into_iter().map(|(o, d, _)| (o, d)).collect();
        assert_eq!(got, want);
        // The other operations of the day match too.
        let count = |k: &str| owners.iter().filter(|r| r["kind"] == k).count();
        assert_eq!(count("receipt_deleted"), t.deleted_receipts.len());
        assert_eq!(count("prebill_cancelled"), t.cancelled_prebills.len());
        assert_eq!(count("dish_voided"), t.voids_after_print.len());
        app.stop().await;
    }
}

/// Another feature raises an operator event: it is queued for the owners'
/// chat (and the restaurant's, when it names one).
#[tokio::test]
async fn operator_events_are_queued_for_the_owners() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    alerts_config(&mut config, "http://127.0.0.1:9", |f| f.bot_token = None);
    let db = Db::open(&config.storage).await.unwrap();
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
        .await
        .unwrap();
    let (log, task) = tillgate::core::log::writer(db.clone(), 16).await.unwrap();
    let writer = tokio::spawn(task.run());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut ctx = tillgate::core::feature::StartCtx {
        db: db.clone(),
        log,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        runtimes: tillgate::core::runtimes::Runtimes::start().unwrap(),
        bus: tillgate::core::bus::Bus::default(),
        clock: tillgate::core::clock::SharedClock::system(),
    };
    tillgate::alerts::start(&mut ctx).await.unwrap();
    ctx.bus.raise(tillgate::core::bus::OperatorEvent {
        kind: tillgate::core::bus::NoticeKind::RelayDestinationPaused,
        rest_code: Some(REST.into()),
        text: "Relay to <crm> paused after 10 failures".into(),
    });
    let mut rows = Vec::new();
    for _ in 0..500 {
        rows = store::list(&db, 0, 10, None).await.unwrap();
        if rows.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let chats: Vec<Option<i64>> = rows.iter().map(|r| r.chat_id).collect();
    assert_eq!(chats, vec![Some(REST_CHAT), Some(OWNERS)]);
    match rows[0].alert().unwrap() {
        Alert::Operator { source, text, .. } => {
            assert_eq!(source, "relay_destination_paused");
            assert!(text.contains("<crm>"));
        }
        other => panic!("{other:?}"),
    }
    shutdown.cancel();
    ctx.into_runtimes().join_all().await;
    writer.await.unwrap();
    db.close().await;
}

#[tokio::test]
async fn cli_report_prints_a_shift_and_refuses_bad_arguments() {
    use tillgate::alerts::{AlertsCommand, CliArgs, run_cli};
    let dir = tempfile::tempdir().unwrap();
    let opts = || tillgate::core::config::ServerOpts {
        config: None,
        listen: None,
        data_dir: Some(dir.path().to_path_buf()),
        database_url: None,
        api_token: None,
        ingest_key: None,
    };
    let chart = dir.path().join("chart.png");
    let e = run_cli(
        CliArgs {
            opts: opts(),
            command: AlertsCommand::Report {
                rest: REST.into(),
                shift: 0,
                chart: None,
            },
        },
        &tillgate::app::cli::ctx(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--shift"), "{e}");
    run_cli(
        CliArgs {
            opts: opts(),
            command: AlertsCommand::Report {
                rest: REST.into(),
                shift: 3,
                chart: Some(chart.clone()),
            },
        },
        &tillgate::app::cli::ctx(),
    )
    .await
    .unwrap();
    assert!(std::fs::read(&chart).unwrap().starts_with(b"\x89PNG"));
    let e = run_cli(
        CliArgs {
            opts: opts(),
            command: AlertsCommand::Report {
                rest: REST.into(),
                shift: 3,
                chart: Some(dir.path().join("no/such/dir/chart.png")),
            },
        },
        &tillgate::app::cli::ctx(),
    )
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("writing"), "{e:#}");
}
