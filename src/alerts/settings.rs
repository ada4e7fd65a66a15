//! The `[alerts]` config section and its validation.
//!
//! Rules have global defaults (`[alerts.rules]`) that each restaurant may
//! override (`[alerts.restaurants.rules]`), because a table-service
//! restaurant and a counter both want "receipt deleted" but disagree on what
//! discount is suspicious. Everything is checked once at start so a typo in
//! a chat id fails loudly instead of swallowing alerts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use secrecy::SecretString;
use serde::Deserialize;

use crate::core::config::ConfigError;

/// Every alert kind, the names used in routing lists and `GET /api/alerts`.
pub const KINDS: &[&str] = &[
    "receipt_deleted",
    "prebill_cancelled",
    "dish_voided",
    "unsaved_dish_deleted",
    "discount_over_threshold",
    "payment_deleted",
    "total_lowered_after_prebill",
    "station_closed",
    "station_silent",
    "station_restarted",
    "stream_gap",
    "server_silent",
    "operator",
    "shift_report",
];

/// The `[alerts]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Telegram bot token (`123456:ABC...`). Without it alerts are still
    /// computed and kept in the outbox (visible in `GET /api/alerts`), but
    /// nothing is sent: they go out once a token is configured.
    pub bot_token: Option<SecretString>,
    /// Bot API base URL; tests point it at a local fake.
    pub api_base: Option<String>,
    /// The owners' chat: receives every restaurant's alerts (per `routing`).
    pub owners_chat: Option<i64>,
    /// `ru` (default) or `en`.
    pub language: Option<String>,
    /// Directory with `<lang>/<kind>.txt` templates overriding the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// Answer bot commands via getUpdates long polling (default true when a
    /// token is set).
    pub commands: Option<bool>,
    /// The restaurants' wall clock as an offset from UTC, `+03:00` by default
    /// (cash servers send local time without a zone).
    pub utc_offset: Option<String>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub rules: RulesFile,
    #[serde(default)]
    pub routing: RoutingFile,
    #[serde(default)]
    pub restaurants: Vec<RestaurantFile>,
}

/// Telegram's limits; tests shrink them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Minimum pause between two messages to one chat (default 1000 ms).
    pub per_chat_interval_ms: Option<u64>,
    /// Messages per minute to one group chat (negative id; default 20).
    pub group_per_minute: Option<u32>,
    /// Messages per second over all chats (default 30).
    pub global_per_second: Option<u32>,
    /// Largest pause between retries after network errors and 5xx (default 300 s).
    pub max_backoff_secs: Option<u64>,
}

/// Rule switches and thresholds; every field optional so a restaurant
/// section only names what it changes.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub receipt_deleted: Option<bool>,
    pub prebill_cancelled: Option<bool>,
    pub dish_voided: Option<bool>,
    /// Off by default: table-service restaurants delete unsaved dishes all day.
    pub unsaved_dish_deleted: Option<bool>,
    pub discount: Option<bool>,
    /// Alert when the order's discounts reach this percent of the order (default 30).
    pub discount_percent: Option<u32>,
    /// ...or this many kopecks (default 100000 = 1000 RUB).
    pub discount_amount: Option<i64>,
    pub payment_deleted: Option<bool>,
    pub total_lowered_after_prebill: Option<bool>,
    pub station_closed: Option<bool>,
    pub station_silent: Option<bool>,
    /// Minutes without any event from a started station (default 60).
    pub station_silence_minutes: Option<u64>,
    pub station_restarted: Option<bool>,
    pub stream_gap: Option<bool>,
    pub server_silent: Option<bool>,
    /// Minutes without any event from the restaurant during opening hours (default 30).
    pub server_silence_minutes: Option<u64>,
    pub shift_report: Option<bool>,
}

/// Which kinds go to which chat: lists of kinds or `"*"` for all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// Kinds the owners' chat receives (default all).
    pub owners: Option<Vec<String>>,
    /// Kinds a restaurant's chat receives (default all); a restaurant's own
    /// `kinds` overrides it.
    pub restaurant: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestaurantFile {
    /// `RestCode` the cash servers send.
    pub rest_code: String,
    /// Display name in messages (default the code).
    pub name: Option<String>,
    /// The restaurant's chat.
    pub chat: Option<i64>,
    /// Kinds this restaurant's chat receives (default `routing.restaurant`).
    pub kinds: Option<Vec<String>>,
    /// Local `HH:MM` after which, if no event came, the shift counts as closed.
    pub closing_time: Option<String>,
    /// Local `HH:MM-HH:MM` during which a silent cash server is an alert.
    pub opening_hours: Option<String>,
    #[serde(default)]
    pub rules: RulesFile,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bot_token: Option<SecretString>,
    pub api_base: String,
    pub owners_chat: Option<i64>,
    pub language: Lang,
    pub templates_dir: Option<PathBuf>,
    pub commands: bool,
    pub utc_offset_minutes: i32,
    pub limits: Limits,
    pub default_rules: Rules,
    pub owners_kinds: KindSet,
    pub restaurants: BTreeMap<String, Restaurant>,
}

impl Default for Settings {
    fn default() -> Self {
        validate(FileSection::default()).expect("defaults are valid")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn as_str(&self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub per_chat_interval: Duration,
    pub group_per_minute: u32,
    pub global_per_second: u32,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub receipt_deleted: bool,
    pub prebill_cancelled: bool,
    pub dish_voided: bool,
    pub unsaved_dish_deleted: bool,
    pub discount: bool,
    pub discount_percent: u32,
    pub discount_amount: i64,
    pub payment_deleted: bool,
    pub total_lowered_after_prebill: bool,
    pub station_closed: bool,
    pub station_silent: bool,
    pub station_silence: Duration,
    pub station_restarted: bool,
    pub stream_gap: bool,
    pub server_silent: bool,
    pub server_silence: Duration,
    pub shift_report: bool,
}

/// A set of alert kinds (`None` = all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSet(Option<Vec<String>>);

impl KindSet {
    pub fn contains(&self, kind: &str) -> bool {
        self.0.as_ref().is_none_or(|k| k.iter().any(|x| x == kind))
    }
}

#[derive(Debug, Clone)]
pub struct Restaurant {
    pub rest_code: String,
    pub name: String,
    pub chat: Option<i64>,
    pub kinds: KindSet,
    pub closing_time: Option<NaiveTime>,
    pub opening_hours: Option<(NaiveTime, NaiveTime)>,
    pub rules: Rules,
}

impl Settings {
    /// The rules for a restaurant (the defaults for one not in the config).
    pub fn rules_for(&self, rest_code: Option<&str>) -> &Rules {
        rest_code
            .and_then(|r| self.restaurants.get(r))
            .map(|r| &r.rules)
            .unwrap_or(&self.default_rules)
    }

    /// The chats an alert of `kind` for `rest_code` goes to (owners' chat
    /// and/or the restaurant's chat), without duplicates.
    pub fn route(&self, kind: &str, rest_code: Option<&str>) -> Vec<i64> {
        let mut out = Vec::new();
        if let Some(r) = rest_code.and_then(|r| self.restaurants.get(r))
            && let Some(chat) = r.chat
            && r.kinds.contains(kind)
        {
            out.push(chat);
        }
        if let Some(owners) = self.owners_chat
            && self.owners_kinds.contains(kind)
            && !out.contains(&owners)
        {
            out.push(owners);
        }
        out
    }

    /// Chats allowed to talk to the bot.
    pub fn known_chat(&self, chat: i64) -> bool {
        self.owners_chat == Some(chat) || self.restaurants.values().any(|r| r.chat == Some(chat))
    }

    pub fn restaurant_name(&self, rest_code: &str) -> String {
        self.restaurants
            .get(rest_code)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| rest_code.to_string())
    }
}

fn kinds(setting: &str, list: Option<Vec<String>>) -> Result<KindSet, ConfigError> {
    let Some(list) = list else {
        return Ok(KindSet(None));
    };
    if list.iter().any(|k| k == "*") {
        return Ok(KindSet(None));
    }
    for k in &list {
        if !KINDS.contains(&k.as_str()) {
            return Err(ConfigError::invalid(
                setting,
                format!("unknown alert kind {k:?}; known: {}", KINDS.join(", ")),
            ));
        }
    }
    Ok(KindSet(Some(list)))
}

fn hhmm(setting: &str, text: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| ConfigError::invalid(setting, format!("{text:?} is not a time like 03:00")))
}

fn rules(setting: &str, base: &Rules, f: &RulesFile) -> Result<Rules, ConfigError> {
    let pct = f.discount_percent.unwrap_or(base.discount_percent);
    if !(1..=100).contains(&pct) {
        return Err(ConfigError::invalid(
            &format!("{setting}.discount_percent"),
            "must be between 1 and 100",
        ));
    }
    let amount = f.discount_amount.unwrap_or(base.discount_amount);
    if amount <= 0 {
        return Err(ConfigError::invalid(
            &format!("{setting}.discount_amount"),
            "must be a positive number of kopecks",
        ));
    }
    let minutes = |name: &str, v: Option<u64>, d: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(d),
            Some(m) if (1..=7 * 24 * 60).contains(&m) => Ok(Duration::from_secs(m * 60)),
            Some(_) => Err(ConfigError::invalid(
                &format!("{setting}.{name}"),
                "must be between 1 and 10080 minutes",
            )),
        }
    };
    Ok(Rules {
        receipt_deleted: f.receipt_deleted.unwrap_or(base.receipt_deleted),
        prebill_cancelled: f.prebill_cancelled.unwrap_or(base.prebill_cancelled),
        dish_voided: f.dish_voided.unwrap_or(base.dish_voided),
        unsaved_dish_deleted: f.unsaved_dish_deleted.unwrap_or(base.unsaved_dish_deleted),
        discount: f.discount.unwrap_or(base.discount),
        discount_percent: pct,
        discount_amount: amount,
        payment_deleted: f.payment_deleted.unwrap_or(base.payment_deleted),
        total_lowered_after_prebill: f
            .total_lowered_after_prebill
            .unwrap_or(base.total_lowered_after_prebill),
        station_closed: f.station_closed.unwrap_or(base.station_closed),
        station_silent: f.station_silent.unwrap_or(base.station_silent),
        station_silence: minutes(
            "station_silence_minutes",
            f.station_silence_minutes,
            base.station_silence,
        )?,
        station_restarted: f.station_restarted.unwrap_or(base.station_restarted),
        stream_gap: f.stream_gap.unwrap_or(base.stream_gap),
        server_silent: f.server_silent.unwrap_or(base.server_silent),
        server_silence: minutes(
            "server_silence_minutes",
            f.server_silence_minutes,
            base.server_silence,
        )?,
        shift_report: f.shift_report.unwrap_or(base.shift_report),
    })
}

const BUILTIN_RULES: Rules = Rules {
    receipt_deleted: true,
    prebill_cancelled: true,
    dish_voided: true,
    unsaved_dish_deleted: false,
    discount: true,
    discount_percent: 30,
    discount_amount: 100_000,
    payment_deleted: true,
    total_lowered_after_prebill: true,
    station_closed: true,
    station_silent: true,
    station_silence: Duration::from_secs(3600),
    station_restarted: true,
    stream_gap: true,
    server_silent: true,
    server_silence: Duration::from_secs(1800),
    shift_report: true,
};

fn utc_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 || h < 0 || m < 0 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let api_base = file
        .api_base
        .unwrap_or_else(|| "https://api.telegram.org".into())
        .trim_end_matches('/')
        .to_string();
    match reqwest::Url::parse(&api_base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            return Err(ConfigError::invalid(
                "alerts.api_base",
                format!("{api_base:?} is not an http(s) URL"),
            ));
        }
    }
    if let Some(t) = &file.bot_token {
        let t = secrecy::ExposeSecret::expose_secret(t);
        // The token goes into the URL path: anything else would break the URL.
        let ok = t.split_once(':').is_some_and(|(id, rest)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !ok {
            return Err(ConfigError::invalid(
                "alerts.bot_token",
                "does not look like a Telegram bot token (digits:letters)",
            ));
        }
    }
    let language = match file.language.as_deref().unwrap_or("ru") {
        "ru" => Lang::Ru,
        "en" => Lang::En,
        other => {
            return Err(ConfigError::invalid(
                "alerts.language",
                format!("{other:?}: must be \"ru\" or \"en\""),
            ));
        }
    };
    if let Some(dir) = &file.templates_dir
        && !dir.is_dir()
    {
        return Err(ConfigError::invalid(
            "alerts.templates_dir",
            format!("{} is not a directory", dir.display()),
        ));
    }
    let utc_offset_minutes = match &file.utc_offset {
        None => 180,
        Some(t) => utc_offset(t).ok_or_else(|| {
            ConfigError::invalid("alerts.utc_offset", format!("{t:?} is not like +03:00"))
        })?,
    };
    let l = &file.limits;
    let limits = Limits {
        per_chat_interval: Duration::from_millis(l.per_chat_interval_ms.unwrap_or(1000)),
        group_per_minute: l.group_per_minute.unwrap_or(20),
        global_per_second: l.global_per_second.unwrap_or(30),
        max_backoff: Duration::from_secs(l.max_backoff_secs.unwrap_or(300)),
    };
    if limits.group_per_minute == 0 || limits.global_per_second == 0 {
        return Err(ConfigError::invalid(
            "alerts.limits",
            "group_per_minute and global_per_second must be at least 1",
        ));
    }
    if limits.max_backoff.is_zero() {
        return Err(ConfigError::invalid(
            "alerts.limits.max_backoff_secs",
            "must be at least 1",
        ));
    }
    let default_rules = rules("alerts.rules", &BUILTIN_RULES, &file.rules)?;
    let owners_kinds = kinds("alerts.routing.owners", file.routing.owners)?;
    let rest_kinds_default = file.routing.restaurant;
    let mut restaurants = BTreeMap::new();
    for (i, r) in file.restaurants.into_iter().enumerate() {
        let setting = format!("alerts.restaurants[{i}]");
        let code = r.rest_code.trim().to_string();
        if code.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{setting}.rest_code"),
                "must not be empty",
            ));
        }
        if restaurants.contains_key(&code) {
            return Err(ConfigError::invalid(
                &format!("{setting}.rest_code"),
                format!("{code} is listed twice"),
            ));
        }
        if r.chat == Some(0) {
            return Err(ConfigError::invalid(
                &format!("{setting}.chat"),
                "0 is not a Telegram chat id",
            ));
        }
        let closing_time = r
            .closing_time
            .as_deref()
            .map(|t| hhmm(&format!("{setting}.closing_time"), t))
            .transpose()?;
        let opening_hours = match r.opening_hours.as_deref() {
            None => None,
            Some(t) => {
                let (a, b) = t.split_once('-').ok_or_else(|| {
                    ConfigError::invalid(
                        &format!("{setting}.opening_hours"),
                        format!("{t:?} is not like 10:00-23:00"),
                    )
                })?;
                let setting = format!("{setting}.opening_hours");
                Some((hhmm(&setting, a)?, hhmm(&setting, b)?))
            }
        };
        let kinds = kinds(
            &format!("{setting}.kinds"),
            r.kinds.or_else(|| rest_kinds_default.clone()),
        )?;
        let rules = rules(&format!("{setting}.rules"), &default_rules, &r.rules)?;
        restaurants.insert(
            code.clone(),
            Restaurant {
                name: r.name.unwrap_or_else(|| code.clone()),
                rest_code: code,
                chat: r.chat,
                kinds,
                closing_time,
                opening_hours,
                rules,
            },
        );
    }
    if file.owners_chat == Some(0) {
        return Err(ConfigError::invalid(
            "alerts.owners_chat",
            "0 is not a Telegram chat id",
        ));
    }
    let commands = file.commands.unwrap_or(true) && file.bot_token.is_some();
    Ok(Settings {
        bot_token: file.bot_token,
        api_base,
        owners_chat: file.owners_chat,
        language,
        templates_dir: file.templates_dir,
        commands,
        utc_offset_minutes,
        limits,
        default_rules,
        owners_kinds,
        restaurants,
    })
}
