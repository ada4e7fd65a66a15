//! The `[sms]` settings: the file section as written, its validation into
//! [`Settings`], and the per-restaurant settings in effect (the file's,
//! overridden by those saved through the API).
//!
//! Everything is checked once, at load, with an error naming the setting;
//! the settings API validates a restaurant with the same
//! [`validate_restaurant`], so the file and the API refuse the same things.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::guard::Guard;
use super::kitchen::Step;
use super::provider::{self, Provider};
use super::store;
use super::template::{Length, Template};
use crate::core::config::ConfigError;
use crate::core::store::{Db, StoreError};

pub const DEFAULT_TEMPLATE: &str = "Ваш заказ {order_number} в {restaurant_name} {status}!";
pub const DEFAULT_SMSRU_URL: &str = "https://sms.ru";
/// sms.ru refuses messages longer than 8 parts (error 205).
pub const SMSRU_MAX_PARTS: usize = 8;
pub const DEFAULT_GENERIC_MAX_PARTS: usize = 6;

/// The `[sms]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Master switch; off by default so that installing tillgate never
    /// texts anyone by surprise.
    pub enabled: Option<bool>,
    /// Name of the order external property holding the guest phone
    /// (default `phone`; compared case-insensitively).
    pub phone_prop: Option<String>,
    /// Name of the order external property that records the guest's
    /// consent (default `phone_consent`; `1`, `true`, `yes`, `да` mean yes).
    pub consent_prop: Option<String>,
    /// Days a guest phone is kept before it is deleted (default 30).
    pub retention_days: Option<u64>,
    /// Seconds between delivery-status checks of a sent message (default 300).
    pub status_poll_secs: Option<u64>,
    /// Attempts before a temporarily failing message is given up (default 8).
    pub max_attempts: Option<u32>,
    /// First retry delay in seconds, doubled per attempt up to 30 min
    /// (default 30).
    pub retry_base_secs: Option<u64>,
    /// Events received longer ago than this many minutes never queue an
    /// SMS (default 60): when SMS is switched on for a running installation,
    /// or the consumer catches up after an outage, guests must not be told
    /// about orders they collected hours ago.
    pub stale_after_mins: Option<u64>,
    /// Default sender name (sms.ru `from`) for restaurants that name none;
    /// may be set in the console instead.
    pub sender: Option<String>,
    /// Country calling codes a guest number must start with (E.164, `+`
    /// optional; default `["7"]`, Russia and Kazakhstan). A phone comes
    /// from whoever posts events, and an SMS abroad costs the account
    /// money (SMS pumping): other countries are refused, not sent.
    pub allowed_country_codes: Option<Vec<String>>,
    /// At most this many SMS per restaurant in any 60 minutes (default
    /// 300, a busy restaurant's rush); past it SMS are refused, and the
    /// owners told once.
    pub hourly_cap: Option<i64>,
    /// At most this many SMS per restaurant in any 24 hours (default 2000).
    pub daily_cap: Option<i64>,
    /// Named providers; restaurants refer to them by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    /// Per-restaurant settings keyed by RestCode.
    #[serde(default)]
    pub restaurants: BTreeMap<String, RestaurantFile>,
}

/// One provider in the config file.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum ProviderFile {
    /// sms.ru's HTTP API.
    #[serde(rename = "smsru")]
    SmsRu {
        /// The API token (`api_id`) from the sms.ru account. May be left out
        /// and set (write-only) in the console instead.
        api_id: Option<SecretString>,
        /// Default https://sms.ru; tests point it at a local fake.
        base_url: Option<String>,
        /// `test=1`: sms.ru checks and answers but sends nothing.
        test: Option<bool>,
        /// Most parts per message (default and upper bound 8).
        max_parts: Option<usize>,
        /// Request timeout in seconds (default 10).
        timeout_secs: Option<u64>,
    },
    /// Any aggregator with an HTTP API, request built from templates.
    #[serde(rename = "http")]
    Http {
        /// minijinja template of the URL (`to`, `to_e164`, `text`, `sender`).
        url: String,
        /// minijinja template of the POST body.
        body: String,
        /// Default `application/json`.
        content_type: Option<String>,
        /// Sent as the `Authorization` header when set.
        authorization: Option<SecretString>,
        /// JSON pointer to the message id in the answer (`/id`).
        id_pointer: Option<String>,
        /// Most parts per message (default 6).
        max_parts: Option<usize>,
        /// Request timeout in seconds (default 10).
        timeout_secs: Option<u64>,
    },
}

/// A selectable step in config or API: `"ready"` or `3`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StepInput {
    Number(i64),
    Name(String),
}

/// One restaurant's settings, as written in the config file and as sent to
/// `PUT /api/sms/settings/{restcode}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestaurantFile {
    /// Default true (a restaurant listed here wants SMS).
    pub enabled: Option<bool>,
    /// Kitchen step that triggers the SMS: started (2), ready (3),
    /// taken (4), collect (5), collected (6). Default ready.
    pub step: Option<StepInput>,
    /// Message template; placeholders {order_number}, {restaurant_name},
    /// {status}, {table}, {order_sum}.
    pub template: Option<String>,
    /// Provider name from `[sms.providers]`; may be left out when there is
    /// exactly one.
    pub provider: Option<String>,
    /// Sender name (sms.ru `from`); empty or absent: the account default.
    pub sender: Option<String>,
    /// `{restaurant_name}`; default the RestCode.
    pub name: Option<String>,
    /// True when the cash register itself collects the guest's consent
    /// before it writes a phone: then a phone property alone counts as
    /// consent. Otherwise the consent property must say yes.
    pub register_collects_consent: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum ProviderSettings {
    SmsRu {
        /// `None`: the token is the console's to set ([`super::global`]).
        api_id: Option<SecretString>,
        base_url: String,
        test: bool,
        max_parts: usize,
        timeout: Duration,
    },
    Http {
        url: String,
        body: String,
        content_type: String,
        authorization: Option<SecretString>,
        id_pointer: Option<String>,
        max_parts: usize,
        timeout: Duration,
    },
}

impl ProviderSettings {
    pub fn max_parts(&self) -> usize {
        match self {
            ProviderSettings::SmsRu { max_parts, .. }
            | ProviderSettings::Http { max_parts, .. } => *max_parts,
        }
    }

    pub fn build(&self) -> Arc<dyn Provider> {
        match self.clone() {
            ProviderSettings::SmsRu {
                api_id,
                base_url,
                test,
                max_parts,
                timeout,
            } => Arc::new(provider::SmsRu {
                base_url,
                // No token anywhere: sms.ru refuses with its credentials
                // error, which stops the provider with a clear reason.
                api_id: api_id.unwrap_or_else(|| SecretString::from(String::new())),
                test,
                max_parts,
                client: provider::http_client(timeout),
            }),
            ProviderSettings::Http {
                url,
                body,
                content_type,
                authorization,
                id_pointer,
                max_parts,
                timeout,
            } => Arc::new(provider::GenericHttp {
                url,
                body,
                content_type,
                authorization,
                id_pointer,
                max_parts,
                client: provider::http_client(timeout),
            }),
        }
    }
}

/// A restaurant's validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restaurant {
    pub enabled: bool,
    pub step: Step,
    pub template: Template,
    pub provider: String,
    pub sender: Option<String>,
    pub name: String,
    pub register_collects_consent: bool,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    /// `enabled` as written (`None`: the console may switch SMS on).
    pub enabled_setting: Option<bool>,
    /// The default sender name the file sets.
    pub sender: Option<String>,
    pub phone_prop: String,
    pub consent_prop: String,
    pub retention: Duration,
    pub status_poll: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub stale_after: Duration,
    /// Countries and caps against SMS pumping.
    pub guard: Guard,
    pub providers: BTreeMap<String, ProviderSettings>,
    pub restaurants: BTreeMap<String, Restaurant>,
}

impl Default for Settings {
    fn default() -> Self {
        validate(FileSection::default()).expect("defaults are valid")
    }
}

/// A restaurant setting that does not hold, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct SettingError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> SettingError {
    SettingError {
        field,
        problem: problem.into(),
    }
}

/// What saving a restaurant's settings tells the owner.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub length: Length,
    pub warnings: Vec<String>,
}

/// Validates one restaurant against the known providers. Used at config
/// load and by the settings API, so both refuse the same things.
pub fn validate_restaurant(
    rest_code: &str,
    f: &RestaurantFile,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<(Restaurant, Checked), SettingError> {
    let step = match &f.step {
        None => Some(Step::Ready),
        Some(StepInput::Number(n)) => Step::parse_selectable(&n.to_string()),
        Some(StepInput::Name(s)) => Step::parse_selectable(s),
    }
    .ok_or_else(|| {
        bad(
            "step",
            "must be one of started (2), ready (3), taken (4), collect (5), collected (6)",
        )
    })?;
    let provider = match &f.provider {
        Some(p) if providers.contains_key(p) => p.clone(),
        Some(p) => {
            return Err(bad(
                "provider",
                format!(
                    "no provider named {p:?} in [sms.providers] (known: {})",
                    providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        None if providers.len() == 1 => providers.keys().next().cloned().unwrap_or_default(),
        None if providers.is_empty() => {
            return Err(bad(
                "provider",
                "no provider is configured in [sms.providers]",
            ));
        }
        None => {
            return Err(bad(
                "provider",
                "several providers are configured: name one",
            ));
        }
    };
    let name = f
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| rest_code.to_string());
    if name.chars().count() > 100 {
        return Err(bad("name", "must be at most 100 characters"));
    }
    let sender = check_sender(f.sender.as_deref())?;
    let template = Template::parse(f.template.as_deref().unwrap_or(DEFAULT_TEMPLATE))
        .map_err(|e| bad("template", e.to_string()))?;
    let max = providers[&provider].max_parts();
    let length = template
        .check_length(&name, max)
        .map_err(|e| bad("template", e.to_string()))?;
    let mut warnings = Vec::new();
    if length.parts > 1 {
        warnings.push(format!(
            "the message takes {} SMS parts ({} {:?} characters); each part is billed",
            length.parts, length.units, length.encoding
        ));
    }
    Ok((
        Restaurant {
            enabled: f.enabled.unwrap_or(true),
            step,
            template,
            provider,
            sender,
            name,
            register_collects_consent: f.register_collects_consent.unwrap_or(false),
        },
        Checked { length, warnings },
    ))
}

/// A sender name: at most 11 Latin letters, digits or signs; blank means
/// the account's default. One check for a restaurant's, the file's and the
/// console's default.
pub fn check_sender(sender: Option<&str>) -> Result<Option<String>, SettingError> {
    let sender = sender.map(str::to_string).filter(|s| !s.trim().is_empty());
    if let Some(s) = &sender
        && (s.chars().count() > 11 || !s.chars().all(|c| c.is_ascii_graphic() || c == ' '))
    {
        return Err(bad(
            "sender",
            "must be at most 11 Latin letters, digits or signs (an approved sender name)",
        ));
    }
    Ok(sender)
}

fn timeout(secs: Option<u64>, setting: &str) -> Result<Duration, ConfigError> {
    match secs.unwrap_or(10) {
        s @ 1..=120 => Ok(Duration::from_secs(s)),
        _ => Err(ConfigError::invalid(
            setting,
            "must be between 1 and 120 seconds",
        )),
    }
}

fn check_base_url(u: &str, setting: &str) -> Result<String, ConfigError> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(u.trim_end_matches('/').to_string())
        }
        _ => Err(ConfigError::invalid(
            setting,
            "must be an http(s) URL like https://sms.ru",
        )),
    }
}

pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let prop = |v: Option<String>, default: &str, setting: &str| {
        let v = v.unwrap_or_else(|| default.to_string());
        if v.trim().is_empty() {
            Err(ConfigError::invalid(setting, "must not be empty"))
        } else {
            Ok(v.trim().to_string())
        }
    };
    let phone_prop = prop(file.phone_prop, "phone", "sms.phone_prop")?;
    let consent_prop = prop(file.consent_prop, "phone_consent", "sms.consent_prop")?;
    let retention_days = in_range("sms.retention_days", file.retention_days, 30, 1..=3650)?;
    let status_poll = in_range(
        "sms.status_poll_secs",
        file.status_poll_secs,
        300,
        5..=86_400,
    )?;
    let max_attempts = in_range("sms.max_attempts", file.max_attempts, 8, 1..=50)?;
    let retry_base = in_range("sms.retry_base_secs", file.retry_base_secs, 30, 1..=3600)?;
    let stale_after = file.stale_after_mins.unwrap_or(60);
    if !(1..=10_080).contains(&stale_after) {
        return Err(ConfigError::invalid(
            "sms.stale_after_mins",
            "must be between 1 and 10080 (a week)",
        ));
    }
    let guard = Guard::from_file(file.allowed_country_codes, file.hourly_cap, file.daily_cap)?;
    let mut providers = BTreeMap::new();
    for (name, p) in file.providers {
        let setting = |f: &str| format!("sms.providers.{name}.{f}");
        let parsed = match p {
            ProviderFile::SmsRu {
                api_id,
                base_url,
                test,
                max_parts,
                timeout_secs,
            } => {
                if api_id
                    .as_ref()
                    .is_some_and(|t| secrecy::ExposeSecret::expose_secret(t).trim().is_empty())
                {
                    return Err(ConfigError::invalid(
                        &setting("api_id"),
                        "must not be empty",
                    ));
                }
                let max_parts = max_parts.unwrap_or(SMSRU_MAX_PARTS);
                if !(1..=SMSRU_MAX_PARTS).contains(&max_parts) {
                    return Err(ConfigError::invalid(
                        &setting("max_parts"),
                        "must be between 1 and 8 (sms.ru refuses longer messages)",
                    ));
                }
                ProviderSettings::SmsRu {
                    api_id,
                    base_url: check_base_url(
                        base_url.as_deref().unwrap_or(DEFAULT_SMSRU_URL),
                        &setting("base_url"),
                    )?,
                    test: test.unwrap_or(false),
                    max_parts,
                    timeout: timeout(timeout_secs, &setting("timeout_secs"))?,
                }
            }
            ProviderFile::Http {
                url,
                body,
                content_type,
                authorization,
                id_pointer,
                max_parts,
                timeout_secs,
            } => {
                provider::GenericHttp::check_templates(&url, &body)
                    .map_err(|e| ConfigError::invalid(&setting("url/body"), e))?;
                if !url.trim_start().starts_with("http") {
                    return Err(ConfigError::invalid(
                        &setting("url"),
                        "must be an http(s) URL",
                    ));
                }
                if let Some(p) = &id_pointer
                    && !p.starts_with('/')
                {
                    return Err(ConfigError::invalid(
                        &setting("id_pointer"),
                        "must be a JSON pointer like /id",
                    ));
                }
                let max_parts = max_parts.unwrap_or(DEFAULT_GENERIC_MAX_PARTS);
                if !(1..=20).contains(&max_parts) {
                    return Err(ConfigError::invalid(
                        &setting("max_parts"),
                        "must be between 1 and 20",
                    ));
                }
                ProviderSettings::Http {
                    url,
                    body,
                    content_type: content_type.unwrap_or_else(|| "application/json".into()),
                    authorization,
                    id_pointer,
                    max_parts,
                    timeout: timeout(timeout_secs, &setting("timeout_secs"))?,
                }
            }
        };
        providers.insert(name, parsed);
    }
    let mut restaurants = BTreeMap::new();
    for (code, r) in &file.restaurants {
        if code.trim().is_empty() {
            return Err(ConfigError::invalid(
                "sms.restaurants",
                "RestCode must not be empty",
            ));
        }
        let (rest, checked) = validate_restaurant(code, r, &providers).map_err(|e| {
            ConfigError::invalid(&format!("sms.restaurants.{code}.{}", e.field), e.problem)
        })?;
        for w in checked.warnings {
            tracing::warn!(restaurant = %code, "sms template: {w}");
        }
        restaurants.insert(code.clone(), rest);
    }
    let sender = check_sender(file.sender.as_deref())
        .map_err(|e| ConfigError::invalid("sms.sender", e.problem))?;
    Ok(Settings {
        enabled: file.enabled.unwrap_or(false),
        enabled_setting: file.enabled,
        sender,
        phone_prop,
        consent_prop,
        retention: Duration::from_secs(retention_days * 86_400),
        status_poll: Duration::from_secs(status_poll),
        max_attempts,
        retry_base: Duration::from_secs(retry_base),
        stale_after: Duration::from_secs(stale_after * 60),
        guard,
        providers,
        restaurants,
    })
}

/// Restaurant settings in effect: those saved through the API override the
/// config file's.
pub async fn effective_restaurants(
    db: &Db,
    settings: &Settings,
) -> Result<BTreeMap<String, Restaurant>, StoreError> {
    let mut out = settings.restaurants.clone();
    for saved in store::saved_settings(db).await? {
        let file: RestaurantFile = serde_json::from_str(&saved.settings)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match validate_restaurant(&saved.rest_code, &file, &settings.providers) {
            Ok((rest, _)) => {
                out.insert(saved.rest_code, rest);
            }
            // A provider removed from the config since the save: keep the
            // config's settings (or none) rather than wedging the consumer.
            Err(e) => {
                tracing::error!(restaurant = %saved.rest_code, error = %e, "saved sms settings no longer valid; ignored")
            }
        }
    }
    Ok(out)
}

/// A numeric setting with its default, refused outside `range` with the
/// setting's name and the bounds.
fn in_range<T>(
    setting: &str,
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            setting,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let mut f = crate::core::config::parse_file(std::path::Path::new("t.toml"), text)?;
        validate(f.take_section("sms").parse()?)
    }

    const OK: &str = r#"
[sms]
enabled = true
[sms.providers.main]
kind = "smsru"
api_id = "SECRET-API-ID-1"
[sms.restaurants.199990093]
step = "collected"
template = "Заказ {order_number} готов"
sender = "Pizza"
name = "Пицца"
"#;

    #[test]
    fn full_section_loads() {
        let s = load(OK).unwrap();
        let r = &s.restaurants["199990093"];
        assert_eq!(r.step, Step::Collected);
        assert_eq!(r.provider, "main");
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        assert!(!format!("{s:?}").contains("SECRET-API-ID"));
        // Against SMS pumping by default: Russia and Kazakhstan, 300 an
        // hour, 2000 a day per restaurant.
        assert_eq!(s.guard.allowed_country_codes, ["7"]);
        assert_eq!((s.guard.hourly_cap, s.guard.daily_cap), (300, 2000));
    }

    #[test]
    fn broken_config_names_the_setting() {
        let cases = [
            (
                OK.replace("\"collected\"", "\"cooking\""),
                "sms.restaurants.199990093.step",
            ),
            (
                OK.replace("\"collected\"", "1"),
                "sms.restaurants.199990093.step",
            ),
            (
                OK.replace("{order_number}", "{guest}"),
                "sms.restaurants.199990093.template",
            ),
            (
                OK.replace("\"Pizza\"", "\"Pizza Napoletana\""),
                "sms.restaurants.199990093.sender",
            ),
            (
                OK.replace("step =", "provider = \"other\"\nstep ="),
                "sms.restaurants.199990093.provider",
            ),
            (
                OK.replace("SECRET-API-ID-1", " "),
                "sms.providers.main.api_id",
            ),
            (
                OK.replace("api_id =", "base_url = \"ftp://x\"\napi_id ="),
                "sms.providers.main.base_url",
            ),
            (
                OK.replace("api_id =", "max_parts = 9\napi_id ="),
                "sms.providers.main.max_parts",
            ),
            (
                OK.replace("enabled = true", "enabled = true\nretention_days = 0"),
                "sms.retention_days",
            ),
            (
                OK.replace("enabled = true", "enabled = true\nstale_after_mins = 0"),
                "sms.stale_after_mins",
            ),
            (
                OK.replace("enabled = true", "enabled = true\nphone_prop = \"\""),
                "sms.phone_prop",
            ),
            (
                OK.replace(
                    "enabled = true",
                    "enabled = true\nallowed_country_codes = [\"44x\"]",
                ),
                "sms.allowed_country_codes",
            ),
            (
                OK.replace(
                    "enabled = true",
                    "enabled = true\nallowed_country_codes = []",
                ),
                "sms.allowed_country_codes",
            ),
            (
                OK.replace("enabled = true", "enabled = true\nhourly_cap = 0"),
                "sms.hourly_cap",
            ),
            (
                OK.replace("enabled = true", "enabled = true\ndaily_cap = -5"),
                "sms.daily_cap",
            ),
            (
                OK.replace(
                    "enabled = true",
                    "enabled = true\nallowed_country_codes = \"7\"",
                ),
                "t.toml",
            ),
            (
                OK.replace("kind = \"smsru\"", "kind = \"carrier-pigeon\""),
                "t.toml",
            ),
            (OK.replace("name = ", "nam = "), "unknown field"),
            (
                OK.replace("Заказ {order_number} готов", &"Ж".repeat(600)),
                "at most 8",
            ),
        ];
        for (text, expect) in cases {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.contains(expect), "expected {expect:?} in {e}");
        }
    }

    #[test]
    fn two_providers_need_a_name() {
        let text = OK.replace(
            "[sms.restaurants",
            "[sms.providers.b]\nkind = \"http\"\nurl = \"http://x/send\"\nbody = \"{{ text|tojson }}\"\n[sms.restaurants",
        );
        let e = load(&text).unwrap_err().to_string();
        assert!(e.contains("several providers"), "{e}");
        let bad_tpl = text.replace("{{ text|tojson }}", "{{ text|tojson ");
        let e = load(&bad_tpl).unwrap_err().to_string();
        assert!(e.contains("sms.providers.b.url/body"), "{e}");
    }

    #[test]
    fn long_template_warns_but_is_kept() {
        let f = RestaurantFile {
            template: Some("Ж".repeat(100)),
            ..RestaurantFile::default()
        };
        let providers = load(OK).unwrap().providers;
        let (_, checked) = validate_restaurant("1", &f, &providers).unwrap();
        assert_eq!(checked.length.parts, 2);
        assert_eq!(checked.warnings.len(), 1);
    }
}

#[cfg(test)]
mod readme_tests {
    /// The README's example config must load: documentation that does not
    /// work is worse than none.
    #[test]
    fn readme_example_config_is_valid() {
        let doc = include_str!("../../docs/sms.md");
        let start = doc.find("```toml\n").expect("toml block") + 8;
        let end = start + doc[start..].find("```").expect("end of block");
        let mut f =
            crate::core::config::parse_file(std::path::Path::new("README"), &doc[start..end])
                .unwrap();
        let s = super::validate(f.take_section("sms").parse().unwrap()).unwrap();
        assert!(s.enabled);
        assert_eq!(s.providers.len(), 2);
        assert_eq!(s.restaurants["199990093"].step, super::Step::Ready);
    }
}
