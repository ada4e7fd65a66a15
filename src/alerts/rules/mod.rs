//! The alert rules: a consumer of the event log that turns what happened at
//! the cash desks into alerts, recorded in the outbox.
//!
//! Each batch loads what the rules remember (orders, restaurants, stations),
//! applies the rules event by event ([`order`], [`station`], and the shift
//! close here), and writes the memory, the alerts and the cursor in one
//! transaction, so a crash neither loses an alert nor raises it twice.
//!
//! Time-based rules (silent station, silent cash server, shift closed by the
//! clock) and the gap rule need no event to fire: they live in
//! [`super::watch::Watchdog`].

pub mod order;
mod station;

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rk7::Event;

use super::payload::Alert;
use super::report;
use super::settings::Settings;
use super::store::{self, RestRow, StationWrite};
use crate::core::clock::SharedClock;
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{self, LogEntry};
use crate::core::outbox::Wake;
use crate::core::store::{Db, StoreError};
pub use order::{OrderMemory, order_rules, removed_quantity};
use station::{StationState, key_of_station, station_rules};

pub const CONSUMER_NAME: &str = "alerts";

/// Events received longer ago than this raise no alert when the consumer
/// reaches them (6 hours).
pub const STALE_MS: i64 = 6 * 3600 * 1000;

pub struct AlertConsumer {
    /// The settings in effect, re-read when the console changes them.
    pub settings: crate::alerts::settings::live::LiveSettings,
    /// Tells the sender that rows were queued.
    pub wake: Wake,
    /// "Now", for the outbox rows and the staleness cut.
    pub clock: SharedClock,
}

impl Consumer for AlertConsumer {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(async move {
            let settings = self.settings.get().await?;
            let queued = apply_batch(&settings, db, entries, self.clock.now_ms()).await?;
            if queued > 0 {
                self.wake.notify();
            }
            Ok(())
        })
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Applies a batch; returns how many outbox rows wait for delivery.
async fn apply_batch(
    settings: &Settings,
    db: &Db,
    entries: &[LogEntry],
    now: i64,
) -> Result<usize, ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(0);
    };
    let mut events = Vec::with_capacity(entries.len());
    for e in entries {
        match e.event() {
            Ok(ev) => events.push((e, ev)),
            Err(err) => {
                tracing::error!(offset = e.offset, error = %err, "stored event no longer reads; skipped by alerts")
            }
        }
    }
    // Only this consumer writes the columns read here (the watchdog sets
    // just `silent_alerted`), so they are read on a read connection and the
    // shared write lock is held only for the few statements at the end.
    let mut rd = db.read.acquire().await.map_err(StoreError::from)?;
    let mut memories: HashMap<String, OrderMemory> = HashMap::new();
    let mut rests: HashMap<String, RestState> = HashMap::new();
    let mut stations: HashMap<String, StationState> = HashMap::new();
    for (_, ev) in &events {
        if let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref())
            && let Entry::Vacant(slot) = memories.entry(guid.canonical())
        {
            let m = store::order_memory(&mut rd, slot.key()).await?;
            slot.insert(match m {
                Some(s) => serde_json::from_str(&s).map_err(corrupt)?,
                None => OrderMemory::default(),
            });
        }
        if let Some(rest) = ev.rest_code.as_ref().map(|r| r.0.as_str())
            && !rests.contains_key(rest)
        {
            let row = store::rest(&mut rd, rest).await?;
            rests.insert(rest.to_string(), RestState::stored(row));
        }
        if ev.station.is_some()
            && let Entry::Vacant(slot) = stations.entry(key_of_station(ev))
        {
            let started = store::station_started(&mut rd, slot.key()).await?;
            slot.insert(StationState::stored(started == Some(true)));
        }
    }
    let mut alerts = Vec::new();
    for (entry, ev) in &events {
        let before = alerts.len();
        rest_and_shift(settings, &mut rd, &mut rests, entry, ev, &mut alerts).await?;
        station_rules(settings, &mut stations, entry, ev, &mut alerts);
        if let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) {
            let m = memories.entry(guid.canonical()).or_default();
            order_rules(settings, m, entry, ev, &mut alerts);
        }
        // History (first start on an existing log, a cursor reset) builds
        // the memory but does not page the owners about last month.
        if now - entry.received_at > STALE_MS {
            alerts.truncate(before);
        }
    }
    drop(rd);
    let mut memory_rows = Vec::with_capacity(memories.len());
    for (key, m) in &memories {
        memory_rows.push((key, serde_json::to_string(m).map_err(corrupt)?));
    }
    let rest_rows: Vec<RestRow> = rests
        .into_iter()
        .filter_map(|(code, r)| r.into_row(code))
        .collect();
    let station_rows: Vec<StationWrite> = stations
        .into_iter()
        .filter_map(|(key, s)| {
            let seen = s.seen?;
            Some(StationWrite {
                station_key: key,
                rest_code: seen.rest_code,
                name: s.name,
                started: s.started,
                last_seen: seen.received_at,
                last_event_time: seen.time,
            })
        })
        .collect();

    let mut tx = db.write.begin().await.map_err(StoreError::from)?;
    store::save_order_memories(&mut tx, db.backend, &memory_rows).await?;
    store::save_rests(&mut tx, db.backend, &rest_rows).await?;
    store::save_stations(&mut tx, db.backend, &station_rows).await?;
    let mut queued = 0;
    for a in &alerts {
        let chats = settings.route(a.kind(), a.rest_code());
        queued += store::enqueue(&mut tx, a, &chats, now).await?;
    }
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await.map_err(StoreError::from)?;
    if !alerts.is_empty() {
        metrics::counter!("tillgate_alerts_raised_total").increment(alerts.len() as u64);
    }
    Ok(queued)
}

/// The last event that touched a restaurant or station.
pub(super) struct Seen {
    received_at: i64,
    time: Option<String>,
    offset: i64,
    rest_code: Option<String>,
}

impl Seen {
    fn of(entry: &LogEntry, ev: &Event) -> Seen {
        Seen {
            received_at: entry.received_at,
            time: ev.date_time.as_ref().map(|t| t.to_string()),
            offset: entry.offset,
            rest_code: ev.rest_code.as_ref().map(|r| r.0.clone()),
        }
    }
}

/// A restaurant as the batch goes.
struct RestState {
    shift: Option<i64>,
    reported: Option<i64>,
    /// Set once an event of the batch touched it: the row to store.
    seen: Option<Seen>,
}

impl RestState {
    fn stored(row: Option<RestRow>) -> RestState {
        RestState {
            shift: row.as_ref().and_then(|r| r.shift_num),
            reported: row.as_ref().and_then(|r| r.reported_shift),
            seen: None,
        }
    }

    /// The row to store, if an event of the batch touched it.
    fn into_row(self, rest_code: String) -> Option<RestRow> {
        let seen = self.seen?;
        Some(RestRow {
            rest_code,
            shift_num: self.shift,
            last_seen: seen.received_at,
            last_event_time: seen.time,
            last_offset: seen.offset,
            silent_alerted: 0,
            reported_shift: self.reported,
        })
    }
}

/// Tracks the restaurant's current shift and last activity. The first event
/// of a restaurant carrying a higher `ShiftNum` closes the previous shift:
/// its report is computed here, from the log up to this event, and queued.
async fn rest_and_shift(
    settings: &Settings,
    rd: &mut sqlx::AnyConnection,
    rests: &mut HashMap<String, RestState>,
    entry: &LogEntry,
    ev: &Event,
    alerts: &mut Vec<Alert>,
) -> Result<(), ConsumerError> {
    let Some(rest) = ev.rest_code.as_ref().map(|r| r.0.as_str()) else {
        return Ok(());
    };
    let row = rests
        .entry(rest.to_string())
        .or_insert_with(|| RestState::stored(None));
    let prev_shift = row.shift;
    let reported = row.reported;
    if let Some(n) = ev.shift_num {
        if let Some(p) = prev_shift
            && n > p
            && settings.rules_for(Some(rest)).shift_report
            && reported.is_none_or(|r| r < p)
        {
            // The log up to this event is committed (consumers read only
            // committed entries), so a read connection sees all of it.
            let rep = report::compute_in(rd, settings, rest, p, entry.offset - 1).await?;
            alerts.push(Alert::ShiftReport(rep));
            row.reported = Some(p);
        }
        if prev_shift.is_none_or(|p| n > p) {
            row.shift = Some(n);
        }
    }
    row.seen = Some(Seen::of(entry, ev));
    Ok(())
}
