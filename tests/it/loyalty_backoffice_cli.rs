//! `tillgate loyalty` for shops on a data directory (stores, switches,
//! cashiers, payment cards), then the server on the same data: what the
//! operator set on the command line is what registers get.

use serde_json::json;

use crate::harness;
use crate::loyalty::{Loyalty, PW, req, with};
use crate::loyalty_cli::cli;

async fn err(dir: &std::path::Path, args: &[&str]) -> String {
    format!("{:#}", cli(dir, args).await.unwrap_err())
}

#[tokio::test]
async fn the_cli_sets_up_stores_switches_cashiers_and_payment_cards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // SAFETY: tests in this binary only ever set this variable to PW.
    unsafe { std::env::set_var("TILLGATE_REGISTER_PASSWORD", PW) };
    cli(d, &["register-add", "till-1", "--store", "S1"])
        .await
        .unwrap();
    cli(d, &["register-add", "till-2"]).await.unwrap();
    cli(d, &["register-store", "till-2", "S1"]).await.unwrap();
    cli(
        d,
        &[
            "cashier-add",
            "anna",
            "--name",
            "Anna",
            "--store",
            "S1",
            "--card-in-open-receipt",
        ],
    )
    .await
    .unwrap();
    cli(d, &["cashiers", "--store", "S1"]).await.unwrap();
    cli(d, &["switch", "--store", "S1", "--discount-cards", "off"])
        .await
        .unwrap();
    cli(
        d,
        &["switch", "--register", "till-2", "--discount-cards", "on"],
    )
    .await
    .unwrap();
    cli(d, &["switches"]).await.unwrap();
    cli(d, &["payment-card-issue", "G1", "--nominal", "1000"])
        .await
        .unwrap();
    cli(
        d,
        &[
            "payment-card-top-up",
            "G1",
            "--amount",
            "500",
            "--by",
            "manager",
        ],
    )
    .await
    .unwrap();
    cli(d, &["payment-card-block", "G1"]).await.unwrap();
    cli(d, &["payment-card-activate", "G1"]).await.unwrap();
    cli(d, &["payment-card", "G1"]).await.unwrap();

    // Broken input: each names what is wrong and changes nothing.
    assert!(
        cli(d, &["switch", "--discount-cards", "off"])
            .await
            .is_err()
    );
    assert!(
        cli(d, &["switch", "--store", "S1", "--discount-cards", "maybe"])
            .await
            .is_err()
    );
    let e = err(d, &["switch", "--store", "S1"]).await;
    assert!(e.contains("discount_cards"), "{e}");
    let e = err(
        d,
        &["switch", "--register", "nope", "--payment-cards", "off"],
    )
    .await;
    assert!(e.contains("no register nope"), "{e}");
    let e = err(d, &["register-store", "nope", "S1"]).await;
    assert!(e.contains("no register nope"), "{e}");
    let e = err(d, &["register-store", "till-1", "a store"]).await;
    assert!(e.contains("store"), "{e}");
    let e = err(d, &["cashier-add", "boris", "--name", " ", "--store", "S1"]).await;
    assert!(e.contains("name"), "{e}");
    let e = err(d, &["cashier-remove", "boris"]).await;
    assert!(e.contains("no cashier boris"), "{e}");
    let e = err(d, &["payment-card-issue", "G2", "--nominal", "-5"]).await;
    assert!(e.contains("nominal"), "{e}");
    let e = err(d, &["payment-card-issue", "G1", "--nominal", "5"]).await;
    assert!(e.contains("already exists"), "{e}");
    let e = err(
        d,
        &["payment-card-top-up", "G1", "--amount", "0", "--by", "m"],
    )
    .await;
    assert!(e.contains("amount"), "{e}");
    let e = err(d, &["payment-card-block", "G9"]).await;
    assert!(e.contains("no payment card"), "{e}");

    // The server on the same data.
    let config = tillgate::core::config::Config::for_tests(d);
    let app = harness::start(config, dir).await;
    let l = Loyalty {
        app,
        clock: Default::default(),
    };
    let ping = |r: &'static str| {
        let l = &l;
        async move {
            l.app
                .client
                .get(l.app.url("/api/backoffice/v1/ping"))
                .basic_auth(r, Some(PW))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let p1 = ping("till-1").await;
    assert_eq!(p1["store"], "S1");
    assert_eq!(p1["switches"]["discount_cards"], false);
    assert_eq!(p1["cashier_rights"]["cashiers"][0]["id"], "anna");
    let p2 = ping("till-2").await;
    assert_eq!(p2["switches"]["discount_cards"], true);
    let mut body = with(
        req("g1", "till-1"),
        json!({"card": "G1", "card_entry": "scanned"}),
    );
    body["cashier"] = json!("anna");
    let v = l.ok("till-1", "payment-cards/balance", &body).await;
    assert_eq!(v["card"]["balance"], 1_500);
    assert_eq!(v["card"]["state"], "active");
    l.app.stop().await;
}
