//! The in-memory owner of loyalty's working state (SQLite, where one
//! process owns the file): one task holds the cards it has touched with
//! their balances, lots and held purchases, and decides every changing
//! operation in memory, the way TigerBeetle decides transfers. A group of
//! operations (the core's [`group_commit`]) is decided one after the other,
//! then its rows (operations, ledger postings, lots, card and purchase
//! state) are written as projections in one transaction, and only after
//! that commit is anyone answered or the new state shown to readers.
//!
//! The tables stay the truth: a card is loaded from them the first time it
//! is touched, and the owner drops what it holds whenever another
//! connection has written the file (`PRAGMA data_version`: the operator
//! CLI, a test) or a commit failed. Reads (`balance`, `calculate`) are
//! answered from the committed snapshots in [`Shared`] ([`reads`]).
//!
//! PostgreSQL with several tillgate processes keeps the row-locking path
//! ([`super::execute`]): no process can own the cards there.

mod decide;
pub(crate) mod reads;
mod state;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::{Common, OpError, Outcome};
use crate::core::group_commit::{self, Groups, Submitter};
use crate::core::store::{Backend, Db};
use crate::loyalty::cards::{self, CardRow};
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::operations::{self, HELD, Purchase};
use crate::loyalty::rules::{Line, ProductFlags};
use crate::loyalty::{Settings, catalog};
use state::{CardW, Writes};

/// A changing register operation, its card already found by the caller.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Purchase {
        /// The card the identifier names (`None`: none does).
        card: Option<String>,
        /// The identifier as errors may show it.
        shown: String,
        lines: Vec<Line>,
        flags: HashMap<String, ProductFlags>,
        spend: i64,
        offline: bool,
    },
    Confirm(String),
    Cancel(String),
    Refund {
        purchase: String,
        amount: Option<i64>,
    },
}

/// What the owner is asked to do. Nearly every request is a `Register`
/// one, moved once into the queue: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Request {
    Register {
        settings: Settings,
        common: Common,
        change: Change,
    },
    /// An operator's balance correction; answers `{"balance": ...}`.
    Adjust {
        now: i64,
        number: String,
        amount: i64,
        reason: String,
        by: String,
    },
    /// An operator's card state change; answers `{}`.
    SetState { number: String, state: String },
    /// Marks holds due at `now` expired; answers `{"expired": n}`.
    Sweep { now: i64 },
    /// Another part's rows written in the group's transaction, the card's
    /// accumulated total moved by what they decided
    /// ([`crate::loyalty::accrual`]); answers `{"accumulated", "answer"}`.
    Accrue {
        number: String,
        write: crate::loyalty::accrual::Write,
    },
}

pub(crate) type Answer = Result<Value, OpError>;
pub(crate) type Owner = Submitter<Request, Answer>;

/// A card as readers see it: its committed state and its holds.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    pub card: cards::Card,
    /// (expires at, bonus held) of each held purchase.
    pub holds: Vec<(i64, i64)>,
}

/// What the owner shares with request handlers: committed card snapshots
/// and two caches that only grow or are dropped whole.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub snaps: RwLock<HashMap<String, Arc<Snap>>>,
    /// (kind, value) → card number. Identifiers are never removed nor moved
    /// to another card, so a found one stays true.
    pub identifiers: RwLock<HashMap<(String, String), String>>,
    /// The product catalogue; `None` until first read or after an import.
    pub catalog: RwLock<Option<Arc<HashMap<String, ProductFlags>>>>,
    /// Moves on every import, so a catalogue read from the table before an
    /// import is not cached after it.
    pub catalog_generation: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Forgets everything: the tables changed behind the owner's back.
    pub fn clear(&self) {
        self.snaps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.identifiers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.forget_catalog();
    }

    /// The catalogue changed (an import): read it again when next needed.
    pub fn forget_catalog(&self) {
        self.catalog_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Changing operations in one group at most.
const GROUP_MAX: usize = 256;
/// Requests waiting before callers wait to queue.
const QUEUE: usize = 4096;

/// The callers' side and the owner's queue.
pub(crate) fn channel() -> (Owner, Groups<Request, Answer>) {
    group_commit::channel(GROUP_MAX, QUEUE)
}

/// The working state. `mark` is the write connection's `data_version` (and
/// a per-connection marker) it was loaded under.
#[derive(Default)]
struct Working {
    cards: HashMap<String, CardW>,
    /// Held purchases of loaded cards, and any purchase touched in the
    /// current group.
    purchases: HashMap<String, Purchase>,
    /// Hashes of every stored operation id: a new id (nearly every
    /// request) is known new without a look-up; a hit is checked in the
    /// table.
    seen: HashSet<u64>,
    mark: Option<i64>,
}

/// Fixed keys: a collision costs one look-up, never a wrong answer.
fn id_hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// One operation being decided: the group's connection (inside its
/// transaction), the working state, and what this operation writes.
struct Ctx<'a> {
    conn: &'a mut AnyConnection,
    st: &'a mut Working,
    w: &'a mut Writes,
    settings: &'a Settings,
    c: &'a Common,
    now: i64,
    /// The card as it was before this operation changed it: put back if
    /// the operation is refused.
    undo: Option<(String, CardW)>,
}

impl Ctx<'_> {
    fn save(&mut self, number: &str) {
        if self.undo.is_none()
            && let Some(card) = self.st.cards.get(number)
        {
            self.undo = Some((number.to_string(), card.clone()));
        }
    }

    fn held(&self, number: &str) -> i64 {
        self.st
            .cards
            .get(number)
            .map_or(0, |c| c.held(&self.st.purchases, self.now))
    }

    /// Loads card `number` from the tables unless it is held already.
    async fn load_card(&mut self, number: &str) -> Result<Option<()>, OpError> {
        load_card(self.conn, self.st, number).await
    }

    /// Purchase `pid` with its card loaded.
    async fn purchase_of(&mut self, pid: &str) -> Result<Purchase, OpError> {
        if let Some(p) = self.st.purchases.get(pid) {
            return Ok(p.clone());
        }
        let card = operations::purchase_card(&mut *self.conn, pid)
            .await?
            .ok_or_else(|| OpError::PurchaseNotFound(pid.to_string()))?;
        self.load_card(&card)
            .await?
            .ok_or_else(|| OpError::UnknownCard(card.clone()))?;
        if let Some(p) = self.st.purchases.get(pid) {
            return Ok(p.clone());
        }
        let p = operations::purchase(self.conn, pid).await?;
        self.st.purchases.insert(pid.to_string(), p.clone());
        Ok(p)
    }
}

async fn load_card(
    conn: &mut AnyConnection,
    st: &mut Working,
    number: &str,
) -> Result<Option<()>, OpError> {
    if st.cards.contains_key(number) {
        return Ok(Some(()));
    }
    let Some(row) = cards::load_row(&mut *conn, number).await? else {
        return Ok(None);
    };
    let lots = ledger::open_lots(&mut *conn, number).await?;
    let mut holds = std::collections::BTreeSet::new();
    for p in operations::held_purchases(&mut *conn, number).await? {
        holds.insert(p.operation_id.clone());
        st.purchases.entry(p.operation_id.clone()).or_insert(p);
    }
    st.cards
        .insert(number.to_string(), CardW::new(row, lots, holds));
    Ok(Some(()))
}

/// Runs the owner until every [`Owner`] is gone, answering what was queued.
pub(crate) async fn run(db: Db, shared: Arc<Shared>, mut groups: Groups<Request, Answer>) {
    let mut st = Working::default();
    while let Some(group) = groups.next().await {
        metrics::histogram!("tillgate_loyalty_group_size").record(group.len() as f64);
        let (requests, replies) = group.into_parts();
        match run_group(&db, &shared, &mut st, &requests).await {
            Ok(answers) => replies.answer(answers),
            Err(e) => {
                // Nothing of the group is stored: forget what was decided
                // (the tables are the truth) and let registers send the same
                // operations again.
                tracing::error!(error = %e, size = requests.len(), "loyalty group commit failed");
                st = Working::default();
                let msg = e.to_string();
                replies.answer(
                    requests
                        .iter()
                        .map(|_| Err(OpError::NotStored(msg.clone()))),
                );
            }
        }
    }
}

/// `data_version` changes when another connection commits to the file; the
/// temporary marker table is gone when the pool has a new connection
/// (whose `data_version` counts from elsewhere).
async fn tables_mark(conn: &mut AnyConnection) -> Result<Option<i64>, sqlx::Error> {
    let (version, marked): (i64, i64) = sqlx::query_as(
        "SELECT data_version, (SELECT COUNT(*) FROM sqlite_temp_master WHERE name = 'loyalty_owner_mark') FROM pragma_data_version",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((marked == 1).then_some(version))
}

async fn run_group(
    db: &Db,
    shared: &Shared,
    st: &mut Working,
    requests: &[Request],
) -> Result<Vec<Answer>, sqlx::Error> {
    let mut conn = db.write.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let r = decide_and_write(&mut conn, db.backend, shared, st, requests).await;
    match r {
        Ok((answers, w)) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            publish(shared, st, &w);
            st.purchases
                .retain(|_, p| p.status.as_deref() == Some(HELD));
            Ok(answers)
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn decide_and_write(
    conn: &mut AnyConnection,
    backend: Backend,
    shared: &Shared,
    st: &mut Working,
    requests: &[Request],
) -> Result<(Vec<Answer>, Writes), sqlx::Error> {
    let mark = tables_mark(conn).await?;
    if mark.is_none() || mark != st.mark {
        if st.mark.is_some() {
            tracing::debug!("loyalty tables changed elsewhere; reloading");
        }
        *st = Working::default();
        shared.clear();
        sqlx::query("CREATE TEMP TABLE IF NOT EXISTS loyalty_owner_mark (x BIGINT)")
            .execute(&mut *conn)
            .await?;
        st.seen = operations::all_ids(conn)
            .await?
            .iter()
            .map(|id| id_hash(id))
            .collect();
        st.mark = tables_mark(conn).await?;
    }
    let mut w = Writes::default();
    // Answers decided in this group, by operation id: a retry queued in the
    // same group gets the first answer.
    let mut pending: HashMap<String, (String, Value)> = HashMap::new();
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        answers.push(decide_one(conn, st, &mut w, &mut pending, r).await?);
    }
    write(conn, backend, st, &w).await?;
    Ok((answers, w))
}

/// Decides one request; only a database error (loading a card) ends the
/// group.
async fn decide_one(
    conn: &mut AnyConnection,
    st: &mut Working,
    group: &mut Writes,
    pending: &mut HashMap<String, (String, Value)>,
    r: &Request,
) -> Result<Answer, sqlx::Error> {
    let mut w = Writes::default();
    let answer = match r {
        Request::Register {
            settings,
            common,
            change,
        } => {
            if let Some(a) = stored(conn, st, pending, common).await? {
                return Ok(a);
            }
            let mut ctx = Ctx {
                conn,
                st,
                w: &mut w,
                settings,
                c: common,
                now: settings.clock.now_ms(),
                undo: None,
            };
            let r = ctx.change(change).await;
            let undo = ctx.undo.take();
            match r {
                Ok(v) => {
                    st.seen.insert(id_hash(&common.operation_id));
                    pending.insert(
                        common.operation_id.clone(),
                        (common.canonical.clone(), v.clone()),
                    );
                    Ok(v)
                }
                Err(Outcome::CommitThenRefuse(e)) => Err(e),
                Err(Outcome::Refuse(e)) => {
                    if let Some((n, card)) = undo {
                        st.cards.insert(n, card);
                    }
                    if let OpError::Db(e) = e {
                        return Err(e);
                    }
                    return Ok(Err(e));
                }
            }
        }
        Request::Adjust {
            now,
            number,
            amount,
            reason,
            by,
        } => adjust(conn, st, &mut w, *now, number, *amount, reason, by).await,
        Request::SetState { number, state } => match load_card(conn, st, number).await {
            Ok(Some(())) => {
                let card = st.cards.get_mut(number).expect("loaded");
                card.row.state = state.clone();
                w.cards.insert(number.clone());
                Ok(json!({}))
            }
            Ok(None) => Err(OpError::UnknownCard(number.clone())),
            Err(OpError::Db(e)) => return Err(e),
            Err(e) => Err(e),
        },
        Request::Accrue { number, write } => match load_card(conn, st, number).await {
            Ok(Some(())) => {
                let now = st.cards.get(number).expect("loaded").row.accumulated;
                let a = write
                    .write(conn, crate::loyalty::accrual::OWNER_BACKEND, now)
                    .await?;
                let card = st.cards.get_mut(number).expect("loaded");
                if a.delta != 0 {
                    card.add_accumulated(a.delta, &mut w);
                }
                Ok(crate::loyalty::accrual::owner_answer(
                    card.row.accumulated,
                    a,
                ))
            }
            Ok(None) => Err(OpError::UnknownCard(number.clone())),
            Err(OpError::Db(e)) => return Err(e),
            Err(e) => Err(e),
        },
        Request::Sweep { now } => {
            let mut n = 0u64;
            for (id, p) in st.purchases.iter_mut() {
                if p.status.as_deref() == Some(HELD) && p.hold_expires_at.is_some_and(|e| e <= *now)
                {
                    p.status = Some(operations::EXPIRED.to_string());
                    if let Some(card) = st.cards.get_mut(&p.card) {
                        card.holds.remove(id);
                        w.cards.insert(p.card.clone());
                    }
                    w.purchases.insert(id.clone());
                    n += 1;
                }
            }
            w.sweep = Some(*now);
            Ok(json!({"expired": n}))
        }
    };
    group.merge(w);
    Ok(answer)
}

/// The first answer to `c.operation_id` if it was decided before; a
/// different request under the same id is a conflict.
async fn stored(
    conn: &mut AnyConnection,
    st: &Working,
    pending: &HashMap<String, (String, Value)>,
    c: &Common,
) -> Result<Option<Answer>, sqlx::Error> {
    let first = if let Some((request, answer)) = pending.get(&c.operation_id) {
        Some((request.clone(), answer.clone()))
    } else if st.seen.contains(&id_hash(&c.operation_id)) {
        match operations::stored(&mut *conn, &c.operation_id).await? {
            Some(s) => {
                let v = serde_json::from_str(&s.response)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Some((s.request, v))
            }
            None => None,
        }
    } else {
        None
    };
    Ok(first.map(|(request, answer)| {
        if request == c.canonical {
            Ok(answer)
        } else {
            Err(OpError::Conflict(c.operation_id.clone()))
        }
    }))
}

#[allow(clippy::too_many_arguments)]
async fn adjust(
    conn: &mut AnyConnection,
    st: &mut Working,
    w: &mut Writes,
    now: i64,
    number: &str,
    amount: i64,
    reason: &str,
    by: &str,
) -> Answer {
    if load_card(conn, st, number).await?.is_none() {
        return Err(OpError::UnknownCard(number.to_string()));
    }
    let card = st.cards.get_mut(number).expect("loaded");
    let before = card.clone();
    let meta = Meta {
        kind: "adjustment",
        operation_id: None,
        reason: Some(reason),
        actor: Some(by),
        now,
    };
    let mut mine = Writes::default();
    let r = if amount > 0 {
        card.credit(amount, None, ledger::ADJUSTMENTS, meta, &mut mine)
    } else {
        card.debit(-amount, ledger::ADJUSTMENTS, meta, &mut mine)
    };
    match r {
        Ok(()) => {
            let balance = card.row.balance;
            w.merge(mine);
            Ok(json!({"balance": balance}))
        }
        Err(e) => {
            *card = before;
            Err(e.into())
        }
    }
}

/// Writes the group's projections, inside its transaction.
async fn write(
    conn: &mut AnyConnection,
    backend: Backend,
    st: &Working,
    w: &Writes,
) -> Result<(), sqlx::Error> {
    let lots: Vec<_> = w.lots.values().cloned().collect();
    ledger::upsert_lots(conn, backend, &lots).await?;
    operations::insert_rows(conn, backend, &w.operations).await?;
    ledger::insert_rows(conn, backend, &w.ledger).await?;
    let cards: Vec<CardRow> = w
        .cards
        .iter()
        .filter_map(|n| st.cards.get(n).map(|c| c.row.clone()))
        .collect();
    cards::write_rows(conn, backend, &cards).await?;
    let purchases: Vec<Purchase> = w
        .purchases
        .iter()
        .filter_map(|id| st.purchases.get(id).cloned())
        .collect();
    operations::write_purchases(conn, backend, &purchases).await?;
    if let Some(now) = w.sweep {
        operations::expire_holds(&mut *conn, now).await?;
    }
    Ok(())
}

/// Shows readers the committed state of every card the group touched.
fn publish(shared: &Shared, st: &Working, w: &Writes) {
    let mut snaps = shared.snaps.write().unwrap_or_else(|e| e.into_inner());
    for n in &w.cards {
        if let Some(c) = st.cards.get(n) {
            let holds = c
                .holds
                .iter()
                .filter_map(|id| st.purchases.get(id))
                .filter(|p| p.status.as_deref() == Some(HELD))
                .filter_map(|p| p.hold_expires_at.map(|e| (e, p.spend)))
                .collect();
            snaps.insert(
                n.clone(),
                Arc::new(Snap {
                    card: c.row.card(),
                    holds,
                }),
            );
        }
    }
}

/// The sweeper's side on SQLite: holds are expired by the owner, in memory
/// and in the tables at once.
pub(crate) struct OwnerSweeper {
    pub owner: Owner,
    pub settings: Settings,
}

impl crate::core::outbox::OutboxWorker for OwnerSweeper {
    type Error = OpError;

    async fn run_once(&mut self) -> Result<crate::core::outbox::Step, OpError> {
        let now = self.settings.clock.now_ms();
        self.owner
            .submit(Request::Sweep { now })
            .await
            .map_err(|_| OpError::Task("the loyalty owner has stopped".into()))??;
        Ok(crate::core::outbox::Step::Wait(super::sweeper::SWEEP_EVERY))
    }
}

/// Loads the catalogue into the shared cache unless it is there.
pub(crate) async fn catalog(
    db: &Db,
    shared: &Shared,
) -> Result<Arc<HashMap<String, ProductFlags>>, sqlx::Error> {
    if let Some(c) = shared
        .catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return Ok(c);
    }
    let generation = shared
        .catalog_generation
        .load(std::sync::atomic::Ordering::SeqCst);
    let c = Arc::new(catalog::all_flags(db).await?);
    let mut slot = shared.catalog.write().unwrap_or_else(|e| e.into_inner());
    if generation
        == shared
            .catalog_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    {
        *slot = Some(c.clone());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Storage;
    use crate::loyalty::ops::{Kind, Request as Req, parse};

    async fn db(dir: &std::path::Path) -> Db {
        let db = Db::open(&Storage::Sqlite {
            path: dir.join("t.sqlite"),
        })
        .await
        .unwrap();
        crate::core::migrate::migrate(&db, &[crate::migration!("0007_loyalty")])
            .await
            .unwrap();
        db
    }

    fn cancel(op: &str, purchase: &str) -> Request {
        let (common, op) = parse(
            Kind::Cancel,
            Req {
                operation_id: op.into(),
                register: "r1".into(),
                cashier: "c".into(),
                local_time: "2026-10-03T12:00:00".into(),
                identifier: None,
                card_entry: None,
                lines: None,
                bonus_spend: None,
                offline: None,
                purchase_operation_id: Some(purchase.into()),
                amount: None,
            },
        )
        .unwrap();
        let change = match op {
            crate::loyalty::ops::Op::Cancel(p) => Change::Cancel(p),
            _ => unreachable!("a cancel"),
        };
        Request::Register {
            settings: Settings::default(),
            common,
            change,
        }
    }

    #[tokio::test]
    async fn a_refused_operation_leaves_the_rest_of_its_group_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        let (changes, groups) = channel();
        let task = tokio::spawn(run(db.clone(), Arc::default(), groups));
        // No such purchase: each is refused, in its own savepoint.
        let (a, b) = tokio::join!(
            changes.submit(cancel("x1", "nope")),
            changes.submit(cancel("x2", "nope")),
        );
        assert!(matches!(a.unwrap(), Err(OpError::PurchaseNotFound(_))));
        assert!(matches!(b.unwrap(), Err(OpError::PurchaseNotFound(_))));
        drop(changes);
        task.await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM loyalty_operations")
            .fetch_one(&db.read)
            .await
            .unwrap();
        assert_eq!(stored, 0);
        db.close().await;
    }

    /// A group whose transaction fails answers every caller "not stored"
    /// (503 at the API), so registers send the same operations again.
    #[tokio::test]
    async fn a_failed_group_commit_answers_not_stored_to_everyone_and_forgets_its_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.write.close().await;
        let (changes, groups) = channel();
        let task = tokio::spawn(run(db.clone(), Arc::default(), groups));
        let (a, b) = tokio::join!(
            changes.submit(cancel("x1", "p")),
            changes.submit(cancel("x2", "p")),
        );
        for r in [a, b] {
            assert!(matches!(r.unwrap(), Err(OpError::NotStored(_))));
        }
        drop(changes);
        task.await.unwrap();
    }

    fn request(kind: Kind, op: &str, fill: impl FnOnce(&mut Req)) -> Request {
        let mut r = Req {
            operation_id: op.into(),
            register: "r1".into(),
            cashier: "c".into(),
            local_time: "2026-10-03T12:00:00".into(),
            identifier: None,
            card_entry: None,
            lines: None,
            bonus_spend: None,
            offline: None,
            purchase_operation_id: None,
            amount: None,
        };
        fill(&mut r);
        let (common, op) = parse(kind, r).unwrap();
        let change = match op {
            crate::loyalty::ops::Op::Purchase {
                lines,
                spend,
                offline,
                ..
            } => Change::Purchase {
                card: Some("1000".into()),
                shown: "1000".into(),
                lines,
                flags: HashMap::new(),
                spend,
                offline,
            },
            crate::loyalty::ops::Op::Confirm(p) => Change::Confirm(p),
            _ => unreachable!("purchase or confirm"),
        };
        Request::Register {
            settings: Settings::default(),
            common,
            change,
        }
    }

    /// Decided in memory, written as projections: after a refused spend and
    /// a purchase with its confirm, the card row, its lots and its ledger
    /// in the tables agree with what the registers were told.
    #[tokio::test]
    async fn projections_agree_with_the_answers() {
        use crate::loyalty::operator::{self, Adjustment, NewCard};
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        let card = NewCard {
            number: "1000".into(),
            holder_name: "Anna".into(),
            phone: None,
            barcode: None,
            track: None,
            state: None,
        };
        operator::issue_card(&db, &card).await.unwrap();
        let a = Adjustment {
            amount: 10_000,
            reason: "welcome".into(),
            by: "test".into(),
        };
        operator::adjust(&db, &Settings::default(), "1000", &a)
            .await
            .unwrap();
        let (owner, groups) = channel();
        let task = tokio::spawn(run(db.clone(), Arc::default(), groups));
        let lines: Vec<crate::loyalty::rules::Line> = serde_json::from_value(serde_json::json!(
            [{"goods_id": "1", "price": 100_000, "quantity": 1000, "amount": 100_000}]
        ))
        .unwrap();
        let buy = |op: &str, spend: i64| {
            let lines = lines.clone();
            request(Kind::Purchase, op, move |r| {
                r.identifier = Some(
                    serde_json::from_value(serde_json::json!({"kind": "card", "value": "1000"}))
                        .unwrap(),
                );
                r.lines = Some(lines);
                r.bonus_spend = Some(spend);
            })
        };
        let refused = owner.submit(buy("p0", 20_000)).await.unwrap();
        assert!(
            matches!(
                refused,
                Err(OpError::NotEnough {
                    available: 10_000,
                    ..
                })
            ),
            "{refused:?}"
        );
        let held = owner.submit(buy("p1", 4_000)).await.unwrap().unwrap();
        assert_eq!(held["balance"]["held"], 4_000);
        let confirm = request(Kind::Confirm, "c1", |r| {
            r.purchase_operation_id = Some("p1".into())
        });
        let done = owner.submit(confirm).await.unwrap().unwrap();
        let balance = done["balance"]["bonus"].as_i64().unwrap();
        assert_eq!(
            balance,
            10_000 - 4_000 + held["bonus_earn"].as_i64().unwrap()
        );
        drop(owner);
        task.await.unwrap();
        let row: i64 =
            sqlx::query_scalar("SELECT balance FROM loyalty_cards WHERE number = '1000'")
                .fetch_one(&db.read)
                .await
                .unwrap();
        let lots: i64 = sqlx::query_scalar(
            "SELECT CAST(SUM(remaining) AS BIGINT) FROM loyalty_lots WHERE card_number = '1000'",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        assert_eq!((row, lots), (balance, balance));
        assert_eq!(
            ledger::ledger_balance(&db.read, "1000").await.unwrap(),
            balance
        );
        let status: String =
            sqlx::query_scalar("SELECT status FROM loyalty_operations WHERE operation_id = 'p1'")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(status, "confirmed");
        let refused_stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM loyalty_operations WHERE operation_id = 'p0'")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(refused_stored, 0);
        db.close().await;
    }
}
