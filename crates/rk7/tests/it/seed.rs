//! The sample payloads of the HTTP Order Notify driver documentation
//! (`tests/fixtures/seed001_*.xml`) read to exactly the values they show.

use rk7::{LineState, Situation};

use crate::{dt, fixture, guid};

#[test]
fn cash_server_start_carries_only_the_server_id() {
    let e = rk7::read(&fixture("seed001_server_started.xml")).unwrap();
    assert_eq!(
        e.rest_code.as_ref().map(|r| r.0.as_str()),
        Some("199990093")
    );
    assert_eq!(e.date_time, Some(dt("2020-01-14T15:38:23")));
    assert_eq!(e.situation, Situation::ServerOrStationStarted);
    assert_eq!(e.situation.code(), 1);
    assert_eq!(e.seqnumber, Some(1));
    assert_eq!(e.guid, Some(guid("{9ECCB1B5-97EE-4B88-9840-8568F05586D0}")));
    assert_eq!(e.name.as_deref(), Some("Started"));
    assert_eq!(e.shift_num, Some(1));
    assert_eq!(e.shift_date, Some(dt("2019-11-18T00:00:00")));
    let server = e.server.as_ref().unwrap();
    assert_eq!(server.id, Some(15002));
    assert_eq!(server.code, None);
    assert_eq!(server.name, None);
    assert!(e.station.is_none());
    assert!(e.waiter.is_none());
    assert!(e.order.is_none());
    assert_eq!(e.items.len(), 1);
    assert_eq!(e.items[0].class_name, None);
    assert!(e.extra.is_empty());
}

#[test]
fn cash_station_start_names_station_and_server() {
    let e = rk7::read(&fixture("seed001_station_started.xml")).unwrap();
    assert_eq!(e.situation, Situation::ServerOrStationStarted);
    assert_eq!(e.date_time, Some(dt("2019-12-18T17:17:58")));
    let st = e.station.as_ref().unwrap();
    assert_eq!(
        (st.id, st.code, st.name.as_deref(), st.net_name.as_deref()),
        (
            Some(15003),
            Some(1),
            Some("MM_CASH"),
            Some("MM_CASH_169058")
        )
    );
    let sv = e.server.as_ref().unwrap();
    assert_eq!(
        (sv.id, sv.code, sv.name.as_deref(), sv.net_name.as_deref()),
        (Some(15002), Some(15002), Some("MM_MID"), Some("MM_MID"))
    );
    assert_eq!(e.items.len(), 1);
}

#[test]
fn login_names_the_waiter_and_role() {
    let e = rk7::read(&fixture("seed001_login.xml")).unwrap();
    assert_eq!(e.situation, Situation::StationSignIn);
    assert_eq!(e.seqnumber, Some(3));
    assert_eq!(e.name.as_deref(), Some("Login"));
    assert_eq!(e.guid, Some(guid("{81A89081-D394-4070-BD37-A8E54CCA7B56}")));
    let w = e.waiter.as_ref().unwrap();
    assert_eq!(
        (w.id, w.code, w.name.as_deref()),
        (Some(1), Some(7), Some("Administrator"))
    );
    let r = w.role.as_ref().unwrap();
    assert_eq!(
        (r.id, r.code, r.name.as_deref()),
        (Some(100007), Some(7), Some("Administrators"))
    );
}

#[test]
fn new_order_reads_every_value_shown() {
    let e = rk7::read(&fixture("seed001_new_order.xml")).unwrap();
    assert_eq!(e.situation, Situation::NewOrder);
    assert_eq!(e.seqnumber, Some(13));
    assert_eq!(e.date_time, Some(dt("2019-12-18T17:18:33")));
    assert_eq!(e.name.as_deref(), Some("New Order"));

    let o = e.order.as_ref().unwrap();
    assert_eq!(o.visit, Some(477823977));
    assert_eq!(o.order_ident, Some(256));
    assert_eq!(o.guid, Some(guid("{763C7F09-875A-438A-B6CB-25F7D3F74741}")));
    assert_eq!(
        o.url.as_deref(),
        Some(
            "http://code.ucs.ru/qr?id=209A9A2B872A4728BEC8F0B09C667E6A763C7F09875A438AB6CB25F7D3F74741B6995A91"
        )
    );
    assert_eq!(o.order_name.as_deref(), Some("8888888888"));
    assert_eq!(o.locked, Some(true));
    // `version="0"crc32="0"`: no space between the attributes.
    assert_eq!(o.version, Some(0));
    assert_eq!(o.crc32, Some(0));
    assert_eq!(o.order_sum, Some(rk7::Kopecks(0)));
    assert_eq!(o.unpaid_sum, Some(rk7::Kopecks(0)));
    assert_eq!(o.discount_sum, Some(rk7::Kopecks(0)));
    assert_eq!(o.total_pieces, Some(0));
    assert_eq!(o.seq_number, Some(1));
    assert_eq!(o.paid, Some(true));
    assert_eq!(o.finished, Some(false));
    // `persistentComment=""nonPersistentComment=""`
    assert_eq!(o.persistent_comment.as_deref(), Some(""));
    assert_eq!(o.non_persistent_comment.as_deref(), Some(""));
    assert_eq!(o.open_time, Some(dt("2019-12-18T17:18:32")));
    assert!(
        o.extra.is_empty(),
        "nothing unknown in the sample: {:?}",
        o.extra
    );

    let creator = o.creator.as_ref().unwrap();
    assert_eq!(creator.name.as_deref(), Some("Administrator"));
    assert_eq!(creator.role.as_ref().unwrap().id, Some(100007));
    assert_eq!(o.waiter.as_ref().unwrap().code, Some(7));
    let cat = o.order_category.as_ref().unwrap();
    assert_eq!(
        (cat.id, cat.code, cat.name.as_deref()),
        (Some(10033), Some(1), Some("Main"))
    );
    let ty = o.order_type.as_ref().unwrap();
    assert_eq!(
        (ty.id, ty.code, ty.name.as_deref()),
        (Some(10069), Some(9001), Some("not selected"))
    );
    let table = o.table.as_ref().unwrap();
    assert_eq!(
        (table.id, table.code, table.name.as_deref()),
        (Some(1000259), Some(93), Some("8888888888"))
    );
    let st = o.station.as_ref().unwrap();
    assert_eq!(
        (st.id, st.code, st.net_name.as_deref()),
        (Some(15003), Some(1), None)
    );
    let guests = o.guests.as_ref().unwrap();
    assert_eq!(guests.count, Some(1));
    assert_eq!(guests.guests.len(), 1);
    assert_eq!(guests.guests[0].guest_label.as_deref(), Some("1"));
    assert!(o.sessions.is_empty());

    // In the notify sample the Session is a sibling of Order.
    assert_eq!(e.sessions.len(), 1);
    assert_eq!(e.all_sessions().count(), 1);
    let s = &e.sessions[0];
    assert_eq!(s.uni, Some(2));
    assert_eq!(
        s.line_guid,
        Some(guid("{39271E37-867D-41FF-99B8-59CB182323E9}"))
    );
    assert_eq!(s.state, Some(LineState::Open));
    assert_eq!(s.session_id, Some(2));
    assert_eq!(s.is_draft, Some(false));
    assert_eq!(s.remind_time, Some(dt("2019-12-18T17:18:00")));
    assert_eq!(s.start_service, Some(dt("2019-12-18T17:18:33")));
    assert_eq!(s.printed, Some(false));
    assert_eq!(s.cook_mins, Some(0));
    assert_eq!(s.station.as_ref().unwrap().name.as_deref(), Some("MM_CASH"));
    assert_eq!(
        s.author
            .as_ref()
            .unwrap()
            .role
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("Administrators")
    );
    assert_eq!(s.creator.as_ref().unwrap().id, Some(1));
    assert_eq!(
        s.course.as_ref().unwrap().name.as_deref(),
        Some("Cook later")
    );
    assert_eq!(s.price_scale.as_ref().unwrap().id, Some(3));
    assert_eq!(
        s.trade_group.as_ref().unwrap().name.as_deref(),
        Some("By default")
    );
    assert!(s.dishes.is_empty());

    assert_eq!(e.items.len(), 1);
    assert_eq!(e.items[0].class_name.as_deref(), Some("TOrder"));
    assert!(e.extra.is_empty());
}

#[test]
fn every_seed_sample_survives_write_then_read() {
    for name in [
        "seed001_server_started.xml",
        "seed001_station_started.xml",
        "seed001_login.xml",
        "seed001_new_order.xml",
    ] {
        let e = rk7::read(&fixture(name)).unwrap();
        let written = rk7::write(&e);
        assert_eq!(rk7::read(&written).unwrap(), e, "{name}");
    }
}

#[test]
fn raw_event_keeps_the_bytes_as_sent() {
    let bytes = fixture("seed001_new_order.xml");
    let raw = rk7::RawEvent::parse(bytes.clone()).unwrap();
    assert_eq!(raw.bytes(), &bytes[..]);
    assert_eq!(raw.event(), &rk7::read(&bytes).unwrap());
}
