//! Bytes to UTF-8 text, by a BOM or the declared encoding (windows-1251 is
//! the one seen besides UTF-8), borrowed when the bytes already are UTF-8;
//! and offsets in that text back to offsets in the bytes, so that errors
//! point at the byte the caller sent.

use std::borrow::Cow;

use encoding_rs::Encoding;

use super::error::{ReadError, ReadErrorKind};
use super::syntax::{Attrs, is_ws};

/// Maps offsets in the decoded text back to offsets in the input bytes.
pub(super) struct OffsetMap<'a> {
    /// Bytes skipped before the text (a BOM).
    pub(super) base: usize,
    /// `Some` when the text was transcoded; `None` when it is the input.
    pub(super) encoding: Option<(&'static Encoding, &'a str)>,
}

impl OffsetMap<'_> {
    pub(super) fn source(&self, offset: usize) -> usize {
        match self.encoding {
            None => self.base + offset,
            Some((enc, text)) => {
                let mut end = offset.min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let prefix = &text[..end];
                if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                    // encoding_rs encodes "to UTF-16" as UTF-8 (the WHATWG
                    // rule), so count the code units ourselves.
                    return self.base + 2 * prefix.encode_utf16().count();
                }
                let (bytes, _, _) = enc.encode(prefix);
                self.base + bytes.len()
            }
        }
    }
}

pub(crate) struct Decoded<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) map: OffsetMapOwned,
}

/// The owned half of [`OffsetMap`] (the text lives in [`Decoded`]).
pub(crate) struct OffsetMapOwned {
    pub(super) base: usize,
    pub(super) encoding: Option<&'static Encoding>,
}

/// Turns the input into UTF-8 text.
///
/// A BOM wins over the declaration (that is what XML parsers do). Without a
/// BOM the `encoding` pseudo-attribute of the declaration is honoured for
/// any label encoding_rs knows, windows-1251 being the one seen in practice.
/// UTF-8 input is borrowed, not copied.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, ReadError> {
    let enc_err = |offset: usize, detail: String| ReadError {
        kind: ReadErrorKind::BadEncoding,
        offset,
        path: String::new(),
        found: None,
        detail,
    };
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        let body = &bytes[bom..];
        if enc == encoding_rs::UTF_8 {
            let text = std::str::from_utf8(body)
                .map_err(|e| enc_err(bom + e.valid_up_to(), "invalid UTF-8".into()))?;
            return Ok(Decoded {
                text: Cow::Borrowed(text),
                map: OffsetMapOwned {
                    base: bom,
                    encoding: None,
                },
            });
        }
        let text = enc
            .decode_without_bom_handling_and_without_replacement(body)
            .ok_or_else(|| enc_err(bom, format!("invalid {}", enc.name())))?;
        return Ok(Decoded {
            text: Cow::Owned(text.into_owned()),
            map: OffsetMapOwned {
                base: bom,
                encoding: Some(enc),
            },
        });
    }
    let label = declared_encoding(bytes);
    let enc = match &label {
        None => encoding_rs::UTF_8,
        // The label nearly every document has, without the table lookup.
        Some((label, _)) if label.eq_ignore_ascii_case("utf-8") => encoding_rs::UTF_8,
        Some((label, at)) => Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            enc_err(
                *at,
                format!("unknown encoding {label:?} in the XML declaration"),
            )
        })?,
    };
    if enc == encoding_rs::UTF_8 {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| enc_err(e.valid_up_to(), "invalid UTF-8".into()))?;
        return Ok(Decoded {
            text: Cow::Borrowed(text),
            map: OffsetMapOwned {
                base: 0,
                encoding: None,
            },
        });
    }
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        // We could read the declaration as ASCII, so the bytes are not UTF-16.
        return Err(enc_err(
            label.map_or(0, |(_, at)| at),
            "UTF-16 declared but the document is not UTF-16".into(),
        ));
    }
    match enc.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(Decoded {
            text: Cow::Owned(text.into_owned()),
            map: OffsetMapOwned {
                base: 0,
                encoding: Some(enc),
            },
        }),
        None => {
            // Find the first bad byte for the message: decode growing prefixes
            // would be quadratic, so decode once with replacement and look for
            // the first replacement character.
            let (text, _) = enc.decode_without_bom_handling(bytes);
            let at = text.find('\u{FFFD}').unwrap_or(0);
            let map = OffsetMap {
                base: 0,
                encoding: Some((enc, &text)),
            };
            Err(enc_err(map.source(at), format!("invalid {}", enc.name())))
        }
    }
}

/// The `encoding` of an XML declaration at the start of the bytes, with the
/// offset of its value. The declaration is ASCII in every encoding we accept
/// without a BOM, so it can be read before decoding.
fn declared_encoding(bytes: &[u8]) -> Option<(&str, usize)> {
    let start = bytes.iter().position(|b| !is_ws(*b))?;
    let rest = &bytes[start..];
    if !rest.starts_with(b"<?xml") {
        return None;
    }
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&rest[5..end]).ok()?;
    for attr in Attrs::new(decl, 0) {
        let (name, value, at) = attr.ok()?;
        if name == "encoding" {
            return Some((value.trim(), start + 5 + at));
        }
    }
    None
}
