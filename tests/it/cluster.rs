//! The cluster test (issue 19): instances of the real `tillgate` binary on
//! one PostgreSQL database behind a round-robin proxy; the emulator sends
//! a two-day run through it while one instance is killed with `kill -9`
//! and another is stopped gracefully and started again. At the end the
//! order state equals the emulator's truth (and a replay of the log), the
//! relay destination received every event in order, every alert and SMS
//! went out once. The same test measures the run with one instance and
//! with three (no faults) and prints the figures docs/cluster.md quotes.
//!
//! Needs `TILLGATE_TEST_DATABASE_URL` (skipped with a note otherwise).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tillgate::core::config::Storage;
use tillgate::core::store::Db;
use tillgate_simulate::{Generated, Scenario, SendOptions, generate, send};

use crate::cluster_proxy::Proxy;
use crate::crash::free_port;
use crate::fake_smsru::FakeSmsRu;
use crate::fake_telegram::{FakeTelegram, TOKEN};
use crate::harness::fresh_pg_database;
use crate::relay_receiver::Receiver;

const SMS_API_ID: &str = "CLUSTER-TEST-API-ID";
/// A private chat: a group (negative id) is held to 20 messages a minute.
const OWNERS: i64 = 1001;

/// Two business days, four cash servers.
fn scenario() -> Scenario {
    Scenario {
        restaurants: 2,
        cash_servers: 2,
        orders: 8,
        days: 2,
        seed: 19,
        ..Scenario::default()
    }
}

/// The config file every instance reads: a relay destination, alerts to a
/// fake Telegram, guest SMS through a fake sms.ru.
fn config_text(relay: &str, telegram: &str, sms: &str, rests: &[String]) -> String {
    let mut t = format!(
        r#"
[relay]
allow_private_destinations = true
timeout_ms = 2000
retry_schedule_ms = [50, 100, 200]
[[relay.destinations]]
id = "hub"
url = "{relay}"

[alerts]
bot_token = "{TOKEN}"
api_base = "{telegram}"
owners_chat = {OWNERS}
commands = false
[alerts.limits]
per_chat_interval_ms = 20

[sms]
enabled = true
[sms.providers.smsru]
kind = "smsru"
api_id = "{SMS_API_ID}"
base_url = "{sms}"
"#
    );
    for r in rests {
        t.push_str(&format!(
            "[sms.restaurants.{r}]\nstep = \"ready\"\nregister_collects_consent = true\nname = \"Cafe {r}\"\ntemplate = \"Order {{order_number}}: {{status}}\"\n"
        ));
    }
    t
}

struct Instance {
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Instance {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn start(&mut self, config: &std::path::Path, pg_url: &str) {
        // TILLGATE_CLUSTER_BIN: a copy of the binary, for a build directory
        // that other trees' builds overwrite.
        let bin = std::env::var("TILLGATE_CLUSTER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tillgate").to_string());
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(self.data.path())
            .arg("--database-url")
            .arg(pg_url)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, _) in std::env::vars() {
            if k.starts_with("TILLGATE_") {
                cmd.env_remove(k);
            }
        }
        self.child = Some(cmd.spawn().expect("start tillgate"));
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as systemd or an orchestrator stops it; waits for the exit.
    async fn stop_gracefully(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || c.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "a graceful stop exits 0: {exit:?}");
    }

    /// CPU seconds used so far and resident memory (MiB), from /proc.
    fn usage(&self) -> Option<(f64, f64)> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((ticks / 100.0, rss_kb / 1024.0))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("tillgate at {base} did not become ready");
}

/// The holder of lease `name` and its token.
async fn lease(db: &Db, name: &str) -> Option<(String, i64)> {
    sqlx::query_as("SELECT holder, token FROM leases WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.read)
        .await
        .unwrap()
}

/// The process id inside a holder name (`host-pid-random`).
fn holder_pid(holder: &str) -> u32 {
    let mut parts = holder.rsplitn(3, '-');
    parts.next();
    parts.next().unwrap().parse().unwrap()
}

/// Waits until lease `name` has a token other than `token`; the time it
/// took and the new holder.
async fn wait_takeover(db: &Db, name: &str, token: i64, since: Instant) -> (Duration, String) {
    for _ in 0..3000 {
        if let Some((holder, t)) = lease(db, name).await
            && t != token
        {
            return (since.elapsed(), holder);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("lease {name} was not taken over");
}

async fn head(db: &Db) -> i64 {
    tillgate::core::log::head(db).await.unwrap()
}

/// What one run measured.
struct Run {
    instances: usize,
    events: usize,
    /// From the first POST to the last acknowledgement.
    send: Duration,
    /// From the first POST until every consumer reached the head.
    settled: Duration,
    /// Per instance: CPU seconds and resident MiB at the end.
    usage: Vec<(f64, f64)>,
    failover_kill: Option<Duration>,
    failover_graceful: Option<Duration>,
    relay_resent: usize,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu: f64 = self.usage.iter().map(|u| u.0).sum();
        write!(
            f,
            "{} instance(s): {} events acknowledged in {:.1} s ({:.0} events/s), all consumers at the head after {:.1} s; CPU {:.1} s in all ({:.2} ms per event), per instance CPU s / RSS MiB: {:?}",
            self.instances,
            self.events,
            self.send.as_secs_f64(),
            self.events as f64 / self.send.as_secs_f64(),
            self.settled.as_secs_f64(),
            cpu,
            cpu * 1000.0 / self.events as f64,
            self.usage
                .iter()
                .map(|(c, r)| format!("{c:.1}/{r:.0}"))
                .collect::<Vec<_>>()
        )?;
        if let Some(k) = self.failover_kill {
            write!(f, "; takeover after kill -9: {:.2} s", k.as_secs_f64())?;
        }
        if let Some(g) = self.failover_graceful {
            write!(f, "; after a graceful stop: {:.2} s", g.as_secs_f64())?;
        }
        write!(f, "; relay events sent again: {}", self.relay_resent)
    }
}

/// Registers and cards of the loyalty load that runs through the proxy
/// while the events are sent (and instances die).
const LOYALTY_REGISTERS: usize = 4;
const LOYALTY_CARDS: usize = 8;

fn loyalty_card(c: usize) -> String {
    format!("7000000{c:03}")
}

/// POSTs `body` through the proxy until an instance answers it (a killed
/// or stopping instance drops the connection or answers 503): the
/// operation id makes every retry the same operation.
async fn loyalty_call(
    client: &reqwest::Client,
    url: &str,
    register: Option<&str>,
    body: &serde_json::Value,
) -> serde_json::Value {
    for _ in 0..400 {
        let mut r = client.post(url).json(body).timeout(Duration::from_secs(10));
        if let Some(reg) = register {
            r = r.basic_auth(reg, Some(crate::loyalty::PW));
        }
        if let Ok(resp) = r.send().await {
            let status = resp.status();
            if status.is_success() {
                return resp.json().await.unwrap();
            }
            assert!(
                status.is_server_error(),
                "{url}: {status} {}",
                resp.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url}: no instance answered");
}

/// Purchases and confirms from every register on every card, through the
/// proxy, until `stop`; each card's expected bonus and accumulated total.
async fn loyalty_load(
    base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(i64, i64)> {
    let client = reqwest::Client::new();
    let mut want = vec![(0i64, 0i64); LOYALTY_CARDS];
    let mut k = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let reg = format!("creg{}", k % LOYALTY_REGISTERS);
        let card = k % LOYALTY_CARDS;
        let amount = 10_000 + (k as i64 % 5) * 1_000;
        let common = |op: &str| serde_json::json!({"operation_id": op, "register": reg, "cashier": "Ivanova", "local_time": "2026-10-03T12:00:00"});
        let mut p = common(&format!("cp{k}"));
        p["identifier"] = serde_json::json!({"kind": "card", "value": loyalty_card(card)});
        p["lines"] = serde_json::json!([{"goods_id": "100", "price": amount, "quantity": 1000, "amount": amount}]);
        let url = |path: &str| format!("{base}/api/loyalty/v1/{path}");
        let held = loyalty_call(&client, &url("purchase"), Some(&reg), &p).await;
        assert_eq!(held["status"], "held", "{held}");
        let mut c = common(&format!("cf{k}"));
        c["purchase_operation_id"] = serde_json::json!(format!("cp{k}"));
        loyalty_call(&client, &url("confirm"), Some(&reg), &c).await;
        want[card].0 += held["bonus_earn"].as_i64().unwrap();
        want[card].1 += amount;
        k += 1;
    }
    want
}

/// One run on a fresh database: `n` instances, with or without the faults.
async fn run(n: usize, faults: bool) -> Run {
    let g: Generated = generate(&scenario());
    let total = g.event_count();
    let rests: Vec<String> = {
        let mut r: Vec<String> = g
            .truth
            .orders
            .values()
            .map(|o| o.rest_code.clone())
            .collect();
        r.sort();
        r.dedup();
        r
    };
    let pg_url = fresh_pg_database().await;
    let receiver = Receiver::start(vec![]).await;
    let telegram = FakeTelegram::start(Duration::ZERO).await;
    let sms = FakeSmsRu::start(SMS_API_ID).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tillgate.toml");
    std::fs::write(
        &config,
        config_text(&receiver.url, &telegram.base, &sms.base, &rests),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut instances: Vec<Instance> = (0..n)
        .map(|_| Instance {
            port: free_port(),
            data: tempfile::tempdir().unwrap(),
            child: None,
        })
        .collect();
    for i in &mut instances {
        i.start(&config, &pg_url);
    }
    for i in &instances {
        wait_ready(&client, &i.base()).await;
    }
    let db = Db::open(&Storage::Postgres {
        url: SecretString::from(pg_url.clone()),
    })
    .await
    .unwrap();
    let proxy = Proxy::start(
        instances
            .iter()
            .map(|i| SocketAddr::from(([127, 0, 0, 1], i.port)))
            .collect(),
    )
    .await;

    for r in 0..LOYALTY_REGISTERS {
        let body = serde_json::json!({"id": format!("creg{r}"), "password": crate::loyalty::PW});
        loyalty_call(&client, &proxy.url("/api/loyalty/registers"), None, &body).await;
    }
    for c in 0..LOYALTY_CARDS {
        let body = serde_json::json!({"number": loyalty_card(c), "holder_name": "Guest"});
        loyalty_call(&client, &proxy.url("/api/loyalty/cards"), None, &body).await;
    }
    let stop_loyalty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loyalty = tokio::spawn(loyalty_load(proxy.url(""), stop_loyalty.clone()));

    let started = Instant::now();
    let sending = tokio::spawn(send(
        g.servers.clone(),
        SendOptions {
            retries: 400,
            retry_pause: Duration::from_millis(25),
            timeout: Duration::from_secs(10),
            give_up_after: None,
            ..SendOptions::new(proxy.url("/rkevent"))
        },
    ));

    let (mut failover_kill, mut failover_graceful) = (None, None);
    if faults {
        // A third in: kill -9 the instance that runs the order state.
        while head(&db).await < (total / 3) as i64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (holder, token) = lease(&db, "orders").await.expect("orders is led");
        let victim = instances
            .iter_mut()
            .find(|i| i.pid() == Some(holder_pid(&holder)))
            .expect("the leader is one of ours");
        let t0 = Instant::now();
        victim.kill9();
        let (took, new_holder) = wait_takeover(&db, "orders", token, t0).await;
        failover_kill = Some(took);

        // Two thirds in: stop the new leader gracefully, start it again.
        while head(&db).await < (2 * total / 3) as i64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, token) = lease(&db, "orders").await.unwrap();
        let leader = instances
            .iter_mut()
            .find(|i| i.pid() == Some(holder_pid(&new_holder)))
            .expect("the new leader is one of ours");
        let t1 = Instant::now();
        let stopping = leader.stop_gracefully();
        let (took, _) = tokio::join!(stopping, wait_takeover(&db, "orders", token, t1)).1;
        failover_graceful = Some(took);
        leader.start(&config, &pg_url);
        let base = leader.base();
        wait_ready(&client, &base).await;
    }

    let summary = sending.await.unwrap();
    let send_time = started.elapsed();
    stop_loyalty.store(true, std::sync::atomic::Ordering::Relaxed);
    let want = loyalty.await.unwrap();
    // Whichever instance decided each purchase and confirm, and whatever
    // died meanwhile: every card holds exactly what its answers promised.
    for (c, (bonus, accumulated)) in want.iter().enumerate() {
        let row: (i64, i64) =
            sqlx::query_as("SELECT balance, accumulated FROM loyalty_cards WHERE number = $1")
                .bind(loyalty_card(c))
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(
            row,
            (*bonus, *accumulated),
            "card {c}: balance, accumulated"
        );
    }
    assert!(want.iter().any(|w| w.1 > 0), "the loyalty load ran");
    eprintln!(
        "cluster: {n} instance(s): loyalty purchase+confirm through the proxy: {} kopecks accumulated on {LOYALTY_CARDS} cards, every balance as answered",
        want.iter().map(|w| w.1).sum::<i64>()
    );
    eprintln!("cluster: {n} instance(s), faults {faults}: sent in {send_time:?}");
    assert_eq!(
        (summary.sent, summary.failed, summary.dropped),
        (total as u64, 0, 0),
        "every event acknowledged: {summary}"
    );

    // Every consumer at the head, every outbox row settled.
    let h = head(&db).await;
    assert_eq!(h, total as i64, "each event in the log once, densely");
    let mut settled = None;
    for round in 0..6000 {
        let cursors = tillgate::core::log::cursors(&db).await.unwrap();
        let behind = cursors
            .iter()
            .any(|(name, at)| !name.starts_with("relay") && *at < h);
        let unsent: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM alerts_outbox WHERE state IN ('pending', 'sending')) + (SELECT COUNT(*) FROM sms_outbox WHERE state IN ('pending', 'sending'))",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        let relayed: HashSet<String> = receiver.ok().into_iter().map(|g| g.id).collect();
        if !behind && unsent == 0 && relayed.len() >= total {
            settled = Some(started.elapsed());
            break;
        }
        if round % 250 == 249 {
            eprintln!(
                "cluster: waiting: consumers {cursors:?}, unsent {unsent}, relayed {} of {total}",
                relayed.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = settled.expect("consumers, outboxes and the relay settle");
    eprintln!("cluster: settled after {settled:?}");

    // Order state: equal to a replay of the log and to the emulator's truth.
    let stored = tillgate::orders::load_all(&db).await.unwrap();
    let replayed = tillgate::orders::replay(&db, h).await.unwrap();
    let diff = tillgate::orders::diff_books(&stored, &replayed);
    assert!(diff.is_empty(), "state differs from replay: {diff:?}");
    assert_eq!(stored.orders.len(), g.truth.orders.len());
    for (guid, t) in &g.truth.orders {
        let o = &stored.orders[guid];
        assert_eq!(o.status.as_str(), t.status, "{guid}");
        assert_eq!(o.paid_sum, t.paid, "{guid}");
        if t.status != "deleted" {
            assert_eq!(o.order_sum, t.total, "{guid}");
        }
    }

    // Relay: every offset, first deliveries in offset order; anything sent
    // twice is a resend after a takeover (same webhook-id).
    let got = receiver.ok();
    let mut seen = HashSet::new();
    let mut first: Vec<i64> = Vec::new();
    for r in &got {
        if seen.insert(r.id.clone()) {
            first.push(r.id.trim_start_matches("tg-").parse().unwrap());
        }
    }
    assert_eq!(
        first,
        (1..=h).collect::<Vec<_>>(),
        "every event relayed, in order"
    );
    let relay_resent = got.len() - first.len();
    if !faults {
        assert_eq!(relay_resent, 0, "no fault, no resend");
    }

    // Alerts and SMS: what the fakes accepted is what the outboxes record
    // as sent, no more (a double send would show as more).
    let parts: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(parts_sent), 0) AS BIGINT) FROM alerts_outbox WHERE state = 'sent'",
    )
    .fetch_one(&db.read)
    .await
    .unwrap();
    assert!(parts > 0, "the run raised alerts");
    // A message Telegram accepted from an instance killed before it
    // recorded the answer goes again after the takeover (at-least-once, the
    // same as one instance killed): one such message per kill at most.
    let extra = i64::from(faults);
    let got = telegram.sent().len() as i64;
    assert!(
        (parts..=parts + extra).contains(&got),
        "every alert once: {got} sent, {parts} recorded"
    );
    let texts: BTreeMap<(i64, String), usize> =
        telegram.sent().iter().fold(BTreeMap::new(), |mut m, s| {
            *m.entry((s.chat(), s.text().to_string())).or_default() += 1;
            m
        });
    let sent_sms: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox WHERE state = 'sent'")
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert!(sent_sms > 0, "the run queued SMS");
    let got = sms.received().len() as i64;
    assert!(
        (sent_sms..=sent_sms + extra).contains(&got),
        "every SMS once: {got} sent, {sent_sms} recorded"
    );
    let distinct: HashSet<(String, String)> = sms
        .received()
        .iter()
        .map(|r| (r.to.clone(), r.msg.clone()))
        .collect();
    assert!(
        sms.received().len() - distinct.len() <= extra as usize,
        "no SMS twice"
    );
    assert!(!texts.is_empty());

    let usage = instances.iter().filter_map(Instance::usage).collect();
    db.close().await;
    drop(proxy);
    Run {
        instances: n,
        events: total,
        send: send_time,
        settled,
        usage,
        failover_kill,
        failover_graceful,
        relay_resent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_survive_kill_9_and_a_restart() {
    if std::env::var("TILLGATE_TEST_DATABASE_URL").is_err() {
        eprintln!("note: TILLGATE_TEST_DATABASE_URL is not set: cluster test SKIPPED");
        return;
    }
    let faulty = run(3, true).await;
    let one = run(1, false).await;
    let three = run(3, false).await;
    eprintln!("cluster: {one}");
    eprintln!("cluster: {three}");
    eprintln!("cluster (kill -9 and a graceful restart): {faulty}");
    let (k, s) = (
        faulty.failover_kill.unwrap(),
        faulty.failover_graceful.unwrap(),
    );
    assert!(
        k < Duration::from_secs(6),
        "a dead leader's consumers are taken over within seconds: {k:?}"
    );
    // A stopping leader gives its leases up after its consumers stored
    // their cursors: usually 0.6 s here. One run in three on the loaded
    // 2-core machine measured 3.3 s: the stop outlasted the lease, and
    // the takeover came by expiry. Either way within the kill bound.
    assert!(
        s < Duration::from_secs(6),
        "a stopping leader hands over within seconds: {s:?}"
    );
}
