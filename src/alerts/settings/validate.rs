//! Checks the `[alerts]` section once at start and builds the settings,
//! so a typo in a chat id fails loudly instead of swallowing alerts. Every
//! error names the setting (`alerts.restaurants[0].closing_time`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveTime;

use super::file::{FileSection, RestaurantFile, RulesFile};
use super::{KindSet, Lang, Limits, Restaurant, Rules, Settings};
use crate::alerts::kind::AlertKind;
use crate::core::config::ConfigError;

fn kinds(setting: &str, list: Option<Vec<String>>) -> Result<KindSet, ConfigError> {
    let Some(list) = list else {
        return Ok(KindSet(None));
    };
    if list.iter().any(|k| k == "*") {
        return Ok(KindSet(None));
    }
    let kinds = list
        .iter()
        .map(|k| {
            k.parse::<AlertKind>().map_err(|_| {
                ConfigError::invalid(
                    setting,
                    format!("unknown alert kind {k:?}; known: {}", AlertKind::names()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KindSet(Some(kinds)))
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

/// The bot token's check, for the file and the console alike.
pub fn check_bot_token(t: &secrecy::SecretString) -> Result<(), ConfigError> {
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
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "alerts.bot_token",
            "does not look like a Telegram bot token (digits:letters)",
        ))
    }
}

/// The owners' chat check, for the file and the console alike.
pub fn check_owners_chat(chat: Option<i64>) -> Result<(), ConfigError> {
    if chat == Some(0) {
        return Err(ConfigError::invalid(
            "alerts.owners_chat",
            "0 is not a Telegram chat id",
        ));
    }
    Ok(())
}

/// Checks one restaurant (`setting` names it in errors, e.g.
/// `alerts.restaurants[0]`) over the default rules and routing. The config
/// file's restaurants and those saved through the console are checked by
/// this one function, so both refuse the same things with the same words.
pub fn validate_restaurant(
    setting: &str,
    r: RestaurantFile,
    default_rules: &Rules,
    kinds_default: Option<Vec<String>>,
) -> Result<Restaurant, ConfigError> {
    let code = r.rest_code.trim().to_string();
    if code.is_empty() {
        return Err(ConfigError::invalid(
            &format!("{setting}.rest_code"),
            "must not be empty",
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
    let utc_offset_minutes = match &r.utc_offset {
        None => None,
        Some(t) => Some(utc_offset(t).ok_or_else(|| {
            ConfigError::invalid(
                &format!("{setting}.utc_offset"),
                format!("{t:?} is not like +03:00"),
            )
        })?),
    };
    let kinds = kinds(&format!("{setting}.kinds"), r.kinds.or(kinds_default))?;
    let rules = rules(&format!("{setting}.rules"), default_rules, &r.rules)?;
    Ok(Restaurant {
        name: r.name.unwrap_or_else(|| code.clone()),
        rest_code: code,
        chat: r.chat,
        kinds,
        closing_time,
        opening_hours,
        utc_offset_minutes,
        rules,
    })
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
        check_bot_token(t)?;
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
    let mut file_restaurants = BTreeMap::new();
    for (i, r) in file.restaurants.into_iter().enumerate() {
        let setting = format!("alerts.restaurants[{i}]");
        let code = r.rest_code.trim().to_string();
        if restaurants.contains_key(&code) {
            return Err(ConfigError::invalid(
                &format!("{setting}.rest_code"),
                format!("{code} is listed twice"),
            ));
        }
        let raw = r.clone();
        let rest = validate_restaurant(&setting, r, &default_rules, rest_kinds_default.clone())?;
        file_restaurants.insert(rest.rest_code.clone(), raw);
        restaurants.insert(rest.rest_code.clone(), rest);
    }
    check_owners_chat(file.owners_chat)?;
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
        commands_setting: file.commands,
        restaurant_kinds_default: rest_kinds_default,
        file_restaurants,
    })
}
