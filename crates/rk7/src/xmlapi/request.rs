//! Builds the request bodies (`<RK7Query><RK7CMD CMD="..." .../></RK7Query>`)
//! with correct XML escaping, so that no value, whatever it holds, can change
//! the shape of the request.
//!
//! Names (of attributes and child elements) are `&'static str`: they come
//! from code, never from data. Values are escaped; characters XML 1.0 cannot
//! carry at all (control characters other than tab, line feed and carriage
//! return) become U+FFFD. Booleans are written `1` / `0`, GUIDs upper case in
//! braces, as the cash server expects; command names are case-sensitive.
//!
//! The body is UTF-8 with a UTF-8 declaration; it must be sent with
//! `Content-Type: application/xml` (a body sent as a form is read as empty
//! and answered `Query Parse Error`).

use crate::model::Guid;
use crate::write::escape_into;

/// One command: `<RK7CMD CMD="..." attrs...>children</RK7CMD>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    cmd: String,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Element>,
}

/// A child element of a command, such as `<Order guid="{...}"/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
}

impl Element {
    /// An element with no attributes.
    pub fn new(name: &'static str) -> Self {
        debug_assert!(valid_name(name), "{name:?} is not an XML name");
        Self {
            name,
            attrs: Vec::new(),
        }
    }

    /// Sets an attribute (replacing one of the same name).
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        set(&mut self.attrs, name, value.into());
        self
    }
}

impl Request {
    /// A command by name (`GetOrder`); the name is case-sensitive.
    pub fn new(cmd: impl Into<String>) -> Self {
        Self {
            cmd: cmd.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Sets an attribute of `<RK7CMD>` (replacing one of the same name;
    /// `CMD` itself is set by [`Request::new`] and cannot be set here).
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        debug_assert!(name != "CMD", "the command is set by Request::new");
        set(&mut self.attrs, name, value.into());
        self
    }

    /// Sets a flag attribute, written `1` / `0`.
    pub fn flag(self, name: &'static str, value: bool) -> Self {
        self.attr(name, if value { "1" } else { "0" })
    }

    /// Sets an integer attribute.
    pub fn int(self, name: &'static str, value: i64) -> Self {
        self.attr(name, value.to_string())
    }

    /// Appends a child element.
    pub fn child(mut self, element: Element) -> Self {
        self.children.push(element);
        self
    }

    /// The command name.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The request body: an XML declaration, then `<RK7Query>` with this
    /// command in it, in UTF-8.
    pub fn to_xml(&self) -> String {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RK7Query><RK7CMD");
        write_attr(&mut out, "CMD", &self.cmd);
        for (name, value) in &self.attrs {
            write_attr(&mut out, name, value);
        }
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
        } else {
            out.push(b'>');
            for c in &self.children {
                out.push(b'<');
                out.extend_from_slice(c.name.as_bytes());
                for (name, value) in &c.attrs {
                    write_attr(&mut out, name, value);
                }
                out.extend_from_slice(b"/>");
            }
            out.extend_from_slice(b"</RK7CMD>");
        }
        out.extend_from_slice(b"</RK7Query>\n");
        // Escaping only replaces ASCII bytes by ASCII text, so the UTF-8 of
        // the values stays valid; the fallback keeps this free of a panic.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// `GetSystemInfo`: the cash server's version, restaurant and shift
    /// date. The shift number needs [`Request::get_system_info2`].
    pub fn get_system_info() -> Self {
        Self::new("GetSystemInfo")
    }

    /// `GetSystemInfo2`: as `GetSystemInfo`, plus `<CommonShift>` with the
    /// common shift's number.
    pub fn get_system_info2() -> Self {
        Self::new("GetSystemInfo2")
    }

    /// `GetOrderList` with the given options.
    pub fn get_order_list(query: &OrderListQuery) -> Self {
        let mut r = Self::new("GetOrderList").flag("onlyOpened", query.only_opened);
        if let Some(v) = query.need_idents {
            r = r.flag("needIdents", v);
        }
        if let Some(v) = query.need_codes {
            r = r.flag("needCodes", v);
        }
        if let Some(v) = query.need_names {
            r = r.flag("needNames", v);
        }
        if let Some(v) = query.last_version {
            r = r.int("lastversion", v);
        }
        r
    }

    /// `GetOrder` for one order: `<Order guid="{...}"/>` or
    /// `<Order visit="..." orderIdent="..."/>`.
    pub fn get_order(key: &OrderKey) -> Self {
        let order = match key {
            OrderKey::Guid(g) => Element::new("Order").attr("guid", g.canonical()),
            OrderKey::Visit { visit, order_ident } => Element::new("Order")
                .attr("visit", visit.to_string())
                .attr("orderIdent", order_ident.to_string()),
        };
        Self::new("GetOrder").child(order)
    }

    /// `GetRefData` for a reference by name (`CASHES`, `RESTAURANTS`,
    /// `EMPLOYEES`, `MENUITEMS` ...), with the given options.
    pub fn get_ref_data(ref_name: &str, query: &RefDataQuery) -> Self {
        let mut r = Self::new("GetRefData").attr("RefName", ref_name);
        if let Some(v) = query.only_active {
            r = r.flag("OnlyActive", v);
        }
        if let Some(v) = &query.prop_mask {
            r = r.attr("PropMask", v.clone());
        }
        if let Some(v) = query.offset {
            r = r.attr("Offset", v.to_string());
        }
        if let Some(v) = query.item_count {
            r = r.attr("ItemCount", v.to_string());
        }
        r
    }
}

/// Which order `GetOrder` is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderKey {
    /// By GUID (sent upper case in braces).
    Guid(Guid),
    /// By visit and the order's number within it.
    Visit {
        /// `visit`
        visit: i64,
        /// `orderIdent`
        order_ident: i64,
    },
}

impl From<Guid> for OrderKey {
    fn from(g: Guid) -> Self {
        Self::Guid(g)
    }
}

/// The options of `GetOrderList`.
///
/// `onlyOpened` is always sent (`0` when false); the other flags only when
/// set, so that the server's defaults apply otherwise. The optional
/// `<Waiter>` / `<Table>` filters are not offered: their shape is not
/// documented (build them with [`Request::child`] if needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderListQuery {
    /// `onlyOpened`: only orders that are not finished.
    pub only_opened: bool,
    /// `lastversion`: the [`OrderList::last_version`](super::OrderList) of
    /// the previous answer; if nothing changed since, the answer is
    /// `No changes` with no data.
    pub last_version: Option<i64>,
    /// `needIdents`
    pub need_idents: Option<bool>,
    /// `needCodes`
    pub need_codes: Option<bool>,
    /// `needNames`
    pub need_names: Option<bool>,
}

impl OrderListQuery {
    /// Only the open orders.
    pub fn opened() -> Self {
        Self {
            only_opened: true,
            ..Self::default()
        }
    }

    /// The same query, asking only for changes since `version`.
    pub fn changed_since(self, version: i64) -> Self {
        Self {
            last_version: Some(version),
            ..self
        }
    }
}

/// The options of `GetRefData`; each is sent only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefDataQuery {
    /// `OnlyActive`: leave out inactive items.
    pub only_active: Option<bool>,
    /// `PropMask`, e.g. `items.(Ident,Code,Name)`: which attributes to send.
    pub prop_mask: Option<String>,
    /// `Offset`: paging, the first item to send.
    pub offset: Option<u64>,
    /// `ItemCount`: paging, how many items to send.
    pub item_count: Option<u64>,
}

fn set(attrs: &mut Vec<(&'static str, String)>, name: &'static str, value: String) {
    debug_assert!(valid_name(name), "{name:?} is not an XML name");
    match attrs.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => attrs.push((name, value)),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

fn write_attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    if value.chars().any(forbidden) {
        let clean: String = value
            .chars()
            .map(|c| if forbidden(c) { '\u{FFFD}' } else { c })
            .collect();
        escape_into(out, clean.as_bytes(), true);
    } else {
        escape_into(out, value.as_bytes(), true);
    }
    out.push(b'"');
}

/// Characters XML 1.0 cannot carry, not even as a character reference.
fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}
