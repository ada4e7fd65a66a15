//! The alert settings in effect: the config file's, with what the console
//! (or `PUT /api/alerts/settings...`) saved laid over them, rebuilt on
//! every instance when the stored settings change
//! ([`crate::core::settings::Live`]).
//!
//! A restaurant saved in the console is laid over the file's entry field by
//! field (a field the console leaves out keeps the file's value) and checked
//! by the file's own [`validate_restaurant`]. The bot token and the owners'
//! chat may be set in the console only where the file sets none: the file
//! is what an installer wrote and deploys, so it wins, and the console shows
//! the value as coming from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::Value;

use super::{Restaurant, RestaurantFile, Settings, check_bot_token, validate_restaurant};
use crate::core::config::ConfigError;
use crate::core::settings::{Entry, Live};
use crate::core::store::Db;

/// Stored key of a restaurant's settings: this prefix and its RestCode.
pub const RESTAURANT_PREFIX: &str = "alerts.restaurants.";
/// Stored key of the bot token set in the console.
pub const BOT_TOKEN_KEY: &str = "alerts.bot_token";
/// Stored key of the owners' chat set in the console.
pub const OWNERS_CHAT_KEY: &str = "alerts.owners_chat";

/// The alert settings every worker and handler reads.
pub type LiveSettings = Arc<Live<Settings>>;

/// The live settings over the file's.
pub fn live(db: Db, file: Settings) -> LiveSettings {
    let initial = file.clone();
    Live::new(db, initial, move |entries| effective(&file, entries))
}

/// Lays `over`'s set values onto `base` (objects merged key by key).
fn lay(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                lay(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The restaurant `code` as the file writes it with `saved` laid over.
pub fn overlay(
    file: &Settings,
    code: &str,
    saved: &RestaurantFile,
) -> Result<RestaurantFile, serde_json::Error> {
    let mut base =
        serde_json::to_value(file.file_restaurants.get(code).cloned().unwrap_or_default())?;
    lay(&mut base, &serde_json::to_value(saved)?);
    let mut merged: RestaurantFile = serde_json::from_value(base)?;
    merged.rest_code = code.to_string();
    Ok(merged)
}

/// Checks `saved` for restaurant `code` exactly as the file's restaurants
/// are checked (its errors name `alerts.restaurants.CODE...`).
pub fn check_restaurant(
    file: &Settings,
    code: &str,
    saved: &RestaurantFile,
) -> Result<Restaurant, ConfigError> {
    let setting = format!("{RESTAURANT_PREFIX}{code}");
    let merged =
        overlay(file, code, saved).map_err(|e| ConfigError::invalid(&setting, e.to_string()))?;
    validate_restaurant(
        &setting,
        merged,
        &file.default_rules,
        file.restaurant_kinds_default.clone(),
    )
}

/// The settings in effect: the file's with the stored entries over them.
/// A stored value that no longer holds (the file changed under it) is
/// logged and skipped, never fatal: alerts keep flowing on the file's.
pub fn effective(file: &Settings, entries: &[Entry]) -> Settings {
    let mut s = file.clone();
    for e in entries {
        if let Some(code) = e.key.strip_prefix(RESTAURANT_PREFIX) {
            let checked = serde_json::from_str::<RestaurantFile>(&e.value)
                .map_err(|e| e.to_string())
                .and_then(|saved| check_restaurant(file, code, &saved).map_err(|e| e.to_string()));
            match checked {
                Ok(r) => {
                    s.restaurants.insert(code.to_string(), r);
                }
                Err(err) => {
                    tracing::error!(restaurant = %code, error = %err, "saved alert settings no longer valid; ignored")
                }
            }
        } else if e.key == BOT_TOKEN_KEY && file.bot_token.is_none() {
            let token = SecretString::from(e.value.clone());
            if check_bot_token(&token).is_ok() {
                s.bot_token = Some(token);
                s.commands = file.commands_setting.unwrap_or(true);
            }
        } else if e.key == OWNERS_CHAT_KEY && file.owners_chat.is_none() {
            s.owners_chat = e.value.parse().ok().filter(|c| *c != 0);
        }
    }
    s
}

/// Where each set value of a restaurant comes from: `file` or `console`,
/// by dotted field name (`chat`, `rules.discount_percent`); a field not
/// listed has its default.
pub fn sources(
    file: Option<&RestaurantFile>,
    saved: Option<&RestaurantFile>,
) -> BTreeMap<String, &'static str> {
    fn walk(prefix: &str, v: &Value, tag: &'static str, out: &mut BTreeMap<String, &'static str>) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Null => {}
                    Value::Object(_) => walk(&name, v, tag, out),
                    _ if name == "rest_code" => {}
                    _ => {
                        out.insert(name, tag);
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Some(f) = file.and_then(|f| serde_json::to_value(f).ok()) {
        walk("", &f, "file", &mut out);
    }
    if let Some(s) = saved.and_then(|s| serde_json::to_value(s).ok()) {
        walk("", &s, "console", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Settings {
        let text = r#"
[alerts]
owners_chat = -100
[[alerts.restaurants]]
rest_code = "R1"
chat = -200
closing_time = "03:00"
[alerts.restaurants.rules]
discount_percent = 40
"#;
        let mut f = crate::core::config::parse_file(std::path::Path::new("t.toml"), text).unwrap();
        super::super::validate(f.take_section("alerts").parse().unwrap()).unwrap()
    }

    fn entry(key: &str, value: &str) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
            updated_at: 0,
        }
    }

    #[test]
    fn console_values_lie_over_the_files_field_by_field() {
        let f = file();
        let saved: RestaurantFile =
            serde_json::from_str(r#"{"chat": -300, "rules": {"discount_amount": 5000}}"#).unwrap();
        let r = check_restaurant(&f, "R1", &saved).unwrap();
        assert_eq!(r.chat, Some(-300));
        assert_eq!(r.rules.discount_percent, 40, "the file's threshold stays");
        assert_eq!(r.rules.discount_amount, 5000);
        assert!(r.closing_time.is_some());
        let src = sources(f.file_restaurants.get("R1"), Some(&saved));
        assert_eq!(src["chat"], "console");
        assert_eq!(src["rules.discount_percent"], "file");
        assert_eq!(src["rules.discount_amount"], "console");
        assert!(!src.contains_key("rules.dish_voided"));
    }

    #[test]
    fn the_console_is_refused_with_the_files_words() {
        let f = file();
        for (body, expect) in [
            (
                r#"{"chat": 0}"#,
                "setting `alerts.restaurants.R9.chat`: 0 is not a Telegram chat id",
            ),
            (
                r#"{"rules": {"discount_percent": 0}}"#,
                "alerts.restaurants.R9.rules.discount_percent`: must be between 1 and 100",
            ),
            (r#"{"closing_time": "25:00"}"#, "is not a time like 03:00"),
            (r#"{"kinds": ["nope"]}"#, "unknown alert kind"),
            (r#"{"utc_offset": "5"}"#, "is not like +03:00"),
        ] {
            let saved: RestaurantFile = serde_json::from_str(body).unwrap();
            let e = check_restaurant(&f, "R9", &saved).unwrap_err().to_string();
            assert!(e.contains(expect), "{body}: {e}");
        }
    }

    #[test]
    fn the_file_wins_for_the_token_and_owners_chat() {
        let f = file();
        let s = effective(
            &f,
            &[
                entry(OWNERS_CHAT_KEY, "-999"),
                entry(BOT_TOKEN_KEY, "42:abc"),
                entry("alerts.restaurants.R2", r#"{"chat": -5}"#),
                entry("alerts.restaurants.R3", r#"{"chat": 0}"#),
            ],
        );
        assert_eq!(s.owners_chat, Some(-100));
        assert!(s.bot_token.is_some() && s.commands);
        assert_eq!(s.restaurants["R2"].chat, Some(-5));
        assert!(
            !s.restaurants.contains_key("R3"),
            "an invalid stored entry is skipped"
        );
        assert_eq!(
            s.route(crate::alerts::AlertKind::DishVoided, Some("R2")),
            vec![-5, -100]
        );
    }
}
