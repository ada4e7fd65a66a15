//! Typed attribute values: [`Val`] reads one attribute's text as an integer,
//! money, a quantity, a flag, a date-time or a GUID, exactly, or fails with
//! the attribute's name and byte; with the integer parsing the hot path uses.

use std::borrow::Cow;

use crate::model::{Extra, Guid, KdsState, Kopecks, LocalDateTime, Thousandths};

use super::error::{Fail, R, ReadErrorKind};
use super::parser::Parser;
use super::syntax::{is_ws, unescape_attr};

/// One attribute value, with what is needed to report an error about it.
pub(crate) struct Val<'p, 'a> {
    pub(super) p: &'p Parser<'a>,
    pub(super) name: &'p str,
    /// The value as written (entities not yet resolved).
    pub(super) raw: &'p str,
    /// Offset of the value in the decoded text.
    pub(super) at: usize,
    /// Whether `raw` has a `&` (known from the scan, so not looked for again).
    pub(super) amp: bool,
}

impl Val<'_, '_> {
    pub(crate) fn string(&self) -> String {
        if self.amp {
            unescape_attr(self.raw)
        } else {
            self.raw.to_owned()
        }
    }

    pub(crate) fn keep(&self, extra: &mut Extra) {
        extra.attrs.push((self.name.to_owned(), self.string()));
    }

    /// The value with entities resolved and XML whitespace trimmed, for the
    /// typed attributes; `None` when empty.
    #[inline]
    fn typed(&self) -> Option<Cow<'_, str>> {
        if !self.amp {
            // The usual case: nothing to resolve, so borrow the trimmed value.
            let (start, end) = trim_ws(self.raw);
            return (start < end).then(|| Cow::Borrowed(&self.raw[start..end]));
        }
        let v: Cow<'_, str> = if self.amp {
            Cow::Owned(unescape_attr(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        };
        let (start, end) = trim_ws(&v);
        if start == end {
            return None;
        }
        Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(&b[start..end]),
            Cow::Owned(o) if start == 0 && end == o.len() => Cow::Owned(o),
            Cow::Owned(o) => Cow::Owned(o[start..end].to_owned()),
        })
    }

    /// The value when it is one to eight ASCII digits and nothing else.
    ///
    /// `at` is the value's offset in `doc` on both paths, so the eight bytes
    /// from there start with the value; the word is read from `doc` (the
    /// value is followed at least by its closing quote and the tag's `>`,
    /// so there usually are eight bytes). `None` means "use the general
    /// integer parser", never "not a number".
    #[inline]
    fn short_digits(&self) -> Option<i64> {
        let len = self.raw.len();
        if !(1..=8).contains(&len) {
            return None;
        }
        let word = self.p.doc.as_bytes().get(self.at..)?.first_chunk::<8>()?;
        debug_assert_eq!(&word[..len], self.raw.as_bytes());
        eight_digits(u64::from_le_bytes(*word), len)
    }

    #[cold]
    #[inline(never)]
    fn err(&self, kind: ReadErrorKind, detail: &str) -> Fail {
        self.p
            .fail_attr(kind, self.at, self.name, &unescape_attr(self.raw), detail)
    }

    #[inline]
    fn int(&self, kind: ReadErrorKind, detail: &str) -> R<Option<i64>> {
        if !self.amp {
            // The usual case: up to eight plain digits, read as one word.
            if let Some(v) = self.short_digits() {
                return Ok(Some(v));
            }
            // Otherwise on bytes: no `Cow`, no `str` slicing.
            let t = trim_bytes(self.raw.as_bytes());
            if t.is_empty() {
                return Ok(None);
            }
            return match parse_i64_bytes(t) {
                Some(v) => Ok(Some(v)),
                None => Err(self.err(kind, detail)),
            };
        }
        match self.typed() {
            None => Ok(None),
            Some(t) => parse_i64(&t)
                .map(Some)
                .ok_or_else(|| self.err(kind, detail)),
        }
    }

    pub(crate) fn i64(&self) -> R<Option<i64>> {
        self.int(ReadErrorKind::BadNumber, "expected an integer")
    }

    pub(super) fn required_i64(&self) -> R<i64> {
        match self.typed() {
            Some(t) => parse_i64(&t)
                .ok_or_else(|| self.err(ReadErrorKind::BadNumber, "expected an integer")),
            None => Err(self.err(ReadErrorKind::BadNumber, "expected an integer")),
        }
    }

    pub(super) fn u64(&self) -> R<Option<u64>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => parse_u64(&t).map(Some).ok_or_else(|| {
                self.err(ReadErrorKind::BadNumber, "expected a non-negative integer")
            }),
        }
    }

    pub(crate) fn money(&self) -> R<Option<Kopecks>> {
        Ok(self
            .int(
                ReadErrorKind::BadMoney,
                "expected an integer number of kopecks",
            )?
            .map(Kopecks))
    }

    pub(super) fn quantity(&self) -> R<Option<Thousandths>> {
        Ok(self
            .int(
                ReadErrorKind::BadQuantity,
                "expected an integer number of thousandths",
            )?
            .map(Thousandths))
    }

    pub(crate) fn bool(&self) -> R<Option<bool>> {
        match self.typed().as_deref() {
            None => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.err(ReadErrorKind::BadBool, "expected 1 or 0")),
        }
    }

    pub(crate) fn datetime(&self) -> R<Option<LocalDateTime>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => LocalDateTime::parse(&t)
                .map(Some)
                .map_err(|e| self.err(ReadErrorKind::BadDateTime, &e.to_string())),
        }
    }

    pub(crate) fn guid(&self) -> R<Option<Guid>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => Guid::parse(&t)
                .map(Some)
                .map_err(|e| self.err(ReadErrorKind::BadGuid, &e.to_string())),
        }
    }

    pub(super) fn kds(&self) -> KdsState {
        if self.amp {
            KdsState::parse(self.string().trim())
        } else {
            KdsState::parse(self.raw.trim())
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    digits_u64(s.as_bytes())
}

/// `[+]digits` as a `u64`, on bytes so that signs are split off without
/// slicing a `str` (and its character-boundary checks).
#[inline]
fn digits_u64(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    if digits.len() < 20 {
        // Nineteen digits are below 10^19 < 2^64: no overflow checks needed
        // on the lengths that real values have.
        let mut v: u64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// The number written in the first `len` (1..=8) bytes of `w` (read little
/// endian, so the first byte is the most significant digit), or `None` when
/// one of them is not an ASCII digit.
///
/// The digits are shifted to the top of the word and the bytes below are
/// filled with `'0'`, which gives eight digits with leading zeros; those are
/// checked and combined pairwise in three multiplications instead of a loop
/// whose exit branch is mispredicted on every value of a new length.
#[inline]
pub(super) fn eight_digits(w: u64, len: usize) -> Option<i64> {
    let pad = 8 * (8 - len as u32);
    let w = if pad == 0 {
        w
    } else {
        (w << pad) | (0x3030_3030_3030_3030 & ((1u64 << pad) - 1))
    };
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 does
    // not carry into the high nibble.
    let digits = ((w & 0xF0F0_F0F0_F0F0_F0F0)
        | (((w.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0) >> 4))
        == 0x3333_3333_3333_3333;
    if !digits {
        return None;
    }
    let v = w & 0x0F0F_0F0F_0F0F_0F0F;
    let v = (v.wrapping_mul(10 * 256 + 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    let v = v.wrapping_mul(10_000 * (1 << 32) + 1) >> 32;
    Some(v as i64)
}

pub(super) fn parse_i64(s: &str) -> Option<i64> {
    parse_i64_bytes(s.as_bytes())
}

#[inline]
fn parse_i64_bytes(b: &[u8]) -> Option<i64> {
    match b.split_first() {
        Some((b'-', rest)) => {
            if rest.first() == Some(&b'+') {
                return None;
            }
            0i64.checked_sub_unsigned(digits_u64(rest)?)
        }
        _ => i64::try_from(digits_u64(b)?).ok(),
    }
}

/// `b` without XML whitespace at either end.
#[inline]
fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b
        && is_ws(*first)
    {
        b = rest;
    }
    while let [rest @ .., last] = b
        && is_ws(*last)
    {
        b = rest;
    }
    b
}

/// The range of `s` without XML whitespace at either end. Byte-wise: the
/// whitespace characters are ASCII, so the ends are character boundaries.
fn trim_ws(s: &str) -> (usize, usize) {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_ws(b[start]) {
        start += 1;
    }
    while end > start && is_ws(b[end - 1]) {
        end -= 1;
    }
    (start, end)
}
