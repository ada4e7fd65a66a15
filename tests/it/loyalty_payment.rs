//! Payment (gift) cards through the real server: issue with a nominal, top
//! up, pay two-phase (hold, confirm, cancel, expiry), refund to the card,
//! states, idempotency, the ledger; and a property test that concurrent
//! payments from two registers never overspend, on both backends.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::harness::backends;
use crate::loyalty::{Loyalty, req, spawn, with};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn pay(op: &str, register: &str, extra: Value) -> Value {
    with(req(op, register), extra)
}

async fn issue(l: &Loyalty, number: &str, nominal: i64, state: Option<&str>) {
    let mut body = json!({"number": number, "nominal": nominal});
    if let Some(s) = state {
        body["state"] = json!(s);
    }
    let (s, v) = l.operator("/api/loyalty/payment-cards", body).await;
    assert_eq!(s, 201, "{v}");
}

async fn view(l: &Loyalty, number: &str) -> Value {
    l.app
        .get_json(&format!("/api/loyalty/payment-cards/{number}"))
        .await
}

#[tokio::test]
async fn a_gift_card_pays_in_two_phases_refunds_and_never_goes_negative() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        issue(&l, "G100", 10_000, None).await;
        let card = |extra: Value| with(json!({"card": "G100", "card_entry": "scanned"}), extra);
        let bal = l
            .ok(
                "r1",
                "payment-cards/balance",
                &pay("b1", "r1", card(json!({}))),
            )
            .await;
        assert_eq!(bal["card"]["balance"], 10_000);
        assert_eq!(bal["card"]["card"], "****G100");

        let h = l
            .ok(
                "r1",
                "payment-cards/hold",
                &pay("h1", "r1", card(json!({"amount": 3_000}))),
            )
            .await;
        assert_eq!(h["status"], "held");
        assert_eq!(h["card"]["available"], 7_000);
        // The held money is not there twice.
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/hold",
                &pay("h2", "r1", card(json!({"amount": 7_001}))),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "not_enough_money"), "{v}");
        // A retry gets the first answer; the same id with another body is a conflict.
        let again = l
            .ok(
                "r1",
                "payment-cards/hold",
                &pay("h1", "r1", card(json!({"amount": 3_000}))),
            )
            .await;
        assert_eq!(again, h);
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/hold",
                &pay("h1", "r1", card(json!({"amount": 3_001}))),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "operation_conflict"), "{v}");

        let c = l
            .ok(
                "r1",
                "payment-cards/confirm",
                &pay("c1", "r1", json!({"payment_operation_id": "h1"})),
            )
            .await;
        assert_eq!(
            (c["status"].clone(), c["card"]["balance"].clone()),
            (json!("confirmed"), json!(7_000))
        );
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/cancel",
                &pay("x1", "r1", json!({"payment_operation_id": "h1"})),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "payment_not_open"), "{v}");
        // Refund part, then more than is left.
        let r = l
            .ok(
                "r1",
                "payment-cards/refund",
                &pay(
                    "r1a",
                    "r1",
                    json!({"payment_operation_id": "h1", "amount": 1_000}),
                ),
            )
            .await;
        assert_eq!(
            (r["card"]["balance"].clone(), r["left_to_refund"].clone()),
            (json!(8_000), json!(2_000))
        );
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/refund",
                &pay(
                    "r1b",
                    "r1",
                    json!({"payment_operation_id": "h1", "amount": 2_001}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");

        // A hold left alone expires and stops reserving money.
        l.ok(
            "r1",
            "payment-cards/hold",
            &pay("h3", "r1", card(json!({"amount": 8_000}))),
        )
        .await;
        l.clock.advance(Duration::from_secs(61));
        let bal = l
            .ok(
                "r1",
                "payment-cards/balance",
                &pay("b2", "r1", card(json!({}))),
            )
            .await;
        assert_eq!(
            (
                bal["card"]["held"].clone(),
                bal["card"]["available"].clone()
            ),
            (json!(0), json!(8_000))
        );
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/confirm",
                &pay("c3", "r1", json!({"payment_operation_id": "h3"})),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "hold_expired"), "{v}");
        let x = l
            .ok(
                "r1",
                "payment-cards/cancel",
                &pay("x3", "r1", json!({"payment_operation_id": "h3"})),
            )
            .await;
        assert_eq!(x["status"], "expired");

        // Top up at the register and by the operator.
        let t = l
            .ok(
                "r1",
                "payment-cards/top-up",
                &pay("t1", "r1", card(json!({"amount": 500}))),
            )
            .await;
        assert_eq!(t["card"]["balance"], 8_500);
        let (s, v) = l
            .operator(
                "/api/loyalty/payment-cards/G100/top-up",
                json!({"amount": 1_500, "by": "manager"}),
            )
            .await;
        assert_eq!((s, v["balance"].clone()), (200, json!(10_000)), "{v}");

        // The ledger agrees with the card; the account never went below zero.
        let v = view(&l, "G100").await;
        assert_eq!(v["card"]["balance"], 10_000);
        assert_eq!(v["ledger_balance"], 10_000);
        let kinds: Vec<&str> = v["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "paycard_issue",
                "paycard_pay",
                "paycard_refund",
                "paycard_top_up",
                "paycard_top_up"
            ]
        );

        // States: not activated cannot pay; blocked reveals nothing.
        issue(&l, "G200", 1_000, Some("inactive")).await;
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/hold",
                &pay(
                    "h4",
                    "r1",
                    json!({"card": "G200", "card_entry": "scanned", "amount": 100}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "card_not_activated"), "{v}");
        let (s, _) = l
            .operator(
                "/api/loyalty/payment-cards/G200/state",
                json!({"state": "blocked"}),
            )
            .await;
        assert_eq!(s, 200);
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/balance",
                &pay("b3", "r1", json!({"card": "G200", "card_entry": "scanned"})),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "card_blocked"), "{v}");
        assert!(!v.to_string().contains("1000"), "{v}");
        let (s, v) = l
            .call(
                "r1",
                "payment-cards/balance",
                &pay("b4", "r1", json!({"card": "NOPE", "card_entry": "scanned"})),
            )
            .await;
        assert_eq!((s, code(&v)), (404, "unknown_card"), "{v}");

        // Broken input: named fields, nothing stored.
        for (path, body) in [
            ("payment-cards/hold", pay("e1", "r1", card(json!({})))),
            (
                "payment-cards/hold",
                pay("e2", "r1", card(json!({"amount": 0}))),
            ),
            (
                "payment-cards/hold",
                pay("e3", "r1", card(json!({"amount": "10"}))),
            ),
            ("payment-cards/confirm", pay("e4", "r1", json!({}))),
            (
                "payment-cards/balance",
                pay("e5", "r1", card(json!({"identifier": 1}))),
            ),
        ] {
            let (s, v) = l.call("r1", path, &body).await;
            assert_eq!(
                (s, code(&v)),
                (400, "malformed_request"),
                "{path} {body}: {v}"
            );
        }
        for bad in [
            json!({"number": "G100", "nominal": 5}),
            json!({"number": "", "nominal": 5}),
            json!({"number": "G9", "nominal": -5}),
            json!({"number": "G9"}),
            json!({"number": "G9", "nominal": 5, "state": "sold"}),
        ] {
            let (s, v) = l.operator("/api/loyalty/payment-cards", bad.clone()).await;
            assert!(s == 400 || s == 409, "{bad}: {s} {v}");
        }
        let v = view(&l, "G100").await;
        assert_eq!(v["card"]["balance"], 10_000);

        // The sweeper marks a forgotten hold expired in the table too.
        l.ok(
            "r1",
            "payment-cards/hold",
            &pay("h5", "r1", card(json!({"amount": 100}))),
        )
        .await;
        l.clock.advance(Duration::from_secs(61));
        let mut status = Value::Null;
        for _ in 0..60 {
            let v = view(&l, "G100").await;
            status = v["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["operation_id"] == "h5")
                .map(|o| o["status"].clone())
                .unwrap_or_default();
            if status == "expired" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(status, "expired");
        l.app.stop().await;
    }
}

/// What one register does in the property test: hold `amount`, then
/// confirm it or cancel it.
type Step = (i64, bool);

#[test]
fn concurrent_payments_from_two_registers_never_overspend() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    for b in backends() {
        let l = rt.block_on(async {
            let l = spawn(b).await;
            l.register("r1").await;
            l.register("r2").await;
            l
        });
        let case = std::sync::atomic::AtomicU32::new(0);
        let steps = proptest::collection::vec((1i64..6_000, any::<bool>()), 1..7);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 12,
            ..ProptestConfig::default()
        });
        runner
            .run(&(0i64..15_000, steps.clone(), steps), |(nominal, a, bs)| {
                let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let number = format!("P{n}");
                let (confirmed, view) = rt.block_on(async {
                    issue(&l, &number, nominal, None).await;
                    let run = |reg: &'static str, steps: Vec<Step>| {
                        let (client, base, number) =
                            (l.app.client.clone(), l.app.base.clone(), number.clone());
                        async move {
                            let mut paid = 0i64;
                            for (i, (amount, confirm)) in steps.into_iter().enumerate() {
                                let op = format!("{number}-{reg}-{i}");
                                let call = |path: &str, body: Value| {
                                    client
                                        .post(format!("{base}/api/loyalty/v1/payment-cards/{path}"))
                                        .basic_auth(reg, Some(crate::loyalty::PW))
                                        .json(&body)
                                        .send()
                                };
                                let body = pay(&op, reg, json!({"card": number, "card_entry": "scanned", "amount": amount}));
                                let r = call("hold", body).await.unwrap();
                                let status = r.status().as_u16();
                                let v: Value = r.json().await.unwrap();
                                if status != 200 {
                                    assert_eq!((status, code(&v)), (409, "not_enough_money"), "{v}");
                                    continue;
                                }
                                let settle = if confirm { "confirm" } else { "cancel" };
                                let body = pay(&format!("{op}-s"), reg, json!({"payment_operation_id": op}));
                                let r = call(settle, body).await.unwrap();
                                assert_eq!(r.status().as_u16(), 200);
                                if confirm {
                                    paid += amount;
                                }
                            }
                            paid
                        }
                    };
                    let (p1, p2) = tokio::join!(
                        tokio::spawn(run("r1", a)),
                        tokio::spawn(run("r2", bs))
                    );
                    (p1.unwrap() + p2.unwrap(), view(&l, &number).await)
                });
                let balance = view["card"]["balance"].as_i64().unwrap();
                prop_assert!(confirmed <= nominal, "paid {confirmed} of {nominal}");
                prop_assert_eq!(balance, nominal - confirmed);
                prop_assert!(balance >= 0);
                prop_assert_eq!(view["ledger_balance"].as_i64().unwrap(), balance);
                prop_assert_eq!(view["held"].as_i64().unwrap(), 0);
                Ok(())
            })
            .unwrap();
        rt.block_on(l.app.stop());
    }
}
