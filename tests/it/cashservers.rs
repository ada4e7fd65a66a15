//! Cash-server tooling end to end: the emulator plays the whole cash server
//! (XML interface and subscriptions over HTTPS with a self-signed
//! certificate), tillgate repoints it and backfills what it lost.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tillgate::cashservers::settings::{CashServerFile, FileSection};
use tillgate::core::config::Config;
use tillgate_simulate::{CashServer, CashServerOptions, Generated, Scenario, generate};

use crate::harness::{Backend, TestApp, backends, spawn_app_with};

pub const PASSWORD: &str = "kassa-s3cret";

/// A small day of one cash server.
pub fn day() -> Generated {
    generate(&Scenario {
        stations: 2,
        orders: 6,
        ..Scenario::default()
    })
}

/// Starts an emulated cash server for `g`'s first stream.
pub async fn emulator(g: &Generated, opts: CashServerOptions) -> CashServer {
    CashServer::start(
        g.servers[0].clone(),
        CashServerOptions {
            user: "admin".into(),
            password: PASSWORD.into(),
            retry_pause: Duration::from_millis(20),
            ..opts
        },
    )
    .await
    .expect("emulator starts")
}

/// `[[rk7.cash_servers]]` for an emulator, pinned to its certificate.
pub fn entry(name: &str, cs: &CashServer) -> CashServerFile {
    CashServerFile {
        name: name.into(),
        url: cs.url(),
        user: "admin".into(),
        password: Some(PASSWORD.into()),
        tls_fingerprint: Some(cs.fingerprint().to_string()),
        ..Default::default()
    }
}

/// Sets the `[rk7]` section.
pub fn set_rk7(config: &mut Config, file: FileSection) {
    config.set_section(tillgate::cashservers::validate(file).expect("valid [rk7]"));
}

pub async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An emulator of `g` that loses seqnumbers 60..=99 as a full queue does.
pub async fn lossy(g: &Generated) -> CashServer {
    emulator(
        g,
        CashServerOptions {
            drop: vec![60..=99],
            ..Default::default()
        },
    )
    .await
}

/// Subscribes `app` on the cash server `hall` (the emulator `cs`) and plays
/// the whole day into it.
pub async fn deliver(app: &TestApp, cs: &CashServer) {
    let (s, r) = subs(
        app,
        "hall",
        json!({"action": "add", "url": app.url("/rkevent")}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    cs.play().await;
}

/// `POST /api/cash-servers/{name}/subscriptions`.
pub async fn subs(app: &TestApp, name: &str, body: Value) -> (u16, Value) {
    post(
        app,
        &format!("/api/cash-servers/{name}/subscriptions"),
        body,
    )
    .await
}

/// A tillgate knowing one cash server, `hall`: the emulator `cs`.
pub async fn hall_only(b: Backend, cs: &CashServer) -> TestApp {
    spawn(
        b,
        FileSection {
            cash_servers: vec![entry("hall", cs)],
            ..Default::default()
        },
    )
    .await
}

/// Every order tillgate holds, by guid.
pub async fn orders(app: &TestApp) -> BTreeMap<String, Value> {
    app.wait_consumer("orders").await;
    let mut got = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = "/api/orders?limit=500".to_string();
        if let Some(n) = &next {
            path.push_str(&format!(
                "&after={}",
                n.replace('{', "%7B").replace('}', "%7D")
            ));
        }
        let page = app.get_json(&path).await;
        for o in page["items"].as_array().unwrap() {
            got.insert(o["guid"].as_str().unwrap().to_string(), o.clone());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    got
}

/// The orders that differ from the emulator's truth (what a person would
/// see: status, sums, lines, phone), with why.
pub fn differences(g: &Generated, got: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (guid, t) in &g.truth.orders {
        let Some(o) = got.get(guid) else {
            out.push(format!("{guid}: missing"));
            continue;
        };
        let lines = o["dishes"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter(|d| d["quantity"].as_i64() != Some(0))
                    .count()
            })
            .unwrap_or(0);
        let mut why = Vec::new();
        if o["status"] != t.status {
            why.push(format!("status {} != {}", o["status"], t.status));
        }
        if o["paid_sum"] != t.paid {
            why.push(format!("paid {} != {}", o["paid_sum"], t.paid));
        }
        if t.status != "deleted" && o["order_sum"] != t.total {
            why.push(format!("total {} != {}", o["order_sum"], t.total));
        }
        if o["discount_sum"] != -t.discount {
            why.push(format!("discount {} != {}", o["discount_sum"], -t.discount));
        }
        if lines != t.dish_count {
            why.push(format!("lines {lines} != {}", t.dish_count));
        }
        if o["external_props"]["phone"].as_str() != t.phone.as_deref() {
            why.push("phone".into());
        }
        if !why.is_empty() {
            out.push(format!("{guid}: {}", why.join(", ")));
        }
    }
    out
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A tillgate with this `[rk7]` section.
pub async fn spawn(b: Backend, file: FileSection) -> TestApp {
    spawn_app_with(b, |c| set_rk7(c, file)).await
}

#[tokio::test]
async fn a_stale_subscription_is_repointed_and_events_flow() {
    for b in backends() {
        let g = day();
        let cs = emulator(
            &g,
            CashServerOptions {
                subscriptions: vec!["http://127.0.0.1:9/rkevent".into()],
                rate: Some(40.0),
                ..Default::default()
            },
        )
        .await;
        let app = hall_only(b, &cs).await;
        let player = {
            let cs = cs.clone();
            tokio::spawn(async move { cs.play().await })
        };
        let (s, listed) = subs(&app, "hall", json!({"action": "list"})).await;
        assert_eq!(s, 200, "{listed}");
        assert_eq!(listed["urls"], json!(["http://127.0.0.1:9/rkevent"]));
        assert!(listed["raw"].as_str().unwrap().contains("RK7QueryResult"));
        let head_before = app.get_json("/api/events?after=0&limit=1").await["head"]
            .as_i64()
            .unwrap();
        assert_eq!(
            head_before, 0,
            "nothing reached tillgate while the subscription was stale"
        );

        let ingest = app.url("/rkevent");
        let (s, r) = subs(
            &app,
            "hall",
            json!({"action": "repoint", "ingest_url": ingest, "wait_secs": 20}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["removed"], json!(["http://127.0.0.1:9/rkevent"]), "{r}");
        assert_eq!(r["added"], json!(ingest), "{r}");
        assert_eq!(r["after"], json!([ingest]), "{r}");
        assert_eq!(r["event_arrived"], json!(true), "{r}");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(
            cs.subscriptions(),
            vec![ingest.clone()],
            "the emulator really sends to tillgate now"
        );

        player.await.unwrap();
        let head = app.get_json("/api/events?after=0&limit=1").await["head"]
            .as_i64()
            .unwrap();
        assert!(head > 10, "events flow after the repoint: {head}");
        // Running it again changes nothing and still sees events arrive? The
        // day is over, so it says the cash server may be idle.
        let (s, r) = subs(
            &app,
            "hall",
            json!({"action": "repoint", "ingest_url": ingest, "wait_secs": 1}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert!(r["added"].is_null() && r["removed"] == json!([]), "{r}");
        assert_eq!(r["event_arrived"], json!(false));
        assert!(r["state"].as_str().unwrap().contains("may be idle"), "{r}");
        app.stop().await;
    }
}

/// Plays a day with seqnumbers 60..=99 lost, into a tillgate that does not
/// backfill by itself; returns the app and the emulator.
async fn forty_lost(b: Backend, auto: bool) -> (TestApp, CashServer, Generated) {
    let g = day();
    let cs = lossy(&g).await;
    let app = spawn(
        b,
        FileSection {
            cash_servers: vec![entry("hall", &cs)],
            backfill_on_gap: Some(auto),
            ..Default::default()
        },
    )
    .await;
    deliver(&app, &cs).await;
    let (sent, lost) = cs.counts();
    assert_eq!(lost, 40, "the emulator lost 40 events");
    assert_eq!(sent as usize + 40, cs.event_count());
    (app, cs, g)
}

#[tokio::test]
async fn forty_lost_events_are_a_gap_that_backfill_repairs_to_the_truth() {
    for b in backends() {
        let (app, _cs, g) = forty_lost(b, false).await;
        let gaps = app.get_json("/api/gaps").await;
        let items = gaps["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{gaps}");
        assert_eq!(items[0]["missing"], 40);
        let gap_id = items[0]["id"].as_i64().unwrap();

        let before = differences(&g, &orders(&app).await);
        assert!(
            !before.is_empty(),
            "the lost events leave orders wrong before the backfill"
        );

        let (s, r) = post(&app, "/api/cash-servers/hall/backfill", json!({})).await;
        assert_eq!(s, 200, "{r}");
        let repaired = r["report"]["repaired"].as_u64().unwrap();
        assert!(repaired > 0, "{r}");
        assert!(
            r["report"]["skipped"].as_u64().unwrap() > 0,
            "orders that arrived are skipped: {r}"
        );
        assert_eq!(r["gaps_filled"], json!([gap_id]), "{r}");
        let after = differences(&g, &orders(&app).await);
        assert!(
            after.is_empty(),
            "order state equals the emulator's truth: {after:#?}"
        );

        // The gap shows as filled, with how many orders it repaired.
        let bf = app.get_json("/api/cash-servers/backfills").await;
        assert_eq!(bf["gaps_filled"][0]["gap_id"], gap_id, "{bf}");
        assert_eq!(
            bf["gaps_filled"][0]["repaired"].as_u64(),
            Some(repaired),
            "{bf}"
        );

        // Idempotent: a second run appends nothing.
        app.wait_consumer("rk7-versions").await;
        let head = app.get_json("/api/events?after=0&limit=1").await["head"]
            .as_i64()
            .unwrap();
        let (s, r) = post(
            &app,
            "/api/cash-servers/hall/backfill",
            json!({"since": "2026-11-02"}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["report"]["repaired"], 0, "{r}");
        let head2 = app.get_json("/api/events?after=0&limit=1").await["head"]
            .as_i64()
            .unwrap();
        assert_eq!(head, head2, "nothing appended twice");
        // Backfilled events are marked in the log: their own stream, no gap.
        let gaps = app.get_json("/api/gaps").await;
        assert_eq!(gaps["items"].as_array().unwrap().len(), 1, "{gaps}");
        let ev = app
            .get_json(&format!("/api/events?after={}&limit=1", head - 1))
            .await;
        let guid = ev["items"][0]["guid"].as_str().unwrap().to_string();
        assert!(tillgate::core::log::is_backfilled(&guid), "{ev}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_recorded_gap_is_backfilled_by_itself() {
    for b in backends() {
        let (app, _cs, g) = forty_lost(b, true).await;
        let mut bf = Value::Null;
        wait_for("the gap to be filled", async || {
            bf = app.get_json("/api/cash-servers/backfills").await;
            bf["gaps_filled"].as_array().is_some_and(|a| !a.is_empty())
                && bf["jobs"][0]["state"] == "sent"
        })
        .await;
        assert!(
            bf["gaps_filled"][0]["repaired"].as_i64().unwrap() > 0,
            "{bf}"
        );
        assert_eq!(bf["jobs"][0]["state"], "sent", "{bf}");
        let after = differences(&g, &orders(&app).await);
        assert!(after.is_empty(), "{after:#?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn cash_servers_are_added_and_listed_without_their_password() {
    for b in backends() {
        let g = day();
        let cs = emulator(&g, CashServerOptions::default()).await;
        let app = spawn(b, FileSection::default()).await;
        let mut e = serde_json::to_value(entry("bar", &cs)).unwrap();
        e["password"] = json!(PASSWORD);
        let (s, r) = post(&app, "/api/cash-servers", e.clone()).await;
        assert_eq!(s, 201, "{r}");
        let list = app.get_json("/api/cash-servers/configured").await;
        assert_eq!(list["items"][0]["name"], "bar");
        assert_eq!(list["items"][0]["source"], "api");
        assert!(
            list["items"][0]["tls"]
                .as_str()
                .unwrap()
                .contains(cs.fingerprint())
        );
        assert!(!list.to_string().contains(PASSWORD), "{list}");
        assert!(!r.to_string().contains(PASSWORD), "{r}");
        // It is usable at once.
        let (s, r) = subs(&app, "bar", json!({"action": "list"})).await;
        assert_eq!(s, 200, "{r}");
        // The orders feature's own list is still there.
        assert_eq!(app.get("/api/cash-servers").await.status(), 200);
        // Broken input: each refused with the field named, nothing stored.
        for (patch, field) in [
            (json!({"name": "a b"}), "name"),
            (json!({"url": "10.0.0.1:4545"}), "url"),
            (json!({"password": null}), "password"),
            (json!({"tls_fingerprint": "12:34"}), "tls_fingerprint"),
            (json!({"insecure_tls": true}), "insecure_tls"),
        ] {
            let mut bad = e.clone();
            bad["name"] = json!("other");
            for (k, v) in patch.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let (s, r) = post(&app, "/api/cash-servers", bad).await;
            assert_eq!(s, 400, "{r}");
            assert!(
                r["error"]["message"].as_str().unwrap().starts_with(field),
                "{r}"
            );
        }
        let (s, _) = post(&app, "/api/cash-servers", json!({"name": "x", "nope": 1})).await;
        assert_eq!(s, 422);
        let list = app.get_json("/api/cash-servers/configured").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn relay_destinations_choose_whether_they_get_backfilled_events() {
    use crate::relay_receiver::Receiver;
    for b in backends() {
        let g = day();
        let cs = lossy(&g).await;
        let all = Receiver::start(vec![]).await;
        let sent_only = Receiver::start(vec![]).await;
        let relay: tillgate::relay::FileSection = toml::from_str(&format!(
            "allow_private_destinations = true\n[[destinations]]\nid = \"all\"\nurl = \"{}\"\n[[destinations]]\nid = \"sent-only\"\nurl = \"{}\"\nbackfilled = false\n",
            all.url, sent_only.url
        ))
        .unwrap();
        let relay = tillgate::relay::validate(relay).unwrap();
        let app = spawn_app_with(b, |c| {
            c.set_section(relay);
            set_rk7(
                c,
                FileSection {
                    cash_servers: vec![entry("hall", &cs)],
                    backfill_on_gap: Some(false),
                    ..Default::default()
                },
            );
        })
        .await;
        deliver(&app, &cs).await;
        let sent = cs.counts().0 as usize;
        let (s, r) = post(&app, "/api/cash-servers/hall/backfill", json!({})).await;
        assert_eq!(s, 200, "{r}");
        let repaired = r["report"]["repaired"].as_u64().unwrap() as usize;
        assert!(repaired > 0);
        let got = all.wait_ok(sent + repaired).await;
        let backfilled = got
            .iter()
            .filter(|g| String::from_utf8_lossy(&g.body).contains("Backfilled by tillgate"))
            .count();
        assert_eq!(backfilled, repaired);
        let got = sent_only.wait_ok(sent).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            sent_only.ok().len(),
            sent,
            "no backfilled event for a destination that said no"
        );
        assert!(
            got.iter()
                .all(|g| !String::from_utf8_lossy(&g.body).contains("Backfilled by tillgate"))
        );
        app.stop().await;
    }
}

/// The reconciliation, driven step by step on a manual clock: the backfill
/// worker on the real storage and log writer, a cash server whose events
/// partly never arrived, no gap job (backfill_on_gap = false).
#[tokio::test]
async fn reconciliation_repairs_drift_every_period_and_only_then() {
    use std::sync::Arc;
    use tillgate::core::clock::{Clock, ManualClock, SharedClock};
    use tillgate::core::consumer::Runner;
    use tillgate::core::outbox::{OutboxWorker, Step};
    struct C(Arc<ManualClock>);
    impl Clock for C {
        fn now_ms(&self) -> i64 {
            self.0.now_ms()
        }
    }
    for b in backends() {
        let g = day();
        let cs = emulator(&g, CashServerOptions::default()).await;
        // The day happens on the cash server, with no one subscribed.
        cs.play().await;
        let app = spawn_app_with(b, |_| {}).await;
        let (config, _dir) = app.stop().await;
        let db = tillgate::core::store::Db::open(&config.storage)
            .await
            .unwrap();
        tillgate::core::migrate::migrate(&db, &tillgate::app::migrations())
            .await
            .unwrap();
        let (log, task) = tillgate::core::log::writer(db.clone(), 64).await.unwrap();
        let writer = tokio::spawn(task.run());
        // Only the first 100 events reached tillgate.
        for e in g.servers[0].events.iter().take(100) {
            let ev = rk7::read(&e.xml).unwrap();
            let guid = ev.guid.as_ref().unwrap().canonical();
            let seq = ev.seqnumber.unwrap() as i64;
            let new = tillgate::core::log::NewEvent::from_read(
                1,
                guid,
                seq,
                ev,
                bytes::Bytes::from(e.xml.clone()),
            );
            log.append(new).await.unwrap();
        }
        let mut versions = Runner::new(tillgate::cashservers::versions::Versions, db.clone(), 1000)
            .await
            .unwrap();
        versions.run_once().await.unwrap();
        let clock = Arc::new(ManualClock::new(10 * 60_000));
        let settings = tillgate::cashservers::validate(FileSection {
            cash_servers: vec![entry("hall", &cs)],
            reconcile_every_mins: Some(5),
            backfill_on_gap: Some(false),
            ..Default::default()
        })
        .unwrap();
        let mut w = tillgate::cashservers::worker::Backfiller::new(
            db.clone(),
            log.clone(),
            settings,
            SharedClock::new(C(clock.clone())),
        );
        // First step: the period has passed (never reconciled): a job runs.
        assert_eq!(w.run_once().await.unwrap(), Step::Busy);
        let jobs = tillgate::cashservers::store::jobs(&db, 10).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state, "sent");
        assert!(jobs[0].repaired > 0, "{jobs:?}");
        versions.run_once().await.unwrap();
        // Within the period nothing is queued: it waits until the next one.
        assert_eq!(w.run_once().await.unwrap(), Step::WaitUntil(15 * 60_000));
        // The next period: compared again, nothing drifted any more.
        clock.advance(Duration::from_secs(5 * 60));
        assert_eq!(w.run_once().await.unwrap(), Step::Busy);
        let jobs = tillgate::cashservers::store::jobs(&db, 10).await.unwrap();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(
            (jobs[0].state.as_str(), jobs[0].repaired),
            ("sent", 0),
            "{jobs:?}"
        );
        drop((w, log));
        writer.await.unwrap();
        db.close().await;
    }
}
