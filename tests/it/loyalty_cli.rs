//! `tillgate loyalty ...` on a data directory, then the server on the same
//! data: what the operator did on the command line is what registers see.

use serde_json::json;

use crate::harness;
use crate::loyalty::{Loyalty, PW, req, with};

pub async fn cli(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["tillgate", "loyalty", "--data", dir.to_str().unwrap()];
    argv.extend_from_slice(args);
    let m = tillgate::app::cli::command().try_get_matches_from(argv)?;
    tillgate::app::cli::dispatch(&m)
        .await
        .expect("loyalty is a feature subcommand")
}

#[tokio::test]
async fn operator_cli_manages_registers_cards_and_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // SAFETY: tests in this binary do not read this variable concurrently;
    // it is only read by `register-add` below.
    unsafe { std::env::set_var("TILLGATE_REGISTER_PASSWORD", PW) };
    cli(d, &["register-add", "till-7", "--description", "bar"])
        .await
        .unwrap();
    cli(
        d,
        &[
            "card-issue",
            "5005",
            "--name",
            "Oleg",
            "--phone",
            "+7 999 000 11 22",
            "--inactive",
        ],
    )
    .await
    .unwrap();
    cli(d, &["card-activate", "5005"]).await.unwrap();
    cli(
        d,
        &[
            "adjust", "5005", "--amount", "700", "--reason", "apology", "--by", "manager",
        ],
    )
    .await
    .unwrap();
    cli(
        d,
        &[
            "adjust", "5005", "--amount", "-200", "--reason", "typo", "--by", "manager",
        ],
    )
    .await
    .unwrap();
    cli(d, &["history", "5005"]).await.unwrap();
    cli(d, &["registers"]).await.unwrap();

    let csv = d.join("goods.csv");
    std::fs::write(
        &csv,
        "goods_id,name,no_discount,no_bonus\ncig,Cigarettes,1,1\n",
    )
    .unwrap();
    cli(d, &["import-catalog", csv.to_str().unwrap()])
        .await
        .unwrap();

    // Broken input: each names what is wrong and changes nothing.
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "goods_id,no_bonus\nx,perhaps\n").unwrap();
    let e = format!(
        "{:#}",
        cli(d, &["import-catalog", bad.to_str().unwrap()])
            .await
            .unwrap_err()
    );
    assert!(e.contains("line 2") && e.contains("no_bonus"), "{e}");
    let txt = d.join("goods.txt");
    std::fs::write(&txt, "x").unwrap();
    let e = format!(
        "{:#}",
        cli(d, &["import-catalog", txt.to_str().unwrap()])
            .await
            .unwrap_err()
    );
    assert!(e.contains("--format"), "{e}");
    let e = format!(
        "{:#}",
        cli(d, &["import-catalog", "/nonexistent.csv"])
            .await
            .unwrap_err()
    );
    assert!(e.contains("/nonexistent.csv"), "{e}");
    let e = format!(
        "{:#}",
        cli(
            d,
            &[
                "adjust", "5005", "--amount", "-10000", "--reason", "x", "--by", "y"
            ]
        )
        .await
        .unwrap_err()
    );
    assert!(e.contains("not enough bonus"), "{e}");
    let e = format!("{:#}", cli(d, &["card-block", "nope"]).await.unwrap_err());
    assert!(e.contains("no card nope"), "{e}");
    assert!(
        cli(
            d,
            &[
                "adjust", "5005", "--amount", "ten", "--reason", "x", "--by", "y"
            ]
        )
        .await
        .is_err()
    );
    assert!(
        cli(d, &["card-issue", "6006"]).await.is_err(),
        "--name is required"
    );

    // The server on the same data.
    let config = tillgate::core::config::Config::for_tests(d);
    let app = harness::start(config, dir).await;
    let l = Loyalty {
        app,
        clock: Default::default(),
    };
    let v = l
        .ok(
            "till-7",
            "calculate",
            &with(
                req("c1", "till-7"),
                json!({"identifier": {"kind": "phone", "value": "89990001122"},
                       "lines": [{"goods_id": "cig", "price": 30000, "quantity": 1000, "amount": 30000}]}),
            ),
        )
        .await;
    assert_eq!(v["balance"]["bonus"], 500);
    assert_eq!(v["holder"]["state"], "active");
    assert_eq!(v["bonus_earn"], 0, "tobacco earns nothing: {v}");
    assert_eq!(v["bonus_max_spend"], 0);
    let card = l.card("5005").await;
    assert_eq!(card["ledger"][1]["reason"], "typo");
    assert_eq!(card["ledger"][1]["by"], "manager");
}
