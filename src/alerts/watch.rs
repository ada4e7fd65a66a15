//! Rules that fire on the clock or on store facts rather than on an event:
//! lost events (the log's gaps table), a started station gone silent, a cash
//! server silent during opening hours, and the shift closed by the
//! configured closing time. [`Watchdog::run_once`] takes "now" as an argument
//! so tests move time without sleeping.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, NaiveDateTime, NaiveTime};

use super::payload::Alert;
use super::report;
use super::settings::Settings;
use super::store;
use crate::core::clock::SharedClock;
use crate::core::log;
use crate::core::outbox::{OutboxWorker, Step, Wake};
use crate::core::store::{Db, StoreError};

pub struct Watchdog {
    pub db: Db,
    pub settings: Settings,
}

fn local(settings: &Settings, rest_code: &str, ms: i64) -> NaiveDateTime {
    let offset = settings.utc_offset_for(Some(rest_code));
    chrono::DateTime::from_timestamp_millis(ms + offset as i64 * 60_000)
        .unwrap_or_default()
        .naive_utc()
}

fn within(t: NaiveTime, (open, close): (NaiveTime, NaiveTime)) -> bool {
    if open <= close {
        t >= open && t < close
    } else {
        // Past midnight, e.g. 10:00-02:00.
        t >= open || t < close
    }
}

impl Watchdog {
    /// Checks everything once; returns how many outbox rows wait for
    /// delivery.
    pub async fn run_once(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut alerts: Vec<Alert> = Vec::new();
        let mut tx = self.db.write.begin().await?;

        // Gaps, from the log's own table, after our cursor.
        let cursor = store::meta_for_update(&mut tx, store::GAP_CURSOR).await?;
        let gaps = log::gaps(&self.db, cursor, 1000).await?;
        if let Some(last) = gaps.last() {
            store::set_meta(&mut tx, store::GAP_CURSOR, last.id).await?;
        }
        for g in gaps {
            if self.settings.rules_for(g.rest_code.as_deref()).stream_gap {
                alerts.push(Alert::StreamGap {
                    rest_code: g.rest_code,
                    stream: g.stream_guid,
                    from_seq: g.from_seq,
                    to_seq: g.to_seq,
                    missing: g.missing,
                });
            }
        }

        // Stations started and silent since.
        for st in store::quiet_stations(&mut tx).await? {
            let rules = self.settings.rules_for(st.rest_code.as_deref());
            let silence = rules.station_silence.as_millis() as i64;
            if rules.station_silent && now_ms - st.last_seen >= silence {
                store::set_station_silent(&mut tx, &st.station_key).await?;
                alerts.push(Alert::StationSilent {
                    rest_code: st.rest_code,
                    station: st.name,
                    minutes: (now_ms - st.last_seen) / 60_000,
                    last_event_time: st.last_event_time,
                });
            }
        }

        // Restaurants: silence in opening hours, shift closed by the clock.
        for (code, rest) in &self.settings.restaurants {
            let now_local = local(&self.settings, code, now_ms);
            let Some(row) = store::rest(&mut tx, code).await? else {
                continue;
            };
            if let Some(hours) = rest.opening_hours
                && rest.rules.server_silent
                && row.silent_alerted == 0
                && within(now_local.time(), hours)
                && now_ms - row.last_seen >= rest.rules.server_silence.as_millis() as i64
            {
                store::set_rest_silent(&mut tx, code).await?;
                alerts.push(Alert::ServerSilent {
                    rest_code: Some(code.clone()),
                    minutes: (now_ms - row.last_seen) / 60_000,
                    last_event_time: row.last_event_time.clone(),
                });
            }
            if let (Some(closing), Some(s)) = (rest.closing_time, row.shift_num)
                && rest.rules.shift_report
                && row.reported_shift.is_none_or(|r| r < s)
            {
                // The latest closing moment at or before now (local).
                let mut close_at = now_local.date().and_time(closing);
                if close_at > now_local {
                    close_at -= ChronoDuration::days(1);
                }
                if local(&self.settings, code, row.last_seen) < close_at {
                    let rep = report::compute_in(&mut tx, &self.settings, code, s, row.last_offset)
                        .await?;
                    store::set_reported_shift(&mut tx, code, s).await?;
                    alerts.push(Alert::ShiftReport(rep));
                }
            }
        }
        let mut queued = 0;
        for a in &alerts {
            let chats = self.settings.route(a.kind(), a.rest_code());
            queued += store::enqueue(&mut tx, a, &chats, now_ms).await?;
        }
        tx.commit().await?;
        Ok(queued)
    }
}

/// The watchdog on the worker loop: a check every 20 seconds, and the
/// sender woken when it queued something.
pub struct WatchdogWorker {
    pub dog: Watchdog,
    /// Where `dog.settings` is refreshed from before each round.
    pub live: Option<crate::alerts::settings::live::LiveSettings>,
    pub clock: SharedClock,
    /// The sender's wake-up.
    pub sender: Wake,
}

/// How often the clock-driven rules are checked: well within the shortest
/// silence one can configure (a minute).
pub const PERIOD: Duration = Duration::from_secs(20);

impl OutboxWorker for WatchdogWorker {
    type Error = StoreError;
    async fn run_once(&mut self) -> Result<Step, StoreError> {
        if let Some(live) = &self.live {
            self.dog.settings = (*live.get().await?).clone();
        }
        if self.dog.run_once(self.clock.now_ms()).await? > 0 {
            self.sender.notify();
        }
        Ok(Step::Wait(PERIOD))
    }
}
