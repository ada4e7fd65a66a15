//! Pricing rules: what a receipt is worth to a card.
//!
//! Pure functions over integers (kopecks, thousandths, basis points) so the
//! same receipt always gives the same answer, online now or replayed from an
//! offline queue later with the register's original local time.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

/// 1 basis point = 0.01 %; 10 000 bp = 100 %.
pub const FULL_BP: i64 = 10_000;

/// A discount tier reached by the accumulated purchase total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    /// Accumulated total (kopecks) from which the tier applies.
    pub from_total: i64,
    pub discount_bp: i64,
}

/// A promotion valid in a window of the register's local time, for some or
/// all goods. Its extras add to the tier discount and the earn rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub name: String,
    /// Goods ids it applies to; empty means every product.
    pub goods: Vec<String>,
    pub from_date: Option<NaiveDate>,
    /// Inclusive.
    pub to_date: Option<NaiveDate>,
    /// ISO weekdays 1 (Monday) ..= 7; empty means every day.
    pub days: Vec<u32>,
    /// Daily window [start, end); `end < start` spans midnight.
    pub start: Option<NaiveTime>,
    pub end: Option<NaiveTime>,
    pub discount_bp: i64,
    pub earn_bp: i64,
}

impl Promotion {
    pub fn active_at(&self, t: NaiveDateTime) -> bool {
        let d = t.date();
        if self.from_date.is_some_and(|f| d < f) || self.to_date.is_some_and(|e| d > e) {
            return false;
        }
        if !self.days.is_empty() && !self.days.contains(&d.weekday().number_from_monday()) {
            return false;
        }
        let tod = t.time();
        match (self.start, self.end) {
            (Some(s), Some(e)) if s <= e => tod >= s && tod < e,
            (Some(s), Some(e)) => tod >= s || tod < e,
            (Some(s), None) => tod >= s,
            (None, Some(e)) => tod < e,
            (None, None) => true,
        }
    }

    fn covers(&self, goods_id: &str) -> bool {
        self.goods.is_empty() || self.goods.iter().any(|g| g == goods_id)
    }
}

/// The rules from the `[loyalty]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Sorted by `from_total`, first starts at 0.
    pub tiers: Vec<Tier>,
    pub earn_bp: i64,
    /// Largest share of the bonus-eligible receipt amount bonus may pay.
    pub max_bonus_share_bp: i64,
    pub promotions: Vec<Promotion>,
}

impl Rules {
    pub fn tier_for(&self, accumulated: i64) -> &Tier {
        self.tiers
            .iter()
            .rev()
            .find(|t| accumulated >= t.from_total)
            .unwrap_or(&self.tiers[0])
    }
}

/// Product flags from the imported catalogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductFlags {
    pub no_discount: bool,
    pub no_bonus: bool,
}

/// One receipt line as the register sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub goods_id: String,
    /// Kopecks per unit.
    pub price: i64,
    /// Thousandths of a unit.
    pub quantity: i64,
    /// Kopecks for the line before discounts.
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineResult {
    pub goods_id: String,
    pub amount: i64,
    pub discount: i64,
    /// What the line costs after the discount, before bonus payment.
    pub net: i64,
    pub bonus_eligible: bool,
    pub earn: i64,
    pub promotions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Priced {
    pub lines: Vec<LineResult>,
    pub total: i64,
    pub discount: i64,
    /// `total - discount`: what the guest pays before bonus.
    pub net: i64,
    /// Net amount of lines bonus may pay for and earn on.
    pub bonus_base: i64,
    /// Bonus earned if nothing is paid with bonus.
    pub earn: i64,
    /// Most bonus the receipt allows (before looking at the balance).
    pub max_spend_by_receipt: i64,
}

/// Prices a receipt for a card of `tier` at the register's local `time`.
/// `with_discount` is false offline: the register sold without one.
pub fn price(
    rules: &Rules,
    tier: &Tier,
    time: NaiveDateTime,
    lines: &[Line],
    flags: &dyn Fn(&str) -> ProductFlags,
    with_discount: bool,
) -> Priced {
    let active: Vec<&Promotion> = rules
        .promotions
        .iter()
        .filter(|p| p.active_at(time))
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    let (mut total, mut discount, mut base, mut earn_sum) = (0i64, 0i64, 0i64, 0i64);
    for l in lines {
        let f = flags(&l.goods_id);
        let promos: Vec<&&Promotion> = active.iter().filter(|p| p.covers(&l.goods_id)).collect();
        let disc_bp = if with_discount && !f.no_discount {
            (tier.discount_bp + promos.iter().map(|p| p.discount_bp).sum::<i64>()).min(FULL_BP)
        } else {
            0
        };
        let d = l.amount * disc_bp / FULL_BP;
        let net = l.amount - d;
        let earn_bp = rules.earn_bp + promos.iter().map(|p| p.earn_bp).sum::<i64>();
        let earn = if f.no_bonus {
            0
        } else {
            net * earn_bp / FULL_BP
        };
        total += l.amount;
        discount += d;
        if !f.no_bonus {
            base += net;
        }
        earn_sum += earn;
        out.push(LineResult {
            goods_id: l.goods_id.clone(),
            amount: l.amount,
            discount: d,
            net,
            bonus_eligible: !f.no_bonus,
            earn,
            promotions: promos.iter().map(|p| p.name.clone()).collect(),
        });
    }
    Priced {
        lines: out,
        total,
        discount,
        net: total - discount,
        bonus_base: base,
        earn: earn_sum,
        max_spend_by_receipt: base * rules.max_bonus_share_bp / FULL_BP,
    }
}

/// Bonus earned when `spend` of the bonus base is paid with bonus: earning
/// is on money actually paid, so the earn shrinks in proportion.
pub fn earn_after_spend(p: &Priced, spend: i64) -> i64 {
    if p.bonus_base == 0 {
        return 0;
    }
    let paid = p.bonus_base - spend.min(p.bonus_base);
    // i128: earn * paid may exceed i64 for absurd receipts.
    ((p.earn as i128 * paid as i128) / p.bonus_base as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            tiers: vec![
                Tier {
                    name: "base".into(),
                    from_total: 0,
                    discount_bp: 0,
                },
                Tier {
                    name: "silver".into(),
                    from_total: 100_000,
                    discount_bp: 500,
                },
            ],
            earn_bp: 1000,
            max_bonus_share_bp: 5000,
            promotions: vec![Promotion {
                name: "happy".into(),
                goods: vec!["beer".into()],
                from_date: None,
                to_date: None,
                days: vec![],
                start: NaiveTime::from_hms_opt(15, 0, 0),
                end: NaiveTime::from_hms_opt(18, 0, 0),
                discount_bp: 1000,
                earn_bp: 0,
            }],
        }
    }

    fn at(h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 10, 3)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    fn line(g: &str, amount: i64) -> Line {
        Line {
            goods_id: g.into(),
            price: amount,
            quantity: 1000,
            amount,
        }
    }

    #[test]
    fn tier_promo_and_flags() {
        let r = rules();
        let flags = |g: &str| ProductFlags {
            no_discount: g == "tobacco",
            no_bonus: g == "tobacco",
        };
        let lines = [line("beer", 10_000), line("tobacco", 20_000)];
        let p = price(&r, r.tier_for(150_000), at(16), &lines, &flags, true);
        assert_eq!(p.lines[0].discount, 1500); // 5 % tier + 10 % promo
        assert_eq!(p.lines[1].discount, 0);
        assert_eq!(p.bonus_base, 8500);
        assert_eq!(p.earn, 850);
        assert_eq!(p.max_spend_by_receipt, 4250);
        let later = price(&r, r.tier_for(150_000), at(19), &lines, &flags, true);
        assert_eq!(later.lines[0].discount, 500);
        let offline = price(&r, r.tier_for(150_000), at(16), &lines, &flags, false);
        assert_eq!(offline.discount, 0);
        assert_eq!(earn_after_spend(&p, 4250), 425);
    }

    #[test]
    fn window_over_midnight() {
        let mut p = rules().promotions[0].clone();
        p.start = NaiveTime::from_hms_opt(22, 0, 0);
        p.end = NaiveTime::from_hms_opt(2, 0, 0);
        assert!(p.active_at(at(23)));
        assert!(p.active_at(at(1)));
        assert!(!p.active_at(at(12)));
    }
}
