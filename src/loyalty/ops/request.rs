//! Register requests: the one wire form of every `/api/loyalty/v1/*` body,
//! parsed at the edge into a typed [`Op`] (or a `malformed_request` naming
//! the field), with the canonical text a retry is compared against.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{OpError, malformed};
use crate::core::phone::PhoneE164;
use crate::loyalty::rules::Line;

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

/// How the cashier entered the card: read by a scanner or reader, or
/// typed by hand (which needs the cashier's `manual_card_entry` right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEntry {
    Scanned,
    Manual,
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
    /// How the card was entered; absent counts as `manual` where cashier
    /// rights are enforced (see [`crate::loyalty::cashiers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_entry: Option<CardEntry>,
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
    /// How the card was entered, if the request names a card.
    pub card_entry: Option<CardEntry>,
    /// The request as stored for idempotency comparison.
    pub canonical: String,
}

#[derive(Debug, Clone)]
pub enum Op {
    Balance(CardRef),
    Calculate(CardRef, Vec<Line>),
    Purchase {
        id: CardRef,
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

/// Register local time: no zone (registers do not send one; promotions run
/// on the register's local time).
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

/// Which card a request names, read at the edge: a phone is parsed here
/// into [`PhoneE164`], so nothing after this sees (or echoes) the number
/// as the register typed it.
#[derive(Debug, Clone)]
pub enum CardRef {
    /// Source unknown: card number, then barcode, track, and phone if the
    /// value reads as one.
    Auto {
        value: String,
        phone: Option<PhoneE164>,
    },
    Card(String),
    Barcode(String),
    Track(String),
    Phone(PhoneE164),
}

impl CardRef {
    fn parse(id: Identifier) -> Result<CardRef, OpError> {
        short_text("identifier.value", &id.value, 200)?;
        let v = id.value.trim().to_string();
        Ok(match id.kind {
            IdKind::Auto => CardRef::Auto {
                phone: PhoneE164::parse(&v).ok(),
                value: v,
            },
            IdKind::Card => CardRef::Card(v),
            IdKind::Barcode => CardRef::Barcode(v),
            IdKind::Track => CardRef::Track(v),
            // The reason only: the value may be most of a phone number.
            IdKind::Phone => {
                CardRef::Phone(PhoneE164::parse(&v).map_err(|e| {
                    malformed("identifier.value", format!("not a phone number: {e}"))
                })?)
            }
        })
    }

    /// The identifier as an answer or a log line may show it: a phone
    /// masked (also an `auto` value that reads as one), anything else as
    /// sent.
    pub fn shown(&self) -> String {
        match self {
            CardRef::Auto { phone: Some(p), .. } | CardRef::Phone(p) => p.masked(),
            CardRef::Auto { value, .. }
            | CardRef::Card(value)
            | CardRef::Barcode(value)
            | CardRef::Track(value) => value.clone(),
        }
    }
}

fn check_identifier(id: Option<Identifier>) -> Result<CardRef, OpError> {
    CardRef::parse(id.ok_or_else(|| malformed("identifier", "required for this operation"))?)
}

/// The fields every register request carries (discount and payment
/// cards alike), checked; `canonical` is what a retry is compared against.
pub fn common(
    operation_id: &str,
    register: &str,
    cashier: &str,
    local_time: &str,
    card_entry: Option<CardEntry>,
    canonical: String,
) -> Result<Common, OpError> {
    short_text("operation_id", operation_id, 64)?;
    short_text("register", register, 64)?;
    short_text("cashier", cashier, 200)?;
    if local_time.ends_with('Z') || local_time.contains('+') {
        return Err(malformed(
            "local_time",
            "register local time has no zone; send e.g. 2026-10-03T16:05:00",
        ));
    }
    let parsed = parse_local_time(local_time).ok_or_else(|| {
        malformed(
            "local_time",
            format!("{local_time:?} is not a local time like 2026-10-03T16:05:00"),
        )
    })?;
    Ok(Common {
        operation_id: operation_id.to_string(),
        register: register.to_string(),
        cashier: cashier.to_string(),
        local_time: parsed,
        card_entry,
        canonical,
    })
}

/// Turns the wire request into a typed operation for endpoint `kind`.
pub fn parse(kind: Kind, req: Request) -> Result<(Common, Op), OpError> {
    let canonical = format!(
        "{}:{}",
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
    )?;
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
            refuse_extra("card_entry", req.card_entry.is_some())?;
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
    Ok((common, op))
}
