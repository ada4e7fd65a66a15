//! Writes an [`Event`] as the XML document a cash server posts.
//!
//! The output is what the tillgate emulator sends and what the relay forwards
//! when it has to rebuild an event, so it follows the cash server's own form:
//! a UTF-8 declaration, the root `<a>`, attribute names spelled exactly as
//! r_keeper spells them, one child element per line. Unknown attributes and
//! elements kept in [`Extra`] are written after the named ones, in the order
//! they were read, which is what makes `read(write(e)) == e` hold: the reader
//! gives the first attribute or element of a known name to the model and
//! keeps repeats as unknown.
//!
//! Spelling choices: `kdsstate` is always written as an attribute in lower
//! case, whichever form was read (see [`crate::KdsState`]).

use crate::model::*;

/// Writes the event as a complete UTF-8 XML document.
pub fn write(event: &Event) -> Vec<u8> {
    let mut w = Writer::with_capacity(1024);
    w.out
        .extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    w.start("a", &event.extra);
    w.opt_str("RestCode", event.rest_code.as_ref().map(|r| r.0.as_str()));
    w.opt_dt("DateTime", event.date_time.as_ref());
    w.i64("Situation", event.situation.code());
    w.opt_u64("seqnumber", event.seqnumber);
    w.opt_guid("guid", event.guid.as_ref());
    w.opt_str("name", event.name.as_deref());
    w.opt_i64("ShiftNum", event.shift_num);
    w.opt_dt("ShiftDate", event.shift_date.as_ref());
    w.body(&event.extra);
    if let Some(s) = &event.station {
        station(&mut w, "Station", s);
    }
    if let Some(s) = &event.server {
        server(&mut w, s);
    }
    if let Some(p) = &event.waiter {
        person(&mut w, "Waiter", p);
    }
    if let Some(o) = &event.order {
        order(&mut w, o);
    }
    for s in &event.sessions {
        session(&mut w, s);
    }
    if let Some(c) = &event.change_log {
        change_log(&mut w, c);
    }
    for i in &event.items {
        w.start("Item", &i.extra);
        w.opt_str("ClassName", i.class_name.as_deref());
        w.body(&i.extra);
        w.end("Item", &i.extra);
    }
    w.end("a", &event.extra);
    w.out.push(b'\n');
    w.out
}

fn station(w: &mut Writer, name: &str, s: &Station) {
    w.start(name, &s.extra);
    w.opt_i64("id", s.id);
    w.opt_i64("code", s.code);
    w.opt_str("name", s.name.as_deref());
    w.opt_str("NetName", s.net_name.as_deref());
    w.body(&s.extra);
    w.end(name, &s.extra);
}

fn server(w: &mut Writer, s: &Server) {
    w.start("Server", &s.extra);
    w.opt_i64("id", s.id);
    w.opt_i64("code", s.code);
    w.opt_str("name", s.name.as_deref());
    w.opt_str("NetName", s.net_name.as_deref());
    w.body(&s.extra);
    w.end("Server", &s.extra);
}

fn reference(w: &mut Writer, name: &str, r: &Ref) {
    w.start(name, &r.extra);
    w.opt_i64("id", r.id);
    w.opt_i64("code", r.code);
    w.opt_str("name", r.name.as_deref());
    w.body(&r.extra);
    w.end(name, &r.extra);
}

fn person(w: &mut Writer, name: &str, p: &Person) {
    w.start(name, &p.extra);
    w.opt_i64("id", p.id);
    w.opt_i64("code", p.code);
    w.opt_str("name", p.name.as_deref());
    w.body(&p.extra);
    if let Some(r) = &p.role {
        reference(w, "Role", r);
    }
    w.end(name, &p.extra);
}

fn order(w: &mut Writer, o: &Order) {
    w.start("Order", &o.extra);
    w.opt_i64("visit", o.visit);
    w.opt_i64("orderIdent", o.order_ident);
    w.opt_guid("guid", o.guid.as_ref());
    w.opt_str("url", o.url.as_deref());
    w.opt_str("orderName", o.order_name.as_deref());
    w.opt_i64("version", o.version);
    w.opt_i64("crc32", o.crc32);
    w.opt_i64("orderSum", o.order_sum.map(|k| k.0));
    w.opt_i64("discountSum", o.discount_sum.map(|k| k.0));
    w.opt_i64("unpaidSum", o.unpaid_sum.map(|k| k.0));
    w.opt_i64("prepaySum", o.prepay_sum.map(|k| k.0));
    w.opt_i64("promisedSum", o.promised_sum.map(|k| k.0));
    w.opt_i64("totalPieces", o.total_pieces);
    w.opt_i64("cookMins", o.cook_mins);
    w.opt_bool("paid", o.paid);
    w.opt_bool("finished", o.finished);
    w.opt_bool("deleted", o.deleted);
    w.opt_bool("locked", o.locked);
    w.opt_bool("purchase", o.purchase);
    w.opt_dt("openTime", o.open_time.as_ref());
    w.opt_i64("seqNumber", o.seq_number);
    w.opt_str("persistentComment", o.persistent_comment.as_deref());
    w.opt_str("nonPersistentComment", o.non_persistent_comment.as_deref());
    w.opt_str("kdsstate", o.kds_state.as_ref().map(KdsState::as_str));
    w.body(&o.extra);
    if let Some(p) = &o.creator {
        person(w, "Creator", p);
    }
    if let Some(p) = &o.waiter {
        person(w, "Waiter", p);
    }
    if let Some(r) = &o.order_category {
        reference(w, "OrderCategory", r);
    }
    if let Some(r) = &o.order_type {
        reference(w, "OrderType", r);
    }
    if let Some(r) = &o.table {
        reference(w, "Table", r);
    }
    if let Some(s) = &o.station {
        station(w, "Station", s);
    }
    if let Some(r) = &o.guest_type {
        reference(w, "GuestType", r);
    }
    if let Some(g) = &o.guests {
        w.start("Guests", &g.extra);
        w.opt_i64("count", g.count);
        w.body(&g.extra);
        for guest in &g.guests {
            w.start("Guest", &guest.extra);
            w.opt_str("guestLabel", guest.guest_label.as_deref());
            w.opt_str("cardCode", guest.card_code.as_deref());
            w.body(&guest.extra);
            w.end("Guest", &guest.extra);
        }
        w.end("Guests", &g.extra);
    }
    if !o.external_props.is_empty() || !o.external_props_extra.is_empty() {
        let x = &o.external_props_extra;
        w.start("ExternalProps", x);
        w.body(x);
        for p in &o.external_props {
            w.start("Prop", &p.extra);
            w.opt_str("name", p.name.as_deref());
            w.opt_str("value", p.value.as_deref());
            w.body(&p.extra);
            w.end("Prop", &p.extra);
        }
        w.end("ExternalProps", x);
    }
    if let Some(s) = &o.source_order {
        w.start("SourceOrder", &s.extra);
        w.opt_i64("visit", s.visit);
        w.opt_i64("orderIdent", s.order_ident);
        w.opt_guid("guid", s.guid.as_ref());
        w.body(&s.extra);
        w.end("SourceOrder", &s.extra);
    }
    for s in &o.sessions {
        session(w, s);
    }
    w.end("Order", &o.extra);
}

fn session(w: &mut Writer, s: &Session) {
    w.start("Session", &s.extra);
    w.opt_i64("uni", s.uni);
    w.opt_guid("line_guid", s.line_guid.as_ref());
    w.opt_i64("state", s.state.map(|v| v.code()));
    w.opt_i64("sessionID", s.session_id);
    w.opt_bool("isDraft", s.is_draft);
    w.opt_dt("remindTime", s.remind_time.as_ref());
    w.opt_dt("startService", s.start_service.as_ref());
    w.opt_bool("printed", s.printed);
    w.opt_i64("cookMins", s.cook_mins);
    w.body(&s.extra);
    if let Some(v) = &s.station {
        station(w, "Station", v);
    }
    if let Some(p) = &s.author {
        person(w, "Author", p);
    }
    if let Some(p) = &s.creator {
        person(w, "Creator", p);
    }
    if let Some(r) = &s.course {
        reference(w, "Course", r);
    }
    if let Some(r) = &s.price_scale {
        reference(w, "PriceScale", r);
    }
    if let Some(r) = &s.trade_group {
        reference(w, "TradeGroup", r);
    }
    for d in &s.dishes {
        dish(w, d);
    }
    for c in &s.combos {
        combo(w, c);
    }
    for d in &s.discounts {
        discount(w, d);
    }
    for p in &s.prepays {
        pay(w, "Prepay", p);
    }
    for p in &s.pays {
        pay(w, "Pay", p);
    }
    for p in &s.print_checks {
        print_check(w, p);
    }
    w.end("Session", &s.extra);
}

fn dish(w: &mut Writer, d: &Dish) {
    w.start("Dish", &d.extra);
    w.opt_i64("id", d.id);
    w.opt_i64("code", d.code);
    w.opt_str("name", d.name.as_deref());
    w.opt_i64("uni", d.uni);
    w.opt_guid("line_guid", d.line_guid.as_ref());
    w.opt_i64("state", d.state.map(|v| v.code()));
    w.opt_i64("price", d.price.map(|k| k.0));
    w.opt_i64("amount", d.amount.map(|k| k.0));
    w.opt_i64("quantity", d.quantity.map(|q| q.0));
    w.opt_i64("srcQuantity", d.src_quantity.map(|q| q.0));
    w.opt_i64("paidAmount", d.paid_amount.map(|k| k.0));
    w.opt_i64("seat", d.seat);
    w.opt_str("kdsstate", d.kds_state.as_ref().map(KdsState::as_str));
    w.opt_bool("new", d.new);
    w.opt_str("SourceGUIDString", d.source_guid_string.as_deref());
    w.body(&d.extra);
    for m in &d.modis {
        w.start("Modi", &m.extra);
        w.opt_i64("id", m.id);
        w.opt_i64("code", m.code);
        w.opt_str("name", m.name.as_deref());
        w.opt_i64("uni", m.uni);
        w.opt_i64("count", m.count);
        w.opt_i64("price", m.price.map(|k| k.0));
        w.opt_i64("amount", m.amount.map(|k| k.0));
        w.body(&m.extra);
        w.end("Modi", &m.extra);
    }
    for x in &d.discounts {
        discount(w, x);
    }
    for v in &d.voids {
        w.start("Void", &v.extra);
        w.opt_i64("id", v.id);
        w.opt_i64("code", v.code);
        w.opt_str("name", v.name.as_deref());
        w.opt_dt("dateTime", v.date_time.as_ref());
        w.opt_i64("quantity", v.quantity.map(|q| q.0));
        w.opt_i64("amount", v.amount.map(|k| k.0));
        w.opt_str("openName", v.open_name.as_deref());
        w.body(&v.extra);
        if let Some(p) = &v.author {
            person(w, "Author", p);
        }
        w.end("Void", &v.extra);
    }
    for c in &d.consums {
        w.start("Consum", &c.extra);
        w.opt_i64("id", c.id);
        w.opt_i64("code", c.code);
        w.opt_str("name", c.name.as_deref());
        w.opt_i64("quantity", c.quantity.map(|q| q.0));
        w.opt_i64("amount", c.amount.map(|k| k.0));
        w.body(&c.extra);
        w.end("Consum", &c.extra);
    }
    w.end("Dish", &d.extra);
}

fn combo(w: &mut Writer, c: &Combo) {
    w.start("Combo", &c.extra);
    w.opt_i64("id", c.id);
    w.opt_i64("code", c.code);
    w.opt_str("name", c.name.as_deref());
    w.opt_i64("uni", c.uni);
    w.opt_guid("line_guid", c.line_guid.as_ref());
    w.opt_i64("state", c.state.map(|v| v.code()));
    w.opt_i64("price", c.price.map(|k| k.0));
    w.opt_i64("amount", c.amount.map(|k| k.0));
    w.opt_i64("quantity", c.quantity.map(|q| q.0));
    w.body(&c.extra);
    for k in &c.components {
        w.start("Component", &k.extra);
        w.opt_i64("id", k.id);
        w.opt_i64("code", k.code);
        w.opt_str("name", k.name.as_deref());
        w.body(&k.extra);
        for d in &k.dishes {
            dish(w, d);
        }
        w.end("Component", &k.extra);
    }
    w.end("Combo", &c.extra);
}

fn discount(w: &mut Writer, d: &Discount) {
    w.start("Discount", &d.extra);
    w.opt_i64("id", d.id);
    w.opt_i64("code", d.code);
    w.opt_str("name", d.name.as_deref());
    w.opt_i64("amount", d.amount.map(|k| k.0));
    w.opt_i64("maxamount", d.max_amount.map(|k| k.0));
    w.opt_str("cardCode", d.card_code.as_deref());
    w.opt_bool("deleted", d.deleted);
    w.body(&d.extra);
    w.end("Discount", &d.extra);
}

fn pay(w: &mut Writer, name: &str, p: &Pay) {
    w.start(name, &p.extra);
    w.opt_i64("id", p.id);
    w.opt_i64("code", p.code);
    w.opt_str("name", p.name.as_deref());
    w.opt_i64("amount", p.amount.map(|k| k.0));
    w.opt_i64("basicSum", p.basic_sum.map(|k| k.0));
    w.opt_str("cardCode", p.card_code.as_deref());
    w.opt_i64("TransactionStatus", p.transaction_status.map(|t| t.code()));
    w.opt_bool("deleted", p.deleted);
    w.opt_str("owner", p.owner.as_deref());
    w.opt_str("authcode", p.auth_code.as_deref());
    w.body(&p.extra);
    w.end(name, &p.extra);
}

fn print_check(w: &mut Writer, p: &PrintCheck) {
    w.start("PrintCheck", &p.extra);
    w.opt_i64("CheckNum", p.check_num);
    w.opt_i64("amount", p.amount.map(|k| k.0));
    w.opt_i64("unpaidSum", p.unpaid_sum.map(|k| k.0));
    w.opt_str("GlobalFiscalID", p.global_fiscal_id.as_deref());
    w.opt_i64("state", p.state.map(|v| v.code()));
    w.opt_bool("deleted", p.deleted);
    w.opt_bool("bill", p.bill);
    w.opt_dt("printTime", p.print_time.as_ref());
    w.body(&p.extra);
    if let Some(a) = &p.author {
        person(w, "Author", a);
    }
    if let Some(r) = &p.reason {
        reference(w, "Reason", r);
    }
    if let Some(m) = &p.delete_manager {
        person(w, "DeleteManager", m);
    }
    for x in &p.pays {
        pay(w, "Pay", x);
    }
    w.end("PrintCheck", &p.extra);
}

fn change_log(w: &mut Writer, c: &ChangeLog) {
    w.start("ChangeLog", &c.extra);
    w.body(&c.extra);
    for d in &c.dishes {
        w.start("Dish", &d.extra);
        w.opt_i64("id", d.id);
        w.opt_i64("code", d.code);
        w.opt_str("name", d.name.as_deref());
        w.opt_i64("uni", d.uni);
        w.opt_i64("oldvalue", d.old_value.map(|q| q.0));
        w.opt_i64("newvalue", d.new_value.map(|q| q.0));
        w.opt_bool("new", d.new);
        w.body(&d.extra);
        w.end("Dish", &d.extra);
    }
    w.end("ChangeLog", &c.extra);
}

/// A small streaming XML writer.
///
/// An element is opened with [`Writer::start`], gets its named attributes,
/// then [`Writer::body`] writes the unknown attributes, the text and the
/// unknown children; the caller writes the named children after that, and
/// [`Writer::end`] closes it. The start tag stays open (`pending`) until the
/// first child or text, so childless elements come out as `<X .../>`.
///
/// Whitespace: a newline goes before each child element, but never inside an
/// element that has text, because the reader would then take that whitespace
/// as part of the text.
struct Writer {
    out: Vec<u8>,
    pending: bool,
    /// For each open element: does it have text (so: no newlines inside)?
    has_text: Vec<bool>,
}

impl Writer {
    fn with_capacity(n: usize) -> Self {
        Self {
            out: Vec::with_capacity(n),
            pending: false,
            has_text: Vec::with_capacity(8),
        }
    }

    fn close_pending(&mut self) {
        if self.pending {
            self.out.push(b'>');
            self.pending = false;
        }
    }

    fn start(&mut self, name: &str, own: &Extra) {
        self.start_raw(name, !own.text.is_empty());
    }

    fn start_raw(&mut self, name: &str, has_text: bool) {
        let indent = matches!(self.has_text.last(), Some(false));
        self.close_pending();
        if indent {
            self.out.push(b'\n');
        }
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.pending = true;
        self.has_text.push(has_text);
    }

    /// Writes the unknown child elements, then closes the element. They come
    /// after the named children because the reader gives the first element
    /// of a known name to the model and keeps later ones as unknown.
    fn end(&mut self, name: &str, own: &Extra) {
        for e in &own.elements {
            self.element(e);
        }
        self.end_raw(name);
    }

    fn end_raw(&mut self, name: &str) {
        let has_text = self.has_text.pop().unwrap_or(false);
        if self.pending {
            self.out.extend_from_slice(b"/>");
            self.pending = false;
        } else {
            if !has_text {
                self.out.push(b'\n');
            }
            self.out.extend_from_slice(b"</");
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'>');
        }
    }

    /// Unknown attributes (after the named ones, for the same reason as in
    /// [`Writer::end`]), then the text.
    fn body(&mut self, extra: &Extra) {
        for (k, v) in &extra.attrs {
            self.str(k, v);
        }
        if !extra.text.is_empty() {
            self.close_pending();
            escape_into(&mut self.out, extra.text.as_bytes(), false);
        }
    }

    fn element(&mut self, e: &XmlElement) {
        self.start_raw(&e.name, !e.text.is_empty());
        for (k, v) in &e.attrs {
            self.str(k, v);
        }
        if !e.text.is_empty() {
            self.close_pending();
            escape_into(&mut self.out, e.text.as_bytes(), false);
        }
        for c in &e.children {
            self.element(c);
        }
        self.end_raw(&e.name);
    }

    fn attr_name(&mut self, name: &str) {
        self.out.push(b' ');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"=\"");
    }

    fn str(&mut self, name: &str, value: &str) {
        self.attr_name(name);
        escape_into(&mut self.out, value.as_bytes(), true);
        self.out.push(b'"');
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(name, v);
        }
    }

    fn i64(&mut self, name: &str, value: i64) {
        self.attr_name(name);
        push_int(&mut self.out, value < 0, value.unsigned_abs());
        self.out.push(b'"');
    }

    fn opt_i64(&mut self, name: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.i64(name, v);
        }
    }

    fn opt_u64(&mut self, name: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.attr_name(name);
            push_int(&mut self.out, false, v);
            self.out.push(b'"');
        }
    }

    fn opt_bool(&mut self, name: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.attr_name(name);
            self.out.push(if v { b'1' } else { b'0' });
            self.out.push(b'"');
        }
    }

    fn opt_dt(&mut self, name: &str, value: Option<&LocalDateTime>) {
        if let Some(v) = value {
            self.attr_name(name);
            // The Display form contains no character that needs escaping.
            use std::io::Write as _;
            let _ = write!(self.out, "{v}");
            self.out.push(b'"');
        }
    }

    fn opt_guid(&mut self, name: &str, value: Option<&Guid>) {
        if let Some(g) = value {
            self.str(name, g.as_str());
        }
    }
}

fn push_int(out: &mut Vec<u8>, negative: bool, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Escapes markup characters. In attribute values the whitespace controls are
/// written as character references too, because a conforming XML parser
/// would otherwise turn them into spaces; `\r` is escaped everywhere for the
/// same reason (line-end normalisation).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8], attr: bool) {
    let mut last = 0;
    for (i, &c) in s.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' if attr => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' if attr => b"&#10;",
            b'\t' if attr => b"&#9;",
            _ => continue,
        };
        out.extend_from_slice(&s[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&s[last..]);
}
