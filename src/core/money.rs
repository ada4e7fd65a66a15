//! Money as people read it: kopecks (integers everywhere inside tillgate)
//! shown as Russian rubles, `450,00`, `12 345,50`.
//!
//! One formatter for every text a person reads (Telegram alerts, the shift
//! report, guest SMS), because Russian writes a decimal comma, not a point,
//! and a text that says `450.00 ₽` looks foreign to an owner. Digits are
//! grouped by three with a no-break space from four digits up (`1 234,50`),
//! the same in Telegram, the shift report and the console, so an owner
//! reads one format everywhere. The space is U+00A0 so a narrow phone
//! screen never breaks a sum in two lines ([`rub_sms`] for guest SMS).

/// `kopecks` as rubles with a decimal comma: `-1 234,50`, `12 345,00`.
pub fn rub(kopecks: i64) -> String {
    let sign = if kopecks < 0 { "-" } else { "" };
    let k = kopecks.unsigned_abs();
    let whole = (k / 100).to_string();
    let mut out = String::with_capacity(whole.len() + 8);
    out.push_str(sign);
    if whole.len() <= 3 {
        out.push_str(&whole);
    } else {
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.push('\u{a0}');
            }
            out.push(c);
        }
    }
    out.push(',');
    out.push_str(&format!("{:02}", k % 100));
    out
}

/// [`rub`] for a guest SMS: plain spaces, because U+00A0 is not in the
/// GSM-7 alphabet and would make a Latin text cost UCS-2 parts.
pub fn rub_sms(kopecks: i64) -> String {
    rub(kopecks).replace('\u{a0}', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_decimal_comma_and_grouping() {
        assert_eq!(rub(0), "0,00");
        assert_eq!(rub(5), "0,05");
        assert_eq!(rub(45_000), "450,00");
        assert_eq!(rub(123_450), "1\u{a0}234,50");
        assert_eq!(rub(246_465), "2\u{a0}464,65");
        assert_eq!(rub(99_999), "999,99");
        assert_eq!(rub_sms(1_234_550), "12 345,50");
        assert_eq!(rub(1_234_550), "12\u{a0}345,50");
        assert_eq!(rub(12_345_678_900), "123\u{a0}456\u{a0}789,00");
        assert_eq!(rub(-100), "-1,00");
        assert_eq!(rub(-123_450), "-1\u{a0}234,50");
        assert_eq!(rub(-1_234_500), "-12\u{a0}345,00");
        assert_eq!(
            rub(i64::MIN),
            "-92\u{a0}233\u{a0}720\u{a0}368\u{a0}547\u{a0}758,08"
        );
    }
}
