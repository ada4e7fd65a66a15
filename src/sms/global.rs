//! The SMS settings an owner changes in the console, beside the
//! per-restaurant ones: the master switch, a provider's token (sms.ru
//! `api_id`, write-only) and the default sender name. Stored in the core's
//! settings table ([`crate::core::settings`]), so they survive a restart
//! and reach every instance on one database within a second.
//!
//! The config file wins where it sets a value: it is what was deployed, and
//! the console shows the value as coming from it. A value the file leaves
//! out is the console's to set. The checks are the file's own
//! ([`super::settings::check_sender`], the `api_id` rule), with the file's
//! words.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::provider::{Accepted, Balance, Delivery, Provider, ProviderError};
use super::settings::{ProviderSettings, Settings};
use crate::core::feature::BoxFuture;
use crate::core::phone::PhoneE164;
use crate::core::settings::{Entry, Live};
use crate::core::store::Db;

pub const ENABLED_KEY: &str = "sms.enabled";
pub const SENDER_KEY: &str = "sms.sender";
/// `sms.providers.NAME.api_id`.
pub fn token_key(provider: &str) -> String {
    format!("sms.providers.{provider}.api_id")
}

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    File,
    Console,
    Default,
}

/// The global SMS settings in effect.
#[derive(Debug, Clone)]
pub struct Global {
    pub enabled: bool,
    pub enabled_source: Source,
    pub sender: Option<String>,
    pub sender_source: Source,
    /// Tokens set in the console, for sms.ru providers whose file entry has
    /// none.
    pub tokens: BTreeMap<String, SecretString>,
}

pub type LiveGlobal = Arc<Live<Global>>;

/// The file's values, with the stored ones where the file sets none.
pub fn effective(file: &Settings, entries: &[Entry]) -> Global {
    let mut g = Global {
        enabled: file.enabled,
        enabled_source: if file.enabled_setting.is_some() {
            Source::File
        } else {
            Source::Default
        },
        sender: file.sender.clone(),
        sender_source: if file.sender.is_some() {
            Source::File
        } else {
            Source::Default
        },
        tokens: BTreeMap::new(),
    };
    for e in entries {
        if e.key == ENABLED_KEY && file.enabled_setting.is_none() {
            g.enabled = e.value == "1";
            g.enabled_source = Source::Console;
        } else if e.key == SENDER_KEY && file.sender.is_none() {
            g.sender = Some(e.value.clone()).filter(|s| !s.is_empty());
            g.sender_source = Source::Console;
        } else if let Some(name) = e
            .key
            .strip_prefix("sms.providers.")
            .and_then(|k| k.strip_suffix(".api_id"))
            && token_settable(file, name)
            && !e.value.trim().is_empty()
        {
            g.tokens
                .insert(name.to_string(), SecretString::from(e.value.clone()));
        }
    }
    g
}

/// Whether provider `name`'s token is the console's to set: an sms.ru
/// provider whose file entry has no `api_id`.
pub fn token_settable(file: &Settings, name: &str) -> bool {
    matches!(
        file.providers.get(name),
        Some(ProviderSettings::SmsRu { api_id: None, .. })
    )
}

pub fn live(db: Db, file: Arc<Settings>) -> LiveGlobal {
    let initial = effective(&file, &[]);
    Live::new(db, initial, move |entries| effective(&file, entries))
}

/// A provider whose token may come from the console: the client is rebuilt
/// when the stored settings change. Without a token it refuses to send
/// with a stop ("no token"), which holds the messages until the token is
/// set and the provider resumed (saving a token resumes it).
pub struct LiveProvider {
    name: String,
    file: ProviderSettings,
    global: LiveGlobal,
    built: tokio::sync::Mutex<Option<Built>>,
}

/// The provider client and the settings it was built from.
type Built = (Arc<Global>, Arc<dyn Provider>);

impl LiveProvider {
    pub fn new(name: &str, file: ProviderSettings, global: LiveGlobal) -> LiveProvider {
        LiveProvider {
            name: name.to_string(),
            file,
            global,
            built: tokio::sync::Mutex::new(None),
        }
    }

    async fn current(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        let g = self.global.current().await;
        let mut built = self.built.lock().await;
        if let Some((seen, p)) = built.as_ref()
            && Arc::ptr_eq(seen, &g)
        {
            return Ok(p.clone());
        }
        let mut ps = self.file.clone();
        if let ProviderSettings::SmsRu { api_id, .. } = &mut ps
            && api_id.is_none()
        {
            *api_id = g.tokens.get(&self.name).cloned();
            if api_id.is_none() {
                return Err(ProviderError::Stop {
                    code: None,
                    message: format!(
                        "no token for provider {}: set it in the console or in [sms.providers.{}]",
                        self.name, self.name
                    ),
                });
            }
        }
        let p = ps.build();
        *built = Some((g, p.clone()));
        Ok(p)
    }
}

impl Provider for LiveProvider {
    fn send<'a>(
        &'a self,
        to: &'a PhoneE164,
        text: &'a str,
        sender: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move { self.current().await?.send(to, text, sender).await })
    }

    fn balance(&self) -> BoxFuture<'_, Result<Balance, ProviderError>> {
        Box::pin(async move { self.current().await?.balance().await })
    }

    fn status<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, ProviderError>> {
        Box::pin(async move { self.current().await?.status(provider_id).await })
    }

    fn max_parts(&self) -> usize {
        self.file.max_parts()
    }
}

/// A token as the file checks it: not blank.
pub fn check_token(name: &str, t: &SecretString) -> Result<(), crate::core::config::ConfigError> {
    if t.expose_secret().trim().is_empty() {
        return Err(crate::core::config::ConfigError::invalid(
            &format!("sms.providers.{name}.api_id"),
            "must not be empty",
        ));
    }
    Ok(())
}
