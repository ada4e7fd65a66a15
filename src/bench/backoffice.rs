//! `tillgate backoffice bench`: closed receipts of 10 lines journaled per
//! second, and their latency, from N concurrent registers, against the real
//! server started in-process on a fresh data directory (or a given
//! PostgreSQL database). Printed beside it, from the same run: the ceiling
//! (the same clients hammering `/healthz`: what the machine gives before
//! any journal work). The load driver is the loyalty bench's.

use anyhow::Context;
use serde_json::json;

use super::loyalty::{Scratch, Served, drive, scratch, serve};
use tillgate::loyalty::operator::{self, NewCard};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Concurrent registers.
    #[arg(long, default_value_t = 32)]
    pub registers: usize,
    /// Lines per receipt.
    #[arg(long, default_value_t = 10)]
    pub lines: usize,
    /// Percent of receipts closed with a discount card (journaled through
    /// loyalty's accrual).
    #[arg(long, default_value_t = 0)]
    pub card_percent: u64,
    /// Seconds of measurement (each phase).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

pub async fn run(opts: tillgate::core::config::ServerOpts, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.registers > 0 && args.lines > 0,
        "--registers and --lines must be positive"
    );
    anyhow::ensure!(args.card_percent <= 100, "--card-percent is 0 to 100");
    // Four stores; the load below sells in the register's own.
    let Scratch {
        dir,
        config,
        backend,
        db,
        run_id,
        password,
    } = scratch(&opts, "backoffice", "bo", args.registers, |r| {
        Some(format!("store-{}", r % 4))
    })
    .await?;
    const CARDS: usize = 256;
    if args.card_percent > 0 {
        for c in 0..CARDS {
            operator::issue_card(
                &db,
                &NewCard {
                    number: format!("BO{run_id}{c:05}"),
                    holder_name: format!("Guest {c}"),
                    phone: None,
                    barcode: None,
                    track: None,
                    state: None,
                },
            )
            .await?;
        }
    }
    db.close().await;

    let Served {
        client,
        base,
        shutdown,
        server,
        ceiling,
    } = serve(config, args.registers, args.seconds).await?;

    // Sign every register in once, unmeasured (the password hash is slow
    // by design and cached after the first request).
    for w in 0..args.registers {
        let r = client
            .post(format!("{base}/api/backoffice/v1/receipts"))
            .basic_auth(format!("bo-{run_id}-{w}"), Some(password))
            .json(&json!({}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status() != reqwest::StatusCode::UNAUTHORIZED,
            "warm-up: {}",
            r.status()
        );
    }

    let (c, b, rid) = (client.clone(), base.clone(), run_id.clone());
    let (n_lines, card_percent) = (args.lines, args.card_percent);
    let many = drive(args.registers, args.seconds, move |w, n| {
        let (c, b, rid) = (c.clone(), b.clone(), rid.clone());
        async move {
            let register = format!("bo-{rid}-{w}");
            let lines: Vec<serde_json::Value> = (0..n_lines)
                .map(|i| {
                    let q = 1000 + (i as i64 % 3) * 500;
                    let price = 4_990 + i as i64 * 10;
                    let amount = (price * q + 500) / 1000;
                    json!({"goods_id": format!("g{}", (w * 31 + i + n as usize) % 500), "name": "bench goods",
                           "quantity": q, "price": price, "amount": amount, "discount": 0})
                })
                .collect();
            let total: i64 = lines.iter().map(|l| l["amount"].as_i64().unwrap_or(0)).sum();
            let mut body = json!({
                "receipt_id": format!("{rid}-{w}-{n}"), "store": format!("store-{}", w % 4),
                "register": register, "cashier": "bench", "shift": 1,
                "local_time": "2026-11-30T12:00:00", "kind": "sale", "lines": lines,
                "total": total, "payments": {"cash": total},
            });
            if (n * 7 + w as u64) % 100 < card_percent {
                body["card"] = json!(format!("BO{rid}{:05}", (w as u64 * 7919 + n * 31) % CARDS as u64));
            }
            let r = c
                .post(format!("{b}/api/backoffice/v1/receipts"))
                .basic_auth(&register, Some(password))
                .json(&body)
                .send()
                .await?;
            let s = r.status();
            let text = r.text().await?;
            anyhow::ensure!(s.is_success(), "receipt: {s} {text}");
            Ok(())
        }
    })
    .await?;

    shutdown.cancel();
    server.await.context("server task")??;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "backoffice bench on {backend}, {} registers, {} lines per receipt, {} % with a card, {} s per phase",
        args.registers, args.lines, args.card_percent, args.seconds
    );
    println!("{}", ceiling.line("ceiling  GET /healthz                 "));
    println!(
        "{}  = {:.0} lines/s; {:.0} % of the ceiling",
        many.line(&format!(
            "tillgate {:>2} registers, POST receipts   ",
            args.registers
        )),
        many.rate() * args.lines as f64,
        100.0 * many.rate() / ceiling.rate().max(1.0)
    );
    let p99_ms = many.hist.value_at_quantile(0.99) as f64 / 1000.0;
    let ok = many.rate() >= 2000.0 && p99_ms <= 30.0 && many.errors == 0;
    println!(
        "target on SQLite: >= 2000 receipts/s with p99 <= 30 ms -> {} ({:.0} receipts/s, p99 {:.1} ms)",
        if ok { "met" } else { "NOT met" },
        many.rate(),
        p99_ms
    );
    Ok(())
}
