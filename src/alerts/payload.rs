//! What an outbox row carries: a tagged, versioned alert.
//!
//! The payload holds facts, not text: the message is rendered when it is
//! sent, so a fixed template or a language switch applies to alerts still
//! waiting in the outbox. `PAYLOAD_VERSION` is stored per row; a future
//! incompatible change adds a version and keeps reading the old one.

use serde::{Deserialize, Serialize};

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
    /// The routing/API name of the kind (one of [`super::settings::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::ReceiptDeleted { .. } => "receipt_deleted",
            Alert::PrebillCancelled { .. } => "prebill_cancelled",
            Alert::DishVoided { .. } => "dish_voided",
            Alert::UnsavedDishDeleted { .. } => "unsaved_dish_deleted",
            Alert::DiscountOverThreshold { .. } => "discount_over_threshold",
            Alert::PaymentDeleted { .. } => "payment_deleted",
            Alert::TotalLoweredAfterPrebill { .. } => "total_lowered_after_prebill",
            Alert::StationClosed { .. } => "station_closed",
            Alert::StationSilent { .. } => "station_silent",
            Alert::StationRestarted { .. } => "station_restarted",
            Alert::StreamGap { .. } => "stream_gap",
            Alert::ServerSilent { .. } => "server_silent",
            Alert::Operator { .. } => "operator",
            Alert::ShiftReport(_) => "shift_report",
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
