//! What a failed read reports ([`ReadError`]), and how an error found while
//! parsing is located in the input: offsets in the decoded text are mapped
//! back to input bytes and the stack of open elements becomes the path, so a
//! failure says what was wrong, in which attribute and at which byte.

use super::parser::Parser;
use super::syntax::AttrSyntax;

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
    /// An XML interface answer ([`crate::xmlapi`]) whose root element is
    /// not `<RK7QueryResult>`, or a body with no element at all.
    NotAnAnswer,
    /// An XML interface answer that says `Ok` but lacks the element its
    /// command must return (`<Order>` for GetOrder).
    MissingElement,
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
            Self::NotAnAnswer => "no <RK7QueryResult> root element",
            Self::MissingElement => "missing element",
        }
    }
}

/// A document that could not be read: what, where, and why.
///
/// `offset` is a byte offset into the bytes given to [`read`](fn@crate::read)
/// (for a windows-1251 document, into the original single-byte text). `path`
/// is the element path from the root, with `@attribute` when an attribute is
/// at fault: `a/Order/Session/Dish@price`.
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

/// An error found while parsing, already located in the input bytes. Boxed
/// because every typed attribute read returns a `Result`, and a small error
/// type keeps those results cheap to move on the happy path.
pub(crate) type Fail = Box<ReadError>;

pub(crate) type R<T> = Result<T, Fail>;

pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

impl Parser<'_> {
    pub(crate) fn fail(
        &self,
        kind: ReadErrorKind,
        offset: usize,
        detail: impl Into<String>,
    ) -> Fail {
        Box::new(ReadError {
            kind,
            offset: self.map.source(offset),
            path: self.path.join("/"),
            found: None,
            detail: detail.into(),
        })
    }

    pub(crate) fn fail_attr(
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

    pub(super) fn attr_syntax(&self, e: AttrSyntax) -> Fail {
        self.fail(ReadErrorKind::NotXml, e.at, e.what)
    }
}
