//! `tillgate loyalty bench`: purchase flows (calculate, purchase, confirm)
//! per second and their latency with N concurrent registers, against the
//! real server started in-process on a fresh data directory (or a given
//! PostgreSQL database). The ceiling in the same run is the same clients
//! hammering `/healthz` (HTTP plus one trivial query): what the machine
//! gives before any loyalty work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use tillgate::loyalty::operator::{self, Adjustment, NewCard, NewRegister};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Concurrent registers.
    #[arg(long, default_value_t = 32)]
    pub registers: usize,
    /// Cards the flows spread over.
    #[arg(long, default_value_t = 256)]
    pub cards: usize,
    /// Seconds of measurement (each phase).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

struct Stats {
    count: u64,
    elapsed: Duration,
    hist: hdrhistogram::Histogram<u64>,
    errors: u64,
}

impl Stats {
    fn line(&self, what: &str) -> String {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "{what}: {:.0}/s ({} in {:.1}s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
            self.count as f64 / self.elapsed.as_secs_f64(),
            self.count,
            self.elapsed.as_secs_f64(),
            q(0.5),
            q(0.99),
            self.hist.max() as f64 / 1000.0,
            self.errors
        )
    }
}

async fn drive<F, Fut>(workers: usize, secs: u64, f: F) -> anyhow::Result<Stats>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let f = f.clone();
        set.spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let (mut n, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                match f(w, n).await {
                    Ok(()) => {
                        let _ = h.record(t.elapsed().as_micros() as u64);
                        n += 1;
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("worker {w}: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (h, n, errors)
        });
    }
    let mut stats = Stats {
        count: 0,
        elapsed: Duration::ZERO,
        hist: hdrhistogram::Histogram::new(3)?,
        errors: 0,
    };
    while let Some(r) = set.join_next().await {
        let (h, n, e) = r?;
        stats.hist.add(h)?;
        stats.count += n;
        stats.errors += e;
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

pub async fn run(opts: tillgate::core::config::ServerOpts, args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "tillgate-loyalty-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut config = tillgate::core::config::Config::for_tests(&dir);
    if let Some(url) = &opts.database_url {
        config.storage = tillgate::core::config::Storage::Postgres {
            url: secrecy::SecretString::from(url.clone()),
        };
    }
    let backend = match config.storage {
        tillgate::core::config::Storage::Sqlite { .. } => "SQLite",
        tillgate::core::config::Storage::Postgres { .. } => "PostgreSQL",
    };
    let db = tillgate::core::store::Db::open(&config.storage).await?;
    tillgate::core::migrate::migrate(&db, &tillgate::app::migrations()).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let password = "bench-password-1";
    for r in 0..args.registers {
        operator::put_register(
            &db,
            &NewRegister {
                id: format!("bench-{run_id}-{r}"),
                password: password.to_string().into(),
                description: "bench".into(),
            },
        )
        .await?;
    }
    for c in 0..args.cards {
        let number = format!("B{run_id}{c:06}");
        operator::issue_card(
            &db,
            &NewCard {
                number: number.clone(),
                holder_name: format!("Guest {c}"),
                phone: None,
                barcode: None,
                track: None,
                state: None,
            },
        )
        .await?;
        operator::adjust(
            &db,
            &config.section::<tillgate::loyalty::Settings>(),
            &number,
            &Adjustment {
                amount: 100_000_000,
                reason: "bench".into(),
                by: "bench".into(),
            },
        )
        .await?;
    }
    db.close().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tillgate::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.registers * 2)
        .build()?;
    let base = format!("http://{addr}");
    for _ in 0..200 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let (c, b) = (client.clone(), base.clone());
    let ceiling = drive(args.registers, args.seconds, move |_, _| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let r = c.get(format!("{b}/healthz")).send().await?;
            anyhow::ensure!(r.status().is_success(), "healthz {}", r.status());
            Ok(())
        }
    })
    .await?;

    // Sign every register in once, unmeasured: a register in the field
    // keeps working all day, and its first request pays for the deliberately
    // slow password hash (~0.1 s of CPU) that later ones find cached.
    let mut warm = tokio::task::JoinSet::new();
    for w in 0..args.registers {
        let (c, b) = (client.clone(), base.clone());
        let register = format!("bench-{run_id}-{w}");
        warm.spawn(async move {
            c.post(format!("{b}/api/loyalty/v1/balance"))
                .basic_auth(register, Some(password))
                .json(&json!({}))
                .send()
                .await
                .map(|r| r.status())
        });
    }
    while let Some(r) = warm.join_next().await {
        // Only the sign-in matters; the empty body answers 400 after it.
        let status = r??;
        anyhow::ensure!(
            status != reqwest::StatusCode::UNAUTHORIZED,
            "warm-up: {status}"
        );
    }

    let cards = args.cards;
    let rid = run_id.clone();
    let (c, b) = (client.clone(), base.clone());
    let flows = drive(args.registers, args.seconds, move |w, n| {
        let (c, b, rid) = (c.clone(), b.clone(), rid.clone());
        async move {
            let register = format!("bench-{rid}-{w}");
            let card = format!("B{rid}{:06}", (w as u64 * 7919 + n * 31) % cards as u64);
            let op = |k: &str| format!("{rid}-{w}-{n}-{k}");
            let common = |k: &str| {
                json!({
                    "operation_id": op(k), "register": register, "cashier": "bench",
                    "local_time": "2026-10-03T16:05:00",
                })
            };
            let lines = json!([
                {"goods_id": "100", "price": 25000, "quantity": 2000, "amount": 50000},
                {"goods_id": "200", "price": 12000, "quantity": 1000, "amount": 12000}
            ]);
            let post = |path: &'static str, body: serde_json::Value| {
                let c = c.clone();
                let url = format!("{b}/api/loyalty/v1/{path}");
                let register = register.clone();
                async move {
                    let r = c
                        .post(url)
                        .basic_auth(register, Some(password))
                        .json(&body)
                        .send()
                        .await?;
                    let s = r.status();
                    let text = r.text().await?;
                    anyhow::ensure!(s.is_success(), "{path}: {s} {text}");
                    Ok::<_, anyhow::Error>(())
                }
            };
            let mut calc = common("c");
            calc["identifier"] = json!({"kind": "auto", "value": card});
            calc["lines"] = lines.clone();
            post("calculate", calc.clone()).await?;
            let mut buy = calc;
            buy["operation_id"] = json!(op("p"));
            buy["bonus_spend"] = json!(1000);
            post("purchase", buy).await?;
            let mut conf = common("f");
            conf["purchase_operation_id"] = json!(op("p"));
            post("confirm", conf).await?;
            Ok(())
        }
    })
    .await?;

    shutdown.cancel();
    server.await.context("server task")??;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "loyalty bench on {backend}, {} registers, {} cards, {} s per phase",
        args.registers, args.cards, args.seconds
    );
    println!("{}", ceiling.line("ceiling  GET /healthz        "));
    println!("{}", flows.line("flows    calculate+purchase+confirm"));
    println!(
        "target: >= 5000 flows/s with p99 < 20 ms on SQLite -> {}",
        if flows.count as f64 / flows.elapsed.as_secs_f64() >= 5000.0
            && flows.hist.value_at_quantile(0.99) < 20_000
        {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
