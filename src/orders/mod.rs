//! Orders, stations, cash servers and shifts: the first consumer of the log.
//!
//! [`StateConsumer`] reads each event, folds it into the touched snapshots
//! ([`crate::core::book::Book`]) and writes them back with its cursor in one
//! transaction. Its tables are read and written only in [`store`];
//! [`api`] serves them to the operator.

pub mod api;

pub mod store;

use std::collections::{HashMap, HashSet};

use crate::core::book::Book;
use crate::core::consumer::{BoxFuture, Consumer, ConsumerError, Runner};
use crate::core::feature::{Feature, Routes, StartCtx};
use crate::core::log::{self, LogEntry};
use crate::core::migrate::Migration;
use crate::core::store::{Db, StoreError};
pub use api::api_routes;
pub use store::{ShiftTotals, load_all, shift_totals};

pub const CONSUMER_NAME: &str = "orders";

/// The order-state feature: its consumer and the read API over its tables.
pub struct Orders;

impl Feature for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![crate::migration!("0003_order_state")]
    }

    fn start<'a>(
        &'a self,
        ctx: &'a mut StartCtx,
    ) -> crate::core::feature::BoxFuture<'a, anyhow::Result<Routes>> {
        Box::pin(async move {
            let runner = Runner::new(StateConsumer, ctx.db.clone(), crate::core::consumer::BATCH)
                .await?
                .with_coalesce(std::time::Duration::from_millis(50));
            ctx.runtimes
                .spawn(runner.run(ctx.log.subscribe(), ctx.shutdown.clone()));
            Ok(Routes {
                operator: api_routes().with_state(ctx.db.clone()),
                ..Routes::default()
            })
        })
    }
}

#[derive(Default)]
pub struct StateConsumer;

impl Consumer for StateConsumer {
    fn name(&self) -> String {
        CONSUMER_NAME.to_string()
    }

    fn apply<'a>(
        &'a mut self,
        db: &'a Db,
        entries: &'a [LogEntry],
    ) -> BoxFuture<'a, Result<(), ConsumerError>> {
        Box::pin(apply_batch(db, entries))
    }
}

async fn apply_batch(db: &Db, entries: &[LogEntry]) -> Result<(), ConsumerError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    // Events were validated at ingest; one that no longer reads (a reader
    // change) is skipped with a log line rather than wedging the consumer.
    let mut events = Vec::with_capacity(entries.len());
    for e in entries {
        match e.event() {
            Ok(ev) => events.push((e, ev)),
            Err(err) => {
                tracing::error!(offset = e.offset, error = %err, "stored event no longer reads; skipped by order state")
            }
        }
    }
    let mut touched = store::Touched::default();
    for (_, ev) in &events {
        let keys = Book::keys_for(ev);
        touched.orders.extend(keys.order);
        touched.stations.extend(keys.station);
        touched.servers.extend(keys.server);
        touched.shift_rests.extend(keys.shift_rest);
        if let (Some(r), Some(n)) = (&ev.rest_code, ev.shift_num) {
            touched.shifts.push((r.0.clone(), n));
        }
    }
    let mut book = store::load_touched(db, &touched).await?;
    for (entry, ev) in &events {
        book.apply(entry, ev);
    }
    store::save(db, &book, CONSUMER_NAME, last.offset).await
}

/// Folds the whole log from offset 0 in memory, up to `upto`: what the
/// stored state must equal once the consumer has reached `upto`.
pub async fn replay(db: &Db, upto: i64) -> Result<Book, StoreError> {
    let mut book = Book::default();
    let mut after = 0;
    loop {
        let entries = log::read_after(db, after, 1000, true).await?;
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            if e.offset > upto {
                return Ok(book);
            }
            if let Ok(ev) = e.event() {
                book.apply(e, &ev);
            }
            after = e.offset;
        }
    }
    Ok(book)
}

/// Used by tests and the crash check: compares stored state with a replay.
pub fn diff_books(stored: &Book, replayed: &Book) -> Vec<String> {
    let mut out = Vec::new();
    let keys: HashSet<&String> = stored.orders.keys().chain(replayed.orders.keys()).collect();
    for k in keys {
        if stored.orders.get(k) != replayed.orders.get(k) {
            out.push(format!("order {k} differs"));
        }
    }
    let a: HashMap<_, _> = stored.stations.iter().collect();
    let b: HashMap<_, _> = replayed.stations.iter().collect();
    if a != b {
        out.push("stations differ".into());
    }
    if stored.servers != replayed.servers {
        out.push("cash servers differ".into());
    }
    if stored.shifts != replayed.shifts {
        out.push("shifts differ".into());
    }
    out
}
