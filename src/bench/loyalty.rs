//! `tillgate loyalty bench`: purchase flows (calculate, purchase, confirm)
//! per second and their latency with N concurrent registers and with one,
//! against the real server started in-process on a fresh data directory
//! (or a given PostgreSQL database). Printed beside it, from the same run:
//! the ceiling (the same clients hammering `/healthz`: what the machine
//! gives before any loyalty work), the durable floor (the same rows a flow
//! writes, appended bare in groups of the same size with the same sync;
//! see [`floor`]) and the resident memory of the process at full rate.

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

/// Resident memory of this process (server and bench clients) in KiB.
fn vm_rss_kib() -> Option<u64> {
    super::rss::current().map(|b| b / 1024)
}

pub(super) struct Stats {
    pub(super) count: u64,
    pub(super) elapsed: Duration,
    pub(super) hist: hdrhistogram::Histogram<u64>,
    pub(super) errors: u64,
}

impl Stats {
    pub(super) fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    pub(super) fn line(&self, what: &str) -> String {
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

pub(super) async fn drive<F, Fut>(workers: usize, secs: u64, f: F) -> anyhow::Result<Stats>
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

/// The server started in-process, and the same-run ceiling measured
/// against it.
pub(super) struct Served {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) shutdown: CancellationToken,
    pub(super) server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub(super) ceiling: Stats,
}

/// Starts the real server on a loopback port, waits until it answers, and
/// takes the ceiling: `clients` hammering `GET /healthz` for `seconds`.
pub(super) async fn serve(
    config: tillgate::core::config::Config,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tillgate::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
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
    let ceiling = drive(clients, seconds, move |_, _| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let r = c.get(format!("{b}/healthz")).send().await?;
            anyhow::ensure!(r.status().is_success(), "healthz {}", r.status());
            Ok(())
        }
    })
    .await?;

    Ok(Served {
        client,
        base,
        shutdown,
        server,
        ceiling,
    })
}

/// CPU ticks (1/100 s) used so far by this process's threads, summed by
/// thread name: the per-thread profile printed beside the figures.
fn thread_ticks() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ..." — the name may hold spaces, so split at
        // the last ')'; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(name).or_default() += ticks;
    }
    out
}

/// The threads that used the most CPU between two [`thread_ticks`], as
/// shares of one core over `secs`.
fn profile_line(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    secs: f64,
) -> String {
    let mut used: Vec<(u64, &String)> = after
        .iter()
        .map(|(k, v)| (v.saturating_sub(before.get(k).copied().unwrap_or(0)), k))
        .filter(|(d, _)| *d > 0)
        .collect();
    used.sort_by(|a, b| b.cmp(a));
    let total: u64 = used.iter().map(|u| u.0).sum();
    let top: Vec<String> = used
        .iter()
        .take(8)
        .map(|(d, k)| format!("{k} {:.0} %", *d as f64 / secs))
        .collect();
    format!(
        "CPU of this process {:.0} % of one core: {}",
        total as f64 / secs,
        top.join(", ")
    )
}

/// One phase of purchase flows from `registers` concurrent registers.
#[allow(clippy::too_many_arguments)]
async fn flows(
    client: &reqwest::Client,
    base: &str,
    run_id: &str,
    password: &'static str,
    registers: usize,
    cards: usize,
    seconds: u64,
    phase: &'static str,
) -> anyhow::Result<Stats> {
    let rid = run_id.to_string();
    let (c, b) = (client.clone(), base.to_string());
    drive(registers, seconds, move |w, n| {
        let (c, b, rid) = (c.clone(), b.clone(), rid.clone());
        async move {
            let register = format!("bench-{rid}-{w}");
            let card = format!("B{rid}{:06}", (w as u64 * 7919 + n * 31) % cards as u64);
            let op = |k: &str| format!("{rid}-{phase}-{w}-{n}-{k}");
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
    .await
}

/// A bench's scratch server setup: its data directory, config (PostgreSQL
/// when `--database-url` is given), migrated storage and `registers`
/// registers `{prefix}-{run_id}-{r}` with one password, in the store
/// `store_of(r)` names.
pub(super) struct Scratch {
    pub dir: std::path::PathBuf,
    pub config: tillgate::core::config::Config,
    pub backend: &'static str,
    pub db: tillgate::core::store::Db,
    pub run_id: String,
    pub password: &'static str,
}

pub(super) async fn scratch(
    opts: &tillgate::core::config::ServerOpts,
    name: &str,
    prefix: &str,
    registers: usize,
    store_of: impl Fn(usize) -> Option<String>,
) -> anyhow::Result<Scratch> {
    let dir = std::env::temp_dir().join(format!(
        "tillgate-{name}-bench-{}",
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
    for r in 0..registers {
        operator::put_register(
            &db,
            &NewRegister {
                id: format!("{prefix}-{run_id}-{r}"),
                password: Some(password.to_string().into()),
                description: "bench".into(),
                store: store_of(r),
                no_password: false,
                allowed_from: Vec::new(),
            },
        )
        .await?;
    }
    Ok(Scratch {
        dir,
        config,
        backend,
        db,
        run_id,
        password,
    })
}

pub async fn run(opts: tillgate::core::config::ServerOpts, args: BenchArgs) -> anyhow::Result<()> {
    let Scratch {
        dir,
        config,
        backend,
        db,
        run_id,
        password,
    } = scratch(&opts, "loyalty", "bench", args.registers, |_| None).await?;
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

    let Served {
        client,
        base,
        shutdown,
        server,
        ceiling,
    } = serve(config, args.registers, args.seconds).await?;

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

    let rss_idle = vm_rss_kib();
    let cpu_before = thread_ticks();
    let many = flows(
        &client,
        &base,
        &run_id,
        password,
        args.registers,
        args.cards,
        args.seconds,
        "many",
    )
    .await?;
    let rss = vm_rss_kib();
    let cpu_after = thread_ticks();
    let one = flows(
        &client,
        &base,
        &run_id,
        password,
        1,
        args.cards,
        args.seconds,
        "one",
    )
    .await?;

    shutdown.cancel();
    server.await.context("server task")??;
    let _ = std::fs::remove_dir_all(&dir);
    // The floor after the server, so the two do not share the disk.
    let floor_many = floor::measure(&opts, args.registers, args.seconds).await?;
    let floor_one = floor::measure(&opts, 1, args.seconds).await?;
    println!(
        "loyalty bench on {backend}, {} registers, {} cards, {} s per phase",
        args.registers, args.cards, args.seconds
    );
    println!("{}", ceiling.line("ceiling  GET /healthz                 "));
    println!(
        "floor    bare append, {:>2} registers: {:.0} flows/s (a sync per {} operations: p50 {:.2} ms, p99 {:.2} ms)",
        args.registers,
        floor_many.flows_per_sec(),
        floor_many.ops_per_commit,
        floor_many.p50_ms(),
        floor_many.p99_ms()
    );
    println!(
        "floor    bare append,  1 register:  {:.2} ms per flow (two syncs)",
        floor_one.ms_per_flow()
    );
    println!(
        "{}  = {:.0} requests/s",
        many.line(&format!(
            "tillgate {:>2} registers, calculate+purchase+confirm",
            args.registers
        )),
        3.0 * many.rate()
    );
    println!(
        "{}  = {:.2} ms per flow",
        one.line("tillgate  1 register,  calculate+purchase+confirm"),
        one.elapsed.as_secs_f64() * 1000.0 / one.count.max(1) as f64
    );
    println!(
        "{}",
        profile_line(&cpu_before, &cpu_after, many.elapsed.as_secs_f64())
    );
    let mib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "resident memory (VmRSS of server and bench clients): {} before the flows, {} at full rate",
        mib(rss_idle),
        mib(rss)
    );
    let p99_ms = many.hist.value_at_quantile(0.99) as f64 / 1000.0;
    let per_flow_ms = one.elapsed.as_secs_f64() * 1000.0 / one.count.max(1) as f64;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if backend == "SQLite" {
        println!(
            "target: {} registers >= 2500 flows/s with p99 <= 20 ms -> {} ({:.0} flows/s, p99 {:.1} ms; {:.0} % of the floor)",
            args.registers,
            verdict(many.rate() >= 2500.0 && p99_ms <= 20.0 && many.errors == 0),
            many.rate(),
            p99_ms,
            100.0 * many.rate() / floor_many.flows_per_sec().max(1.0)
        );
    } else {
        println!(
            "target: durable PostgreSQL >= 1000 flows/s -> {} ({:.0} flows/s; {:.0} % of the floor)",
            verdict(many.rate() >= 1000.0 && many.errors == 0),
            many.rate(),
            100.0 * many.rate() / floor_many.flows_per_sec().max(1.0)
        );
    }
    println!(
        "target: one register <= 1.5 ms per flow -> {} ({per_flow_ms:.2} ms)",
        verdict(per_flow_ms <= 1.5 && one.errors == 0)
    );
    Ok(())
}

/// The durable floor: what a flow writes (a purchase row; a confirm row,
/// four ledger rows and a new lot), appended bare in transactions of
/// `registers` operations (each register has at most one changing
/// operation in flight, so a group commit holds at most that many) with
/// the server's sync. On SQLite a rusqlite connection with
/// `synchronous=FULL` in WAL mode on a scratch file; on PostgreSQL
/// multi-row inserts into scratch copies of the tables. No reads, no
/// decisions, no HTTP: no server can go faster on this disk.
mod floor {
    use std::time::{Duration, Instant};

    use anyhow::Context;

    pub struct Floor {
        pub ops_per_commit: usize,
        commits: u64,
        elapsed: Duration,
        hist: hdrhistogram::Histogram<u64>,
    }

    impl Floor {
        fn flows(&self) -> f64 {
            (self.commits * self.ops_per_commit as u64) as f64 / 2.0
        }
        pub fn flows_per_sec(&self) -> f64 {
            self.flows() / self.elapsed.as_secs_f64()
        }
        pub fn ms_per_flow(&self) -> f64 {
            self.elapsed.as_secs_f64() * 1000.0 / self.flows().max(1.0)
        }
        pub fn p50_ms(&self) -> f64 {
            self.hist.value_at_quantile(0.5) as f64 / 1000.0
        }
        pub fn p99_ms(&self) -> f64 {
            self.hist.value_at_quantile(0.99) as f64 / 1000.0
        }
    }

    /// A register's answer is stored with its operation: about this long.
    const RESPONSE: usize = 900;
    const REQUEST: usize = 330;

    /// Time-ordered, like tillgate's ledger and lot ids.
    fn ordered() -> String {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        format!("{ms:015}-{n:012}-00000000")
    }

    fn uuid() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub async fn measure(
        opts: &tillgate::core::config::ServerOpts,
        registers: usize,
        seconds: u64,
    ) -> anyhow::Result<Floor> {
        let ops = registers.max(1);
        match &opts.database_url {
            None => tokio::task::spawn_blocking(move || sqlite(ops, seconds)).await?,
            Some(url) => postgres(url, ops, seconds).await,
        }
    }

    fn sqlite(ops: usize, seconds: u64) -> anyhow::Result<Floor> {
        let dir = std::env::temp_dir().join(format!("tillgate-loyalty-floor-{}", uuid()));
        std::fs::create_dir_all(&dir)?;
        let r = sqlite_in(&dir.join("floor.sqlite"), ops, seconds);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn sqlite_in(path: &std::path::Path, ops: usize, seconds: u64) -> anyhow::Result<Floor> {
        let mut conn = rusqlite::Connection::open(path)?;
        // Like the server's checkpointer: the WAL is copied back beside
        // the commits, so they overwrite it instead of growing the file.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpointer = {
            let (done, path) = (done.clone(), path.to_path_buf());
            std::thread::spawn(move || {
                let Ok(c) = rusqlite::Connection::open(&path) else {
                    return;
                };
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
        };
        let r = append(&mut conn, ops, seconds);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = checkpointer.join();
        r
    }

    fn append(conn: &mut rusqlite::Connection, ops: usize, seconds: u64) -> anyhow::Result<Floor> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE ops (operation_id TEXT PRIMARY KEY, register_id TEXT, kind TEXT, request TEXT, response TEXT, card_number TEXT, created_at BIGINT, net BIGINT, bonus_spend BIGINT, bonus_earn BIGINT);
             CREATE TABLE ledger (id TEXT PRIMARY KEY, posting_id TEXT, account TEXT, amount BIGINT, kind TEXT, operation_id TEXT, lot_id TEXT, created_at BIGINT, seq BIGINT);
             CREATE TABLE lots (id TEXT PRIMARY KEY, card_number TEXT, amount BIGINT, remaining BIGINT, created_at BIGINT);",
        )?;
        let (request, response) = ("r".repeat(REQUEST), "a".repeat(RESPONSE));
        let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
        let (start, mut commits) = (Instant::now(), 0u64);
        let deadline = start + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            let t = Instant::now();
            let tx = conn.transaction()?;
            {
                let mut op = tx.prepare_cached(
                    "INSERT INTO ops VALUES (?1, 'r', ?2, ?3, ?4, 'card', 1, 62000, 1000, 3050)",
                )?;
                let mut entry = tx.prepare_cached(
                    "INSERT INTO ledger VALUES (?1, ?2, ?3, ?4, 'spend', ?5, ?6, 1, ?7)",
                )?;
                let mut lot =
                    tx.prepare_cached("INSERT INTO lots VALUES (?1, 'card', 3050, 3050, 1)")?;
                for i in 0..ops {
                    // Purchases and confirms alternate, across commits too
                    // (one register: a purchase commit, then a confirm one).
                    let confirm = (commits as usize * ops + i) % 2 == 1;
                    // Like the bench's registers: "run-register-flow-step".
                    let id = format!("floor-{i}-{commits}-{}", if confirm { "f" } else { "p" });
                    let kind = if confirm { "confirm" } else { "purchase" };
                    op.execute(rusqlite::params![id, kind, request, response])?;
                    if confirm {
                        let (posting, lot_id) = (ordered(), ordered());
                        for seq in 0..4i64 {
                            entry.execute(rusqlite::params![
                                format!("{posting}-{seq}"),
                                posting,
                                "card:x",
                                1000,
                                id,
                                lot_id,
                                seq
                            ])?;
                        }
                        lot.execute(rusqlite::params![lot_id])?;
                    }
                }
            }
            tx.commit()?;
            let _ = hist.record(t.elapsed().as_micros() as u64);
            commits += 1;
        }
        Ok(Floor {
            ops_per_commit: ops,
            commits,
            elapsed: start.elapsed(),
            hist,
        })
    }

    async fn postgres(url: &str, ops: usize, seconds: u64) -> anyhow::Result<Floor> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .context("floor: connect")?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let (t_ops, t_ledger) = (
            format!("floor_ops_{suffix}"),
            format!("floor_ledger_{suffix}"),
        );
        for sql in [
            format!(
                "CREATE TABLE {t_ops} (operation_id TEXT PRIMARY KEY, register_id TEXT, kind TEXT, request TEXT, response TEXT, card_number TEXT, created_at BIGINT, net BIGINT, bonus_spend BIGINT, bonus_earn BIGINT)"
            ),
            format!(
                "CREATE TABLE {t_ledger} (id TEXT PRIMARY KEY, posting_id TEXT, account TEXT, amount BIGINT, kind TEXT, operation_id TEXT, lot_id TEXT, created_at BIGINT, seq BIGINT)"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
        }
        let (request, response) = ("r".repeat(REQUEST), "a".repeat(RESPONSE));
        let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
        let (start, mut commits) = (Instant::now(), 0u64);
        let deadline = start + Duration::from_secs(seconds);
        let backend = tillgate::core::store::Backend::Postgres;
        let op_sql = tillgate::core::store::multi_row(
            backend,
            &format!(
                "INSERT INTO {t_ops} (operation_id, register_id, kind, request, response, card_number, created_at, net, bonus_spend, bonus_earn) VALUES "
            ),
            ops,
            10,
        );
        while Instant::now() < deadline {
            let t = Instant::now();
            // Purchases and confirms alternate, across commits too.
            let confirm = |i: usize| (commits as usize * ops + i) % 2 == 1;
            let confirms = (0..ops).filter(|i| confirm(*i)).count();
            let mut tx = conn.begin().await?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(op_sql.clone()));
            for i in 0..ops {
                let kind = if confirm(i) { "confirm" } else { "purchase" };
                q = q
                    .bind(uuid())
                    .bind("r")
                    .bind(kind)
                    .bind(request.clone())
                    .bind(response.clone())
                    .bind("card")
                    .bind(1i64)
                    .bind(62000i64)
                    .bind(1000i64)
                    .bind(3050i64);
            }
            q.execute(&mut *tx).await?;
            if confirms > 0 {
                // Four entries and (in the same table, as wide) the new lot.
                let entry_sql = tillgate::core::store::multi_row(
                    backend,
                    &format!(
                        "INSERT INTO {t_ledger} (id, posting_id, account, amount, kind, operation_id, lot_id, created_at, seq) VALUES "
                    ),
                    confirms * 5,
                    9,
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(entry_sql));
                for _ in 0..confirms * 5 {
                    q = q
                        .bind(uuid())
                        .bind("p")
                        .bind("card:x")
                        .bind(1000i64)
                        .bind("spend")
                        .bind("op")
                        .bind("lot")
                        .bind(1i64)
                        .bind(0i64);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            let _ = hist.record(t.elapsed().as_micros() as u64);
            commits += 1;
        }
        let elapsed = start.elapsed();
        for t in [&t_ops, &t_ledger] {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
                .execute(&mut conn)
                .await;
        }
        Ok(Floor {
            ops_per_commit: ops,
            commits,
            elapsed,
            hist,
        })
    }
}
