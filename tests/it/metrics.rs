//! `GET /metrics` of a freshly started server lists every metric family
//! with its HELP line, before anything happened: `rate()` then sees the
//! first events, and an alert on an absent series can tell "zero" from
//! "broken". The real binary in a process of its own, so no other test has
//! touched the process-wide recorder.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const FAMILIES: &[&str] = &[
    "tillgate_events_accepted_total",
    "tillgate_events_duplicate_total",
    "tillgate_events_quarantined_total",
    "tillgate_event_gaps_total",
    "tillgate_events_pruned_total",
    "tillgate_log_head_offset",
    "tillgate_commit_batch_size",
    "tillgate_commit_seconds",
    "tillgate_consumer_lag_events",
    "tillgate_alerts_pending",
    "tillgate_alerts_raised_total",
    "tillgate_alerts_sent_total",
    "tillgate_sms_sent_total",
    "tillgate_sms_failed_total",
    "tillgate_sms_refused_total",
    "tillgate_relay_delivered_total",
    "tillgate_relay_failed_attempts_total",
    "tillgate_relay_dead_letters_total",
    "tillgate_relay_paused",
    "tillgate_relay_lag_events",
    "tillgate_relay_lag_seconds",
    "tillgate_loyalty_group_size",
];

#[tokio::test]
async fn every_metric_family_is_listed_right_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // One relay destination and one SMS provider, so their labelled series
    // exist from the start.
    let config = dir.path().join("tillgate.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\nallow_private_destinations = true\n[[relay.destinations]]\nid = \"kds\"\nurl = \"http://127.0.0.1:{}/kds\"\n\n[sms]\nenabled = true\n[sms.providers.smsru]\nkind = \"smsru\"\napi_id = \"00000000-0000-0000-0000-000000000000\"\nbase_url = \"http://127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_tillgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            text = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!text.is_empty(), "the server did not answer /metrics");
    let missing: Vec<&str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| !text.contains(&format!("# HELP {f} ")))
        .collect();
    assert!(missing.is_empty(), "no HELP for {missing:?} in:\n{text}");
    // Counters without labels start at zero rather than being absent.
    assert!(
        text.lines()
            .any(|l| l == "tillgate_events_accepted_total 0"),
        "{text}"
    );
    // Each consumer's lag is there before its first batch.
    for consumer in ["orders", "alerts"] {
        assert!(
            text.contains(&format!(
                "tillgate_consumer_lag_events{{consumer=\"{consumer}\"}}"
            )),
            "{consumer}: {text}"
        );
    }
}

/// Starts the binary with stderr piped, asks `/healthz` once (a request
/// span), stops it, and returns what it logged.
async fn logged(json: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tillgate"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path())
        .env(
            "RUST_LOG",
            "debug,sqlx=warn,hyper=warn,reqwest=warn,h2=warn",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if json {
        cmd.env("TILLGATE_LOG_FORMAT", "json");
    } else {
        cmd.env_remove("TILLGATE_LOG_FORMAT");
    }
    let child = cmd.spawn().unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..400 {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // SIGTERM: the graceful path, which logs its own line.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_codes_and_json_is_one_object_a_line() {
    let plain = logged(false).await;
    assert!(plain.contains("tillgate serving"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour codes in a pipe:\n{plain}"
    );
    assert!(plain.contains("request"), "no request span:\n{plain}");

    let json = logged(true).await;
    let mut lines = 0;
    for line in json.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        lines += 1;
    }
    assert!(lines >= 2, "{json}");
    assert!(json.contains("tillgate serving"), "{json}");
    // The request span carries method and path.
    assert!(json.contains("\"path\":\"/healthz\""), "{json}");
}
