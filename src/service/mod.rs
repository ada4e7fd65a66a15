//! `tillgate service`: run tillgate as a Windows service, next to the
//! r_keeper cash server, the way the agents it replaces were installed.
//!
//! `install` registers the service (start with Windows, restart on
//! failure), `start`/`stop`/`status`/`uninstall` drive it through the
//! service control manager, and the hidden `run` is what the manager
//! starts. A stop request takes the same path as Ctrl+C or SIGTERM
//! (`app::cli::begin_shutdown`): nothing acknowledged is lost. On other
//! systems the subcommand exists and says it is Windows-only, so a script
//! or a habit gets a clear answer instead of "unknown command".

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{FromArgMatches, Subcommand};

#[cfg(windows)]
mod logging;
#[cfg(windows)]
mod run;
#[cfg(windows)]
mod scm;

/// The service's name unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "tillgate";

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ServiceCmd {
    /// Register the Windows service: starts with Windows, restarts on failure
    Install {
        /// Config file the service runs with (made absolute: a service starts in System32)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        name: NameArg,
    },
    /// Stop (if running) and remove the Windows service
    Uninstall {
        #[command(flatten)]
        name: NameArg,
    },
    /// Start the installed service and wait until it runs
    Start {
        #[command(flatten)]
        name: NameArg,
    },
    /// Stop the service gracefully (as Ctrl+C does) and wait until it stopped
    Stop {
        #[command(flatten)]
        name: NameArg,
    },
    /// Print the service's state
    Status {
        #[command(flatten)]
        name: NameArg,
    },
    /// What the service control manager starts; not for a terminal
    #[command(hide = true)]
    Run {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        name: NameArg,
    },
}

/// `--name`: several tillgates on one machine need distinct service names.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct NameArg {
    /// Service name
    #[arg(long, default_value = DEFAULT_NAME, value_parser = parse_name)]
    pub name: String,
}

/// The service control manager refuses `/` and `\` in names and limits
/// them to 256 characters: refuse them here, with the reason.
fn parse_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a service name must not be empty".into());
    }
    if s.contains(['/', '\\']) {
        return Err("a service name must not contain / or \\".into());
    }
    if s.chars().count() > 256 {
        return Err("a service name has at most 256 characters".into());
    }
    Ok(s.to_string())
}

/// `tillgate service` with its subcommands.
pub fn command() -> clap::Command {
    ServiceCmd::augment_subcommands(clap::Command::new("service"))
        .about("Windows service: install, uninstall, start, stop, status (Windows only)")
        .subcommand_required(true)
        .arg_required_else_help(true)
}

/// Runs `tillgate service ...`. Called before the async runtime and the
/// terminal's tracing are set up: the service's own `run` needs neither
/// (it logs to a file and the event log, and builds its runtime on the
/// thread the service control manager gives it).
pub fn main(m: &clap::ArgMatches) -> ExitCode {
    let cmd = match ServiceCmd::from_arg_matches(m) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match dispatch(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(windows)]
fn dispatch(cmd: ServiceCmd) -> anyhow::Result<()> {
    if !matches!(cmd, ServiceCmd::Run { .. }) {
        tillgate::core::telemetry::init_tracing();
    }
    match cmd {
        ServiceCmd::Install { config, name } => scm::install(&name.name, config.as_deref()),
        ServiceCmd::Uninstall { name } => scm::uninstall(&name.name),
        ServiceCmd::Start { name } => scm::start(&name.name),
        ServiceCmd::Stop { name } => scm::stop(&name.name),
        ServiceCmd::Status { name } => scm::status(&name.name),
        ServiceCmd::Run { config, name } => run::run(name.name, config),
    }
}

#[cfg(not(windows))]
fn dispatch(_cmd: ServiceCmd) -> anyhow::Result<()> {
    anyhow::bail!("{}", NOT_WINDOWS)
}

/// What `tillgate service` says off Windows.
#[cfg(not(windows))]
pub const NOT_WINDOWS: &str = "`tillgate service` manages a Windows service and works only on \
     Windows. On Linux install the .deb package, which runs tillgate under systemd \
     (`systemctl status tillgate`), or run `tillgate serve` (docs/install.md).";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServiceCmd, clap::Error> {
        let m = command()
            .try_get_matches_from(std::iter::once("service").chain(args.iter().copied()))?;
        ServiceCmd::from_arg_matches(&m)
    }

    #[test]
    fn subcommands_parse_with_the_default_name() {
        assert_eq!(
            parse(&["install", "--config", "C:\\tg\\tillgate.toml"]).unwrap(),
            ServiceCmd::Install {
                config: Some(PathBuf::from("C:\\tg\\tillgate.toml")),
                name: NameArg {
                    name: "tillgate".into()
                }
            }
        );
        for sub in ["uninstall", "start", "stop", "status"] {
            let c = parse(&[sub, "--name", "tillgate-2"]).unwrap();
            assert!(format!("{c:?}").contains("tillgate-2"), "{c:?}");
        }
        command().debug_assert();
    }

    #[test]
    fn broken_names_and_commands_are_refused_with_the_reason() {
        let e = parse(&["start", "--name", "a\\b"]).unwrap_err().to_string();
        assert!(e.contains("must not contain"), "{e}");
        let e = parse(&["start", "--name", " "]).unwrap_err().to_string();
        assert!(e.contains("must not be empty"), "{e}");
        let long = "x".repeat(257);
        let e = parse(&["start", "--name", &long]).unwrap_err().to_string();
        assert!(e.contains("256"), "{e}");
        assert!(parse(&["restart"]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&["install", "--nope"]).is_err());
    }

    #[cfg(not(windows))]
    #[test]
    fn off_windows_every_subcommand_says_it_is_windows_only() {
        for sub in ["install", "uninstall", "start", "stop", "status", "run"] {
            let e = dispatch(parse(&[sub]).unwrap()).unwrap_err().to_string();
            assert!(e.contains("works only on Windows"), "{sub}: {e}");
            assert!(e.contains("systemd"), "{sub}: {e}");
        }
    }
}
