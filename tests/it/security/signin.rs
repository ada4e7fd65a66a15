//! Attacks on the console's sign-in, through the real server: parallel
//! guesses, a burst that took the server's memory, lockouts behind a
//! proxy, a forged `X-Forwarded-For`, the admin's unlock (page and CLI), a
//! sign-in form posted without its token, `next` with control characters;
//! and a manager, who must neither see nor route Telegram chats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::ExposeSecret;
use tillgate::console::auth::MAX_FAILURES;
use tillgate::console::users::Role;
use tillgate::core::config::{Config, Storage};

use crate::console::{PASSWORD, REST_A, add_user, browser, login_form, post_login, sign_in};
use crate::harness::{Backend, TestApp, backends, spawn_app_with};

/// A server with an admin, and a manager and a viewer of restaurant A;
/// `proxied`: behind a proxy on loopback (`[http] trusted_proxies`).
async fn app(backend: Backend, proxied: bool, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_app_with(backend, |c| {
        if proxied {
            c.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        }
        tweak(c);
    })
    .await;
    add_user(&app, "admin", Role::Admin, &[]).await;
    add_user(&app, "manager", Role::Manager, &[REST_A]).await;
    add_user(&app, "viewer", Role::Viewer, &[REST_A]).await;
    app
}

/// One sign-in attempt: (`X-Forwarded-For`, name, password).
type Try<'a> = (Option<String>, &'a str, &'a str);

/// Sign-in forms opened one by one, then all posted at once.
async fn parallel_sign_ins(app: &TestApp, tries: Vec<Try<'_>>) -> Vec<reqwest::Response> {
    let mut forms = Vec::new();
    for _ in 0..tries.len() {
        forms.push(login_form(app).await);
    }
    let client = browser();
    let sends = tries
        .into_iter()
        .zip(forms)
        .map(|((xff, name, password), (cookie, token))| {
            let mut req = client
                .post(app.url("/login"))
                .header(COOKIE, cookie)
                .form(&[
                    ("csrf", token.as_str()),
                    ("name", name),
                    ("password", password),
                ]);
            if let Some(x) = xff {
                req = req.header("x-forwarded-for", x);
            }
            req.send()
        });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("the server answers"))
        .collect()
}

/// One attempt's status.
async fn attempt(app: &TestApp, xff: Option<&str>, name: &str, password: &str) -> StatusCode {
    parallel_sign_ins(app, vec![(xff.map(str::to_string), name, password)])
        .await
        .remove(0)
        .status()
}

/// Locks `name` out from this test's address: its failures, then even the
/// right password is refused.
async fn lock(app: &TestApp, name: &str) {
    for _ in 0..MAX_FAILURES {
        assert_eq!(
            attempt(app, None, name, "a wrong password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt(app, None, name, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_get_five_refusals_and_the_rest_429_with_retry_after() {
    for backend in backends() {
        let app = app(backend, false, |_| {}).await;
        let tries = (0..40)
            .map(|_| (None, "manager", "a wrong password"))
            .collect();
        let (mut unauthorized, mut limited) = (0, 0);
        for r in parallel_sign_ins(&app, tries).await {
            match r.status() {
                StatusCode::UNAUTHORIZED => unauthorized += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    let secs: u64 = r.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=15 * 60).contains(&secs), "Retry-After {secs}");
                }
                other => panic!("a parallel guess answered {other}"),
            }
        }
        let max = MAX_FAILURES as usize;
        assert_eq!((unauthorized, limited), (max, 40 - max));
        // Locked now: the right password waits too.
        assert_eq!(
            sign_in(&app, "manager", PASSWORD).await.err(),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        app.stop().await;
    }
}

/// This process's resident memory (the server runs in it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

/// Storage plays no part in hashing's memory: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_120_sign_ins_past_the_limiter_keeps_memory_flat() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("note: no /proc/self/status: memory test SKIPPED");
        return;
    }
    let app = app(Backend::Sqlite, true, |_| {}).await;
    // Each attempt from its own address behind the trusted proxy, so that
    // the limiter lets every one through to Argon2: what is measured is
    // the hashing, not the limiter.
    let from = |i: usize| Some(format!("10.77.{}.{}", i / 200, i % 200 + 1));
    // Warm up: hashing threads and their memory as a running server has them.
    let warm: Vec<Try> = (0..4)
        .map(|i| (from(1000 + i), "admin", "a wrong password"))
        .collect();
    parallel_sign_ins(&app, warm).await;
    let base = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(rss_bytes(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let tries = (0..120)
        .map(|i| (from(i), "admin", "a wrong password"))
        .collect();
    let answers = parallel_sign_ins(&app, tries).await;
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    for r in &answers {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "every one was hashed");
    }
    let growth = peak.load(Ordering::SeqCst).saturating_sub(base);
    eprintln!(
        "120 parallel sign-ins: resident memory grew by {} KiB",
        growth >> 10
    );
    assert!(
        growth < 100 << 20,
        "resident memory grew by {} MiB under 120 parallel sign-ins",
        growth >> 20
    );
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_five_typos_lock_out_only_their_author_there() {
    for backend in backends() {
        let app = app(backend, true, |_| {}).await;
        let office = Some("198.51.100.1");
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                attempt(&app, office, "manager", "a typo").await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            attempt(&app, office, "manager", PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // Another person, from their own address behind the same proxy...
        assert_eq!(
            attempt(&app, Some("198.51.100.2"), "admin", PASSWORD).await,
            StatusCode::SEE_OTHER
        );
        // ...or from the same office address, is not locked out.
        assert_eq!(
            attempt(&app, office, "viewer", PASSWORD).await,
            StatusCode::SEE_OTHER
        );
        // Nor is the manager at home.
        assert_eq!(
            attempt(&app, Some("203.0.113.50"), "manager", PASSWORD).await,
            StatusCode::SEE_OTHER
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    for backend in backends() {
        // Nothing trusted: the header is the client's own word.
        let app = app(backend, false, |_| {}).await;
        for i in 0..MAX_FAILURES {
            let forged = format!("203.0.113.{i}");
            assert_eq!(
                attempt(&app, Some(&forged), "manager", "a guess").await,
                StatusCode::UNAUTHORIZED
            );
        }
        // A new made-up address does not buy new guesses.
        assert_eq!(
            attempt(&app, Some("192.0.2.200"), "manager", PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        app.stop().await;
    }
}

/// `tillgate users unlock NAME` against the app's storage.
async fn cli_unlock(app: &TestApp, name: &str) -> anyhow::Result<String> {
    let mut argv = vec![
        "tillgate".to_string(),
        "users".into(),
        "--data".into(),
        app.dir.path().to_str().unwrap().into(),
    ];
    if let Storage::Postgres { url } = &app.config.storage {
        argv.push("--database-url".into());
        argv.push(url.expose_secret().to_string());
    }
    argv.extend(["unlock".to_string(), name.to_string()]);
    let m = tillgate::app::cli::command().try_get_matches_from(argv)?;
    let (_, sub) = m.subcommand().unwrap();
    tillgate::console::cli::run(sub, &tillgate::app::cli::ctx(), &b""[..]).await
}

#[tokio::test]
async fn an_admin_unlocks_a_locked_user_on_the_users_page_or_with_the_cli() {
    for backend in backends() {
        let app = app(backend, false, |_| {}).await;
        let admin = sign_in(&app, "admin", PASSWORD).await.unwrap();
        let viewer = sign_in(&app, "viewer", PASSWORD).await.unwrap();
        lock(&app, "manager").await;
        let page = admin.get(&app, "/users").await.text().await.unwrap();
        assert!(page.contains("id=\"locked-manager\""), "{page}");
        assert!(!page.contains("id=\"locked-viewer\""), "{page}");
        // An admin's, with the session's token.
        assert_eq!(
            viewer
                .post(&app, "/users/manager/unlock", &[])
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        let r = browser()
            .post(app.url("/users/manager/unlock"))
            .header(COOKIE, &admin.cookie)
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            sign_in(&app, "manager", PASSWORD).await.err(),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "still locked after the refused unlocks"
        );
        assert_eq!(
            admin.post(&app, "/users/nobody/unlock", &[]).await.status(),
            StatusCode::NOT_FOUND
        );
        let r = admin.post(&app, "/users/manager/unlock", &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let page = admin.get(&app, "/users").await.text().await.unwrap();
        assert!(!page.contains("id=\"locked-manager\""), "{page}");
        assert!(sign_in(&app, "manager", PASSWORD).await.is_ok());

        // The CLI: the counts are in the server's memory, the unlock
        // reaches it through storage (checked at most every second).
        lock(&app, "manager").await;
        let out = cli_unlock(&app, "manager").await.unwrap();
        assert!(out.starts_with("unlocked manager"), "{out}");
        let e = cli_unlock(&app, "nobody").await.unwrap_err();
        assert!(e.to_string().contains("no user"), "{e}");
        let mut signed_in = false;
        for _ in 0..50 {
            if sign_in(&app, "manager", PASSWORD).await.is_ok() {
                signed_in = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(signed_in, "the CLI's unlock never reached the server");
        app.stop().await;
    }
}

/// Whether an answer hands out a session.
fn opens_a_session(r: &reqwest::Response) -> bool {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("tg_session="))
}

#[tokio::test]
async fn a_sign_in_without_its_form_token_is_refused_before_any_password_check() {
    for backend in backends() {
        let app = app(backend, false, |_| {}).await;
        let (cookie, token) = login_form(&app).await;
        let right = [("name", "manager"), ("password", PASSWORD)];
        // (cookie sent, csrf field): none, a wrong one, the right token
        // without its cookie (another site may learn a token, never set
        // this site's cookie).
        let cases: Vec<(Option<&str>, Option<&str>)> = vec![
            (Some(&cookie), None),
            (Some(&cookie), Some("forged")),
            (Some(&cookie), Some("")),
            (None, Some(&token)),
        ];
        for (c, csrf) in cases {
            let mut form: Vec<(&str, &str)> = right.to_vec();
            if let Some(t) = csrf {
                form.push(("csrf", t));
            }
            let mut req = browser().post(app.url("/login")).form(&form);
            if let Some(c) = c {
                req = req.header(COOKIE, c);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{c:?} {csrf:?}");
            assert!(!opens_a_session(&r), "the right password opened nothing");
            // A fresh form comes back to try again.
            assert!(
                r.headers()
                    .get_all(SET_COOKIE)
                    .iter()
                    .any(|v| v.to_str().unwrap().starts_with("tg_login=")),
            );
            assert!(
                r.text()
                    .await
                    .unwrap()
                    .contains("Форма входа устарела или пришла не с этой страницы")
            );
        }
        // Nothing was counted either: wrong passwords without a token
        // lock nobody out.
        for _ in 0..2 * MAX_FAILURES {
            let r = browser()
                .post(app.url("/login"))
                .header(COOKIE, &cookie)
                .form(&[("name", "manager"), ("password", "a guess")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
        }
        // The token from the form, with its cookie, signs in.
        let r = browser()
            .post(app.url("/login"))
            .header(COOKIE, &cookie)
            .form(&[
                ("csrf", token.as_str()),
                ("name", "manager"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(opens_a_session(&r));
        app.stop().await;
    }
}

#[tokio::test]
async fn next_with_control_characters_stays_on_this_server_and_never_fails() {
    for backend in backends() {
        let app = app(backend, false, |_| {}).await;
        // A browser drops tabs and line breaks from a Location: `/\t/host`
        // would take the person to `//host`.
        for next in [
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\nSet-Cookie: tg_session=x",
            "/\u{0}",
            "//evil.example/",
            "/\\evil.example/",
        ] {
            let r = post_login(
                &app,
                &[("name", "admin"), ("password", PASSWORD), ("next", next)],
            )
            .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
            assert_eq!(r.headers()[LOCATION], "/", "{next:?}");
        }
        let r = post_login(
            &app,
            &[
                ("name", "admin"),
                ("password", PASSWORD),
                ("next", "/orders?restaurant=101"),
            ],
        )
        .await;
        assert_eq!(r.headers()[LOCATION], "/orders?restaurant=101");
        // The form carries only a safe `next` on.
        for q in ["next=/%09/evil.example/", "next=/%0a", "next=%0d%0a"] {
            let r = browser()
                .get(app.url(&format!("/login?{q}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{q}");
            let page = r.text().await.unwrap();
            assert!(
                page.contains("name=\"next\" value=\"&#x2f;\""),
                "{q}: {page}"
            );
        }
        app.stop().await;
    }
}

/// A restaurant-closed event of restaurant A's cash station.
fn station_closed() -> Vec<u8> {
    use rk7::{Event, Guid, LocalDateTime, RestCode, Server, Situation, Station};
    rk7::write(&Event {
        rest_code: Some(RestCode(REST_A.into())),
        date_time: Some(LocalDateTime::parse("2026-11-23T10:00:00").unwrap()),
        seqnumber: Some(1),
        guid: Some(Guid::parse(crate::console::STREAM_A).unwrap()),
        shift_num: Some(1),
        shift_date: Some(LocalDateTime::parse("2026-11-23T00:00:00").unwrap()),
        station: Some(Station {
            id: Some(15003),
            code: Some(1),
            name: Some("CASH_1".into()),
            ..Default::default()
        }),
        server: Some(Server {
            id: Some(15002),
            code: Some(15002),
            name: Some("MID".into()),
            ..Default::default()
        }),
        ..Event::new(Situation::StationClosed)
    })
}

const CHAT: &str = "-100777";

#[tokio::test]
async fn a_manager_sees_no_chat_ids_or_delivery_errors_and_cannot_route_a_chat() {
    for backend in backends() {
        // Telegram unreachable: alerts wait with their error.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let app = app(backend, false, |c| {
            let toml = format!(
                "[alerts]\nbot_token = \"{}\"\napi_base = \"{dead}\"\ncommands = false\n\
                 [[alerts.restaurants]]\nrest_code = \"{REST_A}\"\nchat = {CHAT}\n",
                crate::fake_telegram::TOKEN
            );
            c.sections = tillgate::app::config_from_str(&toml).unwrap().sections;
        })
        .await;
        app.ingest(station_closed()).await;
        app.wait_consumer("alerts").await;
        let mut rows = Vec::new();
        for _ in 0..500 {
            rows = app.get_json("/api/alerts?limit=100").await["items"]
                .as_array()
                .unwrap()
                .clone();
            if !rows.is_empty() && rows.iter().all(|r| !r["last_error"].is_null()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let error = rows[0]["last_error"].as_str().expect("a delivery error");
        assert!(error.contains("unreachable"), "{error}");
        let shown_error = "unreachable";
        // The admin sees where alerts go and why they wait...
        let admin = sign_in(&app, "admin", PASSWORD).await.unwrap();
        let page = admin
            .get(&app, "/alerts?restaurant=101")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(CHAT) && page.contains("id=\"al-chat\""),
            "{page}"
        );
        assert!(page.contains(shown_error), "{page}");
        // ...the manager neither.
        let manager = sign_in(&app, "manager", PASSWORD).await.unwrap();
        let r = manager.get(&app, "/alerts?restaurant=101").await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(!page.contains(CHAT), "a chat id shows: {page}");
        assert!(
            !page.contains(shown_error),
            "a delivery error shows: {page}"
        );
        assert!(!page.contains("name=\"chat\""), "a chat field: {page}");
        assert!(
            page.contains("station_closed"),
            "the alert itself is listed"
        );
        // A chat posted anyway is refused; nothing changes.
        let r = manager
            .post(&app, "/alerts/101", &[("chat", "-100999")])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let stored = app.get_json("/api/alerts/settings/101").await;
        assert_eq!(stored["chat"].to_string(), CHAT);
        // The rules stay the manager's, and their save keeps the chat.
        let r = manager
            .post(&app, "/alerts/101", &[("rules.discount_percent", "40")])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.text().await.unwrap().contains(CHAT));
        let stored = app.get_json("/api/alerts/settings/101").await;
        assert_eq!(stored["rules"]["discount_percent"], 40);
        assert_eq!(stored["chat"].to_string(), CHAT);
        // A test message's failure names neither the chat nor Telegram's words.
        let r = manager.post(&app, "/alerts/101/test", &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        let page = r.text().await.unwrap();
        assert!(!page.contains(CHAT), "{page}");
        assert!(page.contains("причину видит администратор"), "{page}");
        app.stop().await;
    }
}
