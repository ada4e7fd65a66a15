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
        /// The store it belongs to (new registers: `default`).
        #[arg(long)]
        store: Option<String>,
        /// No password (Kassir 5 allows none): only from the --from
        /// addresses, and `doctor` warns about it.
        #[arg(long, requires = "from")]
        no_password: bool,
        /// An address or network the register without a password calls
        /// from; repeat for more.
        #[arg(long = "from", value_name = "ADDR", requires = "no_password")]
        from: Vec<String>,
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
    /// Move a register to another store.
    RegisterStore { id: String, store: String },
    /// Switch discount or payment cards on or off for a store or a
    /// register (`inherit`: a register follows its store again).
    Switch {
        #[arg(
            long,
            conflicts_with = "register",
            required_unless_present = "register"
        )]
        store: Option<String>,
        #[arg(long)]
        register: Option<String>,
        #[arg(long, value_enum)]
        discount_cards: Option<OnOff>,
        #[arg(long, value_enum)]
        payment_cards: Option<OnOff>,
    },
    /// Show every switch, the stores where cards are on and the registers
    /// with offline operations queued.
    Switches,
    /// Register a cashier (or change one) with its card rights.
    CashierAdd {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        store: String,
        /// May apply a card to an open receipt.
        #[arg(long)]
        card_in_open_receipt: bool,
        /// May type a card number by hand.
        #[arg(long)]
        manual_card_entry: bool,
    },
    /// Remove a cashier.
    CashierRemove { id: String },
    /// List cashiers (of one store).
    Cashiers {
        #[arg(long)]
        store: Option<String>,
    },
    /// Issue a payment (gift) card with its nominal in kopecks.
    PaymentCardIssue {
        number: String,
        #[arg(long)]
        nominal: i64,
        /// Issue not activated: it cannot pay until activated.
        #[arg(long)]
        inactive: bool,
    },
    /// Top a payment card up (kopecks).
    PaymentCardTopUp {
        number: String,
        #[arg(long)]
        amount: i64,
        #[arg(long)]
        by: String,
    },
    /// Block a payment card.
    PaymentCardBlock { number: String },
    /// Activate a payment card (also unblocks).
    PaymentCardActivate { number: String },
    /// Show a payment card, its ledger and operations as JSON.
    PaymentCard { number: String },
    /// Import the product catalogue from a CSV or JSON file.
    ImportCatalog {
        file: PathBuf,
        /// csv or json; by default from the file extension.
        #[arg(long)]
        format: Option<String>,
    },
}

/// A switch as the command line says it.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OnOff {
    On,
    Off,
    /// Not set: a register follows its store, a store is on.
    Inherit,
}

impl OnOff {
    fn value(self) -> Option<bool> {
        match self {
            OnOff::On => Some(true),
            OnOff::Off => Some(false),
            OnOff::Inherit => None,
        }
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
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
        Cmd::RegisterAdd {
            id,
            description,
            store,
            no_password,
            from,
        } => {
            let password = if no_password {
                None
            } else {
                Some(read_password()?)
            };
            operator::put_register(
                &db,
                &NewRegister {
                    id: id.clone(),
                    password,
                    description,
                    store,
                    no_password,
                    allowed_from: from,
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
        Cmd::RegisterStore { id, store } => {
            super::shops::set_register_store(&db, &id, &store).await?;
            println!("register {id} is in store {store}");
            Ok(())
        }
        Cmd::Switch {
            store,
            register,
            discount_cards,
            payment_cards,
        } => {
            let change = super::switches::SwitchChange {
                discount_cards: discount_cards.map(OnOff::value),
                payment_cards: payment_cards.map(OnOff::value),
            };
            let (scope, id) = match (store, register) {
                (Some(s), _) => (super::switches::STORE, s),
                (None, Some(r)) => (super::switches::REGISTER, r),
                (None, None) => anyhow::bail!("say --store or --register"),
            };
            print_json(&super::shops::set_switches(&db, scope, &id, &change).await?)
        }
        Cmd::Switches => print_json(&super::shops::list_switches(&db).await?),
        Cmd::CashierAdd {
            id,
            name,
            store,
            card_in_open_receipt,
            manual_card_entry,
        } => {
            let c = super::cashiers::NewCashier {
                id: id.clone(),
                name,
                store,
                card_in_open_receipt,
                manual_card_entry,
            };
            super::shops::put_cashier(&db, &c).await?;
            println!("cashier {id} saved");
            Ok(())
        }
        Cmd::CashierRemove { id } => {
            super::shops::remove_cashier(&db, &id).await?;
            println!("cashier {id} removed");
            Ok(())
        }
        Cmd::Cashiers { store } => {
            print_json(&super::shops::list_cashiers(&db, store.as_deref()).await?)
        }
        Cmd::PaymentCardIssue {
            number,
            nominal,
            inactive,
        } => {
            let c = super::payment::decide_new_card(&number, nominal, inactive);
            super::payment::issue(&db, &c, "cli").await?;
            println!("payment card {number} issued with {nominal} kopecks");
            Ok(())
        }
        Cmd::PaymentCardTopUp { number, amount, by } => {
            let b = super::payment::top_up_by_operator(&db, &number, amount, &by).await?;
            println!("payment card {number}: balance {b}");
            Ok(())
        }
        Cmd::PaymentCardBlock { number } => super::payment::set_state(&db, &number, "blocked")
            .await
            .map_err(Into::into),
        Cmd::PaymentCardActivate { number } => super::payment::set_state(&db, &number, "active")
            .await
            .map_err(Into::into),
        Cmd::PaymentCard { number } => {
            print_json(&super::payment::api::card_view(&db, settings, &number).await?)
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
