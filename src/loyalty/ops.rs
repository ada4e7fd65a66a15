//! Register operations: balance, calculate, purchase, confirm, cancel,
//! refund. Requests are parsed into [`Op`] at the edge; each changing
//! operation runs in one write transaction that also stores its answer
//! under the register's `operation_id`, so a retry gets the first answer.
//!
//! Spending is serialised per card: on PostgreSQL the card row is locked
//! (`SELECT ... FOR UPDATE`) for the transaction; SQLite has one writer.
//! The conditional UPDATE in [`super::ledger::debit`] is the last guard.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::Settings;
use super::ledger::{self, LedgerError, Meta};
use super::rules::{self, Line, ProductFlags};
use crate::core::store::{Backend, Db};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no card matches identifier {0:?}")]
    UnknownCard(String),
    #[error("card {0} is blocked; identify the guest by another identifier (e.g. phone)")]
    CardBlocked(String),
    #[error("card {0} is not activated: it may earn bonus but not spend it")]
    NotActivated(String),
    #[error("not enough bonus: {available} available, {requested} requested")]
    NotEnough { available: i64, requested: i64 },
    #[error("this receipt allows at most {max} bonus, {requested} requested")]
    OverReceiptShare { max: i64, requested: i64 },
    #[error("the hold of purchase {0} expired; run the purchase again")]
    HoldExpired(String),
    #[error("no purchase with operation_id {0}")]
    PurchaseNotFound(String),
    #[error("purchase {id} is {status}, cannot {action} it")]
    PurchaseState {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("operation_id {0} was already used with a different request")]
    Conflict(String),
    #[error("{field}: {why}")]
    Malformed { field: String, why: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The operation's task panicked or its runtime is shutting down.
    #[error("operation task failed: {0}")]
    Task(String),
    /// The group commit the operation ran in failed: nothing of it is
    /// stored, and the same operation may be sent again.
    #[error("not stored, send the same operation again: {0}")]
    NotStored(String),
}

impl From<LedgerError> for OpError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotEnough {
                available,
                requested,
            } => OpError::NotEnough {
                available,
                requested,
            },
            LedgerError::Db(e) => OpError::Db(e),
        }
    }
}

fn malformed(field: &str, why: impl Into<String>) -> OpError {
    OpError::Malformed {
        field: field.to_string(),
        why: why.into(),
    }
}

/// How the register read the guest's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Source unknown: card number, then barcode, track, phone.
    Auto,
    Card,
    Barcode,
    Track,
    Phone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    pub kind: IdKind,
    pub value: String,
}

/// The wire form of every register request. One struct so unknown fields
/// are refused; [`parse`] turns it into a typed [`Op`] per endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub operation_id: String,
    pub register: String,
    pub cashier: String,
    /// Register local time without zone, e.g. `2026-10-03T16:05:00`.
    pub local_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<Line>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus_spend: Option<i64>,
    /// Sent by the client's offline queue: earn only, confirmed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_operation_id: Option<String>,
    /// Refund: net kopecks to refund; absent means all that is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Balance,
    Calculate,
    Purchase,
    Confirm,
    Cancel,
    Refund,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Balance => "balance",
            Kind::Calculate => "calculate",
            Kind::Purchase => "purchase",
            Kind::Confirm => "confirm",
            Kind::Cancel => "cancel",
            Kind::Refund => "refund",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Common {
    pub operation_id: String,
    pub register: String,
    pub cashier: String,
    pub local_time: NaiveDateTime,
    /// The request as stored for idempotency comparison.
    pub canonical: String,
}

#[derive(Debug, Clone)]
pub enum Op {
    Balance(Identifier),
    Calculate(Identifier, Vec<Line>),
    Purchase {
        id: Identifier,
        lines: Vec<Line>,
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

/// Register local time: no zone (seed 002: it is not sent).
pub fn parse_local_time(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

fn short_text(field: &str, v: &str, max: usize) -> Result<(), OpError> {
    if v.trim().is_empty() {
        return Err(malformed(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(malformed(field, format!("longer than {max} characters")));
    }
    Ok(())
}

fn check_lines(lines: Option<Vec<Line>>) -> Result<Vec<Line>, OpError> {
    let lines = lines.ok_or_else(|| malformed("lines", "required for this operation"))?;
    if lines.is_empty() {
        return Err(malformed("lines", "a receipt needs at least one line"));
    }
    if lines.len() > 1000 {
        return Err(malformed("lines", "more than 1000 lines"));
    }
    for (i, l) in lines.iter().enumerate() {
        short_text(&format!("lines[{i}].goods_id"), &l.goods_id, 64)?;
        if l.price < 0 {
            return Err(malformed(&format!("lines[{i}].price"), "negative"));
        }
        if l.quantity <= 0 {
            return Err(malformed(
                &format!("lines[{i}].quantity"),
                "must be positive (thousandths of a unit)",
            ));
        }
        if !(0..=100_000_000_000).contains(&l.amount) {
            return Err(malformed(
                &format!("lines[{i}].amount"),
                "must be between 0 and 1 000 000 000 roubles in kopecks",
            ));
        }
    }
    Ok(lines)
}

fn check_identifier(id: Option<Identifier>) -> Result<Identifier, OpError> {
    let id = id.ok_or_else(|| malformed("identifier", "required for this operation"))?;
    short_text("identifier.value", &id.value, 200)?;
    Ok(id)
}

/// Turns the wire request into a typed operation for endpoint `kind`.
pub fn parse(kind: Kind, req: Request) -> Result<(Common, Op), OpError> {
    short_text("operation_id", &req.operation_id, 64)?;
    short_text("register", &req.register, 64)?;
    short_text("cashier", &req.cashier, 200)?;
    if req.local_time.ends_with('Z') || req.local_time.contains('+') {
        return Err(malformed(
            "local_time",
            "register local time has no zone; send e.g. 2026-10-03T16:05:00",
        ));
    }
    let local_time = parse_local_time(&req.local_time).ok_or_else(|| {
        malformed(
            "local_time",
            format!(
                "{:?} is not a local time like 2026-10-03T16:05:00",
                req.local_time
            ),
        )
    })?;
    let canonical = format!(
        "{}:{}",
        kind.name(),
        serde_json::to_string(&req).map_err(|e| malformed("body", e.to_string()))?
    );
    let refuse_extra = |name: &str, present: bool| -> Result<(), OpError> {
        if present {
            Err(malformed(name, format!("not used by {}", kind.name())))
        } else {
            Ok(())
        }
    };
    let op = match kind {
        Kind::Balance | Kind::Calculate | Kind::Purchase => {
            refuse_extra("purchase_operation_id", req.purchase_operation_id.is_some())?;
            refuse_extra("amount", req.amount.is_some())?;
            let id = check_identifier(req.identifier)?;
            match kind {
                Kind::Balance => {
                    refuse_extra("lines", req.lines.is_some())?;
                    refuse_extra("bonus_spend", req.bonus_spend.is_some())?;
                    refuse_extra("offline", req.offline.is_some())?;
                    Op::Balance(id)
                }
                Kind::Calculate => {
                    refuse_extra("bonus_spend", req.bonus_spend.is_some())?;
                    refuse_extra("offline", req.offline.is_some())?;
                    Op::Calculate(id, check_lines(req.lines)?)
                }
                _ => {
                    let spend = req.bonus_spend.unwrap_or(0);
                    if spend < 0 {
                        return Err(malformed("bonus_spend", "negative"));
                    }
                    let offline = req.offline.unwrap_or(false);
                    if offline && spend > 0 {
                        return Err(malformed(
                            "bonus_spend",
                            "offline operations may only earn bonus",
                        ));
                    }
                    Op::Purchase {
                        id,
                        lines: check_lines(req.lines)?,
                        spend,
                        offline,
                    }
                }
            }
        }
        Kind::Confirm | Kind::Cancel | Kind::Refund => {
            refuse_extra("identifier", req.identifier.is_some())?;
            refuse_extra("lines", req.lines.is_some())?;
            refuse_extra("bonus_spend", req.bonus_spend.is_some())?;
            refuse_extra("offline", req.offline.is_some())?;
            let p = req
                .purchase_operation_id
                .ok_or_else(|| malformed("purchase_operation_id", "required for this operation"))?;
            short_text("purchase_operation_id", &p, 64)?;
            match kind {
                Kind::Confirm => {
                    refuse_extra("amount", req.amount.is_some())?;
                    Op::Confirm(p)
                }
                Kind::Cancel => {
                    refuse_extra("amount", req.amount.is_some())?;
                    Op::Cancel(p)
                }
                _ => {
                    if req.amount.is_some_and(|a| a <= 0) {
                        return Err(malformed("amount", "must be positive kopecks"));
                    }
                    Op::Refund {
                        purchase: p,
                        amount: req.amount,
                    }
                }
            }
        }
    };
    Ok((
        Common {
            operation_id: req.operation_id,
            register: req.register,
            cashier: req.cashier,
            local_time,
            canonical,
        },
        op,
    ))
}

/// A card as the operations see it.
#[derive(Debug, Clone)]
pub struct Card {
    pub number: String,
    pub state: String,
    pub balance: i64,
    pub accumulated: i64,
    pub holder_name: String,
}

/// Digits of a phone in E.164 form (`+7...`); Russian `8...` becomes `+7...`.
pub fn normalise_phone(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    let allowed = s.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
    if !allowed || !(10..=15).contains(&digits.len()) {
        return None;
    }
    let digits = if digits.len() == 11 && digits.starts_with('8') {
        format!("7{}", &digits[1..])
    } else if digits.len() == 10 && !s.trim_start().starts_with('+') {
        format!("7{digits}")
    } else {
        digits
    };
    Some(format!("+{digits}"))
}

pub fn mask(number: &str) -> String {
    let n = number.chars().count();
    let tail: String = number.chars().skip(n.saturating_sub(4)).collect();
    format!("****{tail}")
}

async fn load_card(conn: &mut AnyConnection, number: &str) -> Result<Option<Card>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.number, c.state, c.balance, c.accumulated, h.name FROM loyalty_cards c \
         JOIN loyalty_holders h ON h.id = c.holder_id WHERE c.number = $1",
    )
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Card {
            number: r.try_get(0)?,
            state: r.try_get(1)?,
            balance: r.try_get(2)?,
            accumulated: r.try_get(3)?,
            holder_name: r.try_get(4)?,
        })
    })
    .transpose()
}

async fn card_by_phone(
    conn: &mut AnyConnection,
    phone: &str,
) -> Result<Option<String>, sqlx::Error> {
    // A holder may have several cards; prefer one that can be used.
    sqlx::query_scalar(
        "SELECT c.number FROM loyalty_cards c JOIN loyalty_holders h ON h.id = c.holder_id \
         WHERE h.phone = $1 ORDER BY CASE c.state WHEN 'active' THEN 0 WHEN 'inactive' THEN 1 ELSE 2 END, c.created_at LIMIT 1",
    )
    .bind(phone)
    .fetch_optional(&mut *conn)
    .await
}

async fn card_by_kind(
    conn: &mut AnyConnection,
    kind: &str,
    value: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT card_number FROM loyalty_identifiers WHERE value = $1 AND kind = $2")
        .bind(value)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await
}

/// Finds the card an identifier names. Blocked cards are refused here, so
/// every operation refuses them the same way.
pub async fn identify(conn: &mut AnyConnection, id: &Identifier) -> Result<Card, OpError> {
    let v = id.value.trim();
    let mut number = None;
    if matches!(id.kind, IdKind::Card | IdKind::Auto) {
        number = card_by_kind(conn, "card", v).await?;
    }
    for (kind, k) in [(IdKind::Barcode, "barcode"), (IdKind::Track, "track")] {
        if number.is_none() && (id.kind == kind || id.kind == IdKind::Auto) {
            number = card_by_kind(conn, k, v).await?;
        }
    }
    if number.is_none() && matches!(id.kind, IdKind::Phone | IdKind::Auto) {
        match normalise_phone(v) {
            Some(p) => number = card_by_phone(conn, &p).await?,
            None if id.kind == IdKind::Phone => {
                return Err(malformed(
                    "identifier.value",
                    format!("{v:?} is not a phone number"),
                ));
            }
            None => {}
        }
    }
    let number = number.ok_or_else(|| OpError::UnknownCard(v.to_string()))?;
    let card = load_card(conn, &number)
        .await?
        .ok_or_else(|| OpError::UnknownCard(v.to_string()))?;
    if card.state == "blocked" {
        return Err(OpError::CardBlocked(mask(&card.number)));
    }
    Ok(card)
}

async fn lock_card(
    conn: &mut AnyConnection,
    backend: Backend,
    number: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT number FROM loyalty_cards WHERE number = $1 FOR UPDATE")
            .bind(number)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Bonus reserved by open, unexpired holds.
async fn held(conn: &mut AnyConnection, number: &str, now: i64) -> Result<i64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(bonus_spend) AS BIGINT) FROM loyalty_operations WHERE card_number = $1 AND status = 'held' AND hold_expires_at > $2",
    )
    .bind(number)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(v.unwrap_or(0))
}

async fn product_flags(
    conn: &mut AnyConnection,
    lines: &[Line],
) -> Result<std::collections::HashMap<String, ProductFlags>, sqlx::Error> {
    let mut out = std::collections::HashMap::new();
    for l in lines {
        if out.contains_key(&l.goods_id) {
            continue;
        }
        let row =
            sqlx::query("SELECT no_discount, no_bonus FROM loyalty_products WHERE goods_id = $1")
                .bind(&l.goods_id)
                .fetch_optional(&mut *conn)
                .await?;
        let f = match row {
            Some(r) => ProductFlags {
                no_discount: r.try_get::<i64, _>(0)? != 0,
                no_bonus: r.try_get::<i64, _>(1)? != 0,
            },
            None => ProductFlags::default(),
        };
        out.insert(l.goods_id.clone(), f);
    }
    Ok(out)
}

/// The holder block and balances every answer carries (seed 002).
fn card_json(settings: &Settings, card: &Card, held: i64) -> Value {
    let tier = settings.rules.tier_for(card.accumulated);
    let spendable = if card.state == "active" {
        (card.balance - held).max(0)
    } else {
        0
    };
    json!({
        "holder": {
            "name": card.holder_name,
            "card": mask(&card.number),
            "tier": tier.name,
            "state": card.state,
        },
        "balance": {
            "bonus": card.balance,
            "held": held,
            "available": spendable,
            "accumulated": card.accumulated,
        },
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Runs one operation. Read-only ones (balance, calculate) use the read
/// pool and store nothing: repeating them is harmless by nature.
pub async fn execute(db: &Db, settings: &Settings, c: &Common, op: Op) -> Result<Value, OpError> {
    let now = settings.clock.now_ms();
    match op {
        Op::Balance(id) => {
            let mut conn = db.read.acquire().await?;
            let card = identify(&mut conn, &id).await?;
            let h = held(&mut conn, &card.number, now).await?;
            Ok(merge(
                json!({"operation_id": c.operation_id}),
                card_json(settings, &card, h),
            ))
        }
        Op::Calculate(id, lines) => {
            let mut conn = db.read.acquire().await?;
            let card = identify(&mut conn, &id).await?;
            let h = held(&mut conn, &card.number, now).await?;
            let flags = product_flags(&mut conn, &lines).await?;
            let tier = settings.rules.tier_for(card.accumulated);
            let p = rules::price(
                &settings.rules,
                tier,
                c.local_time,
                &lines,
                &|g| flags.get(g).copied().unwrap_or_default(),
                true,
            );
            let available = if card.state == "active" {
                (card.balance - h).max(0)
            } else {
                0
            };
            Ok(merge(
                json!({
                    "operation_id": c.operation_id,
                    "lines": p.lines,
                    "total": p.total,
                    "discount": p.discount,
                    "net": p.net,
                    "bonus_earn": p.earn,
                    "bonus_max_spend": p.max_spend_by_receipt.min(available),
                }),
                card_json(settings, &card, h),
            ))
        }
        changing => match changing_alone(db, settings, c, now, &changing).await {
            // Another connection stored the same operation_id between our
            // look-up and our insert (two registers sending it at once):
            // once more, and the stored request answers (same answer or
            // 409), instead of a 500 from the unique key.
            Err(OpError::Db(e)) if is_unique_violation(&e) => {
                changing_alone(db, settings, c, now, &changing).await
            }
            r => r,
        },
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A changing operation in a transaction of its own (PostgreSQL, where
/// row locks let several run side by side; SQLite goes through
/// [`committer`]).
async fn changing_alone(
    db: &Db,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &Op,
) -> Result<Value, OpError> {
    let mut tx = db.write.begin().await?;
    let answer = match changing_in(&mut tx, db.backend, settings, c, now, op).await {
        Ok(v) => Ok(v),
        Err(Outcome::Refuse(e)) => return Err(e),
        Err(Outcome::CommitThenRefuse(e)) => Err(e),
    };
    tx.commit().await?;
    answer
}

/// A changing operation (purchase, confirm, cancel, refund) run inside the
/// caller's transaction: replays a stored answer, or does the work.
async fn changing_in(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    op: &Op,
) -> Result<Value, Outcome> {
    if let Some(stored) = stored_answer(conn, c).await? {
        return Ok(stored);
    }
    match op {
        Op::Purchase {
            id,
            lines,
            spend,
            offline,
        } => purchase(conn, backend, settings, c, now, id, lines, *spend, *offline).await,
        Op::Confirm(p) => confirm(conn, backend, settings, c, now, p).await,
        Op::Cancel(p) => cancel(conn, backend, settings, c, now, p).await,
        Op::Refund { purchase, amount } => {
            refund(conn, backend, settings, c, now, purchase, *amount).await
        }
        Op::Balance(_) | Op::Calculate(..) => Err(Outcome::Refuse(OpError::Task(
            "a read-only operation was queued for the group commit".into(),
        ))),
    }
}

/// A changing operation waiting for its group commit.
pub(crate) struct Queued {
    pub settings: Settings,
    pub common: Common,
    pub op: Op,
    pub reply: tokio::sync::oneshot::Sender<Result<Value, OpError>>,
}

/// Changing operations in one group commit at most.
const GROUP_MAX: usize = 64;

/// Runs changing operations in group commits, one group at a time (on
/// SQLite; PostgreSQL runs them side by side, see [`execute`]).
///
/// Each changing operation is a handful of statements and a commit, and
/// SQLite has one writer: with 32 registers, each operation waited for
/// every other operation's sync (~2 ms each on this class of disk), and
/// flows took 100 ms at p50. Here whatever is queued when a group starts
/// runs in one transaction, each operation inside a savepoint of its own
/// (a refused operation rolls back to it and leaves the others alone), and
/// every answer is sent only after the shared commit. Running the group's
/// operations one after the other also settles two registers sending the
/// same operation_id at once: the second one finds the first's stored answer.
pub(crate) async fn committer(db: Db, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while let Some(q) = rx.recv().await {
        group.push(q);
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(q) => group.push(q),
                Err(_) => break,
            }
        }
        metrics::histogram!("tillgate_loyalty_group_size").record(group.len() as f64);
        run_group(&db, &mut group).await;
    }
}

async fn run_group(db: &Db, group: &mut Vec<Queued>) {
    let answers = async {
        let mut tx = db.write.begin().await?;
        let mut answers = Vec::with_capacity(group.len());
        for q in group.iter() {
            sqlx::query("SAVEPOINT loyalty_op")
                .execute(&mut *tx)
                .await?;
            let now = q.settings.clock.now_ms();
            let r = changing_in(&mut tx, db.backend, &q.settings, &q.common, now, &q.op).await;
            if let Err(Outcome::Refuse(_)) = r {
                sqlx::query("ROLLBACK TO SAVEPOINT loyalty_op")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("RELEASE SAVEPOINT loyalty_op")
                .execute(&mut *tx)
                .await?;
            answers.push(match r {
                Ok(v) => Ok(v),
                Err(Outcome::Refuse(e) | Outcome::CommitThenRefuse(e)) => Err(e),
            });
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(answers)
    }
    .await;
    match answers {
        Ok(answers) => {
            for (q, a) in group.drain(..).zip(answers) {
                let _ = q.reply.send(a);
            }
        }
        Err(e) => {
            // Nothing of the group is committed; each register gets the
            // error and sends the same operation again (idempotent).
            tracing::error!(error = %e, size = group.len(), "loyalty group commit failed");
            let msg = e.to_string();
            for q in group.drain(..) {
                let _ = q.reply.send(Err(OpError::NotStored(msg.clone())));
            }
        }
    }
}

enum Outcome {
    Refuse(OpError),
    CommitThenRefuse(OpError),
}

impl<E: Into<OpError>> From<E> for Outcome {
    fn from(e: E) -> Self {
        Outcome::Refuse(e.into())
    }
}

async fn stored_answer(conn: &mut AnyConnection, c: &Common) -> Result<Option<Value>, OpError> {
    let row =
        sqlx::query("SELECT request, response FROM loyalty_operations WHERE operation_id = $1")
            .bind(&c.operation_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let request: String = row.try_get(0)?;
    if request != c.canonical {
        return Err(OpError::Conflict(c.operation_id.clone()));
    }
    let response: String = row.try_get(1)?;
    let v = serde_json::from_str(&response)
        .map_err(|e| OpError::Db(sqlx::Error::Decode(Box::new(e))))?;
    Ok(Some(v))
}

#[derive(Default)]
struct OpRow<'a> {
    kind: &'a str,
    card: Option<&'a str>,
    status: Option<&'a str>,
    hold_expires_at: Option<i64>,
    purchase_id: Option<&'a str>,
    offline: bool,
    net: i64,
    spend: i64,
    earn: i64,
}

async fn store_op(
    conn: &mut AnyConnection,
    c: &Common,
    now: i64,
    r: OpRow<'_>,
    response: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO loyalty_operations (operation_id, register_id, cashier, kind, request, response, card_number, local_time, created_at, offline, status, hold_expires_at, purchase_id, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, 0, 0)",
    )
    .bind(&c.operation_id)
    .bind(&c.register)
    .bind(&c.cashier)
    .bind(r.kind)
    .bind(&c.canonical)
    .bind(response.to_string())
    .bind(r.card)
    .bind(c.local_time.format("%Y-%m-%dT%H:%M:%S").to_string())
    .bind(now)
    .bind(i64::from(r.offline))
    .bind(r.status)
    .bind(r.hold_expires_at)
    .bind(r.purchase_id)
    .bind(r.net)
    .bind(r.spend)
    .bind(r.earn)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn lot_expiry(settings: &Settings, now: i64) -> Option<i64> {
    settings.bonus_lifetime.map(|d| now + d.as_millis() as i64)
}

#[allow(clippy::too_many_arguments)]
async fn purchase(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    id: &Identifier,
    lines: &[Line],
    spend: i64,
    offline: bool,
) -> Result<Value, Outcome> {
    let found = identify(conn, id).await?;
    lock_card(conn, backend, &found.number).await?;
    ledger::expire_lots(conn, &found.number, now).await?;
    // Re-read under the lock: the balance may have moved since identify.
    let card = load_card(conn, &found.number)
        .await?
        .ok_or_else(|| OpError::UnknownCard(id.value.clone()))?;
    if spend > 0 && card.state != "active" {
        return Err(OpError::NotActivated(mask(&card.number)).into());
    }
    let h = held(conn, &card.number, now).await?;
    let flags = product_flags(conn, lines).await?;
    let tier = settings.rules.tier_for(card.accumulated);
    let p = rules::price(
        &settings.rules,
        tier,
        c.local_time,
        lines,
        &|g| flags.get(g).copied().unwrap_or_default(),
        !offline,
    );
    if spend > p.max_spend_by_receipt {
        return Err(OpError::OverReceiptShare {
            max: p.max_spend_by_receipt,
            requested: spend,
        }
        .into());
    }
    let available = card.balance - h;
    if spend > available {
        return Err(OpError::NotEnough {
            available: available.max(0),
            requested: spend,
        }
        .into());
    }
    let earn = rules::earn_after_spend(&p, spend);
    let meta = Meta {
        kind: "earn",
        operation_id: Some(&c.operation_id),
        reason: Some("offline purchase"),
        actor: Some(&c.cashier),
        now,
    };
    let (status, expires, card_after, h_after) = if offline {
        ledger::credit(
            conn,
            &card.number,
            earn,
            lot_expiry(settings, now),
            ledger::ISSUED,
            meta,
        )
        .await?;
        add_accumulated(conn, &card.number, p.net).await?;
        let after = load_card(conn, &card.number).await?.unwrap_or(card.clone());
        ("confirmed", None, after, h)
    } else {
        let exp = now + settings.hold_ttl.as_millis() as i64;
        ("held", Some(exp), card.clone(), h + spend)
    };
    let mut answer = merge(
        json!({
            "operation_id": c.operation_id,
            "status": status,
            "offline": offline,
            "lines": p.lines,
            "total": p.total,
            "discount": p.discount,
            "net": p.net,
            "bonus_spend": spend,
            "bonus_earn": earn,
            "to_pay": p.net - spend,
        }),
        card_json(settings, &card_after, h_after),
    );
    if let Some(exp) = expires {
        answer["hold_expires_in_secs"] = json!((exp - now) / 1000);
    }
    store_op(
        conn,
        c,
        now,
        OpRow {
            kind: "purchase",
            card: Some(&card.number),
            status: Some(status),
            hold_expires_at: expires,
            offline,
            net: p.net,
            spend,
            earn,
            ..OpRow::default()
        },
        &answer,
    )
    .await?;
    Ok(answer)
}

async fn add_accumulated(
    conn: &mut AnyConnection,
    card: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_cards SET accumulated = CASE WHEN accumulated + $1 < 0 THEN 0 ELSE accumulated + $1 END WHERE number = $2")
        .bind(delta)
        .bind(card)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

struct Purchase {
    card: String,
    status: String,
    hold_expires_at: Option<i64>,
    net: i64,
    spend: i64,
    earn: i64,
    refunded_net: i64,
    refunded_spend: i64,
    refunded_earn: i64,
}

/// Loads a purchase with its card locked, so confirm/cancel/refund of one
/// purchase (and spends from its card) are serialised.
async fn load_purchase(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
) -> Result<Purchase, OpError> {
    let card: Option<Option<String>> = sqlx::query_scalar(
        "SELECT card_number FROM loyalty_operations WHERE operation_id = $1 AND kind = 'purchase'",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let card = card
        .flatten()
        .ok_or_else(|| OpError::PurchaseNotFound(id.to_string()))?;
    lock_card(conn, backend, &card).await?;
    let r = sqlx::query(
        "SELECT status, hold_expires_at, net, bonus_spend, bonus_earn, refunded_net, refunded_spend, refunded_earn \
         FROM loyalty_operations WHERE operation_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Purchase {
        card,
        status: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
        hold_expires_at: r.try_get(1)?,
        net: r.try_get(2)?,
        spend: r.try_get(3)?,
        earn: r.try_get(4)?,
        refunded_net: r.try_get(5)?,
        refunded_spend: r.try_get(6)?,
        refunded_earn: r.try_get(7)?,
    })
}

async fn set_status(conn: &mut AnyConnection, id: &str, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_operations SET status = $1 WHERE operation_id = $2")
        .bind(status)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn answer_for_card(
    conn: &mut AnyConnection,
    settings: &Settings,
    number: &str,
    now: i64,
    extra: Value,
) -> Result<Value, OpError> {
    let card = load_card(conn, number)
        .await?
        .ok_or_else(|| OpError::UnknownCard(number.to_string()))?;
    let h = held(conn, number, now).await?;
    Ok(merge(extra, card_json(settings, &card, h)))
}

async fn confirm(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    pid: &str,
) -> Result<Value, Outcome> {
    let p = load_purchase(conn, backend, pid).await?;
    if p.status == "held" && p.hold_expires_at.is_some_and(|e| e <= now) {
        set_status(conn, pid, "expired").await?;
        return Err(Outcome::CommitThenRefuse(OpError::HoldExpired(
            pid.to_string(),
        )));
    }
    if p.status == "expired" {
        return Err(OpError::HoldExpired(pid.to_string()).into());
    }
    if p.status != "held" {
        return Err(OpError::PurchaseState {
            id: pid.to_string(),
            status: p.status,
            action: "confirm",
        }
        .into());
    }
    ledger::expire_lots(conn, &p.card, now).await?;
    // Release the hold first so it does not count against its own spend.
    set_status(conn, pid, "confirmed").await?;
    let meta = |kind| Meta {
        kind,
        operation_id: Some(pid),
        reason: None,
        actor: Some(&c.cashier),
        now,
    };
    ledger::debit(conn, &p.card, p.spend, ledger::REDEEMED, meta("spend")).await?;
    ledger::credit(
        conn,
        &p.card,
        p.earn,
        lot_expiry(settings, now),
        ledger::ISSUED,
        meta("earn"),
    )
    .await?;
    add_accumulated(conn, &p.card, p.net).await?;
    let answer = answer_for_card(
        conn,
        settings,
        &p.card,
        now,
        json!({"operation_id": c.operation_id, "purchase_operation_id": pid, "status": "confirmed", "bonus_spent": p.spend, "bonus_earned": p.earn}),
    )
    .await?;
    store_op(
        conn,
        c,
        now,
        OpRow {
            kind: "confirm",
            card: Some(&p.card),
            purchase_id: Some(pid),
            ..OpRow::default()
        },
        &answer,
    )
    .await?;
    Ok(answer)
}

async fn cancel(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    pid: &str,
) -> Result<Value, Outcome> {
    let p = load_purchase(conn, backend, pid).await?;
    let status = match p.status.as_str() {
        "held" if p.hold_expires_at.is_some_and(|e| e <= now) => "expired",
        "held" => "cancelled",
        // Nothing is held any more; cancelling is then a no-op.
        "expired" | "cancelled" => p.status.as_str(),
        _ => {
            return Err(OpError::PurchaseState {
                id: pid.to_string(),
                status: p.status,
                action: "cancel (refund it instead)",
            }
            .into());
        }
    };
    set_status(conn, pid, status).await?;
    let answer = answer_for_card(
        conn,
        settings,
        &p.card,
        now,
        json!({"operation_id": c.operation_id, "purchase_operation_id": pid, "status": status}),
    )
    .await?;
    store_op(
        conn,
        c,
        now,
        OpRow {
            kind: "cancel",
            card: Some(&p.card),
            purchase_id: Some(pid),
            ..OpRow::default()
        },
        &answer,
    )
    .await?;
    Ok(answer)
}

async fn refund(
    conn: &mut AnyConnection,
    backend: Backend,
    settings: &Settings,
    c: &Common,
    now: i64,
    pid: &str,
    amount: Option<i64>,
) -> Result<Value, Outcome> {
    let p = load_purchase(conn, backend, pid).await?;
    if p.status != "confirmed" {
        return Err(OpError::PurchaseState {
            id: pid.to_string(),
            status: p.status,
            action: "refund",
        }
        .into());
    }
    let left = p.net - p.refunded_net;
    let amount = amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(malformed(
            "amount",
            format!("{left} kopecks of this purchase are left to refund, {amount} asked"),
        )
        .into());
    }
    let refunded_net = p.refunded_net + amount;
    // Proportions of the cumulative refund, so several partial refunds add
    // up to exactly the whole spend and earn (no rounding drift).
    let prop = |total: i64| -> i64 {
        if p.net == 0 {
            total
        } else {
            ((total as i128 * refunded_net as i128) / p.net as i128) as i64
        }
    };
    let give_back = prop(p.spend) - p.refunded_spend;
    let take_back = prop(p.earn) - p.refunded_earn;
    ledger::expire_lots(conn, &p.card, now).await?;
    let meta = |kind| Meta {
        kind,
        operation_id: Some(&c.operation_id),
        reason: Some("refund"),
        actor: Some(&c.cashier),
        now,
    };
    ledger::credit(
        conn,
        &p.card,
        give_back,
        lot_expiry(settings, now),
        ledger::REDEEMED,
        meta("refund_spend"),
    )
    .await?;
    // Earned bonus the guest has already spent cannot be taken back without
    // a negative balance, which tillgate never allows: take what is there
    // and report the rest.
    let card = load_card(conn, &p.card)
        .await?
        .ok_or_else(|| OpError::UnknownCard(p.card.clone()))?;
    let h = held(conn, &p.card, now).await?;
    let can_take = take_back.min((card.balance - h).max(0));
    ledger::debit(conn, &p.card, can_take, ledger::ISSUED, meta("refund_earn")).await?;
    add_accumulated(conn, &p.card, -amount).await?;
    sqlx::query("UPDATE loyalty_operations SET refunded_net = $1, refunded_spend = refunded_spend + $2, refunded_earn = refunded_earn + $3 WHERE operation_id = $4")
        .bind(refunded_net)
        .bind(give_back)
        .bind(take_back)
        .bind(pid)
        .execute(&mut *conn)
        .await?;
    let answer = answer_for_card(
        conn,
        settings,
        &p.card,
        now,
        json!({
            "operation_id": c.operation_id,
            "purchase_operation_id": pid,
            "refunded": amount,
            "bonus_returned": give_back,
            "bonus_taken_back": can_take,
            "bonus_not_recovered": take_back - can_take,
            "left_to_refund": p.net - refunded_net,
        }),
    )
    .await?;
    store_op(
        conn,
        c,
        now,
        OpRow {
            kind: "refund",
            card: Some(&p.card),
            purchase_id: Some(pid),
            net: -amount,
            ..OpRow::default()
        },
        &answer,
    )
    .await?;
    Ok(answer)
}

/// Marks holds past their time as expired. Expired holds already stop
/// counting against the balance the moment they pass; this keeps the
/// stored status honest for the operator and for reports.
pub struct HoldSweeper {
    pub db: Db,
    pub settings: Settings,
}

impl HoldSweeper {
    /// Returns how many holds it expired.
    pub async fn run_once(&self) -> Result<u64, sqlx::Error> {
        let r = sqlx::query("UPDATE loyalty_operations SET status = 'expired' WHERE status = 'held' AND hold_expires_at <= $1")
            .bind(self.settings.clock.now_ms())
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected())
    }
}
