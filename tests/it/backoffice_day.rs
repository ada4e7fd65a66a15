//! A day in two shops with three registers each: a few hundred receipts,
//! a third with discount cards, returns, one register offline for a while
//! whose receipts (some paid with bonus the ledger never saw) are flushed
//! late; then the resync corrects exactly the cards that drifted, and a
//! second resync changes nothing. Both backends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::backoffice::{Bo, bo, line, open_db};
use crate::harness::backends;
use crate::loyalty::PW;

const REGISTERS: [(&str, &str); 6] = [
    ("s1-r1", "shop1"),
    ("s1-r2", "shop1"),
    ("s1-r3", "shop1"),
    ("s2-r1", "shop2"),
    ("s2-r2", "shop2"),
    ("s2-r3", "shop2"),
];
const OFFLINE: &str = "s2-r3";
const PER_REGISTER: usize = 50;

fn card(n: usize) -> String {
    format!("D{n:03}")
}

/// The receipts register `reg` closes in the day, in order: its sales and
/// its returns (of its own earlier sales).
fn day_of(reg: usize) -> Vec<Value> {
    let (register, store) = REGISTERS[reg];
    let mut out: Vec<Value> = Vec::new();
    for k in 0..PER_REGISTER {
        let id = format!("{register}-{k}");
        if k % 10 == 9 {
            // Return half of the sale two receipts back.
            let sale = &out[out.len() - 2];
            if sale["kind"] != "sale" {
                continue;
            }
            let l0 = &sale["lines"][0];
            let q = l0["quantity"].as_i64().unwrap() / 2;
            let l = line(
                l0["goods_id"].as_str().unwrap(),
                q,
                l0["price"].as_i64().unwrap(),
            );
            let total = l["amount"].as_i64().unwrap();
            let mut r = json!({
                "receipt_id": id, "store": store, "register": register, "cashier": format!("{register}-cashier"),
                "shift": 1, "local_time": format!("2026-11-30T{:02}:{:02}:00", 9 + k / 6, (k * 7) % 60),
                "kind": "return", "sale_receipt_id": sale["receipt_id"], "lines": [l],
                "total": total, "payments": {"cash": total},
            });
            if let Some(c) = sale.get("card") {
                r["card"] = c.clone();
            }
            out.push(r);
            continue;
        }
        let lines: Vec<Value> = (0..1 + k % 3)
            .map(|i| {
                line(
                    &format!("goods-{}", (reg * 3 + k + i) % 12),
                    1000 + 250 * i as i64,
                    1_990 + 1_000 * i as i64,
                )
            })
            .collect();
        let total: i64 = lines.iter().map(|l| l["amount"].as_i64().unwrap()).sum();
        let mut r = json!({
            "receipt_id": id, "store": store, "register": register, "cashier": format!("{register}-cashier"),
            "shift": 1, "local_time": format!("2026-11-30T{:02}:{:02}:00", 9 + k / 6, (k * 7) % 60),
            "kind": "sale", "lines": lines, "total": total, "payments": {"cash": total},
        });
        if k % 3 == 0 {
            r["card"] = json!(card((reg * 7 + k) % 20));
            // Offline, the register let guests pay part with bonus on its
            // own; loyalty never saw the spend.
            if register == OFFLINE && k % 2 == 0 && (20..40).contains(&k) {
                let bonus = 500.min(total);
                r["payments"] = json!({"cash": total - bonus, "bonus": bonus});
            }
        }
        out.push(r);
    }
    out
}

async fn send_all(bo: &Bo, receipts: &[Value]) {
    for r in receipts {
        let (s, v) = bo.receipt(r).await;
        assert_eq!(s, 200, "{}: {v}", r["receipt_id"]);
    }
}

#[tokio::test]
async fn two_shops_three_registers_a_day_with_an_offline_register_and_a_resync() {
    for b in backends() {
        let bo = bo(b).await;
        for (r, _) in REGISTERS {
            bo.l.register(r).await;
        }
        for n in 0..20 {
            bo.l.issue(&card(n), json!({})).await;
            bo.l.adjust(&card(n), 50_000).await;
        }
        let days: Vec<Vec<Value>> = (0..REGISTERS.len()).map(day_of).collect();
        let offline = REGISTERS.iter().position(|(r, _)| *r == OFFLINE).unwrap();
        // The offline register's receipts 20..40 wait in its queue.
        let (before, rest) = days[offline].split_at(20);
        let (queued, after) = rest.split_at(20);
        let mut online: Vec<Vec<Value>> = days.clone();
        online[offline] = before.iter().chain(after.iter()).cloned().collect();
        let sends = online.iter().map(|d| send_all(&bo, d));
        futures::future::join_all(sends).await;
        // Flushed late: after the others' whole day.
        send_all(&bo, queued).await;

        // The journal: every receipt once, totals as sent.
        let all: Vec<&Value> = days.iter().flatten().collect();
        let sign = |r: &Value| if r["kind"] == "return" { -1 } else { 1 };
        let want_total: i64 = all
            .iter()
            .map(|r| sign(r) * r["total"].as_i64().unwrap())
            .sum();
        let rep =
            bo.l.app
                .get_json("/api/backoffice/reports/sales?by=store")
                .await;
        assert_eq!(rep["total"]["amount"], want_total, "{rep}");
        assert_eq!(rep["total"]["receipts"], all.len() as i64);
        // Accumulations: each card's = Σ its receipts.
        let mut acc: BTreeMap<String, i64> = BTreeMap::new();
        let mut bonus_paid: BTreeMap<String, i64> = BTreeMap::new();
        for r in &all {
            if let Some(c) = r["card"].as_str() {
                *acc.entry(c.into()).or_default() += sign(r) * r["total"].as_i64().unwrap();
                let b = r["payments"]["bonus"].as_i64().unwrap_or(0);
                if b > 0 {
                    *bonus_paid.entry(c.into()).or_default() += b;
                }
            }
        }
        for (c, want) in &acc {
            assert_eq!(bo.accumulated(c).await, *want, "card {c}");
        }
        let cards_report =
            bo.l.app
                .get_json("/api/backoffice/reports/sales?by=card")
                .await;
        for row in cards_report["rows"].as_array().unwrap() {
            assert_eq!(
                row["amount"].as_i64(),
                acc.get(row["key"].as_str().unwrap()).copied()
            );
        }
        assert!(!bonus_paid.is_empty());

        // Card acceptance stopped, every register's report taken: resync.
        let db = open_db(&bo).await;
        sqlx::query("INSERT INTO loyalty_switches (scope, id, discount_cards, payment_cards, updated_at) VALUES ('store', 'default', 0, NULL, 1)")
            .execute(&db.write)
            .await
            .unwrap();
        db.close().await;
        let (s, doc) = bo.l.operator("/api/backoffice/resyncs", json!({})).await;
        assert_eq!(s, 201, "{doc}");
        let changed: BTreeSet<String> = doc["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["card"].as_str().unwrap().to_string())
            .collect();
        let drifted: BTreeSet<String> = bonus_paid.keys().cloned().collect();
        assert_eq!(changed, drifted, "{doc}");
        for c in doc["changed"].as_array().unwrap() {
            let n = c["card"].as_str().unwrap();
            assert_eq!(c["entries"][0]["amount"], -bonus_paid[n], "{c}");
            assert_eq!(c["accumulated"]["before"], c["accumulated"]["after"], "{c}");
            assert_eq!(bo.l.card(n).await["balance"], 50_000 - bonus_paid[n]);
        }
        let (s, again) = bo.l.operator("/api/backoffice/resyncs", json!({})).await;
        assert_eq!(s, 201);
        assert_eq!(again["changed"], json!([]), "{again}");
        let _ = PW;
    }
}
