//! Reader and writer for r_keeper 7 HTTP Order Notify events.
//!
//! A cash server posts one small XML document (`<a Situation="..." ...>`) per
//! event. This crate turns those bytes into a typed [`Event`] ([`read`]),
//! turns an [`Event`] back into the XML a cash server would send ([`write`]),
//! and keeps the original bytes next to the model when you need them
//! ([`RawEvent`]). It has no dependency on the rest of tillgate.
//!
//! [`xmlapi`] speaks the cash server's XML interface the other way round:
//! requests tillgate sends (`GetSystemInfo`, `GetOrderList`, `GetOrder`,
//! `GetRefData`), answers read into typed models, and, with the `client`
//! feature, an async HTTP client.
//!
//! ```
//! let xml = br#"<?xml version="1.0" encoding="utf-8"?>
//! <a RestCode="199990093" DateTime="2020-01-14T15:38:23" Situation="1" seqnumber="1"
//!    guid="{9ECCB1B5-97EE-4B88-9840-8568F05586D0}" name="Started" ShiftNum="1"
//!    ShiftDate="2019-11-18T00:00:00"><Server id="15002"/><Item/></a>"#;
//! let event = rk7::read(xml)?;
//! assert_eq!(event.situation, rk7::Situation::ServerOrStationStarted);
//! assert_eq!(rk7::read(&rk7::write(&event))?, event);
//! # Ok::<(), rk7::ReadError>(())
//! ```

mod model;
mod raw;
mod read;
mod write;
pub mod xmlapi;

pub use model::*;
pub use raw::RawEvent;
pub use read::{ReadError, ReadErrorKind, read};
pub use write::write;
