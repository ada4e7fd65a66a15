//! The alert settings: what the `[alerts]` section says once validated,
//! and the routing of an alert to chats.
//!
//! Rules have global defaults (`[alerts.rules]`) that each restaurant may
//! override (`[alerts.restaurants.rules]`), because a table-service
//! restaurant and a counter both want "receipt deleted" but disagree on what
//! discount is suspicious. The file format is in [`file`], the checks in
//! [`validate()`].

mod file;
pub mod live;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use secrecy::SecretString;

use super::kind::AlertKind;

pub use file::{FileSection, LimitsFile, RestaurantFile, RoutingFile, RulesFile};
pub use validate::{check_bot_token, check_owners_chat, validate, validate_restaurant};

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
    /// `routing.restaurant` as written: the kinds a restaurant's chat gets
    /// when it names none (restaurants saved in the console use it too).
    pub restaurant_kinds_default: Option<Vec<String>>,
    /// `commands` as written: whether a token set later in the console
    /// turns the bot's commands on.
    pub commands_setting: Option<bool>,
    /// The config file's restaurants as written, so the console can show
    /// which value the file sets and lay its changes over them.
    pub file_restaurants: BTreeMap<String, RestaurantFile>,
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
pub struct KindSet(pub(crate) Option<Vec<AlertKind>>);

impl KindSet {
    pub fn contains(&self, kind: AlertKind) -> bool {
        self.0.as_ref().is_none_or(|k| k.contains(&kind))
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
    /// Its own offset from UTC in minutes, when not the global one.
    pub utc_offset_minutes: Option<i32>,
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
    /// and/or the restaurant's chat), without duplicates. Empty when no
    /// chat takes it: the alert is still recorded (as `unrouted`).
    pub fn route(&self, kind: AlertKind, rest_code: Option<&str>) -> Vec<i64> {
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

    /// The restaurant's offset from UTC in minutes (its own, or the
    /// global `alerts.utc_offset`).
    pub fn utc_offset_for(&self, rest_code: Option<&str>) -> i32 {
        rest_code
            .and_then(|r| self.restaurants.get(r))
            .and_then(|r| r.utc_offset_minutes)
            .unwrap_or(self.utc_offset_minutes)
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
