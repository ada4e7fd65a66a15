//! The alert rules: a consumer of the event log that turns what happened at
//! the cash desks into outbox rows.
//!
//! r_keeper sends the whole current order with every order event, so a rule
//! cannot look at one event alone ("this PrintCheck says deleted" is true in
//! every later event of that order too). The consumer keeps, per order, the
//! order as it looked before (folded by the same pure fold the order-state
//! feature uses, [`crate::core::book::Book`]) plus what it has already
//! alerted on, and alerts on the *difference*. That memory lives in the
//! feature's own table and is written with the cursor and the outbox rows in
//! one transaction.
//!
//! Time-based rules (silent station, silent cash server, shift closed by the
//! clock) and the gap rule need no event to fire: they live in
//! [`super::watch::Watchdog`].

use std::collections::{BTreeSet, HashMap};

use rk7::{Event, LineState, Situation};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::outbox;
use super::payload::{Alert, OrderRef};
use super::report;
use super::settings::Settings;
use crate::core::book::{Book, OrderSnapshot, station_key};
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{self, LogEntry};
use crate::core::store::{self, Db, StoreError};

pub const CONSUMER_NAME: &str = "alerts";

/// Events received longer ago than this raise no alert when the consumer
/// reaches them (6 hours).
pub const STALE_MS: i64 = 6 * 3600 * 1000;

/// What the rules remember about one order between events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderMemory {
    pub snap: OrderSnapshot,
    /// Receipts/pre-bills already alerted as deleted: (check_num, bill, print_time).
    pub deleted_alerted: BTreeSet<(Option<i64>, bool, Option<String>)>,
    pub discount_alerted: bool,
    /// Payments already alerted as deleted: (code, name, amount, prepay).
    pub pays_alerted: BTreeSet<(Option<i64>, Option<String>, i64, bool)>,
    /// Order total when the last pre-bill was printed; an order total below
    /// it later means money was taken off after the guest saw the bill.
    pub prebill_total: Option<i64>,
}

pub struct AlertConsumer {
    pub settings: Settings,
    /// Tells the sender that rows were queued.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
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
            let n = apply_batch(&self.settings, db, entries).await?;
            if n > 0 {
                self.wake.notify_one();
            }
            Ok(())
        })
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn order_ref(s: &OrderSnapshot) -> OrderRef {
    OrderRef {
        guid: s.guid.clone(),
        name: s.order_name.clone().or_else(|| {
            s.visit
                .map(|v| format!("{v}/{}", s.order_ident.unwrap_or(0)))
        }),
        table: s.table.clone(),
        waiter: s.waiter.clone(),
    }
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

async fn apply_batch(
    settings: &Settings,
    db: &Db,
    entries: &[LogEntry],
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
    let now = crate::core::clock::now_ms();
    // Only this consumer writes the columns read here (the watchdog sets
    // just `silent_alerted`), so they are read on a read connection and the
    // shared write lock is held only for the few statements at the end.
    let mut rd = db.read.acquire().await.map_err(StoreError::from)?;
    let mut memories: HashMap<String, OrderMemory> = HashMap::new();
    let mut rests: HashMap<String, RestRow> = HashMap::new();
    let mut stations: HashMap<String, StationRow> = HashMap::new();
    for (_, ev) in &events {
        if let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) {
            let key = guid.canonical();
            if let std::collections::hash_map::Entry::Vacant(slot) = memories.entry(key) {
                let m: Option<String> =
                    sqlx::query_scalar("SELECT memory FROM alerts_orders WHERE order_guid = $1")
                        .bind(slot.key())
                        .fetch_optional(&mut *rd)
                        .await?;
                slot.insert(match m {
                    Some(s) => serde_json::from_str(&s).map_err(corrupt)?,
                    None => OrderMemory::default(),
                });
            }
        }
        if let Some(rest) = ev.rest_code.as_ref().map(|r| r.0.as_str())
            && !rests.contains_key(rest)
        {
            let row = sqlx::query(
                "SELECT shift_num, reported_shift FROM alerts_rests WHERE rest_code = $1",
            )
            .bind(rest)
            .fetch_optional(&mut *rd)
            .await?;
            let (shift, reported) = match &row {
                Some(r) => (r.try_get(0)?, r.try_get(1)?),
                None => (None, None),
            };
            rests.insert(rest.to_string(), RestRow::stored(shift, reported));
        }
        if ev.station.is_some() {
            let key = key_of_station(ev);
            if let std::collections::hash_map::Entry::Vacant(slot) = stations.entry(key) {
                let started: Option<i64> = sqlx::query_scalar(
                    "SELECT started FROM alerts_stations WHERE station_key = $1",
                )
                .bind(slot.key())
                .fetch_optional(&mut *rd)
                .await?;
                slot.insert(StationRow::stored(started == Some(1)));
            }
        }
    }
    let mut alerts = Vec::new();
    for (entry, ev) in &events {
        let before = alerts.len();
        rest_and_shift(settings, &mut rd, &mut rests, entry, ev, &mut alerts).await?;
        station_rules(settings, &mut stations, entry, ev, &mut alerts);
        if let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) {
            let m = memories.get_mut(&guid.canonical()).expect("loaded above");
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

    let mut tx = db.write.begin().await.map_err(StoreError::from)?;
    for chunk in memory_rows.chunks(200) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (order_guid) DO UPDATE SET memory = excluded.memory",
            store::multi_row(
                db.backend,
                "INSERT INTO alerts_orders (order_guid, memory) VALUES ",
                chunk.len(),
                2
            )
        )));
        for (key, json) in chunk {
            q = q.bind(*key).bind(json);
        }
        q.execute(&mut *tx).await?;
    }
    let rest_rows: Vec<_> = rests.iter().filter(|(_, r)| r.seen.is_some()).collect();
    for chunk in rest_rows.chunks(100) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (rest_code) DO UPDATE SET shift_num = excluded.shift_num, \
             last_seen = excluded.last_seen, last_event_time = excluded.last_event_time, last_offset = excluded.last_offset, \
             silent_alerted = 0, reported_shift = excluded.reported_shift",
            store::multi_row(
                db.backend,
                "INSERT INTO alerts_rests (rest_code, shift_num, last_seen, last_event_time, last_offset, silent_alerted, reported_shift) VALUES ",
                chunk.len(),
                7
            )
        )));
        for (rest, r) in chunk {
            let seen = r.seen.as_ref().expect("filtered");
            q = q
                .bind(rest.as_str())
                .bind(r.shift)
                .bind(seen.received_at)
                .bind(seen.time.as_deref())
                .bind(seen.offset)
                .bind(0i64)
                .bind(r.reported);
        }
        q.execute(&mut *tx).await?;
    }
    let station_rows: Vec<_> = stations.iter().filter(|(_, s)| s.seen.is_some()).collect();
    for chunk in station_rows.chunks(100) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} ON CONFLICT (station_key) DO UPDATE SET rest_code = excluded.rest_code, \
             name = excluded.name, started = excluded.started, last_seen = excluded.last_seen, \
             last_event_time = excluded.last_event_time, silent_alerted = 0",
            store::multi_row(
                db.backend,
                "INSERT INTO alerts_stations (station_key, rest_code, name, started, last_seen, last_event_time, silent_alerted) VALUES ",
                chunk.len(),
                7
            )
        )));
        for (key, s) in chunk {
            let seen = s.seen.as_ref().expect("filtered");
            q = q
                .bind(key.as_str())
                .bind(seen.rest_code.as_deref())
                .bind(s.name.as_str())
                .bind(s.started as i64)
                .bind(seen.received_at)
                .bind(seen.time.as_deref())
                .bind(0i64);
        }
        q.execute(&mut *tx).await?;
    }
    for a in &alerts {
        let chats = settings.route(a.kind(), a.rest_code());
        outbox::enqueue(&mut tx, a, &chats, now).await?;
    }
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await.map_err(StoreError::from)?;
    if !alerts.is_empty() {
        metrics::counter!("tillgate_alerts_raised_total").increment(alerts.len() as u64);
    }
    Ok(alerts.len())
}

/// A restaurant's row of `alerts_rests` as the batch goes.
struct RestRow {
    shift: Option<i64>,
    reported: Option<i64>,
    /// Set once an event of the batch touched it: the row to store.
    seen: Option<Seen>,
}

impl RestRow {
    fn stored(shift: Option<i64>, reported: Option<i64>) -> RestRow {
        RestRow {
            shift,
            reported,
            seen: None,
        }
    }
}

/// A station's row of `alerts_stations` as the batch goes.
struct StationRow {
    started: bool,
    /// The name the last event gave it.
    name: String,
    seen: Option<Seen>,
}

impl StationRow {
    fn stored(started: bool) -> StationRow {
        StationRow {
            started,
            name: String::new(),
            seen: None,
        }
    }
}

/// The last event that touched a restaurant or station.
struct Seen {
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

fn key_of_station(ev: &Event) -> String {
    station_key(
        ev.rest_code.as_ref().map(|r| r.0.as_str()),
        ev.server.as_ref().and_then(|s| s.id),
        ev.station.as_ref().and_then(|s| s.id),
    )
}

/// Tracks the restaurant's current shift and last activity. The first event
/// of a restaurant carrying a higher `ShiftNum` closes the previous shift:
/// its report is computed here, from the log up to this event, and queued.
async fn rest_and_shift(
    settings: &Settings,
    rd: &mut sqlx::AnyConnection,
    rests: &mut HashMap<String, RestRow>,
    entry: &LogEntry,
    ev: &Event,
    alerts: &mut Vec<Alert>,
) -> Result<(), ConsumerError> {
    let Some(rest) = ev.rest_code.as_ref().map(|r| r.0.as_str()) else {
        return Ok(());
    };
    let row = rests.get_mut(rest).expect("loaded above");
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

fn station_rules(
    settings: &Settings,
    stations: &mut HashMap<String, StationRow>,
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
    let row = stations.get_mut(&key_of_station(ev)).expect("loaded above");
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

/// The order rules: fold the event into the remembered order, compare.
pub fn order_rules(
    settings: &Settings,
    m: &mut OrderMemory,
    entry: &LogEntry,
    ev: &Event,
    alerts: &mut Vec<Alert>,
) {
    let rest = ev.rest_code.as_ref().map(|r| r.0.clone());
    let rules = settings.rules_for(rest.as_deref()).clone();
    let before = m.snap.clone();
    let mut book = Book::default();
    let Some(guid) = ev.order.as_ref().and_then(|o| o.guid.as_ref()) else {
        return;
    };
    let key = guid.canonical();
    if !before.guid.is_empty() {
        book.orders.insert(key.clone(), before.clone());
    }
    book.apply(entry, ev);
    let Some(mut after) = book.orders.remove(&key) else {
        return;
    };
    // Only the order's own state is kept; the offsets list would grow forever.
    after.events.clear();
    let at = ev.date_time.as_ref().map(|t| t.to_string());
    let oref = order_ref(&after);

    // Receipts and pre-bills that became deleted.
    let mut receipt_alerted_now = false;
    for r in &after.receipts {
        let k = (r.check_num, r.bill, r.print_time.clone());
        if !r.deleted || m.deleted_alerted.contains(&k) {
            continue;
        }
        m.deleted_alerted.insert(k);
        let (enabled, alert) = if r.bill {
            (
                rules.prebill_cancelled,
                Alert::PrebillCancelled {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    check_num: r.check_num,
                    amount: r.amount,
                    cashier: r.author.clone(),
                    manager: r.deleted_by.clone(),
                    reason: r.reason.clone(),
                    at: at.clone(),
                },
            )
        } else {
            receipt_alerted_now = true;
            (
                rules.receipt_deleted,
                Alert::ReceiptDeleted {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    check_num: r.check_num,
                    amount: r.amount,
                    cashier: r.author.clone(),
                    manager: r.deleted_by.clone(),
                    reason: r.reason.clone(),
                    at: at.clone(),
                },
            )
        };
        if enabled {
            alerts.push(alert);
        }
    }
    // Situation 14 can come before the order shows which receipt is gone:
    // alert on the last live receipt and remember it, so the later
    // `deleted="1"` of that receipt does not alert a second time.
    let receipt_deleted_now = receipt_alerted_now || ev.situation == Situation::ReceiptDeleted;
    if ev.situation == Situation::ReceiptDeleted && !receipt_alerted_now {
        let last = after.receipts.iter().rev().find(|r| {
            !r.bill
                && !m
                    .deleted_alerted
                    .contains(&(r.check_num, r.bill, r.print_time.clone()))
        });
        let (check_num, amount, cashier, manager, reason) = match last {
            Some(r) => {
                m.deleted_alerted
                    .insert((r.check_num, r.bill, r.print_time.clone()));
                (
                    r.check_num,
                    r.amount,
                    r.author.clone(),
                    r.deleted_by.clone(),
                    r.reason.clone(),
                )
            }
            None => (None, after.order_sum, None, None, None),
        };
        if rules.receipt_deleted {
            alerts.push(Alert::ReceiptDeleted {
                rest_code: rest.clone(),
                order: oref.clone(),
                check_num,
                amount,
                cashier,
                manager: manager.or_else(|| ev.waiter.as_ref().and_then(|w| w.name.clone())),
                reason,
                at: at.clone(),
            });
        }
    }

    // Voids: the fold keeps every void ever seen; new ones are the difference.
    for v in after.voids.iter().filter(|v| !before.voids.contains(v)) {
        if rules.dish_voided {
            alerts.push(Alert::DishVoided {
                rest_code: rest.clone(),
                order: oref.clone(),
                dish: v.dish_name.clone(),
                quantity: v.quantity,
                amount: v.amount,
                who: v.who.clone(),
                reason: v.reason.clone(),
                at: v.at.clone().or(at.clone()),
            });
        }
    }

    // Unsaved dish deletion: the ChangeLog says a dish went down in quantity,
    // the dish line was never printed (no Void is made for those).
    if let Some(cl) = &ev.change_log {
        for d in &cl.dishes {
            let (old, new) = (
                d.old_value.map(|v| v.0).unwrap_or(0),
                d.new_value.map(|v| v.0).unwrap_or(0),
            );
            if new >= old {
                continue;
            }
            let printed = before.dishes.iter().any(|x| {
                x.uni == d.uni
                    && x.state.is_some_and(|s| {
                        s != LineState::Open.code() && s != LineState::Deleted.code()
                    })
            });
            if !printed && rules.unsaved_dish_deleted {
                alerts.push(Alert::UnsavedDishDeleted {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    dish: d.name.clone(),
                    quantity: old - new,
                    who: ev.waiter.as_ref().and_then(|w| w.name.clone()),
                    at: at.clone(),
                });
            }
        }
    }

    // Discounts above the threshold, once per order. Discount lines carry
    // negative amounts (markups positive); `discountSum` is the fallback.
    let lines: i64 = after
        .discounts
        .iter()
        .filter(|d| !d.deleted && d.amount < 0)
        .map(|d| -d.amount)
        .sum();
    let discount = lines.max(after.discount_sum.abs());
    let gross = after.order_sum + discount;
    if !m.discount_alerted && discount > 0 && gross > 0 {
        let percent = discount * 100 / gross;
        if percent >= rules.discount_percent as i64 || discount >= rules.discount_amount {
            m.discount_alerted = true;
            if rules.discount {
                alerts.push(Alert::DiscountOverThreshold {
                    rest_code: rest.clone(),
                    order: oref.clone(),
                    discount,
                    order_sum: gross,
                    percent,
                    names: after
                        .discounts
                        .iter()
                        .filter(|d| !d.deleted)
                        .filter_map(|d| d.name.clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    at: at.clone(),
                });
            }
        }
    }

    // Payments that are deleted now: shown with deleted="1", or gone from
    // an order that had them live. Deleting a receipt deletes its payments
    // too; that is one operation and already alerted as the receipt.
    let key_of = |p: &crate::core::book::PaymentLine| (p.code, p.name.clone(), p.amount, p.prepay);
    let mut deleted_pays: Vec<_> = after
        .payments
        .iter()
        .filter(|p| p.deleted)
        .map(key_of)
        .collect();
    if !after.payments.is_empty() || !after.dishes.is_empty() {
        for p in before.payments.iter().filter(|p| !p.deleted) {
            let k = key_of(p);
            if !after.payments.iter().any(|x| key_of(x) == k) {
                deleted_pays.push(k);
            }
        }
    }
    for k in deleted_pays {
        if m.pays_alerted.insert(k.clone()) && rules.payment_deleted && !receipt_deleted_now {
            alerts.push(Alert::PaymentDeleted {
                rest_code: rest.clone(),
                order: oref.clone(),
                currency: k.1.clone(),
                amount: k.2,
                at: at.clone(),
            });
        }
    }

    // Order total lowered after a pre-bill: remember the total each time a
    // pre-bill is printed; a later, lower total is money taken off after
    // the guest saw the bill.
    let new_prebill = after.receipts.iter().any(|r| {
        r.bill
            && !r.deleted
            && !before
                .receipts
                .iter()
                .any(|b| b.bill && b.check_num == r.check_num && b.print_time == r.print_time)
    });
    if new_prebill {
        m.prebill_total = Some(after.order_sum);
    } else if let Some(t) = m.prebill_total
        && after.order_sum < t
        && after.status != crate::core::book::OrderStatus::Deleted
    {
        if rules.total_lowered_after_prebill {
            alerts.push(Alert::TotalLoweredAfterPrebill {
                rest_code: rest.clone(),
                order: oref.clone(),
                before: t,
                after: after.order_sum,
                at: at.clone(),
            });
        }
        m.prebill_total = Some(after.order_sum);
    }
    m.snap = after;
}
