//! Crash test: `kill -9` the real binary while cash servers are posting,
//! start it again on the same data, and check that nothing acknowledged is
//! lost and that the order state equals a replay of the log from scratch.
//!
//! This runs the `tillgate` binary (not the library in-process) because
//! only a separate process can be killed without running any destructor,
//! flush or shutdown hook.

use std::collections::{BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tillgate::core::config::{Config, Storage};
use tillgate::core::store::Db;
use tillgate_simulate::{Scenario, generate};

use crate::harness::{Backend, backends, fresh_pg_database};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

pub(crate) fn start_binary(data: &std::path::Path, pg_url: Option<&str>) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tillgate"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, _) in std::env::vars() {
        if k.starts_with("TILLGATE_") {
            cmd.env_remove(k);
        }
    }
    if let Some(url) = pg_url {
        cmd.arg("--database-url").arg(url);
    }
    Server {
        child: cmd.spawn().expect("start tillgate"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

pub(crate) async fn wait_healthy(client: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("tillgate at {base} did not become healthy");
}

/// Every (guid, seqnumber) in the log, through the API.
async fn logged(client: &reqwest::Client, base: &str) -> HashSet<(String, i64)> {
    let mut out = HashSet::new();
    let mut after = 0;
    loop {
        let page: serde_json::Value = client
            .get(format!("{base}/api/events?after={after}&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return out;
        }
        for i in items {
            out.insert((
                i["guid"].as_str().unwrap().to_string(),
                i["seqnumber"].as_i64().unwrap(),
            ));
            after = i["offset"].as_i64().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_state_equals_replay() {
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
    let generated = generate(&Scenario {
        restaurants: 6,
        orders: 10,
        seed: 42,
        ..Scenario::default()
    });
    let streams: Vec<Vec<(String, i64, Vec<u8>)>> = generated
        .servers
        .iter()
        .map(|s| {
            s.events
                .iter()
                .map(|e| {
                    (
                        e.event.guid.as_ref().unwrap().canonical(),
                        e.event.seqnumber.unwrap() as i64,
                        e.xml.clone(),
                    )
                })
                .collect()
        })
        .collect();
    let client = reqwest::Client::new();

    let mut server = start_binary(dir.path(), pg_url.as_deref());
    wait_healthy(&client, &server.base).await;

    // Senders post like the driver (in order, one in flight) and remember
    // what was acknowledged and where they stopped.
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = Vec::new();
    for stream in streams.clone() {
        let acked = acked.clone();
        let url = format!("{}/rkevent", server.base);
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for (i, (guid, seq, body)) in stream.iter().enumerate() {
                match client.post(&url).body(body.clone()).send().await {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().insert((guid.clone(), *seq));
                    }
                    _ => return i,
                }
            }
            stream.len()
        }));
    }
    // Let a good part of the day through, then pull the plug mid-stream.
    let total: usize = streams.iter().map(|s| s.len()).sum();
    for _ in 0..2000 {
        if acked.lock().unwrap().len() >= total / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("kill -9");
    server.child.wait().unwrap();
    let mut resume_at = Vec::new();
    for s in senders {
        resume_at.push(s.await.unwrap());
    }
    let acked: BTreeSet<(String, i64)> = acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty() && acked.len() < total,
        "the kill must land mid-stream: {} of {total} acknowledged",
        acked.len()
    );

    // Restart on the same data: everything acknowledged is there.
    let mut server = start_binary(dir.path(), pg_url.as_deref());
    wait_healthy(&client, &server.base).await;
    let in_log = logged(&client, &server.base).await;
    let missing: Vec<_> = acked.iter().filter(|k| !in_log.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{backend:?}: {} acknowledged events lost after kill -9, e.g. {:?}",
        missing.len(),
        missing.first()
    );

    // The cash servers send again from the first unacknowledged event (the
    // driver keeps it in its queue); tillgate takes the repeats as
    // duplicates.
    let mut resend = tokio::task::JoinSet::new();
    for (stream, from) in streams.iter().zip(&resume_at) {
        let rest: Vec<Vec<u8>> = stream[*from..].iter().map(|e| e.2.clone()).collect();
        let url = format!("{}/rkevent", server.base);
        let client = client.clone();
        resend.spawn(async move {
            for body in rest {
                let r = client.post(&url).body(body).send().await.unwrap();
                assert!(r.status().is_success());
            }
        });
    }
    while let Some(r) = resend.join_next().await {
        r.unwrap();
    }
    let in_log = logged(&client, &server.base).await;
    assert_eq!(
        in_log.len(),
        total,
        "{backend:?}: the whole day is in the log once"
    );

    // Wait for the order-state consumer to reach the head.
    let head = in_log.len() as i64;
    let mut caught_up = false;
    for _ in 0..1000 {
        let c: serde_json::Value = client
            .get(format!("{}/api/consumers", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pos = c["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "orders")
            .and_then(|i| i["position"].as_i64())
            .unwrap_or(0);
        let head_now = c["head"].as_i64().unwrap_or(0);
        if pos >= head_now && head_now >= head {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(caught_up, "order state did not catch up");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The stored state equals a replay from offset 0.
    let mut config = Config::for_tests(dir.path());
    if let Some(url) = &pg_url {
        config.storage = Storage::Postgres {
            url: SecretString::from(url.clone()),
        };
    }
    let db = Db::open(&config.storage).await.unwrap();
    let head = tillgate::core::log::head(&db).await.unwrap();
    let stored = tillgate::orders::load_all(&db).await.unwrap();
    let replayed = tillgate::orders::replay(&db, head).await.unwrap();
    let diff = tillgate::orders::diff_books(&stored, &replayed);
    assert!(
        diff.is_empty(),
        "{backend:?}: state differs from replay: {diff:?}"
    );
    assert_eq!(stored.orders.len(), generated.truth.orders.len());
    db.close().await;
}
