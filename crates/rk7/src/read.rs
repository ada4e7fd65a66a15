//! Reader stub (being written).
use crate::Event;
/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErrorKind {
    NotXml,
}
/// A read error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} at {path} (byte {offset})")]
pub struct ReadError {
    pub kind: ReadErrorKind,
    pub offset: usize,
    pub path: String,
}
/// Reads one event.
pub fn read(_bytes: &[u8]) -> Result<Event, ReadError> {
    Err(ReadError {
        kind: ReadErrorKind::NotXml,
        offset: 0,
        path: String::new(),
    })
}
