//! Hiding phone numbers in text that came from outside: a provider's error
//! answer (aggregators like to echo the number they refused), a rejected
//! request body (serde quotes the value it could not read).
//!
//! Such text is stored in the outbox, logged, raised to the owner and
//! answered by the API, all places where only the masked form of a guest's
//! phone may appear (152-FZ). Our own phones are typed ([`PhoneE164`] prints
//! masked); this is for text we did not write.

use crate::core::phone::PhoneE164;

/// Characters people and machines write inside a phone number.
fn separator(c: char) -> bool {
    matches!(c, ' ' | '(' | ')' | '-' | '.' | '\u{a0}')
}

/// `text` with every phone-like number masked: a run of digits and
/// separators that reads as a phone becomes its masked form
/// (`+7 925 ***-**-67`); any other run of ten digits or more (a landline,
/// a number in a form we do not parse) keeps only its last two digits.
/// Shorter numbers (codes, counts, dates, columns) are left alone.
pub fn hide_phones(text: &str) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let next_is_digit = |i: usize| chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit());
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if !(c.is_ascii_digit() || (matches!(c, '+' | '(') && next_is_digit(i))) {
            out.push(c);
            i += 1;
            continue;
        }
        let (mut j, mut last_digit, mut digits) = (i, i, 0usize);
        while let Some(&(_, ch)) = chars.get(j) {
            if ch.is_ascii_digit() {
                digits += 1;
                last_digit = j;
            } else if !(separator(ch) || (ch == '+' && j == i)) {
                break;
            }
            j += 1;
        }
        let end = chars.get(last_digit + 1).map_or(text.len(), |&(b, _)| b);
        out.push_str(&mask_run(&text[start..end], digits));
        i = last_digit + 1;
    }
    out
}

fn mask_run(run: &str, digits: usize) -> String {
    if digits >= 7
        && let Ok(p) = PhoneE164::parse(run)
    {
        return p.masked();
    }
    if digits < 10 {
        return run.to_string();
    }
    let mut seen = 0;
    run.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= digits - 2 {
                    return '*';
                }
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_in_any_spelling() {
        assert_eq!(
            hide_phones(r#"{"error":"bad number 79251234567"}"#),
            r#"{"error":"bad number +7 925 ***-**-67"}"#
        );
        assert_eq!(hide_phones("to 8 (925) 123-45-67."), "to +7 925 ***-**-67.");
        assert_eq!(
            hide_phones("invalid type: integer `+380501234567`"),
            "invalid type: integer `+380 *******67`"
        );
        assert_eq!(hide_phones("landline 84951234567"), "landline *********67");
    }

    #[test]
    fn short_numbers_stay() {
        for t in [
            "HTTP 503 Service Unavailable",
            "at line 1 column 20",
            "consent_at 2026-10-03T15:00:00Z",
            "balance 123.45",
            "",
        ] {
            assert_eq!(hide_phones(t), t);
        }
    }
}
