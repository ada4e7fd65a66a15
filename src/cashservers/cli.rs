//! `tillgate rk7 ...`: cash servers, their subscriptions and backfill. The
//! commands go through the running server's operator API: only the server's
//! log writer may append (backfill), and one code path serves both the API
//! and the command line.

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::core::config::ServerOpts;
use crate::core::feature::CliCtx;

#[derive(clap::Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
    /// Server base URL [default: http://<listen> from the config].
    #[arg(long, global = true)]
    pub server: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// A cash server's notify subscriptions (r_keeper 7.6.5.440 and later).
    #[command(subcommand)]
    Subscriptions(Subs),
    /// Ask a cash server for the orders tillgate missed and append them.
    Backfill {
        #[arg(long, value_name = "NAME")]
        cash_server: String,
        /// Cash-server local time (2026-11-02T12:00:00 or 2026-11-02):
        /// orders finished before it are left alone.
        #[arg(long, value_parser = parse_since)]
        since: Option<String>,
    },
    /// The cash servers tillgate may talk to.
    #[command(subcommand)]
    CashServers(Servers),
}

#[derive(clap::Subcommand, Debug)]
pub enum Subs {
    /// Show where the cash server sends its events (and what it answered).
    List {
        #[arg(long, value_name = "NAME")]
        cash_server: String,
    },
    /// Add a destination.
    Add {
        #[arg(long, value_name = "NAME")]
        cash_server: String,
        #[arg(long)]
        url: String,
    },
    /// Remove a destination.
    Remove {
        #[arg(long, value_name = "NAME")]
        cash_server: String,
        #[arg(long)]
        url: String,
    },
    /// Point the cash server at tillgate only: add tillgate's ingest URL,
    /// remove the others (or those given with --remove), check an event
    /// arrives.
    Repoint {
        #[arg(long, value_name = "NAME")]
        cash_server: String,
        /// tillgate's ingest URL as the cash server reaches it [default:
        /// [rk7] ingest_url].
        #[arg(long)]
        ingest_url: Option<String>,
        /// Remove only these addresses (repeatable).
        #[arg(long)]
        remove: Vec<String>,
        /// Seconds to wait for an event after the change.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
        wait_secs: u64,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum Servers {
    /// The configured and added cash servers (never their passwords).
    List,
    /// Add (or replace) a cash server; the password is read from the
    /// environment variable TILLGATE_RK7_PASSWORD so it stays out of the
    /// shell history.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        user: String,
        #[arg(long, env = "TILLGATE_RK7_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        rest_code: Option<String>,
        #[arg(long)]
        tls_fingerprint: Option<String>,
        #[arg(long)]
        insecure_tls: bool,
    },
}

fn parse_since(s: &str) -> Result<String, String> {
    super::backfill::parse_since(s).map(|_| s.to_string())
}

/// Runs the command and prints the server's answer.
pub async fn run_cli(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<()> {
    let out = run(args, ctx).await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Runs the command; the server's JSON answer.
pub async fn run(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<Value> {
    let (method, path, body) = match args.command {
        Command::Subscriptions(s) => {
            let (name, body) = match s {
                Subs::List { cash_server } => (cash_server, json!({"action": "list"})),
                Subs::Add { cash_server, url } => {
                    (cash_server, json!({"action": "add", "url": url}))
                }
                Subs::Remove { cash_server, url } => {
                    (cash_server, json!({"action": "remove", "url": url}))
                }
                Subs::Repoint {
                    cash_server,
                    ingest_url,
                    remove,
                    wait_secs,
                } => (
                    cash_server,
                    json!({
                        "action": "repoint",
                        "ingest_url": ingest_url,
                        "remove": (!remove.is_empty()).then_some(remove),
                        "wait_secs": wait_secs,
                    }),
                ),
            };
            (
                reqwest::Method::POST,
                format!("/api/cash-servers/{name}/subscriptions"),
                Some(body),
            )
        }
        Command::Backfill { cash_server, since } => (
            reqwest::Method::POST,
            format!("/api/cash-servers/{cash_server}/backfill"),
            Some(json!({ "since": since })),
        ),
        Command::CashServers(Servers::List) => (
            reqwest::Method::GET,
            "/api/cash-servers/configured".to_string(),
            None,
        ),
        Command::CashServers(Servers::Add {
            name,
            url,
            user,
            password,
            rest_code,
            tls_fingerprint,
            insecure_tls,
        }) => (
            reqwest::Method::POST,
            "/api/cash-servers".to_string(),
            Some(json!({
                "name": name, "url": url, "user": user, "password": password,
                "rest_code": rest_code, "tls_fingerprint": tls_fingerprint,
                "insecure_tls": insecure_tls.then_some(true),
            })),
        ),
    };
    let config = ctx.load(&args.opts)?;
    let base = crate::core::operator_url::operator_base(&config, args.server.as_deref());
    // Repoint waits for an event; give it room beyond its own wait.
    let mut req = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(400))
        .build()?
        .request(method, format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = &config.api_token {
        req = req.bearer_auth(t.expose_secret());
    }
    let resp = req.send().await.with_context(|| {
        format!("cannot reach tillgate at {base} (is `tillgate serve` running?)")
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let msg = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        anyhow::bail!("{status}: {msg}");
    }
    if let Some(e) = value.get("error").filter(|e| !e.is_null()) {
        anyhow::bail!(
            "{}; state left: {}",
            e["what"].as_str().unwrap_or_default(),
            value["state"].as_str().unwrap_or_default()
        );
    }
    Ok(value)
}
