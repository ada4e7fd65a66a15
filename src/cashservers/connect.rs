//! Talking to one cash server: its XML-interface client built from its
//! settings (TLS as configured), the list of cash servers (the config
//! file's and those added through the API), and every failure put into
//! plain words with the fix.

use std::time::Duration;

use rk7::xmlapi::{Client, Error, Trust};

use super::settings::{CashServer, Settings};
use super::store;
use crate::core::store::{Db, StoreError};

/// The cash server's client. With `insecure_tls` every use says so in the
/// log: skipping verification is never silent.
pub fn client(s: &CashServer, timeout: Duration) -> Result<Client, Error> {
    if s.trust == Trust::Insecure {
        tracing::warn!(cash_server = %s.name, "TLS certificate of the cash server is NOT verified (insecure_tls = true); pin it with tls_fingerprint");
    }
    Ok(
        Client::with_trust(&s.url, s.user.clone(), s.password.clone(), s.trust)?
            .with_timeout(timeout),
    )
}

/// Every cash server: the config file's, then those added through the API
/// or CLI (a name in the file wins).
pub async fn all(db: &Db, settings: &Settings) -> Result<Vec<CashServer>, StoreError> {
    let mut out = settings.cash_servers.clone();
    for s in store::added_servers(db).await? {
        if !out.iter().any(|o| o.name == s.name) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One cash server by name.
pub async fn find(
    db: &Db,
    settings: &Settings,
    name: &str,
) -> Result<Option<CashServer>, StoreError> {
    Ok(all(db, settings)
        .await?
        .into_iter()
        .find(|s| s.name == name))
}

/// The cash server's restaurant code: configured, learned before, or asked
/// now (and remembered).
pub async fn rest_code(db: &Db, client: &Client, s: &CashServer) -> Result<String, Failure> {
    if let Some(r) = &s.rest_code {
        return Ok(r.clone());
    }
    let key = format!("rest_code:{}", s.name);
    if let Some(r) = store::state(db, &key).await.map_err(Failure::store)? {
        return Ok(r);
    }
    let info = client.get_system_info().await.map_err(Failure::from)?;
    let Some(r) = info.rest_code.map(|r| r.0) else {
        return Err(Failure {
            what: "the cash server's GetSystemInfo has no RestCode".into(),
            fix: "set rest_code for this cash server in [[rk7.cash_servers]]".into(),
        });
    };
    store::set_state(db, &key, &r)
        .await
        .map_err(Failure::store)?;
    Ok(r)
}

/// A failure in plain words, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{what} (fix: {fix})")]
pub struct Failure {
    pub what: String,
    pub fix: String,
}

impl Failure {
    pub fn store(e: StoreError) -> Self {
        Self {
            what: format!("tillgate's storage failed: {e}"),
            fix: "check the data directory or the database (tillgate doctor)".into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let fix = match &e {
            Error::Timeout(_) => {
                "the XML interface may hang on some commands: try again; if it keeps timing out, restart the cash server's XML interface or raise [rk7] timeout_secs"
            }
            Error::Transport(_) => {
                "check the cash server is running, its url (https://host:\"HTTP Data Port\") and that the port is open from this machine"
            }
            Error::Certificate(_) => {
                "if the cash server's certificate was renewed, compare the fingerprint it presents with the one on the cash server and set tls_fingerprint to it"
            }
            Error::Url { .. } => "write url as https://host:port",
            Error::Http { status: 401, .. } => {
                "check user and password; the employee needs the \"HTTP Access\" right"
            }
            Error::Http { status: 404, .. } => {
                "the path is not served: check the port is the cash server's HTTP Data Port (and, for subscriptions, version 7.6.5.440 or later)"
            }
            Error::Http { .. } => {
                "check the url points at the cash server itself, not at a proxy or another service"
            }
            Error::Redirect { .. } => {
                "a cash server does not redirect: check the url points at the cash server itself (tillgate never follows redirects)"
            }
            Error::Status(s) if s.is_shift_closing() => {
                "the common shift is being closed: wait until it is done"
            }
            Error::Status(_) => "see the cash server's error text; check the employee's rights",
            Error::Unreadable(_) | Error::TooLarge { .. } => {
                "the answer is not r_keeper's: check the url points at the cash server's XML interface"
            }
            _ => "see the message",
        };
        let what = match &e {
            Error::Http { status: 401, .. } => {
                "the cash server refused the user or password (HTTP 401)".to_string()
            }
            other => other.to_string(),
        };
        Self {
            what,
            fix: fix.to_string(),
        }
    }
}
