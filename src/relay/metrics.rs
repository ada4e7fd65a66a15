//! Relay's metrics: the names and HELP lines, described once at start, and
//! each destination's series, registered at zero when its worker starts so
//! `/metrics` lists them before the first delivery (a dashboard or an alert
//! can then tell "nothing delivered yet" from "not running").

use metrics::{Counter, Gauge};

use crate::core::telemetry::{self, Kind};

const DELIVERED: &str = "tillgate_relay_delivered_total";
const FAILED_ATTEMPTS: &str = "tillgate_relay_failed_attempts_total";
const DEAD_LETTERS: &str = "tillgate_relay_dead_letters_total";
const PAUSED: &str = "tillgate_relay_paused";
const LAG_EVENTS: &str = "tillgate_relay_lag_events";
const LAG_SECONDS: &str = "tillgate_relay_lag_seconds";

/// Gives every relay metric its HELP line (all are labelled by
/// `destination`).
pub fn describe() {
    use Kind::*;
    telemetry::describe(
        Counter,
        DELIVERED,
        "Events a relay destination accepted (2xx), dead letters re-sent by the operator included.",
        true,
    );
    telemetry::describe(
        Counter,
        FAILED_ATTEMPTS,
        "Relay sends that failed (timeout, connection error, non-2xx answer); every retry counts.",
        true,
    );
    telemetry::describe(
        Counter,
        DEAD_LETTERS,
        "Events a relay destination refused with a 4xx, moved to its dead-letter list.",
        true,
    );
    telemetry::describe(
        Gauge,
        PAUSED,
        "1 while a relay destination is paused (410 Gone, or failing longer than pause_after_ms), else 0.",
        true,
    );
    telemetry::describe(
        Gauge,
        LAG_EVENTS,
        "Events committed to the log that a relay destination has not gone through yet.",
        true,
    );
    telemetry::describe(
        Gauge,
        LAG_SECONDS,
        "Age of the oldest event a relay destination has not gone through yet (0 when caught up).",
        true,
    );
}

/// Registers `destination`'s series. Counters and lag keep the value they
/// have (a restarted worker must not reset them); `paused` is set.
pub fn register(destination: &str, paused: bool) {
    delivered(destination).increment(0);
    failed_attempts(destination).increment(0);
    dead_letters(destination).increment(0);
    lag_events(destination).increment(0.0);
    lag_seconds(destination).increment(0.0);
    set_paused(destination, paused);
}

pub fn delivered(destination: &str) -> Counter {
    metrics::counter!(DELIVERED, "destination" => destination.to_string())
}

pub fn failed_attempts(destination: &str) -> Counter {
    metrics::counter!(FAILED_ATTEMPTS, "destination" => destination.to_string())
}

pub fn dead_letters(destination: &str) -> Counter {
    metrics::counter!(DEAD_LETTERS, "destination" => destination.to_string())
}

pub fn set_paused(destination: &str, paused: bool) {
    metrics::gauge!(PAUSED, "destination" => destination.to_string()).set(if paused {
        1.0
    } else {
        0.0
    });
}

pub fn lag_events(destination: &str) -> Gauge {
    metrics::gauge!(LAG_EVENTS, "destination" => destination.to_string())
}

pub fn lag_seconds(destination: &str) -> Gauge {
    metrics::gauge!(LAG_SECONDS, "destination" => destination.to_string())
}
