//! `tillgate doctor`: one command that checks everything an integrator
//! would otherwise check by hand, and says in plain words what is wrong and
//! how to fix it: the config and storage; each cash server (reachable,
//! credentials, TLS as configured, version and subscription support, whether
//! it points at this tillgate, when its last event arrived); gaps and
//! quarantined bodies of the last day; consumers' lag; paused relay
//! destinations; the Telegram token and the sms.ru balance.
//!
//! It is app-level (it reads several features' public functions), registered
//! in `app::cli`. Exit status is non-zero when a check fails; `--json` for
//! machines.

mod checks;

use serde::Serialize;

use crate::core::config::ServerOpts;

pub use checks::check;

/// `tillgate doctor`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    /// Worth knowing, not wrong (an idle cash server, an insecure TLS
    /// setting someone asked for).
    Warn,
    Fail,
}

/// One check: what was looked at, what was found, and the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: impl Into<String>,
        level: Level,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            level,
            message: message.into(),
            fix,
        }
    }
    pub fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(name, Level::Ok, message, None)
    }
    pub fn warn(
        name: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(name, Level::Warn, message, Some(fix.into()))
    }
    pub fn fail(
        name: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(name, Level::Fail, message, Some(fix.into()))
    }
}

/// Every check's outcome.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub healthy: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.level == Level::Fail)
    }

    /// The report for a person: one line per check, the fix under it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            out.push_str(&format!("[{mark}] {}: {}\n", c.name, c.message));
            if let Some(f) = &c.fix
                && c.level != Level::Ok
            {
                out.push_str(&format!("       fix: {f}\n"));
            }
        }
        let fails = self.failures().count();
        out.push_str(&if fails == 0 {
            "all checks passed\n".to_string()
        } else {
            format!("{fails} check(s) failed\n")
        });
        out
    }
}

/// The `doctor` subcommand.
pub fn command() -> clap::Command {
    use clap::Args;
    DoctorArgs::augment_args(clap::Command::new("doctor"))
        .about("Check the config, storage, cash servers, gaps, consumers, relay, Telegram and sms.ru, with the fix for each problem")
}

/// Runs `tillgate doctor`; an error (non-zero exit) when a check failed.
pub async fn run(matches: &clap::ArgMatches) -> anyhow::Result<()> {
    use clap::FromArgMatches;
    let args = DoctorArgs::from_arg_matches(matches)?;
    let report = match crate::app::load_config(&args.opts) {
        Ok(config) => check(&config).await,
        Err(e) => Report {
            healthy: false,
            checks: vec![Check::fail(
                "config",
                e.to_string(),
                "correct the setting named above",
            )],
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if !report.healthy {
        anyhow::bail!("{} check(s) failed", report.failures().count());
    }
    Ok(())
}
