//! `tillgate bench`: the load benchmark of the ingest path.
//!
//! It answers one question an integrator asks before pointing a chain of
//! restaurants at tillgate: how many events per second does it make durable,
//! and how long does a cash server wait for each acknowledgement?
//!
//! One run drives, one after the other and with the same bodies:
//! 1. a do-nothing HTTP server that reads the body and answers 200 (the
//!    ceiling: what this machine's HTTP stack and the load generator manage),
//! 2. the durable floor: the same bodies appended to the log's table with
//!    rusqlite, one synchronous=FULL commit per group of as many events as
//!    there are senders (the largest group one-in-flight senders can make),
//!    stored raw and as tillgate stores them (LZ4): no durable SQLite log
//!    can do better on this disk,
//! 3. tillgate on a fresh SQLite data directory, with its resident memory,
//! 4. tillgate on a fresh PostgreSQL database, when a URL is given.
//!
//! Each sender plays one simulated cash server the way the r_keeper driver
//! does: one connection, one request in flight, the next event only after
//! the previous one was acknowledged. The events are the emulator's
//! (`tillgate simulate`), so their sizes and mix are those of a real day.
//! The server runs in its own runtime on its own threads; the senders in
//! another. Both compete for the same cores, which is why the ceiling is
//! measured in the same run and the ratio is what to compare across
//! machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::post;
use hdrhistogram::Histogram;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use tillgate::core::config::{Config, Storage};
use tillgate::core::log::Codec;
use tillgate_simulate::workload_in;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Concurrent senders, one per simulated cash server.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub senders: u32,
    /// Events each sender posts (after the warm-up).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Events each sender posts first, not measured.
    #[arg(long, default_value_t = 50)]
    pub warmup: u64,
    /// Also benchmark PostgreSQL at this URL (a fresh database is created
    /// in it for the run and dropped after).
    #[arg(long, env = "TILLGATE_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Seed of the emulator that produces the events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads of the server's runtime (the senders get their own runtime).
    #[arg(long, default_value_t = 2)]
    pub server_threads: usize,
    /// Skip the SQLite run.
    #[arg(long)]
    pub skip_sqlite: bool,
    /// Restaurants the senders' cash servers belong to (default: one per
    /// sender). Several per sender interleave their streams; one for all
    /// makes every sender a cash server of the same restaurant. Resident
    /// memory should not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub restaurants: Option<u32>,
}

/// What one target achieved.
#[derive(Debug, Clone)]
pub struct Figures {
    pub target: String,
    pub events: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub bytes: u64,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    let per_sender = args.warmup + args.events;
    let restaurants = args.restaurants.unwrap_or(args.senders);
    let streams = workload_in(args.senders, restaurants, per_sender, args.seed);
    let total_bytes: usize = streams.iter().flatten().map(|b| b.len()).sum();
    let n_events: usize = streams.iter().map(|s| s.len()).sum();
    println!(
        "workload: {} senders x {} events (warm-up {}), {} restaurants, {} events, mean body {} bytes",
        args.senders,
        args.events,
        args.warmup,
        restaurants,
        n_events,
        total_bytes / n_events.max(1)
    );
    let streams = Arc::new(streams);

    let ceiling = run_target(Target::Ceiling, &streams, &args).await?;
    print_row(&ceiling, None);

    if !args.skip_sqlite {
        let mut floor_lz4 = None;
        for codec in [Codec::None, Codec::Lz4] {
            let f = super::floor::run(&streams, args.warmup as usize, args.senders as usize, codec)
                .await?;
            print_row(&f, Some(&ceiling));
            if codec == Codec::Lz4 {
                floor_lz4 = Some(f);
            }
        }
        let baseline = super::rss::current();
        let sampler = super::rss::Peak::start();
        let f = run_target(Target::Sqlite, &streams, &args).await?;
        let peak = sampler.stop();
        print_row(&f, Some(&ceiling));
        if let (Some(base), Some(peak)) = (baseline, peak) {
            println!(
                "resident memory: {:.1} MiB at the start of the SQLite run, {:.1} MiB at its peak: the server took {:.1} MiB (target <= 150 MiB)",
                mib(base),
                mib(peak),
                mib(peak.saturating_sub(base))
            );
        }
        let floor = floor_lz4.map(|f| f.per_second()).unwrap_or(0.0);
        println!(
            "target (SQLite, durable): >= max(12000, 90% of the LZ4 floor = {:.0}) events/s and p99 <= 20 ms -> {}",
            0.9 * floor,
            if meets_target(&f, floor) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    match &args.database_url {
        Some(url) => {
            let f = run_target(Target::Postgres(url.clone()), &streams, &args).await?;
            print_row(&f, Some(&ceiling));
            println!(
                "target (PostgreSQL, durable cluster): >= 8000 events/s -> {}",
                if f.errors == 0 && f.per_second() >= 8_000.0 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        None => println!(
            "postgres: SKIPPED (give --database-url postgres://... or TILLGATE_BENCH_DATABASE_URL)"
        ),
    }
    Ok(())
}

/// The target for the SQLite run: at least 90 % of the same run's durable
/// floor (and never below 12,000 events/s), p99 at most 20 ms, no errors.
fn meets_target(f: &Figures, floor_per_second: f64) -> bool {
    f.errors == 0
        && f.per_second() >= (0.9 * floor_per_second).max(12_000.0)
        && f.p99 <= Duration::from_millis(20)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_row(f: &Figures, ceiling: Option<&Figures>) {
    let ratio = ceiling
        .map(|c| {
            format!(
                "{:5.1}% of ceiling",
                100.0 * f.per_second() / c.per_second()
            )
        })
        .unwrap_or_else(|| "ceiling".into());
    println!(
        "{:<10} {:>9.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {}  {:>6.1} MB/s  {}",
        f.target,
        f.per_second(),
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        f.errors,
        f.bytes as f64 / f.elapsed.as_secs_f64() / 1e6,
        ratio
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

enum Target {
    Ceiling,
    Sqlite,
    Postgres(String),
}

/// Starts the target on its own runtime, drives it, stops it.
async fn run_target(
    target: Target,
    streams: &Arc<Vec<Vec<Vec<u8>>>>,
    args: &BenchArgs,
) -> anyhow::Result<Figures> {
    let name = match &target {
        Target::Ceiling => "do-nothing",
        Target::Sqlite => "sqlite",
        Target::Postgres(_) => "postgres",
    }
    .to_string();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("bench-server")
        .enable_all()
        .build()
        .context("server runtime")?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().context("temporary data dir")?;
    let mut pg_cleanup = None;

    let is_ceiling = matches!(target, Target::Ceiling);
    let server = match target {
        Target::Ceiling => {
            let token = shutdown.clone();
            server_rt.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                let app = axum::Router::new().route(
                    "/rkevent",
                    post(|body: axum::body::Bytes| async move {
                        std::hint::black_box(body.len());
                        "ok"
                    }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await?;
                anyhow::Ok(())
            })
        }
        Target::Sqlite | Target::Postgres(_) => {
            let mut config = Config::for_tests(dir.path());
            config.listen = addr;
            if let Target::Postgres(url) = &target {
                let (db_url, name) =
                    tillgate::core::store::create_scratch_database(url, "tillgate_bench")
                        .await
                        .context("creating the benchmark database")?;
                let cleanup = (url.clone(), name);
                config.storage = Storage::Postgres {
                    url: SecretString::from(db_url),
                };
                pg_cleanup = Some(cleanup);
            }
            let token = shutdown.clone();
            server_rt.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                tillgate::run(config, listener, token).await
            })
        }
    };
    wait_ready(addr).await?;

    let url = format!("http://{addr}/rkevent");
    let figures = drive(&name, &url, streams, args.warmup as usize).await;
    if !is_ceiling && figures.is_ok() {
        // The figure is the acknowledgement rate; the consumers (order
        // state, alerts, SMS) may trail it under saturation. Say by how
        // much, so the figure is not read as "everything done".
        match caught_up(addr).await {
            Some(after) => println!(
                "{name}: every consumer caught up {:.1} s after the last acknowledgement",
                after.as_secs_f64()
            ),
            None => {
                println!("{name}: consumers had not caught up 300 s after the last acknowledgement")
            }
        }
    }

    shutdown.cancel();
    let stopped = server.await;
    server_rt.shutdown_background();
    if let Some((admin_url, db)) = pg_cleanup {
        tillgate::core::store::drop_scratch_database(&admin_url, &db).await;
    }
    stopped.context("server task")?.context("server")?;
    figures
}

/// How long until `/api/consumers` shows no lag (at most 300 s).
async fn caught_up(addr: std::net::SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/consumers");
    while started.elapsed() < Duration::from_secs(300) {
        if let Ok(r) = client.get(&url).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && let Some(items) = v["items"].as_array()
            && items.iter().all(|c| c["lag_events"].as_i64() == Some(0))
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn wait_ready(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("server on {addr} did not come up")
}

/// Every sender posts its stream in order, one request in flight; the
/// first `warmup` events of each stream are not measured.
async fn drive(
    name: &str,
    url: &str,
    streams: &Arc<Vec<Vec<Vec<u8>>>>,
    warmup: usize,
) -> anyhow::Result<Figures> {
    let start_gate = Arc::new(tokio::sync::Barrier::new(streams.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..streams.len() {
        let streams = streams.clone();
        let url = url.to_string();
        let gate = start_gate.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client");
            let stream = &streams[i];
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut errors = 0u64;
            let mut bytes = 0u64;
            for body in stream.iter().take(warmup) {
                let _ = post_one(&client, &url, body.clone()).await;
            }
            gate.wait().await;
            for body in stream.iter().skip(warmup) {
                let t = Instant::now();
                let ok = post_one(&client, &url, body.clone()).await;
                let us = t.elapsed().as_micros() as u64;
                hist.saturating_record(us.max(1));
                if !ok {
                    errors += 1;
                }
                bytes += body.len() as u64;
            }
            (hist, errors, bytes, Instant::now())
        });
    }
    start_gate.wait().await;
    let started = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    let mut bytes = 0;
    let mut last = started;
    while let Some(r) = tasks.join_next().await {
        let (h, e, b, done) = r.context("sender task")?;
        hist.add(h)?;
        errors += e;
        bytes += b;
        last = last.max(done);
    }
    Ok(Figures {
        target: name.to_string(),
        events: hist.len(),
        errors,
        elapsed: last - started,
        p50: Duration::from_micros(hist.value_at_quantile(0.50)),
        p99: Duration::from_micros(hist.value_at_quantile(0.99)),
        max: Duration::from_micros(hist.max()),
        bytes,
    })
}

async fn post_one(client: &reqwest::Client, url: &str, body: Vec<u8>) -> bool {
    match client.post(url).body(body).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(events: u64, secs: f64, p99_ms: u64, errors: u64) -> Figures {
        Figures {
            target: "sqlite".into(),
            events,
            errors,
            elapsed: Duration::from_secs_f64(secs),
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(p99_ms),
            max: Duration::from_millis(p99_ms),
            bytes: 0,
        }
    }

    #[test]
    fn the_target_needs_rate_latency_and_no_errors() {
        assert!(meets_target(&figures(12_000, 1.0, 20, 0), 10_000.0));
        assert!(
            !meets_target(&figures(11_999, 1.0, 19, 0), 10_000.0),
            "12,000 at least"
        );
        assert!(meets_target(&figures(18_000, 1.0, 19, 0), 20_000.0));
        assert!(
            !meets_target(&figures(17_999, 1.0, 19, 0), 20_000.0),
            "90 % of the floor"
        );
        assert!(!meets_target(&figures(40_000, 1.0, 21, 0), 0.0), "p99");
        assert!(!meets_target(&figures(40_000, 1.0, 5, 1), 0.0), "errors");
    }
}
