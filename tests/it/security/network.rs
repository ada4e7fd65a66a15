//! Issue 25's network findings, each replayed against the real server as
//! the attacker did it: the stored XSS through a raw event body (in
//! headless Chromium: the script must not run), DNS rebinding, cross-site
//! `text/plain` posts, ingest off loopback without a key, the key checked
//! after a 15 MB body, the unbounded quarantine, and the slow-loris.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{TestApp, backends, spawn_app, spawn_app_with};

const G: &str = "{81A89081-D394-4070-BD37-A8E54CCA7B56}";

/// A valid event whose `<a>` carries an XHTML script: XML the cash-server
/// reader accepts, and a document a browser would run as a page if it were
/// served as XML. The script does what the attacker's did: reads the
/// console's users page for its CSRF token and creates an admin.
fn hostile_event(seq: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="199990093" DateTime="2019-12-18T17:18:00" Situation="21" seqnumber="{seq}" guid="{G}" name="Login" ShiftNum="1" ShiftDate="2019-11-18T00:00:00">
<Station id="15003" code="1" name="MM_CASH" NetName="MM_CASH_169058"/>
<Server id="15002" code="15002" name="MM_MID" NetName="MM_MID"/>
<x:script xmlns:x="http://www.w3.org/1999/xhtml">
localStorage.setItem('xss', 'ran');
fetch('/users').then(r => r.text()).then(t => {{
  const m = t.match(/name="csrf" value="([^"]+)"/);
  const b = new URLSearchParams({{csrf: m[1], name: 'pwned', password: 'pwned-password-123', role: 'admin', restaurants: ''}});
  return fetch('/users', {{method: 'POST', body: b}});
}});
</x:script>
</a>"#
    )
}

fn plain_event(seq: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="199990093" DateTime="2019-12-18T17:18:00" Situation="21" seqnumber="{seq}" guid="{G}" name="Login" ShiftNum="1" ShiftDate="2019-11-18T00:00:00">
<Station id="15003" code="1" name="MM_CASH" NetName="MM_CASH_169058"/>
<Server id="15002" code="15002" name="MM_MID" NetName="MM_MID"/>
</a>"#
    )
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The headers a browser needs to refuse to run, sniff or frame anything.
fn assert_protected(r: &reqwest::Response, what: &str) {
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
    let csp = header(r, "content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
}

#[tokio::test]
async fn raw_bodies_are_downloads_and_every_answer_is_protected() {
    for b in backends() {
        let app = spawn_app(b).await;
        let ack = app.ingest(hostile_event(1)).await;
        let offset = ack["offset"].as_i64().unwrap();
        let raw = app.get(&format!("/api/events/{offset}/raw")).await;
        assert_eq!(raw.status(), 200);
        assert_protected(&raw, "raw event");
        assert!(
            header(&raw, "content-type").starts_with("text/plain"),
            "{}",
            header(&raw, "content-type")
        );
        assert!(header(&raw, "content-disposition").starts_with("attachment"));
        assert!(header(&raw, "content-security-policy").contains("sandbox"));
        // Still byte-exact for the integrator who downloads it.
        assert_eq!(raw.text().await.unwrap(), hostile_event(1));

        let q = app
            .post_event("/rkevent", "<not an event")
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        let id = q["quarantine_id"].as_i64().unwrap();
        let raw = app.get(&format!("/api/quarantine/{id}/raw")).await;
        assert!(header(&raw, "content-disposition").starts_with("attachment"));
        assert_protected(&raw, "raw quarantine");

        for path in [
            "/",
            "/login",
            "/api/events",
            "/metrics",
            "/healthz",
            "/readyz",
            "/no/such/route",
            "/assets/console.css",
        ] {
            let r = app.get(path).await;
            assert_protected(&r, path);
        }
        app.stop().await;
    }
}

/// The attack end to end: an admin signed in to the console opens the raw
/// body of a posted event. Before the fix the script ran on the console's
/// origin and created the admin `pwned`.
#[tokio::test]
async fn the_stored_xss_does_not_run_in_chromium() {
    use crate::console_browser::{browser, click, fill, start_driver, text, tool};
    let (Some(chromium), Some(driver_path)) = (tool("chromium"), tool("chromedriver")) else {
        eprintln!(
            "note: chromium/chromedriver not installed: the stored-XSS browser test SKIPPED (run .ci/install-chromium)"
        );
        return;
    };
    let app = crate::console::app_with_people(crate::harness::Backend::Sqlite).await;
    let offset = app.ingest(hostile_event(1)).await["offset"]
        .as_i64()
        .unwrap();
    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#name", "admin").await;
    fill(&c, "#password", crate::console::PASSWORD).await;
    click(&c, "#sign-in").await;
    assert!(text(&c, "#who").await.starts_with("admin"));
    // Opened directly, as the attacker's link does, and framed, as the
    // attacker's page did to find the offset.
    let _ = c.goto(&app.url(&format!("/api/events/{offset}/raw"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.goto(&app.url("/")).await.unwrap();
    let ran = c
        .execute("return localStorage.getItem('xss');", vec![])
        .await
        .unwrap();
    assert_eq!(ran, serde_json::Value::Null, "the body's script ran");
    let framed = format!(
        "const f = document.createElement('iframe'); f.src = '/api/events/{offset}/raw'; document.body.appendChild(f); return true;"
    );
    c.execute(&framed, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = crate::console::db_of(&app).await;
    let pwned = tillgate::console::users::find(&db, "pwned").await.unwrap();
    assert!(pwned.is_none(), "the script created an admin");
    let ran = c
        .execute("return localStorage.getItem('xss');", vec![])
        .await
        .unwrap();
    assert_eq!(ran, serde_json::Value::Null, "the framed body's script ran");
    let _ = c.close().await;
    app.stop().await;
}

/// `Host: attacker-rebind.example` reaches 127.0.0.1 after DNS rebinding;
/// without a token it is refused, with `public_hosts` or a token it is not.
#[tokio::test]
async fn a_rebound_host_name_is_refused_without_a_token() {
    let app = spawn_app(crate::harness::Backend::Sqlite).await;
    app.ingest(plain_event(1)).await;
    let r = app
        .client
        .get(app.url("/api/events/1/raw"))
        .header("host", "attacker-rebind.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_protected(&r, "refused");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_host");
    for host in ["localhost", "127.0.0.1", "[::1]:80"] {
        let r = app
            .client
            .get(app.url("/api/events/1/raw"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    app.stop().await;

    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.http.public_hosts = vec!["tillgate.example.com".into()];
    })
    .await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("host", "tillgate.example.com:11130")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;

    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.api_token = Some("a-token-of-sixteen-chars".to_string().into());
    })
    .await;
    let r = app
        .client
        .get(app.url("/api/events"))
        .header("host", "tillgate.example.com")
        .bearer_auth("a-token-of-sixteen-chars")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "with a token the name is the proxy's business"
    );
    app.stop().await;
}

/// A page elsewhere can make a browser post `text/plain` anywhere; the
/// attacker used that to import stock and force a resync, and to post
/// events that sent SMS.
#[tokio::test]
async fn cross_site_and_form_typed_posts_are_refused() {
    for b in backends() {
        let app = spawn_app(b).await;
        let post = |path: &str| app.client.post(app.url(path));
        // As a browser sends it from another site's page.
        let r = post("/api/backoffice/stock/imports?document=x1")
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .body(r#"[{"store":"1","goods":"g","quantity":1000}]"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
            "cross_site"
        );
        // An older browser: Origin only.
        let r = post("/api/backoffice/resyncs")
            .header("content-type", "text/plain")
            .header("origin", "http://attacker.example")
            .body(r#"{"force":true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Even without any browser header a form-typed body is refused.
        let r = post("/api/backoffice/resyncs")
            .header("content-type", "text/plain")
            .body(r#"{"force":true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Events posted cross-site are not stored.
        let r = post("/rkevent")
            .header("content-type", "text/plain")
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .body(plain_event(1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let log = app.get_json("/api/events?after=0&limit=10").await;
        assert_eq!(log["head"], 0, "nothing stored: {log}");
        // The cash server (no browser headers) and a JSON client still work.
        assert_eq!(app.ingest(plain_event(1)).await["status"], "stored");
        let r = post("/api/backoffice/resyncs")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_ne!(r.status(), StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

#[tokio::test]
async fn serve_off_loopback_without_an_ingest_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tillgate"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .arg("--data")
        .arg(dir.path())
        .env("TILLGATE_API_TOKEN", "a-token-of-sixteen-chars")
        .env_remove("TILLGATE_INGEST_KEY")
        .env_remove("TILLGATE_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ingest.key"), "{err}");
}

/// With a key set, a stranger's 15 MB body is answered 401 before any of
/// it is read: the server answers while the body has not been sent.
#[tokio::test]
async fn the_ingest_key_is_checked_before_the_body_is_read() {
    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.ingest.key = Some("the-ingest-key-0123".to_string().into());
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!(
            "POST /rkevent?key=wrong HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: 15000000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&[b'x'; 1000]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered before the body came")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    app.stop().await;
}

#[tokio::test]
async fn the_quarantine_is_bounded_oldest_first() {
    for b in backends() {
        let app = spawn_app_with(b, |c| {
            c.ingest.quarantine.max_bytes = 100_000;
        })
        .await;
        let junk = |i: usize| format!("junk {i} {}", "z".repeat(20_000));
        let mut ids = Vec::new();
        for i in 0..20 {
            let q: serde_json::Value = app
                .post_event("/rkevent", junk(i))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(q["status"], "quarantined");
            ids.push(q["quarantine_id"].as_i64().unwrap());
        }
        let list = app.get_json("/api/quarantine?limit=100").await;
        let kept: Vec<i64> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert!(kept.len() <= 5 && !kept.is_empty(), "{kept:?}");
        assert_eq!(kept.last(), ids.last(), "the newest is kept");
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            kept[0],
            ids[ids.len() - kept.len()],
            "the oldest went first"
        );
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("tillgate_quarantine_dropped_total"),
            "{metrics}"
        );
        app.stop().await;
    }
}

async fn half_open(addr: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"POST /rkevent HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await
        .ok()?;
    Some(s)
}

async fn answers(app: &TestApp, path: &str) -> bool {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let r = if path == "/rkevent" {
        c.post(app.url(path)).body(plain_event(7)).send().await
    } else {
        c.get(app.url(path)).send().await
    };
    r.is_ok_and(|r| r.status().is_success())
}

/// 2,000 connections that never finish their headers: `/healthz` and
/// `/rkevent` keep answering, and the server closes the half-open ones at
/// the header timeout (before the fix they stayed open for ever).
#[tokio::test]
async fn a_slow_loris_of_2000_connections_is_cut_off() {
    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.http.header_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut loris = Vec::new();
    for _ in 0..2000 {
        if let Some(s) = half_open(&addr).await {
            loris.push(s);
        }
    }
    assert!(loris.len() >= 1900, "opened {}", loris.len());
    let started = Instant::now();
    assert!(answers(&app, "/healthz").await, "healthz under the loris");
    assert!(answers(&app, "/rkevent").await, "rkevent under the loris");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Every half-open connection is closed by the server.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut closed = 0;
    for s in &mut loris {
        let mut b = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            // hyper may say 408 before it closes.
            Ok(Ok(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, loris.len(), "half-open connections left open");
    drop(loris);
    assert!(answers(&app, "/healthz").await);
    app.stop().await;
}

/// Past `max_connections` new clients wait their turn instead of making
/// every later accept fail; the server serves them once the slow ones are
/// cut off.
#[tokio::test]
async fn past_the_connection_cap_clients_wait_and_are_served() {
    let app = spawn_app_with(crate::harness::Backend::Sqlite, |c| {
        c.http.header_timeout = Duration::from_secs(1);
        c.http.max_connections = 16;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut loris = Vec::new();
    for _ in 0..16 {
        loris.push(half_open(&addr).await.unwrap());
    }
    let started = Instant::now();
    assert!(answers(&app, "/healthz").await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "served at once: the cap did not hold ({waited:?})"
    );
    app.stop().await;
}

/// A user name with a line break must not forge a log line: the failed
/// sign-in is logged with the name escaped. The real binary, its stderr
/// read back.
#[tokio::test]
async fn a_user_name_cannot_forge_a_log_line() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tillgate"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("TILLGATE_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut form = None;
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/login")).send().await {
            form = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = form.expect("the server answered");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tg_login="))
        .and_then(|v| v.split(';').next())
        .expect("the form's cookie")
        .to_string();
    let page = r.text().await.unwrap();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form's token")
        .to_string();
    let forged = "2026-12-07T00:00:00.000000Z  INFO tillgate::console::login: console sign-in user=admin role=admin";
    let r = client
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("name", &format!("mallory\n{forged}")),
            ("password", "a wrong password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("mallory"), "the failure is logged: {log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-07T00:00:00")),
        "a forged line: {log}"
    );
}
