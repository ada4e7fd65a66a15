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

fn text(field: &str, v: &str, max: usize) -> Result<(), Invalid> {
    if v.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(bad(field, format!("longer than {max} characters")));
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
    /// Checks that the receipt is whole and adds up; the local time comes
    /// back in the journal's one format.
    pub fn check(mut self) -> Result<Receipt, Invalid> {
        text("receipt_id", &self.receipt_id, 100)?;
        text("store", &self.store, 100)?;
        text("register", &self.register, 100)?;
        text("cashier", &self.cashier, 100)?;
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
            (Kind::Return, Some(s)) => text("sale_receipt_id", s, 100)?,
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
            text(&f("goods_id"), &l.goods_id, 100)?;
            text(&f("name"), &l.name, 200)?;
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
            text("card", c, 64)?;
        }
        if let Some(o) = &self.loyalty_operation_id {
            text("loyalty_operation_id", o, 100)?;
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
    fn gross_rounds_half_up_to_a_kopeck() {
        assert_eq!(line_gross(9_999, 1500), Some(14_999));
        assert_eq!(line_gross(1, 500), Some(1));
        assert_eq!(line_gross(1, 499), Some(0));
    }
}
