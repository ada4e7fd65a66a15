//! The order book: the pure fold from events to order, station and shift
//! state, shared by every feature that needs to know what an order is now.
//!
//! It lives in the core, beside the log it folds, because several features
//! need the same answer: order state stores it, alerts compares an order
//! before and after an event, the shift report totals it. No I/O here: the
//! order-state consumer loads the touched rows, calls [`Book::apply`] and
//! writes them back. Keeping the fold pure is what lets a test compare
//! the stored state with a replay of the whole log.
//!
//! How an order's status follows from the events (r_keeper sends the whole
//! current order with every order event, so the latest content wins, and a
//! few facts are sticky):
//! - `deleted`: the order carries `deleted="1"`;
//! - `return`: the order is a return (`purchase="1"` or a `SourceOrder`);
//! - `closed`: `finished="1"`, or a Situation 9 (order closed) event for it;
//! - `paid`: a receipt (PrintCheck with `bill` not 1) that is not deleted,
//!   and nothing left unpaid;
//! - `prebill`: a pre-bill (PrintCheck `bill="1"`) that is not deleted;
//! - `open`: otherwise.
//!
//! The first matching rule, in that order, gives the status.

use std::collections::{BTreeMap, HashMap};

use rk7::{Event, Situation};
use serde::{Deserialize, Serialize};

use crate::core::log::LogEntry;

/// Accepts `{GUID}`, `GUID`, with or without dashes, any case; answers the
/// canonical form the order table is keyed by.
pub fn normalise_guid(s: &str) -> Option<String> {
    rk7::Guid::parse(s).ok().map(|g| g.canonical())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    #[default]
    Open,
    Prebill,
    Paid,
    Closed,
    Deleted,
    Return,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Prebill => "prebill",
            OrderStatus::Paid => "paid",
            OrderStatus::Closed => "closed",
            OrderStatus::Deleted => "deleted",
            OrderStatus::Return => "return",
        }
    }
    pub fn parse(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "open" => OrderStatus::Open,
            "prebill" => OrderStatus::Prebill,
            "paid" => OrderStatus::Paid,
            "closed" => OrderStatus::Closed,
            "deleted" => OrderStatus::Deleted,
            "return" => OrderStatus::Return,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DishLine {
    pub uni: Option<i64>,
    pub code: Option<i64>,
    pub name: Option<String>,
    /// Thousandths of a portion.
    pub quantity: i64,
    /// Kopecks.
    pub price: i64,
    pub amount: i64,
    pub state: Option<i64>,
    pub kds_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidRecord {
    pub dish_uni: Option<i64>,
    pub dish_code: Option<i64>,
    pub dish_name: Option<String>,
    pub quantity: i64,
    pub amount: i64,
    pub who: Option<String>,
    pub reason: Option<String>,
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscountLine {
    pub code: Option<i64>,
    pub name: Option<String>,
    pub amount: i64,
    pub deleted: bool,
    pub dish_uni: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLine {
    pub code: Option<i64>,
    pub name: Option<String>,
    pub amount: i64,
    pub deleted: bool,
    pub prepay: bool,
    pub transaction_status: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub check_num: Option<i64>,
    /// A pre-bill (`bill="1"`), not a fiscal receipt.
    pub bill: bool,
    pub amount: i64,
    pub deleted: bool,
    pub print_time: Option<String>,
    pub author: Option<String>,
    pub deleted_by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OrderSnapshot {
    pub guid: String,
    pub rest_code: Option<String>,
    pub visit: Option<i64>,
    pub order_ident: Option<i64>,
    pub order_name: Option<String>,
    pub table: Option<String>,
    pub waiter: Option<String>,
    pub status: OrderStatus,
    pub is_return: bool,
    pub opened_at: Option<String>,
    pub updated_at: Option<String>,
    pub shift_num: Option<i64>,
    pub order_sum: i64,
    pub discount_sum: i64,
    pub unpaid_sum: i64,
    pub prepay_sum: i64,
    /// Sum of receipts that are not deleted (kopecks).
    pub paid_sum: i64,
    pub kds_state: Option<String>,
    pub dishes: Vec<DishLine>,
    pub voids: Vec<VoidRecord>,
    pub discounts: Vec<DiscountLine>,
    pub payments: Vec<PaymentLine>,
    pub receipts: Vec<Receipt>,
    pub external_props: BTreeMap<String, String>,
    /// Set once an order-closed event (Situation 9) was seen.
    pub closed_event: bool,
    /// Offsets of the events that touched this order.
    pub events: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StationSnapshot {
    pub key: String,
    pub rest_code: Option<String>,
    pub station_id: Option<i64>,
    pub code: Option<i64>,
    pub name: Option<String>,
    pub net_name: Option<String>,
    pub server_id: Option<i64>,
    pub online: bool,
    pub logged_in: Option<String>,
    pub last_event_time: Option<String>,
    pub last_received_at: i64,
    pub last_situation: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServerSnapshot {
    pub key: String,
    pub rest_code: Option<String>,
    pub server_id: Option<i64>,
    pub name: Option<String>,
    pub net_name: Option<String>,
    pub started_at: Option<String>,
    pub last_event_time: Option<String>,
    pub last_received_at: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShiftSnapshot {
    pub rest_code: String,
    pub shift_num: i64,
    pub shift_date: Option<String>,
    pub first_event_time: Option<String>,
    pub last_event_time: Option<String>,
    pub first_offset: i64,
    pub last_offset: i64,
    /// r_keeper sends no "shift closed" event: a shift is closed when the
    /// restaurant's first event with a higher ShiftNum arrives.
    pub closed: bool,
    pub closed_by_offset: Option<i64>,
}

/// In-memory state touched by a batch (or everything, for a replay).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Book {
    pub orders: HashMap<String, OrderSnapshot>,
    pub stations: HashMap<String, StationSnapshot>,
    pub servers: HashMap<String, ServerSnapshot>,
    pub shifts: HashMap<(String, i64), ShiftSnapshot>,
}

pub fn station_key(rest: Option<&str>, server_id: Option<i64>, station_id: Option<i64>) -> String {
    format!(
        "{}/{}/{}",
        rest.unwrap_or("-"),
        server_id
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
        station_id
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    )
}

pub fn server_key(rest: Option<&str>, server_id: Option<i64>) -> String {
    format!(
        "{}/{}",
        rest.unwrap_or("-"),
        server_id
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    )
}

fn person_name(p: &Option<rk7::Person>) -> Option<String> {
    p.as_ref().and_then(|p| p.name.clone())
}

fn k(v: Option<rk7::Kopecks>) -> i64 {
    v.map(|x| x.0).unwrap_or(0)
}

impl Book {
    /// Applies one log entry whose body has been read into `ev`.
    pub fn apply(&mut self, entry: &LogEntry, ev: &Event) {
        let rest = ev.rest_code.as_ref().map(|r| r.0.clone());
        let time = ev.date_time.as_ref().map(|d| d.to_string());
        self.apply_shift(entry, ev, rest.as_deref(), time.as_deref());
        self.apply_server(entry, ev, rest.as_deref(), time.as_deref());
        self.apply_station(entry, ev, rest.as_deref(), time.as_deref());
        if let Some(order) = &ev.order
            && let Some(guid) = &order.guid
        {
            self.apply_order(entry, ev, order, guid.canonical(), rest, time);
        }
    }

    /// Keys this entry will touch, so the consumer can load them first.
    pub fn keys_for(ev: &Event) -> Keys {
        let rest = ev.rest_code.as_ref().map(|r| r.0.as_str());
        let server_id = ev.server.as_ref().and_then(|s| s.id);
        Keys {
            order: ev
                .order
                .as_ref()
                .and_then(|o| o.guid.as_ref())
                .map(|g| g.canonical()),
            station: ev
                .station
                .as_ref()
                .map(|s| station_key(rest, server_id, s.id)),
            server: ev.server.as_ref().map(|_| server_key(rest, server_id)),
            shift_rest: ev.shift_num.and(ev.rest_code.as_ref()).map(|r| r.0.clone()),
        }
    }

    fn apply_shift(
        &mut self,
        entry: &LogEntry,
        ev: &Event,
        rest: Option<&str>,
        time: Option<&str>,
    ) {
        let (Some(rest), Some(num)) = (rest, ev.shift_num) else {
            return;
        };
        // A higher ShiftNum closes every earlier open shift of the restaurant.
        for s in self.shifts.values_mut() {
            if s.rest_code == rest && s.shift_num < num && !s.closed {
                s.closed = true;
                s.closed_by_offset = Some(entry.offset);
            }
        }
        let s = self
            .shifts
            .entry((rest.to_string(), num))
            .or_insert_with(|| ShiftSnapshot {
                rest_code: rest.to_string(),
                shift_num: num,
                first_offset: entry.offset,
                first_event_time: time.map(str::to_string),
                ..Default::default()
            });
        if s.shift_date.is_none() {
            s.shift_date = ev.shift_date.as_ref().map(|d| d.to_string());
        }
        s.last_offset = entry.offset;
        if time.is_some() {
            s.last_event_time = time.map(str::to_string);
        }
    }

    fn apply_server(
        &mut self,
        entry: &LogEntry,
        ev: &Event,
        rest: Option<&str>,
        time: Option<&str>,
    ) {
        let Some(server) = &ev.server else { return };
        let key = server_key(rest, server.id);
        let s = self
            .servers
            .entry(key.clone())
            .or_insert_with(|| ServerSnapshot {
                key,
                rest_code: rest.map(str::to_string),
                server_id: server.id,
                ..Default::default()
            });
        if server.name.is_some() {
            s.name = server.name.clone();
        }
        if server.net_name.is_some() {
            s.net_name = server.net_name.clone();
        }
        // The cash-server start event carries a Server and no Station.
        if ev.situation == Situation::ServerOrStationStarted && ev.station.is_none() {
            s.started_at = time.map(str::to_string);
        }
        s.last_event_time = time.map(str::to_string);
        s.last_received_at = entry.received_at;
        s.last_offset = entry.offset;
    }

    fn apply_station(
        &mut self,
        entry: &LogEntry,
        ev: &Event,
        rest: Option<&str>,
        time: Option<&str>,
    ) {
        let Some(st) = &ev.station else { return };
        let server_id = ev.server.as_ref().and_then(|s| s.id);
        let key = station_key(rest, server_id, st.id);
        let s = self
            .stations
            .entry(key.clone())
            .or_insert_with(|| StationSnapshot {
                key,
                rest_code: rest.map(str::to_string),
                station_id: st.id,
                server_id,
                ..Default::default()
            });
        if st.code.is_some() {
            s.code = st.code;
        }
        if st.name.is_some() {
            s.name = st.name.clone();
        }
        if st.net_name.is_some() {
            s.net_name = st.net_name.clone();
        }
        match ev.situation {
            Situation::ServerOrStationStarted => {
                s.online = true;
                s.logged_in = None;
            }
            Situation::StationSignIn => {
                s.online = true;
                s.logged_in = person_name(&ev.waiter).or_else(|| Some(String::new()));
            }
            Situation::StationLocked => {
                s.online = true;
                s.logged_in = None;
            }
            Situation::StationClosed => {
                s.online = false;
                s.logged_in = None;
            }
            _ => s.online = true,
        }
        s.last_event_time = time.map(str::to_string);
        s.last_received_at = entry.received_at;
        s.last_situation = ev.situation.code();
        s.last_offset = entry.offset;
    }

    fn apply_order(
        &mut self,
        entry: &LogEntry,
        ev: &Event,
        order: &rk7::Order,
        guid: String,
        rest: Option<String>,
        time: Option<String>,
    ) {
        let o = self
            .orders
            .entry(guid.clone())
            .or_insert_with(|| OrderSnapshot {
                guid,
                ..Default::default()
            });
        if !o.events.contains(&entry.offset) {
            o.events.push(entry.offset);
        }
        o.rest_code = rest.or(o.rest_code.take());
        o.visit = order.visit.or(o.visit);
        o.order_ident = order.order_ident.or(o.order_ident);
        if order.order_name.is_some() {
            o.order_name = order.order_name.clone();
        }
        if let Some(t) = &order.table {
            o.table = t.name.clone().or_else(|| t.code.map(|c| c.to_string()));
        }
        if order.waiter.is_some() {
            o.waiter = person_name(&order.waiter);
        }
        if let Some(t) = &order.open_time {
            o.opened_at = Some(t.to_string());
        } else if o.opened_at.is_none() {
            o.opened_at = time.clone();
        }
        o.updated_at = time.or(o.updated_at.take());
        o.shift_num = ev.shift_num.or(o.shift_num);
        o.order_sum = k(order.order_sum);
        o.discount_sum = k(order.discount_sum);
        o.unpaid_sum = k(order.unpaid_sum);
        o.prepay_sum = k(order.prepay_sum);
        o.is_return = o.is_return || order.purchase == Some(true) || order.source_order.is_some();
        if let Some(kds) = &order.kds_state {
            o.kds_state = Some(kds.as_str().to_string()).filter(|s| !s.is_empty());
        }
        for p in &order.external_props {
            if let (Some(n), Some(v)) = (&p.name, &p.value) {
                o.external_props.insert(n.clone(), v.clone());
            }
        }
        if ev.situation == Situation::OrderClosed {
            o.closed_event = true;
        }

        // Lines: the latest event carries the whole order, so lists are
        // rebuilt from it; voids and receipts are kept across events because
        // a later event may no longer show a deleted line.
        let mut dishes = Vec::new();
        let mut discounts = Vec::new();
        let mut payments = Vec::new();
        let mut has_lines = false;
        let sessions: Vec<&rk7::Session> =
            order.sessions.iter().chain(ev.sessions.iter()).collect();
        for s in &sessions {
            for d in &s.dishes {
                has_lines = true;
                dishes.push(DishLine {
                    uni: d.uni,
                    code: d.code,
                    name: d.name.clone(),
                    quantity: d.quantity.map(|q| q.0).unwrap_or(0),
                    price: k(d.price),
                    amount: k(d.amount),
                    state: d.state.as_ref().map(|s| s.code()),
                    kds_state: d.kds_state.as_ref().map(|k| k.as_str().to_string()),
                });
                for v in &d.voids {
                    let rec = VoidRecord {
                        dish_uni: d.uni,
                        dish_code: d.code,
                        dish_name: d.name.clone(),
                        quantity: v.quantity.map(|q| q.0).unwrap_or(0),
                        amount: k(v.amount),
                        who: person_name(&v.author),
                        reason: v.open_name.clone(),
                        at: v.date_time.as_ref().map(|t| t.to_string()),
                    };
                    if !o.voids.contains(&rec) {
                        o.voids.push(rec);
                    }
                }
                for dd in &d.discounts {
                    discounts.push(discount_line(dd, d.uni));
                }
            }
            for dd in &s.discounts {
                has_lines = true;
                discounts.push(discount_line(dd, None));
            }
            for (prepay, pays) in [(false, &s.pays), (true, &s.prepays)] {
                for p in pays {
                    has_lines = true;
                    payments.push(PaymentLine {
                        code: p.code,
                        name: p.name.clone(),
                        amount: k(p.amount),
                        deleted: p.deleted == Some(true),
                        prepay,
                        transaction_status: p.transaction_status.as_ref().map(|t| t.code()),
                    });
                }
            }
            for pc in &s.print_checks {
                has_lines = true;
                let r = Receipt {
                    check_num: pc.check_num,
                    bill: pc.bill == Some(true),
                    amount: k(pc.amount),
                    deleted: pc.deleted == Some(true),
                    print_time: pc.print_time.as_ref().map(|t| t.to_string()),
                    author: person_name(&pc.author),
                    deleted_by: person_name(&pc.delete_manager),
                    reason: pc.reason.as_ref().and_then(|r| r.name.clone()),
                };
                match o.receipts.iter_mut().find(|x| {
                    x.check_num == r.check_num && x.bill == r.bill && x.print_time == r.print_time
                }) {
                    Some(existing) => *existing = r,
                    None => o.receipts.push(r),
                }
            }
        }
        // An event without any session (e.g. "Open Order" with the header
        // only) says nothing about lines: keep what we had.
        if has_lines || !sessions.is_empty() {
            o.dishes = dishes;
            o.discounts = discounts;
            o.payments = payments;
        }
        if ev.situation == Situation::ReceiptDeleted {
            // Situation 14 may arrive before the PrintCheck shows deleted="1";
            // the receipt itself is marked by the next order content.
        }
        o.paid_sum = o
            .receipts
            .iter()
            .filter(|r| !r.bill && !r.deleted)
            .map(|r| r.amount)
            .sum();
        o.status = derive_status(o, order);
    }
}

fn discount_line(d: &rk7::Discount, dish_uni: Option<i64>) -> DiscountLine {
    DiscountLine {
        code: d.code,
        name: d.name.clone(),
        amount: k(d.amount),
        deleted: d.deleted == Some(true),
        dish_uni,
    }
}

fn derive_status(o: &OrderSnapshot, order: &rk7::Order) -> OrderStatus {
    if order.deleted == Some(true) {
        OrderStatus::Deleted
    } else if o.is_return {
        OrderStatus::Return
    } else if order.finished == Some(true) || o.closed_event {
        OrderStatus::Closed
    } else if o.receipts.iter().any(|r| !r.bill && !r.deleted) && o.unpaid_sum <= 0 {
        OrderStatus::Paid
    } else if o.receipts.iter().any(|r| r.bill && !r.deleted) {
        OrderStatus::Prebill
    } else {
        OrderStatus::Open
    }
}

#[derive(Debug, Default)]
pub struct Keys {
    pub order: Option<String>,
    pub station: Option<String>,
    pub server: Option<String>,
    pub shift_rest: Option<String>,
}
