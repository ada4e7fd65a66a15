//! The grammar: recursive descent with one function per model type, which
//! builds the [`Event`] in place from the tokens of either tokenizer and
//! decides where each element and attribute goes in the model.

use crate::model::*;

use super::error::{R, ReadErrorKind, shorten};
use super::parser::{Parser, Tag, Tok};
use super::syntax::{Attrs, has_amp, unescape_attr};
use super::value::Val;

/// Nesting deeper than this is refused. r_keeper documents are about eight
/// levels deep; the limit keeps recursion bounded on hostile input and keeps
/// the JSON export within serde_json's default recursion limit.
pub(super) const MAX_DEPTH: usize = 40;

impl<'a> Parser<'a> {
    pub(crate) fn enter(&mut self, tag: &Tag<'a>) -> R<()> {
        if self.path.len() >= MAX_DEPTH {
            return Err(self.fail(
                ReadErrorKind::TooDeep,
                tag.at,
                format!("more than {MAX_DEPTH} levels"),
            ));
        }
        self.path.push(tag.name);
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.path.pop();
    }

    /// The whole document: prolog, the root, and nothing after it.
    pub(super) fn document(&mut self, ev: &mut Event) -> R<()> {
        match self.next()? {
            Tok::Start(tag) if tag.name == "a" => self.event(tag, ev),
            Tok::Start(tag) => Err(self.fail(
                ReadErrorKind::NoRoot,
                tag.at,
                format!("the root element is <{}>, expected <a>", shorten(tag.name)),
            )),
            Tok::Text(t, at) => {
                let mut f = self.fail(ReadErrorKind::NotXml, at, "text outside of any element");
                f.found = Some(shorten(&t));
                Err(f)
            }
            Tok::End => Err(self.fail(ReadErrorKind::NotXml, 0, "end tag without a start tag")),
            Tok::Eof(at) => {
                Err(self.fail(ReadErrorKind::NoRoot, at, "the document has no element"))
            }
        }
    }

    /// Reads the children of `tag` until its end tag, giving each child
    /// start tag to `on_child`; text goes to `text`.
    pub(crate) fn children(
        &mut self,
        tag: &Tag<'a>,
        text: &mut String,
        mut on_child: impl FnMut(&mut Self, Tag<'a>) -> R<()>,
    ) -> R<()> {
        if tag.empty {
            return Ok(());
        }
        loop {
            match self.next()? {
                Tok::Start(child) => {
                    self.enter(&child)?;
                    on_child(self, child)?;
                    self.leave();
                }
                Tok::Text(t, _) => text.push_str(&t),
                Tok::End => return Ok(()),
                Tok::Eof(at) => {
                    return Err(self.fail(
                        ReadErrorKind::Truncated,
                        at,
                        format!("<{}> is not closed", tag.name),
                    ));
                }
            }
        }
    }

    /// An element the model does not name, kept whole.
    pub(crate) fn generic(&mut self, tag: Tag<'a>) -> R<XmlElement> {
        let mut el = XmlElement {
            name: tag.name.to_owned(),
            ..XmlElement::default()
        };
        for a in Attrs::new(tag.attrs, tag.attrs_at) {
            let (name, value, _) = a.map_err(|e| self.attr_syntax(e))?;
            el.attrs.push((name.to_owned(), unescape_attr(value)));
        }
        let mut children = Vec::new();
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            children.push(p.generic(child)?);
            Ok(())
        })?;
        el.children = children;
        el.text = text;
        Ok(el)
    }

    /// Iterates over the attributes of `tag`, giving each to `on` with a
    /// value reader bound to this attribute's location.
    pub(crate) fn attrs(
        &self,
        tag: &Tag<'a>,
        mut on: impl FnMut(&str, Val<'_, 'a>) -> R<()>,
    ) -> R<()> {
        if tag.seq != 0 && tag.seq == self.tag_seq {
            // Already split by the fast tokenizer.
            for a in &self.attr_buf {
                on(
                    a.name,
                    Val {
                        p: self,
                        name: a.name,
                        raw: a.raw,
                        at: a.at,
                        amp: a.amp,
                    },
                )?;
            }
            return Ok(());
        }
        for a in Attrs::new(tag.attrs, tag.attrs_at) {
            let (name, raw, at) = a.map_err(|e| self.attr_syntax(e))?;
            on(
                name,
                Val {
                    p: self,
                    name,
                    raw,
                    at,
                    amp: has_amp(raw),
                },
            )?;
        }
        Ok(())
    }

    // -- the model, one function per type ----------------------------------

    /// Fills `ev`, which the caller passes as `Event::new(Unknown(0))`.
    fn event(&mut self, tag: Tag<'a>, ev: &mut Event) -> R<()> {
        self.enter(&tag)?;
        let mut situation = None;
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "RestCode" if ev.rest_code.is_none() => {
                    ev.rest_code = Some(RestCode(v.string()));
                }
                "DateTime" if ev.date_time.is_none() => ev.date_time = v.datetime()?,
                "Situation" if situation.is_none() => {
                    situation = Some(Situation::from_code(v.required_i64()?));
                }
                "seqnumber" if ev.seqnumber.is_none() => ev.seqnumber = v.u64()?,
                "guid" if ev.guid.is_none() => ev.guid = v.guid()?,
                "name" if ev.name.is_none() => ev.name = Some(v.string()),
                "ShiftNum" if ev.shift_num.is_none() => ev.shift_num = v.i64()?,
                "ShiftDate" if ev.shift_date.is_none() => ev.shift_date = v.datetime()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        ev.situation = match situation {
            Some(s) => s,
            None => {
                let mut f = self.fail(
                    ReadErrorKind::MissingAttribute,
                    tag.at,
                    "every event must say its Situation",
                );
                f.path.push_str("@Situation");
                return Err(f);
            }
        };
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Station" if ev.station.is_none() => {
                    p.station(child, ev.station.insert(Default::default()))?
                }
                "Server" if ev.server.is_none() => ev.server = Some(p.server(child)?),
                "Waiter" if ev.waiter.is_none() => {
                    p.person(child, ev.waiter.insert(Default::default()))?
                }
                "Order" if ev.order.is_none() => {
                    p.order(child, ev.order.insert(Order::default()))?;
                }
                "Session" => p.session(child, push_default(&mut ev.sessions))?,
                "ChangeLog" if ev.change_log.is_none() => {
                    ev.change_log = Some(p.change_log(child)?);
                }
                "Item" => ev.items.push(p.item(child)?),
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        ev.extra = extra;
        self.leave();
        Ok(())
    }

    /// Children every element may have: only unknown ones.
    pub(crate) fn rest(&mut self, tag: &Tag<'a>, extra: &mut Extra) -> R<()> {
        let mut text = String::new();
        self.children(tag, &mut text, |p, child| {
            extra.elements.push(p.generic(child)?);
            Ok(())
        })?;
        extra.text = text;
        Ok(())
    }

    fn station(&mut self, tag: Tag<'a>, s: &mut Station) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if s.id.is_none() => s.id = v.i64()?,
                "code" if s.code.is_none() => s.code = v.i64()?,
                "name" if s.name.is_none() => s.name = Some(v.string()),
                "NetName" if s.net_name.is_none() => s.net_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        s.extra = extra;
        Ok(())
    }

    fn server(&mut self, tag: Tag<'a>) -> R<Server> {
        let mut s = Station::default();
        self.station(tag, &mut s)?;
        Ok(Server {
            id: s.id,
            code: s.code,
            name: s.name,
            net_name: s.net_name,
            extra: s.extra,
        })
    }

    pub(crate) fn reference(&mut self, tag: Tag<'a>, r: &mut Ref) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if r.id.is_none() => r.id = v.i64()?,
                "code" if r.code.is_none() => r.code = v.i64()?,
                "name" if r.name.is_none() => r.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        r.extra = extra;
        Ok(())
    }

    fn person(&mut self, tag: Tag<'a>, r: &mut Person) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if r.id.is_none() => r.id = v.i64()?,
                "code" if r.code.is_none() => r.code = v.i64()?,
                "name" if r.name.is_none() => r.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Role" if r.role.is_none() => {
                    p.reference(child, r.role.insert(Default::default()))?
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        r.extra = extra;
        Ok(())
    }

    fn item(&mut self, tag: Tag<'a>) -> R<Item> {
        let mut it = Item::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "ClassName" if it.class_name.is_none() => it.class_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        it.extra = extra;
        Ok(it)
    }

    /// `<KdsState>ready</KdsState>` as an element: only the plain form (text,
    /// nothing else) is taken as the state; anything richer is kept as an
    /// unknown element rather than guessed at.
    fn kds_element(
        &mut self,
        tag: Tag<'a>,
        slot: &mut Option<KdsState>,
        extra: &mut Extra,
    ) -> R<()> {
        let el = self.generic(tag)?;
        if slot.is_none() && el.attrs.is_empty() && el.children.is_empty() {
            *slot = Some(KdsState::parse(el.text.trim()));
        } else {
            extra.elements.push(el);
        }
        Ok(())
    }

    pub(crate) fn order(&mut self, tag: Tag<'a>, o: &mut Order) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "visit" if o.visit.is_none() => o.visit = v.i64()?,
                "orderIdent" if o.order_ident.is_none() => o.order_ident = v.i64()?,
                "guid" if o.guid.is_none() => o.guid = v.guid()?,
                "url" if o.url.is_none() => o.url = Some(v.string()),
                "orderName" if o.order_name.is_none() => o.order_name = Some(v.string()),
                "version" if o.version.is_none() => o.version = v.i64()?,
                "crc32" if o.crc32.is_none() => o.crc32 = v.i64()?,
                "orderSum" if o.order_sum.is_none() => o.order_sum = v.money()?,
                "discountSum" if o.discount_sum.is_none() => o.discount_sum = v.money()?,
                "unpaidSum" if o.unpaid_sum.is_none() => o.unpaid_sum = v.money()?,
                "prepaySum" if o.prepay_sum.is_none() => o.prepay_sum = v.money()?,
                "promisedSum" if o.promised_sum.is_none() => o.promised_sum = v.money()?,
                "totalPieces" if o.total_pieces.is_none() => o.total_pieces = v.i64()?,
                "cookMins" if o.cook_mins.is_none() => o.cook_mins = v.i64()?,
                "paid" if o.paid.is_none() => o.paid = v.bool()?,
                "finished" if o.finished.is_none() => o.finished = v.bool()?,
                "deleted" if o.deleted.is_none() => o.deleted = v.bool()?,
                "locked" if o.locked.is_none() => o.locked = v.bool()?,
                "purchase" if o.purchase.is_none() => o.purchase = v.bool()?,
                "openTime" if o.open_time.is_none() => o.open_time = v.datetime()?,
                "seqNumber" if o.seq_number.is_none() => o.seq_number = v.i64()?,
                "persistentComment" if o.persistent_comment.is_none() => {
                    o.persistent_comment = Some(v.string());
                }
                "nonPersistentComment" if o.non_persistent_comment.is_none() => {
                    o.non_persistent_comment = Some(v.string());
                }
                "kdsstate" | "KdsState" if o.kds_state.is_none() => o.kds_state = Some(v.kds()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Creator" if o.creator.is_none() => {
                    p.person(child, o.creator.insert(Default::default()))?
                }
                "Waiter" if o.waiter.is_none() => {
                    p.person(child, o.waiter.insert(Default::default()))?
                }
                "Station" if o.station.is_none() => {
                    p.station(child, o.station.insert(Default::default()))?
                }
                "OrderCategory" if o.order_category.is_none() => {
                    p.reference(child, o.order_category.insert(Default::default()))?;
                }
                "OrderType" if o.order_type.is_none() => {
                    p.reference(child, o.order_type.insert(Default::default()))?
                }
                "Table" if o.table.is_none() => {
                    p.reference(child, o.table.insert(Default::default()))?
                }
                "GuestType" if o.guest_type.is_none() => {
                    p.reference(child, o.guest_type.insert(Default::default()))?
                }
                "Guests" if o.guests.is_none() => o.guests = Some(p.guests(child)?),
                "ExternalProps"
                    if o.external_props.is_empty() && o.external_props_extra.is_empty() =>
                {
                    p.external_props(child, o)?;
                }
                "SourceOrder" if o.source_order.is_none() => {
                    o.source_order = Some(p.source_order(child)?);
                }
                "Session" => p.session(child, push_default(&mut o.sessions))?,
                "kdsstate" | "KdsState" => p.kds_element(child, &mut o.kds_state, &mut extra)?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        o.extra = extra;
        Ok(())
    }

    fn guests(&mut self, tag: Tag<'a>) -> R<Guests> {
        let mut g = Guests::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "count" if g.count.is_none() => g.count = v.i64()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Guest" => {
                    let mut guest = Guest::default();
                    let mut gx = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "guestLabel" if guest.guest_label.is_none() => {
                                guest.guest_label = Some(v.string());
                            }
                            "cardCode" if guest.card_code.is_none() => {
                                guest.card_code = Some(v.string());
                            }
                            _ => v.keep(&mut gx),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut gx)?;
                    guest.extra = gx;
                    g.guests.push(guest);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        g.extra = extra;
        Ok(g)
    }

    fn external_props(&mut self, tag: Tag<'a>, o: &mut Order) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |_, v| {
            v.keep(&mut extra);
            Ok(())
        })?;
        let mut props = Vec::new();
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Prop" => {
                    let mut prop = Prop::default();
                    let mut px = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "name" if prop.name.is_none() => prop.name = Some(v.string()),
                            "value" if prop.value.is_none() => prop.value = Some(v.string()),
                            _ => v.keep(&mut px),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut px)?;
                    prop.extra = px;
                    props.push(prop);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        if props.is_empty() && extra.is_empty() {
            // An empty `<ExternalProps/>` says nothing; the model has no
            // place for "present but empty", and the writer leaves it out.
            return Ok(());
        }
        o.external_props = props;
        o.external_props_extra = extra;
        Ok(())
    }

    fn source_order(&mut self, tag: Tag<'a>) -> R<SourceOrder> {
        let mut s = SourceOrder::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "visit" if s.visit.is_none() => s.visit = v.i64()?,
                "orderIdent" if s.order_ident.is_none() => s.order_ident = v.i64()?,
                "guid" if s.guid.is_none() => s.guid = v.guid()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        s.extra = extra;
        Ok(s)
    }

    fn session(&mut self, tag: Tag<'a>, s: &mut Session) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "uni" if s.uni.is_none() => s.uni = v.i64()?,
                "line_guid" if s.line_guid.is_none() => s.line_guid = v.guid()?,
                "state" if s.state.is_none() => s.state = v.i64()?.map(LineState::from_code),
                "sessionID" if s.session_id.is_none() => s.session_id = v.i64()?,
                "isDraft" if s.is_draft.is_none() => s.is_draft = v.bool()?,
                "remindTime" if s.remind_time.is_none() => s.remind_time = v.datetime()?,
                "startService" if s.start_service.is_none() => s.start_service = v.datetime()?,
                "printed" if s.printed.is_none() => s.printed = v.bool()?,
                "cookMins" if s.cook_mins.is_none() => s.cook_mins = v.i64()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => p.dish(child, push_default(&mut s.dishes))?,
                "Station" if s.station.is_none() => {
                    p.station(child, s.station.insert(Default::default()))?
                }
                "Author" if s.author.is_none() => {
                    p.person(child, s.author.insert(Default::default()))?
                }
                "Creator" if s.creator.is_none() => {
                    p.person(child, s.creator.insert(Default::default()))?
                }
                "Course" if s.course.is_none() => {
                    p.reference(child, s.course.insert(Default::default()))?
                }
                "PriceScale" if s.price_scale.is_none() => {
                    p.reference(child, s.price_scale.insert(Default::default()))?;
                }
                "TradeGroup" if s.trade_group.is_none() => {
                    p.reference(child, s.trade_group.insert(Default::default()))?;
                }
                "Combo" => p.combo(child, push_default(&mut s.combos))?,
                "Discount" => p.discount(child, push_default(&mut s.discounts))?,
                "Prepay" => p.pay(child, push_default(&mut s.prepays))?,
                "Pay" => p.pay(child, push_default(&mut s.pays))?,
                "PrintCheck" => p.print_check(child, push_default(&mut s.print_checks))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        s.extra = extra;
        Ok(())
    }

    fn dish(&mut self, tag: Tag<'a>, d: &mut Dish) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if d.id.is_none() => d.id = v.i64()?,
                "code" if d.code.is_none() => d.code = v.i64()?,
                "name" if d.name.is_none() => d.name = Some(v.string()),
                "uni" if d.uni.is_none() => d.uni = v.i64()?,
                "line_guid" if d.line_guid.is_none() => d.line_guid = v.guid()?,
                "state" if d.state.is_none() => d.state = v.i64()?.map(LineState::from_code),
                "price" if d.price.is_none() => d.price = v.money()?,
                "amount" if d.amount.is_none() => d.amount = v.money()?,
                "quantity" if d.quantity.is_none() => d.quantity = v.quantity()?,
                "srcQuantity" if d.src_quantity.is_none() => d.src_quantity = v.quantity()?,
                "paidAmount" if d.paid_amount.is_none() => d.paid_amount = v.money()?,
                "seat" if d.seat.is_none() => d.seat = v.i64()?,
                "kdsstate" | "KdsState" if d.kds_state.is_none() => d.kds_state = Some(v.kds()),
                "new" if d.new.is_none() => d.new = v.bool()?,
                "SourceGUIDString" if d.source_guid_string.is_none() => {
                    d.source_guid_string = Some(v.string());
                }
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Modi" => p.modi(child, push_default(&mut d.modis))?,
                "Discount" => p.discount(child, push_default(&mut d.discounts))?,
                "Void" => p.void(child, push_default(&mut d.voids))?,
                "Consum" => p.consum(child, push_default(&mut d.consums))?,
                "kdsstate" | "KdsState" => p.kds_element(child, &mut d.kds_state, &mut extra)?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        d.extra = extra;
        Ok(())
    }

    fn modi(&mut self, tag: Tag<'a>, m: &mut Modi) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if m.id.is_none() => m.id = v.i64()?,
                "code" if m.code.is_none() => m.code = v.i64()?,
                "name" if m.name.is_none() => m.name = Some(v.string()),
                "uni" if m.uni.is_none() => m.uni = v.i64()?,
                "count" if m.count.is_none() => m.count = v.i64()?,
                "price" if m.price.is_none() => m.price = v.money()?,
                "amount" if m.amount.is_none() => m.amount = v.money()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        m.extra = extra;
        Ok(())
    }

    fn consum(&mut self, tag: Tag<'a>, c: &mut Consum) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                "quantity" if c.quantity.is_none() => c.quantity = v.quantity()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        c.extra = extra;
        Ok(())
    }

    fn void(&mut self, tag: Tag<'a>, x: &mut Void) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if x.id.is_none() => x.id = v.i64()?,
                "code" if x.code.is_none() => x.code = v.i64()?,
                "name" if x.name.is_none() => x.name = Some(v.string()),
                "dateTime" if x.date_time.is_none() => x.date_time = v.datetime()?,
                "quantity" if x.quantity.is_none() => x.quantity = v.quantity()?,
                "amount" if x.amount.is_none() => x.amount = v.money()?,
                "openName" if x.open_name.is_none() => x.open_name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Author" if x.author.is_none() => {
                    p.person(child, x.author.insert(Default::default()))?
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        x.extra = extra;
        Ok(())
    }

    fn combo(&mut self, tag: Tag<'a>, c: &mut Combo) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                "uni" if c.uni.is_none() => c.uni = v.i64()?,
                "line_guid" if c.line_guid.is_none() => c.line_guid = v.guid()?,
                "state" if c.state.is_none() => c.state = v.i64()?.map(LineState::from_code),
                "price" if c.price.is_none() => c.price = v.money()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                "quantity" if c.quantity.is_none() => c.quantity = v.quantity()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Component" => p.component(child, push_default(&mut c.components))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn component(&mut self, tag: Tag<'a>, c: &mut Component) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if c.id.is_none() => c.id = v.i64()?,
                "code" if c.code.is_none() => c.code = v.i64()?,
                "name" if c.name.is_none() => c.name = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => p.dish(child, push_default(&mut c.dishes))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn discount(&mut self, tag: Tag<'a>, d: &mut Discount) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if d.id.is_none() => d.id = v.i64()?,
                "code" if d.code.is_none() => d.code = v.i64()?,
                "name" if d.name.is_none() => d.name = Some(v.string()),
                "amount" if d.amount.is_none() => d.amount = v.money()?,
                "maxamount" if d.max_amount.is_none() => d.max_amount = v.money()?,
                "cardCode" if d.card_code.is_none() => d.card_code = Some(v.string()),
                "deleted" if d.deleted.is_none() => d.deleted = v.bool()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        d.extra = extra;
        Ok(())
    }

    fn pay(&mut self, tag: Tag<'a>, x: &mut Pay) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "id" if x.id.is_none() => x.id = v.i64()?,
                "code" if x.code.is_none() => x.code = v.i64()?,
                "name" if x.name.is_none() => x.name = Some(v.string()),
                "amount" if x.amount.is_none() => x.amount = v.money()?,
                "basicSum" if x.basic_sum.is_none() => x.basic_sum = v.money()?,
                "cardCode" if x.card_code.is_none() => x.card_code = Some(v.string()),
                "TransactionStatus" if x.transaction_status.is_none() => {
                    x.transaction_status = v.i64()?.map(TransactionStatus::from_code);
                }
                "deleted" if x.deleted.is_none() => x.deleted = v.bool()?,
                "owner" if x.owner.is_none() => x.owner = Some(v.string()),
                "authcode" if x.auth_code.is_none() => x.auth_code = Some(v.string()),
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        self.rest(&tag, &mut extra)?;
        x.extra = extra;
        Ok(())
    }

    fn print_check(&mut self, tag: Tag<'a>, c: &mut PrintCheck) -> R<()> {
        let mut extra = Extra::default();
        self.attrs(&tag, |name, v| {
            match name {
                "CheckNum" if c.check_num.is_none() => c.check_num = v.i64()?,
                "amount" if c.amount.is_none() => c.amount = v.money()?,
                "unpaidSum" if c.unpaid_sum.is_none() => c.unpaid_sum = v.money()?,
                "GlobalFiscalID" if c.global_fiscal_id.is_none() => {
                    c.global_fiscal_id = Some(v.string());
                }
                "state" if c.state.is_none() => c.state = v.i64()?.map(LineState::from_code),
                "deleted" if c.deleted.is_none() => c.deleted = v.bool()?,
                "bill" if c.bill.is_none() => c.bill = v.bool()?,
                "printTime" if c.print_time.is_none() => c.print_time = v.datetime()?,
                _ => v.keep(&mut extra),
            }
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Author" if c.author.is_none() => {
                    p.person(child, c.author.insert(Default::default()))?
                }
                "Reason" if c.reason.is_none() => {
                    p.reference(child, c.reason.insert(Default::default()))?
                }
                "DeleteManager" if c.delete_manager.is_none() => {
                    p.person(child, c.delete_manager.insert(Default::default()))?;
                }
                "Pay" => p.pay(child, push_default(&mut c.pays))?,
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(())
    }

    fn change_log(&mut self, tag: Tag<'a>) -> R<ChangeLog> {
        let mut c = ChangeLog::default();
        let mut extra = Extra::default();
        self.attrs(&tag, |_, v| {
            v.keep(&mut extra);
            Ok(())
        })?;
        let mut text = String::new();
        self.children(&tag, &mut text, |p, child| {
            match child.name {
                "Dish" => {
                    let mut d = ChangeLogDish::default();
                    let mut dx = Extra::default();
                    p.attrs(&child, |name, v| {
                        match name {
                            "id" if d.id.is_none() => d.id = v.i64()?,
                            "code" if d.code.is_none() => d.code = v.i64()?,
                            "name" if d.name.is_none() => d.name = Some(v.string()),
                            "uni" if d.uni.is_none() => d.uni = v.i64()?,
                            "oldvalue" if d.old_value.is_none() => d.old_value = v.quantity()?,
                            "newvalue" if d.new_value.is_none() => d.new_value = v.quantity()?,
                            "new" if d.new.is_none() => d.new = v.bool()?,
                            _ => v.keep(&mut dx),
                        }
                        Ok(())
                    })?;
                    p.rest(&child, &mut dx)?;
                    d.extra = dx;
                    c.dishes.push(d);
                }
                _ => extra.elements.push(p.generic(child)?),
            }
            Ok(())
        })?;
        extra.text = text;
        c.extra = extra;
        Ok(c)
    }
}

/// Appends a default `T` and returns it, so that a large model value is
/// filled where it will stay instead of being built and then moved in.
fn push_default<T: Default>(v: &mut Vec<T>) -> &mut T {
    v.push(T::default());
    let last = v.len() - 1;
    &mut v[last]
}
