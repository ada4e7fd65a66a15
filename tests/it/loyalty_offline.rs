//! The register-side client crate against the real server: offline sales
//! queue durably, flush in order, and replaying a batch twice has one effect.

use serde_json::json;
use tillgate_loyalty_client::{Client, Identifier, Line, Purchase, PurchaseOutcome, Settings};

use crate::harness::backends;
use crate::loyalty::{PW, spawn_tweaked};

fn settings(base: &str) -> Settings {
    Settings {
        base_url: base.to_string(),
        register: "till-1".into(),
        password: PW.to_string().into(),
        timeout: std::time::Duration::from_secs(3),
    }
}

fn sale(op: &str, card: &str, amount: i64, t: &str, spend: i64) -> Purchase {
    Purchase {
        operation_id: op.into(),
        cashier: "Smirnova".into(),
        local_time: t.into(),
        identifier: Identifier::auto(card),
        lines: vec![Line {
            goods_id: "beer".into(),
            price: amount,
            quantity: 1000,
            amount,
        }],
        bonus_spend: spend,
    }
}

/// An address nothing listens on: the link is down.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}")
}

#[tokio::test]
async fn offline_sales_earn_later_and_a_replayed_batch_counts_once() {
    for b in backends() {
        let l = spawn_tweaked(b, |c| {
            let file: tillgate::loyalty::FileSection = toml::from_str(
                r#"promotions = [{ name = "evening", start = "18:00", end = "23:00", earn_bp = 500 }]"#,
            )
            .unwrap();
            let clock = c.section::<tillgate::loyalty::Settings>().clock;
            let mut s = tillgate::loyalty::validate(file).unwrap();
            s.clock = clock;
            c.set_section(s);
        })
        .await;
        l.register("till-1").await;
        l.issue("3001", json!({"phone": "+79005550011"})).await;
        l.adjust("3001", 10_000).await;
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue.sqlite");

        let down = Client::open(settings(&dead_url().await), &queue)
            .await
            .unwrap();
        // Offline: spending is refused, the sale is queued to earn.
        let out = down
            .purchase(&sale("op-1", "3001", 10_000, "2026-10-03T12:00:00", 2_000))
            .await
            .unwrap();
        match out {
            PurchaseOutcome::Offline {
                bonus_spend_refused,
                message,
                ..
            } => {
                assert_eq!(bonus_spend_refused, 2_000);
                assert!(message.contains("offline"), "{message}");
            }
            other => panic!("expected offline, got {other:?}"),
        }
        // Evening sale: the server must use the promotion valid then.
        down.purchase(&sale("op-2", "3001", 10_000, "2026-10-03T19:00:00", 0))
            .await
            .unwrap();
        down.purchase(&sale(
            "op-3",
            "no-such-card",
            10_000,
            "2026-10-03T19:05:00",
            0,
        ))
        .await
        .unwrap();
        assert_eq!(down.pending().await.unwrap(), 3);
        down.close().await;
        // The queue survives the register restarting; keep a copy to replay.
        let copy = dir.path().join("copy.sqlite");
        std::fs::copy(&queue, &copy).unwrap();

        let up = Client::open(settings(&l.app.base), &queue).await.unwrap();
        assert_eq!(up.pending().await.unwrap(), 3);
        let r = up.flush().await.unwrap();
        assert_eq!((r.sent, r.rejected, r.left), (2, 1, 0));
        assert!(
            up.rejected().await.unwrap()[0]
                .1
                .starts_with("unknown_card")
        );
        let card = l.card("3001").await;
        // 5 % at noon, 10 % in the evening, on 10 000 each.
        assert_eq!(card["balance"], 10_000 + 500 + 1_000);
        assert_eq!(card["accumulated"], 20_000);
        let ops = card["operations"].as_array().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0]["operation_id"], "op-1");
        assert_eq!(ops[0]["local_time"], "2026-10-03T12:00:00");
        assert_eq!(ops[0]["offline"], true);
        assert_eq!(ops[1]["operation_id"], "op-2");

        // The same batch again (a copied queue file): one effect.
        let replay = Client::open(settings(&l.app.base), &copy).await.unwrap();
        let r = replay.flush().await.unwrap();
        assert_eq!((r.sent, r.rejected, r.left), (2, 1, 0));
        let again = l.card("3001").await;
        assert_eq!(again["balance"], card["balance"]);
        assert_eq!(
            again["ledger"].as_array().unwrap().len(),
            card["ledger"].as_array().unwrap().len()
        );
        assert_eq!(again["ledger_balance"], 11_500);

        // Online again: purchases are two-phase and may spend.
        match up
            .purchase(&sale(
                "op-4",
                "+7 900 555 00 11",
                10_000,
                "2026-10-03T12:10:00",
                1_000,
            ))
            .await
            .unwrap()
        {
            PurchaseOutcome::Held(v) => assert_eq!(v["status"], "held"),
            other => panic!("expected online, got {other:?}"),
        }
        let c = up
            .confirm("op-5", "Smirnova", "2026-10-03T12:10:05", "op-4")
            .await
            .unwrap();
        assert_eq!(c["balance"]["bonus"], 11_500 - 1_000 + 450);
        // A refusal is an error the cashier can read, not a queued sale.
        let e = up
            .purchase(&sale(
                "op-6",
                "3001",
                10_000,
                "2026-10-03T12:11:00",
                999_999,
            ))
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("bonus_over_limit"), "{e}");
        assert_eq!(up.pending().await.unwrap(), 0);
    }
}
