//! `tillgate backoffice ...`: stock documents, the resync document, stock
//! and reports from the command line. It works on the storage directly
//! (same config as `serve`), so it needs no running server; a running
//! server's loyalty owner sees the file changed and reloads.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::reports::{self, By, Filter};
use super::resync::{self, Poster, ResyncRequest};
use crate::core::feature::CliCtx;

#[derive(Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: crate::core::config::ServerOpts,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Recompute accumulations and bonus from the journal and the ledger.
    Resync {
        /// Card numbers, comma separated; every card when left out.
        #[arg(long, value_delimiter = ',')]
        cards: Option<Vec<String>>,
        /// Run even while card operations are switched on.
        #[arg(long)]
        force: bool,
    },
    /// Import arrivals, write-offs and counts from a CSV or JSON file.
    Import {
        file: PathBuf,
        /// The document's name (taken once); the file name by default.
        #[arg(long)]
        document: Option<String>,
        /// csv or json; by default from the file extension.
        #[arg(long)]
        format: Option<String>,
    },
    /// Current stock as JSON.
    Stock {
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        goods: Option<String>,
    },
    /// A sales report: by store, day, hour, goods, cashier or card.
    Report {
        #[arg(long)]
        by: String,
        #[arg(long)]
        store: Option<String>,
        /// Local time from (inclusive), `YYYY-MM-DD[THH:MM:SS]`.
        #[arg(long)]
        from: Option<String>,
        /// Local time to (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// json (default) or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

pub async fn run_cli(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<()> {
    let config = ctx.load(&args.opts)?;
    let db = ctx.open(&config).await?;
    let result = run_on(&db, &config, args.command).await;
    db.close().await;
    result
}

async fn run_on(
    db: &crate::core::store::Db,
    config: &crate::core::config::Config,
    cmd: Cmd,
) -> anyhow::Result<()> {
    let now = crate::core::clock::now_ms();
    match cmd {
        Cmd::Resync { cards, force } => {
            let settings = config.section::<crate::loyalty::Settings>();
            let req = ResyncRequest { cards, force };
            let doc = resync::run(db, &settings, &Poster::Tables, &req, now).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Cmd::Import {
            file,
            document,
            format,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let ext = file
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase());
            let Some(format) = format.or(ext) else {
                anyhow::bail!("{}: say --format csv or json", file.display());
            };
            let rows =
                super::import::parse(&format, &text).with_context(|| file.display().to_string())?;
            let document = document.unwrap_or_else(|| {
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let a = super::import::import(db, &document, &rows, now).await?;
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
        Cmd::Stock { store, goods } => {
            let rows = super::stock::current(db, store.as_deref(), goods.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Cmd::Report {
            by,
            store,
            from,
            to,
            format,
        } => {
            let by = By::parse(&by).with_context(|| {
                format!("--by {by:?}: use store, day, hour, goods, cashier or card")
            })?;
            let filter = Filter { store, from, to }
                .checked()
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let r = reports::report(db, by, &filter).await?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&r)?),
                "csv" => print!("{}", reports::to_csv(&r)),
                f => anyhow::bail!("--format {f:?}: use json or csv"),
            }
        }
    }
    Ok(())
}
