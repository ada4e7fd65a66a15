//! The general tokenizer: quick-xml finds the boundaries of tags and text.
//! It takes every form the reader accepts and produces every error message,
//! so errors, their offsets and their wording come from one place only.

use quick_xml::events::Event as XmlEvent;

use super::error::{Fail, R, ReadErrorKind, shorten};
use super::fast::give_up;
use super::parser::{Parser, Src, Tag, Tok};
use super::syntax::{is_ws, unescape_text, valid_name};

impl<'a> Src<'a> {
    /// quick-xml over `doc`: text not trimmed, `<X/>` not expanded, end tag
    /// names checked, a bare `&` allowed.
    pub(super) fn general(doc: &'a str) -> Self {
        // quick-xml drops a leading U+FEFF (a byte order mark) without
        // counting it in its positions, so positions would no longer be
        // offsets into `doc`. `decode` has already removed the real BOM; one
        // left here is a second BOM (or a UTF-16 one decoded to U+FEFF), so
        // skip it ourselves and add its length back to every position. (The
        // fast path gives up on it: it is text before the root.)
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
}

impl<'a> Parser<'a> {
    /// Position of the quick-xml reader in `doc`.
    fn pos(&self) -> usize {
        match &self.src {
            Src::General { reader, skip } => usize::try_from(reader.buffer_position())
                .map_or(usize::MAX, |p| p.saturating_add(*skip)),
            Src::Fast(at) => *at,
        }
    }

    /// The next quick-xml event, as a token, with text runs merged.
    pub(super) fn next_general(&mut self) -> R<Tok<'a>> {
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
}
