//! Ground truth of a simulated run: what tillgate should conclude.
//!
//! It is filled in by the generator from its own bookkeeping while it builds
//! the events, never by re-reading them, so a test that compares tillgate's
//! answers (or the events themselves) with it checks two independent
//! computations against each other.
//!
//! Sign conventions: every figure here is what a person would say, so
//! discounts are positive kopecks even though the XML carries them negative
//! (r_keeper's convention: a discount line has a negative `amount`, a markup
//! a positive one). A return order has a negative total and negative paid sum.

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything a test may want to compare against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Truth {
    /// Every order, keyed by its guid exactly as written in the XML (upper
    /// case in braces, which is also `rk7::Guid::canonical`).
    pub orders: BTreeMap<String, OrderTruth>,
    /// One entry per restaurant and common shift, sorted by (rest_code, shift_num).
    pub shifts: Vec<ShiftTruth>,
    /// Fiscal receipts deleted after they were closed (Situation 14).
    pub deleted_receipts: Vec<OpTruth>,
    /// Pre-bills printed and then cancelled.
    pub cancelled_prebills: Vec<OpTruth>,
    /// Dishes deleted after they were printed to the kitchen (a `<Void>`).
    pub voids_after_print: Vec<OpTruth>,
    /// Dishes added and deleted again before the order was saved (no
    /// `<Void>`: only the ChangeLog `1000 -> 0` shows it).
    pub unsaved_deletions: Vec<OpTruth>,
    /// Discounts given (amount positive).
    pub discounts: Vec<OpTruth>,
    /// Return orders (amount negative: money given back).
    pub returns: Vec<OpTruth>,
    /// Banquet orders (hundreds of lines); amount is the order total.
    pub banquets: Vec<OpTruth>,
    /// Station sign-ins, logoffs and closings, for station-state tests.
    pub station_events: Vec<StationEventTruth>,
}

/// One notable operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpTruth {
    /// RestCode of the restaurant.
    pub rest_code: String,
    /// `<Server name>` of the cash server.
    pub server_name: String,
    /// `<Station code>` where it happened.
    pub station_code: i64,
    /// Common shift number.
    pub shift_num: i64,
    /// The order's guid as in the XML.
    pub order_guid: String,
    /// The event time (`DateTime` of the event that shows it), local.
    pub at: String,
    /// Kopecks involved (receipt amount, void amount, discount, ...).
    pub amount: i64,
    /// Who did it (the person's name as in the XML).
    pub who: String,
    /// Dish name, reason, receipt number: whatever identifies it for a human.
    pub detail: String,
}

/// A station sign-in (21), logoff (10) or closing (18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationEventTruth {
    /// RestCode.
    pub rest_code: String,
    /// `<Server name>`.
    pub server_name: String,
    /// `<Station code>`.
    pub station_code: i64,
    /// The Situation code.
    pub situation: i64,
    /// Event time, local.
    pub at: String,
}

/// The final state of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderTruth {
    /// RestCode.
    pub rest_code: String,
    /// `<Server name>` of the cash server that owns the order.
    pub server_name: String,
    /// `<Station code>` the order was taken on.
    pub station_code: i64,
    /// Common shift number of the order's events.
    pub shift_num: i64,
    /// `visit` attribute.
    pub visit: i64,
    /// `orderIdent` attribute.
    pub order_ident: i64,
    /// Final status, in the words of `orders::state::OrderStatus::as_str`:
    /// `closed`, `deleted` or `return` at the end of a day.
    pub status: &'static str,
    /// What the guest pays after discounts (kopecks); 0 for a deleted order,
    /// negative for a return.
    pub total: i64,
    /// Sum of the fiscal receipts that were not deleted (kopecks).
    pub paid: i64,
    /// Discount given (positive kopecks).
    pub discount: i64,
    /// Dish lines left in the order with a quantity (voided and unsaved
    /// deleted lines excluded).
    pub dish_count: usize,
    /// Sum of the quantities of those lines (thousandths).
    pub dish_qty: i64,
    /// Guest phone (ExternalProp `phone`), when the guest gave one.
    pub phone: Option<String>,
    /// Order-level `kdsstate` values in the order they were sent.
    pub kds_steps: Vec<String>,
    /// Number of fiscal receipts that were not deleted.
    pub receipts: u32,
    /// Payments that were not deleted, by currency name (kopecks).
    pub payments_by_currency: BTreeMap<String, i64>,
    /// A banquet order (hundreds of lines).
    pub banquet: bool,
    /// Time of the New Order event, local.
    pub opened_at: String,
    /// Time of the last event of the order, local.
    pub last_event_at: String,
    /// Number of events that carried this order.
    pub events: u32,
}

/// One common shift of one restaurant (all its cash servers together).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ShiftTruth {
    /// RestCode.
    pub rest_code: String,
    /// ShiftNum.
    pub shift_num: i64,
    /// ShiftDate, local (`YYYY-MM-DDT00:00:00`).
    pub shift_date: String,
    /// Sum of fiscal receipts not deleted, returns negative (kopecks).
    pub revenue: i64,
    /// Fiscal receipts not deleted (return receipts included).
    pub receipts: u32,
    /// Payments not deleted by currency name (kopecks).
    pub payments_by_currency: BTreeMap<String, i64>,
    /// Discounts given in the shift (positive kopecks).
    pub discounts: i64,
    /// Dishes voided after print.
    pub voids: u32,
    /// Fiscal receipts deleted.
    pub deleted_receipts: u32,
    /// Orders closed (paid and closed; returns and deleted orders excluded).
    pub closed_orders: u32,
    /// Net quantity sold per dish name (thousandths; return lines subtract).
    pub dish_qty: BTreeMap<String, i64>,
    /// Revenue by the hour (0..=23) of the receipt's print time (kopecks).
    pub sales_by_hour: BTreeMap<u32, i64>,
}

impl Truth {
    /// The shift of `rest_code` / `shift_num`, created on first use.
    pub(crate) fn shift_mut(
        &mut self,
        rest_code: &str,
        shift_num: i64,
        date: &str,
    ) -> &mut ShiftTruth {
        let pos = match self
            .shifts
            .binary_search_by(|s| (s.rest_code.as_str(), s.shift_num).cmp(&(rest_code, shift_num)))
        {
            Ok(p) => p,
            Err(p) => {
                self.shifts.insert(
                    p,
                    ShiftTruth {
                        rest_code: rest_code.to_string(),
                        shift_num,
                        shift_date: date.to_string(),
                        ..Default::default()
                    },
                );
                p
            }
        };
        &mut self.shifts[pos]
    }
}
