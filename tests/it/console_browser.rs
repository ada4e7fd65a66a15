//! The console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate). Sign-in, each page's
//! main flow (SMS settings with the segment counter, a relay destination
//! added, a card blocked), the live orders list filling while the emulator
//! sends, a manager refused another restaurant's order by URL, the pages
//! on a phone-sized screen. Screenshots of the main pages are written to
//! `docs/console/` by this run.
//!
//! Chromium and chromedriver come from Debian (`.ci/install-chromium`).
//! Without them the test says SKIPPED and passes: it cannot run here.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{ORDER_B, PASSWORD, app_with_people};
use crate::harness::Backend;

pub fn tool(name: &str) -> Option<String> {
    ["/usr/bin/", "/usr/local/bin/", "/usr/lib/chromium/"]
        .iter()
        .map(|d| format!("{d}{name}"))
        .find(|p| std::path::Path::new(p).exists())
}

/// chromedriver on a free port, ended when dropped.
pub struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn start_driver(path: &str) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver(child, port)
}

pub async fn browser(driver: &Driver, chromium: &str, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("connect to chromedriver")
}

/// Where screenshots go: `docs/console/` only when asked
/// (`TILLGATE_SCREENSHOTS=1`), so an ordinary test run leaves the tree
/// clean; a scratch folder otherwise (the shots are still taken, so the
/// code that takes them is exercised).
fn shots_dir() -> std::path::PathBuf {
    let d = if std::env::var_os("TILLGATE_SCREENSHOTS").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        std::env::temp_dir().join(format!("tillgate-shots-{}", std::process::id()))
    };
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

pub async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
        // WebDriver gives a no-break space as a plain one.
        .replace('\u{a0}', " ")
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let e = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    // The live list rewrites its rows: an element found a moment ago may be
    // gone; find it again.
    for _ in 0..20 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.click().await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: could not click");
}

async fn sign_in(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#name", name).await;
    fill(c, "#password", PASSWORD).await;
    click(c, "#sign-in").await;
    assert!(text(c, "#who").await.starts_with(name));
}

/// Waits until `cond` holds on the page's text of `css`.
async fn until(c: &Client, css: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
    for _ in 0..150 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && cond(&t)
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {css} never did");
}

#[tokio::test]
async fn the_console_in_headless_chromium() {
    let (Some(chromium), Some(driver_path)) = (tool("chromium"), tool("chromedriver")) else {
        eprintln!(
            "note: chromium/chromedriver not installed: console browser test SKIPPED (run .ci/install-chromium)"
        );
        return;
    };
    let app = app_with_people(Backend::Sqlite).await;
    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;
    let base = app.base.clone();

    // Sign-in: a wrong password is refused on the page, the right one opens
    // the overview (in Russian).
    c.goto(&format!("{base}/orders")).await.unwrap();
    shot(&c, "login").await;
    fill(&c, "#name", "admin").await;
    fill(&c, "#password", "wrong password").await;
    click(&c, "#sign-in").await;
    assert_eq!(text(&c, "#login-error").await, "Неверное имя или пароль");
    fill(&c, "#password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert!(text(&c, "#who").await.starts_with("admin"));
    assert!(
        c.current_url().await.unwrap().path().ends_with("/orders"),
        "back where it was going"
    );
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(text(&c, "h1").await.contains("Обзор"));
    shot(&c, "overview").await;

    // The live orders list fills while the emulator sends.
    c.goto(&format!("{base}/orders")).await.unwrap();
    assert!(text(&c, "#orders-body").await.contains("1 234,50 ₽"));
    let generated = tillgate_simulate::generate(&tillgate_simulate::Scenario {
        orders: 3,
        stations: 1,
        ..tillgate_simulate::Scenario::default()
    });
    let sender = tokio::spawn(tillgate_simulate::send(
        generated.servers,
        tillgate_simulate::SendOptions {
            rate: Some(40.0),
            ..tillgate_simulate::SendOptions::new(app.url("/rkevent"))
        },
    ));
    until(&c, "#live-count", "live orders", |t| {
        t.parse::<u32>().unwrap_or(0) >= 3
    })
    .await;
    let rows = c
        .find_all(Locator::Css("#orders-body tr.live"))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert!(text(&c, "#orders-body").await.contains("199990100"));
    shot(&c, "orders").await;
    let summary = sender.await.unwrap();
    assert_eq!(summary.failed, 0, "{summary:?}");

    // An order with its events and their XML.
    click(&c, "#orders-body tr a").await;
    assert!(text(&c, "h1").await.contains("Заказ"));
    shot(&c, "order").await;

    // Shifts and alerts render.
    c.goto(&format!("{base}/shifts")).await.unwrap();
    assert!(text(&c, "#shifts").await.contains("101"));
    shot(&c, "shifts").await;
    click(&c, "#shifts a[href^=\"/shifts/199990100/\"]").await;
    assert!(text(&c, "#shift-revenue").await.contains('₽'));
    let chart_loaded = c
        .execute(
            "const i = document.getElementById('shift-chart'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chart_loaded, json!(true), "the hourly chart is shown");
    shot(&c, "shift").await;
    c.goto(&format!("{base}/alerts")).await.unwrap();
    text(&c, "#alerts").await;

    // Guest SMS: the counter follows the template as it is typed, the save
    // is stored and the server's counter agrees.
    c.goto(&format!("{base}/sms?restaurant=101")).await.unwrap();
    assert_eq!(text(&c, "#sms-encoding").await, "UCS-2");
    fill(&c, "#sms-template", "Order {order_number} ready").await;
    until(&c, "#sms-encoding", "GSM-7 for Latin text", |t| {
        t == "GSM-7"
    })
    .await;
    assert_eq!(text(&c, "#sms-parts").await, "1");
    fill(
        &c,
        "#sms-template",
        &format!("Заказ {{order_number}} готов. {}", "Ждём вас! ".repeat(8)),
    )
    .await;
    until(
        &c,
        "#sms-parts",
        "two parts for a long Cyrillic text",
        |t| t == "2",
    )
    .await;
    assert!(text(&c, "#sms-preview").await.contains("Заказ 12345 готов"));
    fill(&c, "#sms-sender", "Pizza").await;
    click(&c, "#sms-save").await;
    let notice = text(&c, "#sms-notice").await;
    assert!(notice.contains("Частей SMS 2"), "{notice}");
    assert!(
        text(&c, "#sms-source")
            .await
            .contains("сохранено в консоли")
    );
    shot(&c, "sms").await;
    let saved = app.get_json("/api/sms/settings/101").await;
    assert!(saved["template"].as_str().unwrap().contains("Ждём вас!"));

    // Relay: a destination added from the form is listed and running.
    c.goto(&format!("{base}/relay")).await.unwrap();
    fill(&c, "#relay-id", "kitchen-screen").await;
    fill(&c, "#relay-url", "http://127.0.0.1:9/events").await;
    fill(&c, "#relay-restaurants", "101").await;
    click(&c, "#relay-add-submit").await;
    until(&c, "#destinations", "the new destination", |t| {
        t.contains("kitchen-screen")
    })
    .await;
    shot(&c, "relay").await;
    let d = app.get_json("/api/destinations/kitchen-screen").await;
    assert_eq!(d["restaurants"], json!(["101"]));

    // Loyalty: a card found by phone, shown masked, blocked.
    let r = app
        .client
        .post(app.url("/api/loyalty/cards"))
        .json(&json!({"number": "7001000012345", "holder_name": "Ирина", "phone": "+79161234567"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    c.goto(&format!("{base}/loyalty")).await.unwrap();
    fill(&c, "#card-q", "+7 916 123-45-67").await;
    click(&c, "#card-find").await;
    let card = text(&c, "#card").await;
    assert!(
        !card.contains("1234567") && !card.contains("7001000012345"),
        "masked: {card}"
    );
    assert_eq!(text(&c, "#card-state").await, "active");
    click(&c, "#card-block").await;
    until(&c, "#card-state", "the card blocked", |t| t == "blocked").await;
    shot(&c, "loyalty").await;

    // Back office: a shop register's receipt of goods never received shows
    // in the sales and as negative stock.
    let r = app
        .client
        .post(app.url("/api/loyalty/registers"))
        .json(&json!({"id": "till-1", "password": crate::loyalty::PW, "store": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = app
        .client
        .post(app.url("/api/backoffice/v1/receipts"))
        .basic_auth("till-1", Some(crate::loyalty::PW))
        .json(&crate::backoffice::sale(
            "bo-1",
            "till-1",
            vec![crate::backoffice::line("milk", 2_500, 8_990)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    c.goto(&format!("{base}/backoffice")).await.unwrap();
    assert!(text(&c, "#bo-sales").await.contains("s1"));
    let stock = text(&c, "#bo-stock").await;
    assert!(stock.contains("milk") && stock.contains("-2"), "{stock}");
    shot(&c, "backoffice").await;

    c.goto(&format!("{base}/users")).await.unwrap();
    assert!(text(&c, "#users").await.contains("manager"));
    shot(&c, "users").await;

    // English on request.
    click(&c, "#lang-switch").await;
    assert!(text(&c, "h1").await.contains("Users"));
    click(&c, "#lang-switch").await;

    // On a phone-sized screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/orders")).await.unwrap();
    text(&c, "#orders").await;
    shot(&c, "orders-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // A manager of restaurant 101 opens restaurant 202's order by URL.
    click(&c, "#sign-out").await;
    sign_in(&c, &base, "manager").await;
    let b = ORDER_B.trim_matches(['{', '}']);
    c.goto(&format!("{base}/orders/{b}")).await.unwrap();
    assert_eq!(
        text(&c, "#message").await,
        "Нет доступа: это не ваш ресторан или не ваша роль"
    );
    shot(&c, "refused").await;
    // ...and their list shows only their restaurant.
    c.goto(&format!("{base}/orders")).await.unwrap();
    let list = text(&c, "#orders-body").await;
    assert!(
        list.contains("1 234,50 ₽") && !list.contains("999,00") && !list.contains("199990100"),
        "{list}"
    );

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}

/// The Alerts page (a rule and a chat changed for a restaurant, a test
/// message the fake Telegram receives), the global SMS settings (switch and
/// token), and the Overview showing Telegram's and the SMS provider's
/// state, in a real browser.
#[tokio::test]
async fn alert_rules_test_message_sms_switch_and_provider_state_in_headless_chromium() {
    let (Some(chromium), Some(driver_path)) = (tool("chromium"), tool("chromedriver")) else {
        eprintln!(
            "note: chromium/chromedriver not installed: console browser test SKIPPED (run .ci/install-chromium)"
        );
        return;
    };
    let tg = crate::fake_telegram::FakeTelegram::start(Duration::ZERO).await;
    let smsru = crate::fake_smsru::FakeSmsRu::start("SECRET-API-ID-7").await;
    let toml = format!(
        "[alerts]\napi_base = \"{}\"\n[[alerts.restaurants]]\nrest_code = \"101\"\nname = \"Пицца\"\nclosing_time = \"03:00\"\n[sms.providers.main]\nkind = \"smsru\"\nbase_url = \"{}\"\n",
        tg.base, smsru.base
    );
    let app = crate::harness::spawn_app_with(Backend::Sqlite, move |c| {
        c.sections = tillgate::app::config_from_str(&toml).unwrap().sections;
    })
    .await;
    use tillgate::console::users::Role;
    crate::console::add_user(&app, "admin", Role::Admin, &[]).await;
    crate::console::add_user(&app, "manager", Role::Manager, &["101"]).await;
    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;
    let base = app.base.clone();
    sign_in(&c, &base, "admin").await;

    // The bot token, write-only.
    c.goto(&format!("{base}/alerts?restaurant=101"))
        .await
        .unwrap();
    assert_eq!(text(&c, "#tg-token").await, "не задан");
    fill(&c, "#tg-token-input", crate::fake_telegram::TOKEN).await;
    click(&c, "#tg-save").await;
    until(&c, "#tg-token", "the token set", |t| t == "задан").await;
    assert!(
        text(&c, "#tg-token-source")
            .await
            .contains("сохранено в консоли")
    );
    let html = c.source().await.unwrap();
    assert!(
        !html.contains("AAFakeToken"),
        "the token is never shown back"
    );

    // A restaurant's chat and threshold; the file's closing time stays the
    // file's.
    c.goto(&format!("{base}/alerts?restaurant=101"))
        .await
        .unwrap();
    fill(&c, "#al-chat", "-1001").await;
    fill(&c, "#al-rule-discount_percent", "25").await;
    click(&c, "#al-rule-unsaved_dish_deleted").await;
    click(&c, "#alerts-save").await;
    text(&c, "#alerts-notice").await;
    assert!(
        text(&c, "#alerts-source")
            .await
            .contains("сохранено в консоли")
    );
    let saved = app.get_json("/api/alerts/settings/101").await;
    assert_eq!(saved["chat"], -1001);
    assert_eq!(saved["rules"]["discount_percent"], 25);
    assert_eq!(saved["rules"]["unsaved_dish_deleted"], true);
    assert_eq!(saved["sources"]["closing_time"], "file");
    assert_eq!(saved["sources"]["rules.discount_percent"], "console");
    assert!(
        saved["sources"].get("rules.dish_voided").is_none(),
        "{saved}"
    );
    // A broken threshold is refused with the config file's words.
    fill(&c, "#al-rule-discount_percent", "150").await;
    click(&c, "#alerts-save").await;
    assert!(
        text(&c, "#alerts-error")
            .await
            .contains("alerts.restaurants.101.rules.discount_percent`: must be between 1 and 100")
    );

    // "Send a test message": the fake Telegram receives it in the chat.
    c.goto(&format!("{base}/alerts?restaurant=101"))
        .await
        .unwrap();
    click(&c, "#alerts-test").await;
    assert!(text(&c, "#alerts-test-result").await.contains("-1001"));
    let sent = tg.wait_sent(1).await;
    assert_eq!(sent[0].chat(), -1001);
    assert!(sent[0].text().contains("tillgate"));
    shot(&c, "alerts").await;

    // Guest SMS for all restaurants: the token (write-only) and the switch.
    c.goto(&format!("{base}/sms")).await.unwrap();
    assert_eq!(text(&c, "#sms-global-enabled").await, "нет");
    assert_eq!(text(&c, "#sms-token-main").await, "не задан");
    fill(&c, "#sms-token-input-main", "SECRET-API-ID-7").await;
    click(&c, "#sms-global-switch").await;
    fill(&c, "#sms-global-sender-input", "Pizza").await;
    click(&c, "#sms-global-save").await;
    text(&c, "#sms-global-notice").await;
    assert_eq!(text(&c, "#sms-global-enabled").await, "да");
    assert_eq!(text(&c, "#sms-token-main").await, "задан");
    assert!(!c.source().await.unwrap().contains("SECRET-API-ID-7"));
    shot(&c, "sms-global").await;
    let s = app.get_json("/api/sms/settings").await;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["global"]["sender"], "Pizza");

    // The Overview: Telegram's state and the provider's balance (asked in
    // the background: the page may say "checking" first).
    let mut balance = String::new();
    for _ in 0..50 {
        c.goto(&format!("{base}/")).await.unwrap();
        balance = text(&c, "#sms-balance-state").await;
        if balance.contains('₽') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        balance.contains("123,45 ₽") && balance.contains("main"),
        "{balance}"
    );
    assert_eq!(text(&c, "#tg-token-state").await, "задан");
    assert_eq!(text(&c, "#sms-enabled-state").await, "да");
    shot(&c, "overview-providers").await;

    // A manager: their restaurant's form, no Telegram settings, no other
    // restaurant.
    click(&c, "#sign-out").await;
    sign_in(&c, &base, "manager").await;
    c.goto(&format!("{base}/alerts?restaurant=101"))
        .await
        .unwrap();
    text(&c, "#alerts-form").await;
    assert!(c.find(Locator::Css("#tg-form")).await.is_err());
    c.goto(&format!("{base}/alerts?restaurant=202"))
        .await
        .unwrap();
    assert!(text(&c, "#message").await.starts_with("Нет доступа"));

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}
