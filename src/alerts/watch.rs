//! Rules that fire on the clock or on store facts rather than on an event:
//! lost events (the log's gaps table), a started station gone silent, a cash
//! server silent during opening hours, and the shift closed by the
//! configured closing time. [`Watchdog::run_once`] takes "now" as an argument
//! so tests move time without sleeping.

use chrono::{Duration as ChronoDuration, NaiveDateTime, NaiveTime};
use sqlx::Row;

use super::outbox;
use super::payload::Alert;
use super::report;
use super::settings::Settings;
use crate::core::log;
use crate::core::store::{Db, StoreError};

pub struct Watchdog {
    pub db: Db,
    pub settings: Settings,
}

fn local(settings: &Settings, ms: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms + settings.utc_offset_minutes as i64 * 60_000)
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
    /// Checks everything once; returns how many alerts were queued.
    pub async fn run_once(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut alerts: Vec<Alert> = Vec::new();
        let mut tx = self.db.write.begin().await?;
        // Take the write lock first: a SQLite transaction that reads and
        // then writes fails at once (not after busy_timeout) if another
        // connection wrote in between.
        sqlx::query("UPDATE alerts_meta SET value = value WHERE key = 'gap_cursor'")
            .execute(&mut *tx)
            .await?;

        // Gaps, from the log's own table, after our cursor.
        let cursor: i64 =
            sqlx::query_scalar("SELECT value FROM alerts_meta WHERE key = 'gap_cursor'")
                .fetch_one(&mut *tx)
                .await?;
        let gaps = log::gaps(&self.db, cursor, 1000).await?;
        if let Some(last) = gaps.last() {
            outbox::set_meta(&mut tx, "gap_cursor", last.id).await?;
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
        let rows = sqlx::query(
            "SELECT station_key, rest_code, name, last_seen, last_event_time FROM alerts_stations WHERE started = 1 AND silent_alerted = 0",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let rest: Option<String> = r.try_get(1)?;
            let rules = self.settings.rules_for(rest.as_deref());
            let last_seen: i64 = r.try_get(3)?;
            let silence = rules.station_silence.as_millis() as i64;
            if rules.station_silent && now_ms - last_seen >= silence {
                let key: String = r.try_get(0)?;
                sqlx::query("UPDATE alerts_stations SET silent_alerted = 1 WHERE station_key = $1")
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
                alerts.push(Alert::StationSilent {
                    rest_code: rest,
                    station: r.try_get(2)?,
                    minutes: (now_ms - last_seen) / 60_000,
                    last_event_time: r.try_get(4)?,
                });
            }
        }

        // Restaurants: silence in opening hours, shift closed by the clock.
        let now_local = local(&self.settings, now_ms);
        for (code, rest) in &self.settings.restaurants {
            let row = sqlx::query(
                "SELECT shift_num, last_seen, last_event_time, last_offset, silent_alerted, reported_shift FROM alerts_rests WHERE rest_code = $1",
            )
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let shift: Option<i64> = row.try_get(0)?;
            let last_seen: i64 = row.try_get(1)?;
            let last_event_time: Option<String> = row.try_get(2)?;
            let last_offset: i64 = row.try_get(3)?;
            let silent_alerted: i64 = row.try_get(4)?;
            let reported: Option<i64> = row.try_get(5)?;
            if let Some(hours) = rest.opening_hours
                && rest.rules.server_silent
                && silent_alerted == 0
                && within(now_local.time(), hours)
                && now_ms - last_seen >= rest.rules.server_silence.as_millis() as i64
            {
                sqlx::query("UPDATE alerts_rests SET silent_alerted = 1 WHERE rest_code = $1")
                    .bind(code)
                    .execute(&mut *tx)
                    .await?;
                alerts.push(Alert::ServerSilent {
                    rest_code: Some(code.clone()),
                    minutes: (now_ms - last_seen) / 60_000,
                    last_event_time,
                });
            }
            if let (Some(closing), Some(s)) = (rest.closing_time, shift)
                && rest.rules.shift_report
                && reported.is_none_or(|r| r < s)
            {
                // The latest closing moment at or before now (local).
                let mut close_at = now_local.date().and_time(closing);
                if close_at > now_local {
                    close_at -= ChronoDuration::days(1);
                }
                if local(&self.settings, last_seen) < close_at {
                    let rep =
                        report::compute_in(&mut tx, &self.settings, code, s, last_offset).await?;
                    sqlx::query("UPDATE alerts_rests SET reported_shift = $2 WHERE rest_code = $1")
                        .bind(code)
                        .bind(s)
                        .execute(&mut *tx)
                        .await?;
                    alerts.push(Alert::ShiftReport(rep));
                }
            }
        }
        for a in &alerts {
            let chats = self.settings.route(a.kind(), a.rest_code());
            outbox::enqueue(&mut tx, a, &chats, now_ms).await?;
        }
        tx.commit().await?;
        Ok(alerts.len())
    }
}
