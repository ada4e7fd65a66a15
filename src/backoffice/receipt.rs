//! A closed receipt as the journal takes it: the register's JSON read into
//! checked values at the edge. A receipt that does not add up (lines
//! against the total against the payments) is refused naming the field, so
//! the register's operator can see which figure is wrong.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Local time as the journal stores it (cash-server time has no zone).
pub const LOCAL_TIME: &str = "%Y-%m-%dT%H:%M:%S";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sale,
    Return,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "sale",
            Kind::Return => "return",
        }
    }
    /// +1 for a sale, -1 for a return: how it moves money and
    /// accumulations (stock moves the other way).
    pub fn sign(self) -> i64 {
        match self {
            Kind::Sale => 1,
            Kind::Return => -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub goods_id: String,
    pub name: String,
    /// Thousandths of the goods' unit.
    pub quantity: i64,
    /// Kopecks per unit.
    pub price: i64,
    /// Kopecks paid for the line, after its discount.
    pub amount: i64,
    #[serde(default)]
    pub discount: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payments {
    #[serde(default)]
    pub cash: i64,
    #[serde(default)]
    pub bank_card: i64,
    #[serde(default)]
    pub payment_card: i64,
    #[serde(default)]
    pub bonus: i64,
}

impl Payments {
    pub fn sum(&self) -> Option<i64> {
        self.cash
            .checked_add(self.bank_card)?
            .checked_add(self.payment_card)?
            .checked_add(self.bonus)
    }
}

/// The body of `POST /api/backoffice/v1/receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The register's id for the receipt: the idempotency key, unique
    /// across the back office (registers use UUIDs or prefix their id).
    pub receipt_id: String,
    pub store: String,
    pub register: String,
    pub cashier: String,
    pub shift: i64,
    /// Register local time, `YYYY-MM-DDTHH:MM:SS`, no zone.
    pub local_time: String,
    pub kind: Kind,
    /// A return names the sale it returns from.
    #[serde(default)]
    pub sale_receipt_id: Option<String>,
    pub lines: Vec<Line>,
    pub total: i64,
    pub payments: Payments,
    /// The discount card used, by number.
    #[serde(default)]
    pub card: Option<String>,
    /// The loyalty purchase this receipt closed: its accumulation was
    /// counted by the purchase, so the journal does not count it again.
    #[serde(default)]
    pub loyalty_operation_id: Option<String>,
}

/// Why a receipt is refused before anything is stored (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Invalid {
    pub field: String,
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// The longest id a register or a stock file may send (receipt, sale,
/// store, register, goods, card, unit): the back office's limit since it
/// first took receipts, kept so that no register that worked is refused.
pub const ID_MAX: usize = 100;
/// The longest name of an imported document (as before: 200).
pub const DOCUMENT_MAX: usize = 200;
/// The longest name (goods, cashier).
pub const NAME_MAX: usize = 256;

/// A text field longer than its limit: 400 `too_long`, naming the field
/// and the limit. Checked before anything else, because the field is kept
/// in the journal, the stock tables and every report, and one register or
/// file sending megabytes of "name" would otherwise sit in all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: longer than {max} characters (the limit)")]
pub struct TooLong {
    pub field: String,
    pub max: usize,
}

/// `v` if it has at most `max` characters.
pub fn within(field: impl FnOnce() -> String, v: &str, max: usize) -> Result<(), TooLong> {
    if v.chars().count() > max {
        return Err(TooLong {
            field: field(),
            max,
        });
    }
    Ok(())
}

impl From<TooLong> for Invalid {
    fn from(e: TooLong) -> Self {
        bad(
            e.field,
            format!("longer than {} characters (the limit)", e.max),
        )
    }
}

fn text(field: &str, v: &str) -> Result<(), Invalid> {
    if v.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    Ok(())
}

/// What a line is worth before its discount: price × quantity / 1000,
/// rounded half up to a kopeck.
pub fn line_gross(price: i64, quantity: i64) -> Option<i64> {
    let p = i128::from(price) * i128::from(quantity);
    i64::try_from((p + 500) / 1000).ok()
}

/// Parses a register local time; `None` if it is not one.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

impl Receipt {
    /// Every text field within its limit ([`ID_MAX`], [`NAME_MAX`]).
    pub fn lengths(&self) -> Result<(), TooLong> {
        let id = |f: &'static str| move || f.to_string();
        within(id("receipt_id"), &self.receipt_id, ID_MAX)?;
        within(id("store"), &self.store, ID_MAX)?;
        within(id("register"), &self.register, ID_MAX)?;
        within(id("cashier"), &self.cashier, NAME_MAX)?;
        within(id("local_time"), &self.local_time, ID_MAX)?;
        for (f, v, max) in [
            ("sale_receipt_id", &self.sale_receipt_id, ID_MAX),
            ("card", &self.card, ID_MAX),
            ("loyalty_operation_id", &self.loyalty_operation_id, ID_MAX),
        ] {
            if let Some(v) = v {
                within(id(f), v, max)?;
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            within(|| format!("lines[{i}].goods_id"), &l.goods_id, ID_MAX)?;
            within(|| format!("lines[{i}].name"), &l.name, NAME_MAX)?;
        }
        Ok(())
    }

    /// Checks that the receipt is whole and adds up; the local time comes
    /// back in the journal's one format.
    pub fn check(mut self) -> Result<Receipt, Invalid> {
        self.lengths()?;
        text("receipt_id", &self.receipt_id)?;
        text("store", &self.store)?;
        text("register", &self.register)?;
        text("cashier", &self.cashier)?;
        if self.shift < 0 {
            return Err(bad("shift", "must not be negative"));
        }
        let t = parse_local(&self.local_time)
            .ok_or_else(|| bad("local_time", "is not YYYY-MM-DDTHH:MM:SS"))?;
        self.local_time = t.format(LOCAL_TIME).to_string();
        match (self.kind, &self.sale_receipt_id) {
            (Kind::Return, None) => {
                return Err(bad("sale_receipt_id", "a return names the sale it returns"));
            }
            (Kind::Sale, Some(_)) => {
                return Err(bad("sale_receipt_id", "only a return names a sale"));
            }
            (Kind::Return, Some(s)) => text("sale_receipt_id", s)?,
            (Kind::Sale, None) => {}
        }
        if self.lines.is_empty() {
            return Err(bad("lines", "a receipt has at least one line"));
        }
        if self.lines.len() > 1000 {
            return Err(bad("lines", "more than 1000 lines"));
        }
        let mut sum: i64 = 0;
        for (i, l) in self.lines.iter().enumerate() {
            let f = |n: &str| format!("lines[{i}].{n}");
            text(&f("goods_id"), &l.goods_id)?;
            text(&f("name"), &l.name)?;
            if l.quantity <= 0 {
                return Err(bad(f("quantity"), "must be positive (thousandths)"));
            }
            if l.price < 0 {
                return Err(bad(f("price"), "must not be negative"));
            }
            if l.discount < 0 {
                return Err(bad(f("discount"), "must not be negative"));
            }
            let gross =
                line_gross(l.price, l.quantity).ok_or_else(|| bad(f("amount"), "too large"))?;
            if gross - l.discount != l.amount {
                return Err(bad(
                    f("amount"),
                    format!(
                        "{} does not equal price × quantity − discount = {}",
                        l.amount,
                        gross - l.discount
                    ),
                ));
            }
            sum = sum
                .checked_add(l.amount)
                .ok_or_else(|| bad("total", "too large"))?;
        }
        if sum != self.total {
            return Err(bad(
                "total",
                format!("{} does not equal the sum of the lines, {sum}", self.total),
            ));
        }
        let p = &self.payments;
        for (n, v) in [
            ("cash", p.cash),
            ("bank_card", p.bank_card),
            ("payment_card", p.payment_card),
            ("bonus", p.bonus),
        ] {
            if v < 0 {
                return Err(bad(format!("payments.{n}"), "must not be negative"));
            }
        }
        if p.sum() != Some(self.total) {
            return Err(bad(
                "payments",
                format!(
                    "they add up to {}, the total is {}",
                    p.sum().unwrap_or(i64::MAX),
                    self.total
                ),
            ));
        }
        if let Some(c) = &self.card {
            text("card", c)?;
        }
        if let Some(o) = &self.loyalty_operation_id {
            text("loyalty_operation_id", o)?;
            if self.card.is_none() {
                return Err(bad(
                    "loyalty_operation_id",
                    "a loyalty purchase needs the card it was made with",
                ));
            }
        }
        Ok(self)
    }

    /// The stored form a repeat is compared with.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Receipt {
        Receipt {
            receipt_id: "r1".into(),
            store: "s1".into(),
            register: "reg1".into(),
            cashier: "c1".into(),
            shift: 1,
            local_time: "2026-11-30 10:00:00".into(),
            kind: Kind::Sale,
            sale_receipt_id: None,
            lines: vec![Line {
                goods_id: "g1".into(),
                name: "Milk".into(),
                quantity: 1500,
                price: 9_999,
                amount: 14_999 - 100,
                discount: 100,
            }],
            total: 14_899,
            payments: Payments {
                cash: 10_000,
                bank_card: 4_899,
                ..Payments::default()
            },
            card: None,
            loyalty_operation_id: None,
        }
    }

    #[test]
    fn a_receipt_that_adds_up_is_taken_with_its_time_in_one_format() {
        let r = sample().check().unwrap();
        assert_eq!(r.local_time, "2026-11-30T10:00:00");
    }

    #[test]
    fn each_figure_that_does_not_add_up_is_named() {
        let mut r = sample();
        r.lines[0].amount += 1;
        assert_eq!(r.check().unwrap_err().field, "lines[0].amount");
        let mut r = sample();
        r.total += 1;
        assert_eq!(r.check().unwrap_err().field, "total");
        let mut r = sample();
        r.payments.cash -= 1;
        assert_eq!(r.check().unwrap_err().field, "payments");
        let mut r = sample();
        r.payments.bonus = -1;
        assert_eq!(r.check().unwrap_err().field, "payments.bonus");
        let mut r = sample();
        r.lines[0].quantity = 0;
        assert_eq!(r.check().unwrap_err().field, "lines[0].quantity");
        let mut r = sample();
        r.local_time = "30.11.2026".into();
        assert_eq!(r.check().unwrap_err().field, "local_time");
        let mut r = sample();
        r.kind = Kind::Return;
        assert_eq!(r.check().unwrap_err().field, "sale_receipt_id");
        let mut r = sample();
        r.lines.clear();
        assert_eq!(r.check().unwrap_err().field, "lines");
        let mut r = sample();
        r.loyalty_operation_id = Some("p1".into());
        assert_eq!(r.check().unwrap_err().field, "loyalty_operation_id");
    }

    #[test]
    fn every_text_field_has_a_limit() {
        let long_id = "i".repeat(ID_MAX + 1);
        let long_name = "я".repeat(NAME_MAX + 1);
        type Set = fn(&mut Receipt, String);
        let cases: [(&str, usize, Set); 8] = [
            ("receipt_id", ID_MAX, |r, v| r.receipt_id = v),
            ("store", ID_MAX, |r, v| r.store = v),
            ("register", ID_MAX, |r, v| r.register = v),
            ("cashier", NAME_MAX, |r, v| r.cashier = v),
            ("card", ID_MAX, |r, v| r.card = Some(v)),
            ("loyalty_operation_id", ID_MAX, |r, v| {
                r.loyalty_operation_id = Some(v)
            }),
            ("lines[0].goods_id", ID_MAX, |r, v| r.lines[0].goods_id = v),
            ("lines[0].name", NAME_MAX, |r, v| r.lines[0].name = v),
        ];
        for (field, max, set) in cases {
            let mut r = sample();
            set(
                &mut r,
                if max == ID_MAX {
                    long_id.clone()
                } else {
                    long_name.clone()
                },
            );
            assert_eq!(
                r.lengths(),
                Err(TooLong {
                    field: field.into(),
                    max
                })
            );
            let mut r = sample();
            set(&mut r, "я".repeat(max));
            assert_eq!(r.lengths(), Ok(()), "{field} at its limit");
        }
    }

    #[test]
    fn gross_rounds_half_up_to_a_kopeck() {
        assert_eq!(line_gross(9_999, 1500), Some(14_999));
        assert_eq!(line_gross(1, 500), Some(1));
        assert_eq!(line_gross(1, 499), Some(0));
    }
}
