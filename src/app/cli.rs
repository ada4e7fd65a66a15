//! The command line: `tillgate serve` and each feature's subcommand.
//!
//! Flags override `TILLGATE_*` environment variables (clap merges those),
//! which override the config file, which overrides defaults. The command is
//! built from the feature list, so a feature's subcommand is registered
//! with the feature; the binary adds the tools that are not part of the
//! server (the emulator, the load benchmarks).

use clap::{ArgMatches, Args, FromArgMatches};
use tokio_util::sync::CancellationToken;

use crate::core::config::{Config, ServerOpts};
use crate::core::feature::CliCtx;

/// `tillgate serve`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
}

/// `tillgate --version`: what an integrator quotes in a support request.
/// The commit comes from `build.rs`; both storage backends are always built
/// in (sqlx's `sqlite` with the bundled SQLite, and `postgres`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("TILLGATE_GIT_COMMIT"),
    "\nstorage: sqlite (bundled), postgres"
);

/// `tillgate` with `serve` and every feature's subcommand.
pub fn command() -> clap::Command {
    let mut cmd = clap::Command::new("tillgate")
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(LONG_VERSION)
        .about("A hub between r_keeper cash servers and everything around them")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            ServeArgs::augment_args(clap::Command::new("serve"))
                .about("Run the server: ingest, event log, consumers and the operator API"),
        );
    cmd = cmd.subcommand(crate::console::cli::command());
    for f in super::features() {
        if let Some(c) = f.command() {
            cmd = cmd.subcommand(c);
        }
    }
    cmd.subcommand(crate::doctor::command())
}

/// Runs `serve` or a feature's subcommand; `None` when the subcommand is
/// none of those (the binary's own tools).
pub async fn dispatch(matches: &ArgMatches) -> Option<anyhow::Result<()>> {
    let (name, sub) = matches.subcommand()?;
    if name == "serve" {
        return Some(serve(sub).await);
    }
    if name == "doctor" {
        return Some(crate::doctor::run(sub).await);
    }
    let ctx = ctx();
    if name == "users" {
        let out = crate::console::cli::run(sub, &ctx, std::io::stdin().lock()).await;
        return Some(out.map(|o| println!("{o}")));
    }
    for f in super::features() {
        if f.name() == name && f.command().is_some() {
            return Some(f.run_command(sub, &ctx).await);
        }
    }
    None
}

/// What a feature's subcommand gets (also for tests that call a feature's
/// `run_cli` directly).
pub fn ctx() -> CliCtx {
    CliCtx {
        load_config: super::load_config,
        migrations: super::migrations(),
    }
}

async fn serve(m: &ArgMatches) -> anyhow::Result<()> {
    let args = ServeArgs::from_arg_matches(m)?;
    let config = super::load_config(&args.opts)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    serve_config(config, shutdown, || ()).await
}

/// Serves `config` until `shutdown` is cancelled: by a signal for
/// `tillgate serve`, by a stop request for the Windows service. Both then
/// take [`begin_shutdown`]'s one path. `listening` runs once the port is
/// bound (the service then reports "running").
pub async fn serve_config(
    config: Config,
    shutdown: CancellationToken,
    listening: impl FnOnce(),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(listen = %config.listen, "tillgate serving");
    listening();
    super::run(config, listener, shutdown).await
}

/// Cancels `token` on SIGINT or SIGTERM; on Windows on Ctrl+C, Ctrl+Break,
/// the console window closing or the machine shutting down.
pub async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
        match (ctrl_break(), ctrl_close(), ctrl_shutdown()) {
            (Ok(mut brk), Ok(mut close), Ok(mut off)) => tokio::select! {
                _ = ctrl_c => {},
                _ = brk.recv() => {},
                _ = close.recv() => {},
                _ = off.recv() => {},
            },
            _ => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(any(unix, windows)))]
    let _ = ctrl_c.await;
    begin_shutdown(&token);
}

/// The one way a server is asked to stop (signal, console, service stop):
/// stop accepting, commit what was received, stop consumers cleanly.
pub fn begin_shutdown(token: &CancellationToken) {
    tracing::info!("shutting down: no new requests; committing what was received");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_subcommand_is_listed_with_its_own_help() {
        let cmd = command();
        for name in ["serve", "relay", "alerts", "sms", "loyalty"] {
            let sub = cmd
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no `{name}` subcommand"));
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(
                !about.is_empty() && !about.starts_with('`'),
                "{name}: {about:?}"
            );
        }
        cmd.debug_assert();
    }

    #[test]
    fn version_names_the_commit_and_the_storage_backends() {
        let e = command()
            .try_get_matches_from(["tillgate", "--version"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
        let text = e.to_string();
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
        let commit = text
            .lines()
            .find_map(|l| l.strip_prefix("commit: "))
            .unwrap_or_else(|| panic!("no commit line: {text}"));
        assert!(!commit.trim().is_empty(), "{text}");
        assert!(
            text.contains("storage: sqlite (bundled), postgres"),
            "{text}"
        );
    }

    #[test]
    fn unknown_and_broken_commands_are_refused() {
        assert!(
            command()
                .try_get_matches_from(["tillgate", "serv"])
                .is_err()
        );
        assert!(command().try_get_matches_from(["tillgate"]).is_err());
        let e = command()
            .try_get_matches_from(["tillgate", "serve", "--nope"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--nope"), "{e}");
    }

    /// Issue 26: connection flags after the subcommand were refused.
    #[test]
    fn connection_flags_go_anywhere_on_the_line() {
        use clap::FromArgMatches;
        let m = command()
            .try_get_matches_from([
                "tillgate", "users", "add", "anna", "--role", "admin", "--config", "t.toml",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, users) = m.subcommand().unwrap();
        let args = crate::console::cli::UsersArgs::from_arg_matches(users).unwrap();
        assert_eq!(
            args.opts.config.as_deref(),
            Some(std::path::Path::new("t.toml"))
        );
        for line in [
            vec!["tillgate", "users", "--config", "t.toml", "list"],
            vec![
                "tillgate",
                "relay",
                "replay",
                "--destination",
                "d",
                "--from-offset",
                "1",
                "--data",
                "x",
            ],
            vec!["tillgate", "serve", "--listen", "127.0.0.1:1"],
        ] {
            assert!(command().try_get_matches_from(&line).is_ok(), "{line:?}");
        }
    }
}
