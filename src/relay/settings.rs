//! Relay's settings: the `[relay]` section of the config file, read into
//! validated [`Settings`]. Destinations listed here go through the same
//! [`destination::expand`] as those created through the API.

use std::time::Duration;

use super::destination::{self, Destination, DestinationInput};
use crate::core::backoff::Backoff;
use crate::core::config::ConfigError;

/// The `[relay]` section of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Allow destinations on loopback, private (10/8, 172.16/12, 192.168/16,
    /// fc00::/7) and link-local addresses. Off by default so an API caller
    /// cannot make tillgate post into the network it sits in; turn it on for
    /// the usual case of consumers on the restaurant LAN.
    pub allow_private_destinations: Option<bool>,
    /// Per-request timeout in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
    /// Waits between retries in milliseconds; the last one repeats. Each wait
    /// gets ±25 % jitter and is never shorter than a `Retry-After`.
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// A destination failing for longer than this (milliseconds) is paused
    /// and reported (default 6 hours).
    pub pause_after_ms: Option<u64>,
    /// Events read from the log per step (default 256).
    pub batch: Option<i64>,
    /// Longest time a delivered cursor stays unstored while busy
    /// (milliseconds, default 1000). Each store is a synced commit on the
    /// one SQLite writer ingest also needs; a crash re-sends at most this
    /// much (receivers dedupe on `webhook-id`).
    pub cursor_flush_ms: Option<u64>,
    #[serde(default)]
    pub destinations: Vec<DestinationInput>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_private_destinations: bool,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub pause_after: Duration,
    pub batch: i64,
    pub flush_interval: Duration,
    /// Destinations from the config file.
    pub destinations: Vec<Destination>,
}

impl Settings {
    /// The wait before each retry: the schedule's step with ±25 % jitter,
    /// never shorter than the receiver's `Retry-After`.
    pub fn backoff(&self) -> Backoff {
        Backoff::schedule(self.retry_schedule.clone()).with_jitter(0.25)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private_destinations: false,
            timeout: Duration::from_secs(10),
            retry_schedule: [1_000, 5_000, 30_000, 120_000, 300_000, 900_000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            pause_after: Duration::from_secs(6 * 3600),
            batch: 256,
            flush_interval: Duration::from_millis(1000),
            destinations: Vec::new(),
        }
    }
}

pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let allow = file.allow_private_destinations.unwrap_or(false);
    let timeout = match file.timeout_ms {
        None => d.timeout,
        Some(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(ConfigError::invalid(
                "relay.timeout_ms",
                "must be between 1 and 600000",
            ));
        }
    };
    let retry_schedule = match file.retry_schedule_ms {
        None => d.retry_schedule,
        Some(v) if v.is_empty() => {
            return Err(ConfigError::invalid(
                "relay.retry_schedule_ms",
                "must list at least one wait",
            ));
        }
        Some(v) if v.iter().any(|&ms| ms > 86_400_000) => {
            return Err(ConfigError::invalid(
                "relay.retry_schedule_ms",
                "each wait must be at most 86400000 (a day)",
            ));
        }
        Some(v) => v.into_iter().map(Duration::from_millis).collect(),
    };
    let pause_after = match file.pause_after_ms {
        None => d.pause_after,
        Some(0) => {
            return Err(ConfigError::invalid(
                "relay.pause_after_ms",
                "must be more than 0",
            ));
        }
        Some(ms) => Duration::from_millis(ms),
    };
    let batch = file.batch.unwrap_or(d.batch);
    if !(1..=10_000).contains(&batch) {
        return Err(ConfigError::invalid(
            "relay.batch",
            "must be between 1 and 10000",
        ));
    }
    let flush_interval = match file.cursor_flush_ms {
        None => d.flush_interval,
        Some(ms) if ms <= 60_000 => Duration::from_millis(ms),
        Some(_) => {
            return Err(ConfigError::invalid(
                "relay.cursor_flush_ms",
                "must be at most 60000",
            ));
        }
    };
    let mut destinations: Vec<Destination> = Vec::new();
    for (i, input) in file.destinations.into_iter().enumerate() {
        let setting = format!("relay.destinations[{i}]");
        if input.id.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(
                &setting,
                "needs an `id` (the key of its cursor; keep it stable)",
            ));
        }
        let expanded = destination::expand(input, timeout, allow)
            .map_err(|e| ConfigError::invalid(&setting, e.to_string()))?;
        for dest in expanded {
            if destinations.iter().any(|d| d.id == dest.id) {
                return Err(ConfigError::invalid(
                    &setting,
                    format!("destination id {:?} is used twice", dest.id),
                ));
            }
            destinations.push(dest);
        }
    }
    Ok(Settings {
        allow_private_destinations: allow,
        timeout,
        retry_schedule,
        pause_after,
        batch,
        flush_interval,
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let f: FileSection = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        validate(f)
    }

    #[test]
    fn config_example_parses() {
        let s = parse(
            r#"
allow_private_destinations = true
timeout_ms = 5000
retry_schedule_ms = [10, 20]
[[destinations]]
id = "kds"
url = "http://10.0.0.5:11010/api/v4/kds/events;http://10.0.0.6:11010/api/v4/kds/events"
situations = [11, 3]
[[destinations]]
id = "dwh"
url = "https://u:pw9@dwh.example.com/in?key=q7"
format = "json"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
headers = { "X-Api-Key" = "k" }
in_flight = 8
"#,
        )
        .unwrap();
        let ids: Vec<_> = s.destinations.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["kds-1", "kds-2", "dwh"]);
        assert_eq!(
            s.retry_schedule,
            [Duration::from_millis(10), Duration::from_millis(20)]
        );
        let dbg = format!("{s:?}");
        for leak in ["MfKQ9r8", "pw9", "q7", "\"k\""] {
            assert!(!dbg.contains(leak), "{leak} in Debug: {dbg}");
        }
    }

    #[test]
    fn broken_config_is_named() {
        let e = parse("[[destinations]]\nurl = \"http://10.0.0.1/\"").unwrap_err();
        assert!(e.to_string().contains("needs an `id`"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://10.0.0.1/\"").unwrap_err();
        assert!(e.to_string().contains("allow_private_destinations"), "{e}");
        assert!(e.to_string().contains("relay.destinations[0]"), "{e}");
        let e =
            parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nsecrt = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"nope\"").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nsecret = \"abc\"")
            .unwrap_err();
        assert!(e.to_string().contains("whsec_"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\n[[destinations]]\nid = \"a\"\nurl = \"http://g/\"").unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let e = parse("[[destinations]]\nid = \"a\"\nurl = \"http://h/\"\nformat = \"yaml\"")
            .unwrap_err();
        assert!(e.to_string().contains("yaml"), "{e}");
        let e = parse("retry_schedule_ms = []").unwrap_err();
        assert!(e.to_string().contains("relay.retry_schedule_ms"), "{e}");
        let e = parse("timeout_ms = 0").unwrap_err();
        assert!(e.to_string().contains("relay.timeout_ms"), "{e}");
    }
}
