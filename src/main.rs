//! The `tillgate` binary: parse the command line, set up tracing, hand over
//! to the library (`tillgate::app`) or to the tools that are not part of the
//! server: the cash-server emulator (`tillgate simulate`) and the load
//! benchmarks (`tillgate bench`, `tillgate relay bench`, `tillgate loyalty
//! bench`).

mod bench;
mod service;

/// mimalloc rather than glibc's allocator: under load the server frees
/// many small allocations on other threads than made them (a parsed event
/// is made by an HTTP handler and freed when the log's tail lets go of it),
/// and glibc's malloc then spent a sixth of the server's CPU in its own
/// bookkeeping (`malloc_consolidate`, `unlink_chunk`; perf, docs/benchmarks.md).
#[cfg(unix)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Args, FromArgMatches};

fn command() -> clap::Command {
    tillgate::app::cli::command()
        .subcommand(service::command())
        .subcommand(
            tillgate_simulate::SimulateArgs::augment_args(clap::Command::new("simulate"))
                .about("Play one or more r_keeper cash servers sending notify events"),
        )
        .subcommand(
            bench::ingest::BenchArgs::augment_args(clap::Command::new("bench"))
                .about("Load benchmark of the ingest path against a do-nothing HTTP server"),
        )
        .mut_subcommand("relay", |c| {
            c.subcommand(
                bench::relay::BenchArgs::augment_args(clap::Command::new("bench"))
                    .about("End-to-end relay benchmark against local receivers"),
            )
        })
        .mut_subcommand("backoffice", |c| {
            c.subcommand(
                bench::backoffice::BenchArgs::augment_args(clap::Command::new("bench"))
                    .about("Load benchmark: receipts journaled from concurrent registers"),
            )
        })
        .mut_subcommand("loyalty", |c| {
            c.subcommand(
                bench::loyalty::BenchArgs::augment_args(clap::Command::new("bench"))
                    .about("Load benchmark: purchase flows with concurrent registers"),
            )
        })
}

async fn dispatch(m: clap::ArgMatches) -> anyhow::Result<()> {
    match m.subcommand() {
        Some(("simulate", s)) => {
            tillgate_simulate::run_cli(tillgate_simulate::SimulateArgs::from_arg_matches(s)?).await
        }
        Some(("bench", s)) => {
            bench::ingest::run_cli(bench::ingest::BenchArgs::from_arg_matches(s)?).await
        }
        Some(("relay", r)) if r.subcommand_name() == Some("bench") => {
            let (_, s) = r.subcommand().expect("named above");
            bench::relay::run(bench::relay::BenchArgs::from_arg_matches(s)?).await
        }
        Some(("loyalty", l)) if l.subcommand_name() == Some("bench") => {
            let (_, s) = l.subcommand().expect("named above");
            let opts = tillgate::core::config::ServerOpts::from_arg_matches(l)?;
            bench::loyalty::run(opts, bench::loyalty::BenchArgs::from_arg_matches(s)?).await
        }
        Some(("backoffice", l)) if l.subcommand_name() == Some("bench") => {
            let (_, s) = l.subcommand().expect("named above");
            let opts = tillgate::core::config::ServerOpts::from_arg_matches(l)?;
            bench::backoffice::run(opts, bench::backoffice::BenchArgs::from_arg_matches(s)?).await
        }
        _ => match tillgate::app::cli::dispatch(&m).await {
            Some(r) => r,
            None => anyhow::bail!("unknown command"),
        },
    }
}

fn main() -> ExitCode {
    // `TILLGATE_ARGS_CHECK=1 tillgate ...` only parses the command line and
    // says whether it would run: the test that every documented command is
    // accepted (tests/it/docs.rs) uses it, so it checks this binary's own
    // parser without starting anything.
    if std::env::var_os("TILLGATE_ARGS_CHECK").is_some() {
        return match command().try_get_matches_from(std::env::args_os()) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) if !e.use_stderr() => ExitCode::SUCCESS,
            Err(e) => {
                let _ = e.print();
                ExitCode::from(2)
            }
        };
    }
    let matches = command().get_matches();
    if let Some(("service", s)) = matches.subcommand() {
        return service::main(s);
    }
    tillgate::core::telemetry::init_tracing();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
