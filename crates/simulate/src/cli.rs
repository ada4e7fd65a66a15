//! `tillgate simulate`: the command line of the emulator.
//!
//! Argument errors are caught by clap before anything runs (exactly one of
//! `--to` / `--out`, counts at least 1, a URL with an http(s) scheme and a
//! host, a positive rate), so a typo never starts a half-configured run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::ArgGroup;

use super::{Scenario, SendOptions, generate, send, write_out};

/// Play r_keeper cash servers: generate a deterministic day (or several) and
/// send it like the HTTP Order Notify driver, or write it as files.
#[derive(clap::Args, Debug, Clone)]
#[command(group(ArgGroup::new("destination").required(true).multiple(true).args(["to", "out", "serve"])))]
pub struct SimulateArgs {
    /// Destination URL, e.g. http://127.0.0.1:11130/rkevent.
    #[arg(long, value_name = "URL", value_parser = parse_url, conflicts_with = "out")]
    pub to: Option<String>,
    /// Play the whole cash server: serve its XML interface and subscription
    /// endpoint over HTTPS on ADDR (self-signed certificate made at start,
    /// fingerprint printed); events go to its subscriptions (`--to` is the
    /// first one). Needs one restaurant with one cash server.
    #[arg(long, value_name = "ADDR", conflicts_with = "out")]
    pub serve: Option<std::net::SocketAddr>,
    /// The employee of the XML interface (HTTP Basic), with --serve.
    #[arg(long, default_value = "admin", requires = "serve")]
    pub user: String,
    /// Their password, with --serve.
    #[arg(
        long,
        env = "TILLGATE_SIMULATE_PASSWORD",
        default_value = "admin",
        hide_env_values = true,
        requires = "serve"
    )]
    pub password: String,
    /// ServerVersion the cash server reports, with --serve (below 7.6.5.440
    /// it has no subscription endpoint).
    #[arg(long, default_value = "7.6.5.450", requires = "serve")]
    pub server_version: String,
    /// Lose the events with these seqnumbers, as a full queue does, e.g.
    /// `50-89,120-121`, with --serve.
    #[arg(long, value_name = "RANGES", value_parser = parse_ranges, requires = "serve")]
    pub drop: Option<Ranges>,
    /// Keep serving after the day was played, until Ctrl-C (--serve).
    #[arg(long, requires = "serve")]
    pub stay: bool,
    /// Write the events as files under DIR (and truth.json) instead of sending.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Restaurants (RestCodes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub restaurants: u32,
    /// Cash servers per restaurant (they share the common shift).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub cash_servers: u32,
    /// Stations per cash server.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub stations: u32,
    /// Orders per station per day.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub orders: u32,
    /// Business days (each starts a new common shift).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Seed: the same seed gives the same events, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First business day, YYYY-MM-DD.
    #[arg(long, default_value = "2026-11-02")]
    pub start: chrono::NaiveDate,
    /// Percent of orders with a guest phone (ExternalProp "phone").
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub phone_share: u32,
    /// Events per second over all cash servers; without it, as fast as the
    /// receiver allows (nothing dropped).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Queue length per destination (the driver's is 256).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue_max: u64,
    /// Time limit of one POST, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Further attempts after a failed POST before the event counts as failed.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Pause before each further attempt, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub retry_pause_ms: u64,
    /// Give up on a destination after this many events in a row failed
    /// (0: never).
    #[arg(long, default_value_t = 10)]
    pub give_up_after: u32,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_url(s: &str) -> Result<String, String> {
    if !s.is_empty() && !s.contains("://") {
        return Err(format!("{s:?} has no scheme; write it as http://{s}"));
    }
    let u = reqwest::Url::parse(s)
        .map_err(|e| format!("not a URL ({e}); expected e.g. http://127.0.0.1:11130/rkevent"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {:?}",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    Ok(s.to_string())
}

/// Seqnumber ranges (`50-89,120`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges(pub Vec<std::ops::RangeInclusive<u64>>);

fn parse_ranges(s: &str) -> Result<Ranges, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |t: &str| {
            t.trim().parse::<u64>().map_err(|_| {
                format!("{t:?} in {part:?} is not a seqnumber; write ranges as 50-89,120")
            })
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b || a == 0 {
            return Err(format!(
                "{part:?}: a range runs from a seqnumber >= 1 up to a larger one"
            ));
        }
        out.push(a..=b);
    }
    if out.is_empty() {
        return Err("no range given; write ranges as 50-89,120".into());
    }
    Ok(Ranges(out))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of events per second"))?;
    if !r.is_finite() || r <= 0.0 {
        return Err(format!(
            "the rate must be a positive number of events per second, not {s}"
        ));
    }
    Ok(r)
}

impl SimulateArgs {
    /// The scenario these arguments describe.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            restaurants: self.restaurants,
            cash_servers: self.cash_servers,
            stations: self.stations,
            orders: self.orders,
            days: self.days,
            seed: self.seed,
            start: self.start,
            phone_share_percent: self.phone_share,
        }
    }
}

/// Runs the emulator; fails when events could not be delivered.
pub async fn run_cli(args: SimulateArgs) -> anyhow::Result<()> {
    let scenario = args.scenario();
    let started = std::time::Instant::now();
    let generated = generate(&scenario);
    let events = generated.event_count();
    let orders = generated.truth.orders.len();
    let bytes: usize = generated
        .servers
        .iter()
        .flat_map(|s| s.events.iter())
        .map(|e| e.xml.len())
        .sum();
    eprintln!(
        "generated {events} events ({orders} orders, {:.1} MB of XML) in {:.2} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = &args.out {
        let files = write_out(&generated.servers, dir)
            .with_context(|| format!("cannot write the events under {}", dir.display()))?;
        let truth = serde_json::to_vec_pretty(&generated.truth)?;
        std::fs::write(dir.join("truth.json"), truth)
            .with_context(|| format!("cannot write {}", dir.join("truth.json").display()))?;
        println!(
            "wrote {files} events ({orders} orders, {} cash servers) under {}, and truth.json",
            generated.servers.len(),
            dir.display()
        );
        return Ok(());
    }
    if let Some(listen) = args.serve {
        return serve(&args, listen, generated).await;
    }
    let Some(url) = args.to.clone() else {
        anyhow::bail!("give --to URL or --out DIR");
    };
    eprintln!(
        "simulating {} cash servers, {events} events ({orders} orders) to {url}",
        generated.servers.len()
    );
    let opts = SendOptions {
        rate: args.rate,
        queue_max: args.queue_max as usize,
        timeout: Duration::from_millis(args.timeout_ms),
        progress: !args.no_progress,
        retries: args.retries,
        retry_pause: Duration::from_millis(args.retry_pause_ms),
        give_up_after: (args.give_up_after > 0).then_some(args.give_up_after),
        ..SendOptions::new(url)
    };
    let summary = send(generated.servers, opts).await;
    println!("{summary}");
    if summary.failed > 0 {
        anyhow::bail!(
            "{} of {events} events could not be delivered (see the HTTP: Post error lines)",
            summary.failed
        );
    }
    Ok(())
}

/// `--serve`: the whole cash server until the day is played (or Ctrl-C
/// with `--stay`).
async fn serve(
    args: &SimulateArgs,
    listen: std::net::SocketAddr,
    generated: super::Generated,
) -> anyhow::Result<()> {
    if generated.servers.len() != 1 {
        anyhow::bail!("--serve plays one cash server: use --restaurants 1 --cash-servers 1");
    }
    let Some(stream) = generated.servers.into_iter().next() else {
        anyhow::bail!("nothing generated");
    };
    let opts = super::CashServerOptions {
        listen,
        user: args.user.clone(),
        password: args.password.clone(),
        server_version: args.server_version.clone(),
        subscriptions: args.to.clone().into_iter().collect(),
        drop: args.drop.clone().map(|r| r.0).unwrap_or_default(),
        rate: args.rate,
        queue_max: args.queue_max as usize,
        timeout: Duration::from_millis(args.timeout_ms),
        retries: args.retries,
        retry_pause: Duration::from_millis(args.retry_pause_ms),
    };
    let server = super::CashServer::start(stream, opts).await?;
    println!(
        "cash server at {} (XML interface and subscriptions)",
        server.url()
    );
    println!("certificate SHA-256 fingerprint: {}", server.fingerprint());
    server.play().await;
    let (sent, dropped) = server.counts();
    println!(
        "day played: {} events, {sent} delivered, {dropped} lost",
        server.event_count()
    );
    if args.stay {
        println!("serving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--serve ADDR --to URL` is the documented way to play a cash server
    /// with a first subscription (docs/simulate.md); `--to` with `--out`
    /// and no destination at all stay refused.
    #[test]
    fn destinations_combine_as_documented() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: SimulateArgs,
        }
        let ok = Cli::try_parse_from([
            "simulate",
            "--serve",
            "127.0.0.1:4545",
            "--to",
            "http://127.0.0.1:11130/rkevent",
            "--rate",
            "5",
            "--drop",
            "60-99",
            "--user",
            "admin",
            "--password",
            "admin",
            "--stay",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(ok.a.serve.is_some() && ok.a.to.is_some());
        assert!(Cli::try_parse_from(["simulate", "--serve", "127.0.0.1:4545"]).is_ok());
        for bad in [
            vec!["simulate", "--to", "http://127.0.0.1:1/x", "--out", "d"],
            vec!["simulate", "--serve", "127.0.0.1:4545", "--out", "d"],
            vec!["simulate"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_and_rates_are_checked() {
        assert!(parse_url("http://127.0.0.1:11130/rkevent").is_ok());
        assert!(parse_url("https://hub.example/api/v1/events").is_ok());
        assert!(
            parse_url("127.0.0.1:11130")
                .unwrap_err()
                .contains("http://127.0.0.1:11130")
        );
        assert!(
            parse_url("localhost:11130/rkevent")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(parse_url("").unwrap_err().contains("not a URL"));
        assert!(parse_url("file:///tmp/x").unwrap_err().contains("scheme"));
        assert_eq!(
            parse_ranges("50-89, 120").unwrap().0,
            vec![50..=89, 120..=120]
        );
        for bad in ["", "x", "9-3", "0-4", "5-"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rate("250"), Ok(250.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "NaN", "inf", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
