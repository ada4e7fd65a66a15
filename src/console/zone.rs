//! Times tillgate stamps itself (received, queued, sent) in the
//! restaurant's local time, as owners read them.
//!
//! Cash-server times are local already and shown as sent. tillgate's own
//! stamps are UTC; each restaurant's offset is `alerts.utc_offset` or its
//! own `utc_offset` (file or console), from `GET /api/alerts/settings`. A
//! fixed offset, not an IANA zone: Russia keeps no daylight saving time,
//! and the same offset reads the cash server's local times.

use std::collections::HashMap;

use serde_json::Value;

/// Offsets by restaurant, and the default.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    default_minutes: i32,
    by_rest: HashMap<String, i32>,
}

fn parse_offset(t: &str) -> Option<i32> {
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    Some(sign * (h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?))
}

impl Zones {
    /// From the answer of `GET /api/alerts/settings`.
    pub fn from_settings(all: &Value) -> Zones {
        let default_minutes = all["telegram"]["utc_offset"]
            .as_str()
            .and_then(parse_offset)
            .unwrap_or(180);
        let by_rest = all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["rest_code"].as_str()?.to_string(),
                    i["utc_offset_minutes"].as_i64()? as i32,
                ))
            })
            .collect();
        Zones {
            default_minutes,
            by_rest,
        }
    }

    pub fn minutes(&self, rest: Option<&str>) -> i32 {
        rest.and_then(|r| self.by_rest.get(r).copied())
            .unwrap_or(self.default_minutes)
    }

    /// An RFC 3339 time as `2026-11-30 18:05:00 +03:00` in `rest`'s zone;
    /// the text as given when it does not read.
    pub fn show(&self, rfc3339: Option<&str>, rest: Option<&str>) -> Option<String> {
        let t = rfc3339?;
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) else {
            return Some(t.to_string());
        };
        Some(self.format(at.timestamp_millis(), rest))
    }

    /// Unix milliseconds in `rest`'s zone.
    pub fn format(&self, ms: i64, rest: Option<&str>) -> String {
        let minutes = self.minutes(rest);
        let Some(zone) = chrono::FixedOffset::east_opt(minutes * 60) else {
            return crate::core::clock::ms_to_rfc3339(ms);
        };
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| {
                d.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M:%S %:z")
                    .to_string()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamps_show_in_the_restaurants_zone() {
        let z = Zones::from_settings(&json!({
            "telegram": {"utc_offset": "+03:00"},
            "items": [{"rest_code": "EKB", "utc_offset_minutes": 300}],
        }));
        assert_eq!(
            z.show(Some("2026-11-30T12:00:00.000Z"), Some("EKB"))
                .unwrap(),
            "2026-11-30 17:00:00 +05:00"
        );
        assert_eq!(
            z.show(Some("2026-11-30T22:30:00Z"), Some("MSK")).unwrap(),
            "2026-12-01 01:30:00 +03:00"
        );
        assert_eq!(z.show(Some("not a time"), None).unwrap(), "not a time");
        assert_eq!(z.minutes(None), 180);
    }
}
