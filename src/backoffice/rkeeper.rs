//! Closed receipts from r_keeper cash servers into the same journal: a log
//! consumer (the core's [`Runner`](crate::core::consumer::Runner)) that
//! journals each paid order and each return order once, attributed to its
//! restaurant (the journal's store) and cash server (its register).
//!
//! r_keeper sends the whole current order with every order event, so one
//! event is enough to see that an order is paid. The first event that shows
//! it paid is journaled under `rk:{restaurant}:{order guid}` (the guid without braces); a later event
//! of the same order is a repeat (or, changed, ignored: a sale is a fact
//! once its receipt is printed). The cursor moves in the same transaction,
//! so replays and restarts journal nothing twice.

use crate::core::book::{Book, OrderSnapshot, server_key};
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError};
use crate::core::log::{self, LogEntry};
use crate::core::store::Db;

use super::journal::{self, Source, Stored};
use super::receipt::{Kind, LOCAL_TIME, Line, Payments, Receipt, parse_local};

pub const CONSUMER_NAME: &str = "backoffice-journal";

pub struct RkeeperJournal {
    pub clock: crate::core::clock::SharedClock,
}

impl Consumer for RkeeperJournal {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(apply_batch(db, entries, self.clock.now_ms()))
    }
}

/// The receipt an order is, once it is paid (or a printed return).
pub fn receipt_of(o: &OrderSnapshot, register: &str) -> Option<Receipt> {
    if o.guid.is_empty() || o.status == crate::core::book::OrderStatus::Deleted {
        return None;
    }
    let printed = o.receipts.iter().any(|r| !r.bill && !r.deleted);
    let kind = if o.is_return {
        Kind::Return
    } else if o.unpaid_sum <= 0 {
        Kind::Sale
    } else {
        return None;
    };
    if !printed {
        return None;
    }
    let lines: Vec<Line> = o
        .dishes
        .iter()
        .filter(|d| d.quantity != 0)
        .map(|d| Line {
            goods_id: format!("rk:{}", d.code.or(d.uni).unwrap_or(0)),
            name: d.name.clone().unwrap_or_else(|| "-".into()),
            quantity: d.quantity.abs(),
            price: d.price.abs(),
            amount: d.amount.abs(),
            discount: 0,
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let total = o.paid_sum.abs();
    let mut payments = Payments::default();
    for p in o.payments.iter().filter(|p| !p.deleted) {
        let name = p.name.as_deref().unwrap_or_default().to_lowercase();
        if name.contains("card") || name.contains("карт") {
            payments.bank_card += p.amount.abs();
        } else {
            payments.cash += p.amount.abs();
        }
    }
    let rest = o.rest_code.clone().unwrap_or_else(|| "-".into());
    let time = o
        .updated_at
        .as_deref()
        .and_then(parse_local)
        .map(|t| t.format(LOCAL_TIME).to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00".into());
    Some(Receipt {
        receipt_id: format!("rk:{rest}:{}", o.guid.trim_matches(['{', '}'])),
        store: rest,
        register: register.to_string(),
        cashier: o.waiter.clone().unwrap_or_else(|| "-".into()),
        shift: o.shift_num.unwrap_or(0),
        local_time: time,
        kind,
        sale_receipt_id: None,
        lines,
        total,
        payments,
        card: None,
        loyalty_operation_id: None,
    })
}

async fn apply_batch(db: &Db, entries: &[LogEntry], now: i64) -> Result<(), ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let mut receipts = Vec::new();
    for e in entries {
        let ev = match e.event() {
            Ok(ev) => ev,
            Err(err) => {
                tracing::error!(offset = e.offset, error = %err, "stored event no longer reads; skipped by the back-office journal");
                continue;
            }
        };
        if ev.order.is_none() {
            continue;
        }
        let mut book = Book::default();
        book.apply(e, &ev);
        let rest = ev.rest_code.as_ref().map(|r| r.0.as_str());
        let register = server_key(rest, ev.server.as_ref().and_then(|s| s.id));
        receipts.extend(
            book.orders
                .values()
                .filter_map(|o| receipt_of(o, &register)),
        );
    }
    let mut tx = db.write.begin().await?;
    let stored = journal::store_group(&mut tx, db.backend, &receipts, Source::Rkeeper, now).await?;
    log::set_cursor(&mut tx, CONSUMER_NAME, last.offset).await?;
    tx.commit().await?;
    for s in &stored {
        if let Stored::New { answer, .. } = s {
            super::stock::note_negative(answer);
        }
    }
    Ok(())
}
