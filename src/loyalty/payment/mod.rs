//! Payment cards: prepaid and gift cards that hold money (kopecks), not
//! bonus. The operator issues a card with a nominal and tops it up; a
//! register pays with it in two phases like a purchase (`hold`, then
//! `confirm` or `cancel`; a hold not settled within `hold_ttl_secs`
//! expires and stops reserving money) and refunds to it. Cards are
//! `active`, `inactive` (issued, not yet sold: it cannot pay) or `blocked`
//! (refused, its balance not shown), as discount cards are.
//!
//! Money moves on loyalty's double-entry ledger ([`super::ledger`]) with
//! accounts of its own: `paycard:<number>` for a card's money against
//! `paycard:sold` (nominals and top-ups: money the shop took for the card)
//! and `paycard:redeemed` (paid at registers; a refund moves it back). A
//! card's balance is the sum of its account; `loyalty_payment_cards.balance`
//! caches it in the same transaction.
//!
//! ## Where payment-card operations are decided
//!
//! On both backends, in one database transaction per operation on the
//! write pool ([`decide`]), not in the SQLite owner ([`super::ops::owner`]):
//!
//! * nothing can overspend: on PostgreSQL the card row is locked
//!   (`SELECT ... FOR UPDATE`) for the transaction, so two registers (also
//!   on two tillgate instances) holding money on one card run one after the
//!   other and the second sees the first's hold; on SQLite the transaction
//!   begins `IMMEDIATE` on the one write connection, so it has the file to
//!   itself. The debit is still a conditional `UPDATE ... WHERE balance >=
//!   amount`, the last guard, and the balance column cannot go negative;
//! * nothing collides with the owner: it keeps no payment-card state
//!   (payment cards have their own tables), ledger rows get the same
//!   time-ordered unique ids ([`super::ledger::posting`]) and a `seq` that
//!   numbers entries within their own posting, and in-process writes share
//!   the owner's write connection, so they do not move the `data_version`
//!   that makes the owner drop its cache;
//! * one operation per payment is rare next to discount-card traffic (one
//!   per receipt paid with a card), so a transaction each is cheap enough
//!   and keeps one code path for both backends.
//!
//! Switches (`payment_cards` off answers `cards_disabled`) and cashier
//! rights apply exactly as for discount cards ([`api`]).

pub mod api;
mod decide;
pub mod request;
pub mod store;
mod sweeper;

pub use decide::{NewPaymentCard, execute, issue, set_state, top_up_by_operator};

/// The card `tillgate loyalty payment-card-issue` issues.
pub fn decide_new_card(number: &str, nominal: i64, inactive: bool) -> NewPaymentCard {
    NewPaymentCard {
        number: number.to_string(),
        nominal,
        state: Some(if inactive { "inactive" } else { "active" }.into()),
    }
}
pub use request::{PayKind, PayOp, PayRequest};
pub use sweeper::PaymentSweeper;

/// A card's money.
pub fn account(number: &str) -> String {
    format!("paycard:{number}")
}
/// Nominals and top-ups come from here.
pub const SOLD: &str = "paycard:sold";
/// Payments at registers go here; refunds come back from here.
pub const REDEEMED: &str = "paycard:redeemed";

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("no payment card {0}")]
    UnknownCard(String),
    #[error("payment card {0} is blocked")]
    Blocked(String),
    #[error("payment card {0} is not activated: it cannot pay yet")]
    NotActivated(String),
    #[error("not enough money on the card: {available} available, {requested} requested")]
    NotEnough { available: i64, requested: i64 },
    #[error("the hold of payment {0} expired; hold again")]
    HoldExpired(String),
    #[error("no payment with operation_id {0}")]
    NotFound(String),
    #[error("payment {id} is {status}, cannot {action} it")]
    State {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("operation_id {0} was already used with a different request")]
    Conflict(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{field}: {why}")]
    Malformed { field: String, why: String },
    #[error("ledger refused the operation: {0}")]
    Ledger(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The operation's task panicked or its runtime is shutting down.
    #[error("operation task failed: {0}")]
    Task(String),
}

impl From<super::ledger::LedgerError> for PayError {
    fn from(e: super::ledger::LedgerError) -> Self {
        match e {
            super::ledger::LedgerError::Db(e) => PayError::Db(e),
            e => PayError::Ledger(e.to_string()),
        }
    }
}

pub(crate) fn malformed(field: &str, why: impl Into<String>) -> PayError {
    PayError::Malformed {
        field: field.to_string(),
        why: why.into(),
    }
}

impl From<PayError> for crate::core::api_error::ApiError {
    fn from(e: PayError) -> Self {
        use crate::core::api_error::ApiError;
        use axum::http::StatusCode;
        let msg = e.to_string();
        match e {
            PayError::UnknownCard(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_card", msg),
            PayError::Blocked(_) => ApiError::new(StatusCode::FORBIDDEN, "card_blocked", msg),
            PayError::NotActivated(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "card_not_activated", msg)
            }
            PayError::NotEnough { .. } => ApiError::conflict("not_enough_money", msg),
            PayError::HoldExpired(_) => ApiError::conflict("hold_expired", msg),
            PayError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "payment_not_found", msg),
            PayError::State { .. } => ApiError::conflict("payment_not_open", msg),
            PayError::Conflict(_) => ApiError::conflict("operation_conflict", msg),
            PayError::Exists(_) => ApiError::conflict("already_exists", msg),
            PayError::Malformed { .. } => ApiError::bad_request("malformed_request", msg),
            PayError::Ledger(_) | PayError::Task(_) => ApiError::internal(msg),
            PayError::Db(e) => ApiError::internal(e),
        }
    }
}
