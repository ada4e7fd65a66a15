//! `tillgate relay bench`: end-to-end relay throughput and the latency relay
//! adds, against local receivers, with the ceiling measured in the same run.
//!
//! For each destination count K: start the real server (SQLite in a
//! temporary directory) with K destinations, each pointing at its own local
//! receiver that answers 200 at once; post N events through ingest from
//! several concurrent "cash servers"; wait until every receiver has every
//! event. Deliveries/s is K·N over the time from the first post to the last
//! delivery; added latency is delivery time minus the ingest ack time of the
//! same event. The ceiling posts the same bodies straight to the same kind
//! of receivers, one request in flight per receiver as relay does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use tillgate::relay::destination::DestinationInput;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Events ingested per run.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Destination counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    pub destinations: Vec<usize>,
    /// Concurrent ingest clients (each one cash-server event stream).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// After the saturated run, ingest again at this steady rate (events/s
    /// over all clients) to measure the latency relay adds when it is not
    /// queueing behind an overloaded machine; 0 skips the paced run.
    #[arg(long, default_value_t = 1200)]
    pub paced_rate: u32,
}

/// What a receiver saw: (offset from webhook-id, arrival time).
#[derive(Default)]
struct Seen {
    at: Mutex<Vec<(i64, Instant)>>,
    count: AtomicUsize,
}

async fn receiver(seen: Arc<Seen>) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, _body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let now = Instant::now();
                let off = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("tg-"))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-1);
                if let Ok(mut v) = seen.at.lock() {
                    v.push((off, now));
                }
                seen.count.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        },
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

fn event_body(client: usize, seq: usize) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<a RestCode=\"199990093\" DateTime=\"2019-12-18T17:18:00\" Situation=\"3\" seqnumber=\"{seq}\" guid=\"{{{client:08X}-0000-4000-8000-0000BE5C4000}}\" name=\"Order Changed\" ShiftNum=\"1\">\n<Station id=\"15003\" code=\"1\" name=\"MM_CASH\" NetName=\"MM_CASH_169058\"/>\n<Waiter id=\"1\" code=\"7\" name=\"Administrator\"/>\n<Item/>\n</a>"
    )
    .into_bytes()
}

struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed: Duration,
}

fn hist() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).expect("histogram"))
}

/// `rate`: events/s over all ingest clients, or `None` for as fast as the
/// server answers.
async fn relay_run(
    k: usize,
    args: &BenchArgs,
    rate: Option<u32>,
) -> anyhow::Result<(Figures, f64)> {
    let dir = tempfile_dir()?;
    let mut seens = Vec::new();
    let mut tasks = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..k {
        let seen = Arc::new(Seen::default());
        let (addr, task) = receiver(seen.clone()).await?;
        seens.push(seen);
        tasks.push(task);
        inputs.push(DestinationInput {
            id: Some(format!("bench-{i}")),
            url: format!("http://{addr}/rkevent"),
            ..Default::default()
        });
    }
    let mut config = tillgate::core::config::Config::for_tests(&dir);
    config.set_section(tillgate::relay::validate(tillgate::relay::FileSection {
        allow_private_destinations: Some(true),
        destinations: inputs,
        ..Default::default()
    })?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tillgate::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let base = format!("http://{addr}");
    for _ in 0..400 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let n = args.events;
    let clients = args.clients.max(1);
    let acks: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t0 = Instant::now();
    let mut posters = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let url = format!("{base}/rkevent");
        let acks = acks.clone();
        let count = n / clients + usize::from(c < n % clients);
        posters.push(tokio::spawn(async move {
            for seq in 1..=count {
                if let Some(rate) = rate {
                    // Client c's seq-th event is due at the (seq-1)*clients+c-th
                    // slot of the run; a late client posts at once.
                    let slot = ((seq - 1) * clients + c) as f64 / f64::from(rate.max(1));
                    tokio::time::sleep_until((t0 + Duration::from_secs_f64(slot)).into()).await;
                }
                let r = client.post(&url).body(event_body(c, seq)).send().await?;
                let now = Instant::now();
                let v: serde_json::Value = r.error_for_status()?.json().await?;
                let off = v["offset"].as_i64().unwrap_or(-1);
                if let Ok(mut a) = acks.lock() {
                    a.push((off, now));
                }
            }
            anyhow::Ok(())
        }));
    }
    for p in posters {
        p.await??;
    }
    let ingest_done = t0.elapsed();
    let want = n;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seens.iter().any(|s| s.count.load(Ordering::Relaxed) < want) {
        if Instant::now() > deadline {
            anyhow::bail!("relay did not deliver everything within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut ack_at = vec![None; n + 2];
    for (off, at) in acks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
        if let Some(slot) = usize::try_from(*off).ok().and_then(|o| ack_at.get_mut(o)) {
            *slot = Some(*at);
        }
    }
    let mut h = hist();
    let mut last = t0;
    for s in &seens {
        for (off, at) in s.at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
            last = last.max(*at);
            if let Some(Some(ack)) = usize::try_from(*off).ok().and_then(|o| ack_at.get(o)) {
                // The relay can see a commit before the HTTP ack reaches the
                // poster; that counts as 0 added latency.
                let us = at.saturating_duration_since(*ack).as_micros() as u64;
                let _ = h.record(us.max(1));
            }
        }
    }
    let elapsed = last.duration_since(t0);
    shutdown.cancel();
    server.await?.context("server")?;
    for t in tasks {
        t.abort();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        Figures {
            per_sec: (k * n) as f64 / elapsed.as_secs_f64(),
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            elapsed,
        },
        n as f64 / ingest_done.as_secs_f64(),
    ))
}

/// The same bodies posted straight to K receivers, one in flight each.
async fn ceiling_run(k: usize, args: &BenchArgs) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .build()?;
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    let n = args.events;
    let clients = args.clients.max(1);
    let t0 = Instant::now();
    for _ in 0..k {
        let seen = Arc::new(Seen::default());
        let (addr, task) = receiver(seen).await?;
        tasks.push(task);
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            let mut h = hist();
            let url = format!("http://{addr}/rkevent");
            for i in 0..n {
                let body = event_body(i % clients, i / clients + 1);
                let start = Instant::now();
                client
                    .post(&url)
                    .header("webhook-id", format!("tg-{}", i + 1))
                    .body(body)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                let _ = h.record((start.elapsed().as_micros() as u64).max(1));
            }
            anyhow::Ok(h)
        }));
    }
    let mut h = hist();
    for s in senders {
        h.add(s.await??)?;
    }
    let elapsed = t0.elapsed();
    for t in tasks {
        t.abort();
    }
    Ok(Figures {
        per_sec: (k * n) as f64 / elapsed.as_secs_f64(),
        p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        elapsed,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tillgate-relay-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.destinations.contains(&0) {
        anyhow::bail!("--events and every --destinations count must be at least 1");
    }
    println!(
        "relay bench: {} events, {} ingest clients, SQLite (synchronous=FULL), {} CPUs",
        args.events,
        args.clients,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<28} {:>14} {:>12} {:>12} {:>10}",
        "run", "deliveries/s", "p50 ms", "p99 ms", "elapsed s"
    );
    for &k in &args.destinations {
        let (r, ingest_rate) = relay_run(k, &args, None).await?;
        println!(
            "{:<28} {:>14.0} {:>12.2} {:>12.2} {:>10.2}",
            format!("relay to {k} receiver(s)"),
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.elapsed.as_secs_f64()
        );
        println!("{:<28} {:>14.0}", "  (ingest acks/s)", ingest_rate);
        if args.paced_rate > 0 {
            let (r, ingest_rate) = relay_run(k, &args, Some(args.paced_rate)).await?;
            println!(
                "{:<28} {:>14.0} {:>12.2} {:>12.2} {:>10.2}",
                format!("  paced {} ev/s to {k}", args.paced_rate),
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.elapsed.as_secs_f64()
            );
            println!("{:<28} {:>14.0}", "  (ingest acks/s)", ingest_rate);
        }
        let c = ceiling_run(k, &args).await?;
        println!(
            "{:<28} {:>14.0} {:>12.2} {:>12.2} {:>10.2}",
            format!("ceiling: direct to {k}"),
            c.per_sec,
            c.p50_ms,
            c.p99_ms,
            c.elapsed.as_secs_f64()
        );
    }
    println!(
        "relay p50/p99 = delivery time minus ingest ack time (latency relay adds); ceiling p50/p99 = request round trip"
    );
    println!(
        "the unpaced runs post as fast as ingest answers, so their latency is mostly queueing; the paced runs show what relay adds below saturation"
    );
    println!("targets: >= 10000 deliveries/s in total, <= 5 ms p50 added");
    Ok(())
}
