//! Issue 25, the edges: each attack replayed against the real server, so
//! that the fix is what makes it fail.
//!
//! 1. a "cash server" that redirects to a local service must not make the
//!    cash-server API read that service out;
//! 2. the relay's SSRF guard must see the IPv4 address inside every IPv6
//!    spelling of it, and refuse the reserved ranges;
//! 3. a back office CSV report must not carry live spreadsheet formulas;
//! 4. text fields of registers' receipts and stock imports have limits;
//! 5. an unknown register and a wrong password answer alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use crate::cashservers::post;
use crate::harness::{TestApp, backends, spawn_app};

/// What a service inside the network would never want read out.
const SECRET: &str = "internal_secret_token_8d1f";

/// Serves `app` on 127.0.0.1; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A local service answering [`SECRET`] to anything; its `/metrics` URL
/// and how many requests reached it.
async fn secret_service() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let base = serve(axum::Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async { format!("# HELP secret\n{SECRET} 1\n") }
    }))
    .await;
    (format!("{base}/metrics"), hits)
}

/// Adds the cash server `name` at `url` through the operator API.
async fn add_cash_server(app: &TestApp, name: &str, url: &str) {
    let (s, v) = post(
        app,
        "/api/cash-servers",
        json!({"name": name, "url": url, "user": "admin", "password": "kassa-pass", "insecure_tls": true}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

/// Every answer of the cash-server API about `name`, as text.
async fn cash_server_answers(app: &TestApp, name: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (path, body) in [
        (
            format!("/api/cash-servers/{name}/subscriptions"),
            json!({"action": "list"}),
        ),
        (
            format!("/api/cash-servers/{name}/subscriptions"),
            json!({"action": "add", "url": "http://10.0.0.2:11130/rkevent"}),
        ),
        (format!("/api/cash-servers/{name}/backfill"), json!({})),
    ] {
        let (s, v) = post(app, &path, body).await;
        out.push((s, v.to_string()));
    }
    out
}

#[tokio::test]
async fn a_cash_server_redirecting_to_a_local_service_reads_nothing_out() {
    let (target, hits) = secret_service().await;
    for b in backends() {
        let app = spawn_app(b).await;
        let location = target.clone();
        let redirecting = serve(axum::Router::new().fallback(move || {
            let location = location.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, location)]) }
        }))
        .await;
        add_cash_server(&app, "hall", &redirecting).await;
        for (s, text) in cash_server_answers(&app, "hall").await {
            assert_eq!(s, 502, "{text}");
            assert!(!text.contains(SECRET), "the redirect was read out: {text}");
            assert!(!text.contains("/metrics"), "the Location is echoed: {text}");
            assert!(
                text.contains("HTTP 302") && text.contains("redirect"),
                "{text}"
            );
        }
        // An error page is reported by its status, not quoted.
        let failing = serve(
            axum::Router::new().fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, SECRET) }),
        )
        .await;
        add_cash_server(&app, "broken", &failing).await;
        for (s, text) in cash_server_answers(&app, "broken").await {
            assert_eq!(s, 502, "{text}");
            assert!(!text.contains(SECRET), "an error page was quoted: {text}");
            assert!(text.contains("HTTP 500"), "{text}");
        }
        // A listing is shown raw to the operator, but never more than 64 KiB.
        let huge = serve(axum::Router::new().fallback(|| async {
            format!("<a url=\"http://10.0.0.2:1/x\"/>{}", "z".repeat(1 << 20))
        }))
        .await;
        add_cash_server(&app, "huge", &huge).await;
        let (s, v) = post(
            &app,
            "/api/cash-servers/huge/subscriptions",
            json!({"action": "list"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["urls"], json!(["http://10.0.0.2:1/x"]));
        assert_eq!(v["raw_truncated"], json!(true));
        assert!(v["raw"].as_str().unwrap().len() <= 64 * 1024);
        app.stop().await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a redirect was followed");
}

/// A tillgate whose relay refuses private destinations (the default).
async fn guarded_relay(b: crate::harness::Backend) -> TestApp {
    let relay = tillgate::relay::validate(toml::from_str("").unwrap()).unwrap();
    crate::harness::spawn_app_with(b, move |c| c.set_section(relay)).await
}

#[tokio::test]
async fn the_relay_refuses_ipv4_inside_ipv6_and_reserved_ranges() {
    for b in backends() {
        let app = guarded_relay(b).await;
        for (url, what) in [
            ("http://[::127.0.0.1]:9/x", "loopback"),
            ("http://[::ffff:0:127.0.0.1]:9/x", "loopback"),
            ("http://[64:ff9b::7f00:1]:9/x", "loopback"),
            ("http://[64:ff9b::a00:5]/x", "private"),
            ("http://[64:ff9b:1::7f00:1]:9/x", "NAT64"),
            ("http://[2002:7f00:1::]:9/x", "loopback"),
            ("http://[2002:a9fe:a9fe::]/latest", "link-local"),
            ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x", "Teredo"),
            ("http://198.18.0.1/x", "benchmarking"),
            ("http://198.19.255.1/x", "benchmarking"),
            ("http://240.0.0.1/x", "reserved"),
            ("http://192.0.0.8/x", "reserved"),
            ("http://203.0.113.5/x", "documentation"),
        ] {
            let r = app
                .client
                .post(app.url("/api/destinations"))
                .json(&json!({"url": url}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let t = r.text().await.unwrap();
            assert_eq!(status, 400, "{url}: {t}");
            assert!(
                t.contains("allow_private_destinations") && t.contains(what),
                "{url}: {t}"
            );
        }
        let items = app.get_json("/api/destinations").await;
        assert_eq!(items["items"], json!([]), "{items}");
        app.stop().await;
    }
}

/// The cells of a CSV text.
fn cells(csv: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn a_csv_report_carries_no_live_formula_and_numbers_stay_numbers() {
    const FORMULA: &str = r#"=HYPERLINK("http://evil","x")"#;
    for b in backends() {
        let bo = crate::backoffice::bo(b).await;
        let r = crate::backoffice::sale(
            "f-1",
            "reg1",
            vec![
                crate::backoffice::line(FORMULA, 1000, 1_000),
                crate::backoffice::line("@SUM(A1)", 1000, 1_000),
                crate::backoffice::line("g1", 2000, 500),
            ],
        );
        bo.ok(&r).await;
        let mut ret = crate::backoffice::sale(
            "f-ret",
            "reg1",
            vec![crate::backoffice::line("g1", 2000, 500)],
        );
        ret["kind"] = json!("return");
        ret["sale_receipt_id"] = json!("f-1");
        ret["local_time"] = json!("2026-11-30T11:00:00");
        bo.ok(&ret).await;
        let csv = |query: &'static str| {
            let app = &bo.l.app;
            async move {
                app.get(&format!("/api/backoffice/reports/sales?format=csv&{query}"))
                    .await
                    .text()
                    .await
                    .unwrap()
            }
        };
        let goods = cells(&csv("by=goods").await);
        let keys: Vec<&str> = goods.iter().map(|r| r[0].as_str()).collect();
        assert!(keys.contains(&format!("'{FORMULA}").as_str()), "{goods:?}");
        assert!(keys.contains(&"'@SUM(A1)"), "{goods:?}");
        for row in &goods {
            assert!(
                !row[0].starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a live formula: {row:?}"
            );
        }
        // A return's figures stay negative numbers, not text.
        let returns = cells(&csv("by=goods&from=2026-11-30T10:30:00").await);
        assert_eq!(returns[1], ["g1", "1", "-2000", "-1000"], "{returns:?}");
        bo.l.app.stop().await;
    }
}

#[tokio::test]
async fn oversized_text_fields_are_refused_naming_the_field_and_the_limit() {
    let huge = "N".repeat(1_500_000);
    for b in backends() {
        let bo = crate::backoffice::bo(b).await;
        // A register's receipt.
        let mut r = crate::backoffice::sale(
            "big-1",
            "reg1",
            vec![crate::backoffice::line("g1", 1000, 100)],
        );
        r["lines"][0]["name"] = json!(huge);
        let (s, v) = bo.receipt(&r).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("too_long")),
            "{}",
            &v.to_string()[..200.min(v.to_string().len())]
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("lines[0].name") && m.contains("256"), "{m}");
        for (field, value) in [
            ("receipt_id", json!("r".repeat(101))),
            ("cashier", json!("c".repeat(257))),
        ] {
            let r = crate::backoffice::set(
                crate::backoffice::sale(
                    "big-2",
                    "reg1",
                    vec![crate::backoffice::line("g1", 1000, 100)],
                ),
                json!({ field: value }),
            );
            let (s, v) = bo.receipt(&r).await;
            assert_eq!(s, 400, "{field}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().starts_with(field),
                "{v}"
            );
        }
        let mut r = crate::backoffice::sale(
            "big-3",
            "reg1",
            vec![crate::backoffice::line(&"g".repeat(101), 1000, 100)],
        );
        r["local_time"] = json!("2026-11-30T10:15:00");
        let (s, v) = bo.receipt(&r).await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("lines[0].goods_id"),
            "{v}"
        );
        // A stock import: the 1.5 MB name of the attack, a long unit, a
        // long document id.
        let row = |name: &str, unit: &str| json!([{"store": "s1", "goods_id": "g9", "name": name, "unit": unit, "kind": "arrival", "quantity": 5, "local_time": "2026-11-30T08:00:00"}]);
        for (document, body, needle) in [
            ("imp-1", row(&huge, "pcs"), "row 1: name"),
            ("imp-2", row("Milk", &"u".repeat(101)), "row 1: unit"),
            (&*"d".repeat(201), row("Milk", "pcs"), "document"),
        ] {
            let (s, v) = bo
                .post_text(
                    &format!("/api/backoffice/stock/imports?document={document}"),
                    "application/json",
                    body.to_string(),
                )
                .await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (400, Some("too_long")),
                "{needle}"
            );
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.starts_with(needle) && m.contains("characters"), "{m}");
        }
        // Nothing of them was stored.
        assert_eq!(bo.stock("s1", "g9").await, Value::Null);
        let r = bo.l.app.get("/api/backoffice/receipts/big-1").await;
        assert_eq!(r.status(), 404);
        // A register's description, from the operator.
        let (s, v) =
            bo.l.operator(
                "/api/loyalty/registers",
                json!({"id": "reg7", "password": "long-enough", "description": huge}),
            )
            .await;
        assert_eq!(s, 400, "{}", v["error"]);
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("description") && m.contains("256"), "{m}");
        // At the limits, taken.
        let r = crate::backoffice::set(
            crate::backoffice::sale(
                &"r".repeat(100),
                "reg1",
                vec![crate::backoffice::line(&"g".repeat(100), 1000, 100)],
            ),
            json!({"cashier": "я".repeat(256)}),
        );
        bo.ok(&r).await;
        bo.l.app.stop().await;
    }
}

/// Status and body of a register call with these credentials.
async fn as_register(
    app: &TestApp,
    path: &str,
    user: &str,
    pw: &str,
    body: &Value,
) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .basic_auth(user, Some(pw))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_unknown_register_and_a_wrong_password_answer_alike() {
    use crate::loyalty::{PW, req, with};
    for b in backends() {
        let bo = crate::backoffice::bo(b).await;
        bo.l.register_in("off", "s1").await;
        bo.sql(&["UPDATE loyalty_registers SET enabled = 0 WHERE id = 'off'"])
            .await;
        let card = with(
            req("b", "reg1"),
            json!({"identifier": {"kind": "card", "value": "1"}}),
        );
        let receipt = crate::backoffice::sale(
            "a-1",
            "reg1",
            vec![crate::backoffice::line("g1", 1000, 100)],
        );
        for (path, body) in [
            ("/api/loyalty/v1/balance", &card),
            ("/api/loyalty/v1/payment-cards/balance", &card),
            ("/api/backoffice/v1/receipts", &receipt),
        ] {
            let wrong = as_register(&bo.l.app, path, "reg1", "wrong-password", body).await;
            assert_eq!(wrong.0, 401, "{path}: {}", wrong.1);
            assert_eq!(wrong.1["error"]["code"], "bad_credentials", "{path}");
            for (user, pw) in [("nobody", PW), ("reg9", "wrong-password"), ("off", PW)] {
                let other = as_register(&bo.l.app, path, user, pw, body).await;
                assert_eq!(
                    other, wrong,
                    "{path}: {user} answers otherwise than a wrong password"
                );
            }
        }
        bo.l.app.stop().await;
    }
}
