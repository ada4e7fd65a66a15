//! The `[alerts]` section as written in the config file: every key
//! optional, unknown keys refused. [`super::validate`] turns it into
//! [`super::Settings`].

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
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

/// One restaurant, as written in the config file and as sent to
/// `PUT /api/alerts/settings/{restcode}` (where `rest_code` may be left
/// out: the path names it).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestaurantFile {
    /// `RestCode` the cash servers send.
    #[serde(default)]
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
    /// This restaurant's wall clock when it differs from `alerts.utc_offset`
    /// (a chain across time zones): times tillgate stamps itself are shown,
    /// and closing times read, in it.
    pub utc_offset: Option<String>,
    #[serde(default)]
    pub rules: RulesFile,
}
