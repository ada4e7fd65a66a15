//! `tillgate loyalty ...`: the operator's command line. It works on the
//! storage directly (same config as `serve`), so it needs no running server.

use std::path::PathBuf;

use crate::core::feature::CliCtx;
use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::operator::{self, Adjustment, NewCard, NewRegister};

/// `tillgate loyalty` command-line arguments.
#[derive(Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: crate::core::config::ServerOpts,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Register a cash register (or set its new password). The password is
    /// read from TILLGATE_REGISTER_PASSWORD or the first line of stdin.
    RegisterAdd {
        id: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List registers.
    Registers,
    /// Issue a card to a holder (a known phone joins the existing holder).
    CardIssue {
        number: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        barcode: Option<String>,
        #[arg(long)]
        track: Option<String>,
        /// Issue not activated: it may earn but not spend.
        #[arg(long)]
        inactive: bool,
    },
    /// Block a card.
    CardBlock { number: String },
    /// Activate a card (also unblocks).
    CardActivate { number: String },
    /// Correct a balance by a ledger entry (kopecks; negative takes away).
    Adjust {
        number: String,
        #[arg(long, allow_negative_numbers = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
    },
    /// Show a card, its ledger and operations as JSON.
    History { number: String },
    /// Import the product catalogue from a CSV or JSON file.
    ImportCatalog {
        file: PathBuf,
        /// csv or json; by default from the file extension.
        #[arg(long)]
        format: Option<String>,
    },
}

fn read_password() -> anyhow::Result<SecretString> {
    if let Ok(p) = std::env::var("TILLGATE_REGISTER_PASSWORD") {
        return Ok(SecretString::from(p));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

pub async fn run_cli(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<()> {
    let config = ctx.load(&args.opts)?;
    let db = ctx.open(&config).await?;
    let settings = &config.section::<super::Settings>();
    let result = match args.command {
        Cmd::RegisterAdd { id, description } => {
            let password = read_password()?;
            operator::put_register(
                &db,
                &NewRegister {
                    id: id.clone(),
                    password,
                    description,
                },
            )
            .await?;
            println!("register {id} registered");
            Ok(())
        }
        Cmd::Registers => {
            println!(
                "{}",
                serde_json::to_string_pretty(&operator::list_registers(&db).await?)?
            );
            Ok(())
        }
        Cmd::CardIssue {
            number,
            name,
            phone,
            barcode,
            track,
            inactive,
        } => {
            operator::issue_card(
                &db,
                &NewCard {
                    number: number.clone(),
                    holder_name: name,
                    phone,
                    barcode,
                    track,
                    state: Some(if inactive { "inactive" } else { "active" }.into()),
                },
            )
            .await?;
            println!("card {number} issued");
            Ok(())
        }
        Cmd::CardBlock { number } => operator::set_state(&db, &number, "blocked")
            .await
            .map_err(Into::into),
        Cmd::CardActivate { number } => operator::set_state(&db, &number, "active")
            .await
            .map_err(Into::into),
        Cmd::Adjust {
            number,
            amount,
            reason,
            by,
        } => {
            let b = operator::adjust(&db, settings, &number, &Adjustment { amount, reason, by })
                .await?;
            println!("card {number}: balance {b}");
            Ok(())
        }
        Cmd::History { number } => {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &operator::card_history(&db, settings, &number).await?
                )?
            );
            Ok(())
        }
        Cmd::ImportCatalog { file, format } => import_catalog(&db, &file, format.as_deref()).await,
    };
    db.close().await;
    result
}

async fn import_catalog(
    db: &crate::core::store::Db,
    file: &std::path::Path,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let products = match format.or(ext.as_deref()) {
        Some("csv") => super::catalog::from_csv(&text),
        Some("json") => super::catalog::from_json(&text),
        other => anyhow::bail!(
            "{}: unknown catalogue format {other:?}; use --format csv or json",
            file.display()
        ),
    }
    .with_context(|| format!("{}", file.display()))?;
    let n = super::catalog::store(db, &products).await?;
    println!("imported {n} products");
    Ok(())
}
