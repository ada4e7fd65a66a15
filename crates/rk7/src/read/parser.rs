//! The parser's state and the tokens it reads (start tag, text, end tag, end
//! of input): what both tokenizers produce and the grammar consumes, so the
//! grammar does not depend on which tokenizer runs.

use std::fmt;

use super::Mode;
use super::decode::{OffsetMap, OffsetMapOwned};
use super::error::R;
use super::grammar::MAX_DEPTH;

/// A start tag: its name, and the text after the name (the attributes).
#[derive(Clone, Copy)]
pub(crate) struct Tag<'a> {
    pub(crate) name: &'a str,
    pub(super) attrs: &'a str,
    /// Offset of `attrs` in the decoded text.
    pub(super) attrs_at: usize,
    /// Offset of `<`.
    pub(crate) at: usize,
    /// `<X/>`: no children, no end tag.
    pub(super) empty: bool,
    /// On the fast path, which start tag this is (counting from 1), so that
    /// [`Parser::attrs`] can tell whether [`Parser::attr_buf`] still holds
    /// this tag's attributes; 0 on the general path.
    pub(super) seq: u32,
}

pub(crate) enum Tok<'a> {
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
pub(super) struct RawAttr<'a> {
    pub(super) name: &'a str,
    /// The value as written (entities not yet resolved).
    pub(super) raw: &'a str,
    /// Offset of the value in the decoded text.
    pub(super) at: usize,
    /// Whether the value has a `&` (a reference to resolve).
    pub(super) amp: bool,
}

/// Where the tokens come from.
pub(super) enum Src<'a> {
    /// Our own tokenizer; the offset of the next byte to look at.
    Fast(usize),
    /// quick-xml, and the bytes at the start of `doc` not given to it (see
    /// [`Src::general`]).
    General {
        reader: Box<quick_xml::Reader<&'a [u8]>>,
        skip: usize,
    },
}

pub(crate) struct Parser<'a> {
    pub(super) doc: &'a str,
    pub(super) src: Src<'a>,
    /// A token read ahead while collecting a text run.
    pub(super) peeked: Option<Tok<'a>>,
    /// Names of the open elements, for error paths (and, on the fast path,
    /// to check end tags).
    pub(super) path: Vec<&'a str>,
    pub(super) map: OffsetMap<'a>,
    /// Fast path: the attributes of the last start tag read.
    pub(super) attr_buf: Vec<RawAttr<'a>>,
    /// Fast path: the `seq` of the last start tag read.
    pub(super) tag_seq: u32,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(doc: &'a str, map: &OffsetMapOwned, mode: Mode) -> Self {
        let src = match mode {
            Mode::Fast => Src::Fast(0),
            Mode::General => Src::general(doc),
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

    /// The next token, from whichever tokenizer this parser uses.
    pub(crate) fn next(&mut self) -> R<Tok<'a>> {
        match self.src {
            Src::Fast(at) => self.next_fast(at),
            Src::General { .. } => self.next_general(),
        }
    }
}

impl fmt::Debug for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}{}>", self.name, self.attrs)
    }
}
