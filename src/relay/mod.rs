//! Relay: hands logged events on to other systems (a KDS, a QR menu,
//! ProAlert, a data warehouse) from the one notify connection tillgate has.
//!
//! r_keeper's driver keeps 256 events per destination in memory and wants a
//! paid licence for a second one. Here every destination is a consumer of
//! the durable log with its own cursor ([`worker`]): the backlog is bounded
//! only by retention, order is the log's order, and a restart resumes where
//! each destination stood. Destinations come from the config file and from
//! the API ([`api`]); both go through [`destination::expand`].

pub mod api;
pub mod destination;
pub mod sign;
pub mod store;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::core::bus::Bus;
use crate::core::config::{AnySection, ConfigError, ServerOpts};
use crate::core::feature::{BoxFuture, CliCtx, Feature, Routes, StartCtx};
use crate::core::log::Committed;
use crate::core::migrate::Migration;
use crate::core::store::{Db, StoreError};
pub use api::api_routes;
use destination::{Destination, DestinationInput};
use store::Source;

/// The `[relay]` section of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Allow destinations on loopback, private (10/8, 172.16/12, 192.168/16,
    /// fc00::/7) and link-local addresses. Off by default so an API caller
    /// cannot make tillgate post into the network it sits in; turn it on for
    /// the usual case of consumers on the restaurant LAN.
    pub allow_private_destinations: Option<bool>,
    /// Per-request timeout in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
    /// Waits between retries in milliseconds; the last one repeats. Each wait
    /// gets ±25 % jitter and is never shorter than a `Retry-After`.
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// A destination failing for longer than this (milliseconds) is paused
    /// and reported (default 6 hours).
    pub pause_after_ms: Option<u64>,
    /// Events read from the log per step (default 256).
    pub batch: Option<i64>,
    /// Longest time a delivered cursor stays unstored while busy
    /// (milliseconds, default 1000). Each store is a synced commit on the
    /// one SQLite writer ingest also needs; a crash re-sends at most this
    /// much (receivers dedupe on `webhook-id`).
    pub cursor_flush_ms: Option<u64>,
    #[serde(default)]
    pub destinations: Vec<DestinationInput>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_private_destinations: bool,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub pause_after: Duration,
    pub batch: i64,
    pub flush_interval: Duration,
    /// Destinations from the config file.
    pub destinations: Vec<Destination>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private_destinations: false,
            timeout: Duration::from_secs(10),
            retry_schedule: [1_000, 5_000, 30_000, 120_000, 300_000, 900_000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            pause_after: Duration::from_secs(6 * 3600),
            batch: 256,
            flush_interval: Duration::from_millis(1000),
            destinations: Vec::new(),
        }
    }
}

pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let allow = file.allow_private_destinations.unwrap_or(false);
    let timeout = match file.timeout_ms {
        None => d.timeout,
        Some(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(ConfigError::invalid(
                "relay.timeout_ms",
                "must be between 1 and 600000",
            ));
        }
    };
    let retry_schedule = match file.retry_schedule_ms {
        None => d.retry_schedule,
        Some(v) if v.is_empty() => {
            return Err(ConfigError::invalid(
                "relay.retry_schedule_ms",
                "must list at least one wait",
            ));
        }
        Some(v) if v.iter().any(|&ms| ms > 86_400_000) => {
            return Err(ConfigError::invalid(
                "relay.retry_schedule_ms",
                "each wait must be at most 86400000 (a day)",
            ));
        }
        Some(v) => v.into_iter().map(Duration::from_millis).collect(),
    };
    let pause_after = match file.pause_after_ms {
        None => d.pause_after,
        Some(0) => {
            return Err(ConfigError::invalid(
                "relay.pause_after_ms",
                "must be more than 0",
            ));
        }
        Some(ms) => Duration::from_millis(ms),
    };
    let batch = file.batch.unwrap_or(d.batch);
    if !(1..=10_000).contains(&batch) {
        return Err(ConfigError::invalid(
            "relay.batch",
            "must be between 1 and 10000",
        ));
    }
    let flush_interval = match file.cursor_flush_ms {
        None => d.flush_interval,
        Some(ms) if ms <= 60_000 => Duration::from_millis(ms),
        Some(_) => {
            return Err(ConfigError::invalid(
                "relay.cursor_flush_ms",
                "must be at most 60000",
            ));
        }
    };
    let mut destinations: Vec<Destination> = Vec::new();
    for (i, input) in file.destinations.into_iter().enumerate() {
        let setting = format!("relay.destinations[{i}]");
        if input.id.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(
                &setting,
                "needs an `id` (the key of its cursor; keep it stable)",
            ));
        }
        let expanded = destination::expand(input, timeout, allow)
            .map_err(|e| ConfigError::invalid(&setting, e.to_string()))?;
        for dest in expanded {
            if destinations.iter().any(|d| d.id == dest.id) {
                return Err(ConfigError::invalid(
                    &setting,
                    format!("destination id {:?} is used twice", dest.id),
                ));
            }
            destinations.push(dest);
        }
    }
    Ok(Settings {
        allow_private_destinations: allow,
        timeout,
        retry_schedule,
        pause_after,
        batch,
        flush_interval,
        destinations,
    })
}

/// What request handlers need from this feature at run time.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Service>,
}

/// The running relay: one worker per enabled, unpaused destination.
pub struct Service {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub client: reqwest::Client,
    committed: watch::Receiver<Committed>,
    bus: Bus,
    shutdown: CancellationToken,
    /// The runtimes delivery workers run on, taken in turn (see
    /// [`crate::workers`]).
    runtimes: Vec<tokio::runtime::Handle>,
    next_runtime: std::sync::atomic::AtomicUsize,
    /// Held for every change to a destination, so a change never races a
    /// running worker's cursor: the worker is stopped, the change stored,
    /// the worker started again.
    workers: Mutex<HashMap<String, Running>>,
}

pub(crate) struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    pub fn relay(&self) -> &Service {
        &self.inner
    }
}

impl Service {
    /// Locks the worker table; callers stop and restart workers under it.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.workers.lock().await
    }

    /// Stops `id`'s worker (which stores its cursor) and waits for it.
    pub(crate) async fn stop_worker(map: &mut HashMap<String, Running>, id: &str) {
        if let Some(r) = map.remove(id) {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }

    /// Starts `id`'s worker from what storage says, if enabled and unpaused.
    pub(crate) async fn start_worker(
        &self,
        map: &mut HashMap<String, Running>,
        id: &str,
    ) -> Result<(), StoreError> {
        let Some(stored) = store::get(&self.db, id).await? else {
            return Ok(());
        };
        let dest = match destination::validate_one(
            stored.input.clone(),
            self.settings.timeout,
            self.settings.allow_private_destinations,
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(destination = %id, error = %e, "stored relay destination is no longer valid; not started");
                return Ok(());
            }
        };
        if !dest.enabled {
            return Ok(());
        }
        let w = worker::Worker::new(
            Arc::new(dest),
            self.db.clone(),
            self.client.clone(),
            self.settings.clone(),
            self.bus.clone(),
            self.committed.clone(),
            stored.paused,
        )
        .await?;
        let stop = self.shutdown.child_token();
        let i = self
            .next_runtime
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task = self.runtimes[i % self.runtimes.len()].spawn(w.run(stop.clone()));
        map.insert(id.to_string(), Running { stop, task });
        Ok(())
    }
}

/// The relay feature: destinations, their workers, the API and CLI.
pub struct Relay;

impl Feature for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn settings(
        &self,
        section: crate::core::config::SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError> {
        let file: FileSection = section.parse()?;
        Ok(Some(Box::new(validate(file)?)))
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![crate::migration!("0004_relay")]
    }

    fn start<'a>(&'a self, ctx: &'a mut StartCtx) -> BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let handle = start(ctx).await?;
            Ok(Routes {
                operator: api_routes().with_state(handle),
                ..Routes::default()
            })
        })
    }

    fn command(&self) -> Option<clap::Command> {
        use clap::Args;
        Some(
            CliArgs::augment_args(clap::Command::new("relay"))
                .about("Relay destinations: replay")
                .subcommand_required(true),
        )
    }

    fn run_command<'a>(
        &'a self,
        m: &'a clap::ArgMatches,
        _ctx: &'a CliCtx,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            use clap::FromArgMatches;
            run_cli(CliArgs::from_arg_matches(m)?).await
        })
    }
}

/// Starts the feature's workers.
pub async fn start(ctx: &mut StartCtx) -> anyhow::Result<Handle> {
    let settings = Arc::new(ctx.config.section::<Settings>());
    let db = ctx.db.clone();
    // The config file is the truth for its destinations: store them, and
    // drop config-made ones that are no longer in the file.
    let existing = store::list(&db).await?;
    for d in &settings.destinations {
        if existing
            .iter()
            .any(|e| e.id == d.id && e.source == Source::Api)
        {
            anyhow::bail!(
                "relay destination id {:?} in the config file is already used by a destination created through the API; rename one of them",
                d.id
            );
        }
        store::upsert(&db, &d.id, Source::Config, &d.input).await?;
        if let Err(e) =
            destination::check_resolved(&d.url, settings.allow_private_destinations).await
        {
            // Not fatal: DNS may be down at start; the delivery client's
            // resolver applies the same rule at every connection.
            tracing::warn!(destination = %d.id, error = %e, "relay destination check");
        }
    }
    for e in existing.iter().filter(|e| e.source == Source::Config) {
        if !settings.destinations.iter().any(|d| d.id == e.id) {
            tracing::info!(destination = %e.id, "relay destination removed from the config file; deleting it");
            store::delete(&db, &e.id).await?;
        }
    }
    let relay = Arc::new(Service {
        db: db.clone(),
        client: worker::client(settings.allow_private_destinations),
        settings,
        committed: ctx.log.subscribe(),
        bus: ctx.bus.clone(),
        shutdown: ctx.shutdown.clone(),
        runtimes: ctx.runtimes.delivery_handles(),
        next_runtime: Default::default(),
        workers: Mutex::new(HashMap::new()),
    });
    {
        let mut map = relay.lock().await;
        for d in store::list(&db).await? {
            relay.start_worker(&mut map, &d.id).await?;
        }
    }
    // Waits for every worker (including ones the API started later) at
    // shutdown, so `run` closes storage only after their cursors are stored.
    let r = relay.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.runtimes.spawn(async move {
        shutdown.cancelled().await;
        let mut map = r.lock().await;
        let ids: Vec<String> = map.keys().cloned().collect();
        for id in ids {
            Service::stop_worker(&mut map, &id).await;
        }
    });
    Ok(Handle { inner: relay })
}

/// `tillgate relay ...` command-line arguments.
#[derive(clap::Args, Debug)]
pub struct CliArgs {
    #[command(subcommand)]
    pub command: RelayCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum RelayCommand {
    /// Re-send events to one destination from an offset or a time, through
    /// the running server's API.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_offset", "from_time"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
    /// Destination id.
    #[arg(long)]
    pub destination: String,
    /// First log offset to send again.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Send again every event received at or after this RFC 3339 time.
    #[arg(long)]
    pub from_time: Option<String>,
    /// Server base URL [default: http://<listen> from the config].
    #[arg(long)]
    pub server: Option<String>,
}

pub async fn run_cli(args: CliArgs) -> anyhow::Result<()> {
    match args.command {
        RelayCommand::Replay(a) => {
            let out = replay_via_api(&a).await?;
            println!("{out}");
            Ok(())
        }
    }
}

/// The replay CLI talks to the running server rather than to storage: the
/// server's worker holds the destination's cursor in memory, so only it can
/// move the cursor safely while running.
pub async fn replay_via_api(a: &ReplayArgs) -> anyhow::Result<String> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    let config = crate::app::load_config(&a.opts)?;
    let base = match &a.server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            format!("http://{addr}")
        }
    };
    let body = match (&a.from_offset, &a.from_time) {
        (Some(o), _) => serde_json::json!({ "from_offset": o }),
        (None, Some(t)) => serde_json::json!({ "from_time": t }),
        (None, None) => anyhow::bail!("give --from-offset or --from-time"),
    };
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/destinations/{}/replay", a.destination))
        .json(&body);
    if let Some(t) = &config.api_token {
        req = req.bearer_auth(t.expose_secret());
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach tillgate at {base}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        anyhow::bail!("replay refused ({status}): {msg}");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let f: FileSection = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        validate(f)
    }

    #[test]
    fn config_example_parses() {
        let s = parse(
            r#"
allow_private_destinations = true
timeout_ms = 5000
retry_schedule_ms = [10, 20]
[[destinations]]
id = "kds"
url = "http://10.0.0.5:11010/api/v4/kds/events;http://10.0.0.6:11010/api/v4/kds/events"
situations = [11, 3]
[[destinations]]
id = "dwh"
url = "https://u:pw9@dwh.example.com/in?key=q7"
format = "json"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
headers = { "X-Api-Key" = "k" }
in_flight = 8
"#,
        )
        .unwrap();
        let ids: Vec<_> = s.destinations.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["kds-1", "kds-2", "dwh"]);
        assert_eq!(
            s.retry_schedule,
            [Duration::from_millis(10), Duration::from_millis(20)]
        );
        let dbg = format!("{s:?}");
        for leak in ["MfKQ9r8", "pw9", "q7", "\"k\""] {
            assert!(!dbg.contains(leak), "{leak} in Debug: {dbg}");
        }
    }

    #[test]
    fn broken_config_is_named() {
        let e = parse("[[destinations]]\nurl = \"http://10.0.0.1/\"").unwrap_err();
        assert!(e.to_string().contains("needs an `id`"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://10.0.0.1/\"").unwrap_err();
        assert!(e.to_string().contains("allow_private_destinations"), "{e}");
        assert!(e.to_string().contains("relay.destinations[0]"), "{e}");
        let e =
            parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nsecrt = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"nope\"").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nsecret = \"abc\"")
            .unwrap_err();
        assert!(e.to_string().contains("whsec_"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\n[[destinations]]\nid = \"a\"\nurl = \"http://g/\"").unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nformat = \"yaml\"")
            .unwrap_err();
        assert!(e.to_string().contains("yaml"), "{e}");
        let e = parse("retry_schedule_ms = []").unwrap_err();
        assert!(e.to_string().contains("relay.retry_schedule_ms"), "{e}");
        let e = parse("timeout_ms = 0").unwrap_err();
        assert!(e.to_string().contains("relay.timeout_ms"), "{e}");
    }
}
