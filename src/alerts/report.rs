//! The shift-close report, computed from the events of every cash server of
//! the restaurant (not from a printed report: with several cash servers a
//! printer-based report only ever sees one of them).
//!
//! The events of `(RestCode, ShiftNum)` are folded with the order fold of
//! [`crate::core::book::Book`]; each order's last content counts.
//! Definitions:
//! - a *receipt* is a PrintCheck with `bill` not 1 that is not deleted;
//! - *revenue* is the sum of receipt amounts as sent (a return order's
//!   receipt carries a negative amount, so returns subtract);
//! - *average check* is revenue / receipts (integer kopecks, rounded down);
//! - *payments* are the non-deleted Pay lines of orders with a receipt,
//!   grouped by currency name;
//! - *discounts* are the non-deleted discount lines (negative amounts) of
//!   orders with a receipt;
//! - *sales by hour* put each receipt's amount at the hour of its printTime;
//! - *top dishes* rank non-deleted dish lines of orders with a receipt by
//!   net amount (return lines, negative, subtract).
//!
//! When is a shift closed? r_keeper sends no such event. tillgate takes the
//! first event of the restaurant carrying a higher `ShiftNum` (from any of
//! its cash servers) as the close of every lower shift; if the restaurant
//! has a `closing_time`, a shift also counts as closed once that local time
//! has passed with no event since. The report is sent once per shift.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::settings::Settings;
use crate::core::book::Book;
use crate::core::log::{self, LogEntry};
use crate::core::store::{Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Deletion {
    pub check_num: Option<i64>,
    pub amount: i64,
    pub cashier: Option<String>,
    pub manager: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VoidLine {
    pub dish: Option<String>,
    pub quantity: i64,
    pub amount: i64,
    pub who: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TopDish {
    pub name: String,
    /// Thousandths.
    pub quantity: i64,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShiftReport {
    pub rest_code: String,
    pub rest_name: String,
    pub shift_num: i64,
    pub shift_date: Option<String>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// Distinct cash servers (streams' Server ids) whose events were counted.
    pub cash_servers: i64,
    pub orders: i64,
    pub receipts: i64,
    pub revenue: i64,
    pub average_check: i64,
    /// Currency name -> kopecks.
    pub payments: BTreeMap<String, i64>,
    pub discounts: i64,
    pub discount_lines: i64,
    pub deleted_receipts: Vec<Deletion>,
    pub cancelled_prebills: i64,
    pub voids: Vec<VoidLine>,
    pub top_dishes: Vec<TopDish>,
    /// Revenue by local hour of the receipt (index 0..24).
    pub by_hour: Vec<i64>,
}

const TOP: usize = 5;

/// Builds the report from the shift's log entries (offset order).
pub fn build(
    rest_code: &str,
    rest_name: &str,
    shift_num: i64,
    entries: &[LogEntry],
) -> ShiftReport {
    let mut book = Book::default();
    let mut servers = std::collections::BTreeSet::new();
    let mut first_event = None;
    let mut last_event = None;
    let mut shift_date = None;
    for e in entries {
        let Ok(ev) = e.event() else { continue };
        if let Some(s) = ev.server.as_ref().and_then(|s| s.id.or(s.code)) {
            servers.insert(s);
        }
        if let Some(t) = ev.date_time.as_ref().map(|t| t.to_string()) {
            if first_event.as_ref().is_none_or(|f: &String| &t < f) {
                first_event = Some(t.clone());
            }
            if last_event.as_ref().is_none_or(|l: &String| &t > l) {
                last_event = Some(t);
            }
        }
        if shift_date.is_none() {
            shift_date = ev
                .shift_date
                .as_ref()
                .map(|d| d.to_string()[..10].to_string());
        }
        book.apply(e, &ev);
    }
    let mut r = ShiftReport {
        rest_code: rest_code.to_string(),
        rest_name: rest_name.to_string(),
        shift_num,
        shift_date,
        first_event,
        last_event,
        cash_servers: servers.len() as i64,
        by_hour: vec![0; 24],
        ..Default::default()
    };
    let mut dishes: HashMap<String, TopDish> = HashMap::new();
    let mut orders: Vec<_> = book.orders.values().collect();
    orders.sort_by(|a, b| a.guid.cmp(&b.guid));
    for o in orders {
        if o.shift_num.is_some_and(|s| s != shift_num) {
            continue;
        }
        r.orders += 1;
        let live: Vec<_> = o
            .receipts
            .iter()
            .filter(|x| !x.bill && !x.deleted)
            .collect();
        for x in &o.receipts {
            if x.deleted && !x.bill {
                r.deleted_receipts.push(Deletion {
                    check_num: x.check_num,
                    amount: x.amount,
                    cashier: x.author.clone(),
                    manager: x.deleted_by.clone(),
                    reason: x.reason.clone(),
                });
            } else if x.deleted {
                r.cancelled_prebills += 1;
            }
        }
        for v in &o.voids {
            r.voids.push(VoidLine {
                dish: v.dish_name.clone(),
                quantity: v.quantity,
                amount: v.amount,
                who: v.who.clone(),
                reason: v.reason.clone(),
            });
        }
        if live.is_empty() {
            continue;
        }
        for x in &live {
            r.receipts += 1;
            r.revenue += x.amount;
            let hour = x
                .print_time
                .as_deref()
                .or(o.updated_at.as_deref())
                .and_then(|t| t.get(11..13))
                .and_then(|h| h.parse::<usize>().ok())
                .filter(|h| *h < 24)
                .unwrap_or(0);
            r.by_hour[hour] += x.amount;
        }
        for p in o.payments.iter().filter(|p| !p.deleted) {
            *r.payments
                .entry(p.name.clone().unwrap_or_else(|| "?".into()))
                .or_default() += p.amount;
        }
        for d in o.discounts.iter().filter(|d| !d.deleted && d.amount < 0) {
            r.discounts += -d.amount;
            r.discount_lines += 1;
        }
        for d in o
            .dishes
            .iter()
            .filter(|d| d.state != Some(7) && d.quantity != 0)
        {
            let name = d
                .name
                .clone()
                .unwrap_or_else(|| format!("#{}", d.code.unwrap_or(0)));
            let t = dishes.entry(name.clone()).or_insert(TopDish {
                name,
                ..Default::default()
            });
            t.quantity += d.quantity;
            t.amount += d.amount;
        }
    }
    r.average_check = if r.receipts > 0 {
        r.revenue / r.receipts
    } else {
        0
    };
    let mut top: Vec<_> = dishes.into_values().collect();
    top.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.name.cmp(&b.name)));
    top.truncate(TOP);
    r.top_dishes = top;
    r
}

/// The report from the log up to `upto`, on the caller's connection (a
/// transaction or a read connection, which sees its own snapshot).
pub async fn compute_in(
    conn: &mut sqlx::AnyConnection,
    settings: &Settings,
    rest: &str,
    shift: i64,
    upto: i64,
) -> Result<ShiftReport, StoreError> {
    let entries = log::shift_events(conn, rest, shift, upto).await?;
    Ok(build(
        rest,
        &settings.restaurant_name(rest),
        shift,
        &entries,
    ))
}

/// The report of a shift from everything in the log (for `/report`).
pub async fn compute(
    db: &Db,
    settings: &Settings,
    rest: &str,
    shift: i64,
) -> Result<ShiftReport, StoreError> {
    let mut conn = db.read.acquire().await?;
    compute_in(&mut conn, settings, rest, shift, i64::MAX).await
}

/// A PNG bar chart of sales by hour. No text is drawn (no font needed at
/// build or run time): the caption carries the numbers.
pub fn chart_png(r: &ShiftReport) -> Result<Vec<u8>, String> {
    use plotters::prelude::*;
    const W: u32 = 720;
    const H: u32 = 360;
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = r.by_hour.iter().copied().max().unwrap_or(0).max(1);
        let (left, right, top, bottom) = (20i32, W as i32 - 10, 10i32, H as i32 - 20);
        let slot = (right - left) / 24;
        for (h, v) in r.by_hour.iter().enumerate() {
            if *v <= 0 {
                continue;
            }
            let height = ((*v as i128 * (bottom - top) as i128) / max as i128) as i32;
            let x0 = left + slot * h as i32 + 2;
            root.draw(&Rectangle::new(
                [(x0, bottom - height), (x0 + slot - 4, bottom)],
                RGBColor(46, 125, 200).filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
        // Axes, and a tick every 6 hours so the hours can be counted.
        root.draw(&PathElement::new(
            vec![(left, bottom), (right, bottom)],
            BLACK,
        ))
        .map_err(|e| e.to_string())?;
        root.draw(&PathElement::new(vec![(left, top), (left, bottom)], BLACK))
            .map_err(|e| e.to_string())?;
        for h in (0..=24).step_by(6) {
            let x = left + slot * h;
            root.draw(&PathElement::new(vec![(x, bottom), (x, bottom + 8)], BLACK))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let img = image::RgbImage::from_raw(W, H, rgb).ok_or("chart buffer has the wrong size")?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}
