//! The Windows build's smoke test, run under Wine by `.ci/windows` (issue
//! 18). It needs `TILLGATE_WINE_EXE` (tillgate.exe, next to the test-only
//! `bcryptprimitives.dll` shim Debian's Wine 8 needs) and `TILLGATE_WINE`
//! (the wine loader); without them it says SKIPPED.
//!
//! What it shows: `tillgate.exe serve` with a data directory takes a
//! simulated day from the Linux emulator (`tillgate simulate`), is stopped
//! gracefully by Ctrl+C in the middle of it, is started again while the
//! emulator retries, and ends with the event count and every order's state
//! equal to the emulator's truth; a second stop and start changes nothing.
//! Then the service path: install, start, status, serve, stop, start again,
//! uninstall, through Wine's service control manager. Wine's service
//! manager lives as long as its wineserver, and a new wineserver "boots"
//! (auto-starting installed services): `.ci/windows` keeps one running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tillgate_simulate::{Scenario, generate};
use tokio::process::{Child, Command};

use crate::crash::free_port;

/// The emulator's day: every kind of order and Situation (docs/simulate.md).
const SEED: u64 = 18;

struct Wine {
    loader: PathBuf,
    exe: PathBuf,
}

impl Wine {
    fn from_env() -> Option<Wine> {
        let exe = std::env::var_os("TILLGATE_WINE_EXE")?;
        let loader = std::env::var_os("TILLGATE_WINE").unwrap_or_else(|| "wine".into());
        Some(Wine {
            loader: loader.into(),
            exe: exe.into(),
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.loader);
        c.arg(&self.exe).args(args).env("WINEDEBUG", "-all");
        for (k, _) in std::env::vars() {
            if k.starts_with("TILLGATE_") {
                c.env_remove(k);
            }
        }
        c
    }

    /// The set-up `.ci/windows` gives, or `None` after saying the test is
    /// skipped.
    fn or_skip(test: &str) -> Option<Wine> {
        let wine = Wine::from_env();
        if wine.is_none() {
            eprintln!("note: TILLGATE_WINE_EXE is not set: {test} SKIPPED (.ci/windows runs it)");
        }
        wine
    }

    /// Runs a `tillgate.exe` command to its end; its stdout and stderr.
    /// The output goes through files, not pipes: Wine's own processes
    /// (services.exe and the rest, started with the first program of a new
    /// wineserver) inherit the handles and would hold a pipe open for ever.
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(out.reopen().unwrap())
            .status();
        let status = tokio::time::timeout(Duration::from_secs(120), status)
            .await
            .unwrap_or_else(|_| panic!("tillgate.exe {args:?} did not end"))
            .expect("run wine");
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        (status.success(), text)
    }
}

/// A Linux path as the Windows program sees it (Wine's drive Z: is `/`).
fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

async fn healthy(client: &reqwest::Client, base: &str) -> bool {
    client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn wait_healthy(client: &reqwest::Client, base: &str, child: &mut Option<&mut Child>) {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if healthy(client, base).await {
            return;
        }
        if let Some(c) = child
            && let Ok(Some(st)) = c.try_wait()
        {
            panic!("tillgate.exe exited before answering: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tillgate.exe at {base} did not answer /healthz");
}

async fn json(client: &reqwest::Client, url: String) -> serde_json::Value {
    let r = client.get(&url).send().await.expect("GET");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.expect("JSON")
}

/// The log's head, once the order-state consumer has reached it.
async fn settled_head(client: &reqwest::Client, base: &str) -> i64 {
    for _ in 0..1200 {
        let c = json(client, format!("{base}/api/consumers")).await;
        let head = c["head"].as_i64().unwrap_or(0);
        let orders = c["items"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == "orders"))
            .and_then(|i| i["position"].as_i64())
            .unwrap_or(-1);
        if orders == head {
            return head;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order state did not reach the log head");
}

/// Every order through `/api/orders`, by guid.
async fn orders(client: &reqwest::Client, base: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut url = format!("{base}/api/orders?limit=500");
    loop {
        let page = json(client, url.clone()).await;
        for o in page["items"].as_array().expect("items") {
            out.insert(o["guid"].as_str().expect("guid").to_string(), o.clone());
        }
        match page["next"].as_str() {
            Some(n) => url = format!("{base}/api/orders?limit=500&after={}", urlencode(n)),
            None => return out,
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The Linux emulator, `tillgate simulate`, sending the day to `base`.
fn emulator(base: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tillgate"));
    c.args([
        "simulate",
        "--to",
        &format!("{base}/rkevent"),
        "--no-progress",
    ])
    .args(["--seed", &SEED.to_string()])
    .env("RUST_LOG", "off");
    c
}

/// The event count and every order equal the emulator's truth.
async fn assert_state_is_truth(client: &reqwest::Client, base: &str, what: &str) {
    let g = generate(&Scenario {
        seed: SEED,
        ..Scenario::default()
    });
    let events: usize = g.servers.iter().map(|s| s.events.len()).sum();
    assert_eq!(
        settled_head(client, base).await,
        events as i64,
        "{what}: events"
    );
    let stored = orders(client, base).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        g.truth.orders.keys().collect::<Vec<_>>(),
        "{what}: the orders"
    );
    for (guid, t) in &g.truth.orders {
        let o = &stored[guid];
        assert_eq!(o["status"], t.status, "{what}: {guid} status");
        assert_eq!(o["paid_sum"], t.paid, "{what}: {guid} paid");
        assert_eq!(o["shift_num"], t.shift_num, "{what}: {guid} shift");
        assert_eq!(
            o["rest_code"],
            t.rest_code.as_str(),
            "{what}: {guid} restaurant"
        );
        assert_eq!(
            o["events"].as_array().map(|e| e.len()),
            Some(t.events as usize),
            "{what}: {guid} events"
        );
        if t.status != "deleted" {
            assert_eq!(o["order_sum"], t.total, "{what}: {guid} total");
        }
    }
}

/// Sends Ctrl+C the way a terminal does (Wine turns SIGINT into a console
/// CTRL_C_EVENT) and waits for a clean exit.
async fn ctrl_c_and_wait(child: &mut Child) {
    let pid = child.id().expect("running") as i32;
    let rc = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(rc.success());
    let st = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("tillgate.exe did not stop within 60 s of Ctrl+C")
        .expect("wait");
    assert!(st.success(), "tillgate.exe after Ctrl+C: {st}");
}

fn serve(wine: &Wine, port: u16, data: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    wine.cmd(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data",
        &win_path(data),
    ])
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log)
    .kill_on_drop(true)
    .spawn()
    .expect("start tillgate.exe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_build_under_wine_serves_stops_and_restarts_losing_nothing() {
    let Some(wine) = Wine::or_skip("the Windows smoke test") else {
        return;
    };
    // Cyrillic in arguments and in what is printed: a broken path's error
    // comes back whole, in UTF-8.
    let (ok, text) = wine
        .run(&["serve", "--config", "Z:\\нет\\настройки.toml"])
        .await;
    assert!(!ok && text.contains("нет\\настройки.toml"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let started = Instant::now();
    let mut server = serve(&wine, port, &data, &log);
    wait_healthy(&client, &base, &mut Some(&mut server)).await;
    println!(
        "wine: tillgate.exe serve answered /healthz {} ms after start (new data directory)",
        started.elapsed().as_millis()
    );

    // The Linux emulator sends the day like the driver, retrying through
    // the restart below.
    let emulator = emulator(&base)
        .args([
            "--retries",
            "100000",
            "--retry-pause-ms",
            "100",
            "--give-up-after",
            "0",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the emulator");
    let total: i64 = generate(&Scenario {
        seed: SEED,
        ..Scenario::default()
    })
    .servers
    .iter()
    .map(|s| s.events.len() as i64)
    .sum();
    // Ctrl+C once part of the day is in.
    let mut head = 0;
    for _ in 0..2000 {
        head = json(&client, format!("{base}/api/consumers")).await["head"]
            .as_i64()
            .unwrap_or(0);
        if head >= total / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        head < total,
        "the stop must land mid-day: {head} of {total}"
    );
    ctrl_c_and_wait(&mut server).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("shutting down: no new requests"),
        "Ctrl+C did not take the graceful path:\n{text}"
    );

    let started = Instant::now();
    let mut server = serve(&wine, port, &data, &log);
    wait_healthy(&client, &base, &mut Some(&mut server)).await;
    println!(
        "wine: tillgate.exe serve answered /healthz {} ms after start (existing data)",
        started.elapsed().as_millis()
    );
    let out = tokio::time::timeout(Duration::from_secs(600), emulator.wait_with_output())
        .await
        .expect("the emulator did not finish")
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "emulator: {summary}");
    assert!(
        summary.contains(&format!("sent {total} events, failed 0")),
        "emulator: {summary}"
    );
    assert_state_is_truth(&client, &base, "after a Ctrl+C mid-day and a restart").await;

    ctrl_c_and_wait(&mut server).await;
    let mut server = serve(&wine, port, &data, &log);
    wait_healthy(&client, &base, &mut Some(&mut server)).await;
    assert_state_is_truth(&client, &base, "after a second restart").await;
    ctrl_c_and_wait(&mut server).await;
    assert!(
        data.join("tillgate.db").is_file(),
        "the SQLite file in the data directory"
    );

    // Without --data: %ProgramData%\tillgate, in the Wine prefix's C: drive.
    let prefix = std::env::var_os("WINEPREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".wine"));
    let default_db = prefix.join("drive_c/ProgramData/tillgate/tillgate.db");
    let _ = std::fs::remove_dir_all(default_db.parent().unwrap());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = wine
        .cmd(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_healthy(&client, &base, &mut Some(&mut server)).await;
    ctrl_c_and_wait(&mut server).await;
    assert!(default_db.is_file(), "no {}", default_db.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_service_under_wine_installs_starts_stops_and_uninstalls() {
    let Some(wine) = Wine::or_skip("the Windows service test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("svc data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Spaces in both paths: the service command line must quote them.
    let config = dir.path().join("tillgate config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = '{}'\n",
            win_path(&data)
        ),
    )
    .unwrap();
    let name = format!("tillgate-ci-{}", std::process::id());
    let client = reqwest::Client::new();

    let install = [
        "service",
        "install",
        "--config",
        &win_path(&config),
        "--name",
        &name,
    ];
    let (ok, text) = wine.run(&install).await;
    assert!(ok, "install: {text}");
    // A second install of the same name is refused with a reason.
    let (ok, again) = wine.run(&install).await;
    assert!(!ok && again.contains("cannot create service"), "{again}");

    let (ok, text) = wine.run(&["service", "start", "--name", &name]).await;
    assert!(ok && text.contains("running"), "start: {text}");
    wait_healthy(&client, &base, &mut None).await;
    let (ok, text) = wine.run(&["service", "status", "--name", &name]).await;
    assert!(ok && text.contains(": running"), "status: {text}");

    let out = emulator(&base).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_state_is_truth(&client, &base, "served by the service").await;

    let (ok, text) = wine.run(&["service", "stop", "--name", &name]).await;
    assert!(ok && text.contains("stopped"), "stop: {text}");
    assert!(!healthy(&client, &base).await, "still answering after stop");
    let (ok, text) = wine.run(&["service", "status", "--name", &name]).await;
    assert!(
        ok && text.contains(": stopped (exit code 0)"),
        "status: {text}"
    );
    let logs: Vec<_> = std::fs::read_dir(data.join("logs"))
        .expect("the service's logs folder")
        .filter_map(|e| e.ok())
        .collect();
    let log_text = logs
        .iter()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log_text.contains("service starting") && log_text.contains("shutting down"),
        "the rotating log file: {log_text}"
    );

    let (ok, text) = wine.run(&["service", "start", "--name", &name]).await;
    assert!(ok, "start again: {text}");
    wait_healthy(&client, &base, &mut None).await;
    assert_state_is_truth(&client, &base, "after a service restart").await;

    // A failure (here a broken config) ends the service with tillgate's
    // exit code, which Windows' recovery settings answer with a restart.
    let (ok, text) = wine.run(&["service", "stop", "--name", &name]).await;
    assert!(ok, "stop: {text}");
    std::fs::write(&config, "listen = \"nowhere\"\n").unwrap();
    let (ok, text) = wine.run(&["service", "start", "--name", &name]).await;
    assert!(
        !ok && text.contains("did not start"),
        "start, broken config: {text}"
    );
    let (ok, text) = wine.run(&["service", "status", "--name", &name]).await;
    assert!(
        ok && text.contains("stopped (tillgate exit code 1)"),
        "status: {text}"
    );

    let (ok, text) = wine.run(&["service", "uninstall", "--name", &name]).await;
    assert!(ok && text.contains("uninstalled"), "uninstall: {text}");
    assert!(
        !healthy(&client, &base).await,
        "still answering after uninstall"
    );
    let (ok, text) = wine.run(&["service", "status", "--name", &name]).await;
    assert!(
        !ok && text.contains("is it installed"),
        "status after uninstall: {text}"
    );
}
