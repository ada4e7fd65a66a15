//! The back office's register side through the real server: stores,
//! switches (`cards_disabled`), cashier rights (`cashier_not_allowed`),
//! `GET /api/backoffice/v1/ping`, the failed sign-in limiter, the offline
//! queue depth the client reports, and credentials that cannot go stale
//! across two tillgate instances on one database.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tillgate_loyalty_client::{Client, ClientError, Identifier, Settings};

use crate::harness::{Backend, backends};
use crate::loyalty::{Loyalty, PW, lines, req, spawn, spawn_tweaked, with};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn msg(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

fn card_id(entry: Option<&str>) -> Value {
    let mut v = json!({"identifier": {"kind": "card", "value": "5001"}});
    if let Some(e) = entry {
        v["card_entry"] = json!(e);
    }
    v
}

async fn ping_as(l: &Loyalty, register: &str, password: &str, depth: Option<&str>) -> (u16, Value) {
    let mut r = l
        .app
        .client
        .get(l.app.url("/api/backoffice/v1/ping"))
        .basic_auth(register, Some(password));
    if let Some(d) = depth {
        r = r.header("x-tillgate-queue-depth", d);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn setup(b: Backend) -> Loyalty {
    let l = spawn(b).await;
    l.register("r1").await;
    l.register("r2").await;
    let (s, v) = l
        .operator("/api/loyalty/registers/r1/store", json!({"store": "S1"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = l
        .operator("/api/loyalty/registers/r2/store", json!({"store": "S1"}))
        .await;
    assert_eq!(s, 200, "{v}");
    l.issue("5001", json!({})).await;
    l.adjust("5001", 10_000).await;
    l
}

#[tokio::test]
async fn switched_off_cards_answer_cards_disabled_and_reveal_no_balance() {
    for b in backends() {
        let l = setup(b).await;
        let bal = with(req("b1", "r1"), card_id(Some("scanned")));
        assert_eq!(
            l.ok("r1", "balance", &bal).await["balance"]["bonus"],
            10_000
        );
        // A purchase held before the switch goes off can still be cancelled.
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p1", "r1"),
                json!({"identifier": {"kind": "card", "value": "5001"}, "card_entry": "scanned",
                       "lines": lines(20_000), "bonus_spend": 1_000}),
            ),
        )
        .await;
        let (s, v) = l
            .operator(
                "/api/loyalty/switches/stores/S1",
                json!({"discount_cards": false}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["discount_cards"], 0);
        for (path, body) in [
            ("balance", with(req("b2", "r1"), card_id(Some("scanned")))),
            (
                "calculate",
                with(
                    req("c2", "r1"),
                    with(card_id(Some("scanned")), json!({"lines": lines(100)})),
                ),
            ),
            (
                "confirm",
                with(req("f1", "r1"), json!({"purchase_operation_id": "p1"})),
            ),
        ] {
            let (s, v) = l.call("r1", path, &body).await;
            assert_eq!((s, code(&v)), (403, "cards_disabled"), "{path}: {v}");
            assert!(v.get("balance").is_none() && v.get("holder").is_none());
            assert!(!v.to_string().contains("10000"), "{v}");
        }
        let x = l
            .ok(
                "r1",
                "cancel",
                &with(req("x1", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!(x["status"], "cancelled");
        // One register of the store explicitly on again; the other still off.
        let (s, _) = l
            .operator(
                "/api/loyalty/switches/registers/r2",
                json!({"discount_cards": true}),
            )
            .await;
        assert_eq!(s, 200);
        let bal2 = with(req("b3", "r2"), card_id(Some("scanned")));
        assert_eq!(
            l.ok("r2", "balance", &bal2).await["balance"]["bonus"],
            10_000
        );
        let (s, v) = l
            .call(
                "r1",
                "balance",
                &with(req("b4", "r1"), card_id(Some("scanned"))),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "cards_disabled"));
        // null: r2 follows its store again.
        let (s, _) = l
            .operator(
                "/api/loyalty/switches/registers/r2",
                json!({"discount_cards": null}),
            )
            .await;
        assert_eq!(s, 200);
        let (s, v) = l
            .call(
                "r2",
                "balance",
                &with(req("b5", "r2"), card_id(Some("scanned"))),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "cards_disabled"));
        // The operator list shows it, and the resync guard: S1 off.
        let sw = l.app.get_json("/api/loyalty/switches").await;
        assert_eq!(sw["stores_with_cards_on"], json!([]), "{sw}");
        // Broken input names the field; nothing changes.
        for bad in [
            json!({}),
            json!({"discount_cards": "no"}),
            json!({"bonus": true}),
        ] {
            let (s, v) = l.operator("/api/loyalty/switches/stores/S1", bad).await;
            assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        }
        let (s, v) = l
            .operator(
                "/api/loyalty/switches/registers/nope",
                json!({"discount_cards": true}),
            )
            .await;
        assert_eq!(s, 404, "{v}");
        // Payment cards have their own switch.
        let (s, v) = l
            .operator(
                "/api/loyalty/payment-cards",
                json!({"number": "G1", "nominal": 500}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let pay = with(
            req("g1", "r1"),
            json!({"card": "G1", "card_entry": "scanned"}),
        );
        assert_eq!(
            l.ok("r1", "payment-cards/balance", &pay).await["card"]["balance"],
            500
        );
        l.operator(
            "/api/loyalty/switches/registers/r1",
            json!({"payment_cards": false}),
        )
        .await;
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/balance",
                &with(
                    req("g2", "r1"),
                    json!({"card": "G1", "card_entry": "scanned"}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "cards_disabled"), "{v}");
        assert!(!v.to_string().contains("500"), "{v}");
        l.app.stop().await;
    }
}

#[tokio::test]
async fn cashier_rights_are_checked_and_name_the_missing_right() {
    for b in backends() {
        let l = setup(b).await;
        // No cashier in S1 yet: rights are not enforced, any name works.
        l.ok("r1", "balance", &with(req("b0", "r1"), card_id(None)))
            .await;
        for c in [
            json!({"id": "anna", "name": "Anna", "store": "S1", "card_in_open_receipt": true}),
            json!({"id": "boris", "name": "Boris", "store": "S1"}),
            json!({"id": "vera", "name": "Vera", "store": "S2", "card_in_open_receipt": true, "manual_card_entry": true}),
        ] {
            let (s, v) = l.operator("/api/loyalty/cashiers", c).await;
            assert_eq!(s, 201, "{v}");
        }
        let as_cashier = |op: &str, who: &str, extra: Value| {
            let mut v = with(req(op, "r1"), extra);
            v["cashier"] = json!(who);
            v
        };
        // Scanned: fine for anna's balance; typed or unsaid needs the manual right.
        l.ok(
            "r1",
            "balance",
            &as_cashier("b1", "anna", card_id(Some("scanned"))),
        )
        .await;
        for (op, entry) in [("b2", Some("manual")), ("b3", None)] {
            let (s, v) = l
                .call("r1", "balance", &as_cashier(op, "anna", card_id(entry)))
                .await;
            assert_eq!((s, code(&v)), (403, "cashier_not_allowed"), "{v}");
            assert!(msg(&v).contains("manual_card_entry"), "{v}");
        }
        // Boris may not apply a card to an open receipt.
        let calc = with(card_id(Some("scanned")), json!({"lines": lines(10_000)}));
        let (s, v) = l
            .call("r1", "calculate", &as_cashier("c1", "boris", calc.clone()))
            .await;
        assert_eq!((s, code(&v)), (403, "cashier_not_allowed"), "{v}");
        assert!(msg(&v).contains("card_in_open_receipt"), "{v}");
        let (s, v) = l
            .call("r1", "purchase", &as_cashier("p0", "boris", calc.clone()))
            .await;
        assert_eq!((s, code(&v)), (403, "cashier_not_allowed"), "{v}");
        // Unknown here, or a cashier of another store.
        for who in ["zoe", "vera"] {
            let (s, v) = l
                .call("r1", "calculate", &as_cashier("c2", who, calc.clone()))
                .await;
            assert_eq!((s, code(&v)), (403, "cashier_not_allowed"), "{who}: {v}");
        }
        // Anna holds; Boris may settle it (confirm names no card).
        l.ok("r1", "purchase", &as_cashier("p1", "anna", calc.clone()))
            .await;
        let f = l
            .ok(
                "r1",
                "confirm",
                &as_cashier("f1", "boris", json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!(f["status"], "confirmed");
        // Rights change at once: give Boris the open-receipt right.
        let (s, _) = l
            .operator(
                "/api/loyalty/cashiers",
                json!({"id": "boris", "name": "Boris", "store": "S1", "card_in_open_receipt": true}),
            )
            .await;
        assert_eq!(s, 201);
        l.ok("r1", "calculate", &as_cashier("c3", "boris", calc.clone()))
            .await;
        // Broken input: a bad card_entry, card_entry where no card is named.
        let (s, v) = l
            .call(
                "r1",
                "balance",
                &as_cashier("b4", "anna", card_id(Some("typed"))),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) = l
            .call(
                "r1",
                "cancel",
                &as_cashier(
                    "x1",
                    "anna",
                    json!({"purchase_operation_id": "p1", "card_entry": "scanned"}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        assert!(msg(&v).contains("card_entry"), "{v}");
        for bad in [
            json!({"id": "x", "name": " ", "store": "S1"}),
            json!({"id": "", "name": "X", "store": "S1"}),
            json!({"id": "x", "name": "X"}),
            json!({"id": "x", "name": "X", "store": "S1", "rights": 1}),
        ] {
            let (s, v) = l.operator("/api/loyalty/cashiers", bad.clone()).await;
            assert_eq!((s, code(&v)), (400, "malformed_request"), "{bad}: {v}");
        }
        let list = l.app.get_json("/api/loyalty/cashiers?store=S1").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
        assert_eq!(list["items"][0]["rights"]["card_in_open_receipt"], true);
        // Removing every cashier of S1 turns the checks off again.
        for id in ["anna", "boris"] {
            let r = l
                .app
                .client
                .delete(l.app.url(&format!("/api/loyalty/cashiers/{id}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
        let r = l
            .app
            .client
            .delete(l.app.url("/api/loyalty/cashiers/anna"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        l.ok("r1", "balance", &as_cashier("b5", "zoe", card_id(None)))
            .await;
        l.app.stop().await;
    }
}

#[tokio::test]
async fn ping_answers_time_store_switches_and_rights_and_keeps_the_queue_depth() {
    for b in backends() {
        let l = setup(b).await;
        l.operator(
            "/api/loyalty/cashiers",
            json!({"id": "anna", "name": "Anna", "store": "S1", "manual_card_entry": true}),
        )
        .await;
        l.operator(
            "/api/loyalty/switches/stores/S1",
            json!({"payment_cards": false}),
        )
        .await;
        let (s, v) = ping_as(&l, "r1", PW, Some("4")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["register"], "r1");
        assert_eq!(v["store"], "S1");
        assert_eq!(
            v["switches"],
            json!({"discount_cards": true, "payment_cards": false})
        );
        assert_eq!(v["cashier_rights"]["enforced"], true);
        assert_eq!(v["cashier_rights"]["cashiers"][0]["id"], "anna");
        assert_eq!(
            v["cashier_rights"]["cashiers"][0]["rights"]["manual_card_entry"],
            true
        );
        assert_eq!(v["queue"]["depth"], 4);
        assert!(v["server_time"].as_str().unwrap().starts_with("20"), "{v}");
        // The operator sees the depth; the resync guard names the register.
        let regs = l.app.get_json("/api/loyalty/registers").await;
        let r1 = regs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "r1")
            .unwrap()
            .clone();
        assert_eq!(
            (r1["store"].clone(), r1["queue"]["depth"].clone()),
            (json!("S1"), json!(4))
        );
        let sw = l.app.get_json("/api/loyalty/switches").await;
        assert_eq!(sw["queued"][0]["register_id"], "r1", "{sw}");
        assert_eq!(sw["queued"][0]["depth"], 4, "{sw}");
        // Any register call carries it too; 0 clears the register from the guard.
        let mut body = with(req("b1", "r1"), card_id(Some("scanned")));
        body["cashier"] = json!("anna");
        let r = l
            .app
            .client
            .post(l.app.url("/api/loyalty/v1/balance"))
            .basic_auth("r1", Some(PW))
            .header("x-tillgate-queue-depth", "0")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let sw = l.app.get_json("/api/loyalty/switches").await;
        assert_eq!(sw["queued"], json!([]), "{sw}");
        // Wrong password: 401 with the one error shape; a broken header: 400.
        let (s, v) = ping_as(&l, "r1", "wrong-password", None).await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        assert!(v["error"]["message"].is_string());
        let (s, v) = ping_as(&l, "nobody", PW, None).await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        for bad in ["-1", "lots", "1e3"] {
            let (s, v) = ping_as(&l, "r1", PW, Some(bad)).await;
            assert_eq!((s, code(&v)), (400, "malformed_request"), "{bad}: {v}");
            assert!(msg(&v).contains("x-tillgate-queue-depth"), "{v}");
        }
        let r = l
            .app
            .client
            .get(l.app.url("/api/backoffice/v1/ping"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);

        // The client crate: ping() and the depth of its queue.
        let dir = tempfile::tempdir().unwrap();
        let settings = |pw: &str| Settings {
            base_url: l.app.base.clone(),
            register: "r2".into(),
            password: pw.to_string().into(),
            timeout: Duration::from_secs(5),
        };
        let client = Client::open(settings(PW), &dir.path().join("q.sqlite"))
            .await
            .unwrap();
        let v = client.ping().await.unwrap();
        assert_eq!(
            (v["store"].clone(), v["queue"]["depth"].clone()),
            (json!("S1"), json!(0))
        );
        let bal = client
            .balance(
                "cb1",
                "anna",
                "2026-10-03T12:00:00",
                &Identifier::auto("5001").typed(),
            )
            .await
            .unwrap();
        assert_eq!(bal["balance"]["bonus"], 10_000);
        client.close().await;
        let bad = Client::open(settings("not-the-password"), &dir.path().join("q2.sqlite"))
            .await
            .unwrap();
        match bad.ping().await {
            Err(ClientError::Refused {
                status: 401, code, ..
            }) => {
                assert_eq!(code, "bad_credentials")
            }
            other => panic!("expected a 401: {other:?}"),
        }
        bad.close().await;
        l.app.stop().await;
    }
}

/// Hashes run so far by this process's servers (the metric registry is
/// global to the test binary).
async fn hashes(l: &Loyalty) -> f64 {
    let text = l
        .app
        .client
        .get(l.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tillgate_loyalty_auth_hashes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_is_cut_off_before_hashing_but_the_real_till_gets_in() {
    for b in backends() {
        let l = spawn_tweaked(b, |c| {
            let s = c.section_mut::<tillgate::loyalty::Settings>();
            s.auth_limits.per_register = 3;
            s.auth_limits.per_address = 1000;
        })
        .await;
        l.register("r1").await;
        l.register("r2").await;
        l.issue("5001", json!({})).await;
        // r1 signs in once: its password is known good.
        let bal = with(req("b0", "r1"), card_id(Some("scanned")));
        l.ok("r1", "balance", &bal).await;
        let mut codes = Vec::new();
        for _ in 0..8 {
            let (s, v) = ping_as(&l, "r1", "guess-guess", None).await;
            codes.push((s, code(&v).to_string()));
        }
        let want: Vec<(u16, String)> = (0..8)
            .map(|i| {
                if i < 3 {
                    (401, "bad_credentials".to_string())
                } else {
                    (429, "too_many_attempts".to_string())
                }
            })
            .collect();
        assert_eq!(codes, want);
        // The real till, whose password was verified before, is not locked out.
        let (s, v) = ping_as(&l, "r1", PW, None).await;
        assert_eq!(s, 200, "{v}");
        // Another register is not affected by r1's count.
        let (s, _) = ping_as(&l, "r2", PW, None).await;
        assert_eq!(s, 200);
        l.app.stop().await;

        // Per source address: guesses spread over registers are cut off too.
        let l = spawn_tweaked(b, |c| {
            let s = c.section_mut::<tillgate::loyalty::Settings>();
            s.auth_limits.per_register = 1000;
            s.auth_limits.per_address = 4;
        })
        .await;
        for r in ["a", "b", "c"] {
            l.register(r).await;
        }
        let mut limited = 0;
        for i in 0..9 {
            let r = ["a", "b", "c"][i % 3];
            let (s, v) = ping_as(&l, r, "guess-guess", None).await;
            if s == 429 {
                limited += 1;
                assert_eq!(code(&v), "too_many_attempts");
            }
        }
        assert_eq!(limited, 5);
        l.app.stop().await;
    }
}

/// Issue 19 item 4: a password changed through another instance (or
/// another process) stops the old one at once on an instance that has it
/// cached. PostgreSQL: two apps on one database; SQLite: the change made
/// through a second connection to the file, as the CLI does.
#[tokio::test]
async fn a_password_changed_elsewhere_stops_the_cached_one_at_once() {
    for b in backends() {
        let a = spawn(b).await;
        a.register("r1").await;
        a.issue("5001", json!({})).await;
        let bal = |op: &str| with(req(op, "r1"), card_id(Some("scanned")));
        // Instance B (PostgreSQL) or the same instance (SQLite) caches pw 1.
        let other = match b {
            Backend::Postgres => {
                let dir = tempfile::tempdir().unwrap();
                let mut config = a.app.config.clone();
                config.data_dir = dir.path().to_path_buf();
                let app = crate::harness::start(config, dir).await;
                Some(Loyalty {
                    app,
                    clock: a.clock.clone(),
                })
            }
            Backend::Sqlite => None,
        };
        let b_app = other.as_ref().unwrap_or(&a);
        b_app.ok("r1", "balance", &bal("b1")).await;
        b_app.ok("r1", "balance", &bal("b2")).await;
        // The change: through A's operator API, or a separate connection.
        let new_pw = "another-secret-2";
        match b {
            Backend::Postgres => {
                let (s, v) = a
                    .operator(
                        "/api/loyalty/registers",
                        json!({"id": "r1", "password": new_pw}),
                    )
                    .await;
                assert_eq!(s, 201, "{v}");
            }
            Backend::Sqlite => {
                let db = tillgate::core::store::Db::open(&a.app.config.storage)
                    .await
                    .unwrap();
                tillgate::loyalty::operator::put_register(
                    &db,
                    &tillgate::loyalty::operator::NewRegister {
                        id: "r1".into(),
                        password: Some(new_pw.to_string().into()),
                        description: String::new(),
                        store: None,
                        no_password: false,
                        allowed_from: Vec::new(),
                    },
                )
                .await
                .unwrap();
                db.close().await;
            }
        }
        let (s, v) = b_app.call("r1", "balance", &bal("b3")).await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        let r = b_app
            .app
            .client
            .post(b_app.app.url("/api/loyalty/v1/balance"))
            .basic_auth("r1", Some(new_pw))
            .json(&bal("b4"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        if let Some(o) = other {
            o.app.stop().await;
        }
        a.app.stop().await;
    }
}

/// The figure for docs/loyalty.md: CPU time and Argon2 verifications for a
/// burst of wrong passwords with and without the limiter. Run alone:
/// `cargo test --test it loyalty_backoffice::measure_auth_burst -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it alone"]
async fn measure_auth_burst() {
    const N: usize = 200;
    fn cpu_secs() -> f64 {
        // utime + stime of this process, in clock ticks (100 per second).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }
    for (label, per_register, per_address) in
        [("limiter off", 0, 0), ("limiter on (defaults)", 10, 30)]
    {
        let l = spawn_tweaked(Backend::Sqlite, |c| {
            let s = c.section_mut::<tillgate::loyalty::Settings>();
            s.auth_limits.per_register = per_register;
            s.auth_limits.per_address = per_address;
        })
        .await;
        l.register("r1").await;
        let h0 = hashes(&l).await;
        let (c0, t0) = (cpu_secs(), Instant::now());
        let mut tasks = Vec::new();
        for w in 0..8 {
            let client = l.app.client.clone();
            let url = l.app.url("/api/backoffice/v1/ping");
            tasks.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in (w..N).step_by(8) {
                    let r = client
                        .get(&url)
                        .basic_auth("r1", Some("wrong-password"))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
                statuses
            }));
        }
        let mut by_status = std::collections::BTreeMap::new();
        for t in tasks {
            for s in t.await.unwrap() {
                *by_status.entry(s).or_insert(0) += 1;
            }
        }
        let (cpu, wall) = (cpu_secs() - c0, t0.elapsed());
        let h = hashes(&l).await - h0;
        println!(
            "{label}: {N} wrong passwords -> statuses {by_status:?}, Argon2 verifications {h}, process CPU {cpu:.2} s, wall {:.2} s",
            wall.as_secs_f64()
        );
        l.app.stop().await;
    }
}
