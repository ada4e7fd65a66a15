//! The fast tokenizer, for speed: one pass over the text that finds a tag,
//! its name and its attributes together, eight or sixteen bytes at a time.
//! It takes only the plain form cash servers send and gives up on anything
//! else, leaving the document to the general tokenizer.

use super::error::{Fail, R, ReadError, ReadErrorKind};
use super::parser::{Parser, RawAttr, Src, Tag, Tok};
use super::syntax::{NAME_BYTE, has_amp, is_ws};

/// What the fast path returns when it gives up. The content does not matter:
/// [`read`](fn@crate::read) discards it and reads again on the general path.
pub(super) fn give_up() -> Fail {
    Box::new(ReadError {
        kind: ReadErrorKind::NotXml,
        offset: 0,
        path: String::new(),
        found: None,
        detail: String::new(),
    })
}

impl<'a> Parser<'a> {
    /// The fast tokenizer: the next token from offset `i`, or a give-up.
    ///
    /// It accepts only forms for which quick-xml gives the same token
    /// without an error and the general path builds the same model: start
    /// tags whose attributes all parse, `</name>` closing the open element,
    /// text without references, and an XML declaration before the root.
    /// Everything else (comments, CDATA, DOCTYPE, other processing
    /// instructions, `&` in text, the end of the input, any syntax error)
    /// gives up, since it is rare and the general path knows what to do.
    ///
    /// Every offset used to slice `doc` is the position of an ASCII byte or
    /// the end of `doc`, so slices always fall on character boundaries.
    pub(super) fn next_fast(&mut self, mut i: usize) -> R<Tok<'a>> {
        let doc = self.doc;
        let b = doc.as_bytes();
        loop {
            let text_start = i;
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            match b.get(i) {
                Some(b'<') => {}
                Some(_) => {
                    // Text: only inside an element, up to the next tag, and
                    // with no reference to resolve (the general path resolves
                    // them exactly as quick-xml splits them).
                    if self.path.is_empty() {
                        return Err(give_up());
                    }
                    let len = doc[i..].find('<').ok_or_else(give_up)?;
                    let end = i + len;
                    let raw = &doc[text_start..end];
                    if has_amp(raw) {
                        return Err(give_up());
                    }
                    self.src = Src::Fast(end);
                    return Ok(Tok::Text(raw.to_owned(), text_start));
                }
                None => return Err(give_up()),
            }
            match b.get(i + 1) {
                Some(b'/') => {
                    let name = self.path.last().ok_or_else(give_up)?;
                    let after = i + 2 + name.len();
                    if b.get(i + 2..after) != Some(name.as_bytes()) || b.get(after) != Some(&b'>') {
                        return Err(give_up());
                    }
                    self.src = Src::Fast(after + 1);
                    return Ok(Tok::End);
                }
                Some(b'?') => {
                    // The XML declaration, before the root only.
                    if !self.path.is_empty()
                        || !b[i..].starts_with(b"<?xml")
                        || !b.get(i + 5).is_some_and(|&c| is_ws(c))
                    {
                        return Err(give_up());
                    }
                    let len = doc[i + 6..].find("?>").ok_or_else(give_up)?;
                    i += 6 + len + 2;
                }
                Some(_) => return self.fast_start(i),
                None => return Err(give_up()),
            }
        }
    }

    /// A start tag at `lt` (the `<`), its attributes into `attr_buf`.
    ///
    /// Equivalent to quick-xml finding the first `>` outside quotes and then
    /// [`Attrs`](super::syntax::Attrs) splitting what is between: between
    /// attributes there can be only whitespace and name bytes, none of which
    /// is a quote or `>`, so the first unquoted `>` is where this scan stops,
    /// and a `/` is accepted only right before it.
    fn fast_start(&mut self, lt: usize) -> R<Tok<'a>> {
        let doc = self.doc;
        let b = doc.as_bytes();
        let mut i = name_end(b, lt + 1);
        if i == lt + 1 {
            return Err(give_up());
        }
        let name = &doc[lt + 1..i];
        let attrs_at = i;
        self.attr_buf.clear();
        self.tag_seq = self.tag_seq.wrapping_add(1).max(1);
        let (end, empty) = loop {
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            match b.get(i) {
                Some(b'>') => break (i, false),
                Some(b'/') if b.get(i + 1) == Some(&b'>') => break (i, true),
                None => return Err(give_up()),
                Some(_) => {}
            }
            if let Some((name_end, close, mut amp)) = attr_in_window(b, i) {
                // `name="value"`, the form of nearly every attribute.
                let value_start = name_end + 2;
                let value_end = match close {
                    Some(close) => close,
                    None => {
                        // The value runs past the window: carry on after it.
                        let mut j = find2(b, i + 16, b'"', b'&').ok_or_else(give_up)?;
                        if b[j] == b'&' {
                            amp = true;
                            j = find2(b, j, b'"', b'"').ok_or_else(give_up)?;
                        }
                        j
                    }
                };
                self.attr_buf.push(RawAttr {
                    name: &doc[i..name_end],
                    raw: &doc[value_start..value_end],
                    at: value_start,
                    amp,
                });
                i = value_end + 1;
                continue;
            }
            let name_start = i;
            i = name_end(b, i);
            if i == name_start {
                return Err(give_up());
            }
            let attr_name = &doc[name_start..i];
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                return Err(give_up());
            }
            i += 1;
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            let quote = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => return Err(give_up()),
            };
            i += 1;
            let value_start = i;
            i = find2(b, i, quote, b'&').ok_or_else(give_up)?;
            let amp = b[i] == b'&';
            if amp {
                i = find2(b, i, quote, quote).ok_or_else(give_up)?;
            }
            self.attr_buf.push(RawAttr {
                name: attr_name,
                raw: &doc[value_start..i],
                at: value_start,
                amp,
            });
            i += 1;
        };
        self.src = Src::Fast(end + if empty { 2 } else { 1 });
        Ok(Tok::Start(Tag {
            name,
            attrs: &doc[attrs_at..end],
            attrs_at,
            at: lt,
            empty,
            seq: self.tag_seq,
        }))
    }
}

// Word-at-a-time scanning for the fast tokenizer. Names and values are a few
// to a few dozen bytes; a byte loop costs a mispredicted branch at its exit
// on every one of them, eight bytes per step make the loops short.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of the lowest zero byte of `x` is set, and possibly of
/// bytes above it (a borrow can run on), never of bytes below it. Callers
/// only use the lowest set bit, which is therefore exact.
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Offset of the first `x` or `y` at or after `i`.
#[inline(always)]
fn find2(b: &[u8], mut i: usize, x: u8, y: u8) -> Option<usize> {
    let (xs, ys) = (LO * u64::from(x), LO * u64::from(y));
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        let hit = zero_bytes(w ^ xs) | zero_bytes(w ^ ys);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = b.get(i..)?;
    tail.iter().position(|&c| c == x || c == y).map(|p| i + p)
}

/// End of the name starting at `i`: the first byte at or after `i` that
/// [`NAME_BYTE`] refuses (or the end of `b`).
///
/// Every refused byte is below 0x40, and most name bytes (letters, `_`,
/// non-ASCII) are not, so eight bytes at a time look for the first byte
/// below 0x40; only when that one is still a name byte (a digit, `-`, `.`,
/// `:`) does the table decide, byte by byte.
#[inline(always)]
fn name_end(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        // Bit 7 of each byte of `w | w << 1` is bit 7 or bit 6 of that byte.
        let low = !(w | (w << 1)) & HI;
        if low == 0 {
            i += 8;
            continue;
        }
        let at = i + (low.trailing_zeros() / 8) as usize;
        if !NAME_BYTE[usize::from(b[at])] {
            return at;
        }
        i = at + 1;
    }
    while i < b.len() && NAME_BYTE[usize::from(b[i])] {
        i += 1;
    }
    i
}

const LO16: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
const HI16: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;

/// The high bit set in exactly those bytes of `w` that equal `c` (no
/// borrows between bytes, unlike [`zero_bytes`], so every bit is exact).
#[inline(always)]
fn eq_bytes(w: u128, c: u8) -> u128 {
    let x = w ^ (LO16 * u128::from(c));
    // Bit 7 of `(x & 0x7F) + 0x7F` is set when the low seven bits are not
    // all zero; or-ing `x` adds bit 7 itself. What stays clear is a zero byte.
    !(((x & !HI16) + !HI16) | x) & HI16
}

/// The usual attribute, `name="value"` with a name of letters (bytes from
/// 0x40 up, which includes every non-ASCII byte), found in one 16-byte load
/// at `i` instead of a scan per part, each waiting on the one before.
///
/// Returns the end of the name, the closing quote if it is in the window,
/// and whether a `&` came before it (or before the window's end). `None`
/// when the attribute has any other form (digits or `-` in the name, spaces
/// around `=`, single quotes), near the end of the input, or with a name too
/// long for the window; the step-by-step scan then reads it, the same way.
///
/// Same result as that scan: every byte it refuses in a name is below 0x40,
/// so a name of bytes from 0x40 up that ends at `=` is the whole name.
#[inline(always)]
fn attr_in_window(b: &[u8], i: usize) -> Option<(usize, Option<usize>, bool)> {
    let w = u128::from_le_bytes(*b.get(i..)?.first_chunk::<16>()?);
    // Bit 7 of each byte of `w | w << 1` is bit 7 or bit 6 of that byte.
    let low = !(w | (w << 1)) & HI16;
    let n = (low.trailing_zeros() / 8) as usize;
    if n == 0 || n > 13 || b[i + n] != b'=' || b[i + n + 1] != b'"' {
        return None;
    }
    // Bytes after `="`; n + 2 <= 15, so the shift stays below 128.
    let value = !((1u128 << ((n + 2) * 8)) - 1);
    let quotes = eq_bytes(w, b'"') & value;
    let amps = eq_bytes(w, b'&') & value;
    if quotes == 0 {
        return Some((i + n, None, amps != 0));
    }
    let close = (quotes.trailing_zeros() / 8) as usize;
    let before = (1u128 << (close * 8)) - 1;
    Some((i + n, Some(i + close), amps & before != 0))
}
