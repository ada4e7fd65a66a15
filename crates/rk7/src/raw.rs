//! The parsed event together with the bytes it came from.
//!
//! The model keeps everything it does not name, but not the exact form
//! (attribute quoting, indentation, the declared encoding). Storage and
//! relaying to other receivers want the bytes exactly as the cash server sent
//! them, so the event log keeps both.

use crate::{Event, ReadError};

/// An event and its original bytes; they always agree because the only way to
/// build one is [`RawEvent::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    bytes: Vec<u8>,
    event: Event,
}

impl RawEvent {
    /// Reads the bytes and keeps them.
    pub fn parse(bytes: impl Into<Vec<u8>>) -> Result<Self, ReadError> {
        let bytes = bytes.into();
        let event = crate::read(&bytes)?;
        Ok(Self { bytes, event })
    }

    /// The bytes exactly as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The parsed event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Takes both apart.
    pub fn into_parts(self) -> (Vec<u8>, Event) {
        (self.bytes, self.event)
    }
}
