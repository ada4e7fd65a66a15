//! Reads the cash server's answer (`<RK7QueryResult ...>`) into the typed
//! models, because the outcome is in the answer's `Status` and its data
//! must reach tillgate as numbers and dates, not strings.
//!
//! Same style and same machinery as the notify reader ([`crate::read`]):
//! quick-xml on the reader's general path, strict about meaning and lenient
//! about form. Every typed value (money, dates, flags, GUIDs) must parse
//! exactly, and a failure says what was wrong, in which attribute and at
//! which byte ([`Error::Unreadable`]); unknown attributes and elements are
//! kept in the models' `extra` and never fail a read; a missing attribute is
//! `None`. The `<Order>` of a GetOrder answer is read by the notify reader's
//! own function, so it is the same [`Order`] with the same rules. The body is
//! decoded as the notify reader decodes (UTF-8 by default; a BOM or a
//! declared `windows-1251` is honoured).
//!
//! Order of the checks: the root must be `<RK7QueryResult>`; its `Status`
//! decides. A failing `Status` is an [`Error::Status`] and the data is not
//! read at all (an error answer has none worth failing on). The root's own
//! attributes never make an answer unreadable (a value that does not parse
//! is kept in `extra`), so a refusal is always reported as one.
//!
//! Assumptions where the public documentation is silent, each tolerant:
//! * `<CommonShift>` is read inside `<SystemInfo>` and also beside it;
//! * in a GetOrderList answer, `<Visit>` elements are children of the root,
//!   their orders inside `<Orders>` (an `<Order>` directly in `<Visit>` is
//!   taken too);
//! * date-times of these answers may also be a bare date (`2024-05-01`),
//!   read as midnight;
//! * a successful answer must have the command's data element (`<SystemInfo>`,
//!   `<Order>`, `<RK7Reference>`); without it the read fails
//!   ([`ReadErrorKind::MissingElement`]) rather than return an empty model
//!   that would look like "no cashes". A GetOrderList answer without
//!   `<Visit>` is an empty list.

use chrono::{NaiveDate, NaiveTime};

use crate::model::{Extra, LocalDateTime, Order, RestCode};
use crate::read::{Mode, Parser, R, ReadError, ReadErrorKind, Tag, Tok, Val, decode, shorten};

use super::error::{Error, StatusError};
use super::model::*;

/// The root element of every answer.
const ROOT: &str = "RK7QueryResult";

/// Reads an answer into its header, keeping the root's children as unknown
/// elements in [`QueryResult::extra`]. For commands this crate has no typed
/// reader for.
pub fn read_query_result(body: &[u8]) -> Result<QueryResult, Error> {
    read_answer(body, &mut Generic)
}

/// Reads the answer of `GetSystemInfo` or `GetSystemInfo2`.
pub fn read_system_info(body: &[u8]) -> Result<SystemInfo, Error> {
    let mut d = SystemInfoData::default();
    let q = read_answer(body, &mut d)?;
    let mut info = d.info.unwrap_or_default();
    if info.common_shift.is_none() {
        info.common_shift = d.beside;
    }
    info.server_version = q.server_version;
    info.xml_version = q.xml_version;
    Ok(info)
}

/// Reads the answer of `GetOrderList`; `No changes` is a success
/// ([`OrderList::unchanged`]).
pub fn read_order_list(body: &[u8]) -> Result<OrderList, Error> {
    let mut d = OrderList::default();
    let q = read_answer(body, &mut d)?;
    d.unchanged = q.status == Status::NoChanges;
    Ok(d)
}

/// Reads the answer of `GetOrder`: its `<Order>`, read exactly as the
/// `<Order>` of a notify event.
pub fn read_order(body: &[u8]) -> Result<Order, Error> {
    let mut d = First::new("Order", |p, tag, o| p.order(tag, o));
    read_answer(body, &mut d)?;
    Ok(d.value.unwrap_or_default())
}

/// Reads the answer of `GetRefData` into items of type `T` ([`RefItem`],
/// [`Cash`], [`Restaurant`], [`Employee`]).
pub fn read_reference<T: From<RefItem>>(body: &[u8]) -> Result<Reference<T>, Error> {
    let mut d = First::new("RK7Reference", reference);
    read_answer(body, &mut d)?;
    let r = d.value.unwrap_or_default();
    Ok(Reference {
        data_version: r.data_version,
        class_name: r.class_name,
        name: r.name,
        total_item_count: r.total_item_count,
        items: r.items.into_iter().map(T::from).collect(),
        extra: r.extra,
    })
}

/// Applies `read` to a body that came with HTTP status `status`.
///
/// The outcome is the answer's `Status`: a readable `<RK7QueryResult>` is
/// read whatever the HTTP status. Only when the body is not one (it failed
/// before its root element, or has another root) does a non-2xx HTTP status
/// become [`Error::Http`]; with a 2xx status that stays
/// [`Error::Unreadable`].
///
/// Neither quotes such a body: it is not r_keeper's answer but whatever
/// stands at the URL (a proxy's page, another service's data), and an
/// error that quoted it would hand that service's content to whoever reads
/// the error: the offending text is dropped, and so is the XML parser's
/// message (it may quote the text); the name of a wrong root element stays
/// (it says "this is a web page"). Once the root is `<RK7QueryResult>`, an
/// offending value may be quoted (shortened), as for notify events.
pub fn read_http_answer<T>(
    status: u16,
    body: &[u8],
    read: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    match read(body) {
        Err(Error::Unreadable(e)) if e.path.is_empty() => {
            if !(200..300).contains(&status) {
                return Err(Error::Http { status });
            }
            let detail = if e.kind == ReadErrorKind::NotXml {
                "the body is not r_keeper's XML".to_string()
            } else {
                e.detail
            };
            Err(Error::Unreadable(ReadError {
                found: None,
                detail,
                ..e
            }))
        }
        other => other,
    }
}

/// What one command's reader takes from the answer.
trait Data {
    /// The element a successful answer must have, while it is missing.
    fn missing(&self) -> Option<&'static str> {
        None
    }

    /// A root attribute the header does not name; true when taken.
    fn root_attr(&mut self, _name: &str, _v: &Val<'_, '_>) -> R<bool> {
        Ok(false)
    }

    /// A child of the root; true when read (else the caller keeps it as an
    /// unknown element).
    fn child<'a>(&mut self, p: &mut Parser<'a>, tag: Tag<'a>) -> R<bool>;
}

/// Reads the root and its attributes, checks the Status, then gives the
/// children to `data`.
fn read_answer(body: &[u8], data: &mut impl Data) -> Result<QueryResult, Error> {
    let decoded = decode(body)?;
    let mut p = Parser::new(&decoded.text, &decoded.map, Mode::General);
    let root = match p.next()? {
        Tok::Start(tag) if tag.name == ROOT => tag,
        Tok::Start(tag) => {
            let name = shorten(tag.name);
            return Err(p
                .fail(
                    ReadErrorKind::NotAnAnswer,
                    tag.at,
                    format!("the root element is <{name}>, expected <{ROOT}>"),
                )
                .into());
        }
        Tok::Text(t, at) => {
            let mut f = p.fail(ReadErrorKind::NotXml, at, "text outside of any element");
            f.found = Some(shorten(&t));
            return Err(f.into());
        }
        Tok::End => {
            return Err(p
                .fail(ReadErrorKind::NotXml, 0, "end tag without a start tag")
                .into());
        }
        Tok::Eof(at) => {
            return Err(p
                .fail(ReadErrorKind::NotAnAnswer, at, "the body has no element")
                .into());
        }
    };
    p.enter(&root)?;
    let mut q = QueryResult::default();
    let mut status = None;
    p.attrs(&root, |name, v| {
        let extra = &mut q.extra;
        match name {
            "Status" if status.is_none() => status = Some(Status::parse(&v.string())),
            "ServerVersion" if q.server_version.is_none() => q.server_version = Some(v.string()),
            "XmlVersion" if q.xml_version.is_none() => {
                lenient(&v, v.i64(), &mut q.xml_version, extra)
            }
            "NetName" if q.net_name.is_none() => q.net_name = Some(v.string()),
            "CMD" if q.cmd.is_none() => q.cmd = Some(v.string()),
            "ErrorText" if q.error_text.is_none() => {
                q.error_text = Some(v.string()).filter(|t| !t.trim().is_empty());
            }
            "RK7ErrorN" if q.error_n.is_none() => lenient(&v, v.i64(), &mut q.error_n, extra),
            "DateTime" if q.date_time.is_none() => {
                lenient(&v, datetime(&v), &mut q.date_time, extra);
            }
            "WorkTime" if q.work_time.is_none() => lenient(&v, v.i64(), &mut q.work_time, extra),
            "Processed" if q.processed.is_none() => lenient(&v, v.i64(), &mut q.processed, extra),
            _ => {
                if !data.root_attr(name, &v)? {
                    v.keep(extra);
                }
            }
        }
        Ok(())
    })?;
    let Some(status) = status else {
        let mut f = p.fail(
            ReadErrorKind::MissingAttribute,
            root.at,
            "every answer must say its Status",
        );
        f.path.push_str("@Status");
        return Err(f.into());
    };
    if !status.is_success() {
        return Err(StatusError {
            status,
            cmd: q.cmd,
            error_text: q.error_text,
            error_n: q.error_n,
        }
        .into());
    }
    q.status = status;
    let mut text = String::new();
    p.children(&root, &mut text, |p, child| {
        if !data.child(p, child)? {
            q.extra.elements.push(p.generic(child)?);
        }
        Ok(())
    })?;
    q.extra.text = text;
    if let Some(element) = data.missing() {
        let what = q.cmd.as_deref().unwrap_or("the");
        return Err(p
            .fail(
                ReadErrorKind::MissingElement,
                root.at,
                format!(
                    "{what} answer with Status {:?} has no <{element}>",
                    q.status.as_str()
                ),
            )
            .into());
    }
    p.leave();
    Ok(q)
}

/// A header value that does not parse is kept as an unknown attribute
/// instead of failing the answer: the Status must always get through.
fn lenient<T>(v: &Val<'_, '_>, parsed: R<Option<T>>, slot: &mut Option<T>, extra: &mut Extra) {
    match parsed {
        Ok(value) => *slot = value,
        Err(_) => v.keep(extra),
    }
}

/// A date-time, or a bare date read as midnight (assumed tolerance: the
/// documented form is the date-time only).
fn datetime(v: &Val<'_, '_>) -> R<Option<LocalDateTime>> {
    let text = v.string();
    let t = text.trim();
    if t.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d")
    {
        return Ok(Some(LocalDateTime::new(d.and_time(NaiveTime::MIN))));
    }
    v.datetime()
}

/// Text attribute; empty is `None`.
fn text(v: &Val<'_, '_>) -> Option<String> {
    Some(v.string()).filter(|s| !s.is_empty())
}

/// Appends a default `T` and returns it, to be filled in place.
fn push_default<T: Default>(v: &mut Vec<T>) -> &mut T {
    v.push(T::default());
    let last = v.len() - 1;
    &mut v[last]
}

/// Reads the children of `tag` that are named `item` with `on_item`, and
/// reads and drops the others; the attributes of `tag` are not looked at.
/// For the list wrappers (`<Orders>`, `<Items>`).
fn list<'a>(
    p: &mut Parser<'a>,
    tag: Tag<'a>,
    item: &str,
    mut on_item: impl FnMut(&mut Parser<'a>, Tag<'a>) -> R<()>,
) -> R<()> {
    let mut text = String::new();
    p.children(&tag, &mut text, |p, child| {
        if child.name == item {
            on_item(p, child)
        } else {
            p.generic(child).map(drop)
        }
    })
}

/// [`read_query_result`]: takes nothing, so every child is kept.
struct Generic;

impl Data for Generic {
    fn child<'a>(&mut self, _: &mut Parser<'a>, _: Tag<'a>) -> R<bool> {
        Ok(false)
    }
}

#[derive(Default)]
struct SystemInfoData {
    info: Option<SystemInfo>,
    /// A `<CommonShift>` beside `<SystemInfo>`.
    beside: Option<CommonShift>,
}

impl Data for SystemInfoData {
    fn missing(&self) -> Option<&'static str> {
        self.info.is_none().then_some("SystemInfo")
    }

    fn child<'a>(&mut self, p: &mut Parser<'a>, tag: Tag<'a>) -> R<bool> {
        match tag.name {
            "SystemInfo" if self.info.is_none() => {
                system_info(p, tag, self.info.insert(SystemInfo::default()))?;
            }
            "CommonShift" if self.beside.is_none() => {
                common_shift(p, tag, self.beside.insert(CommonShift::default()))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn system_info<'a>(p: &mut Parser<'a>, tag: Tag<'a>, s: &mut SystemInfo) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, v| {
        match name {
            "NetName" if s.net_name.is_none() => s.net_name = text(&v),
            "SystemTime" if s.system_time.is_none() => s.system_time = text(&v),
            "ReqSysVer" if s.req_sys_ver.is_none() => s.req_sys_ver = text(&v),
            "ProcessID" if s.process_id.is_none() => s.process_id = v.i64()?,
            "ShiftDate" if s.shift_date.is_none() => s.shift_date = datetime(&v)?,
            "RestCode" if s.rest_code.is_none() => s.rest_code = text(&v).map(RestCode),
            _ => v.keep(&mut extra),
        }
        Ok(())
    })?;
    let mut body = String::new();
    p.children(&tag, &mut body, |p, child| {
        match child.name {
            "CashGroup" if s.cash_group.is_none() => {
                p.reference(child, s.cash_group.insert(Default::default()))?;
            }
            "Restaurant" if s.restaurant.is_none() => {
                p.reference(child, s.restaurant.insert(Default::default()))?;
            }
            "CommonShift" if s.common_shift.is_none() => {
                common_shift(p, child, s.common_shift.insert(Default::default()))?;
            }
            _ => extra.elements.push(p.generic(child)?),
        }
        Ok(())
    })?;
    extra.text = body;
    s.extra = extra;
    Ok(())
}

fn common_shift<'a>(p: &mut Parser<'a>, tag: Tag<'a>, c: &mut CommonShift) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, v| {
        match name {
            "ShiftDate" if c.shift_date.is_none() => c.shift_date = datetime(&v)?,
            "ShiftNum" if c.shift_num.is_none() => c.shift_num = v.i64()?,
            "ShiftStartTime" if c.shift_start_time.is_none() => {
                c.shift_start_time = datetime(&v)?;
            }
            _ => v.keep(&mut extra),
        }
        Ok(())
    })?;
    p.rest(&tag, &mut extra)?;
    c.extra = extra;
    Ok(())
}

impl Data for OrderList {
    fn root_attr(&mut self, name: &str, v: &Val<'_, '_>) -> R<bool> {
        if name == "lastversion" && self.last_version.is_none() {
            self.last_version = v.i64()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn child<'a>(&mut self, p: &mut Parser<'a>, tag: Tag<'a>) -> R<bool> {
        if tag.name != "Visit" {
            return Ok(false);
        }
        visit(p, tag, push_default(&mut self.visits))?;
        Ok(true)
    }
}

fn visit<'a>(p: &mut Parser<'a>, tag: Tag<'a>, v: &mut OrderListVisit) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, a| {
        match name {
            "VisitID" if v.visit_id.is_none() => v.visit_id = a.i64()?,
            "guid" if v.guid.is_none() => v.guid = a.guid()?,
            "Finished" if v.finished.is_none() => v.finished = a.bool()?,
            "GuestsCount" if v.guests_count.is_none() => v.guests_count = a.i64()?,
            _ => a.keep(&mut extra),
        }
        Ok(())
    })?;
    let mut body = String::new();
    p.children(&tag, &mut body, |p, child| {
        match child.name {
            "Orders" => list(p, child, "Order", |p, o| {
                order_list_item(p, o, push_default(&mut v.orders))
            })?,
            "Order" => order_list_item(p, child, push_default(&mut v.orders))?,
            _ => extra.elements.push(p.generic(child)?),
        }
        Ok(())
    })?;
    extra.text = body;
    v.extra = extra;
    Ok(())
}

fn order_list_item<'a>(p: &mut Parser<'a>, tag: Tag<'a>, o: &mut OrderListItem) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, v| {
        match name {
            "OrderID" if o.order_id.is_none() => o.order_id = v.i64()?,
            "guid" if o.guid.is_none() => o.guid = v.guid()?,
            "crc32" if o.crc32.is_none() => o.crc32 = v.i64()?,
            "Version" if o.version.is_none() => o.version = v.i64()?,
            "OrderName" if o.order_name.is_none() => o.order_name = Some(v.string()),
            "OrderSum" if o.order_sum.is_none() => o.order_sum = v.money()?,
            "ToPaySum" if o.to_pay_sum.is_none() => o.to_pay_sum = v.money()?,
            "PrepaySum" if o.prepay_sum.is_none() => o.prepay_sum = v.money()?,
            "TableID" if o.table_id.is_none() => o.table_id = v.i64()?,
            "TableCode" if o.table_code.is_none() => o.table_code = v.i64()?,
            "WaiterID" if o.waiter_id.is_none() => o.waiter_id = v.i64()?,
            "WaiterCode" if o.waiter_code.is_none() => o.waiter_code = v.i64()?,
            "CreateTime" if o.create_time.is_none() => o.create_time = datetime(&v)?,
            "FinishTime" if o.finish_time.is_none() => o.finish_time = datetime(&v)?,
            "Finished" if o.finished.is_none() => o.finished = v.bool()?,
            "Bill" if o.bill.is_none() => o.bill = v.bool()?,
            "paid" if o.paid.is_none() => o.paid = v.bool()?,
            "locked" if o.locked.is_none() => o.locked = v.bool()?,
            "url" if o.url.is_none() => o.url = Some(v.string()),
            _ => v.keep(&mut extra),
        }
        Ok(())
    })?;
    p.rest(&tag, &mut extra)?;
    o.extra = extra;
    Ok(())
}

/// The first root child named `name`, read by `read` (GetOrder's `<Order>`,
/// GetRefData's `<RK7Reference>`); later ones are kept as unknown elements.
struct First<T> {
    name: &'static str,
    read: for<'a> fn(&mut Parser<'a>, Tag<'a>, &mut T) -> R<()>,
    value: Option<T>,
}

impl<T: Default> First<T> {
    fn new(
        name: &'static str,
        read: for<'a> fn(&mut Parser<'a>, Tag<'a>, &mut T) -> R<()>,
    ) -> Self {
        First {
            name,
            read,
            value: None,
        }
    }
}

impl<T: Default> Data for First<T> {
    fn missing(&self) -> Option<&'static str> {
        self.value.is_none().then_some(self.name)
    }

    fn child<'a>(&mut self, p: &mut Parser<'a>, tag: Tag<'a>) -> R<bool> {
        if tag.name != self.name || self.value.is_some() {
            return Ok(false);
        }
        (self.read)(p, tag, self.value.insert(T::default()))?;
        Ok(true)
    }
}

fn reference<'a>(p: &mut Parser<'a>, tag: Tag<'a>, r: &mut Reference<RefItem>) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, v| {
        match name {
            "DataVersion" if r.data_version.is_none() => r.data_version = v.i64()?,
            "ClassName" if r.class_name.is_none() => r.class_name = text(&v),
            "Name" if r.name.is_none() => r.name = text(&v),
            "TotalItemCount" if r.total_item_count.is_none() => r.total_item_count = v.i64()?,
            _ => v.keep(&mut extra),
        }
        Ok(())
    })?;
    let mut body = String::new();
    p.children(&tag, &mut body, |p, child| {
        match child.name {
            "Items" => list(p, child, "Item", |p, i| {
                ref_item(p, i, push_default(&mut r.items))
            })?,
            _ => extra.elements.push(p.generic(child)?),
        }
        Ok(())
    })?;
    extra.text = body;
    r.extra = extra;
    Ok(())
}

fn ref_item<'a>(p: &mut Parser<'a>, tag: Tag<'a>, i: &mut RefItem) -> R<()> {
    let mut extra = Extra::default();
    p.attrs(&tag, |name, v| {
        match name {
            "Ident" if i.ident.is_none() => i.ident = v.i64()?,
            "Code" if i.code.is_none() => i.code = v.i64()?,
            "Name" if i.name.is_none() => i.name = Some(v.string()),
            "GUIDString" if i.guid.is_none() => i.guid = v.guid()?,
            "Status" if i.status.is_none() => i.status = text(&v),
            _ => v.keep(&mut extra),
        }
        Ok(())
    })?;
    p.rest(&tag, &mut extra)?;
    i.extra = extra;
    Ok(())
}
