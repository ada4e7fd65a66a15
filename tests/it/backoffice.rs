//! The back office through the real server: registers journal receipts
//! with loyalty's credentials; the operator reads stock, imports stock
//! documents, runs resyncs and reports. Both backends.

use serde_json::{Value, json};

use crate::harness::{Backend, backends};
use crate::loyalty::{Loyalty, PW, lines, req, spawn, with};

pub struct Bo {
    pub l: Loyalty,
}

pub async fn bo(b: Backend) -> Bo {
    let l = spawn(b).await;
    for r in ["reg1", "reg2"] {
        l.register_in(r, "s1").await;
    }
    Bo { l }
}

pub fn line(goods: &str, quantity: i64, price: i64) -> Value {
    let amount = (price * quantity + 500) / 1000;
    json!({"goods_id": goods, "name": format!("goods {goods}"), "quantity": quantity, "price": price, "amount": amount, "discount": 0})
}

/// A sale at `register` of store `s1` paid in cash.
pub fn sale(id: &str, register: &str, lines: Vec<Value>) -> Value {
    let total: i64 = lines.iter().map(|l| l["amount"].as_i64().unwrap()).sum();
    json!({
        "receipt_id": id, "store": "s1", "register": register, "cashier": "c1", "shift": 3,
        "local_time": "2026-11-30T10:15:00", "kind": "sale", "lines": lines,
        "total": total, "payments": {"cash": total},
    })
}

pub fn set(mut v: Value, extra: Value) -> Value {
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

impl Bo {
    /// Changes the database behind the server's back (a drifted card, a
    /// switch set by another instance), one statement after another.
    pub async fn sql(&self, statements: &[&str]) {
        let db = open_db(self).await;
        for sql in statements {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&db.write)
                .await
                .unwrap();
        }
        db.close().await;
    }

    pub async fn receipt_as(&self, register: &str, pw: &str, body: &Value) -> (u16, Value) {
        let r = self
            .l
            .app
            .client
            .post(self.l.app.url("/api/backoffice/v1/receipts"))
            .basic_auth(register, Some(pw))
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn receipt(&self, body: &Value) -> (u16, Value) {
        let reg = body["register"].as_str().unwrap_or("reg1").to_string();
        self.receipt_as(&reg, PW, body).await
    }

    pub async fn ok(&self, body: &Value) -> Value {
        let (s, v) = self.receipt(body).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn post_text(&self, path: &str, ct: &str, body: String) -> (u16, Value) {
        let r = self
            .l
            .app
            .client
            .post(self.l.app.url(path))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stock(&self, store: &str, goods: &str) -> Value {
        let v = self
            .l
            .app
            .get_json(&format!(
                "/api/backoffice/stock?store={store}&goods={goods}"
            ))
            .await;
        v["stock"][0].clone()
    }

    pub async fn accumulated(&self, card: &str) -> i64 {
        self.l.card(card).await["accumulated"].as_i64().unwrap()
    }
}

#[tokio::test]
async fn a_receipt_is_journaled_once_and_a_bad_one_is_refused_naming_the_field() {
    for b in backends() {
        let bo = bo(b).await;
        let r1 = sale(
            "r-1",
            "reg1",
            vec![line("g1", 2000, 5_000), line("g2", 500, 333)],
        );
        let first = bo.ok(&r1).await;
        assert_eq!(first["total"], 10_000 + 167);
        // Same id, same body: the first answer, nothing stored twice.
        assert_eq!(bo.ok(&r1).await, first);
        // Same id, another body: 409.
        let other = set(r1.clone(), json!({"cashier": "c2"}));
        let (s, v) = bo.receipt(&other).await;
        assert_eq!((s, code(&v)), (409, "receipt_conflict"), "{v}");

        // Each figure that does not add up is named.
        let mut bad = sale("r-2", "reg1", vec![line("g1", 1000, 5_000)]);
        bad["lines"][0]["amount"] = json!(4_999);
        let (s, v) = bo.receipt(&bad).await;
        assert_eq!((s, code(&v)), (422, "invalid_receipt"), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("lines[0].amount"),
            "{v}"
        );
        let bad = set(
            sale("r-2", "reg1", vec![line("g1", 1000, 5_000)]),
            json!({"total": 5_001}),
        );
        let (s, v) = bo.receipt(&bad).await;
        assert_eq!(s, 422);
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with("total"),
            "{v}"
        );
        let bad = set(
            sale("r-2", "reg1", vec![line("g1", 1000, 5_000)]),
            json!({"payments": {"cash": 1_000, "bank_card": 3_000}}),
        );
        let (s, v) = bo.receipt(&bad).await;
        assert_eq!(s, 422);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("payments"),
            "{v}"
        );
        let mut bad = sale("r-2", "reg1", vec![line("g1", 1000, 5_000)]);
        bad.as_object_mut().unwrap().remove("store");
        let (s, v) = bo.receipt(&bad).await;
        assert_eq!(s, 422);
        assert!(
            v["error"]["message"].as_str().unwrap().contains("store"),
            "{v}"
        );
        let (s, v) = bo
            .receipt_as(
                "reg1",
                "wrong",
                &sale("r-3", "reg1", vec![line("g1", 1000, 1)]),
            )
            .await;
        assert_eq!((s, code(&v)), (401, "bad_credentials"), "{v}");
        let (s, v) = bo
            .receipt_as("reg2", PW, &sale("r-3", "reg1", vec![line("g1", 1000, 1)]))
            .await;
        assert_eq!((s, code(&v)), (403, "register_mismatch"), "{v}");
        let mut elsewhere = sale("r-3", "reg1", vec![line("g1", 1000, 1)]);
        elsewhere["store"] = json!("s2");
        let (s, v) = bo.receipt_as("reg1", PW, &elsewhere).await;
        assert_eq!((s, code(&v)), (403, "store_mismatch"), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("\"s1\""),
            "{v}"
        );

        // Returns: never more than the sale sold, never of an unknown sale.
        let ret = |id: &str, q: i64| {
            let mut r = sale(id, "reg2", vec![line("g1", q, 5_000)]);
            r["kind"] = json!("return");
            r["sale_receipt_id"] = json!("r-1");
            r
        };
        bo.ok(&ret("ret-1", 1500)).await;
        let (s, v) = bo.receipt(&ret("ret-2", 501)).await;
        assert_eq!(s, 422, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("lines[0].quantity"),
            "{v}"
        );
        bo.ok(&ret("ret-3", 500)).await;
        let mut r = ret("ret-4", 1);
        r["sale_receipt_id"] = json!("nope");
        let (s, v) = bo.receipt(&r).await;
        assert_eq!(s, 422);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("sale_receipt_id"),
            "{v}"
        );

        // Nothing of the refused ones is stored: stock moved only by r-1
        // and the two returns.
        assert_eq!(bo.stock("s1", "g1").await["quantity"], -2000 + 1500 + 500);
        assert_eq!(bo.stock("s1", "g2").await["quantity"], -500);
        let day =
            bo.l.app
                .get_json("/api/backoffice/reports/sales?by=store")
                .await;
        assert_eq!(day["total"]["receipts"], 3, "{day}");
        assert_eq!(day["total"]["amount"], 10_167 - 7_500 - 2_500, "{day}");
        let stored = bo.l.app.get_json("/api/backoffice/receipts/r-1").await;
        assert_eq!(stored["lines"].as_array().unwrap().len(), 2);
        assert_eq!(stored["register"], "reg1");
    }
}

#[tokio::test]
async fn stock_comes_from_movements_and_negative_stock_is_flagged() {
    for b in backends() {
        let bo = bo(b).await;
        let csv = "store,goods_id,name,unit,kind,quantity,local_time\n\
                   s1,g1,Milk,l,arrival,10000,2026-11-30T08:00:00\n\
                   s1,g2,Bread,pcs,arrival,2000,2026-11-30T08:00:00\n";
        let (s, v) = bo
            .post_text(
                "/api/backoffice/stock/imports?document=arr-1",
                "text/csv",
                csv.into(),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        // The same document again is refused, not counted twice.
        let (s, v) = bo
            .post_text(
                "/api/backoffice/stock/imports?document=arr-1",
                "text/csv",
                csv.into(),
            )
            .await;
        assert_eq!((s, code(&v)), (409, "document_imported"), "{v}");
        // A bad row refuses the whole file, naming the row.
        let bad = "store,goods_id,kind,quantity,local_time\ns1,g3,arrival,5,2026-11-30T08:00:00\ns1,g4,arrival,ten,2026-11-30T08:00:00\n";
        let (s, v) = bo
            .post_text(
                "/api/backoffice/stock/imports?document=bad",
                "text/csv",
                bad.into(),
            )
            .await;
        assert_eq!((s, code(&v)), (422, "invalid_document"), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("row 2"),
            "{v}"
        );
        let bad = json!([{"store": "s1", "goods_id": "g3", "kind": "sale", "quantity": 5, "local_time": "2026-11-30T08:00:00"}]);
        let (s, v) = bo
            .post_text(
                "/api/backoffice/stock/imports?document=bad2",
                "application/json",
                bad.to_string(),
            )
            .await;
        assert_eq!(s, 422, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("kind"),
            "{v}"
        );
        assert!(
            bo.l.app.get_json("/api/backoffice/stock?goods=g3").await["stock"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        bo.ok(&sale(
            "r-1",
            "reg1",
            vec![line("g1", 3000, 8_000), line("g2", 2500, 4_000)],
        ))
        .await;
        let g1 = bo.stock("s1", "g1").await;
        assert_eq!(g1["quantity"], 7000);
        assert_eq!(g1["unit"], "l");
        assert_eq!(g1["last_local_time"], "2026-11-30T10:15:00");
        let g2 = bo.stock("s1", "g2").await;
        assert_eq!(
            (g2["quantity"].as_i64(), g2["negative"].as_bool()),
            (Some(-500), Some(true))
        );
        let all = bo.l.app.get_json("/api/backoffice/stock?store=s1").await;
        assert_eq!(all["negative"], 1, "{all}");

        // A count records the difference to what was counted.
        let count = json!({"rows": [{"store": "s1", "goods_id": "g1", "kind": "count", "quantity": 6500, "local_time": "2026-11-30T20:00:00"}]});
        let (s, v) = bo
            .post_text(
                "/api/backoffice/stock/imports?document=inv-1",
                "application/json",
                count.to_string(),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(bo.stock("s1", "g1").await["quantity"], 6500);
        let m =
            bo.l.app
                .get_json("/api/backoffice/stock/movements?store=s1&goods=g1")
                .await;
        let kinds: Vec<(&str, i64)> = m["movements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["kind"].as_str().unwrap(), m["quantity"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![("arrival", 10000), ("sale", -3000), ("count", -500)]
        );
        // The metric is the process's (tests run side by side): at least
        // this test's one negative movement.
        let metrics = bo.l.app.get("/metrics").await.text().await.unwrap();
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tillgate_backoffice_negative_stock_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 1.0, "{metrics}");
    }
}

#[tokio::test]
async fn a_receipt_with_a_card_raises_its_accumulation_once_and_the_balance_shows_it() {
    for b in backends() {
        let bo = bo(b).await;
        bo.l.issue("7001", json!({})).await;
        let r = set(
            sale("c-1", "reg1", vec![line("g1", 1000, 30_000)]),
            json!({"card": "7001"}),
        );
        let a = bo.ok(&r).await;
        assert_eq!(
            (a["accrued"].as_i64(), a["accumulated"].as_i64()),
            (Some(30_000), Some(30_000))
        );
        assert_eq!(bo.ok(&r).await, a, "a repeat is the first answer");
        let bal =
            bo.l.ok(
                "reg2",
                "balance",
                &with(
                    req("b1", "reg2"),
                    json!({"identifier": {"kind": "card", "value": "7001"}}),
                ),
            )
            .await;
        assert_eq!(bal["balance"]["accumulated"], 30_000, "{bal}");

        // A loyalty purchase and its receipt: counted once.
        let p = bo
            .l
            .ok(
                "reg1",
                "purchase",
                &with(req("p1", "reg1"), json!({"identifier": {"kind": "card", "value": "7001"}, "lines": lines(20_000)})),
            )
            .await;
        assert_eq!(p["status"], "held");
        bo.l.ok(
            "reg1",
            "confirm",
            &with(req("f1", "reg1"), json!({"purchase_operation_id": "p1"})),
        )
        .await;
        let linked = set(
            sale("c-2", "reg1", vec![line("100", 1000, 20_000)]),
            json!({"card": "7001", "loyalty_operation_id": "p1"}),
        );
        let a = bo.ok(&linked).await;
        assert_eq!(a["accrued"], 0);
        assert_eq!(bo.accumulated("7001").await, 50_000);

        // A return takes its amount back.
        let mut ret = set(
            sale("c-3", "reg2", vec![line("g1", 500, 30_000)]),
            json!({"card": "7001"}),
        );
        ret["kind"] = json!("return");
        ret["sale_receipt_id"] = json!("c-1");
        bo.ok(&ret).await;
        assert_eq!(bo.accumulated("7001").await, 35_000);

        // An unknown card is refused and nothing is stored.
        let r = set(
            sale("c-4", "reg1", vec![line("g1", 1000, 1_000)]),
            json!({"card": "nope"}),
        );
        let (s, v) = bo.receipt(&r).await;
        assert_eq!((s, code(&v)), (422, "unknown_card"), "{v}");
        assert_eq!(
            bo.l.app.get("/api/backoffice/receipts/c-4").await.status(),
            404
        );
    }
}

/// A purchase confirmed at one register while another journals a receipt
/// with the same card: both totals land, neither overwrites the other
/// (the owner's absolute write on SQLite, row locks on PostgreSQL).
#[tokio::test]
async fn a_concurrent_purchase_and_journal_receipt_on_one_card_both_count() {
    for b in backends() {
        let bo = bo(b).await;
        bo.l.issue("7002", json!({})).await;
        let mut expected = 0;
        for i in 0..20 {
            let buy = async {
                let id = json!({"kind": "card", "value": "7002"});
                bo.l.ok(
                    "reg1",
                    "purchase",
                    &with(
                        req(&format!("p{i}"), "reg1"),
                        json!({"identifier": id, "lines": lines(1_000)}),
                    ),
                )
                .await;
                bo.l.ok(
                    "reg1",
                    "confirm",
                    &with(
                        req(&format!("f{i}"), "reg1"),
                        json!({"purchase_operation_id": format!("p{i}")}),
                    ),
                )
                .await;
            };
            let body = set(
                sale(&format!("j{i}"), "reg2", vec![line("g1", 1000, 700)]),
                json!({"card": "7002"}),
            );
            let journal = bo.ok(&body);
            let ((), _) = tokio::join!(buy, journal);
            expected += 1_000 + 700;
        }
        assert_eq!(bo.accumulated("7002").await, expected);
    }
}

#[tokio::test]
async fn a_resync_corrects_the_drifted_cards_and_a_second_run_changes_nothing() {
    for b in backends() {
        let bo = bo(b).await;
        for c in ["8001", "8002", "8003"] {
            bo.l.issue(c, json!({})).await;
        }
        bo.l.adjust("8002", 5_000).await;
        bo.ok(&set(
            sale("s-1", "reg1", vec![line("g1", 1000, 10_000)]),
            json!({"card": "8001"}),
        ))
        .await;
        // Paid partly with bonus while the register was offline: the ledger
        // never saw the spend.
        bo.ok(&set(
            sale("s-2", "reg2", vec![line("g1", 1000, 10_000)]),
            json!({"card": "8002", "payments": {"cash": 8_000, "bonus": 2_000}}),
        ))
        .await;
        // Card 8003 drifts: its total was changed behind the journal.
        bo.sql(&["UPDATE loyalty_cards SET accumulated = 999 WHERE number = '8003'"])
            .await;

        // Card operations are on (the default) in the registers' store:
        // refused unless forced.
        let (s, v) = bo.l.operator("/api/backoffice/resyncs", json!({})).await;
        assert_eq!((s, code(&v)), (409, "cards_enabled"), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("s1"),
            "{v}"
        );
        // Switched off, with one register's offline queue not yet flushed.
        bo.sql(&[
            "INSERT INTO loyalty_switches (scope, id, discount_cards, payment_cards, updated_at) VALUES ('store', 's1', 0, NULL, 1)",
            "INSERT INTO loyalty_register_queue (register_id, depth, seen_at) VALUES ('reg2', 3, 1)",
        ])
        .await;
        let (s, doc) = bo.l.operator("/api/backoffice/resyncs", json!({})).await;
        assert_eq!(s, 201, "{doc}");
        assert_eq!(doc["forced"], false);
        assert_eq!(doc["queued_registers"][0]["register_id"], "reg2", "{doc}");
        assert_eq!(doc["queued_registers"][0]["depth"], 3, "{doc}");
        let changed: Vec<&str> = doc["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["card"].as_str().unwrap())
            .collect();
        assert_eq!(changed, vec!["8002", "8003"], "{doc}");
        let c2 = &doc["changed"][0];
        assert_eq!(c2["bonus"], json!({"before": 5_000, "after": 3_000}));
        assert_eq!(c2["entries"][0]["amount"], -2_000);
        assert_eq!(
            doc["changed"][1]["accumulated"],
            json!({"before": 999, "after": 0})
        );
        assert_eq!(bo.l.card("8002").await["balance"], 3_000);
        assert_eq!(bo.accumulated("8003").await, 0);
        assert_eq!(bo.accumulated("8001").await, 10_000);
        let stored =
            bo.l.app
                .get_json(&format!(
                    "/api/backoffice/resyncs/{}",
                    doc["id"].as_str().unwrap()
                ))
                .await;
        assert_eq!(stored, doc);

        // Cards back on: a forced run goes ahead, and changes nothing.
        bo.sql(&["DELETE FROM loyalty_switches"]).await;
        let (s, again) =
            bo.l.operator(
                "/api/backoffice/resyncs",
                json!({"cards": ["8002", "8003"], "force": true}),
            )
            .await;
        assert_eq!(s, 201, "{again}");
        assert_eq!(again["changed"], json!([]), "{again}");
        assert_eq!(again["cards_checked"], 2);
        // Seed 004: an empty list of cards means every card.
        let (s, all) =
            bo.l.operator(
                "/api/backoffice/resyncs",
                json!({"cards": [], "force": true}),
            )
            .await;
        assert_eq!(s, 201, "{all}");
        let (s, every) =
            bo.l.operator("/api/backoffice/resyncs", json!({"force": true}))
                .await;
        assert_eq!(s, 201, "{every}");
        assert_eq!(
            all["cards_checked"], every["cards_checked"],
            "{all} {every}"
        );
        assert!(all["cards_checked"].as_i64().unwrap() >= 2, "{all}");
        let (s, v) =
            bo.l.operator("/api/backoffice/resyncs", json!({"card": ["1"]}))
                .await;
        assert_eq!(s, 422, "{v}");
    }
}

async fn open_db(bo: &Bo) -> tillgate::core::store::Db {
    tillgate::core::store::Db::open(&bo.l.app.config.storage)
        .await
        .unwrap()
}

#[tokio::test]
async fn reports_add_up_to_the_journal_in_json_and_csv() {
    for b in backends() {
        let bo = bo(b).await;
        let mut total = 0;
        for i in 0..12 {
            let mut r = sale(
                &format!("x{i}"),
                if i % 2 == 0 { "reg1" } else { "reg2" },
                vec![line("g1", 1000 + i, 1_000), line("g2", 2000, 500 + i)],
            );
            r["local_time"] = json!(format!("2026-11-30T{:02}:30:00", 9 + i % 4));
            r["cashier"] = json!(format!("c{}", i % 3));
            total += r["total"].as_i64().unwrap();
            bo.ok(&r).await;
        }
        let mut ret = sale("x-ret", "reg1", vec![line("g1", 1000, 1_000)]);
        ret["kind"] = json!("return");
        ret["sale_receipt_id"] = json!("x0");
        total -= 1_000;
        bo.ok(&ret).await;
        for by in ["store", "day", "hour", "goods", "cashier"] {
            let r =
                bo.l.app
                    .get_json(&format!("/api/backoffice/reports/sales?by={by}"))
                    .await;
            assert_eq!(r["total"]["amount"], total, "{by}: {r}");
            let sum: i64 = r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["amount"].as_i64().unwrap())
                .sum();
            assert_eq!(sum, total, "{by}");
            assert_eq!(r["total"]["receipts"], 13, "{by}: {r}");
        }
        let hours =
            bo.l.app
                .get_json("/api/backoffice/reports/sales?by=hour")
                .await;
        assert_eq!(hours["rows"].as_array().unwrap().len(), 4);
        let csv =
            bo.l.app
                .get("/api/backoffice/reports/sales?by=cashier&format=csv")
                .await
                .text()
                .await
                .unwrap();
        let last = csv.lines().last().unwrap();
        assert_eq!(last, format!("total,13,0,{total}"));
        assert_eq!(csv.lines().count(), 1 + 3 + 1, "{csv}");
        let r =
            bo.l.app
                .get("/api/backoffice/reports/sales?by=weather")
                .await;
        assert_eq!(r.status(), 400);
        // Bounds are local times; one the journal cannot compare is refused
        // naming it, and a time written with a space means what it says.
        let r =
            bo.l.app
                .get("/api/backoffice/reports/sales?by=store&from=monday")
                .await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(code(&v), "bad_query", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("from"),
            "{v}"
        );
        let r = bo
            .l
            .app
            .get_json(
                "/api/backoffice/reports/sales?by=store&from=2026-11-30%2011:00:00&to=2026-12-01",
            )
            .await;
        assert_eq!(r["total"]["receipts"], 6, "{r}");
    }
}

const REST: &str = "199990093";

/// An r_keeper notify event for order `guid` at cash server 15002.
fn rk_event(seq: u64, guid: &str, attrs: &str, sessions: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="{REST}" DateTime="2026-11-02T12:20:00" Situation="11" seqnumber="{seq}" guid="{{0A6B7C1D-0000-4000-8000-0000000000B0}}" name="x" ShiftNum="4" ShiftDate="2026-11-02T00:00:00">
<Station id="15003" code="1" name="CASH" NetName="CASH"/>
<Server id="15002" code="15002" name="MID" NetName="MID"/>
<Order visit="1" orderIdent="7" guid="{guid}" orderName="T5" {attrs} openTime="2026-11-02T11:00:00"><Waiter id="1" code="7" name="Anna"/></Order>{sessions}<Item/></a>"#
    )
}

const DISHES: &str = r#"<Session uni="1" state="1"><Dish id="10" code="100" name="Borscht" uni="1" quantity="2000" price="35000" amount="70000"/><Dish id="11" code="101" name="Tea" uni="2" quantity="1000" price="12000" amount="12000"/></Session>"#;
const PAID: &str = r#"<Session uni="2"><Pay id="1" code="1" name="Cash" amount="82000"/><PrintCheck CheckNum="17" amount="82000" bill="0" printTime="2026-11-02T12:20:00"/></Session>"#;

#[tokio::test]
async fn rkeeper_paid_orders_are_journaled_once_across_repeats_restarts_and_replays() {
    for b in backends() {
        let app = crate::harness::spawn_app(b).await;
        let o1 = "{11111111-2222-3333-4444-5555555555B1}";
        let o2 = "{11111111-2222-3333-4444-5555555555B2}";
        // Open, then paid, then the same paid order again (a later event).
        app.ingest(rk_event(
            1,
            o1,
            r#"orderSum="82000" unpaidSum="82000""#,
            DISHES,
        ))
        .await;
        app.ingest(rk_event(
            2,
            o1,
            r#"orderSum="82000" unpaidSum="0""#,
            &format!("{DISHES}{PAID}"),
        ))
        .await;
        app.ingest(rk_event(
            3,
            o1,
            r#"orderSum="82000" unpaidSum="0" finished="1""#,
            &format!("{DISHES}{PAID}"),
        ))
        .await;
        // Unpaid order: not a receipt.
        app.ingest(rk_event(
            4,
            o2,
            r#"orderSum="82000" unpaidSum="82000""#,
            DISHES,
        ))
        .await;
        app.wait_consumer("backoffice-journal").await;
        let check = async |app: &crate::harness::TestApp| {
            let r = app.get_json("/api/backoffice/reports/sales?by=store").await;
            assert_eq!(
                r["rows"],
                json!([{"key": REST, "receipts": 1, "quantity": 0, "amount": 82000}]),
                "{r}"
            );
            let s = app
                .get_json(&format!("/api/backoffice/stock?store={REST}&goods=rk:100"))
                .await;
            assert_eq!(s["stock"][0]["quantity"], -2000, "{s}");
            let c = app
                .get_json("/api/backoffice/reports/sales?by=cashier")
                .await;
            assert_eq!(c["rows"][0]["key"], format!("{REST}/Anna"));
        };
        check(&app).await;
        let guid = o1.trim_matches(['{', '}']);
        let id = ["rk:", REST, ":", guid].concat();
        let v = app
            .get_json(&format!("/api/backoffice/receipts/{id}"))
            .await;
        assert_eq!(v["register"], format!("{REST}/15002"), "{v}");
        assert_eq!(v["source"], "rkeeper");

        // Restart; then forget the cursor so the consumer replays the whole
        // log: still one receipt, stock moved once.
        let (config, dir) = app.stop().await;
        let db = tillgate::core::store::Db::open(&config.storage)
            .await
            .unwrap();
        let mut tx = db.write.begin().await.unwrap();
        tillgate::core::log::delete_cursor(&mut tx, "backoffice-journal")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        db.close().await;
        let app = crate::harness::start(config, dir).await;
        app.wait_consumer("backoffice-journal").await;
        check(&app).await;
    }
}

/// A journal written before migration 0016 (each receipt line copied into
/// `backoffice_movements`) reads the same after it: the copies go, each
/// line is one movement, and the kept stock still equals the movements.
#[tokio::test]
async fn movements_written_before_lines_were_movements_are_not_counted_twice() {
    use tillgate::backoffice::stock;
    use tillgate::core::config::Storage;
    use tillgate::core::migrate::migrate;
    for b in backends() {
        let dir = tempfile::tempdir().unwrap();
        let storage = match b {
            Backend::Sqlite => Storage::Sqlite {
                path: dir.path().join("old.sqlite"),
            },
            Backend::Postgres => Storage::Postgres {
                url: crate::harness::fresh_pg_database().await.into(),
            },
        };
        let db = tillgate::core::store::Db::open(&storage).await.unwrap();
        let all = tillgate::app::migrations();
        let before: Vec<_> = all.iter().filter(|m| m.version < 16).cloned().collect();
        migrate(&db, &before).await.unwrap();
        // What the release before 0016 wrote for an arrival of 5 and a
        // sale of 2 of g1 in s1: the document's movement, the receipt, its
        // line, the line's copy as a movement, the kept stock.
        for sql in [
            "INSERT INTO backoffice_movements (id, store, goods_id, kind, quantity, counted, local_time, document, created_at) \
             VALUES ('a1:0', 's1', 'g1', 'arrival', 5000, NULL, '2026-11-30T09:00:00', 'a1', 1)",
            "INSERT INTO backoffice_receipts (id, source, store, register, cashier, shift, local_time, kind, sale_id, total, cash, bank_card, payment_card, bonus, card, loyalty_operation_id, accrued, request, answer, created_at) \
             VALUES ('r1', 'register', 's1', 'reg1', 'c1', 1, '2026-11-30T10:00:00', 'sale', NULL, 200, 200, 0, 0, 0, NULL, NULL, 0, '{}', '{}', 2)",
            "INSERT INTO backoffice_receipt_lines (receipt_id, line_no, goods_id, name, quantity, price, amount, discount) \
             VALUES ('r1', 0, 'g1', 'g1', 2000, 100, 200, 0)",
            "INSERT INTO backoffice_movements (id, store, goods_id, kind, quantity, counted, local_time, document, created_at) \
             VALUES ('r1:0', 's1', 'g1', 'sale', -2000, NULL, '2026-11-30T10:00:00', 'r1', 2)",
            "INSERT INTO backoffice_stock (store, goods_id, quantity, last_movement_at, last_local_time) \
             VALUES ('s1', 'g1', 3000, 2, '2026-11-30T10:00:00')",
        ] {
            sqlx::query(sql).execute(&db.write).await.unwrap();
        }
        migrate(&db, &all).await.unwrap();
        let m: Vec<(String, String, i64)> = stock::movements(&db, "s1", "g1")
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.kind, m.quantity))
            .collect();
        assert_eq!(
            m,
            vec![
                ("a1:0".to_string(), "arrival".to_string(), 5000),
                ("r1:0".to_string(), "sale".to_string(), -2000)
            ],
            "{b:?}"
        );
        assert_eq!(
            stock::sums_of_movements(&db).await.unwrap(),
            stock::kept(&db).await.unwrap(),
            "{b:?}"
        );
        assert_eq!(stock::kept(&db).await.unwrap()[0].quantity, 3000);
        db.close().await;
    }
}
