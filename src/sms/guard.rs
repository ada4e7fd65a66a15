//! What keeps the SMS account from being pumped (issue 25): the rules an
//! SMS must pass before it is queued for sending.
//!
//! A guest phone comes from outside: whoever can post an event to ingest
//! can name any number and, through `orderName`, part of the text. Without
//! limits that sends SMS to premium foreign numbers from the restaurant's
//! sender and at the restaurant's cost (SMS pumping). So:
//!
//! * **Countries.** A number whose E.164 digits do not start with one of
//!   `sms.allowed_country_codes` (default `7`: Russia and Kazakhstan) is
//!   not sent to.
//! * **Volume.** At most `sms.hourly_cap` SMS per restaurant in any 60
//!   minutes and `sms.daily_cap` in any 24 hours. The count is read from the
//!   outbox itself, in the consumer's transaction: it is durable, the same
//!   on SQLite and PostgreSQL, and right after a restart. The windows roll
//!   (no calendar boundary to burst across, no time zone to choose).
//! * **Once per order.** One SMS per (phone, order) is the outbox's unique
//!   key on (order, kind): an order is texted once, whatever phone a later
//!   event names.
//!
//! A refused SMS is not dropped: its outbox row records why
//! ([`Refusal`], e.g. `refused_country`), keeping only the masked phone,
//! and `tillgate_sms_refused_total{reason}` counts it. The first refusal
//! by a cap in a window raises an `sms_cap_reached` notice on the core bus
//! (the alerts feature tells the owners); later ones in the same window do
//! not, so an attack is one message in the owners' chat, not thousands.

use std::fmt;

use sqlx::AnyConnection;

use super::store;
use crate::core::bus::{NoticeKind, OperatorEvent};
use crate::core::config::ConfigError;
use crate::core::phone::PhoneE164;
use crate::core::store::StoreError;
use crate::core::telemetry::{Kind, describe};

pub const DEFAULT_COUNTRY_CODES: &[&str] = &["7"];
/// A busy restaurant's evening rush stays below it: about five orders a
/// minute for an hour.
pub const DEFAULT_HOURLY_CAP: i64 = 300;
pub const DEFAULT_DAILY_CAP: i64 = 2000;
pub const HOUR_MS: i64 = 60 * 60 * 1000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

const REFUSED_TOTAL: &str = "tillgate_sms_refused_total";

/// Why an SMS was not sent; stored as the row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The number is in a country not in `sms.allowed_country_codes`.
    Country,
    /// The restaurant reached `sms.hourly_cap` in the last 60 minutes.
    HourlyCap,
    /// The restaurant reached `sms.daily_cap` in the last 24 hours.
    DailyCap,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::Country, Refusal::HourlyCap, Refusal::DailyCap];

    /// The outbox state.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Country => "refused_country",
            Refusal::HourlyCap => "refused_hourly_cap",
            Refusal::DailyCap => "refused_daily_cap",
        }
    }

    /// The `reason` label of `tillgate_sms_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Country => "country",
            Refusal::HourlyCap => "hourly_cap",
            Refusal::DailyCap => "daily_cap",
        }
    }

    /// The window a cap counts over; `None` for the country rule.
    pub fn window_ms(self) -> Option<i64> {
        match self {
            Refusal::Country => None,
            Refusal::HourlyCap => Some(HOUR_MS),
            Refusal::DailyCap => Some(DAY_MS),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts a refusal (after its row is committed, so a retried batch does
/// not count twice).
pub fn count_refused(r: Refusal) {
    metrics::counter!(REFUSED_TOTAL, "reason" => r.reason()).increment(1);
}

/// The HELP line and a zero for each reason; called with the other SMS
/// metrics ([`super::delivery::describe_metrics`]).
pub fn describe_metrics() {
    describe(
        Kind::Counter,
        REFUSED_TOTAL,
        "Guest SMS refused before sending, by reason (country, hourly_cap, daily_cap): SMS pumping protection.",
        true,
    );
    for r in Refusal::ALL {
        metrics::counter!(REFUSED_TOTAL, "reason" => r.reason()).increment(0);
    }
}

/// The rules in effect: `[sms]`'s `allowed_country_codes`, `hourly_cap`
/// and `daily_cap`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Digits only, no `+`.
    pub allowed_country_codes: Vec<String>,
    pub hourly_cap: i64,
    pub daily_cap: i64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allowed_country_codes: DEFAULT_COUNTRY_CODES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            hourly_cap: DEFAULT_HOURLY_CAP,
            daily_cap: DEFAULT_DAILY_CAP,
        }
    }
}

impl Guard {
    /// Checks the file's values; errors name the setting.
    pub fn from_file(
        codes: Option<Vec<String>>,
        hourly_cap: Option<i64>,
        daily_cap: Option<i64>,
    ) -> Result<Guard, ConfigError> {
        let d = Guard::default();
        let allowed_country_codes = match codes {
            None => d.allowed_country_codes,
            Some(codes) => {
                const SETTING: &str = "sms.allowed_country_codes";
                if codes.is_empty() {
                    return Err(ConfigError::invalid(
                        SETTING,
                        "must name at least one country code (to send no SMS, set sms.enabled = false)",
                    ));
                }
                let mut out: Vec<String> = Vec::with_capacity(codes.len());
                for c in codes {
                    let digits = c.trim().trim_start_matches('+');
                    if !(1..=3).contains(&digits.len())
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                        || digits.starts_with('0')
                    {
                        return Err(ConfigError::invalid(
                            SETTING,
                            format!(
                                "{c:?} is not a country calling code: 1 to 3 digits, not starting with 0, like \"7\" (Russia, Kazakhstan) or \"375\" (Belarus)"
                            ),
                        ));
                    }
                    if !out.iter().any(|o| o == digits) {
                        out.push(digits.to_string());
                    }
                }
                out
            }
        };
        let hourly_cap = hourly_cap.unwrap_or(d.hourly_cap);
        if !(1..=100_000).contains(&hourly_cap) {
            return Err(ConfigError::invalid(
                "sms.hourly_cap",
                "must be between 1 and 100000 (to send no SMS, set sms.enabled = false)",
            ));
        }
        let daily_cap = daily_cap.unwrap_or(d.daily_cap);
        if !(1..=1_000_000).contains(&daily_cap) {
            return Err(ConfigError::invalid(
                "sms.daily_cap",
                "must be between 1 and 1000000 (to send no SMS, set sms.enabled = false)",
            ));
        }
        if hourly_cap > daily_cap {
            return Err(ConfigError::invalid(
                "sms.hourly_cap",
                format!("must not be more than sms.daily_cap ({daily_cap})"),
            ));
        }
        Ok(Guard {
            allowed_country_codes,
            hourly_cap,
            daily_cap,
        })
    }

    /// Whether the number is in an allowed country.
    pub fn country_allowed(&self, phone: &PhoneE164) -> bool {
        self.allowed_country_codes
            .iter()
            .any(|c| phone.digits().starts_with(c.as_str()))
    }

    /// The rule an SMS to `phone` for `rest_code` would break now, if any;
    /// the country first (a foreign number must not use up the cap), then
    /// the day (the longer stop), then the hour. Rows queued earlier in the
    /// same transaction count.
    pub async fn check(
        &self,
        conn: &mut AnyConnection,
        rest_code: &str,
        phone: &PhoneE164,
        now: i64,
    ) -> Result<Option<Refusal>, StoreError> {
        if !self.country_allowed(phone) {
            return Ok(Some(Refusal::Country));
        }
        let day = store::queued_since(conn, rest_code, now - DAY_MS).await?;
        if day >= self.daily_cap {
            return Ok(Some(Refusal::DailyCap));
        }
        let hour = store::queued_since(conn, rest_code, now - HOUR_MS).await?;
        if hour >= self.hourly_cap {
            return Ok(Some(Refusal::HourlyCap));
        }
        Ok(None)
    }

    /// What the refused row's `error_text` says, for the operator.
    pub fn explain(&self, r: Refusal, phone: &PhoneE164) -> String {
        match r {
            Refusal::Country => format!(
                "{phone} is not in an allowed country (sms.allowed_country_codes: {})",
                self.allowed_country_codes.join(", ")
            ),
            Refusal::HourlyCap => format!(
                "the restaurant reached sms.hourly_cap ({} SMS in 60 minutes)",
                self.hourly_cap
            ),
            Refusal::DailyCap => format!(
                "the restaurant reached sms.daily_cap ({} SMS in 24 hours)",
                self.daily_cap
            ),
        }
    }

    /// The owners' notice for the first refusal by a cap in its window.
    pub fn notice(&self, r: Refusal, rest_code: &str) -> OperatorEvent {
        let (cap, window) = match r {
            Refusal::DailyCap => (self.daily_cap, "24 hours"),
            _ => (self.hourly_cap, "60 minutes"),
        };
        OperatorEvent {
            kind: NoticeKind::SmsCapReached,
            rest_code: Some(rest_code.to_string()),
            text: format!(
                "Guest SMS of restaurant {rest_code} reached the cap of {cap} in {window}: further SMS are refused (state {r}) until fewer were sent in the last {window}. \
                 If the restaurant is not that busy, someone may be posting fake orders to send SMS at its cost (SMS pumping): see GET /api/sms?state={r}."
            ),
        }
    }
}

/// Whether a refusal by cap `r` should raise the owners' notice: no other
/// row of the restaurant refused by the same cap raised one within its
/// window. Read from the outbox, so a restart does not notify again.
pub async fn first_in_window(
    conn: &mut AnyConnection,
    rest_code: &str,
    r: Refusal,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(window) = r.window_ms() else {
        return Ok(false);
    };
    Ok(!store::noticed_since(conn, rest_code, r, now - window).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> PhoneE164 {
        PhoneE164::parse(s).unwrap()
    }

    #[test]
    fn only_allowed_countries_pass() {
        let g = Guard::default();
        assert!(g.country_allowed(&phone("8 925 123-45-67")));
        assert!(g.country_allowed(&phone("+7 999 123 45 67")));
        for foreign in [
            "+447000000001",
            "+380501234567",
            "+12025550123",
            "+37529123456",
        ] {
            assert!(!g.country_allowed(&phone(foreign)), "{foreign}");
        }
        let by = Guard::from_file(Some(vec!["+375".into(), "7".into()]), None, None).unwrap();
        assert_eq!(by.allowed_country_codes, ["375", "7"]);
        assert!(by.country_allowed(&phone("+37529123456")));
        assert!(!by.country_allowed(&phone("+380501234567")));
    }

    #[test]
    fn settings_are_checked_and_named() {
        assert_eq!(
            Guard::from_file(None, None, None).unwrap(),
            Guard::default()
        );
        let cases = [
            (Some(vec![]), None, None, "sms.allowed_country_codes"),
            (
                Some(vec!["".into()]),
                None,
                None,
                "sms.allowed_country_codes",
            ),
            (
                Some(vec!["07".into()]),
                None,
                None,
                "sms.allowed_country_codes",
            ),
            (
                Some(vec!["7a".into()]),
                None,
                None,
                "sms.allowed_country_codes",
            ),
            (
                Some(vec!["7925".into()]),
                None,
                None,
                "sms.allowed_country_codes",
            ),
            (None, Some(0), None, "sms.hourly_cap"),
            (None, None, Some(0), "sms.daily_cap"),
            (None, Some(500), Some(400), "sms.hourly_cap"),
        ];
        for (codes, hour, day, setting) in cases {
            let e = Guard::from_file(codes.clone(), hour, day)
                .unwrap_err()
                .to_string();
            assert!(e.contains(setting), "{codes:?} {hour:?} {day:?}: {e}");
        }
    }

    /// The caps count the outbox (rows meant for a provider only), per
    /// restaurant, over rolling windows; the notice is once per cap and
    /// window.
    #[tokio::test]
    async fn caps_count_the_outbox_and_notice_once_per_window() {
        use crate::core::config::Storage;
        use crate::core::store::Db;
        use store::{Contact, MessageState, NewMessage};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Storage::Sqlite {
            path: dir.path().join("t.sqlite"),
        })
        .await
        .unwrap();
        crate::core::migrate::migrate(
            &db,
            &[
                crate::migration!("0006_sms"),
                crate::migration!("0017_sms_caps"),
            ],
        )
        .await
        .unwrap();
        let mut conn = db.write.acquire().await.unwrap();
        let mut id = 0;
        let mut queue = async |conn: &mut AnyConnection, rest: &str, state, noticed, now| {
            id += 1;
            let contact = Contact {
                phone: "+79250000001".into(),
                phone_masked: "+7 925 ***-**-01".into(),
            };
            store::queue(
                conn,
                NewMessage {
                    id,
                    order_guid: &format!("order-{id}"),
                    kind: "kitchen",
                    rest_code: rest,
                    step: 3,
                    contact: Some(contact),
                    body: "ready",
                    provider: "smsru",
                    sender: None,
                    state,
                    error_text: None,
                    noticed,
                    now,
                },
            )
            .await
            .unwrap()
        };
        let g = Guard {
            hourly_cap: 2,
            daily_cap: 3,
            ..Guard::default()
        };
        let (t0, ru, uk) = (
            1_800_000_000_000,
            phone("+79250000001"),
            phone("+447000000001"),
        );
        // Rows that never go to a provider do not use up the cap.
        for state in MessageState::NEVER_SENT {
            assert!(queue(&mut conn, "R", state, false, t0).await);
        }
        assert_eq!(g.check(&mut conn, "R", &ru, t0).await.unwrap(), None);
        assert!(queue(&mut conn, "R", MessageState::PENDING, false, t0).await);
        assert!(queue(&mut conn, "R", MessageState::FAILED, false, t0).await);
        let hourly = Some(Refusal::HourlyCap);
        assert_eq!(g.check(&mut conn, "R", &ru, t0 + 1).await.unwrap(), hourly);
        // Another restaurant has its own count; a foreign number is refused
        // for its country whatever the count.
        assert_eq!(g.check(&mut conn, "S", &ru, t0).await.unwrap(), None);
        let country = Some(Refusal::Country);
        assert_eq!(g.check(&mut conn, "S", &uk, t0).await.unwrap(), country);
        // An hour later the hour has room; the day has one more.
        let later = t0 + HOUR_MS;
        assert_eq!(g.check(&mut conn, "R", &ru, later).await.unwrap(), None);
        assert!(queue(&mut conn, "R", MessageState::SENT, false, later).await);
        let daily = Some(Refusal::DailyCap);
        assert_eq!(g.check(&mut conn, "R", &ru, later).await.unwrap(), daily);
        assert_eq!(
            g.check(&mut conn, "R", &ru, t0 + DAY_MS).await.unwrap(),
            None
        );

        // The first refusal by a cap notices; later ones in its window not.
        let (hour, day) = (Refusal::HourlyCap, Refusal::DailyCap);
        assert!(first_in_window(&mut conn, "R", hour, t0).await.unwrap());
        assert!(queue(&mut conn, "R", MessageState::Refused(hour), true, t0).await);
        assert!(!first_in_window(&mut conn, "R", hour, t0 + 1).await.unwrap());
        let end = t0 + HOUR_MS - 1;
        assert!(!first_in_window(&mut conn, "R", hour, end).await.unwrap());
        assert!(first_in_window(&mut conn, "R", day, t0 + 1).await.unwrap());
        assert!(first_in_window(&mut conn, "S", hour, t0 + 1).await.unwrap());
        let next = t0 + HOUR_MS;
        assert!(first_in_window(&mut conn, "R", hour, next).await.unwrap());
        // The country rule has no window and raises no notice.
        let country = Refusal::Country;
        assert!(!first_in_window(&mut conn, "R", country, t0).await.unwrap());
        drop(conn);
        db.close().await;
    }

    #[test]
    fn refusals_have_stable_names_and_windows() {
        let names: Vec<_> = Refusal::ALL.map(Refusal::as_str).into();
        assert_eq!(
            names,
            ["refused_country", "refused_hourly_cap", "refused_daily_cap"]
        );
        assert_eq!(Refusal::Country.window_ms(), None);
        assert_eq!(Refusal::HourlyCap.window_ms(), Some(3_600_000));
        assert_eq!(Refusal::DailyCap.window_ms(), Some(86_400_000));
        let g = Guard::default();
        let n = g.notice(Refusal::HourlyCap, "199990093");
        assert_eq!(n.kind.as_str(), "sms_cap_reached");
        assert!(n.text.contains("300") && n.text.contains("refused_hourly_cap"));
        let text = g.explain(Refusal::Country, &phone("+447000000001"));
        assert!(!text.contains("7000000001"), "full number in {text}");
    }
}
