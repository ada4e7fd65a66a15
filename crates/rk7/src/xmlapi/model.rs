//! The typed answers of the XML interface commands this crate speaks, so
//! that tillgate sees numbers, dates and GUIDs instead of attribute strings;
//! named after what the public documentation describes, tolerant of the
//! rest.
//!
//! Conventions are the notify model's ([`crate::Order`] and friends): every
//! attribute is an `Option` (an empty value of a typed attribute is `None`),
//! money is [`Kopecks`], time is [`LocalDateTime`] (the cash server's wall
//! clock, no zone), flags are `bool` from `1` / `0`, and what a known element
//! carries that the model does not name is kept in its [`Extra`]. The order
//! that `GetOrder` returns is the notify model's [`crate::Order`] itself: the
//! notify model already follows the GetOrder answer.
//!
//! Where the documentation only lists attribute names, their types are
//! assumptions stated on each field; anything it does not list stays in `extra`
//! rather than being guessed at.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Extra, Guid, Kopecks, LocalDateTime, Ref, RestCode};

/// The outcome of a command: the `Status` attribute of `<RK7QueryResult>`.
///
/// The HTTP status is almost always 200, even on errors; this is what says
/// whether the command worked. Read trimmed and case-insensitively; a value
/// that is none of the documented ones is kept in [`Status::Other`] (and
/// treated as a failure, since nothing says it succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// `Ok`
    Ok,
    /// `No changes`: GetOrderList with a `lastversion` that is still current.
    NoChanges,
    /// `Execution Started`: the command runs on, no result yet.
    ExecutionStarted,
    /// `Query Parse Error`: the request was not understood (also what a
    /// body sent as a form, read as empty, gets).
    QueryParseError,
    /// `Bad Query Parameters`
    BadQueryParameters,
    /// `Query Executing Error`: understood but failed (unknown order, shift
    /// closing, rights); see `ErrorText` and `RK7ErrorN`.
    QueryExecutingError,
    /// `Result Writing Error`
    ResultWritingError,
    /// Any other text, exactly as sent.
    Other(String),
}

impl Status {
    const KNOWN: [(&'static str, Status); 7] = [
        ("Ok", Status::Ok),
        ("No changes", Status::NoChanges),
        ("Execution Started", Status::ExecutionStarted),
        ("Query Parse Error", Status::QueryParseError),
        ("Bad Query Parameters", Status::BadQueryParameters),
        ("Query Executing Error", Status::QueryExecutingError),
        ("Result Writing Error", Status::ResultWritingError),
    ];

    /// Maps the attribute's text onto a known status, or keeps it.
    pub fn parse(text: &str) -> Self {
        let t = text.trim();
        Self::KNOWN
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(t))
            .map_or_else(|| Self::Other(text.to_owned()), |(_, s)| s.clone())
    }

    /// The text r_keeper sends.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            known => Self::KNOWN
                .iter()
                .find(|(_, s)| s == known)
                .map_or("", |(k, _)| k),
        }
    }

    /// `Ok` and `No changes`: the command did what was asked. Everything
    /// else, `Execution Started` included (a read command then has no data
    /// to give), is reported as an [`Error::Status`](super::Error::Status).
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Ok | Self::NoChanges)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attributes of `<RK7QueryResult>`, which every answer has, and (from
/// [`read_query_result`](super::read_query_result)) its children.
///
/// Only successful answers become a `QueryResult`; the others become an
/// [`Error::Status`](super::Error::Status). The attributes here never make an
/// answer unreadable: one whose value does not parse is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResult {
    /// `ServerVersion`: the cash server's version, e.g. `7.6.5.92`.
    pub server_version: Option<String>,
    /// `XmlVersion`: the protocol version, e.g. `246`.
    pub xml_version: Option<i64>,
    /// `NetName`: the cash server's network name.
    pub net_name: Option<String>,
    /// `Status`: required; an answer without it is unreadable.
    pub status: Status,
    /// `CMD`: the command answered.
    pub cmd: Option<String>,
    /// `ErrorText`; an empty one (every successful answer has it) is `None`.
    pub error_text: Option<String>,
    /// `RK7ErrorN`: r_keeper's error number, sometimes sent with an error.
    pub error_n: Option<i64>,
    /// `DateTime`: when the answer was made, cash server's local time.
    pub date_time: Option<LocalDateTime>,
    /// `WorkTime`: how long the command took (milliseconds, assumed).
    pub work_time: Option<i64>,
    /// `Processed`: number of commands processed (assumed a count).
    pub processed: Option<i64>,
    /// Other attributes; the children when read by
    /// [`read_query_result`](super::read_query_result) (the typed readers
    /// take the children they know and drop the rest).
    pub extra: Extra,
}

impl Default for QueryResult {
    fn default() -> Self {
        Self {
            server_version: None,
            xml_version: None,
            net_name: None,
            status: Status::Ok,
            cmd: None,
            error_text: None,
            error_n: None,
            date_time: None,
            work_time: None,
            processed: None,
            extra: Extra::default(),
        }
    }
}

/// `<CommonShift ShiftDate ShiftNum ShiftStartTime/>`: the common shift, in
/// the answer of `GetSystemInfo2` (read inside `<SystemInfo>` and, in case a
/// server puts it there, beside it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommonShift {
    /// `ShiftDate`: the shift's logical date.
    pub shift_date: Option<LocalDateTime>,
    /// `ShiftNum`
    pub shift_num: Option<i64>,
    /// `ShiftStartTime`
    pub shift_start_time: Option<LocalDateTime>,
    /// Anything else.
    pub extra: Extra,
}

/// The answer of `GetSystemInfo` / `GetSystemInfo2`: the version from the
/// root, and `<SystemInfo SystemTime ReqSysVer NetName ProcessID ShiftDate
/// RestCode>` with `<CashGroup>`, `<Restaurant>` and (GetSystemInfo2)
/// `<CommonShift>`.
///
/// The common shift's number comes only with `<CommonShift>`, so only from
/// `GetSystemInfo2`; use [`SystemInfo::common_shift_date`]
/// and [`SystemInfo::common_shift_num`] to get whichever the server sent.
/// `<BusinessPeriod>` is kept in `extra`: its shape is not documented.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `ServerVersion` of `<RK7QueryResult>`.
    pub server_version: Option<String>,
    /// `XmlVersion` of `<RK7QueryResult>`.
    pub xml_version: Option<i64>,
    /// `NetName`
    pub net_name: Option<String>,
    /// `SystemTime`, kept as text: a public sample has a plain number there
    /// (`3790700931046`), not a date-time.
    pub system_time: Option<String>,
    /// `ReqSysVer`, kept as text (meaning undocumented).
    pub req_sys_ver: Option<String>,
    /// `ProcessID`
    pub process_id: Option<i64>,
    /// `ShiftDate`: the common shift's date.
    pub shift_date: Option<LocalDateTime>,
    /// `RestCode`: the restaurant (licence) code.
    pub rest_code: Option<RestCode>,
    /// `<CashGroup id code name/>`: the cash server.
    pub cash_group: Option<Ref>,
    /// `<Restaurant id code name/>`
    pub restaurant: Option<Ref>,
    /// `<CommonShift>` (GetSystemInfo2).
    pub common_shift: Option<CommonShift>,
    /// Anything else of `<SystemInfo>`.
    pub extra: Extra,
}

impl SystemInfo {
    /// The common shift's date: `<CommonShift ShiftDate>`, else the
    /// `ShiftDate` of `<SystemInfo>`.
    pub fn common_shift_date(&self) -> Option<&LocalDateTime> {
        self.common_shift
            .as_ref()
            .and_then(|c| c.shift_date.as_ref())
            .or(self.shift_date.as_ref())
    }

    /// The common shift's number (`<CommonShift ShiftNum>`).
    pub fn common_shift_num(&self) -> Option<i64> {
        self.common_shift.as_ref().and_then(|c| c.shift_num)
    }

    /// The restaurant's name (`<Restaurant name>`).
    pub fn restaurant_name(&self) -> Option<&str> {
        self.restaurant.as_ref().and_then(|r| r.name.as_deref())
    }
}

/// The answer of `GetOrderList`: visits with their orders, and the version
/// of the order table to send as `lastversion` next time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderList {
    /// `lastversion` of `<RK7QueryResult>`: pass it to the next request to
    /// be told `No changes` when nothing changed. When the server answered
    /// `No changes` without it, the client fills in the version it sent.
    pub last_version: Option<i64>,
    /// True when the Status was `No changes`: nothing changed since the
    /// `lastversion` sent, and `visits` is empty.
    pub unchanged: bool,
    /// `<Visit>` elements (children of `<RK7QueryResult>`).
    pub visits: Vec<OrderListVisit>,
}

impl OrderList {
    /// Every order with its visit, in document order.
    pub fn orders(&self) -> impl Iterator<Item = (&OrderListVisit, &OrderListItem)> {
        self.visits
            .iter()
            .flat_map(|v| v.orders.iter().map(move |o| (v, o)))
    }
}

/// `<Visit VisitID guid Finished GuestsCount ...>` of a GetOrderList answer,
/// with the orders of its `<Orders>` child (an `<Order>` directly inside
/// `<Visit>` is taken too).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderListVisit {
    /// `VisitID`: the visit, as `visit` in GetOrder.
    pub visit_id: Option<i64>,
    /// `guid`
    pub guid: Option<Guid>,
    /// `Finished`
    pub finished: Option<bool>,
    /// `GuestsCount`
    pub guests_count: Option<i64>,
    /// The orders.
    pub orders: Vec<OrderListItem>,
    /// Anything else (`<Guests>` among others); attributes of `<Orders>`
    /// and children of it other than `<Order>` are not kept.
    pub extra: Extra,
}

/// One `<Order .../>` of a GetOrderList answer: the summary, not the lines
/// (fetch those with GetOrder by [`OrderListItem::guid`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderListItem {
    /// `OrderID`: the order within its visit (assumed to be what GetOrder
    /// calls `orderIdent`; the GUID is the safer key).
    pub order_id: Option<i64>,
    /// `guid`
    pub guid: Option<Guid>,
    /// `crc32`: changes with the order's content.
    pub crc32: Option<i64>,
    /// `Version`: bumps on every change of the order.
    pub version: Option<i64>,
    /// `OrderName`
    pub order_name: Option<String>,
    /// `OrderSum`
    pub order_sum: Option<Kopecks>,
    /// `ToPaySum`: what is left to pay.
    pub to_pay_sum: Option<Kopecks>,
    /// `PrepaySum`
    pub prepay_sum: Option<Kopecks>,
    /// `TableID`
    pub table_id: Option<i64>,
    /// `TableCode`
    pub table_code: Option<i64>,
    /// `WaiterID`
    pub waiter_id: Option<i64>,
    /// `WaiterCode`
    pub waiter_code: Option<i64>,
    /// `CreateTime`
    pub create_time: Option<LocalDateTime>,
    /// `FinishTime`
    pub finish_time: Option<LocalDateTime>,
    /// `Finished`
    pub finished: Option<bool>,
    /// `Bill`: a pre-bill was printed.
    pub bill: Option<bool>,
    /// `paid`
    pub paid: Option<bool>,
    /// `locked`
    pub locked: Option<bool>,
    /// `url`: the order's QR link.
    pub url: Option<String>,
    /// Anything else (names sent with `needNames`, among others).
    pub extra: Extra,
}

/// The answer of `GetRefData`: `<RK7Reference DataVersion ClassName Name
/// TotalItemCount>` with the `<Item>` elements of its `<Items>` child.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reference<T> {
    /// `DataVersion`
    pub data_version: Option<i64>,
    /// `ClassName`
    pub class_name: Option<String>,
    /// `Name`
    pub name: Option<String>,
    /// `TotalItemCount`: all items, when the answer is one page
    /// (`Offset` / `ItemCount`).
    pub total_item_count: Option<i64>,
    /// The items.
    pub items: Vec<T>,
    /// Anything else of `<RK7Reference>`; attributes of `<Items>` and
    /// children of it other than `<Item>` are not kept.
    pub extra: Extra,
}

/// Declares a reference item type: the attributes every `<Item>` of a
/// GetRefData answer has, whatever the reference. No attribute specific to
/// one reference is documented, so those stay in `extra`.
macro_rules! ref_item {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
        pub struct $name {
            /// `Ident`: the item's identifier (the `id` of references to it
            /// elsewhere, as in an order's `<Waiter id>`).
            pub ident: Option<i64>,
            /// `Code`: the code the staff see.
            pub code: Option<i64>,
            /// `Name`
            pub name: Option<String>,
            /// `GUIDString`
            pub guid: Option<Guid>,
            /// `Status`: the item's state, kept as text (values
            /// undocumented).
            pub status: Option<String>,
            /// Every other attribute and child.
            pub extra: Extra,
        }
    };
}

ref_item! {
    /// An `<Item>` of any reference (`GetRefData` with any `RefName`).
    RefItem
}

ref_item! {
    /// An `<Item>` of the `CASHES` reference: a cash station.
    Cash
}

ref_item! {
    /// An `<Item>` of the `RESTAURANTS` reference.
    Restaurant
}

ref_item! {
    /// An `<Item>` of the `EMPLOYEES` reference.
    Employee
}

macro_rules! from_ref_item {
    ($($name:ident),*) => {$(
        impl From<RefItem> for $name {
            fn from(i: RefItem) -> Self {
                Self {
                    ident: i.ident,
                    code: i.code,
                    name: i.name,
                    guid: i.guid,
                    status: i.status,
                    extra: i.extra,
                }
            }
        }
    )*};
}

from_ref_item!(Cash, Restaurant, Employee);
