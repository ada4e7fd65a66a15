//! Reads the bytes a cash server posted into a typed [`Event`].
//!
//! Strict about meaning, lenient about form. Real cash servers send XML that a
//! textbook parser refuses (`version="0"crc32="0"`, a windows-1251
//! declaration, a BOM), and refusing it would lose orders. What the hub cannot
//! afford is a wrong number, so every value the model types (money,
//! quantities, dates, flags, GUIDs) must parse exactly, and a failure says
//! what was wrong, in which attribute and at which byte.
//!
//! How it works: the bytes are first decoded to UTF-8 text
//! ([`decode`](fn@decode), validated once, borrowed when they already are
//! UTF-8). A recursive-descent parser with one function per model type then
//! asks for tokens (start tag, text, end tag) from one of two sources:
//!
//! * the fast path ([`Mode::Fast`]): our own tokenizer, one pass over the
//!   text that finds a tag, its name and its attributes together, and
//!   accepts only the plain form every cash server sends (no comments, no
//!   CDATA, no references in text, end tags exactly `</name>`). On anything
//!   else, and on any error at all, it gives up;
//! * the general path ([`Mode::General`]): quick-xml finds the boundaries of
//!   tags and text, and our attribute scanner ([`Attrs`](syntax::Attrs))
//!   splits the tag text. It handles every form the reader accepts and
//!   produces every error message, with the byte offset and element path.
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
//!
//! One file per part: [`decode`](mod@decode) (bytes to text), [`parser`]
//! (the parser's state and its tokens), [`fast`] and [`general`] (the two
//! tokenizers), [`syntax`] (whitespace, names, attributes and references,
//! shared by both), [`grammar`] (one function per model type), [`value`]
//! (typed attribute values) and [`error`] (what a failure reports).
//!
//! The XML interface's answer reader ([`crate::xmlapi`]) reads with the same
//! parser on the general path: the decoder, the tokens, the typed attribute
//! values and the element functions it needs (`<Order>` above all) are
//! `pub(crate)` and re-exported here, so a GetOrder answer and a notify event
//! give the same [`Order`] and fail with the same kind of located error.

mod decode;
mod error;
mod fast;
mod general;
mod grammar;
mod parser;
mod syntax;
mod value;

use crate::model::*;
pub(crate) use decode::decode;
pub(crate) use error::{R, shorten};
pub use error::{ReadError, ReadErrorKind};
pub(crate) use parser::{Parser, Tag, Tok};
pub(crate) use value::Val;

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

/// Which tokenizer a [`Parser`] uses; see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Fast,
    General,
}

#[cfg(test)]
mod tests;
