//! Loyalty processing through the real server: registers call
//! `/api/loyalty/v1/*` with HTTP Basic, the operator uses `/api/loyalty/*`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tillgate::core::clock::{OffsetClock, SharedClock};

use crate::harness::{Backend, TestApp, backends, spawn_app_with};

pub const PW: &str = "register-secret-1";

pub struct Loyalty {
    pub app: TestApp,
    /// The server's loyalty clock: `advance` moves it forward.
    pub clock: Arc<OffsetClock>,
}

pub async fn spawn(b: Backend) -> Loyalty {
    spawn_tweaked(b, |_| {}).await
}

pub async fn spawn_tweaked(
    b: Backend,
    tweak: impl FnOnce(&mut tillgate::core::config::Config),
) -> Loyalty {
    let clock = Arc::new(OffsetClock::default());
    let c2 = SharedClock::from(clock.clone());
    let app = spawn_app_with(b, move |c| {
        c.section_mut::<tillgate::loyalty::Settings>().clock = c2;
        c.section_mut::<tillgate::loyalty::Settings>().hold_ttl = Duration::from_secs(60);
        tweak(c);
    })
    .await;
    Loyalty { app, clock }
}

impl Loyalty {
    pub async fn operator(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn card(&self, number: &str) -> Value {
        self.app
            .get_json(&format!("/api/loyalty/cards/{number}"))
            .await
    }

    pub async fn register(&self, id: &str) {
        let (s, v) = self
            .operator("/api/loyalty/registers", json!({"id": id, "password": PW}))
            .await;
        assert_eq!(s, 201, "{v}");
    }

    /// A register of `store`.
    pub async fn register_in(&self, id: &str, store: &str) {
        let (s, v) = self
            .operator(
                "/api/loyalty/registers",
                json!({"id": id, "password": PW, "store": store}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    pub async fn issue(&self, number: &str, extra: Value) {
        let mut body = json!({"number": number, "holder_name": "Anna Petrova"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, v) = self.operator("/api/loyalty/cards", body).await;
        assert_eq!(s, 201, "{v}");
    }

    pub async fn adjust(&self, number: &str, amount: i64) {
        let (s, v) = self
            .operator(
                &format!("/api/loyalty/cards/{number}/adjust"),
                json!({"amount": amount, "reason": "welcome bonus", "by": "operator"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// A register call; answers status and JSON.
    pub async fn call(&self, register: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(self.app.url(&format!("/api/loyalty/v1/{path}")))
            .basic_auth(register, Some(PW))
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            s,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    pub async fn ok(&self, register: &str, path: &str, body: &Value) -> Value {
        let (s, v) = self.call(register, path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }
}

pub fn req(op: &str, register: &str) -> Value {
    json!({"operation_id": op, "register": register, "cashier": "Ivanova", "local_time": "2026-10-03T12:00:00"})
}

pub fn with(mut v: Value, extra: Value) -> Value {
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

pub fn lines(amount: i64) -> Value {
    json!([{"goods_id": "100", "price": amount, "quantity": 1000, "amount": amount}])
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn purchase_flow_holds_then_confirms() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue(
            "1000000001",
            json!({"phone": "8 (912) 345-67-89", "barcode": "2200001"}),
        )
        .await;
        l.adjust("1000000001", 10_000).await;

        // Identified by barcode with kind auto; holder block always present.
        let bal = l
            .ok(
                "r1",
                "balance",
                &with(
                    req("b1", "r1"),
                    json!({"identifier": {"kind": "auto", "value": "2200001"}}),
                ),
            )
            .await;
        assert_eq!(bal["holder"]["name"], "Anna Petrova");
        assert_eq!(bal["holder"]["card"], "****0001");
        assert_eq!(bal["holder"]["tier"], "base");
        assert_eq!(bal["balance"]["bonus"], 10_000);

        let id = json!({"kind": "phone", "value": "+7 912 345 67 89"});
        let calc = l
            .ok(
                "r1",
                "calculate",
                &with(
                    req("c1", "r1"),
                    json!({"identifier": id, "lines": lines(50_000)}),
                ),
            )
            .await;
        assert_eq!(calc["bonus_earn"], 2_500); // 5 % default
        assert_eq!(calc["bonus_max_spend"], 10_000); // balance below the 50 % share
        assert_eq!(calc["balance"]["bonus"], 10_000);

        let p = l
            .ok(
                "r1",
                "purchase",
                &with(
                    req("p1", "r1"),
                    json!({"identifier": id, "lines": lines(50_000), "bonus_spend": 4_000}),
                ),
            )
            .await;
        assert_eq!(p["status"], "held");
        assert_eq!(p["to_pay"], 46_000);
        assert_eq!(p["bonus_earn"], 2_300); // earned on money paid, not on bonus
        // Nothing moved yet, but the held bonus is not available twice.
        assert_eq!(p["balance"]["bonus"], 10_000);
        assert_eq!(p["balance"]["available"], 6_000);

        let c = l
            .ok(
                "r1",
                "confirm",
                &with(req("f1", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!(c["balance"]["bonus"], 10_000 - 4_000 + 2_300);
        assert_eq!(c["balance"]["accumulated"], 50_000);

        let card = l.card("1000000001").await;
        assert_eq!(card["balance"], 8_300);
        assert_eq!(card["ledger_balance"], 8_300);
        assert_eq!(card["holder"]["phone"], "+7 912 ***-**-89");
        let kinds: Vec<&str> = card["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["adjustment", "spend", "earn"]);
        assert_eq!(card["operations"][0]["cashier"], "Ivanova");

        // Confirming twice with a new id is refused; the purchase counted once.
        let (s, v) = l
            .call(
                "r1",
                "confirm",
                &with(req("f2", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "purchase_not_open"));
        // Cancel a second purchase: nothing changes.
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p2", "r1"),
                json!({"identifier": id, "lines": lines(10_000), "bonus_spend": 1_000}),
            ),
        )
        .await;
        let x = l
            .ok(
                "r1",
                "cancel",
                &with(req("x2", "r1"), json!({"purchase_operation_id": "p2"})),
            )
            .await;
        assert_eq!(x["status"], "cancelled");
        assert_eq!(x["balance"]["available"], 8_300);
        assert_eq!(l.card("1000000001").await["balance"], 8_300);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_id_from_two_registers_at_once_is_stored_once() {
    // Changing operations run one after the other inside a group commit,
    // so the second of two simultaneous requests with one operation_id
    // finds the first one's stored request: one 200, one 409, never a 500
    // from a unique-key clash.
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.register("r2").await;
        l.issue("42", json!({})).await;
        l.adjust("42", 5_000).await;
        for round in 0..5 {
            let op = format!("same-{round}");
            let body = |reg: &str| {
                with(
                    req(&op, reg),
                    json!({"identifier": {"kind": "card", "value": "42"}, "lines": lines(10_000), "bonus_spend": 100}),
                )
            };
            let (b1, b2) = (body("r1"), body("r2"));
            let ((s1, v1), (s2, v2)) =
                tokio::join!(l.call("r1", "purchase", &b1), l.call("r2", "purchase", &b2));
            let mut statuses = [s1, s2];
            statuses.sort();
            assert_eq!(statuses, [200, 409], "{v1} / {v2}");
            let refused = if s1 == 409 { &v1 } else { &v2 };
            assert_eq!(code(refused), "operation_conflict", "{refused}");
        }
        let card = l.card("42").await;
        assert_eq!(card["ledger_balance"], card["balance"]);
    }
}

#[tokio::test]
async fn retries_get_the_first_answer_and_conflicts_are_refused() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue("42", json!({})).await;
        l.adjust("42", 5_000).await;
        let body = with(
            req("p1", "r1"),
            json!({"identifier": {"kind": "card", "value": "42"}, "lines": lines(10_000), "bonus_spend": 1_000}),
        );
        let first = l.ok("r1", "purchase", &body).await;
        let again = l.ok("r1", "purchase", &body).await;
        assert_eq!(first, again);
        let conf = with(req("f1", "r1"), json!({"purchase_operation_id": "p1"}));
        let c1 = l.ok("r1", "confirm", &conf).await;
        let c2 = l.ok("r1", "confirm", &conf).await;
        assert_eq!(c1, c2);
        assert_eq!(l.card("42").await["balance"], 5_000 - 1_000 + 450);

        let mut other = body.clone();
        other["bonus_spend"] = json!(2_000);
        let (s, v) = l.call("r1", "purchase", &other).await;
        assert_eq!((s, code(&v)), (409, "operation_conflict"), "{v}");
        // The same id on another endpoint is a different request too.
        let (s, v) = l
            .call(
                "r1",
                "cancel",
                &with(req("p1", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "operation_conflict"), "{v}");
        let card = l.card("42").await;
        assert_eq!(card["balance"], 4_450);
        assert_eq!(card["ledger_balance"], 4_450);
    }
}

#[tokio::test]
async fn not_activated_earns_blocked_is_refused_and_found_by_phone() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue("777", json!({"state": "inactive", "track": ";777=2912?"}))
            .await;
        l.adjust("777", 3_000).await;
        let id = json!({"kind": "track", "value": ";777=2912?"});
        let calc = l
            .ok(
                "r1",
                "calculate",
                &with(
                    req("c", "r1"),
                    json!({"identifier": id, "lines": lines(10_000)}),
                ),
            )
            .await;
        assert_eq!(calc["bonus_max_spend"], 0);
        assert_eq!(calc["holder"]["state"], "inactive");
        let (s, v) = l
            .call(
                "r1",
                "purchase",
                &with(
                    req("p1", "r1"),
                    json!({"identifier": id, "lines": lines(10_000), "bonus_spend": 100}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "card_not_activated"), "{v}");
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p2", "r1"),
                json!({"identifier": id, "lines": lines(10_000)}),
            ),
        )
        .await;
        let c = l
            .ok(
                "r1",
                "confirm",
                &with(req("f2", "r1"), json!({"purchase_operation_id": "p2"})),
            )
            .await;
        assert_eq!(c["balance"]["bonus"], 3_500);

        // Blocked card: refused by number; the holder's other card by phone.
        l.issue("900", json!({"phone": "+79001112233"})).await;
        l.issue("901", json!({"phone": "+79001112233"})).await;
        let (s, v) = l
            .operator("/api/loyalty/cards/900/state", json!({"state": "blocked"}))
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = l
            .call(
                "r1",
                "balance",
                &with(
                    req("b1", "r1"),
                    json!({"identifier": {"kind": "auto", "value": "900"}}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "card_blocked"), "{v}");
        let v = l
            .ok(
                "r1",
                "balance",
                &with(
                    req("b2", "r1"),
                    json!({"identifier": {"kind": "phone", "value": "89001112233"}}),
                ),
            )
            .await;
        assert_eq!(v["holder"]["card"], "****901");
        let (s, v) = l
            .call(
                "r1",
                "balance",
                &with(
                    req("b3", "r1"),
                    json!({"identifier": {"kind": "auto", "value": "555"}}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (404, "unknown_card"), "{v}");
    }
}

/// A balance request naming the card by `kind` and `value`.
fn balance_by(op: &str, kind: &str, value: &str) -> Value {
    with(
        req(op, "r1"),
        json!({"identifier": {"kind": kind, "value": value}}),
    )
}

#[tokio::test]
async fn phone_numbers_never_come_back_in_full() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        // A bad phone is refused with the reason, not the number.
        let bad = "+7 912 345 67 8x";
        let card = json!({"number": "1", "holder_name": "X", "phone": bad});
        let (s, v) = l.operator("/api/loyalty/cards", card).await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("phone"), "{msg}");
        assert!(!msg.contains("345 67") && !msg.contains(bad), "{msg}");
        for value in ["8 912 345 67 8x", "8 (495) 345-67-89"] {
            let (s, v) = l
                .call("r1", "balance", &balance_by("b1", "phone", value))
                .await;
            assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains("identifier.value"), "{msg}");
            assert!(!msg.contains("345"), "{msg}");
        }
        // An unknown phone is named masked, by kind phone or auto.
        for kind in ["phone", "auto"] {
            let (s, v) = l
                .call("r1", "balance", &balance_by("b2", kind, "89123456789"))
                .await;
            assert_eq!((s, code(&v)), (404, "unknown_card"), "{v}");
            let text = v.to_string();
            assert!(text.contains("+7 912 ***-**-89"), "{text}");
            assert!(!text.contains("3456"), "{text}");
        }
        // Stored in E.164, shown masked, found by any spelling.
        l.issue("2", json!({"phone": "8 (912) 345-67-89"})).await;
        let card = l.card("2").await;
        assert_eq!(card["holder"]["phone"], "+7 912 ***-**-89");
        assert!(!card.to_string().contains("3456"), "{card}");
        let v = l
            .ok("r1", "balance", &balance_by("b3", "phone", "+79123456789"))
            .await;
        assert_eq!(v["holder"]["card"], "****2");
        assert!(!v.to_string().contains("3456"), "{v}");
    }
}

#[tokio::test]
async fn refunds_return_spent_and_take_back_earned_in_proportion() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue("55", json!({})).await;
        l.adjust("55", 10_000).await;
        let id = json!({"kind": "card", "value": "55"});
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p1", "r1"),
                json!({"identifier": id, "lines": lines(40_000), "bonus_spend": 8_000}),
            ),
        )
        .await;
        l.ok(
            "r1",
            "confirm",
            &with(req("f1", "r1"), json!({"purchase_operation_id": "p1"})),
        )
        .await;
        // earn = 5 % of 32 000 paid = 1 600; balance 10 000 - 8 000 + 1 600.
        assert_eq!(l.card("55").await["balance"], 3_600);

        // A quarter back: 2 000 spent returns, 400 earned goes.
        let r = l
            .ok(
                "r1",
                "refund",
                &with(
                    req("r1", "r1"),
                    json!({"purchase_operation_id": "p1", "amount": 10_000}),
                ),
            )
            .await;
        assert_eq!(r["bonus_returned"], 2_000);
        assert_eq!(r["bonus_taken_back"], 400);
        assert_eq!(r["balance"]["bonus"], 5_200);
        assert_eq!(r["balance"]["accumulated"], 30_000);
        // Too much is refused with the amount left.
        let (s, v) = l
            .call(
                "r1",
                "refund",
                &with(
                    req("r2", "r1"),
                    json!({"purchase_operation_id": "p1", "amount": 30_001}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        // The rest: everything is back where it started.
        let r = l
            .ok(
                "r1",
                "refund",
                &with(req("r3", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!(r["left_to_refund"], 0);
        assert_eq!(r["balance"]["bonus"], 10_000);
        assert_eq!(r["balance"]["accumulated"], 0);
        let card = l.card("55").await;
        assert_eq!(card["ledger_balance"], 10_000);
        let (s, v) = l
            .call(
                "r1",
                "refund",
                &with(
                    req("r4", "r1"),
                    json!({"purchase_operation_id": "p1", "amount": 1}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");

        // Earned bonus already spent elsewhere cannot go negative.
        l.issue("56", json!({})).await;
        let id = json!({"kind": "card", "value": "56"});
        l.ok(
            "r1",
            "purchase",
            &with(
                req("q1", "r1"),
                json!({"identifier": id, "lines": lines(100_000)}),
            ),
        )
        .await;
        l.ok(
            "r1",
            "confirm",
            &with(req("g1", "r1"), json!({"purchase_operation_id": "q1"})),
        )
        .await;
        l.ok(
            "r1",
            "purchase",
            &with(
                req("q2", "r1"),
                json!({"identifier": id, "lines": lines(20_000), "bonus_spend": 4_000}),
            ),
        )
        .await;
        l.ok(
            "r1",
            "confirm",
            &with(req("g2", "r1"), json!({"purchase_operation_id": "q2"})),
        )
        .await;
        let r = l
            .ok(
                "r1",
                "refund",
                &with(req("q3", "r1"), json!({"purchase_operation_id": "q1"})),
            )
            .await;
        assert_eq!(r["balance"]["bonus"], 0);
        assert!(r["bonus_not_recovered"].as_i64().unwrap() > 0, "{r}");
        assert_eq!(l.card("56").await["ledger_balance"], 0);
    }
}

#[tokio::test]
async fn unconfirmed_holds_expire_on_the_clock() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue("9", json!({})).await;
        l.adjust("9", 1_000).await;
        let id = json!({"kind": "card", "value": "9"});
        let p = l
            .ok(
                "r1",
                "purchase",
                &with(
                    req("p1", "r1"),
                    json!({"identifier": id, "lines": lines(10_000), "bonus_spend": 1_000}),
                ),
            )
            .await;
        assert_eq!(p["hold_expires_in_secs"], 60);
        let (s, v) = l
            .call(
                "r1",
                "purchase",
                &with(
                    req("p2", "r1"),
                    json!({"identifier": id, "lines": lines(10_000), "bonus_spend": 1}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "not_enough_bonus"), "{v}");
        l.clock.advance(Duration::from_secs(61));
        // The expired hold no longer counts; confirming it is refused.
        let v = l
            .ok(
                "r1",
                "balance",
                &with(req("b", "r1"), json!({"identifier": id})),
            )
            .await;
        assert_eq!(v["balance"]["available"], 1_000);
        let (s, v) = l
            .call(
                "r1",
                "confirm",
                &with(req("f1", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "hold_expired"), "{v}");
        let (s, _) = l
            .call(
                "r1",
                "confirm",
                &with(req("f1b", "r1"), json!({"purchase_operation_id": "p1"})),
            )
            .await;
        assert_eq!(s, 409);
        let card = l.card("9").await;
        assert_eq!(card["balance"], 1_000);
        assert_eq!(card["operations"][0]["status"], "expired");
        // The sweeper finds nothing more to do, and a fresh hold works.
        let sweeper = tillgate::loyalty::ops::HoldSweeper {
            db: open_db(&l).await,
            settings: l.app.config.section::<tillgate::loyalty::Settings>(),
        };
        assert_eq!(sweeper.expire_due().await.unwrap(), 0);
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p3", "r1"),
                json!({"identifier": id, "lines": lines(10_000), "bonus_spend": 1_000}),
            ),
        )
        .await;
        l.clock.advance(Duration::from_secs(61));
        assert_eq!(sweeper.expire_due().await.unwrap(), 1);
        assert_eq!(l.card("9").await["operations"][1]["status"], "expired");
    }
}

pub async fn open_db(l: &Loyalty) -> tillgate::core::store::Db {
    tillgate::core::store::Db::open(&l.app.config.storage)
        .await
        .unwrap()
}

#[tokio::test]
async fn registers_must_be_registered_and_authenticated() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        l.issue("1", json!({})).await;
        let body = with(
            req("b", "r1"),
            json!({"identifier": {"kind": "card", "value": "1"}}),
        );
        let url = l.app.url("/api/loyalty/v1/balance");
        let r = l.app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "bad_credentials"
        );
        let r = l
            .app
            .client
            .post(&url)
            .basic_auth("r1", Some("wrong-password"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(code(&v), "bad_credentials");
        assert!(!v.to_string().contains(PW));
        let (s, v) = l
            .call(
                "r9",
                "balance",
                &with(
                    req("b", "r9"),
                    json!({"identifier": {"kind": "card", "value": "1"}}),
                ),
            )
            .await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        l.register("r2").await;
        let (s, v) = l.call("r2", "balance", &body).await;
        assert_eq!((s, code(&v)), (403, "register_mismatch"), "{v}");
        // A new password takes effect at once, cached or not.
        l.ok("r1", "balance", &body).await;
        let (s, _) = l
            .operator(
                "/api/loyalty/registers",
                json!({"id": "r1", "password": "another-pass"}),
            )
            .await;
        assert_eq!(s, 201);
        let (s, v) = l.call("r1", "balance", &body).await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"));
        // Operator input is checked too.
        let (s, v) = l
            .operator(
                "/api/loyalty/registers",
                json!({"id": "r:3", "password": "long-enough"}),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) = l
            .operator(
                "/api/loyalty/registers",
                json!({"id": "r3", "password": "short"}),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) = l
            .operator(
                "/api/loyalty/cards",
                json!({"number": "2", "holder_name": "X", "phone": "call me"}),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) = l
            .operator(
                "/api/loyalty/cards",
                json!({"number": "1", "holder_name": "X"}),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "already_exists"), "{v}");
        let (s, v) = l
            .operator(
                "/api/loyalty/cards/1/adjust",
                json!({"amount": -5, "reason": "x", "by": "y"}),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "not_enough_bonus"), "{v}");
        let (s, v) = l
            .operator(
                "/api/loyalty/cards/1/adjust",
                json!({"amount": 5, "reason": " ", "by": "y"}),
            )
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) = l
            .operator("/api/loyalty/cards/nope/state", json!({"state": "blocked"}))
            .await;
        assert_eq!((s, code(&v)), (404, "unknown_card"), "{v}");
        let (s, v) = l
            .operator("/api/loyalty/cards/1/state", json!({"state": "frozen"}))
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
    }
}

#[tokio::test]
async fn malformed_requests_name_the_field_on_every_endpoint() {
    for b in backends() {
        let l = spawn(b).await;
        l.register("r1").await;
        for path in [
            "balance",
            "calculate",
            "purchase",
            "confirm",
            "cancel",
            "refund",
        ] {
            let cases: Vec<(Value, &str)> = vec![
                (
                    json!({"register": "r1", "cashier": "c", "local_time": "2026-10-03T12:00:00"}),
                    "operation_id",
                ),
                (
                    with(
                        req("o", "r1"),
                        json!({"local_time": "2026-10-03T12:00:00Z"}),
                    ),
                    "local_time",
                ),
                (
                    with(req("o", "r1"), json!({"local_time": "yesterday"})),
                    "local_time",
                ),
                (with(req("o", "r1"), json!({"surprise": 1})), "surprise"),
                (with(req("o", "r1"), json!({"cashier": ""})), "cashier"),
                (with(req("o", "r1"), json!({"lines": "many"})), "lines"),
            ];
            for (body, field) in cases {
                let (s, v) = l.call("r1", path, &body).await;
                assert_eq!(
                    (s, code(&v)),
                    (400, "malformed_request"),
                    "{path} {body}: {v}"
                );
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(field), "{path}: {msg} should name {field}");
            }
            let r = l
                .app
                .client
                .post(l.app.url(&format!("/api/loyalty/v1/{path}")))
                .basic_auth("r1", Some(PW))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            assert_eq!(code(&r.json().await.unwrap()), "malformed_request");
        }
        let id = json!({"kind": "auto", "value": "1"});
        let specific: Vec<(&str, Value, &str)> = vec![
            ("balance", req("o", "r1"), "identifier"),
            (
                "balance",
                with(
                    req("o", "r1"),
                    json!({"identifier": {"kind": "nfc", "value": "1"}}),
                ),
                "identifier",
            ),
            (
                "calculate",
                with(req("o", "r1"), json!({"identifier": id})),
                "lines",
            ),
            (
                "calculate",
                with(req("o", "r1"), json!({"identifier": id, "lines": []})),
                "lines",
            ),
            (
                "calculate",
                with(
                    req("o", "r1"),
                    json!({"identifier": id, "lines": [{"goods_id": "1", "price": 1, "quantity": 0, "amount": 1}]}),
                ),
                "lines[0].quantity",
            ),
            (
                "calculate",
                with(
                    req("o", "r1"),
                    json!({"identifier": id, "lines": [{"goods_id": "1", "price": 1.5, "quantity": 1, "amount": 1}]}),
                ),
                "price",
            ),
            (
                "purchase",
                with(
                    req("o", "r1"),
                    json!({"identifier": id, "lines": lines(1), "bonus_spend": -1}),
                ),
                "bonus_spend",
            ),
            (
                "purchase",
                with(
                    req("o", "r1"),
                    json!({"identifier": id, "lines": lines(1), "bonus_spend": 1, "offline": true}),
                ),
                "bonus_spend",
            ),
            ("confirm", req("o", "r1"), "purchase_operation_id"),
            (
                "confirm",
                with(
                    req("o", "r1"),
                    json!({"purchase_operation_id": "p", "amount": 5}),
                ),
                "amount",
            ),
            (
                "cancel",
                with(
                    req("o", "r1"),
                    json!({"purchase_operation_id": "p", "identifier": id}),
                ),
                "identifier",
            ),
            (
                "refund",
                with(
                    req("o", "r1"),
                    json!({"purchase_operation_id": "p", "amount": 0}),
                ),
                "amount",
            ),
        ];
        for (path, body, field) in specific {
            let (s, v) = l.call("r1", path, &body).await;
            assert_eq!(
                (s, code(&v)),
                (400, "malformed_request"),
                "{path} {body}: {v}"
            );
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "{path}: {msg} should name {field}");
        }
        let (s, v) = l
            .call(
                "r1",
                "confirm",
                &with(req("o", "r1"), json!({"purchase_operation_id": "nope"})),
            )
            .await;
        assert_eq!((s, code(&v)), (404, "purchase_not_found"));
    }
}

#[tokio::test]
async fn catalogue_flags_and_promotions_by_register_local_time() {
    for b in backends() {
        let l = spawn_tweaked(b, |c| {
            let file: tillgate::loyalty::FileSection = toml::from_str(
                r#"
                earn_bp = 1000
                tiers = [{ name = "base", from_total = 0, discount_bp = 0 }, { name = "gold", from_total = 100000, discount_bp = 500 }]
                promotions = [{ name = "happy hour", goods = ["beer"], start = "15:00", end = "18:00", discount_bp = 1000, earn_bp = 1000 }]
                "#,
            )
            .unwrap();
            let clock = c.section::<tillgate::loyalty::Settings>().clock;
            let mut s = tillgate::loyalty::validate(file).unwrap();
            s.clock = clock;
            c.set_section(s);
        })
        .await;
        l.register("r1").await;
        l.issue("7", json!({})).await;
        let (s, v) = l
            .operator("/api/loyalty/catalog", json!([{"goods_id": "tobacco", "name": "Cigarettes", "no_discount": true, "no_bonus": true}]))
            .await;
        assert_eq!((s, v["imported"].clone()), (200, json!(1)));
        let (s, v) = l
            .operator("/api/loyalty/catalog", json!([{"goods_id": ""}]))
            .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"));
        let id = json!({"kind": "card", "value": "7"});
        let receipt = json!([
            {"goods_id": "beer", "price": 10_000, "quantity": 1000, "amount": 10_000},
            {"goods_id": "tobacco", "price": 20_000, "quantity": 1000, "amount": 20_000}
        ]);
        let at = |t: &str| json!({"identifier": id, "lines": receipt, "local_time": t});
        let noon = l
            .ok(
                "r1",
                "calculate",
                &with(req("c1", "r1"), at("2026-10-03T12:00:00")),
            )
            .await;
        assert_eq!(noon["discount"], 0);
        assert_eq!(noon["bonus_earn"], 1_000);
        let happy = l
            .ok(
                "r1",
                "calculate",
                &with(req("c2", "r1"), at("2026-10-03T16:00:00")),
            )
            .await;
        assert_eq!(happy["lines"][0]["discount"], 1_000);
        assert_eq!(happy["lines"][1]["discount"], 0);
        assert_eq!(happy["bonus_earn"], 1_800); // 20 % of 9 000
        // Offline purchase made in happy hour, sent later: no discount (the
        // register sold without one) but the happy-hour earn rate applies.
        let off = l
            .ok(
                "r1",
                "purchase",
                &with(
                    req("p1", "r1"),
                    with(at("2026-10-03T16:30:00"), json!({"offline": true})),
                ),
            )
            .await;
        assert_eq!(off["status"], "confirmed");
        assert_eq!(off["discount"], 0);
        assert_eq!(off["bonus_earn"], 2_000);
        assert_eq!(off["balance"]["bonus"], 2_000);
        assert_eq!(off["balance"]["accumulated"], 30_000);
        // Tier by accumulated total.
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p2", "r1"),
                with(at("2026-10-03T12:00:00"), json!({"offline": true})),
            ),
        )
        .await;
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p3", "r1"),
                with(at("2026-10-03T12:00:00"), json!({"offline": true})),
            ),
        )
        .await;
        l.ok(
            "r1",
            "purchase",
            &with(
                req("p4", "r1"),
                with(at("2026-10-03T12:00:00"), json!({"offline": true})),
            ),
        )
        .await;
        let gold = l
            .ok(
                "r1",
                "calculate",
                &with(req("c3", "r1"), at("2026-10-03T12:00:00")),
            )
            .await;
        assert_eq!(gold["holder"]["tier"], "gold");
        assert_eq!(gold["lines"][0]["discount"], 500);
    }
}

#[tokio::test]
async fn bad_loyalty_config_is_refused_naming_the_setting() {
    let cases = [
        ("earn_bp = 20000", "loyalty.earn_bp"),
        ("hold_ttl_secs = 0", "loyalty.hold_ttl_secs"),
        (
            "tiers = [{ name = \"x\", from_total = 5, discount_bp = 1 }]",
            "loyalty.tiers",
        ),
        (
            "promotions = [{ name = \"p\", start = \"25:00\" }]",
            "loyalty.promotions[0].start",
        ),
        (
            "promotions = [{ name = \"p\", days = [8] }]",
            "loyalty.promotions[0].days",
        ),
        ("bonus_lifetime_days = 0", "loyalty.bonus_lifetime_days"),
    ];
    for (text, setting) in cases {
        let file: tillgate::loyalty::FileSection = toml::from_str(text).unwrap();
        let e = tillgate::loyalty::validate(file).unwrap_err().to_string();
        assert!(e.contains(setting), "{text}: {e}");
    }
    assert!(toml::from_str::<tillgate::loyalty::FileSection>("earn_rate = 1").is_err());
}

/// Seed 004: Kassir 5 may run without a password. Only when the operator
/// says so for that register, only from its listed addresses (anything
/// else is `bad_credentials`, as a wrong password), and `doctor` warns.
/// Passwords take Latin letters, digits and punctuation only.
#[tokio::test]
async fn a_register_without_a_password_only_from_its_addresses() {
    for b in backends() {
        let l = spawn(b).await;
        l.issue("1", json!({})).await;
        let put = |body: Value| l.operator("/api/loyalty/registers", body);
        let (s, v) = put(json!({"id": "k0", "no_password": true})).await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        assert!(v.to_string().contains("allowed_from"), "{v}");
        let (s, v) = put(json!({"id": "k0", "password": "пароль-кириллицей"})).await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) =
            put(json!({"id": "k0", "password": "long-enough", "allowed_from": ["127.0.0.1"]}))
                .await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) =
            put(json!({"id": "k0", "no_password": true, "allowed_from": ["the shop"]})).await;
        assert_eq!((s, code(&v)), (400, "malformed_request"), "{v}");
        let (s, v) =
            put(json!({"id": "here", "no_password": true, "allowed_from": ["127.0.0.0/8"]})).await;
        assert_eq!(s, 201, "{v}");
        let (s, v) =
            put(json!({"id": "there", "no_password": true, "allowed_from": ["10.0.0.5"]})).await;
        assert_eq!(s, 201, "{v}");
        let call = |register: &'static str, password: &'static str| {
            let body = with(
                req("b", register),
                json!({"identifier": {"kind": "card", "value": "1"}}),
            );
            let url = l.app.url("/api/loyalty/v1/balance");
            let c = l.app.client.clone();
            async move {
                let r = c
                    .post(&url)
                    .basic_auth(register, Some(password))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                (s, r.json::<Value>().await.unwrap())
            }
        };
        let (s, v) = call("here", "").await;
        assert_eq!(s, 200, "from its address, no password: {v}");
        let (s, v) = call("here", "guess").await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        let (s, v) = call("there", "").await;
        assert_eq!(
            (s, code(&v)),
            (401, "bad_credentials"),
            "off its addresses: {v}"
        );
        let listed = l.app.get_json("/api/loyalty/registers").await;
        let here = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "here")
            .unwrap()
            .clone();
        assert_eq!(here["no_password"], true, "{here}");
        assert_eq!(here["allowed_from"], json!(["127.0.0.0/8"]), "{here}");
        let report = tillgate::doctor::check(&l.app.config).await;
        let warned: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.name.starts_with("register ") && c.level == tillgate::doctor::Level::Warn)
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            warned,
            vec!["register here".to_string(), "register there".to_string()]
        );
        // A password set again closes it.
        let (s, _) = put(json!({"id": "here", "password": "now-with-one"})).await;
        assert_eq!(s, 201);
        let (s, v) = call("here", "").await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        l.app.stop().await;
    }
}
