//! Guest phone numbers: parsed once at the edge into [`PhoneE164`], shown
//! only masked.
//!
//! Guests and cash registers write Russian numbers in many ways
//! (`8 (925) 123-45-67`, `+7 925 123 45 67`, `925-123-45-67`,
//! `79251234567`); the provider wants E.164 digits. Parsing into a type here
//! means the rest of the feature cannot send to, store or print an unchecked
//! string, and the type's `Debug`/`Display` print the masked form so that a
//! stray `tracing` field never leaks a full number (152-FZ).

use std::fmt;

/// A phone number in E.164 (`+79251234567`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number may contain only digits, spaces, brackets, dots, dashes and a leading +")]
    BadCharacters,
    #[error(
        "not a mobile number of Russia or Kazakhstan: expected 10 digits starting with 9 (Russia) or 7 (Kazakhstan) after +7 or 8, like +7 925 123-45-67"
    )]
    NotRussianMobile,
    #[error("international numbers need 8 to 15 digits after +")]
    BadLength,
}

impl PhoneE164 {
    /// Normalises the usual Russian spellings to `+7XXXXXXXXXX`. Numbers of
    /// other countries are accepted only in explicit `+CC...` form, because
    /// a bare `8...` or `7...` is always read as Russian.
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(PhoneError::Empty);
        }
        let plus = t.starts_with('+');
        let body = if plus { &t[1..] } else { t };
        let mut digits = String::with_capacity(15);
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '(' | ')' | '-' | '.' | '\u{a0}' => {}
                _ => return Err(PhoneError::BadCharacters),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let national = if plus {
            match digits.strip_prefix('7') {
                Some(n) => n,
                None => {
                    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
                        return Err(PhoneError::BadLength);
                    }
                    return Ok(PhoneE164(format!("+{digits}")));
                }
            }
        } else {
            match digits.len() {
                10 => digits.as_str(),
                11 if digits.starts_with('8') || digits.starts_with('7') => &digits[1..],
                _ => return Err(PhoneError::NotRussianMobile),
            }
        };
        // +7 is shared: Russia's mobiles are 9xx, Kazakhstan's 7xx. Other
        // +7 numbers are landlines, which take no SMS.
        if national.len() != 10 || !(national.starts_with('9') || national.starts_with('7')) {
            return Err(PhoneError::NotRussianMobile);
        }
        Ok(PhoneE164(format!("+7{national}")))
    }

    /// `+79251234567`: for storage and the provider only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits without `+` (`79251234567`), the form sms.ru uses as a key.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// `+7 925 ***-**-67`: the only form that may appear in logs, API
    /// answers and reports. Keeps the operator code (to tell numbers apart
    /// on a support call) and the last two digits.
    pub fn masked(&self) -> String {
        let d = self.digits();
        if let Some(n) = d.strip_prefix('7')
            && n.len() == 10
        {
            return format!("+7 {} ***-**-{}", &n[0..3], &n[8..10]);
        }
        let keep_head = 3.min(d.len().saturating_sub(2));
        format!(
            "+{} {}{}",
            &d[..keep_head],
            "*".repeat(d.len() - keep_head - 2),
            &d[d.len() - 2..]
        )
    }
}

impl fmt::Debug for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneE164({})", self.masked())
    }
}

/// Masked on purpose: a full number must be asked for with
/// [`PhoneE164::as_str`], never printed by accident.
impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn russian_spellings_normalise() {
        for s in [
            "8 (925) 123-45-67",
            "+7 925 123 45 67",
            "+7(925)1234567",
            "925-123-45-67",
            "9251234567",
            "79251234567",
            "89251234567",
            " 8.925.123.45.67 ",
        ] {
            assert_eq!(PhoneE164::parse(s).unwrap().as_str(), "+79251234567", "{s}");
        }
    }

    #[test]
    fn kazakh_mobiles_share_plus_7() {
        assert_eq!(
            PhoneE164::parse("+7 701 234-56-78").unwrap().as_str(),
            "+77012345678"
        );
        assert_eq!(
            PhoneE164::parse("8 (777) 123 45 67").unwrap().as_str(),
            "+77771234567"
        );
        assert_eq!(
            PhoneE164::parse("+7 701 234-56-78").unwrap().masked(),
            "+7 701 ***-**-78"
        );
    }

    #[test]
    fn bad_numbers_are_refused_with_reason() {
        assert_eq!(PhoneE164::parse(""), Err(PhoneError::Empty));
        assert_eq!(PhoneE164::parse(" () "), Err(PhoneError::Empty));
        assert_eq!(
            PhoneE164::parse("8925abc4567"),
            Err(PhoneError::BadCharacters)
        );
        assert_eq!(
            PhoneE164::parse("+7 925 123"),
            Err(PhoneError::NotRussianMobile)
        );
        assert_eq!(
            PhoneE164::parse("8 (495) 123-45-67"),
            Err(PhoneError::NotRussianMobile)
        );
        assert_eq!(
            PhoneE164::parse("925123456789"),
            Err(PhoneError::NotRussianMobile)
        );
        assert_eq!(PhoneE164::parse("+12"), Err(PhoneError::BadLength));
        assert_eq!(
            PhoneE164::parse("++79251234567"),
            Err(PhoneError::BadCharacters)
        );
        assert_eq!(
            PhoneE164::parse("+380501234567").unwrap().as_str(),
            "+380501234567"
        );
    }

    #[test]
    fn masking_keeps_operator_code_and_last_two() {
        let p = PhoneE164::parse("8 (925) 123-45-67").unwrap();
        assert_eq!(p.masked(), "+7 925 ***-**-67");
        assert_eq!(format!("{p}"), "+7 925 ***-**-67");
        assert_eq!(format!("{p:?}"), "PhoneE164(+7 925 ***-**-67)");
        let foreign = PhoneE164::parse("+380501234567").unwrap();
        assert_eq!(foreign.masked(), "+380 *******67");
    }

    proptest! {
        #[test]
        fn every_spelling_of_a_mobile_gives_the_same_e164(
            n in 9_000_000_000u64..10_000_000_000u64,
            prefix in prop::sample::select(vec!["", "8", "7", "+7", "+7 ", "8 "]),
            sep in prop::sample::select(vec!["", " ", "-", "."]),
        ) {
            let s = n.to_string();
            let spaced = format!("{prefix}({}){sep}{}{sep}{}{sep}{}", &s[0..3], &s[3..6], &s[6..8], &s[8..10]);
            let p = PhoneE164::parse(&spaced).unwrap();
            prop_assert_eq!(p.as_str(), format!("+7{s}"));
            let m = p.masked();
            // Middle digits never survive masking.
            prop_assert!(!m.contains(&s[3..8]));
            prop_assert!(m.ends_with(&s[8..10]));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,40}") {
            if let Ok(p) = PhoneE164::parse(&s) {
                prop_assert!(p.as_str().starts_with('+'));
                prop_assert!(p.digits().chars().all(|c| c.is_ascii_digit()));
                let _ = p.masked();
            }
        }
    }
}
