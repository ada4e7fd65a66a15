//! The typed model of one HTTP Order Notify event.
//!
//! r_keeper 7 posts one `<a ...>` document per event. This module names every
//! attribute and element that the public documentation describes (the notify
//! driver's root and children; inside `<Order>`, the shape of the XML
//! interface's `GetOrder` answer, which every public notify sample follows)
//! and keeps everything else in [`Extra`], so that an event read with
//! [`crate::read`] and written back with [`crate::write`] is the same model,
//! even when a newer cash server adds attributes we have never seen.
//!
//! Conventions, chosen so the rest of tillgate never sees raw strings or floats:
//!
//! * every attribute is an `Option`: r_keeper omits attributes freely and an
//!   empty value of a typed attribute (`seat=""`) carries no meaning, so it is
//!   read as `None`;
//! * money is [`Kopecks`], quantities are [`Thousandths`], time is
//!   [`LocalDateTime`] (no zone: the cash server's wall clock), flags are
//!   `bool` read from `1` / `0`;
//! * a known element that appears a second time where the model has room for
//!   one is kept in the parent's [`Extra`], in document order.
//!
//! Field order inside each struct is the order the writer emits attributes in,
//! which follows the sample payloads of the HTTP Order Notify driver
//! documentation (`tests/fixtures/seed001_*.xml`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

/// Money as an integer number of kopecks (`40000` is 400.00 RUB).
///
/// r_keeper never sends fractions here; a float would make sums drift, so the
/// reader rejects anything that is not an integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Kopecks(pub i64);

/// A quantity as an integer number of thousandths (`1000` is one portion,
/// `500` half a portion). Negative quantities are buy-back (return) lines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Thousandths(pub i64);

impl fmt::Display for Kopecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Thousandths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The restaurant (licence) code, e.g. `199990093`.
///
/// Kept as text: it is an identifier, not a number anyone adds up, and leading
/// zeros must survive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RestCode(pub String);

impl fmt::Display for RestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A local date-time of the cash server, without a time zone.
///
/// r_keeper writes `YYYY-MM-DDTHH:MM:SS`; some versions add fractional
/// seconds. The number of fraction digits is remembered so that writing the
/// value back gives the same text (and the same model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalDateTime {
    value: NaiveDateTime,
    frac_digits: u8,
}

/// Why a text is not a [`LocalDateTime`] or a [`Guid`]; the reader turns it
/// into a located [`crate::ReadError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not `YYYY-MM-DDTHH:MM:SS[.fraction]`, or not a real calendar moment.
    #[error("expected a local date-time like 2019-12-18T17:18:00")]
    DateTime,
    /// Not 32 hex digits in the usual GUID layout.
    #[error("expected a GUID like {{9ECCB1B5-97EE-4B88-9840-8568F05586D0}}")]
    Guid,
}

impl LocalDateTime {
    /// Wraps a chrono value; it is written without fractional seconds unless
    /// it has nanoseconds, in which case all nine digits are written.
    pub fn new(value: NaiveDateTime) -> Self {
        let frac_digits = if value.nanosecond() == 0 { 0 } else { 9 };
        Self { value, frac_digits }
    }

    /// Wraps a chrono value and says how many fraction digits (0..=9) to write.
    /// Digits that do not fit are cut off, so the value always equals what
    /// its text says.
    pub fn with_fraction_digits(value: NaiveDateTime, digits: u8) -> Self {
        let digits = digits.min(9);
        let unit = 10u32.pow(9 - u32::from(digits));
        let nanos = value.nanosecond() % 1_000_000_000 / unit * unit;
        let value = value.with_nanosecond(nanos).unwrap_or(value);
        Self {
            value,
            frac_digits: digits,
        }
    }

    /// The chrono value.
    pub fn value(&self) -> NaiveDateTime {
        self.value
    }

    /// How many fraction-of-second digits the text had (0 for the usual form).
    pub fn fraction_digits(&self) -> u8 {
        self.frac_digits
    }

    /// Parses the r_keeper form. Also accepts a space instead of `T` (seen in
    /// hand-written tests of integrators); the writer always uses `T`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let b = text.as_bytes();
        if b.len() < 19 {
            return Err(FormatError::DateTime);
        }
        let num = |range: std::ops::Range<usize>| -> Result<u32, FormatError> {
            let mut v = 0u32;
            for &c in &b[range] {
                if !c.is_ascii_digit() {
                    return Err(FormatError::DateTime);
                }
                v = v * 10 + u32::from(c - b'0');
            }
            Ok(v)
        };
        if b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(FormatError::DateTime);
        }
        let year = num(0..4)? as i32;
        let (month, day) = (num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let (nanos, digits) = if b.len() > 19 {
            if b[19] != b'.' || b.len() == 20 || b.len() > 29 {
                return Err(FormatError::DateTime);
            }
            let digits = b.len() - 20;
            let frac = num(20..b.len())?;
            (frac * 10u32.pow(9 - digits as u32), digits as u8)
        } else {
            (0, 0)
        };
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(FormatError::DateTime)?;
        let time =
            NaiveTime::from_hms_nano_opt(hour, min, sec, nanos).ok_or(FormatError::DateTime)?;
        Ok(Self {
            value: NaiveDateTime::new(date, time),
            frac_digits: digits,
        })
    }
}

impl From<NaiveDateTime> for LocalDateTime {
    fn from(value: NaiveDateTime) -> Self {
        Self::new(value)
    }
}

impl FromStr for LocalDateTime {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LocalDateTime {
    type Error = FormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LocalDateTime> for String {
    fn from(v: LocalDateTime) -> String {
        v.to_string()
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.value;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            v.year(),
            v.month(),
            v.day(),
            v.hour(),
            v.minute(),
            v.second()
        )?;
        if self.frac_digits > 0 {
            let d = u32::from(self.frac_digits);
            // A leap second is stored by chrono as nanos >= 1e9; keep it printable.
            let frac = (v.nanosecond() % 1_000_000_000) / 10u32.pow(9 - d);
            write!(f, ".{:0width$}", frac, width = d as usize)?;
        }
        Ok(())
    }
}

/// A GUID as r_keeper sends it (normally `{9ECCB1B5-97EE-4B88-9840-8568F05586D0}`).
///
/// The text is kept exactly as sent so that writing it back changes nothing,
/// but equality, ordering and hashing use the 128-bit value: the same order
/// seen with and without braces, or in lower case, is the same key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Guid {
    text: GuidText,
    value: u128,
}

/// The text of a [`Guid`] as received.
///
/// Every order line carries a GUID, so a heap allocation per GUID was a
/// noticeable part of reading a large order. The usual forms (38 bytes at
/// most, braced or not) are kept inline; only a GUID with whitespace around
/// it, which the parser also accepts, goes to the heap.
#[derive(Clone)]
enum GuidText {
    Inline { len: u8, bytes: [u8; GUID_INLINE] },
    Heap(Box<str>),
}

/// Length of the braced, dashed form.
const GUID_INLINE: usize = 38;

impl GuidText {
    fn new(text: &str) -> Self {
        if text.len() <= GUID_INLINE {
            let mut bytes = [0u8; GUID_INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Self::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Self::Heap(text.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` of the same length, so always valid; the
            // fallback only keeps this free of a panic path.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Self::Heap(s) => s,
        }
    }
}

/// Value of each hex digit byte, 0xFF for the other bytes.
static HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The value of 32 hex digits in the plain or 8-4-4-4-12 layout.
fn guid_value(b: &[u8]) -> Option<u128> {
    let mut value = 0u128;
    let mut digit = |c: u8| -> Option<()> {
        let d = HEX[usize::from(c)];
        if d > 15 {
            return None;
        }
        value = (value << 4) | u128::from(d);
        Some(())
    };
    match b.len() {
        36 => {
            if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                return None;
            }
            for group in [&b[0..8], &b[9..13], &b[14..18], &b[19..23], &b[24..36]] {
                for &c in group {
                    digit(c)?;
                }
            }
        }
        32 => {
            for &c in b {
                digit(c)?;
            }
        }
        _ => return None,
    }
    Some(value)
}

impl Guid {
    /// Accepts 32 hex digits, either plain or in the 8-4-4-4-12 layout, with
    /// or without braces, in any case.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let inner = text.trim();
        let inner = match inner.strip_prefix('{') {
            Some(rest) => rest.strip_suffix('}').ok_or(FormatError::Guid)?,
            None => inner,
        };
        let value = guid_value(inner.as_bytes()).ok_or(FormatError::Guid)?;
        Ok(Self {
            text: GuidText::new(text),
            value,
        })
    }

    /// Builds the canonical r_keeper form from a 128-bit value.
    pub fn from_u128(value: u128) -> Self {
        let mut g = Self {
            text: GuidText::Heap(Box::default()),
            value,
        };
        g.text = GuidText::new(&g.canonical());
        g
    }

    /// The text exactly as it was received.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The 128-bit value (big-endian reading of the hex digits).
    pub fn as_u128(&self) -> u128 {
        self.value
    }

    /// Upper case in braces, the form r_keeper itself uses; use it for keys
    /// stored outside Rust (database columns, JSON).
    pub fn canonical(&self) -> String {
        let h = format!("{:032X}", self.value);
        format!(
            "{{{}-{}-{}-{}-{}}}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Same output as the derived form had when the text was a `String`.
impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guid")
            .field("text", &self.as_str())
            .field("value", &self.value)
            .finish()
    }
}

impl PartialEq for Guid {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl Eq for Guid {}
impl std::hash::Hash for Guid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}
impl PartialOrd for Guid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Guid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl FromStr for Guid {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Guid {
    type Error = FormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Guid> for String {
    fn from(g: Guid) -> String {
        g.as_str().to_owned()
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened at the cash server (`Situation` of the root element).
///
/// Codes come from the HTTP Order Notify driver documentation. Newer versions
/// may send others: they are kept in [`Situation::Unknown`] rather than
/// refused, so a new code never stops the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Situation {
    /// 1: the cash server or a cash station started.
    ServerOrStationStarted,
    /// 3: the order changed.
    OrderChanged,
    /// 4: the order was calculated.
    OrderCalculated,
    /// 5: a receipt was closed.
    ReceiptClosed,
    /// 9: the order was closed.
    OrderClosed,
    /// 10: a cash station was locked (logoff).
    StationLocked,
    /// 11: a new order was created.
    NewOrder,
    /// 12: an existing order was opened.
    OrderOpened,
    /// 13: the order was saved.
    OrderSaved,
    /// 14: a receipt was deleted.
    ReceiptDeleted,
    /// 18: a cash station was closed.
    StationClosed,
    /// 21: someone signed in at a cash station.
    StationSignIn,
    /// 24: the station switched to receipt print mode.
    ReceiptPrintMode,
    /// Any other code, kept as sent.
    Unknown(i64),
}

impl Situation {
    /// The number r_keeper sends.
    pub fn code(&self) -> i64 {
        match self {
            Self::ServerOrStationStarted => 1,
            Self::OrderChanged => 3,
            Self::OrderCalculated => 4,
            Self::ReceiptClosed => 5,
            Self::OrderClosed => 9,
            Self::StationLocked => 10,
            Self::NewOrder => 11,
            Self::OrderOpened => 12,
            Self::OrderSaved => 13,
            Self::ReceiptDeleted => 14,
            Self::StationClosed => 18,
            Self::StationSignIn => 21,
            Self::ReceiptPrintMode => 24,
            Self::Unknown(c) => *c,
        }
    }

    /// The variant for a number; codes we do not know become `Unknown`, so
    /// `from_code(c).code() == c` for every `c`.
    pub fn from_code(code: i64) -> Situation {
        match code {
            1 => Self::ServerOrStationStarted,
            3 => Self::OrderChanged,
            4 => Self::OrderCalculated,
            5 => Self::ReceiptClosed,
            9 => Self::OrderClosed,
            10 => Self::StationLocked,
            11 => Self::NewOrder,
            12 => Self::OrderOpened,
            13 => Self::OrderSaved,
            14 => Self::ReceiptDeleted,
            18 => Self::StationClosed,
            21 => Self::StationSignIn,
            24 => Self::ReceiptPrintMode,
            c => Self::Unknown(c),
        }
    }
}

/// The state of an order line (`state` of Session, Dish, Combo, PrintCheck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineState {
    /// 1
    Open,
    /// 3
    Fixed,
    /// 4
    Printed,
    /// 5
    PartlyClosed,
    /// 6
    Closed,
    /// 7
    Deleted,
    /// Any other number, kept as sent.
    Other(i64),
}

impl LineState {
    /// The number r_keeper sends.
    pub fn code(&self) -> i64 {
        match self {
            Self::Open => 1,
            Self::Fixed => 3,
            Self::Printed => 4,
            Self::PartlyClosed => 5,
            Self::Closed => 6,
            Self::Deleted => 7,
            Self::Other(c) => *c,
        }
    }

    /// The variant for a number (`Other` for unknown ones).
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::Open,
            3 => Self::Fixed,
            4 => Self::Printed,
            5 => Self::PartlyClosed,
            6 => Self::Closed,
            7 => Self::Deleted,
            c => Self::Other(c),
        }
    }
}

/// The state of a card payment (`TransactionStatus` of Pay / Prepay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionStatus {
    /// 1
    NotDone,
    /// 3
    InProgress,
    /// 4
    Succeeded,
    /// 5
    Confirmed,
    /// 6
    Cancelled,
    /// Any other number, kept as sent.
    Other(i64),
}

impl TransactionStatus {
    /// The number r_keeper sends.
    pub fn code(&self) -> i64 {
        match self {
            Self::NotDone => 1,
            Self::InProgress => 3,
            Self::Succeeded => 4,
            Self::Confirmed => 5,
            Self::Cancelled => 6,
            Self::Other(c) => *c,
        }
    }

    /// The variant for a number (`Other` for unknown ones).
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::NotDone,
            3 => Self::InProgress,
            4 => Self::Succeeded,
            5 => Self::Confirmed,
            6 => Self::Cancelled,
            c => Self::Other(c),
        }
    }
}

/// Kitchen display (KDS) state of an order or dish (`kdsstate`).
///
/// Read case-insensitively (`Ready` and `ready` are both [`KdsState::Ready`]);
/// the writer uses the lower-case spelling. Text that is none of the known
/// states is kept verbatim in [`KdsState::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KdsState {
    /// `""`: not sent to the kitchen.
    Empty,
    /// `sent`
    Sent,
    /// `started`
    Started,
    /// `ready`
    Ready,
    /// `taken`
    Taken,
    /// `collect`
    Collect,
    /// `collected`
    Collected,
    /// `startpark`
    StartPark,
    /// `endpark`
    EndPark,
    /// `removed`
    Removed,
    /// Anything else, exactly as sent.
    Other(String),
}

impl KdsState {
    /// Maps the text case-insensitively onto a known state, or keeps it.
    pub fn parse(text: &str) -> Self {
        // Names only, not (name, state) pairs: iterating over an array of
        // states would copy the whole array on every call.
        const KNOWN: [&str; 10] = [
            "",
            "sent",
            "started",
            "ready",
            "taken",
            "collect",
            "collected",
            "startpark",
            "endpark",
            "removed",
        ];
        match KNOWN.iter().position(|k| k.eq_ignore_ascii_case(text)) {
            Some(0) => Self::Empty,
            Some(1) => Self::Sent,
            Some(2) => Self::Started,
            Some(3) => Self::Ready,
            Some(4) => Self::Taken,
            Some(5) => Self::Collect,
            Some(6) => Self::Collected,
            Some(7) => Self::StartPark,
            Some(8) => Self::EndPark,
            Some(9) => Self::Removed,
            _ => Self::Other(text.to_owned()),
        }
    }

    /// The text the writer sends.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Empty => "",
            Self::Sent => "sent",
            Self::Started => "started",
            Self::Ready => "ready",
            Self::Taken => "taken",
            Self::Collect => "collect",
            Self::Collected => "collected",
            Self::StartPark => "startpark",
            Self::EndPark => "endpark",
            Self::Removed => "removed",
            Self::Other(s) => s,
        }
    }
}

/// A generic XML element, for anything the model does not name.
///
/// `text` is the element's character data with entity references resolved;
/// text that is only whitespace (indentation) is not kept, because it carries
/// no meaning and writers differ in how they indent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XmlElement {
    /// The element name exactly as sent (prefix included, if any).
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<XmlElement>,
    /// Character data (all text pieces of the element joined); empty if none.
    pub text: String,
}

/// What a known element carried that the model does not name.
///
/// Keeping it is what lets tillgate pass events from a newer cash server on
/// unchanged, and lets a reader of the JSON export see fields we have not
/// modelled yet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Extra {
    /// Unknown attributes (and repeats of known ones), in document order.
    pub attrs: Vec<(String, String)>,
    /// Unknown child elements (and repeats of known single ones), in order.
    pub elements: Vec<XmlElement>,
    /// Non-whitespace character data directly inside the element.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

impl Extra {
    /// True when nothing unknown was seen.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.elements.is_empty() && self.text.is_empty()
    }
}

/// A reference to a dictionary item: `<X id code name/>`.
///
/// Used for Role, OrderCategory, OrderType, Table, GuestType, Course,
/// PriceScale, TradeGroup, Reason, Modi-like dictionary items and others that
/// only point into r_keeper's reference books.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ref {
    /// `id`: the internal identifier of the dictionary item.
    pub id: Option<i64>,
    /// `code`: the code the restaurant staff see.
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Role>` of a person.
pub type Role = Ref;

/// A cash station (`<Station id code name NetName/>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Station {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `NetName`: the station's network name.
    pub net_name: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// The cash server (`<Server id code name NetName/>`). The server-start event
/// carries only `id`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Server {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `NetName`
    pub net_name: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// An employee: Waiter, Creator, Author, DeleteManager.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Person {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `<Role>` child.
    pub role: Option<Role>,
    /// Anything else.
    pub extra: Extra,
}

/// One notify event: the root `<a>` element and everything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `RestCode`
    pub rest_code: Option<RestCode>,
    /// `DateTime`: when it happened, cash server's local time.
    pub date_time: Option<LocalDateTime>,
    /// `Situation`: what happened. Required: an event without it means nothing.
    pub situation: Situation,
    /// `seqnumber`: counts up within one driver run (see `guid`).
    pub seqnumber: Option<u64>,
    /// `guid`: identifies the driver run / stream; it changes.
    pub guid: Option<Guid>,
    /// `name`: human name of the event ("New Order", "Login").
    pub name: Option<String>,
    /// `ShiftNum`: common shift number.
    pub shift_num: Option<i64>,
    /// `ShiftDate`: date of the common shift.
    pub shift_date: Option<LocalDateTime>,
    /// `<Station>`
    pub station: Option<Station>,
    /// `<Server>`
    pub server: Option<Server>,
    /// `<Waiter>`: who is signed in.
    pub waiter: Option<Person>,
    /// `<Order>`
    pub order: Option<Order>,
    /// `<Session>` elements beside `<Order>` (as in the documentation's
    /// new-order sample, `tests/fixtures/seed001_new_order.xml`).
    pub sessions: Vec<Session>,
    /// `<ChangeLog>`: which dishes changed.
    pub change_log: Option<ChangeLog>,
    /// `<Item ClassName>` elements (often a bare `<Item/>`).
    pub items: Vec<Item>,
    /// Anything else.
    pub extra: Extra,
}

impl Event {
    /// An event with only the situation set; fill the rest with struct-update
    /// syntax.
    pub fn new(situation: Situation) -> Self {
        Self {
            rest_code: None,
            date_time: None,
            situation,
            seqnumber: None,
            guid: None,
            name: None,
            shift_num: None,
            shift_date: None,
            station: None,
            server: None,
            waiter: None,
            order: None,
            sessions: Vec::new(),
            change_log: None,
            items: Vec::new(),
            extra: Extra::default(),
        }
    }

    /// Every session of the event: first those inside `<Order>` (the XML
    /// interface's GetOrder layout), then those beside it (the notify layout).
    pub fn all_sessions(&self) -> impl Iterator<Item = &Session> {
        self.order
            .iter()
            .flat_map(|o| o.sessions.iter())
            .chain(self.sessions.iter())
    }
}

/// A guest of the order (`<Guest guestLabel cardCode/>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Guest {
    /// `guestLabel`
    pub guest_label: Option<String>,
    /// `cardCode`
    pub card_code: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Guests count>` with its `<Guest>` children.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Guests {
    /// `count`
    pub count: Option<i64>,
    /// `<Guest>` children.
    pub guests: Vec<Guest>,
    /// Anything else.
    pub extra: Extra,
}

/// One external property of the order (`<ExternalProps><Prop name value/>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Prop {
    /// `name`
    pub name: Option<String>,
    /// `value`
    pub value: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// `<SourceOrder>`: the original order of a return (purchase) order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceOrder {
    /// `visit`
    pub visit: Option<i64>,
    /// `orderIdent`
    pub order_ident: Option<i64>,
    /// `guid`
    pub guid: Option<Guid>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Order>`: the order the event is about.
///
/// An order is identified by `guid`, or by `visit` + `order_ident`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Order {
    /// `visit`
    pub visit: Option<i64>,
    /// `orderIdent`
    pub order_ident: Option<i64>,
    /// `guid`
    pub guid: Option<Guid>,
    /// `url`: the order's QR link.
    pub url: Option<String>,
    /// `orderName`
    pub order_name: Option<String>,
    /// `version`: bumps on every change.
    pub version: Option<i64>,
    /// `crc32`
    pub crc32: Option<i64>,
    /// `orderSum`
    pub order_sum: Option<Kopecks>,
    /// `discountSum`
    pub discount_sum: Option<Kopecks>,
    /// `unpaidSum`
    pub unpaid_sum: Option<Kopecks>,
    /// `prepaySum`
    pub prepay_sum: Option<Kopecks>,
    /// `promisedSum`
    pub promised_sum: Option<Kopecks>,
    /// `totalPieces`: number of pieces (a count, not thousandths).
    pub total_pieces: Option<i64>,
    /// `cookMins`
    pub cook_mins: Option<i64>,
    /// `paid`
    pub paid: Option<bool>,
    /// `finished`
    pub finished: Option<bool>,
    /// `deleted`
    pub deleted: Option<bool>,
    /// `locked`
    pub locked: Option<bool>,
    /// `purchase`: a return order.
    pub purchase: Option<bool>,
    /// `openTime`
    pub open_time: Option<LocalDateTime>,
    /// `seqNumber`
    pub seq_number: Option<i64>,
    /// `persistentComment`
    pub persistent_comment: Option<String>,
    /// `nonPersistentComment`
    pub non_persistent_comment: Option<String>,
    /// `kdsstate` (also read from `KdsState`, as attribute or element; the
    /// writer always uses the `kdsstate` attribute).
    pub kds_state: Option<KdsState>,
    /// `<Creator>`
    pub creator: Option<Person>,
    /// `<Waiter>`
    pub waiter: Option<Person>,
    /// `<Station>`
    pub station: Option<Station>,
    /// `<OrderCategory>`
    pub order_category: Option<Ref>,
    /// `<OrderType>`
    pub order_type: Option<Ref>,
    /// `<Table>`
    pub table: Option<Ref>,
    /// `<GuestType>`
    pub guest_type: Option<Ref>,
    /// `<Guests>`
    pub guests: Option<Guests>,
    /// `<ExternalProps>` flattened to its `<Prop>` children. Attributes of the
    /// `ExternalProps` element itself and children other than `Prop` are kept
    /// in [`Order::external_props_extra`].
    pub external_props: Vec<Prop>,
    /// What the `<ExternalProps>` element carried besides `<Prop>`.
    pub external_props_extra: Extra,
    /// `<SourceOrder>`
    pub source_order: Option<SourceOrder>,
    /// `<Session>` children (the GetOrder layout).
    pub sessions: Vec<Session>,
    /// Anything else (`DeliveryBlock` among others).
    pub extra: Extra,
}

/// `<Session>`: one round of ordering, with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Session {
    /// `uni`: number of the session within the order.
    pub uni: Option<i64>,
    /// `line_guid`
    pub line_guid: Option<Guid>,
    /// `state`
    pub state: Option<LineState>,
    /// `sessionID`
    pub session_id: Option<i64>,
    /// `isDraft`
    pub is_draft: Option<bool>,
    /// `remindTime`
    pub remind_time: Option<LocalDateTime>,
    /// `startService`
    pub start_service: Option<LocalDateTime>,
    /// `printed`
    pub printed: Option<bool>,
    /// `cookMins`
    pub cook_mins: Option<i64>,
    /// `<Station>`
    pub station: Option<Station>,
    /// `<Author>`
    pub author: Option<Person>,
    /// `<Creator>`
    pub creator: Option<Person>,
    /// `<Course>`
    pub course: Option<Ref>,
    /// `<PriceScale>`
    pub price_scale: Option<Ref>,
    /// `<TradeGroup>`
    pub trade_group: Option<Ref>,
    /// `<Dish>` lines.
    pub dishes: Vec<Dish>,
    /// `<Combo>` lines.
    pub combos: Vec<Combo>,
    /// `<Discount>` lines.
    pub discounts: Vec<Discount>,
    /// `<Prepay>` lines.
    pub prepays: Vec<Pay>,
    /// `<Pay>` lines.
    pub pays: Vec<Pay>,
    /// `<PrintCheck>` (receipts and pre-bills).
    pub print_checks: Vec<PrintCheck>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Dish>`: one order line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dish {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `uni`: line number; the same dish code can appear under several.
    pub uni: Option<i64>,
    /// `line_guid`
    pub line_guid: Option<Guid>,
    /// `state`
    pub state: Option<LineState>,
    /// `price`
    pub price: Option<Kopecks>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `quantity`: negative for a buy-back line.
    pub quantity: Option<Thousandths>,
    /// `srcQuantity`
    pub src_quantity: Option<Thousandths>,
    /// `paidAmount`
    pub paid_amount: Option<Kopecks>,
    /// `seat`
    pub seat: Option<i64>,
    /// `kdsstate` (also read from `KdsState`; written as `kdsstate`).
    pub kds_state: Option<KdsState>,
    /// `new`
    pub new: Option<bool>,
    /// `SourceGUIDString`
    pub source_guid_string: Option<String>,
    /// `<Modi>` modifiers.
    pub modis: Vec<Modi>,
    /// `<Discount>` on this dish.
    pub discounts: Vec<Discount>,
    /// `<Void>` deletions of an already printed dish.
    pub voids: Vec<Void>,
    /// `<Consum>`
    pub consums: Vec<Consum>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Modi>`: a modifier of a dish ("no onion").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Modi {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `uni`
    pub uni: Option<i64>,
    /// `count`
    pub count: Option<i64>,
    /// `price`
    pub price: Option<Kopecks>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Consum>`: a consumption line attached to a dish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Consum {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `quantity`
    pub quantity: Option<Thousandths>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Void>`: deletion of an already printed dish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Void {
    /// `id` of the void reason, if sent.
    pub id: Option<i64>,
    /// `code` of the void reason, if sent.
    pub code: Option<i64>,
    /// `name` of the void reason, if sent.
    pub name: Option<String>,
    /// `dateTime`
    pub date_time: Option<LocalDateTime>,
    /// `quantity`
    pub quantity: Option<Thousandths>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `openName`: the reason as typed.
    pub open_name: Option<String>,
    /// `<Author>`: who deleted it.
    pub author: Option<Person>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Combo>`: a combo line with its components.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Combo {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `uni`
    pub uni: Option<i64>,
    /// `line_guid`
    pub line_guid: Option<Guid>,
    /// `state`
    pub state: Option<LineState>,
    /// `price`
    pub price: Option<Kopecks>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `quantity`
    pub quantity: Option<Thousandths>,
    /// `<Component>` children.
    pub components: Vec<Component>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Component>` of a combo.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Component {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `<Dish>` children chosen for this component.
    pub dishes: Vec<Dish>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Discount>`: a discount or markup, on a session or a dish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Discount {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `maxamount`
    pub max_amount: Option<Kopecks>,
    /// `cardCode`
    pub card_code: Option<String>,
    /// `deleted`
    pub deleted: Option<bool>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Pay>` or `<Prepay>`: a payment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pay {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`: the currency.
    pub name: Option<String>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `basicSum`: the amount in the base currency.
    pub basic_sum: Option<Kopecks>,
    /// `cardCode`
    pub card_code: Option<String>,
    /// `TransactionStatus`
    pub transaction_status: Option<TransactionStatus>,
    /// `deleted`
    pub deleted: Option<bool>,
    /// `owner`
    pub owner: Option<String>,
    /// `authcode`
    pub auth_code: Option<String>,
    /// Anything else.
    pub extra: Extra,
}

/// `<PrintCheck>`: a printed receipt or pre-bill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrintCheck {
    /// `CheckNum`
    pub check_num: Option<i64>,
    /// `amount`
    pub amount: Option<Kopecks>,
    /// `unpaidSum`
    pub unpaid_sum: Option<Kopecks>,
    /// `GlobalFiscalID`
    pub global_fiscal_id: Option<String>,
    /// `state`
    pub state: Option<LineState>,
    /// `deleted`
    pub deleted: Option<bool>,
    /// `bill`: true for a pre-bill.
    pub bill: Option<bool>,
    /// `printTime`
    pub print_time: Option<LocalDateTime>,
    /// `<Author>`
    pub author: Option<Person>,
    /// `<Reason>`: why it was deleted.
    pub reason: Option<Ref>,
    /// `<DeleteManager>`: who allowed the deletion.
    pub delete_manager: Option<Person>,
    /// `<Pay>` children.
    pub pays: Vec<Pay>,
    /// Anything else.
    pub extra: Extra,
}

/// `<ChangeLog>`: the dishes that changed in this event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeLog {
    /// `<Dish>` children.
    pub dishes: Vec<ChangeLogDish>,
    /// Anything else.
    pub extra: Extra,
}

/// One changed dish: `oldvalue="0" newvalue="1000"` is an added portion,
/// `1000 -> 0` a removed one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeLogDish {
    /// `id`
    pub id: Option<i64>,
    /// `code`
    pub code: Option<i64>,
    /// `name`
    pub name: Option<String>,
    /// `uni`
    pub uni: Option<i64>,
    /// `oldvalue`
    pub old_value: Option<Thousandths>,
    /// `newvalue`
    pub new_value: Option<Thousandths>,
    /// `new`
    pub new: Option<bool>,
    /// Anything else.
    pub extra: Extra,
}

/// `<Item ClassName>`: what kind of object the event is about (`TOrder`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Item {
    /// `ClassName`
    pub class_name: Option<String>,
    /// Anything else.
    pub extra: Extra,
}
