//! The guest message: placeholder substitution and SMS length counting.
//!
//! The restaurant writes a template such as
//! `Заказ {order_number} в {restaurant_name} {status}!`. Providers bill per
//! SMS part, and one Cyrillic letter switches the whole message from GSM-7
//! (160 characters, 153 per part when split) to UCS-2 (70, 67 per part), so
//! the owner sees the part count when saving and a template that can never
//! fit the provider's limit is refused up front instead of failing at
//! dinner time.

use serde::Serialize;

use crate::core::money::rub_sms;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = [
    "order_number",
    "restaurant_name",
    "status",
    "table",
    "order_sum",
];

/// GSM 03.38 basic character set (the escape code itself excluded).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table: each costs two septets (escape + char).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// What a text costs to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Length {
    pub encoding: Encoding,
    /// In the encoding's units: septets for GSM-7 (extension characters
    /// count 2), UTF-16 code units for UCS-2 (an emoji counts 2).
    pub units: usize,
    pub parts: usize,
    /// Units that still fit into the last part.
    pub remaining: usize,
}

pub fn measure(text: &str) -> Length {
    let mut septets = 0usize;
    let mut gsm = true;
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (encoding, units, single, multi) = if gsm {
        (Encoding::Gsm7, septets, 160, 153)
    } else {
        (Encoding::Ucs2, text.encode_utf16().count(), 70, 67)
    };
    let parts = if units == 0 {
        0
    } else if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    let capacity = match parts {
        0 => single,
        1 => single,
        n => n * multi,
    };
    Length {
        encoding,
        units,
        parts,
        remaining: capacity - units,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is empty")]
    Empty,
    #[error(
        "unknown placeholder {{{0}}}; known: {{order_number}}, {{restaurant_name}}, {{status}}, {{table}}, {{order_sum}}"
    )]
    UnknownPlaceholder(String),
    #[error("unclosed `{{` at character {0}")]
    Unclosed(usize),
    #[error(
        "message would take {parts} SMS parts ({units} {encoding:?} units with sample values); the provider allows at most {max}"
    )]
    TooLong {
        parts: usize,
        units: usize,
        encoding: Encoding,
        max: usize,
    },
}

/// Values for one message.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub order_number: String,
    pub restaurant_name: String,
    pub status: String,
    pub table: String,
    pub order_sum: String,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "order_number" => &self.order_number,
            "restaurant_name" => &self.restaurant_name,
            "status" => &self.status,
            "table" => &self.table,
            "order_sum" => &self.order_sum,
            _ => return None,
        })
    }

    /// Typical long-ish values, so the count on save is what a real
    /// message will usually cost. The sum is above 10 000 rubles, grouped
    /// with plain spaces as every SMS sum is (GSM-7 has no no-break space).
    pub fn sample(restaurant_name: &str) -> Vars {
        Vars {
            order_number: "12345".into(),
            restaurant_name: restaurant_name.into(),
            status: "собирается".into(),
            table: "12".into(),
            order_sum: rub_sms(1_234_550),
        }
    }
}

/// A checked template: only known placeholders, braces balanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let t = Template(text.to_string());
        t.render_with(|name| {
            if PLACEHOLDERS.contains(&name) {
                Ok("")
            } else {
                Err(TemplateError::UnknownPlaceholder(name.to_string()))
            }
        })?;
        Ok(t)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn render(&self, vars: &Vars) -> String {
        self.render_with(|name| Ok(vars.get(name).unwrap_or("")))
            .unwrap_or_else(|_| self.0.clone())
    }

    /// Length with sample values; refuses above `max_parts`.
    pub fn check_length(
        &self,
        restaurant_name: &str,
        max_parts: usize,
    ) -> Result<Length, TemplateError> {
        let len = measure(&self.render(&Vars::sample(restaurant_name)));
        if len.parts > max_parts {
            return Err(TemplateError::TooLong {
                parts: len.parts,
                units: len.units,
                encoding: len.encoding,
                max: max_parts,
            });
        }
        Ok(len)
    }

    fn render_with<'v>(
        &self,
        mut value: impl FnMut(&str) -> Result<&'v str, TemplateError>,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.0.len() + 32);
        let mut rest = self.0.as_str();
        let mut pos = 0;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or(TemplateError::Unclosed(pos + rest[..open].chars().count()))?;
            out.push_str(value(after[..close].trim())?);
            pos += rest[..open + 1 + close + 1].chars().count();
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_counts_gsm7_with_extension_chars_double() {
        let l = measure("Order 12 is ready");
        assert_eq!((l.encoding, l.units, l.parts), (Encoding::Gsm7, 17, 1));
        let l = measure("price 5€ [x]");
        assert_eq!((l.encoding, l.units), (Encoding::Gsm7, 15));
        assert_eq!(measure(&"a".repeat(160)).parts, 1);
        assert_eq!(measure(&"a".repeat(161)).parts, 2);
        assert_eq!(measure(&"a".repeat(306)).parts, 2);
        assert_eq!(measure(&"a".repeat(307)).parts, 3);
        // 80 extension characters are 160 septets: still one part.
        assert_eq!(measure(&"{".repeat(80)).parts, 1);
        assert_eq!(measure(&"{".repeat(81)).parts, 2);
        assert_eq!(measure("").parts, 0);
    }

    #[test]
    fn one_cyrillic_letter_switches_to_ucs2() {
        let l = measure("Order 12 is готов");
        assert_eq!((l.encoding, l.units, l.parts), (Encoding::Ucs2, 17, 1));
        assert_eq!(measure(&"ж".repeat(70)).parts, 1);
        assert_eq!(measure(&"ж".repeat(71)).parts, 2);
        assert_eq!(measure(&"ж".repeat(134)).parts, 2);
        assert_eq!(measure(&"ж".repeat(135)).parts, 3);
        // An emoji is two UTF-16 units.
        assert_eq!(measure("🍕").units, 2);
        assert_eq!(measure(&"ж".repeat(69)).remaining, 1);
    }

    #[test]
    fn renders_placeholders() {
        let t = Template::parse(
            "Заказ {order_number} в {restaurant_name} {status}. Стол {table}, {order_sum} руб.",
        )
        .unwrap();
        let v = Vars {
            order_number: "42".into(),
            restaurant_name: "Пицца".into(),
            status: "готов".into(),
            table: "7".into(),
            order_sum: rub_sms(123_450),
        };
        assert_eq!(
            t.render(&v),
            "Заказ 42 в Пицца готов. Стол 7, 1 234,50 руб."
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(Template::parse("  "), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("Hi {name}"),
            Err(TemplateError::UnknownPlaceholder("name".into()))
        );
        assert_eq!(
            Template::parse("Hi {order_number"),
            Err(TemplateError::Unclosed(3))
        );
        let long = Template::parse(&"Ж".repeat(500)).unwrap();
        let e = long.check_length("R", 6).unwrap_err();
        assert!(
            matches!(
                e,
                TemplateError::TooLong {
                    parts: 8,
                    max: 6,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("at most 6"));
    }
}
