//! `tillgate backoffice ...` on a data directory: stock documents, stock,
//! reports and the resync document from the command line, and their
//! refusals of broken input.

use crate::harness;

async fn cli(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["tillgate", "backoffice", "--data", dir.to_str().unwrap()];
    argv.extend_from_slice(args);
    let m = tillgate::app::cli::command().try_get_matches_from(argv)?;
    tillgate::app::cli::dispatch(&m)
        .await
        .expect("backoffice is a feature subcommand")
}

#[tokio::test]
async fn operator_cli_imports_stock_reports_and_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("arrivals.csv");
    std::fs::write(
        &file,
        "store,goods_id,name,unit,kind,quantity,local_time\ns1,g1,Milk,l,arrival,5000,2026-11-30T08:00:00\n",
    )
    .unwrap();
    cli(d, &["import", file.to_str().unwrap()]).await.unwrap();
    // The same document again is refused; so is a broken one, naming the row.
    let e = cli(d, &["import", file.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("imported already"), "{e:#}");
    let bad = d.join("bad.json");
    std::fs::write(&bad, r#"[{"store": "s1", "goods_id": "g1", "kind": "arrival", "quantity": -5, "local_time": "2026-11-30T08:00:00"}]"#).unwrap();
    let e = cli(d, &["import", bad.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("row 1: quantity"), "{e:#}");
    let e = cli(d, &["import", d.join("missing.csv").to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("reading"), "{e:#}");
    cli(d, &["stock", "--store", "s1"]).await.unwrap();
    cli(d, &["report", "--by", "goods", "--format", "csv"])
        .await
        .unwrap();
    let e = cli(d, &["report", "--by", "weather"]).await.unwrap_err();
    assert!(e.to_string().contains("--by"), "{e:#}");
    let e = cli(d, &["report", "--by", "day", "--to", "30.11.2026"])
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("--to: "), "{e:#}");
    // No registers, no cards on: the resync runs, over no cards.
    cli(d, &["resync"]).await.unwrap();
    cli(d, &["resync", "--cards", "1,2", "--force"])
        .await
        .unwrap();
    let e = cli(d, &["resync", "--cards", ""]).await.unwrap_err();
    assert!(e.to_string().contains("cards"), "{e:#}");

    // The server on the same data sees the document's stock.
    let config = tillgate::core::config::Config::for_tests(d);
    let app = harness::start(config, dir).await;
    let v = app
        .get_json("/api/backoffice/stock?store=s1&goods=g1")
        .await;
    assert_eq!(v["stock"][0]["quantity"], 5000);
    assert_eq!(v["stock"][0]["unit"], "l");
}
