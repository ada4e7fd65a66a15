//! The checks of `tillgate doctor`, each turning what it finds into a
//! [`Check`] with the fix.

use std::time::Duration;

use crate::cashservers::connect::{self, Failure};
use crate::cashservers::settings::{CashServer, Settings as Rk7Settings};
use crate::cashservers::subscriptions::{last_event_at, same_url};
use crate::core::clock::now_ms;
use crate::core::config::{Config, Storage};
use crate::core::store::Db;

use super::{Check, Report};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A cash server silent longer than this is "not flowing now".
const QUIET_MS: i64 = 15 * 60 * 1000;
/// A consumer this far behind the head is stuck or too slow.
const LAG_LIMIT: i64 = 10_000;

/// Runs every check against `config`.
pub async fn check(config: &Config) -> Report {
    let mut checks = Vec::new();
    let where_ = match &config.storage {
        Storage::Sqlite { path } => format!("SQLite {}", path.display()),
        Storage::Postgres { .. } => "PostgreSQL".to_string(),
    };
    checks.push(Check::ok(
        "config",
        format!("read; listening on {}, storage {where_}", config.listen),
    ));
    let db = match Db::open(&config.storage).await {
        Ok(db) => db,
        Err(e) => {
            checks.push(Check::fail(
                "storage",
                format!("cannot open {where_}: {e}"),
                "check data_dir / database_url and that the disk or database is reachable",
            ));
            return finish(checks);
        }
    };
    if let Err(e) = crate::core::migrate::migrate(&db, &crate::app::migrations()).await {
        checks.push(Check::fail("storage", format!("{where_} cannot be brought up to date: {e}"), "restore the database from a backup of this version, or run the matching tillgate release"));
        db.close().await;
        return finish(checks);
    }
    checks.push(Check::ok(
        "storage",
        format!("{where_} opens and is up to date"),
    ));

    let rk7 = config.section::<Rk7Settings>();
    match connect::all(&db, &rk7).await {
        Ok(servers) if servers.is_empty() => checks.push(Check::warn(
            "cash servers",
            "none configured: tillgate only listens",
            "add [[rk7.cash_servers]] to let tillgate check and repair them",
        )),
        Ok(servers) => {
            for s in &servers {
                cash_server(&db, &rk7, s, &mut checks).await;
            }
        }
        Err(e) => checks.push(Check::fail(
            "cash servers",
            format!("cannot read the added cash servers: {e}"),
            "check storage",
        )),
    }
    log_health(&db, &mut checks).await;
    registers_without_password(&db, &mut checks).await;
    relay(&db, &mut checks).await;
    outside(config, &mut checks).await;
    db.close().await;
    finish(checks)
}

/// Registers the operator let in without a password (seed 004): allowed,
/// but a warning, so it stays a decision someone sees.
async fn registers_without_password(db: &Db, checks: &mut Vec<Check>) {
    let Ok(list) = crate::loyalty::registers::list(&db.read).await else {
        return;
    };
    for r in list
        .iter()
        .filter(|r| !r.open_from.is_empty() && r.enabled != 0)
    {
        checks.push(Check::warn(
            format!("register {}", r.id),
            format!("takes no password; only from {}", r.open_from.replace(',', ", ")),
            format!("set a password for it (tillgate loyalty register-add {}) unless its network is closed to everyone else", r.id),
        ));
    }
}

fn finish(checks: Vec<Check>) -> Report {
    let healthy = !checks.iter().any(|c| c.level == super::Level::Fail);
    Report { healthy, checks }
}

fn failed(name: &str, f: Failure) -> Check {
    Check::fail(name, f.what, f.fix)
}

async fn cash_server(db: &Db, rk7: &Rk7Settings, s: &CashServer, checks: &mut Vec<Check>) {
    let name = format!("cash server {}", s.name);
    let client = match connect::client(s, rk7.timeout) {
        Ok(c) => c,
        Err(e) => return checks.push(failed(&name, e.into())),
    };
    let info = match client.get_system_info2().await {
        Ok(i) => i,
        Err(e) => return checks.push(failed(&name, e.into())),
    };
    let version = info.server_version.clone().unwrap_or_default();
    let tls = s.tls_words();
    if s.trust == rk7::xmlapi::Trust::Insecure {
        checks.push(Check::warn(&name, format!("reachable, credentials accepted, TLS {tls}"), format!("pin the certificate: set tls_fingerprint for {} (the emulator and `openssl s_client` print it)", s.name)));
    } else {
        checks.push(Check::ok(
            &name,
            format!("reachable at {}, credentials accepted, TLS {tls}", s.url),
        ));
    }
    let has_subs = rk7::xmlapi::supports_subscriptions(&version);
    let ingest = rk7.ingest_url.as_deref();
    if has_subs {
        checks.push(Check::ok(
            format!("{name} version"),
            format!("{version}: has the subscription mechanism"),
        ));
        match (client.list_subscriptions().await, ingest) {
            (Err(e), _) => checks.push(failed(&format!("{name} subscription"), e.into())),
            (Ok(subs), Some(me)) if subs.urls.iter().any(|u| same_url(u, me)) => {
                checks.push(Check::ok(
                    format!("{name} subscription"),
                    format!("points at this tillgate ({me})"),
                ))
            }
            (Ok(subs), Some(me)) => checks.push(Check::fail(
                format!("{name} subscription"),
                format!("sends to {:?}, not to this tillgate ({me})", subs.urls),
                format!(
                    "tillgate rk7 subscriptions repoint --cash-server {}",
                    s.name
                ),
            )),
            (Ok(subs), None) => checks.push(Check::warn(
                format!("{name} subscription"),
                format!(
                    "sends to {:?}; cannot tell whether that is this tillgate",
                    subs.urls
                ),
                "set [rk7] ingest_url to the address cash servers use for tillgate",
            )),
        }
    } else {
        checks.push(Check::warn(
            format!("{name} version"),
            format!("{version}: older than 7.6.5.440, no subscription mechanism; it needs the notify driver (httpnotf.dll)"),
            format!("in the manager station, set the driver's DestURLs to {}", ingest.unwrap_or("tillgate's /rkevent URL")),
        ));
    }
    let rest = info
        .rest_code
        .as_ref()
        .map(|r| r.0.clone())
        .or_else(|| s.rest_code.clone());
    let Some(rest) = rest else { return };
    match last_event_at(db, &rest).await {
        None => checks.push(Check::fail(
            format!("{name} events"),
            format!("no event ever received from restaurant {rest}"),
            format!(
                "point it at tillgate: tillgate rk7 subscriptions repoint --cash-server {}",
                s.name
            ),
        )),
        Some(t) => {
            let age = (now_ms() - t).max(0);
            let when = crate::core::clock::ms_to_rfc3339(t);
            if age > QUIET_MS {
                checks.push(Check::warn(
                    format!("{name} events"),
                    format!("last event at {when}, {} min ago: not flowing now", age / 60_000),
                    "if the restaurant is open, check the subscription and the cash server's driver log",
                ));
            } else {
                checks.push(Check::ok(
                    format!("{name} events"),
                    format!("flowing; last event at {when}"),
                ));
            }
        }
    }
}

/// Gaps and quarantine of the last day, and the consumers' lag.
async fn log_health(db: &Db, checks: &mut Vec<Check>) {
    use crate::core::log;
    let since = now_ms() - DAY_MS;
    let recent = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t).map_or(true, |d| d.timestamp_millis() >= since)
    };
    let filled: Vec<i64> = log::gap_repairs(db)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.gap_id)
        .collect();
    let (mut open, mut lost, mut after) = (0, 0, 0);
    let mut rests = std::collections::BTreeSet::new();
    while let Ok(page) = log::gaps(db, after, 500).await {
        let Some(last) = page.last().map(|g| g.id) else {
            break;
        };
        for g in page
            .iter()
            .filter(|g| recent(&g.detected_at) && !filled.contains(&g.id))
        {
            open += 1;
            lost += g.missing;
            rests.extend(g.rest_code.clone());
        }
        after = last;
    }
    if open == 0 {
        checks.push(Check::ok("gaps", "no unfilled gap in the last day"));
    } else {
        checks.push(Check::fail(
            "gaps",
            format!("{open} gap(s) in the last day not filled ({lost} events lost, restaurants {rests:?})"),
            "tillgate rk7 backfill --cash-server NAME (automatic when the cash server is in [[rk7.cash_servers]])",
        ));
    }
    let q = log::quarantine_list(db, 0, 1000).await.unwrap_or_default();
    let q: Vec<_> = q.iter().filter(|i| recent(&i.received_at)).collect();
    if q.is_empty() {
        checks.push(Check::ok(
            "quarantine",
            "no unreadable body in the last day",
        ));
    } else {
        checks.push(Check::fail(
            "quarantine",
            format!("{} unreadable body(ies) in the last day, the latest: {}", q.len(), q.last().map(|i| i.reason.as_str()).unwrap_or("")),
            "look at them with GET /api/quarantine; a sender other than r_keeper, or a proxy, is often the cause",
        ));
    }
    let head = log::head(db).await.unwrap_or(0);
    let cursors = log::cursors(db).await.unwrap_or_default();
    let behind: Vec<String> = cursors
        .iter()
        .filter(|(_, p)| head - p > LAG_LIMIT)
        .map(|(n, p)| format!("{n} ({} behind)", head - p))
        .collect();
    if behind.is_empty() {
        let max = cursors.iter().map(|(_, p)| head - p).max().unwrap_or(0);
        checks.push(Check::ok(
            "consumers",
            format!("{} consumers, at most {max} events behind", cursors.len()),
        ));
    } else {
        checks.push(Check::fail(
            "consumers",
            format!("behind the log: {}", behind.join(", ")),
            "see tillgate's log for the consumer's errors; GET /api/consumers",
        ));
    }
}

async fn relay(db: &Db, checks: &mut Vec<Check>) {
    match crate::relay::store::list(db).await {
        Err(e) => checks.push(Check::fail(
            "relay",
            format!("cannot read destinations: {e}"),
            "check storage",
        )),
        Ok(list) => {
            let paused: Vec<String> = list
                .iter()
                .filter_map(|d| d.paused.as_ref().map(|why| format!("{} ({why})", d.id)))
                .collect();
            if paused.is_empty() {
                checks.push(Check::ok(
                    "relay",
                    format!("{} destination(s), none paused", list.len()),
                ));
            } else {
                checks.push(Check::fail(
                    "relay",
                    format!("paused: {}", paused.join(", ")),
                    "fix the receiver, then POST /api/destinations/ID/resume",
                ));
            }
        }
    }
}

/// The Telegram token and each sms.ru key.
async fn outside(config: &Config, checks: &mut Vec<Check>) {
    let alerts = config.section::<crate::alerts::Settings>();
    if let Some(token) = &alerts.bot_token {
        match tokio::time::timeout(
            Duration::from_secs(15),
            crate::alerts::doctor::check_token(&alerts.api_base, token),
        )
        .await
        {
            Ok(Ok(user)) => checks.push(Check::ok(
                "telegram",
                format!("bot token accepted (@{user})"),
            )),
            Ok(Err(why)) => checks.push(Check::fail(
                "telegram",
                why,
                "create a new token with @BotFather and set [alerts] bot_token",
            )),
            Err(_) => checks.push(Check::fail(
                "telegram",
                "no answer from Telegram within 15 s",
                "check this machine's internet access",
            )),
        }
    }
    let sms = config.section::<crate::sms::settings::Settings>();
    for (name, p) in crate::sms::build_providers(&sms) {
        match tokio::time::timeout(Duration::from_secs(15), p.balance()).await {
            Ok(Ok(b)) => checks.push(Check::ok(
                format!("sms {name}"),
                format!(
                    "key accepted, balance {}",
                    crate::core::money::rub(b.kopecks)
                ),
            )),
            Ok(Err(e)) => checks.push(Check::fail(
                format!("sms {name}"),
                format!("balance check failed: {e}"),
                "check the provider's api key and account",
            )),
            Err(_) => checks.push(Check::fail(
                format!("sms {name}"),
                "no answer within 15 s",
                "check this machine's internet access",
            )),
        }
    }
}
