//! Reads the bytes a cash server posted into a typed [`Event`].
//!
//! Strict about meaning, lenient about form. Real cash servers send XML that a
//! textbook parser refuses (`version="0"crc32="0"`, a windows-1251
//! declaration, a BOM), and refusing it would lose orders. What the hub cannot
//! afford is a wrong number, so every value the model types (money,
//! quantities, dates, flags, GUIDs) must parse exactly, and a failure says
//! what was wrong, in which attribute and at which byte.
//!
//! How it works: the bytes are first decoded to UTF-8 text ([`decode`],
//! validated once, borrowed when they already are UTF-8). A recursive-descent
//! parser with one function per model type then asks for tokens (start tag,
//! text, end tag) from one of two sources:
//!
//! * the fast path ([`Mode::Fast`]): our own tokenizer, one pass over the
//!   text that finds a tag, its name and its attributes together, and
//!   accepts only the plain form every cash server sends (no comments, no
//!   CDATA, no references in text, end tags exactly `</name>`). On anything
//!   else, and on any error at all, it gives up;
//! * the general path ([`Mode::General`]): quick-xml finds the boundaries of
//!   tags and text, and our attribute scanner ([`Attrs`]) splits the tag
//!   text. It handles every form the reader accepts and produces every error
//!   message, with the byte offset and element path.
//!
//! [`read`] tries the fast path and, when it gives up, reads again on the
//! general path. The fast path accepts a subset of what the general path
//! accepts and builds the same model from it (checked by unit tests over
//! mutated documents and, under `cfg(fuzzing)`, on every fuzz input), so the
//! result does not depend on which path produced it. Both paths tolerate
//! missing whitespace between attributes.
//!
//! Things the reader deliberately ignores, because they carry no meaning:
//! comments, processing instructions, a DOCTYPE, whitespace-only text between
//! elements, and anything after the end of the root element (it stays in the
//! raw bytes, see [`crate::RawEvent`]).

use std::borrow::Cow;
use std::fmt;

use encoding_rs::Encoding;
use quick_xml::events::Event as XmlEvent;

use crate::model::*;

/// Nesting deeper than this is refused. r_keeper documents are about eight
/// levels deep; the limit keeps recursion bounded on hostile input and keeps
/// the JSON export within serde_json's default recursion limit.
const MAX_DEPTH: usize = 40;

/// What kind of problem made a document unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// Not XML at all, or XML that is broken in the middle (mismatched end
    /// tag, an attribute without a value, text before the root).
    NotXml,
    /// The document ends before the root element is closed.
    Truncated,
    /// There is no `<a>` root element (empty body, or another root).
    NoRoot,
    /// An integer attribute (ids, codes, counters) is not an integer.
    BadNumber,
    /// A money attribute is not an integer number of kopecks.
    BadMoney,
    /// A quantity attribute is not an integer number of thousandths.
    BadQuantity,
    /// A flag is not `1` / `0`.
    BadBool,
    /// A date-time is not `YYYY-MM-DDTHH:MM:SS`.
    BadDateTime,
    /// A GUID attribute is not a GUID.
    BadGuid,
    /// The bytes are not valid in the declared (or default UTF-8) encoding,
    /// or the declared encoding is unknown.
    BadEncoding,
    /// A required attribute (`Situation`) is missing.
    MissingAttribute,
    /// Elements are nested deeper than any r_keeper document.
    TooDeep,
}

impl ReadErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::NotXml => "not XML",
            Self::Truncated => "truncated document",
            Self::NoRoot => "no <a> root element",
            Self::BadNumber => "bad number",
            Self::BadMoney => "bad money",
            Self::BadQuantity => "bad quantity",
            Self::BadBool => "bad flag",
            Self::BadDateTime => "bad date-time",
            Self::BadGuid => "bad GUID",
            Self::BadEncoding => "bad encoding",
            Self::MissingAttribute => "missing attribute",
            Self::TooDeep => "too deeply nested",
        }
    }
}

/// A document that could not be read: what, where, and why.
///
/// `offset` is a byte offset into the bytes given to [`read`] (for a
/// windows-1251 document, into the original single-byte text). `path` is the
/// element path from the root, with `@attribute` when an attribute is at
/// fault: `a/Order/Session/Dish@price`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ReadError {
    /// The kind of problem.
    pub kind: ReadErrorKind,
    /// Byte offset in the input.
    pub offset: usize,
    /// Element path (`a/Order@orderSum`); empty before the root element.
    pub path: String,
    /// The offending text, if any (shortened to 64 characters).
    pub found: Option<String>,
    /// What was expected, or what the XML parser said.
    pub detail: String,
}

impl ReadError {
    fn describe(&self) -> String {
        let mut s = String::from(self.kind.label());
        if let Some(found) = &self.found {
            s.push_str(&format!(" {found:?}"));
        }
        let path = if self.path.is_empty() {
            "the top level"
        } else {
            &self.path
        };
        s.push_str(&format!(" at {path} (byte {})", self.offset));
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

/// Reads one notify event.
///
/// Never panics; any input that is not a readable event gives a
/// [`ReadError`].
pub fn read(bytes: &[u8]) -> Result<Event, ReadError> {
    let decoded = decode(bytes)?;
    // The fast path gives up (an `Err`) on anything unusual and on every
    // error; the general path then reads the same text again, so errors,
    // their offsets and their wording come from one place only.
    //
    // The event is built in place (here, and its large parts inside it):
    // returning an `Event` of a few kilobytes up through every level would
    // copy it each time.
    let mut ev = Event::new(Situation::Unknown(0));
    let fast = Parser::new(&decoded.text, &decoded.map, Mode::Fast).document(&mut ev);
    #[cfg(fuzzing)]
    {
        // Under the fuzzer every input goes through both paths: whatever the
        // fast path accepts, the general path must accept as the same event.
        if fast.is_ok() {
            let mut general = Event::new(Situation::Unknown(0));
            let ok = Parser::new(&decoded.text, &decoded.map, Mode::General)
                .document(&mut general)
                .is_ok();
            assert!(ok && general == ev, "fast and general paths disagree");
        }
    }
    if fast.is_ok() {
        return Ok(ev);
    }
    let mut ev = Event::new(Situation::Unknown(0));
    Parser::new(&decoded.text, &decoded.map, Mode::General)
        .document(&mut ev)
        .map_err(|e| *e)?;
    Ok(ev)
}

// ---------------------------------------------------------------------------
// Decoding

/// Maps offsets in the decoded text back to offsets in the input bytes.
struct OffsetMap<'a> {
    /// Bytes skipped before the text (a BOM).
    base: usize,
    /// `Some` when the text was transcoded; `None` when it is the input.
    encoding: Option<(&'static Encoding, &'a str)>,
}

impl OffsetMap<'_> {
    fn source(&self, offset: usize) -> usize {
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

struct Decoded<'a> {
    text: Cow<'a, str>,
    map: OffsetMapOwned,
}

/// The owned half of [`OffsetMap`] (the text lives in [`Decoded`]).
struct OffsetMapOwned {
    base: usize,
    encoding: Option<&'static Encoding>,
}

/// Turns the input into UTF-8 text.
///
/// A BOM wins over the declaration (that is what XML parsers do). Without a
/// BOM the `encoding` pseudo-attribute of the declaration is honoured for
/// any label encoding_rs knows, windows-1251 being the one seen in practice.
/// UTF-8 input is borrowed, not copied.
fn decode(bytes: &[u8]) -> Result<Decoded<'_>, ReadError> {
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

// ---------------------------------------------------------------------------
// Errors while parsing (offsets in decoded text, path as a stack)

/// An error found while parsing, already located in the input bytes. Boxed
/// because every typed attribute read returns a `Result`, and a small error
/// type keeps those results cheap to move on the happy path.
type Fail = Box<ReadError>;

type R<T> = Result<T, Fail>;

fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Tokens

/// A start tag: its name, and the text after the name (the attributes).
#[derive(Clone, Copy)]
struct Tag<'a> {
    name: &'a str,
    attrs: &'a str,
    /// Offset of `attrs` in the decoded text.
    attrs_at: usize,
    /// Offset of `<`.
    at: usize,
    /// `<X/>`: no children, no end tag.
    empty: bool,
    /// On the fast path, which start tag this is (counting from 1), so that
    /// [`Parser::attrs`] can tell whether [`Parser::attr_buf`] still holds
    /// this tag's attributes; 0 on the general path.
    seq: u32,
}

enum Tok<'a> {
    Start(Tag<'a>),
    /// A run of text, entity references and CDATA between two tags, already
    /// known not to be whitespace only.
    Text(String, usize),
    End,
    Eof(usize),
}

/// One attribute as the fast tokenizer found it while looking for the end
/// of its tag, so that it is not scanned a second time.
#[derive(Clone, Copy)]
struct RawAttr<'a> {
    name: &'a str,
    /// The value as written (entities not yet resolved).
    raw: &'a str,
    /// Offset of the value in the decoded text.
    at: usize,
    /// Whether the value has a `&` (a reference to resolve).
    amp: bool,
}

/// Which tokenizer a [`Parser`] uses; see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Fast,
    General,
}

/// Where the tokens come from.
enum Src<'a> {
    /// Our own tokenizer; the offset of the next byte to look at.
    Fast(usize),
    /// quick-xml, and the bytes at the start of `doc` not given to it (see
    /// [`Parser::new`]).
    General {
        reader: Box<quick_xml::Reader<&'a [u8]>>,
        skip: usize,
    },
}

struct Parser<'a> {
    doc: &'a str,
    src: Src<'a>,
    /// A token read ahead while collecting a text run.
    peeked: Option<Tok<'a>>,
    /// Names of the open elements, for error paths (and, on the fast path,
    /// to check end tags).
    path: Vec<&'a str>,
    map: OffsetMap<'a>,
    /// Fast path: the attributes of the last start tag read.
    attr_buf: Vec<RawAttr<'a>>,
    /// Fast path: the `seq` of the last start tag read.
    tag_seq: u32,
}

/// What the fast path returns when it gives up. The content does not matter:
/// [`read`] discards it and reads again on the general path.
fn give_up() -> Fail {
    Box::new(ReadError {
        kind: ReadErrorKind::NotXml,
        offset: 0,
        path: String::new(),
        found: None,
        detail: String::new(),
    })
}

impl<'a> Parser<'a> {
    fn new(doc: &'a str, map: &OffsetMapOwned, mode: Mode) -> Self {
        let src = match mode {
            Mode::Fast => Src::Fast(0),
            Mode::General => {
                // quick-xml drops a leading U+FEFF (a byte order mark)
                // without counting it in its positions, so positions would no
                // longer be offsets into `doc`. `decode` has already removed
                // the real BOM; one left here is a second BOM (or a UTF-16
                // one decoded to U+FEFF), so skip it ourselves and add its
                // length back to every position. (The fast path gives up on
                // it: it is text before the root.)
                let skip = if doc.starts_with('\u{FEFF}') {
                    '\u{FEFF}'.len_utf8()
                } else {
                    0
                };
                let mut reader = quick_xml::Reader::from_str(&doc[skip..]);
                let cfg = reader.config_mut();
                cfg.trim_text(false);
                cfg.check_end_names = true;
                cfg.expand_empty_elements = false;
                cfg.allow_dangling_amp = true;
                Src::General {
                    reader: Box::new(reader),
                    skip,
                }
            }
        };
        Parser {
            doc,
            src,
            peeked: None,
            path: Vec::with_capacity(MAX_DEPTH),
            map: OffsetMap {
                base: map.base,
                encoding: map.encoding.map(|e| (e, doc)),
            },
            // Small enough for the allocator's per-thread cache; a tag with
            // more attributes grows it once.
            attr_buf: Vec::with_capacity(16),
            tag_seq: 0,
        }
    }

    fn fail(&self, kind: ReadErrorKind, offset: usize, detail: impl Into<String>) -> Fail {
        Box::new(ReadError {
            kind,
            offset: self.map.source(offset),
            path: self.path.join("/"),
            found: None,
            detail: detail.into(),
        })
    }

    fn fail_attr(
        &self,
        kind: ReadErrorKind,
        offset: usize,
        attr: &str,
        found: &str,
        detail: impl Into<String>,
    ) -> Fail {
        let mut f = self.fail(kind, offset, detail);
        f.path.push('@');
        f.path.push_str(attr);
        f.found = Some(shorten(found));
        f
    }

    /// The next token, from whichever tokenizer this parser uses.
    fn next(&mut self) -> R<Tok<'a>> {
        match self.src {
            Src::Fast(at) => self.next_fast(at),
            Src::General { .. } => self.next_general(),
        }
    }

    /// Position of the quick-xml reader in `doc`.
    fn pos(&self) -> usize {
        match &self.src {
            Src::General { reader, skip } => usize::try_from(reader.buffer_position())
                .map_or(usize::MAX, |p| p.saturating_add(*skip)),
            Src::Fast(at) => *at,
        }
    }

    /// The next quick-xml event, as a token, with text runs merged.
    fn next_general(&mut self) -> R<Tok<'a>> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        // Text run being collected: the range since the last comment (or
        // processing instruction), and what came before it, resolved. The
        // range must not span a comment, or the comment would become text.
        let mut run: Option<(usize, usize)> = None;
        let mut first: Option<usize> = None;
        let mut done = String::new();
        loop {
            let before = self.pos();
            let Src::General { reader, .. } = &mut self.src else {
                return Err(give_up());
            };
            let ev = match reader.read_event() {
                Ok(ev) => ev,
                Err(e) => return Err(self.xml_error(e)),
            };
            let after = self.pos();
            let tok = match ev {
                XmlEvent::Text(_) | XmlEvent::GeneralRef(_) | XmlEvent::CData(_) => {
                    run = Some((run.map_or(before, |r| r.0), after));
                    continue;
                }
                XmlEvent::Start(_) => Tok::Start(self.tag(before, after, false)?),
                XmlEvent::Empty(_) => Tok::Start(self.tag(before, after, true)?),
                XmlEvent::End(_) => Tok::End,
                XmlEvent::Eof => Tok::Eof(after),
                XmlEvent::Comment(_)
                | XmlEvent::PI(_)
                | XmlEvent::Decl(_)
                | XmlEvent::DocType(_) => {
                    if let Some((start, end)) = run.take() {
                        first.get_or_insert(start);
                        done.push_str(&unescape_text(&self.doc[start..end]));
                    }
                    continue;
                }
            };
            let mut text = done;
            if let Some((start, end)) = run {
                let raw = &self.doc[start..end];
                if !raw.bytes().all(is_ws) {
                    first.get_or_insert(start);
                    if text.is_empty() {
                        text = unescape_text(raw);
                    } else {
                        text.push_str(&unescape_text(raw));
                    }
                }
            }
            if let Some(start) = first
                && !text.bytes().all(is_ws)
            {
                self.peeked = Some(tok);
                return Ok(Tok::Text(text, start));
            }
            return Ok(tok);
        }
    }

    fn xml_error(&self, e: quick_xml::Error) -> Fail {
        use quick_xml::errors::IllFormedError as I;
        let at = match &self.src {
            Src::General { reader, skip } => usize::try_from(reader.error_position())
                .map_or(usize::MAX, |p| p.saturating_add(*skip)),
            Src::Fast(at) => *at,
        };
        let kind = match &e {
            quick_xml::Error::Syntax(_) => ReadErrorKind::Truncated,
            quick_xml::Error::IllFormed(I::MissingEndTag(_)) => ReadErrorKind::Truncated,
            _ => ReadErrorKind::NotXml,
        };
        let at = if kind == ReadErrorKind::Truncated {
            at.min(self.doc.len())
        } else {
            at
        };
        self.fail(kind, at, e.to_string())
    }

    fn tag(&self, before: usize, after: usize, empty: bool) -> R<Tag<'a>> {
        // `<` + content + (`/`) + `>`; quick-xml guarantees the brackets.
        let end = after.saturating_sub(if empty { 2 } else { 1 });
        let content = self.doc.get(before + 1..end).unwrap_or("");
        let name_len = content.bytes().position(is_ws).unwrap_or(content.len());
        let name = &content[..name_len];
        if !valid_name(name) {
            return Err(self.fail(
                ReadErrorKind::NotXml,
                before,
                format!("{:?} is not an element name", shorten(name)),
            ));
        }
        Ok(Tag {
            name,
            attrs: &content[name_len..],
            attrs_at: before + 1 + name_len,
            at: before,
            empty,
            seq: 0,
        })
    }

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
    fn next_fast(&mut self, mut i: usize) -> R<Tok<'a>> {
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
    /// [`Attrs`] splitting what is between: between attributes there can be
    /// only whitespace and name bytes, none of which is a quote or `>`, so
    /// the first unquoted `>` is where this scan stops, and a `/` is
    /// accepted only right before it.
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

    fn enter(&mut self, tag: &Tag<'a>) -> R<()> {
        if self.path.len() >= MAX_DEPTH {
            return Err(self.fail(
                ReadErrorKind::TooDeep,
                tag.at,
                format!("more than {MAX_DEPTH} levels"),
            ));
        }
        self.path.push(tag.name);
        Ok(())
    }

    fn leave(&mut self) {
        self.path.pop();
    }

    /// The whole document: prolog, the root, and nothing after it.
    fn document(&mut self, ev: &mut Event) -> R<()> {
        match self.next()? {
            Tok::Start(tag) if tag.name == "a" => self.event(tag, ev),
            Tok::Start(tag) => Err(self.fail(
                ReadErrorKind::NoRoot,
                tag.at,
                format!("the root element is <{}>, expected <a>", shorten(tag.name)),
            )),
            Tok::Text(t, at) => {
                let mut f = self.fail(ReadErrorKind::NotXml, at, "text outside of any element");
                f.found = Some(shorten(&t));
                Err(f)
            }
            Tok::End => Err(self.fail(ReadErrorKind::NotXml, 0, "end tag without a start tag")),
            Tok::Eof(at) => {
                Err(self.fail(ReadErrorKind::NoRoot, at, "the document has no element"))
            }
        }
    }

    /// Reads the children of `tag` until its end tag, giving each child
    /// start tag to `on_child`; text goes to `text`.
    fn children(
        &mut self,
        tag: &Tag<'a>,
        text: &mut String,
        mut on_child: impl FnMut(&mut Self, Tag<'a>) -> R<()>,
    ) -> R<()> {
        if tag.empty {
            return Ok(());
        }
        loop {
            match self.next()? {
                Tok::Start(child) => {
                    self.enter(&child)?;
                    on_child(self, child)?;
                    self.leave();
                }
                Tok::Text(t, _) => text.push_str(&t),
                Tok::End => return Ok(()),
                Tok::Eof(at) => {
                    return Err(self.fail(
                        ReadErrorKind::Truncated,
                        at,
                        format!("<{}> is not closed", tag.name),
                    ));
                }
            }
        }
    }

    /// An element the model does not name, kept whole.
    fn generic(&mut self, tag: Tag<'a>) -> R<XmlElement> {
        let mut el = XmlElement {
            name: tag.name.to_owned(),
            ..XmlElement::default()
        };
        for a in Attrs::new(tag.attrs, tag.attrs_at) {
            let (name, value, _) = a.map_err(|e| self.attr_syntax(e))?;
            el.attrs.push((name.to_owned(), unescape_attr(value)));
        }
        let mut children = Vec::new();
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            children.push(p.generic(child)?);
            Ok(())
        })?;
        el.children = children;
        el.text = text;
        Ok(el)
    }

    fn attr_syntax(&self, e: AttrSyntax) -> Fail {
        self.fail(ReadErrorKind::NotXml, e.at, e.what)
    }

    /// Iterates over the attributes of `tag`, giving each to `on` with a
    /// value reader bound to this attribute's location.
    fn attrs(&self, tag: &Tag<'a>, mut on: impl FnMut(&str, Val<'_, 'a>) -> R<()>) -> R<()> {
        if tag.seq != 0 && tag.seq == self.tag_seq {
            // Already split by the fast tokenizer.
            for a in &self.attr_buf {
                on(
                    a.name,
                    Val {
                        p: self,
                        name: a.name,
                        raw: a.raw,
                        at: a.at,
                        amp: a.amp,
                    },
                )?;
            }
            return Ok(());
        }
        for a in Attrs::new(tag.attrs, tag.attrs_at) {
            let (name, raw, at) = a.map_err(|e| self.attr_syntax(e))?;
            on(
                name,
                Val {
                    p: self,
                    name,
                    raw,
                    at,
                    amp: has_amp(raw),
                },
            )?;
        }
        Ok(())
    }

    // -- the model, one function per type ----------------------------------

    /// Fills `ev`, which the caller passes as `Event::new(Unknown(0))`.
    fn event(&mut self, tag: Tag<'a>, ev: &mut Event) -> R<()> {
        self.enter(&tag)?;
        let mut situation = None;
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "RestCode" if ev.rest_code.is_none() => {
                    ev.rest_code = Some(RestCode(v.string()));
                }
                "DateTime" if ev.date_time.is_none() => ev.date_time = v.datetime()?,
                "Situation" if situation.is_none() => {
                    situation = Some(Situation::from_code(v.required_i64()?));
                }
                "seqnumber" if ev.seqnumber.is_none() => ev.seqnumber = v.u64()?,
                "guid" if ev.guid.is_none() => ev.guid = v.guid()?,
                "name" if ev.name.is_none() => ev.name = Some(v.string()),
                "ShiftNum" if ev.shift_num.is_none() => ev.shift_num = v.i64()?,
                "ShiftDate" if ev.shift_date.is_none() => ev.shift_date = v.datetime()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        ev.situation = match situation {
            Some(s) => s,
            None => {
                let mut f = self.fail(
                    ReadErrorKind::MissingAttribute,
                    tag.at,
                    "every event must say its Situation",
                );
                f.path.push_str("@Situation");
                return Err(f);
            }
        };
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Station" if ev.station.is_none() => {
                    p.station(child, ev.station.insert(Default::default()))?
                }
                "Server" if ev.server.is_none() => ev.server = Some(p.server(child)?),
                "Waiter" if ev.waiter.is_none() => {
                    p.person(child, ev.waiter.insert(Default::default()))?
                }
                "Order" if ev.order.is_none() => {
                    p.order(child, ev.order.insert(Order::default()))?;
                }
                "Session" => p.session(child, push_default(&mut ev.sessions))?,
                "ChangeLog" if ev.change_log.is_none() => {
                    ev.change_log = Some(p.change_log(child)?);
                }
                "Item" => ev.items.push(p.item(child)?),
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        ev.extra = extra;
        self.leave();
        Ok(())
    }

    /// Children every element may have: only unknown ones.
    fn rest(&mut self, tag: &Tag<'a>, extra: &mut Extra) -> R<()> {
        let mut text = String::new();
        self.children(tag, &mut text, |p, child| {
            extra.elements.push(p.generic(child)?);
            Ok(())
        })?;
        extra.text = text;
        Ok(())
    }

    fn station(&mut self, tag: Tag<'a>, s: &mut Station) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if s.id.is_none() => s.id = v.i64()?,
                "code" if s.code.is_none() => s.code = v.i64()?,
                "name" if s.name.is_none() => s.name = Some(v.string()),
                "NetName" if s.net_name.is_none() => s.net_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        s.extra = extra;
        Ok(())
    }

    fn server(&mut self, tag: Tag<'a>) -> R<Server> {
        let mut s = Station::default();
        self.station(tag, &mut s)?;
        Ok(Server {
            id: s.id,
            code: s.code,
            name: s.name,
            net_name: s.net_name,
            extra: s.extra,
        })
    }

    fn reference(&mut self, tag: Tag<'a>, r: &mut Ref) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if r.id.is_none() => r.id = v.i64()?,
                "code" if r.code.is_none() => r.code = v.i64()?,
                "name" if r.name.is_none() => r.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        r.extra = extra;
        Ok(())
    }

    fn person(&mut self, tag: Tag<'a>, r: &mut Person) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if r.id.is_none() => r.id = v.i64()?,
                "code" if r.code.is_none() => r.code = v.i64()?,
                "name" if r.name.is_none() => r.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Role" if r.role.is_none() => {
                    p.reference(child, r.role.insert(Default::default()))?
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        r.extra = extra;
        Ok(())
    }

    fn item(&mut self, tag: Tag<'a>) -> R<Item> {
        let mut it = Item::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "ClassName" if it.class_name.is_none() => it.class_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        it.extra = extra;
        Ok(it)
    }

    /// `<KdsState>ready</KdsState>` as an element: only the plain form (text,
    /// nothing else) is taken as the state; anything richer is kept as an
    /// unknown element rather than guessed at.
    fn kds_element(
        &mut self,
        tag: Tag<'a>,
        slot: &mut Option<KdsState>,
        extra: &mut Extra,
    ) -> R<()> {
        let el = self.generic(tag)?;
        if slot.is_none() && el.attrs.is_empty() && el.children.is_empty() {
            *slot = Some(KdsState::parse(el.text.trim()));
        } else {
            extra.elements.push(el);
        }
        Ok(())
    }

    fn order(&mut self, tag: Tag<'a>, o: &mut Order) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "visit" if o.visit.is_none() => o.visit = v.i64()?,
                "orderIdent" if o.order_ident.is_none() => o.order_ident = v.i64()?,
                "guid" if o.guid.is_none() => o.guid = v.guid()?,
                "url" if o.url.is_none() => o.url = Some(v.string()),
                "orderName" if o.order_name.is_none() => o.order_name = Some(v.string()),
                "version" if o.version.is_none() => o.version = v.i64()?,
                "crc32" if o.crc32.is_none() => o.crc32 = v.i64()?,
                "orderSum" if o.order_sum.is_none() => o.order_sum = v.money()?,
                "discountSum" if o.discount_sum.is_none() => o.discount_sum = v.money()?,
                "unpaidSum" if o.unpaid_sum.is_none() => o.unpaid_sum = v.money()?,
                "prepaySum" if o.prepay_sum.is_none() => o.prepay_sum = v.money()?,
                "promisedSum" if o.promised_sum.is_none() => o.promised_sum = v.money()?,
                "totalPieces" if o.total_pieces.is_none() => o.total_pieces = v.i64()?,
                "cookMins" if o.cook_mins.is_none() => o.cook_mins = v.i64()?,
                "paid" if o.paid.is_none() => o.paid = v.bool()?,
                "finished" if o.finished.is_none() => o.finished = v.bool()?,
                "deleted" if o.deleted.is_none() => o.deleted = v.bool()?,
                "locked" if o.locked.is_none() => o.locked = v.bool()?,
                "purchase" if o.purchase.is_none() => o.purchase = v.bool()?,
                "openTime" if o.open_time.is_none() => o.open_time = v.datetime()?,
                "seqNumber" if o.seq_number.is_none() => o.seq_number = v.i64()?,
                "persistentComment" if o.persistent_comment.is_none() => {
                    o.persistent_comment = Some(v.string());
                }
                "nonPersistentComment" if o.non_persistent_comment.is_none() => {
                    o.non_persistent_comment = Some(v.string());
                }
                "kdsstate" | "KdsState" if o.kds_state.is_none() => o.kds_state = Some(v.kds()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Creator" if o.creator.is_none() => {
                    p.person(child, o.creator.insert(Default::default()))?
                }
                "Waiter" if o.waiter.is_none() => {
                    p.person(child, o.waiter.insert(Default::default()))?
                }
                "Station" if o.station.is_none() => {
                    p.station(child, o.station.insert(Default::default()))?
                }
                "OrderCategory" if o.order_category.is_none() => {
                    p.reference(child, o.order_category.insert(Default::default()))?;
                }
                "OrderType" if o.order_type.is_none() => {
                    p.reference(child, o.order_type.insert(Default::default()))?
                }
                "Table" if o.table.is_none() => {
                    p.reference(child, o.table.insert(Default::default()))?
                }
                "GuestType" if o.guest_type.is_none() => {
                    p.reference(child, o.guest_type.insert(Default::default()))?
                }
                "Guests" if o.guests.is_none() => o.guests = Some(p.guests(child)?),
                "ExternalProps"
                    if o.external_props.is_empty() && o.external_props_extra.is_empty() =>
                {
                    p.external_props(child, o)?;
                }
                "SourceOrder" if o.source_order.is_none() => {
                    o.source_order = Some(p.source_order(child)?);
                }
                "Session" => p.session(child, push_default(&mut o.sessions))?,
                "kdsstate" | "KdsState" => p.kds_element(child, &mut o.kds_state, &mut extra)?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        o.extra = extra;
        Ok(())
    }

    fn guests(&mut self, tag: Tag<'a>) -> R<Guests> {
        let mut g = Guests::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "count" if g.count.is_none() => g.count = v.i64()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Guest" => {
                    let mut guest = Guest::default();
                    let mut gx = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "guestLabel" if guest.guest_label.is_none() => {
                                guest.guest_label = Some(v.string());
                            }
                            "cardCode" if guest.card_code.is_none() => {
                                guest.card_code = Some(v.string());
                            }
                            _ => v.keep(&mut gx),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut gx)?;
                    guest.extra = gx;
                    g.guests.push(guest);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        g.extra = extra;
        Ok(g)
    }

    fn external_props(&mut self, tag: Tag<'a>, o: &mut Order) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |_, v| {
            v.keep(&mut extra);
            Ok(())
        })?;
        let mut props = Vec::new();
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Prop" => {
                    let mut prop = Prop::default();
                    let mut px = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "name" if prop.name.is_none() => prop.name = Some(v.string()),
                            "value" if prop.value.is_none() => prop.value = Some(v.string()),
                            _ => v.keep(&mut px),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut px)?;
                    prop.extra = px;
                    props.push(prop);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        if props.is_empty() && extra.is_empty() {
            // An empty `<ExternalProps/>` says nothing; the model has no
            // place for "present but empty", and the writer leaves it out.
            return Ok(());
        }
        o.external_props = props;
        o.external_props_extra = extra;
        Ok(())
    }

    fn source_order(&mut self, tag: Tag<'a>) -> R<SourceOrder> {
        let mut s = SourceOrder::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "visit" if s.visit.is_none() => s.visit = v.i64()?,
                "orderIdent" if s.order_ident.is_none() => s.order_ident = v.i64()?,
                "guid" if s.guid.is_none() => s.guid = v.guid()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        s.extra = extra;
        Ok(s)
    }

    fn session(&mut self, tag: Tag<'a>, s: &mut Session) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "uni" if s.uni.is_none() => s.uni = v.i64()?,
                "line_guid" if s.line_guid.is_none() => s.line_guid = v.guid()?,
                "state" if s.state.is_none() => s.state = v.i64()?.map(LineState::from_code),
                "sessionID" if s.session_id.is_none() => s.session_id = v.i64()?,
                "isDraft" if s.is_draft.is_none() => s.is_draft = v.bool()?,
                "remindTime" if s.remind_time.is_none() => s.remind_time = v.datetime()?,
                "startService" if s.start_service.is_none() => s.start_service = v.datetime()?,
                "printed" if s.printed.is_none() => s.printed = v.bool()?,
                "cookMins" if s.cook_mins.is_none() => s.cook_mins = v.i64()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => p.dish(child, push_default(&mut s.dishes))?,
                "Station" if s.station.is_none() => {
                    p.station(child, s.station.insert(Default::default()))?
                }
                "Author" if s.author.is_none() => {
                    p.person(child, s.author.insert(Default::default()))?
                }
                "Creator" if s.creator.is_none() => {
                    p.person(child, s.creator.insert(Default::default()))?
                }
                "Course" if s.course.is_none() => {
                    p.reference(child, s.course.insert(Default::default()))?
                }
                "PriceScale" if s.price_scale.is_none() => {
                    p.reference(child, s.price_scale.insert(Default::default()))?;
                }
                "TradeGroup" if s.trade_group.is_none() => {
                    p.reference(child, s.trade_group.insert(Default::default()))?;
                }
                "Combo" => p.combo(child, push_default(&mut s.combos))?,
                "Discount" => p.discount(child, push_default(&mut s.discounts))?,
                "Prepay" => p.pay(child, push_default(&mut s.prepays))?,
                "Pay" => p.pay(child, push_default(&mut s.pays))?,
                "PrintCheck" => p.print_check(child, push_default(&mut s.print_checks))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        s.extra = extra;
        Ok(())
    }

    fn dish(&mut self, tag: Tag<'a>, d: &mut Dish) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if d.id.is_none() => d.id = v.i64()?,
                "code" if d.code.is_none() => d.code = v.i64()?,
                "name" if d.name.is_none() => d.name = Some(v.string()),
                "uni" if d.uni.is_none() => d.uni = v.i64()?,
                "line_guid" if d.line_guid.is_none() => d.line_guid = v.guid()?,
                "state" if d.state.is_none() => d.state = v.i64()?.map(LineState::from_code),
                "price" if d.price.is_none() => d.price = v.money()?,
                "amount" if d.amount.is_none() => d.amount = v.money()?,
                "quantity" if d.quantity.is_none() => d.quantity = v.quantity()?,
                "srcQuantity" if d.src_quantity.is_none() => d.src_quantity = v.quantity()?,
                "paidAmount" if d.paid_amount.is_none() => d.paid_amount = v.money()?,
                "seat" if d.seat.is_none() => d.seat = v.i64()?,
                "kdsstate" | "KdsState" if d.kds_state.is_none() => d.kds_state = Some(v.kds()),
                "new" if d.new.is_none() => d.new = v.bool()?,
                "SourceGUIDString" if d.source_guid_string.is_none() => {
                    d.source_guid_string = Some(v.string());
                }
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Modi" => p.modi(child, push_default(&mut d.modis))?,
                "Discount" => p.discount(child, push_default(&mut d.discounts))?,
                "Void" => p.void(child, push_default(&mut d.voids))?,
                "Consum" => p.consum(child, push_default(&mut d.consums))?,
                "kdsstate" | "KdsState" => p.kds_element(child, &mut d.kds_state, &mut extra)?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        d.extra = extra;
        Ok(())
    }

    fn modi(&mut self, tag: Tag<'a>, m: &mut Modi) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if m.id.is_none() => m.id = v.i64()?,
                "code" if m.code.is_none() => m.code = v.i64()?,
                "name" if m.name.is_none() => m.name = Some(v.string()),
                "uni" if m.uni.is_none() => m.uni = v.i64()?,
                "count" if m.count.is_none() => m.count = v.i64()?,
                "price" if m.price.is_none() => m.price = v.money()?,
                "amount" if m.amount.is_none() => m.amount = v.money()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        m.extra = extra;
        Ok(())
    }

    fn consum(&mut self, tag: Tag<'a>, c: &mut Consum) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                "quantity" if c.quantity.is_none() => c.quantity = v.quantity()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        c.extra = extra;
        Ok(())
    }

    fn void(&mut self, tag: Tag<'a>, x: &mut Void) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if x.id.is_none() => x.id = v.i64()?,
                "code" if x.code.is_none() => x.code = v.i64()?,
                "name" if x.name.is_none() => x.name = Some(v.string()),
                "dateTime" if x.date_time.is_none() => x.date_time = v.datetime()?,
                "quantity" if x.quantity.is_none() => x.quantity = v.quantity()?,
                "amount" if x.amount.is_none() => x.amount = v.money()?,
                "openName" if x.open_name.is_none() => x.open_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Author" if x.author.is_none() => {
                    p.person(child, x.author.insert(Default::default()))?
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        x.extra = extra;
        Ok(())
    }

    fn combo(&mut self, tag: Tag<'a>, c: &mut Combo) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                "uni" if c.uni.is_none() => c.uni = v.i64()?,
                "line_guid" if c.line_guid.is_none() => c.line_guid = v.guid()?,
                "state" if c.state.is_none() => c.state = v.i64()?.map(LineState::from_code),
                "price" if c.price.is_none() => c.price = v.money()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                "quantity" if c.quantity.is_none() => c.quantity = v.quantity()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Component" => p.component(child, push_default(&mut c.components))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn component(&mut self, tag: Tag<'a>, c: &mut Component) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => p.dish(child, push_default(&mut c.dishes))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn discount(&mut self, tag: Tag<'a>, d: &mut Discount) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if d.id.is_none() => d.id = v.i64()?,
                "code" if d.code.is_none() => d.code = v.i64()?,
                "name" if d.name.is_none() => d.name = Some(v.string()),
                "amount" if d.amount.is_none() => d.amount = v.money()?,
                "maxamount" if d.max_amount.is_none() => d.max_amount = v.money()?,
                "cardCode" if d.card_code.is_none() => d.card_code = Some(v.string()),
                "deleted" if d.deleted.is_none() => d.deleted = v.bool()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        d.extra = extra;
        Ok(())
    }

    fn pay(&mut self, tag: Tag<'a>, x: &mut Pay) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if x.id.is_none() => x.id = v.i64()?,
                "code" if x.code.is_none() => x.code = v.i64()?,
                "name" if x.name.is_none() => x.name = Some(v.string()),
                "amount" if x.amount.is_none() => x.amount = v.money()?,
                "basicSum" if x.basic_sum.is_none() => x.basic_sum = v.money()?,
                "cardCode" if x.card_code.is_none() => x.card_code = Some(v.string()),
                "TransactionStatus" if x.transaction_status.is_none() => {
                    x.transaction_status = v.i64()?.map(TransactionStatus::from_code);
                }
                "deleted" if x.deleted.is_none() => x.deleted = v.bool()?,
                "owner" if x.owner.is_none() => x.owner = Some(v.string()),
                "authcode" if x.auth_code.is_none() => x.auth_code = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        x.extra = extra;
        Ok(())
    }

    fn print_check(&mut self, tag: Tag<'a>, c: &mut PrintCheck) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "CheckNum" if c.check_num.is_none() => c.check_num = v.i64()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                "unpaidSum" if c.unpaid_sum.is_none() => c.unpaid_sum = v.money()?,
                "GlobalFiscalID" if c.global_fiscal_id.is_none() => {
                    c.global_fiscal_id = Some(v.string());
                }
                "state" if c.state.is_none() => c.state = v.i64()?.map(LineState::from_code),
                "deleted" if c.deleted.is_none() => c.deleted = v.bool()?,
                "bill" if c.bill.is_none() => c.bill = v.bool()?,
                "printTime" if c.print_time.is_none() => c.print_time = v.datetime()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Author" if c.author.is_none() => {
                    p.person(child, c.author.insert(Default::default()))?
                }
                "Reason" if c.reason.is_none() => {
                    p.reference(child, c.reason.insert(Default::default()))?
                }
                "DeleteManager" if c.delete_manager.is_none() => {
                    p.person(child, c.delete_manager.insert(Default::default()))?;
                }
                "Pay" => p.pay(child, push_default(&mut c.pays))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn change_log(&mut self, tag: Tag<'a>) -> R<ChangeLog> {
        let mut c = ChangeLog::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |_, v| {
            v.keep(&mut extra);
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => {
                    let mut d = ChangeLogDish::default();
                    let mut dx = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "id" if d.id.is_none() => d.id = v.i64()?,
                            "code" if d.code.is_none() => d.code = v.i64()?,
                            "name" if d.name.is_none() => d.name = Some(v.string()),
                            "uni" if d.uni.is_none() => d.uni = v.i64()?,
                            "oldvalue" if d.old_value.is_none() => d.old_value = v.quantity()?,
                            "newvalue" if d.new_value.is_none() => d.new_value = v.quantity()?,
                            "new" if d.new.is_none() => d.new = v.bool()?,
                            _ => v.keep(&mut dx),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut dx)?;
                    d.extra = dx;
                    c.dishes.push(d);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(c)
    }
}

/// Appends a default `T` and returns it, so that a large model value is
/// filled where it will stay instead of being built and then moved in.
fn push_default<T: Default>(v: &mut Vec<T>) -> &mut T {
    v.push(T::default());
    let last = v.len() - 1;
    &mut v[last]
}

// ---------------------------------------------------------------------------
// Attribute values

/// One attribute value, with what is needed to report an error about it.
struct Val<'p, 'a> {
    p: &'p Parser<'a>,
    name: &'p str,
    /// The value as written (entities not yet resolved).
    raw: &'p str,
    /// Offset of the value in the decoded text.
    at: usize,
    /// Whether `raw` has a `&` (known from the scan, so not looked for again).
    amp: bool,
}

impl Val<'_, '_> {
    fn string(&self) -> String {
        if self.amp {
            unescape_attr(self.raw)
        } else {
            self.raw.to_owned()
        }
    }

    fn keep(&self, extra: &mut Extra) {
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

    fn i64(&self) -> R<Option<i64>> {
        self.int(ReadErrorKind::BadNumber, "expected an integer")
    }

    fn required_i64(&self) -> R<i64> {
        match self.typed() {
            Some(t) => parse_i64(&t)
                .ok_or_else(|| self.err(ReadErrorKind::BadNumber, "expected an integer")),
            None => Err(self.err(ReadErrorKind::BadNumber, "expected an integer")),
        }
    }

    fn u64(&self) -> R<Option<u64>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => parse_u64(&t).map(Some).ok_or_else(|| {
                self.err(ReadErrorKind::BadNumber, "expected a non-negative integer")
            }),
        }
    }

    fn money(&self) -> R<Option<Kopecks>> {
        Ok(self
            .int(
                ReadErrorKind::BadMoney,
                "expected an integer number of kopecks",
            )?
            .map(Kopecks))
    }

    fn quantity(&self) -> R<Option<Thousandths>> {
        Ok(self
            .int(
                ReadErrorKind::BadQuantity,
                "expected an integer number of thousandths",
            )?
            .map(Thousandths))
    }

    fn bool(&self) -> R<Option<bool>> {
        match self.typed().as_deref() {
            None => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.err(ReadErrorKind::BadBool, "expected 1 or 0")),
        }
    }

    fn datetime(&self) -> R<Option<LocalDateTime>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => LocalDateTime::parse(&t)
                .map(Some)
                .map_err(|e| self.err(ReadErrorKind::BadDateTime, &e.to_string())),
        }
    }

    fn guid(&self) -> R<Option<Guid>> {
        match self.typed() {
            None => Ok(None),
            Some(t) => Guid::parse(&t)
                .map(Some)
                .map_err(|e| self.err(ReadErrorKind::BadGuid, &e.to_string())),
        }
    }

    fn kds(&self) -> KdsState {
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
fn eight_digits(w: u64, len: usize) -> Option<i64> {
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

fn parse_i64(s: &str) -> Option<i64> {
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

// ---------------------------------------------------------------------------
// Attribute scanner and text helpers

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
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

/// Names we accept for elements and attributes: anything without markup
/// characters or whitespace. Broader than the XML Name production on
/// purpose (lenient about form), but narrow enough that a name written back
/// reads as the same name.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| NAME_BYTE[usize::from(b)])
}

/// Which bytes [`valid_name`] accepts, as a table: names are scanned for
/// every attribute of every element, so this is on the hot path.
static NAME_BYTE: [bool; 256] = {
    let mut t = [true; 256];
    let bad = b" \t\n\r\"'<>&/=!?";
    let mut i = 0;
    while i < bad.len() {
        t[bad[i] as usize] = false;
        i += 1;
    }
    t
};

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

struct AttrSyntax {
    at: usize,
    what: String,
}

/// Splits the attribute part of a start tag into `(name, raw value, offset
/// of value)`. Unlike a strict XML parser it does not require whitespace
/// between one attribute's closing quote and the next name, which is the
/// form r_keeper itself sends (`version="0"crc32="0"`).
struct Attrs<'a> {
    s: &'a str,
    i: usize,
    base: usize,
}

impl<'a> Attrs<'a> {
    fn new(s: &'a str, base: usize) -> Self {
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
fn has_amp(s: &str) -> bool {
    s.bytes().any(|b| b == b'&')
}

/// Resolves entity and character references in an attribute value.
fn unescape_attr(raw: &str) -> String {
    if !has_amp(raw) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    unescape_into(raw, &mut out);
    out
}

/// Resolves references in a text run; CDATA sections are copied as they are.
fn unescape_text(raw: &str) -> String {
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

impl fmt::Debug for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}{}>", self.name, self.attrs)
    }
}

#[cfg(test)]
mod tests;
