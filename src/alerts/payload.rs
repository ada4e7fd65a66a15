//! What an outbox row carries: a tagged, versioned alert.
//!
//! The payload holds facts, not text: the message is rendered when it is
//! sent, so a fixed template or a language switch applies to alerts still
//! waiting in the outbox. `PAYLOAD_VERSION` is stored per row; a future
//! incompatible change adds a version and keeps reading the old one.

use serde::{Deserialize, Serialize};

use super::kind::AlertKind;
use super::report::ShiftReport;

pub const PAYLOAD_VERSION: i64 = 1;

/// Which order an alert is about, as people in the restaurant name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OrderRef {
    pub guid: String,
    pub name: Option<String>,
    pub table: Option<String>,
    pub waiter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    ReceiptDeleted {
        rest_code: Option<String>,
        order: OrderRef,
        check_num: Option<i64>,
        /// Kopecks.
        amount: i64,
        cashier: Option<String>,
        manager: Option<String>,
        reason: Option<String>,
        at: Option<String>,
    },
    PrebillCancelled {
        rest_code: Option<String>,
        order: OrderRef,
        check_num: Option<i64>,
        amount: i64,
        cashier: Option<String>,
        manager: Option<String>,
        reason: Option<String>,
        at: Option<String>,
    },
    DishVoided {
        rest_code: Option<String>,
        order: OrderRef,
        dish: Option<String>,
        /// Thousandths of a portion.
        quantity: i64,
        amount: i64,
        who: Option<String>,
        reason: Option<String>,
        at: Option<String>,
    },
    UnsavedDishDeleted {
        rest_code: Option<String>,
        order: OrderRef,
        dish: Option<String>,
        quantity: i64,
        who: Option<String>,
        at: Option<String>,
    },
    DiscountOverThreshold {
        rest_code: Option<String>,
        order: OrderRef,
        discount: i64,
        /// Order total before discounts.
        order_sum: i64,
        percent: i64,
        names: Vec<String>,
        at: Option<String>,
    },
    PaymentDeleted {
        rest_code: Option<String>,
        order: OrderRef,
        currency: Option<String>,
        amount: i64,
        at: Option<String>,
    },
    TotalLoweredAfterPrebill {
        rest_code: Option<String>,
        order: OrderRef,
        before: i64,
        after: i64,
        at: Option<String>,
    },
    StationClosed {
        rest_code: Option<String>,
        station: String,
        who: Option<String>,
        at: Option<String>,
    },
    StationSilent {
        rest_code: Option<String>,
        station: String,
        minutes: i64,
        last_event_time: Option<String>,
    },
    StationRestarted {
        rest_code: Option<String>,
        station: String,
        at: Option<String>,
    },
    StreamGap {
        rest_code: Option<String>,
        stream: String,
        from_seq: i64,
        to_seq: i64,
        missing: i64,
    },
    ServerSilent {
        rest_code: Option<String>,
        minutes: i64,
        last_event_time: Option<String>,
    },
    Operator {
        rest_code: Option<String>,
        source: String,
        text: String,
    },
    ShiftReport(ShiftReport),
}

impl Alert {
    /// The kind; its name is also the payload's `kind` tag.
    pub fn kind(&self) -> AlertKind {
        match self {
            Alert::ReceiptDeleted { .. } => AlertKind::ReceiptDeleted,
            Alert::PrebillCancelled { .. } => AlertKind::PrebillCancelled,
            Alert::DishVoided { .. } => AlertKind::DishVoided,
            Alert::UnsavedDishDeleted { .. } => AlertKind::UnsavedDishDeleted,
            Alert::DiscountOverThreshold { .. } => AlertKind::DiscountOverThreshold,
            Alert::PaymentDeleted { .. } => AlertKind::PaymentDeleted,
            Alert::TotalLoweredAfterPrebill { .. } => AlertKind::TotalLoweredAfterPrebill,
            Alert::StationClosed { .. } => AlertKind::StationClosed,
            Alert::StationSilent { .. } => AlertKind::StationSilent,
            Alert::StationRestarted { .. } => AlertKind::StationRestarted,
            Alert::StreamGap { .. } => AlertKind::StreamGap,
            Alert::ServerSilent { .. } => AlertKind::ServerSilent,
            Alert::Operator { .. } => AlertKind::Operator,
            Alert::ShiftReport(_) => AlertKind::ShiftReport,
        }
    }

    pub fn rest_code(&self) -> Option<&str> {
        match self {
            Alert::ReceiptDeleted { rest_code, .. }
            | Alert::PrebillCancelled { rest_code, .. }
            | Alert::DishVoided { rest_code, .. }
            | Alert::UnsavedDishDeleted { rest_code, .. }
            | Alert::DiscountOverThreshold { rest_code, .. }
            | Alert::PaymentDeleted { rest_code, .. }
            | Alert::TotalLoweredAfterPrebill { rest_code, .. }
            | Alert::StationClosed { rest_code, .. }
            | Alert::StationSilent { rest_code, .. }
            | Alert::StationRestarted { rest_code, .. }
            | Alert::StreamGap { rest_code, .. }
            | Alert::ServerSilent { rest_code, .. }
            | Alert::Operator { rest_code, .. } => rest_code.as_deref(),
            Alert::ShiftReport(r) => Some(&r.rest_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_tag_is_the_kind_name() {
        for a in [
            Alert::Operator {
                rest_code: None,
                source: "test".into(),
                text: "hi".into(),
            },
            Alert::StreamGap {
                rest_code: None,
                stream: "{G}".into(),
                from_seq: 1,
                to_seq: 2,
                missing: 2,
            },
            Alert::ShiftReport(ShiftReport::default()),
        ] {
            let v = serde_json::to_value(&a).unwrap();
            assert_eq!(v["kind"], a.kind().as_str(), "{v}");
        }
    }
}
