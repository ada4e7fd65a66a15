//! Crash test for loyalty: `kill -9` the real binary while registers run
//! purchase flows, start it again on the same data, and check that every
//! acknowledged operation is there (a retry gets the same answer), that no
//! operation is half stored, and that each card's state equals a replay of
//! its stored operations (the in-memory owner's state is rebuilt from the
//! tables, so what it answers after the restart is what was committed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::crash::{start_binary, wait_healthy};
use crate::harness::{Backend, backends, fresh_pg_database};

const PW: &str = "register-secret-1";
const REGISTERS: usize = 4;
const CARDS: usize = 3;
const INITIAL: i64 = 500_000;

/// An acknowledged register request and the answer it got.
type Acked = Arc<Mutex<Vec<(String, Value, Value)>>>;

async fn operator(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let r = client
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    register: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let r = client
        .post(format!("{base}/api/loyalty/v1/{path}"))
        .basic_auth(register, Some(PW))
        .json(body)
        .send()
        .await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}

/// One register: purchase (spending bonus), then confirm, until the
/// server goes away.
async fn register_loop(base: String, r: usize, acked: Acked) {
    let client = reqwest::Client::new();
    let register = format!("crash-r{r}");
    for n in 0.. {
        let card = format!("700000{}", (r + n) % CARDS);
        let common = |k: &str| {
            json!({"operation_id": format!("{register}-{n}-{k}"), "register": register,
                   "cashier": "Ivanova", "local_time": "2026-10-03T12:00:00"})
        };
        let mut buy = common("p");
        buy["identifier"] = json!({"kind": "card", "value": card});
        buy["lines"] =
            json!([{"goods_id": "1", "price": 40000, "quantity": 1000, "amount": 40000}]);
        buy["bonus_spend"] = json!(7000);
        for (path, body) in [
            ("purchase", buy),
            ("confirm", {
                let mut c = common("c");
                c["purchase_operation_id"] = json!(format!("{register}-{n}-p"));
                c
            }),
        ] {
            match call(&client, &base, &register, path, &body).await {
                Ok((200, v)) => acked.lock().unwrap().push((path.to_string(), body, v)),
                // A refusal (not enough bonus) is an answer too, not stored.
                Ok((409, _)) => break,
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_keeps_every_acknowledged_operation_and_state_equals_replay() {
    for backend in backends() {
        crash_once(backend).await;
    }
}

async fn crash_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pg_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_pg_database().await),
    };
    let client = reqwest::Client::new();
    let mut server = start_binary(dir.path(), pg_url.as_deref());
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    for r in 0..REGISTERS {
        operator(
            &client,
            &base,
            "/api/loyalty/registers",
            json!({"id": format!("crash-r{r}"), "password": PW}),
        )
        .await;
    }
    for c in 0..CARDS {
        let number = format!("700000{c}");
        operator(
            &client,
            &base,
            "/api/loyalty/cards",
            json!({"number": number, "holder_name": "Guest"}),
        )
        .await;
        operator(
            &client,
            &base,
            &format!("/api/loyalty/cards/{number}/adjust"),
            json!({"amount": INITIAL, "reason": "welcome", "by": "test"}),
        )
        .await;
    }

    let acked: Acked = Arc::default();
    let mut registers = Vec::new();
    for r in 0..REGISTERS {
        registers.push(tokio::spawn(register_loop(base.clone(), r, acked.clone())));
    }
    for _ in 0..4000 {
        if acked.lock().unwrap().len() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("kill -9");
    server.child.wait().unwrap();
    for r in registers {
        r.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "{backend:?}: load too short: {}",
        acked.len()
    );

    let mut server = start_binary(dir.path(), pg_url.as_deref());
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();

    // Every acknowledged operation is stored: the same request answers the
    // same, byte for byte, after the restart.
    for (path, body, first) in &acked {
        let register = body["register"].as_str().unwrap();
        let (s, again) = call(&client, &base, register, path, body).await.unwrap();
        assert_eq!(s, 200, "{backend:?}: {path} {body} after restart: {again}");
        assert_eq!(
            &again, first,
            "{backend:?}: {path} answered differently after restart"
        );
    }

    // Each card equals a replay of what is stored: the initial bonus plus,
    // for every confirmed purchase, its earn minus its spend; held bonus is
    // the spend of purchases still held; no operation half stored.
    for c in 0..CARDS {
        let number = format!("700000{c}");
        let h: Value = client
            .get(format!("{base}/api/loyalty/cards/{number}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ops = h["operations"].as_array().unwrap();
        let mut replay = INITIAL;
        let mut held = 0;
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for o in ops {
            *kinds.entry(o["kind"].as_str().unwrap()).or_default() += 1;
            if o["kind"] == "purchase" {
                let (spend, earn) = (
                    o["bonus_spend"].as_i64().unwrap(),
                    o["bonus_earn"].as_i64().unwrap(),
                );
                match o["status"].as_str().unwrap() {
                    "confirmed" => replay += earn - spend,
                    "held" => held += spend,
                    other => panic!("{backend:?}: purchase {other} without a cancel"),
                }
            }
        }
        let confirmed = ops
            .iter()
            .filter(|o| o["kind"] == "purchase" && o["status"] == "confirmed")
            .count();
        assert_eq!(
            kinds.get("confirm").copied().unwrap_or(0),
            confirmed,
            "{backend:?}: {number}: every confirmed purchase has its confirm"
        );
        assert_eq!(
            h["balance"].as_i64().unwrap(),
            replay,
            "{backend:?}: {number}: balance equals the replay"
        );
        assert_eq!(
            h["ledger_balance"], h["balance"],
            "{backend:?}: {number}: ledger and balance agree"
        );
        assert!(replay >= 0);
        let register = "crash-r0";
        let mut b = json!({"operation_id": format!("bal-{number}"), "register": register, "cashier": "x", "local_time": "2026-10-03T12:00:00"});
        b["identifier"] = json!({"kind": "card", "value": number});
        let (s, v) = call(&client, &base, register, "balance", &b).await.unwrap();
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["balance"]["bonus"].as_i64().unwrap(),
            replay,
            "{backend:?}: {number}: {v}"
        );
        assert_eq!(
            v["balance"]["held"].as_i64().unwrap(),
            held,
            "{backend:?}: {number}: {v}"
        );
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
