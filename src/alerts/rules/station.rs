//! The station rules: a station closed (Situation 18), or started again
//! without a close in between. The station's state (started or not) is
//! kept across events in `alerts_stations`; the watchdog reads it for the
//! silence rule.

use std::collections::HashMap;

use rk7::{Event, Situation};

use super::Seen;
use crate::alerts::payload::Alert;
use crate::alerts::settings::Settings;
use crate::core::book::station_key;
use crate::core::log::LogEntry;

/// A station as the batch goes.
pub(super) struct StationState {
    pub started: bool,
    /// The name the last event gave it.
    pub name: String,
    /// Set once an event of the batch touched it: the row to store.
    pub seen: Option<Seen>,
}

impl StationState {
    pub fn stored(started: bool) -> StationState {
        StationState {
            started,
            name: String::new(),
            seen: None,
        }
    }
}

pub(super) fn key_of_station(ev: &Event) -> String {
    station_key(
        ev.rest_code.as_ref().map(|r| r.0.as_str()),
        ev.server.as_ref().and_then(|s| s.id),
        ev.station.as_ref().and_then(|s| s.id),
    )
}

fn station_name(ev: &Event) -> String {
    ev.station
        .as_ref()
        .and_then(|s| s.name.clone().or(s.net_name.clone()))
        .or_else(|| {
            ev.station
                .as_ref()
                .and_then(|s| s.id)
                .map(|i| i.to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Applies one event to its station (loaded in `stations` beforehand).
pub(super) fn station_rules(
    settings: &Settings,
    stations: &mut HashMap<String, StationState>,
    entry: &LogEntry,
    ev: &Event,
    alerts: &mut Vec<Alert>,
) {
    if ev.station.is_none() {
        return;
    }
    let rest = ev.rest_code.as_ref().map(|r| r.0.clone());
    let rules = settings.rules_for(rest.as_deref());
    let name = station_name(ev);
    let time = ev.date_time.as_ref().map(|t| t.to_string());
    let row = stations
        .entry(key_of_station(ev))
        .or_insert_with(|| StationState::stored(false));
    let was_started = row.started;
    row.started = match ev.situation {
        Situation::ServerOrStationStarted => {
            if was_started && rules.station_restarted {
                alerts.push(Alert::StationRestarted {
                    rest_code: rest.clone(),
                    station: name.clone(),
                    at: time.clone(),
                });
            }
            true
        }
        Situation::StationClosed => {
            if rules.station_closed {
                alerts.push(Alert::StationClosed {
                    rest_code: rest.clone(),
                    station: name.clone(),
                    who: ev.waiter.as_ref().and_then(|w| w.name.clone()),
                    at: time.clone(),
                });
            }
            false
        }
        // Any other event proves the station is up, even if we missed its start.
        _ => true,
    };
    row.seen = Some(Seen::of(entry, ev));
    row.name = name;
}
