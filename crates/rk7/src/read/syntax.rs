//! The XML syntax shared by both tokenizers and the declaration check:
//! whitespace, names, the attribute scanner ([`Attrs`]) and entity and
//! character references, so that every path agrees on what they are.

use super::error::shorten;

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Names we accept for elements and attributes: anything without markup
/// characters or whitespace. Broader than the XML Name production on
/// purpose (lenient about form), but narrow enough that a name written back
/// reads as the same name.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| NAME_BYTE[usize::from(b)])
}

/// Which bytes [`valid_name`] accepts, as a table: names are scanned for
/// every attribute of every element, so this is on the hot path.
pub(super) static NAME_BYTE: [bool; 256] = {
    let mut t = [true; 256];
    let bad = b" \t\n\r\"'<>&/=!?";
    let mut i = 0;
    while i < bad.len() {
        t[bad[i] as usize] = false;
        i += 1;
    }
    t
};

pub(super) struct AttrSyntax {
    pub(super) at: usize,
    pub(super) what: String,
}

/// Splits the attribute part of a start tag into `(name, raw value, offset
/// of value)`. Unlike a strict XML parser it does not require whitespace
/// between one attribute's closing quote and the next name, which is the
/// form r_keeper itself sends (`version="0"crc32="0"`).
pub(super) struct Attrs<'a> {
    s: &'a str,
    i: usize,
    base: usize,
}

impl<'a> Attrs<'a> {
    pub(super) fn new(s: &'a str, base: usize) -> Self {
        Self { s, i: 0, base }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(&'a str, &'a str, usize), AttrSyntax>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.s.as_bytes();
        let mut i = self.i;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i == b.len() {
            self.i = i;
            return None;
        }
        let err = |this: &mut Self, at: usize, what: String| {
            this.i = b.len();
            Some(Err(AttrSyntax {
                at: this.base + at,
                what,
            }))
        };
        let name_start = i;
        while i < b.len() && NAME_BYTE[usize::from(b[i])] {
            i += 1;
        }
        if i < b.len() && !is_ws(b[i]) && b[i] != b'=' {
            // A byte no name may have: report the whole would-be name.
            while i < b.len() && !is_ws(b[i]) && b[i] != b'=' {
                i += 1;
            }
        }
        let name = &self.s[name_start..i];
        if !valid_name(name) {
            return err(
                self,
                name_start,
                format!("{:?} is not an attribute name", shorten(name)),
            );
        }
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return err(self, name_start, format!("attribute {name} has no value"));
        }
        i += 1;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return err(self, i, format!("the value of {name} is not quoted")),
        };
        let value_start = i + 1;
        // A plain loop: values are short, and memchr's setup costs more
        // than it saves on ten bytes.
        let Some(len) = b[value_start..].iter().position(|&c| c == quote) else {
            return err(self, i, format!("the value of {name} is not closed"));
        };
        let value_end = value_start + len;
        self.i = value_end + 1;
        Some(Ok((
            name,
            &self.s[value_start..value_end],
            self.base + value_start,
        )))
    }
}

/// Whether `s` has a reference to resolve. Attribute values are short, so a
/// byte loop beats `str::contains` and its memchr setup.
pub(super) fn has_amp(s: &str) -> bool {
    s.bytes().any(|b| b == b'&')
}

/// Resolves entity and character references in an attribute value.
pub(super) fn unescape_attr(raw: &str) -> String {
    if !has_amp(raw) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    unescape_into(raw, &mut out);
    out
}

/// Resolves references in a text run; CDATA sections are copied as they are.
pub(super) fn unescape_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find("<![CDATA[") {
        unescape_into(&rest[..i], &mut out);
        let body = &rest[i + 9..];
        let end = body.find("]]>").unwrap_or(body.len());
        out.push_str(&body[..end]);
        rest = body.get(end + 3..).unwrap_or("");
    }
    unescape_into(rest, &mut out);
    out
}

/// The five predefined entities and numeric character references are
/// resolved; anything else (`&nbsp;`, a bare `&`) is kept literally rather
/// than refused, since it has an obvious meaning to a human reader.
fn unescape_into(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let resolved = after.find(';').filter(|&n| n <= 10).and_then(|n| {
            let name = &after[..n];
            let c = match name {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix('x') {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    if !num
                        .bytes()
                        .skip(usize::from(num.starts_with('x')))
                        .all(|b| b.is_ascii_hexdigit())
                    {
                        return None;
                    }
                    char::from_u32(code)?
                }
            };
            Some((c, n))
        });
        match resolved {
            Some((c, n)) => {
                out.push(c);
                rest = &after[n + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}
