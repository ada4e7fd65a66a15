//! A small command line for the register side: check the connection, check
//! a card, send a sale (queued offline if tillgate is unreachable), flush
//! the offline queue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tillgate_loyalty_client::{Client, Identifier, Line, Purchase, PurchaseOutcome, Settings};

#[derive(Parser)]
#[command(
    name = "tillgate-loyalty-client",
    version,
    about = "Register side of tillgate loyalty"
)]
struct Cli {
    /// tillgate base URL.
    #[arg(long, env = "TILLGATE_LOYALTY_URL")]
    url: String,
    /// This register's id (HTTP Basic user).
    #[arg(long, env = "TILLGATE_LOYALTY_REGISTER")]
    register: String,
    #[arg(long, env = "TILLGATE_LOYALTY_PASSWORD", hide_env_values = true)]
    password: String,
    /// The offline queue file.
    #[arg(
        long,
        env = "TILLGATE_LOYALTY_QUEUE",
        default_value = "loyalty-queue.sqlite"
    )]
    queue: PathBuf,
    #[arg(long, default_value = "cli")]
    cashier: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check the connection: tillgate's time, this register's store, its
    /// switches and the cashiers' rights. Exit status 1 when refused.
    Ping,
    /// Balance of a card (any identifier).
    Balance {
        identifier: String,
        /// The number was typed, not scanned.
        #[arg(long)]
        typed: bool,
    },
    /// Sell one line and confirm it at once (queued to earn if offline).
    Sell {
        identifier: String,
        /// Kopecks.
        #[arg(long)]
        amount: i64,
        #[arg(long, default_value = "0")]
        goods_id: String,
        #[arg(long, default_value_t = 0)]
        bonus_spend: i64,
    },
    /// Send the offline queue.
    Flush,
    /// How many operations wait in the queue.
    Pending,
}

fn local_now() -> String {
    // The register's own clock, no zone, as the protocol wants.
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%dT%H:%M:%S")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00".into())
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::open(
        Settings {
            base_url: cli.url,
            register: cli.register,
            password: SecretString::from(cli.password),
            timeout: tillgate_loyalty_client::DEFAULT_TIMEOUT,
        },
        &cli.queue,
    )
    .await?;
    let op = || uuid::Uuid::new_v4().to_string();
    match cli.cmd {
        Cmd::Ping => {
            let v = client.ping().await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Cmd::Balance { identifier, typed } => {
            let id = Identifier::auto(identifier);
            let id = if typed { id.typed() } else { id.scanned() };
            let v = client
                .balance(&op(), &cli.cashier, &local_now(), &id)
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Cmd::Sell {
            identifier,
            amount,
            goods_id,
            bonus_spend,
        } => {
            let p = Purchase {
                operation_id: op(),
                cashier: cli.cashier.clone(),
                local_time: local_now(),
                identifier: Identifier::auto(identifier).scanned(),
                lines: vec![Line {
                    goods_id,
                    price: amount,
                    quantity: 1000,
                    amount,
                }],
                bonus_spend,
            };
            match client.purchase(&p).await? {
                PurchaseOutcome::Held(v) => {
                    let c = client
                        .confirm(&op(), &cli.cashier, &p.local_time, &p.operation_id)
                        .await?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"purchase": v, "confirm": c})
                        )?
                    );
                }
                PurchaseOutcome::Offline { message, .. } => println!("OFFLINE: {message}"),
            }
        }
        Cmd::Flush => {
            let r = client.flush().await?;
            println!(
                "sent {}, rejected {}, still queued {}",
                r.sent, r.rejected, r.left
            );
        }
        Cmd::Pending => println!("{}", client.pending().await?),
    }
    client.close().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
