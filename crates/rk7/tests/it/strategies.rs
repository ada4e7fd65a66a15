//! Proptest strategies for arbitrary notify events.
//!
//! They cover every part of the model, unknown attributes and elements
//! included, but only values the XML form can carry unchanged, which is the
//! same space [`rk7::read`] produces:
//!
//! * enums with a catch-all (`Situation`, `LineState`, `TransactionStatus`,
//!   `KdsState`) are built through their own `from_code` / `parse`, because
//!   `Situation::Unknown(1)` is written as `1` and rightly reads back as
//!   `ServerOrStationStarted`;
//! * unknown attribute and element names cannot collide with names the model
//!   knows (they start with `zz` / `Zz`), or the reader would rightly give
//!   them to the model;
//! * text content is either empty or has something besides whitespace, since
//!   whitespace-only text is indentation and is not kept.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rk7::*;

/// Any text a cash server might put in an attribute: Latin, Cyrillic,
/// markup characters that need escaping, and whitespace controls.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ]{0,10}",
        2 => "[а-яА-ЯёЁ0-9 ,.]{0,10}",
        2 => "[ -~\t\n\rа-я№€]{0,16}",
        1 => Just(String::new()),
        1 => Just(r#"&<>"' &amp; ]]> <![CDATA[x]]>"#.to_string()),
    ]
    .boxed()
}

fn opt_text() -> BoxedStrategy<Option<String>> {
    of(text()).boxed()
}

/// Element content text: empty, or with at least one non-blank character.
fn content_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => (text(), "[a-zа-я&<>]", text()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
    .boxed()
}

fn id() -> BoxedStrategy<Option<i64>> {
    of(prop_oneof![0i64..100_000, any::<i64>()]).boxed()
}

fn money() -> BoxedStrategy<Option<Kopecks>> {
    of(prop_oneof![0i64..10_000_000, any::<i64>()].prop_map(Kopecks)).boxed()
}

fn quantity() -> BoxedStrategy<Option<Thousandths>> {
    of(prop_oneof![-5_000i64..20_000, any::<i64>()].prop_map(Thousandths)).boxed()
}

fn flag() -> BoxedStrategy<Option<bool>> {
    of(any::<bool>()).boxed()
}

pub fn datetime() -> BoxedStrategy<LocalDateTime> {
    (
        0i32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        0u32..1_000_000_000,
        prop_oneof![4 => Just(0u8), 1 => 1u8..=9],
    )
        .prop_map(|(y, mo, d, h, mi, s, ns, digits)| {
            let date = chrono::NaiveDate::from_ymd_opt(y, mo, d).expect("valid date");
            let time = chrono::NaiveTime::from_hms_nano_opt(h, mi, s, ns).expect("valid time");
            LocalDateTime::with_fraction_digits(chrono::NaiveDateTime::new(date, time), digits)
        })
        .boxed()
}

fn opt_dt() -> BoxedStrategy<Option<LocalDateTime>> {
    of(datetime()).boxed()
}

/// GUIDs in the forms r_keeper and integrators write.
pub fn guid() -> BoxedStrategy<Guid> {
    (any::<u128>(), 0..3)
        .prop_map(|(v, form)| {
            let g = Guid::from_u128(v);
            match form {
                0 => g,
                1 => Guid::parse(&g.as_str().to_lowercase()).expect("lower case guid"),
                _ => Guid::parse(&format!("{v:032x}")).expect("plain guid"),
            }
        })
        .boxed()
}

fn opt_guid() -> BoxedStrategy<Option<Guid>> {
    of(guid()).boxed()
}

fn line_state() -> BoxedStrategy<Option<LineState>> {
    of(prop_oneof![1i64..=8, any::<i64>()].prop_map(LineState::from_code)).boxed()
}

fn kds() -> BoxedStrategy<Option<KdsState>> {
    of(prop_oneof![
        Just(""),
        Just("sent"),
        Just("STARTED"),
        Just("Ready"),
        Just("taken"),
        Just("collect"),
        Just("collected"),
        Just("startpark"),
        Just("endpark"),
        Just("removed"),
        Just("cooking"),
        Just("в работе"),
    ]
    .prop_map(KdsState::parse))
    .boxed()
}

/// Unknown attributes, named so that no element of the model knows them.
fn extra_attrs() -> BoxedStrategy<Vec<(String, String)>> {
    attrs("zz[a-zA-Z0-9_.:-]{0,8}")
}

/// Attributes with distinct names: a cash server never repeats one, and a
/// strict XML parser refuses a repeat. (The reader does accept repeats and
/// the writer writes them back; `quirks.rs` tests that separately.)
fn attrs(name: &'static str) -> BoxedStrategy<Vec<(String, String)>> {
    vec((name, text()), 0..3)
        .prop_map(|mut v| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|(k, _)| seen.insert(k.clone()));
            v
        })
        .boxed()
}

/// A generic element of any name, two levels deep at most.
fn xml_element(name: impl Strategy<Value = String> + 'static) -> BoxedStrategy<XmlElement> {
    let leaf = (
        "[A-Za-z_][A-Za-z0-9_.:-]{0,8}",
        extra_attrs(),
        content_text(),
    )
        .prop_map(|(name, attrs, text)| XmlElement {
            name,
            attrs,
            children: Vec::new(),
            text,
        });
    (
        name,
        attrs("[a-zA-Z_][a-zA-Z0-9_.:-]{0,8}"),
        vec(leaf, 0..3),
        content_text(),
    )
        .prop_map(|(name, attrs, children, text)| XmlElement {
            name,
            attrs,
            children,
            text,
        })
        .boxed()
}

/// What a known element carried that the model does not name.
pub fn extra() -> BoxedStrategy<Extra> {
    prop_oneof![
        3 => Just(Extra::default()),
        1 => (
            extra_attrs(),
            vec(xml_element("Zz[A-Za-z0-9]{0,6}".prop_map(String::from)), 0..2),
            content_text(),
        )
            .prop_map(|(attrs, elements, text)| Extra {
                attrs,
                elements,
                text,
            }),
    ]
    .boxed()
}

fn reference() -> BoxedStrategy<Ref> {
    (id(), id(), opt_text(), extra())
        .prop_map(|(id, code, name, extra)| Ref {
            id,
            code,
            name,
            extra,
        })
        .boxed()
}

fn opt_ref() -> BoxedStrategy<Option<Ref>> {
    of(reference()).boxed()
}

fn station() -> BoxedStrategy<Station> {
    (id(), id(), opt_text(), opt_text(), extra())
        .prop_map(|(id, code, name, net_name, extra)| Station {
            id,
            code,
            name,
            net_name,
            extra,
        })
        .boxed()
}

fn person() -> BoxedStrategy<Person> {
    (id(), id(), opt_text(), opt_ref(), extra())
        .prop_map(|(id, code, name, role, extra)| Person {
            id,
            code,
            name,
            role,
            extra,
        })
        .boxed()
}

fn opt_person() -> BoxedStrategy<Option<Person>> {
    of(person()).boxed()
}

fn modi() -> BoxedStrategy<Modi> {
    (
        id(),
        id(),
        opt_text(),
        id(),
        id(),
        money(),
        money(),
        extra(),
    )
        .prop_map(|(id, code, name, uni, count, price, amount, extra)| Modi {
            id,
            code,
            name,
            uni,
            count,
            price,
            amount,
            extra,
        })
        .boxed()
}

fn discount() -> BoxedStrategy<Discount> {
    (
        id(),
        id(),
        opt_text(),
        money(),
        money(),
        opt_text(),
        flag(),
        extra(),
    )
        .prop_map(
            |(id, code, name, amount, max_amount, card_code, deleted, extra)| Discount {
                id,
                code,
                name,
                amount,
                max_amount,
                card_code,
                deleted,
                extra,
            },
        )
        .boxed()
}

fn void() -> BoxedStrategy<Void> {
    (
        (id(), id(), opt_text(), opt_dt()),
        (quantity(), money(), opt_text(), opt_person(), extra()),
    )
        .prop_map(
            |((id, code, name, date_time), (quantity, amount, open_name, author, extra))| Void {
                id,
                code,
                name,
                date_time,
                quantity,
                amount,
                open_name,
                author,
                extra,
            },
        )
        .boxed()
}

fn consum() -> BoxedStrategy<Consum> {
    (id(), id(), opt_text(), quantity(), money(), extra())
        .prop_map(|(id, code, name, quantity, amount, extra)| Consum {
            id,
            code,
            name,
            quantity,
            amount,
            extra,
        })
        .boxed()
}

fn dish() -> BoxedStrategy<Dish> {
    (
        (id(), id(), opt_text(), id(), opt_guid(), line_state()),
        (money(), money(), quantity(), quantity(), money(), id()),
        (kds(), flag(), opt_text()),
        (
            vec(modi(), 0..2),
            vec(discount(), 0..2),
            vec(void(), 0..2),
            vec(consum(), 0..2),
            extra(),
        ),
    )
        .prop_map(
            |(
                (id, code, name, uni, line_guid, state),
                (price, amount, quantity, src_quantity, paid_amount, seat),
                (kds_state, new, source_guid_string),
                (modis, discounts, voids, consums, extra),
            )| Dish {
                id,
                code,
                name,
                uni,
                line_guid,
                state,
                price,
                amount,
                quantity,
                src_quantity,
                paid_amount,
                seat,
                kds_state,
                new,
                source_guid_string,
                modis,
                discounts,
                voids,
                consums,
                extra,
            },
        )
        .boxed()
}

fn combo() -> BoxedStrategy<Combo> {
    let component = (id(), id(), opt_text(), vec(dish(), 0..2), extra()).prop_map(
        |(id, code, name, dishes, extra)| Component {
            id,
            code,
            name,
            dishes,
            extra,
        },
    );
    (
        (id(), id(), opt_text(), id(), opt_guid(), line_state()),
        (money(), money(), quantity(), vec(component, 0..2), extra()),
    )
        .prop_map(
            |(
                (id, code, name, uni, line_guid, state),
                (price, amount, quantity, components, extra),
            )| Combo {
                id,
                code,
                name,
                uni,
                line_guid,
                state,
                price,
                amount,
                quantity,
                components,
                extra,
            },
        )
        .boxed()
}

fn pay() -> BoxedStrategy<Pay> {
    (
        (id(), id(), opt_text(), money(), money(), opt_text()),
        (
            of(prop_oneof![1i64..=7, any::<i64>()].prop_map(TransactionStatus::from_code)),
            flag(),
            opt_text(),
            opt_text(),
            extra(),
        ),
    )
        .prop_map(
            |(
                (id, code, name, amount, basic_sum, card_code),
                (transaction_status, deleted, owner, auth_code, extra),
            )| Pay {
                id,
                code,
                name,
                amount,
                basic_sum,
                card_code,
                transaction_status,
                deleted,
                owner,
                auth_code,
                extra,
            },
        )
        .boxed()
}

fn print_check() -> BoxedStrategy<PrintCheck> {
    (
        (
            id(),
            money(),
            money(),
            opt_text(),
            line_state(),
            flag(),
            flag(),
        ),
        (
            opt_dt(),
            opt_person(),
            opt_ref(),
            opt_person(),
            vec(pay(), 0..2),
            extra(),
        ),
    )
        .prop_map(
            |(
                (check_num, amount, unpaid_sum, global_fiscal_id, state, deleted, bill),
                (print_time, author, reason, delete_manager, pays, extra),
            )| PrintCheck {
                check_num,
                amount,
                unpaid_sum,
                global_fiscal_id,
                state,
                deleted,
                bill,
                print_time,
                author,
                reason,
                delete_manager,
                pays,
                extra,
            },
        )
        .boxed()
}

/// One session with its lines; `lines` bounds the number of dishes.
pub fn session(lines: usize) -> BoxedStrategy<Session> {
    (
        (id(), opt_guid(), line_state(), id(), flag()),
        (opt_dt(), opt_dt(), flag(), id()),
        (
            of(station()),
            opt_person(),
            opt_person(),
            opt_ref(),
            opt_ref(),
            opt_ref(),
        ),
        (
            vec(dish(), 0..=lines),
            vec(combo(), 0..2),
            vec(discount(), 0..2),
            vec(pay(), 0..2),
            vec(pay(), 0..2),
            vec(print_check(), 0..2),
            extra(),
        ),
    )
        .prop_map(
            |(
                (uni, line_guid, state, session_id, is_draft),
                (remind_time, start_service, printed, cook_mins),
                (station, author, creator, course, price_scale, trade_group),
                (dishes, combos, discounts, prepays, pays, print_checks, extra),
            )| Session {
                uni,
                line_guid,
                state,
                session_id,
                is_draft,
                remind_time,
                start_service,
                printed,
                cook_mins,
                station,
                author,
                creator,
                course,
                price_scale,
                trade_group,
                dishes,
                combos,
                discounts,
                prepays,
                pays,
                print_checks,
                extra,
            },
        )
        .boxed()
}

fn guests() -> BoxedStrategy<Guests> {
    let guest =
        (opt_text(), opt_text(), extra()).prop_map(|(guest_label, card_code, extra)| Guest {
            guest_label,
            card_code,
            extra,
        });
    (id(), vec(guest, 0..3), extra())
        .prop_map(|(count, guests, extra)| Guests {
            count,
            guests,
            extra,
        })
        .boxed()
}

fn prop() -> BoxedStrategy<Prop> {
    (opt_text(), opt_text(), extra())
        .prop_map(|(name, value, extra)| Prop { name, value, extra })
        .boxed()
}

pub fn order() -> BoxedStrategy<Order> {
    (
        (id(), id(), opt_guid(), opt_text(), opt_text(), id(), id()),
        (money(), money(), money(), money(), money(), id(), id()),
        (flag(), flag(), flag(), flag(), flag(), opt_dt(), id()),
        (opt_text(), opt_text(), kds()),
        (
            opt_person(),
            opt_person(),
            of(station()),
            opt_ref(),
            opt_ref(),
            opt_ref(),
            opt_ref(),
        ),
        (
            of(guests()),
            vec(prop(), 0..3),
            extra(),
            of((id(), id(), opt_guid(), extra())),
            vec(session(3), 0..2),
            extra(),
        ),
    )
        .prop_map(
            |(
                (visit, order_ident, guid, url, order_name, version, crc32),
                (
                    order_sum,
                    discount_sum,
                    unpaid_sum,
                    prepay_sum,
                    promised_sum,
                    total_pieces,
                    cook_mins,
                ),
                (paid, finished, deleted, locked, purchase, open_time, seq_number),
                (persistent_comment, non_persistent_comment, kds_state),
                (creator, waiter, station, order_category, order_type, table, guest_type),
                (guests, external_props, external_props_extra, source, sessions, extra),
            )| Order {
                visit,
                order_ident,
                guid,
                url,
                order_name,
                version,
                crc32,
                order_sum,
                discount_sum,
                unpaid_sum,
                prepay_sum,
                promised_sum,
                total_pieces,
                cook_mins,
                paid,
                finished,
                deleted,
                locked,
                purchase,
                open_time,
                seq_number,
                persistent_comment,
                non_persistent_comment,
                kds_state,
                creator,
                waiter,
                station,
                order_category,
                order_type,
                table,
                guest_type,
                guests,
                external_props,
                external_props_extra,
                source_order: source.map(|(visit, order_ident, guid, extra)| SourceOrder {
                    visit,
                    order_ident,
                    guid,
                    extra,
                }),
                sessions,
                extra,
            },
        )
        .boxed()
}

fn change_log() -> BoxedStrategy<ChangeLog> {
    let dish = (
        (id(), id(), opt_text(), id()),
        (quantity(), quantity(), flag(), extra()),
    )
        .prop_map(
            |((id, code, name, uni), (old_value, new_value, new, extra))| ChangeLogDish {
                id,
                code,
                name,
                uni,
                old_value,
                new_value,
                new,
                extra,
            },
        );
    (vec(dish, 0..3), extra())
        .prop_map(|(dishes, extra)| ChangeLog { dishes, extra })
        .boxed()
}

/// Any situation code, the known ones more often.
pub fn situation() -> BoxedStrategy<Situation> {
    prop_oneof![
        3 => prop::sample::select(vec![1i64, 3, 4, 5, 9, 10, 11, 12, 13, 14, 18, 21, 24]),
        1 => any::<i64>(),
    ]
    .prop_map(Situation::from_code)
    .boxed()
}

/// An arbitrary event: every part of the model may appear.
pub fn event() -> BoxedStrategy<Event> {
    (
        (
            of(text().prop_map(RestCode)),
            opt_dt(),
            situation(),
            of(any::<u64>()),
            opt_guid(),
            opt_text(),
            id(),
            opt_dt(),
        ),
        (
            of(station()),
            of(station()),
            opt_person(),
            of(order()),
            vec(session(3), 0..2),
            of(change_log()),
            vec(
                (opt_text(), extra()).prop_map(|(class_name, extra)| Item { class_name, extra }),
                0..3,
            ),
            extra(),
        ),
    )
        .prop_map(
            |(
                (rest_code, date_time, situation, seqnumber, guid, name, shift_num, shift_date),
                (station, server, waiter, order, sessions, change_log, items, extra),
            )| Event {
                rest_code,
                date_time,
                situation,
                seqnumber,
                guid,
                name,
                shift_num,
                shift_date,
                station,
                server: server.map(|s| Server {
                    id: s.id,
                    code: s.code,
                    name: s.name,
                    net_name: s.net_name,
                    extra: s.extra,
                }),
                waiter,
                order,
                sessions,
                change_log,
                items,
                extra,
            },
        )
        .boxed()
}
