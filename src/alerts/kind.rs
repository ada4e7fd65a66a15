//! The alert kinds: one enum for the names used in routing lists, template
//! file names, the payload's `kind` tag, `GET /api/alerts` and the `kind`
//! metric label, so a kind cannot be spelled differently in two places.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an alert is about. The snake-case name ([`AlertKind::as_str`]) is
/// the one people configure and the API shows; it is also the `kind` tag of
/// the stored payload ([`super::payload::Alert`]), which is why the variants
/// carry the same names as the payload's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    ReceiptDeleted,
    PrebillCancelled,
    DishVoided,
    UnsavedDishDeleted,
    DiscountOverThreshold,
    PaymentDeleted,
    TotalLoweredAfterPrebill,
    StationClosed,
    StationSilent,
    StationRestarted,
    StreamGap,
    ServerSilent,
    /// Notices from other features and answers to bot commands.
    Operator,
    ShiftReport,
}

impl AlertKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [AlertKind; 14] = [
        AlertKind::ReceiptDeleted,
        AlertKind::PrebillCancelled,
        AlertKind::DishVoided,
        AlertKind::UnsavedDishDeleted,
        AlertKind::DiscountOverThreshold,
        AlertKind::PaymentDeleted,
        AlertKind::TotalLoweredAfterPrebill,
        AlertKind::StationClosed,
        AlertKind::StationSilent,
        AlertKind::StationRestarted,
        AlertKind::StreamGap,
        AlertKind::ServerSilent,
        AlertKind::Operator,
        AlertKind::ShiftReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ReceiptDeleted => "receipt_deleted",
            AlertKind::PrebillCancelled => "prebill_cancelled",
            AlertKind::DishVoided => "dish_voided",
            AlertKind::UnsavedDishDeleted => "unsaved_dish_deleted",
            AlertKind::DiscountOverThreshold => "discount_over_threshold",
            AlertKind::PaymentDeleted => "payment_deleted",
            AlertKind::TotalLoweredAfterPrebill => "total_lowered_after_prebill",
            AlertKind::StationClosed => "station_closed",
            AlertKind::StationSilent => "station_silent",
            AlertKind::StationRestarted => "station_restarted",
            AlertKind::StreamGap => "stream_gap",
            AlertKind::ServerSilent => "server_silent",
            AlertKind::Operator => "operator",
            AlertKind::ShiftReport => "shift_report",
        }
    }

    /// Every name, for error messages.
    pub fn names() -> String {
        AlertKind::ALL.map(AlertKind::as_str).join(", ")
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for AlertKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Read from the outbox's `kind` column.
impl TryFrom<String> for AlertKind {
    type Error = UnknownKind;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert!("everything".parse::<AlertKind>().is_err());
    }
}
