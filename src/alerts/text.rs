//! Message texts: minijinja templates (Russian by default, English), HTML
//! escaping for Telegram, and splitting of long texts.
//!
//! Every string that came from a cash server (dish names, people, reasons)
//! is escaped *before* it reaches a template, so a template can only add
//! markup its author wrote; templates keep each tag on one line, which is
//! what lets [`split`] cut on line boundaries without breaking a tag.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, Value};

use super::kind::AlertKind;
use super::payload::Alert;
use super::settings::Lang;
use crate::core::money::rub;

/// Telegram's limit on a message text, in characters.
pub const MAX_TEXT: usize = 4096;
/// Telegram's limit on a photo caption.
pub const MAX_CAPTION: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("cannot read template {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// Escapes the three characters Telegram's HTML mode requires.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn escape_all(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) => J::String(escape(&s)),
        J::Array(a) => J::Array(a.into_iter().map(escape_all).collect()),
        J::Object(o) => J::Object(
            o.into_iter()
                .map(|(k, v)| (escape(&k), escape_all(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Thousandths as a quantity: `1500` -> `1.5`, `2000` -> `2`.
pub fn qty(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    let frac = t % 1000;
    if frac == 0 {
        format!("{sign}{}", t / 1000)
    } else {
        let f = format!("{frac:03}");
        format!("{sign}{}.{}", t / 1000, f.trim_end_matches('0'))
    }
}

const RU: &[(AlertKind, &str)] = &[
    (
        AlertKind::ReceiptDeleted,
        "❗️ <b>Удалён чек</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}{% if order.table %}, стол {{ order.table }}{% endif %}\nЧек № {{ check_num or '—' }} на {{ amount|rub }} ₽\nКассир: {{ cashier or '—' }}\nУдалил: {{ manager or '—' }}\nПричина: {{ reason or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::PrebillCancelled,
        "⚠️ <b>Отменён пречек</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}{% if order.table %}, стол {{ order.table }}{% endif %}\nПречек № {{ check_num or '—' }} на {{ amount|rub }} ₽\nОтменил: {{ manager or cashier or '—' }}\nПричина: {{ reason or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::DishVoided,
        "⚠️ <b>Удалено блюдо после печати</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}{% if order.table %}, стол {{ order.table }}{% endif %}\nБлюдо: {{ dish or '—' }} × {{ quantity|qty }} на {{ amount|rub }} ₽\nКто: {{ who or '—' }}\nПричина: {{ reason or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::UnsavedDishDeleted,
        "ℹ️ <b>Удалено несохранённое блюдо</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}\nБлюдо: {{ dish or '—' }} × {{ quantity|qty }}\nКто: {{ who or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::DiscountOverThreshold,
        "⚠️ <b>Большая скидка</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}{% if order.table %}, стол {{ order.table }}{% endif %}\nСкидка {{ discount|rub }} ₽ ({{ percent }}%) от {{ order_sum|rub }} ₽{% if names %}\nСкидки: {{ names|join(', ') }}{% endif %}\nОфициант: {{ order.waiter or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::PaymentDeleted,
        "⚠️ <b>Удалена оплата</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}\nОплата: {{ currency or '—' }} {{ amount|rub }} ₽{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::TotalLoweredAfterPrebill,
        "⚠️ <b>Сумма заказа уменьшена после пречека</b> {{ rest }}\nЗаказ: {{ order.name or '—' }}{% if order.table %}, стол {{ order.table }}{% endif %}\nБыло {{ before|rub }} ₽, стало {{ after|rub }} ₽\nОфициант: {{ order.waiter or '—' }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StationClosed,
        "ℹ️ <b>Касса закрыта</b> {{ rest }}\nСтанция: {{ station }}{% if who %}\nКто: {{ who }}{% endif %}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StationSilent,
        "⚠️ <b>Касса молчит</b> {{ rest }}\nСтанция {{ station }} запущена, но не присылает событий {{ minutes }} мин.{% if last_event_time %}\nПоследнее событие: {{ last_event_time }}{% endif %}",
    ),
    (
        AlertKind::StationRestarted,
        "⚠️ <b>Касса запущена повторно без закрытия</b> {{ rest }}\nСтанция: {{ station }}{% if at %}\nВремя: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StreamGap,
        "⚠️ <b>Потеряны события</b> {{ rest }}\nПоток {{ stream }}: не пришли номера {{ from_seq }}–{{ to_seq }} ({{ missing }} шт.)",
    ),
    (
        AlertKind::ServerSilent,
        "❗️ <b>Кассовый сервер молчит</b> {{ rest }}\nНет событий {{ minutes }} мин. в рабочие часы{% if last_event_time %}\nПоследнее событие: {{ last_event_time }}{% endif %}",
    ),
    (
        AlertKind::Operator,
        "🔧 <b>tillgate</b>{% if rest_code %} {{ rest }}{% endif %}\n{{ text }}",
    ),
    (
        AlertKind::ShiftReport,
        "📊 <b>Смена {{ shift_num }}</b> {{ rest }}{% if shift_date %} ({{ shift_date }}){% endif %}\nКассовых серверов: {{ cash_servers }}\nВыручка: <b>{{ revenue|rub }} ₽</b>\nЧеков: {{ receipts }}, средний чек {{ average_check|rub }} ₽\nЗаказов: {{ orders }}\n{% if payments %}<b>Оплаты</b>\n{% for name, amount in payments|items %}{{ name }}: {{ amount|rub }} ₽\n{% endfor %}{% endif %}Скидки: {{ discounts|rub }} ₽ ({{ discount_lines }})\n{% if deleted_receipts %}<b>Удалённые чеки</b>\n{% for d in deleted_receipts %}№ {{ d.check_num or '—' }} {{ d.amount|rub }} ₽, кассир {{ d.cashier or '—' }}, удалил {{ d.manager or '—' }}, {{ d.reason or '—' }}\n{% endfor %}{% endif %}Отменено пречеков: {{ cancelled_prebills }}\n{% if voids %}<b>Удаления блюд</b>\n{% for v in voids %}{{ v.dish or '—' }} × {{ v.quantity|qty }} {{ v.amount|rub }} ₽, {{ v.who or '—' }}, {{ v.reason or '—' }}\n{% endfor %}{% endif %}{% if top_dishes %}<b>Топ блюд</b>\n{% for d in top_dishes %}{{ loop.index }}. {{ d.name }} × {{ d.quantity|qty }} — {{ d.amount|rub }} ₽\n{% endfor %}{% endif %}<b>Продажи по часам</b>\n{% for h in hours %}{{ h.hour }}:00 {{ h.amount|rub }} ₽\n{% endfor %}",
    ),
];

const EN: &[(AlertKind, &str)] = &[
    (
        AlertKind::ReceiptDeleted,
        "❗️ <b>Receipt deleted</b> {{ rest }}\nOrder: {{ order.name or '—' }}{% if order.table %}, table {{ order.table }}{% endif %}\nReceipt #{{ check_num or '—' }} for {{ amount|rub }} RUB\nCashier: {{ cashier or '—' }}\nDeleted by: {{ manager or '—' }}\nReason: {{ reason or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::PrebillCancelled,
        "⚠️ <b>Pre-bill cancelled</b> {{ rest }}\nOrder: {{ order.name or '—' }}{% if order.table %}, table {{ order.table }}{% endif %}\nPre-bill #{{ check_num or '—' }} for {{ amount|rub }} RUB\nCancelled by: {{ manager or cashier or '—' }}\nReason: {{ reason or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::DishVoided,
        "⚠️ <b>Dish voided after print</b> {{ rest }}\nOrder: {{ order.name or '—' }}{% if order.table %}, table {{ order.table }}{% endif %}\nDish: {{ dish or '—' }} × {{ quantity|qty }} for {{ amount|rub }} RUB\nBy: {{ who or '—' }}\nReason: {{ reason or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::UnsavedDishDeleted,
        "ℹ️ <b>Unsaved dish deleted</b> {{ rest }}\nOrder: {{ order.name or '—' }}\nDish: {{ dish or '—' }} × {{ quantity|qty }}\nBy: {{ who or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::DiscountOverThreshold,
        "⚠️ <b>Large discount</b> {{ rest }}\nOrder: {{ order.name or '—' }}{% if order.table %}, table {{ order.table }}{% endif %}\nDiscount {{ discount|rub }} RUB ({{ percent }}%) of {{ order_sum|rub }} RUB{% if names %}\nDiscounts: {{ names|join(', ') }}{% endif %}\nWaiter: {{ order.waiter or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::PaymentDeleted,
        "⚠️ <b>Payment deleted</b> {{ rest }}\nOrder: {{ order.name or '—' }}\nPayment: {{ currency or '—' }} {{ amount|rub }} RUB{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::TotalLoweredAfterPrebill,
        "⚠️ <b>Order total lowered after pre-bill</b> {{ rest }}\nOrder: {{ order.name or '—' }}{% if order.table %}, table {{ order.table }}{% endif %}\nWas {{ before|rub }} RUB, now {{ after|rub }} RUB\nWaiter: {{ order.waiter or '—' }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StationClosed,
        "ℹ️ <b>Cash station closed</b> {{ rest }}\nStation: {{ station }}{% if who %}\nBy: {{ who }}{% endif %}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StationSilent,
        "⚠️ <b>Cash station silent</b> {{ rest }}\nStation {{ station }} started but sent nothing for {{ minutes }} min{% if last_event_time %}\nLast event: {{ last_event_time }}{% endif %}",
    ),
    (
        AlertKind::StationRestarted,
        "⚠️ <b>Cash station started again without closing</b> {{ rest }}\nStation: {{ station }}{% if at %}\nTime: {{ at }}{% endif %}",
    ),
    (
        AlertKind::StreamGap,
        "⚠️ <b>Events lost</b> {{ rest }}\nStream {{ stream }}: numbers {{ from_seq }}–{{ to_seq }} never arrived ({{ missing }})",
    ),
    (
        AlertKind::ServerSilent,
        "❗️ <b>Cash server silent</b> {{ rest }}\nNo events for {{ minutes }} min during opening hours{% if last_event_time %}\nLast event: {{ last_event_time }}{% endif %}",
    ),
    (
        AlertKind::Operator,
        "🔧 <b>tillgate</b>{% if rest_code %} {{ rest }}{% endif %}\n{{ text }}",
    ),
    (
        AlertKind::ShiftReport,
        "📊 <b>Shift {{ shift_num }}</b> {{ rest }}{% if shift_date %} ({{ shift_date }}){% endif %}\nCash servers: {{ cash_servers }}\nRevenue: <b>{{ revenue|rub }} RUB</b>\nReceipts: {{ receipts }}, average check {{ average_check|rub }} RUB\nOrders: {{ orders }}\n{% if payments %}<b>Payments</b>\n{% for name, amount in payments|items %}{{ name }}: {{ amount|rub }} RUB\n{% endfor %}{% endif %}Discounts: {{ discounts|rub }} RUB ({{ discount_lines }})\n{% if deleted_receipts %}<b>Deleted receipts</b>\n{% for d in deleted_receipts %}#{{ d.check_num or '—' }} {{ d.amount|rub }} RUB, cashier {{ d.cashier or '—' }}, deleted by {{ d.manager or '—' }}, {{ d.reason or '—' }}\n{% endfor %}{% endif %}Pre-bills cancelled: {{ cancelled_prebills }}\n{% if voids %}<b>Voided dishes</b>\n{% for v in voids %}{{ v.dish or '—' }} × {{ v.quantity|qty }} {{ v.amount|rub }} RUB, {{ v.who or '—' }}, {{ v.reason or '—' }}\n{% endfor %}{% endif %}{% if top_dishes %}<b>Top dishes</b>\n{% for d in top_dishes %}{{ loop.index }}. {{ d.name }} × {{ d.quantity|qty }} — {{ d.amount|rub }} RUB\n{% endfor %}{% endif %}<b>Sales by hour</b>\n{% for h in hours %}{{ h.hour }}:00 {{ h.amount|rub }} RUB\n{% endfor %}",
    ),
];

/// The compiled templates of both languages (built-in, or overridden from
/// `templates_dir/<lang>/<kind>.txt`).
pub struct Texts {
    env: Environment<'static>,
    lang: Lang,
    names: BTreeMap<String, String>,
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texts").field("lang", &self.lang).finish()
    }
}

impl Texts {
    pub fn new(
        lang: Lang,
        dir: Option<&Path>,
        names: BTreeMap<String, String>,
    ) -> Result<Texts, TextError> {
        let mut env = Environment::new();
        // Money in every text is the one Russian format (`1 234,50`).
        env.add_filter("rub", |v: i64| rub(v));
        env.add_filter("qty", |v: i64| qty(v));
        for (l, set) in [(Lang::Ru, RU), (Lang::En, EN)] {
            for kind in AlertKind::ALL {
                let name = format!("{}/{kind}", l.as_str());
                let mut source = set
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default();
                if let Some(dir) = dir {
                    let path = dir.join(l.as_str()).join(format!("{kind}.txt"));
                    if path.exists() {
                        source =
                            std::fs::read_to_string(&path).map_err(|source| TextError::Read {
                                path: path.display().to_string(),
                                source,
                            })?;
                    }
                }
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| TextError::Template {
                        name,
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(Texts { env, lang, names })
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Renders an alert in the configured language.
    pub fn render(&self, alert: &Alert) -> Result<String, TextError> {
        self.render_in(self.lang, alert)
    }

    pub fn render_in(&self, lang: Lang, alert: &Alert) -> Result<String, TextError> {
        let name = format!("{}/{}", lang.as_str(), alert.kind());
        let mut ctx = match alert {
            Alert::ShiftReport(r) => {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                let hours: Vec<serde_json::Value> = r
                    .by_hour
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| **a != 0)
                    .map(|(h, a)| serde_json::json!({"hour": format!("{h:02}"), "amount": a}))
                    .collect();
                v["hours"] = serde_json::Value::Array(hours);
                v
            }
            other => serde_json::to_value(other).unwrap_or_default(),
        };
        let rest = alert
            .rest_code()
            .map(|r| self.names.get(r).cloned().unwrap_or_else(|| r.to_string()))
            .unwrap_or_default();
        ctx["rest"] = serde_json::Value::String(rest);
        let ctx = escape_all(ctx);
        let t = self
            .env
            .get_template(&name)
            .map_err(|e| TextError::Template {
                name: name.clone(),
                message: e.to_string(),
            })?;
        let text = t
            .render(Value::from_serialize(&ctx))
            .map_err(|e| TextError::Template {
                name,
                message: e.to_string(),
            })?;
        Ok(text.trim_end().to_string())
    }

    /// A short caption for the report chart (the chart itself has no text).
    pub fn chart_caption(&self, r: &super::report::ShiftReport) -> String {
        let peak = r
            .by_hour
            .iter()
            .enumerate()
            .max_by_key(|(_, a)| **a)
            .filter(|(_, a)| **a > 0);
        let mut s = match self.lang {
            Lang::Ru => format!(
                "Продажи по часам, смена {}: {} ₽",
                r.shift_num,
                rub(r.revenue)
            ),
            Lang::En => format!(
                "Sales by hour, shift {}: {} RUB",
                r.shift_num,
                rub(r.revenue)
            ),
        };
        if let Some((h, a)) = peak {
            s.push_str(&match self.lang {
                Lang::Ru => format!("; пик {h:02}:00 — {} ₽", rub(*a)),
                Lang::En => format!("; peak {h:02}:00 — {} RUB", rub(*a)),
            });
        }
        escape(&s).chars().take(MAX_CAPTION).collect()
    }
}

/// Splits `text` into messages of at most `max` characters, on line
/// boundaries; a single longer line is cut at character boundaries.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for line in text.split('\n') {
        let len = line.chars().count();
        let need = if cur.is_empty() { len } else { len + 1 };
        if cur_len + need <= max {
            if !cur.is_empty() {
                cur.push('\n');
            }
            cur.push_str(line);
            cur_len += need;
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if len <= max {
            cur.push_str(line);
            cur_len = len;
        } else {
            let chars: Vec<char> = line.chars().collect();
            for chunk in chars.chunks(max) {
                out.push(chunk.iter().collect());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(qty(1500), "1.5");
        assert_eq!(qty(2000), "2");
        assert_eq!(qty(-250), "-0.25");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn split_keeps_lines_and_limit() {
        let text = (0..1000)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let parts = split(&text, 100);
        assert!(parts.iter().all(|p| p.chars().count() <= 100));
        assert_eq!(parts.join("\n"), text);
        let long = "я".repeat(250);
        let parts = split(&long, 100);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), long);
    }
}
