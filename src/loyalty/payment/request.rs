//! Register requests for payment cards, `/api/loyalty/v1/payment-cards/*`:
//! one wire form parsed at the edge into a typed [`PayOp`] (or a
//! `malformed_request` naming the field), with the canonical text a retry
//! is compared against. The common fields are those of discount-card
//! requests ([`crate::loyalty::ops::Common`]).

use serde::{Deserialize, Serialize};

use super::{PayError, malformed};
use crate::loyalty::ops::request::common;
use crate::loyalty::ops::{CardEntry, Common, OpError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub operation_id: String,
    pub register: String,
    pub cashier: String,
    /// Register local time without zone, e.g. `2026-10-03T16:05:00`.
    pub local_time: String,
    /// The payment card's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_entry: Option<CardEntry>,
    /// Kopecks: to hold, to top up, or to refund (absent: all that is left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// The `hold` a confirm, cancel or refund settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_operation_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayKind {
    Balance,
    Hold,
    Confirm,
    Cancel,
    Refund,
    TopUp,
}

impl PayKind {
    pub fn name(self) -> &'static str {
        match self {
            PayKind::Balance => "balance",
            PayKind::Hold => "hold",
            PayKind::Confirm => "confirm",
            PayKind::Cancel => "cancel",
            PayKind::Refund => "refund",
            PayKind::TopUp => "top_up",
        }
    }

    /// Whether the request names a card (and so says how it was entered).
    pub fn names_card(self) -> bool {
        matches!(self, PayKind::Balance | PayKind::Hold | PayKind::TopUp)
    }
}

#[derive(Debug, Clone)]
pub enum PayOp {
    Balance(String),
    Hold {
        card: String,
        amount: i64,
    },
    Confirm(String),
    Cancel(String),
    Refund {
        payment: String,
        amount: Option<i64>,
    },
    TopUp {
        card: String,
        amount: i64,
    },
}

/// Largest amount one operation may move: a million roubles.
pub const MAX_AMOUNT: i64 = 100_000_000;

fn text(field: &str, v: &str, max: usize) -> Result<(), PayError> {
    if v.trim().is_empty() {
        return Err(malformed(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(malformed(field, format!("longer than {max} characters")));
    }
    Ok(())
}

fn amount(v: Option<i64>, required: bool) -> Result<Option<i64>, PayError> {
    match v {
        None if required => Err(malformed("amount", "required for this operation")),
        Some(a) if !(1..=MAX_AMOUNT).contains(&a) => Err(malformed(
            "amount",
            format!("must be 1 to {MAX_AMOUNT} kopecks"),
        )),
        v => Ok(v),
    }
}

/// Turns the wire request into a typed operation for endpoint `kind`.
pub fn parse(kind: PayKind, req: PayRequest) -> Result<(Common, PayOp), PayError> {
    let canonical = format!(
        "payment_{}:{}",
        kind.name(),
        serde_json::to_string(&req).map_err(|e| malformed("body", e.to_string()))?
    );
    let common = common(
        &req.operation_id,
        &req.register,
        &req.cashier,
        &req.local_time,
        req.card_entry,
        canonical,
    )
    .map_err(|e| match e {
        OpError::Malformed { field, why } => PayError::Malformed { field, why },
        e => malformed("body", e.to_string()),
    })?;
    let refuse = |name: &str, present: bool| -> Result<(), PayError> {
        if present {
            Err(malformed(name, format!("not used by {}", kind.name())))
        } else {
            Ok(())
        }
    };
    let op = if kind.names_card() {
        refuse("payment_operation_id", req.payment_operation_id.is_some())?;
        let card = req
            .card
            .clone()
            .ok_or_else(|| malformed("card", "required for this operation"))?;
        text("card", &card, 64)?;
        let card = card.trim().to_string();
        match kind {
            PayKind::Balance => {
                refuse("amount", req.amount.is_some())?;
                PayOp::Balance(card)
            }
            PayKind::Hold => PayOp::Hold {
                card,
                amount: amount(req.amount, true)?.unwrap_or_default(),
            },
            _ => PayOp::TopUp {
                card,
                amount: amount(req.amount, true)?.unwrap_or_default(),
            },
        }
    } else {
        refuse("card", req.card.is_some())?;
        refuse("card_entry", req.card_entry.is_some())?;
        let p = req
            .payment_operation_id
            .clone()
            .ok_or_else(|| malformed("payment_operation_id", "required for this operation"))?;
        text("payment_operation_id", &p, 64)?;
        match kind {
            PayKind::Confirm => {
                refuse("amount", req.amount.is_some())?;
                PayOp::Confirm(p)
            }
            PayKind::Cancel => {
                refuse("amount", req.amount.is_some())?;
                PayOp::Cancel(p)
            }
            _ => PayOp::Refund {
                payment: p,
                amount: amount(req.amount, false)?,
            },
        }
    };
    Ok((common, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fill: impl FnOnce(&mut PayRequest)) -> PayRequest {
        let mut r = PayRequest {
            operation_id: "o1".into(),
            register: "r1".into(),
            cashier: "c1".into(),
            local_time: "2026-10-03T12:00:00".into(),
            card: None,
            card_entry: None,
            amount: None,
            payment_operation_id: None,
        };
        fill(&mut r);
        r
    }

    fn field(e: PayError) -> String {
        match e {
            PayError::Malformed { field, .. } => field,
            e => panic!("not malformed: {e}"),
        }
    }

    #[test]
    fn broken_requests_name_their_field() {
        let hold = |f: fn(&mut PayRequest)| parse(PayKind::Hold, req(f)).unwrap_err();
        assert_eq!(field(hold(|_| {})), "card");
        assert_eq!(field(hold(|r| r.card = Some("7".into()))), "amount");
        assert_eq!(
            field(hold(|r| {
                r.card = Some("7".into());
                r.amount = Some(-5);
            })),
            "amount"
        );
        assert_eq!(
            field(hold(|r| {
                r.card = Some("7".into());
                r.amount = Some(MAX_AMOUNT + 1);
            })),
            "amount"
        );
        assert_eq!(
            field(hold(|r| {
                r.card = Some("7".into());
                r.amount = Some(5);
                r.local_time = "2026-10-03T12:00:00Z".into();
            })),
            "local_time"
        );
        let confirm = parse(
            PayKind::Confirm,
            req(|r| {
                r.payment_operation_id = Some("p".into());
                r.card = Some("7".into());
            }),
        )
        .unwrap_err();
        assert_eq!(field(confirm), "card");
        let refund = parse(PayKind::Refund, req(|_| {})).unwrap_err();
        assert_eq!(field(refund), "payment_operation_id");
        let (c, op) = parse(
            PayKind::Hold,
            req(|r| {
                r.card = Some(" 7 ".into());
                r.amount = Some(5);
                r.card_entry = Some(CardEntry::Scanned);
            }),
        )
        .unwrap();
        assert!(matches!(op, PayOp::Hold { ref card, amount: 5 } if card == "7"));
        assert!(c.canonical.starts_with("payment_hold:"));
        assert_eq!(c.card_entry, Some(CardEntry::Scanned));
    }
}
