//! `tillgate relay ...`: the command line. Replay goes through the running
//! server's API rather than to storage (see [`replay_via_api`]).

use crate::core::config::ServerOpts;

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

pub async fn run_cli(args: CliArgs, ctx: &crate::core::feature::CliCtx) -> anyhow::Result<()> {
    match args.command {
        RelayCommand::Replay(a) => {
            let out = replay_via_api(&a, ctx).await?;
            println!("{out}");
            Ok(())
        }
    }
}

/// The replay CLI talks to the running server rather than to storage: the
/// server's worker holds the destination's cursor in memory, so only it can
/// move the cursor safely while running.
pub async fn replay_via_api(
    a: &ReplayArgs,
    ctx: &crate::core::feature::CliCtx,
) -> anyhow::Result<String> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    let config = ctx.load(&a.opts)?;
    let base = crate::core::operator_url::operator_base(&config, a.server.as_deref());
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
