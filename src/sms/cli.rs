//! `tillgate sms ...`: what an owner asks without the server running (the
//! account balance, the QR menu's "check balance" button).

use super::api::pick_provider;
use super::{Settings, build_providers};
use crate::core::feature::CliCtx;
use crate::core::money::rub;

/// `tillgate sms ...` command-line arguments.
#[derive(clap::Args, Debug)]
pub struct CliArgs {
    #[command(flatten)]
    pub opts: crate::core::config::ServerOpts,
    #[command(subcommand)]
    pub command: SmsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SmsCommand {
    /// Ask the provider for the account balance (the "check balance" button).
    Balance {
        /// Provider name from [sms.providers]; default: the only one.
        #[arg(long)]
        provider: Option<String>,
    },
}

/// Runs one subcommand. Errors carry the provider's code and text, never
/// its token.
pub async fn run_cli(args: CliArgs, ctx: &CliCtx) -> anyhow::Result<()> {
    let config = ctx.load(&args.opts)?;
    match args.command {
        SmsCommand::Balance { provider } => {
            let providers = build_providers(&config.section::<Settings>());
            let (name, p) = pick_provider(&providers, provider.as_deref())
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let b = p
                .balance()
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            println!("{name}: {}", rub(b.kopecks));
            Ok(())
        }
    }
}
