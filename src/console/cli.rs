//! `tillgate users ...`: console accounts from the command line. The
//! first admin is made here (there is nobody yet to make them in the
//! console); the password is read from standard input, never from an
//! argument (which `ps` and the shell history would show).

use std::io::BufRead;

use clap::{Args, Subcommand};

use super::users::{self, User};
use crate::core::config::ServerOpts;
use crate::core::feature::CliCtx;

#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add an account; its password is read from standard input (one line).
    Add {
        name: String,
        /// admin, manager or viewer.
        #[arg(long)]
        role: String,
        /// A restaurant (RestCode) a manager or viewer may see; repeat for more.
        #[arg(long = "restaurant")]
        restaurants: Vec<String>,
    },
    /// List the accounts.
    List,
    /// Remove an account and sign it out.
    Remove { name: String },
    /// Let an account locked by failed sign-ins try again, from every
    /// address: the running servers apply it at the account's next attempt.
    Unlock { name: String },
}

/// `tillgate users`.
pub fn command() -> clap::Command {
    crate::core::feature::subcommand::<UsersArgs>(
        "users",
        "Console accounts: add, list, remove, unlock",
    )
    .unwrap_or_else(|| clap::Command::new("users"))
}

/// Runs `tillgate users ...`, reading a password from `stdin`.
pub async fn run(
    matches: &clap::ArgMatches,
    ctx: &CliCtx,
    stdin: impl BufRead,
) -> anyhow::Result<String> {
    use clap::FromArgMatches;
    let args = UsersArgs::from_arg_matches(matches)?;
    let config = ctx.load(&args.opts)?;
    let db = ctx.open(&config).await?;
    let out = match args.command {
        UsersCommand::Add {
            name,
            role,
            restaurants,
        } => {
            let role = users::check_new(&name, &role, &restaurants).map_err(anyhow::Error::msg)?;
            let password = stdin
                .lines()
                .next()
                .transpose()?
                .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
                .unwrap_or_default();
            if password.chars().count() < users::MIN_PASSWORD {
                anyhow::bail!(
                    "the password (one line on standard input) must be at least {} characters",
                    users::MIN_PASSWORD
                );
            }
            let hash = crate::loyalty::auth::hash_password(&password)?;
            let user = User {
                name: name.clone(),
                role,
                restaurants,
            };
            if !users::add(&db, &user, &hash, crate::core::clock::now_ms()).await? {
                anyhow::bail!("user {name:?} already exists");
            }
            format!("added {name} ({})", role.as_str())
        }
        UsersCommand::List => users::list(&db)
            .await?
            .iter()
            .map(|u| {
                format!(
                    "{}\t{}\t{}",
                    u.name,
                    u.role.as_str(),
                    u.restaurants.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        UsersCommand::Remove { name } => {
            if !users::remove(&db, &name).await? {
                anyhow::bail!("no user {name:?}");
            }
            format!("removed {name}")
        }
        // The failure counts are in each server's memory; the unlock goes
        // through storage, which every server checks at the next attempt.
        UsersCommand::Unlock { name } => {
            if users::find(&db, &name).await?.is_none() {
                anyhow::bail!("no user {name:?}");
            }
            super::auth::record_unlock(&db, &name, crate::core::clock::now_ms()).await?;
            format!("unlocked {name}: the running server lets them sign in again")
        }
    };
    db.close().await;
    Ok(out)
}
