//! Backfill: the orders a cash server changed that tillgate never heard
//! about, asked for through its XML interface (`GetOrderList`, then
//! `GetOrder` for each order tillgate does not hold at that version) and
//! appended to the log as backfilled events, so order state, alerts, SMS
//! and relay catch up.
//!
//! Never twice: an order tillgate holds at the cash server's version (or
//! later) is skipped, and the appended event's key is the order and its
//! version (`core::log::backfill_stream_guid`), so two runs, even at once,
//! append it once.

use chrono::{NaiveDateTime, Timelike};
use rk7::xmlapi::{Client, OrderKey, OrderListQuery};
use serde::Serialize;

use super::connect::{self, Failure};
use super::settings::CashServer;
use super::store;
use crate::core::clock::now_ms;
use crate::core::log::{AppendOutcome, BackfillMark, LogWriter, NewEvent, append_backfilled};
use crate::core::store::Db;

/// What one backfill did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Orders the cash server listed (within `since`).
    pub listed: usize,
    /// Already held at that version: left alone.
    pub skipped: usize,
    /// Appended as backfilled events.
    pub repaired: usize,
    /// The guids appended.
    pub orders: Vec<String>,
}

/// Backfills `server`'s orders changed since `since` (all it lists when
/// `None`), for `gap_id` when run for a gap.
pub async fn run(
    db: &Db,
    log: &LogWriter,
    client: &Client,
    server: &CashServer,
    since: Option<NaiveDateTime>,
    gap_id: Option<i64>,
) -> Result<Report, Failure> {
    let rest = connect::rest_code(db, client, server).await?;
    let info = client.get_system_info2().await?;
    let list = client.get_order_list(&OrderListQuery::default()).await?;
    let mut report = Report::default();
    for (_, item) in list.orders() {
        let Some(key) = item.guid.clone() else {
            continue;
        };
        let guid = key.canonical();
        if let Some(since) = since {
            let touched = [&item.create_time, &item.finish_time]
                .into_iter()
                .flatten()
                .any(|t| t.value() >= since);
            if !touched && item.finished == Some(true) {
                continue;
            }
        }
        report.listed += 1;
        let known = store::known_version(db, &guid)
            .await
            .map_err(Failure::store)?;
        if let (Some(k), Some(v)) = (known, item.version)
            && k >= v
        {
            report.skipped += 1;
            continue;
        }
        let order = client.get_order(&OrderKey::Guid(key)).await?;
        let version = order.version.or(item.version).unwrap_or(0);
        if known.is_some_and(|k| k >= version) {
            report.skipped += 1;
            continue;
        }
        let closed = order.finished == Some(true) && order.deleted != Some(true);
        let mut ev = rk7::Event::new(if closed {
            rk7::Situation::OrderClosed
        } else {
            rk7::Situation::OrderChanged
        });
        ev.rest_code = Some(rk7::RestCode(rest.clone()));
        ev.name = Some("Backfilled by tillgate".into());
        ev.date_time = Some(rk7::LocalDateTime::new(
            chrono::Local::now()
                .naive_local()
                .with_nanosecond(0)
                .unwrap_or_default(),
        ));
        // An order tillgate knows keeps its shift; a new one gets the
        // common shift the cash server is in now.
        ev.shift_num = if known.is_some() {
            None
        } else {
            info.common_shift_num()
        };
        ev.order = Some(order);
        let body = bytes::Bytes::from(rk7::write(&ev));
        let new = NewEvent::from_read(now_ms(), String::new(), 1, ev, body);
        let mark = BackfillMark {
            source: format!("rk7:{}", server.name),
            gap_id,
            order_guid: guid.clone(),
            order_version: version,
        };
        match append_backfilled(log, db, new, &mark).await {
            Ok(AppendOutcome::Stored { .. }) => {
                report.repaired += 1;
                report.orders.push(guid);
            }
            Ok(_) => report.skipped += 1,
            Err(e) => {
                return Err(Failure {
                    what: format!("appending the backfilled order {guid} failed: {e}"),
                    fix: "check tillgate's storage (tillgate doctor), then run the backfill again: it is idempotent".into(),
                });
            }
        }
    }
    tracing::info!(cash_server = %server.name, listed = report.listed, skipped = report.skipped, repaired = report.repaired, gap = ?gap_id, "backfill done");
    Ok(report)
}

/// Reads `--since`: `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM` or a date
/// (midnight), cash-server local time.
pub fn parse_since(s: &str) -> Result<NaiveDateTime, String> {
    let t = s.trim();
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d);
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| {
            format!("{s:?} is not a time: write 2026-11-02T12:00:00 or 2026-11-02 (cash-server local time)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_dates_and_times_and_refuses_the_rest() {
        assert_eq!(
            parse_since("2026-11-02").unwrap().to_string(),
            "2026-11-02 00:00:00"
        );
        assert_eq!(
            parse_since("2026-11-02T12:30").unwrap().to_string(),
            "2026-11-02 12:30:00"
        );
        for bad in ["", "yesterday", "2026-13-01", "12:00"] {
            assert!(
                parse_since(bad).unwrap_err().contains("not a time"),
                "{bad}"
            );
        }
    }
}
