//! Unit tests of request building and answer reading, on small hand-written
//! samples shaped as the public documentation describes the XML interface.

use quick_xml::events::Event as XmlEvent;

use super::*;
use crate::{Guid, Kopecks, LocalDateTime, ReadError, ReadErrorKind as K, Thousandths};

fn dt(s: &str) -> LocalDateTime {
    LocalDateTime::parse(s).unwrap()
}

/// An answer with the usual root attributes around `body`.
fn answer(status: &str, cmd: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<RK7QueryResult ServerVersion="7.6.5.92" XmlVersion="246" NetName="MIDSERV" Status="{status}" CMD="{cmd}" ErrorText="" DateTime="2020-02-12T20:28:51" WorkTime="0" Processed="1">{body}</RK7QueryResult>"#
    )
}

fn unreadable<T: std::fmt::Debug>(r: Result<T, Error>) -> ReadError {
    match r {
        Err(Error::Unreadable(e)) => e,
        other => panic!("expected an unreadable answer, got {other:?}"),
    }
}

fn status_error<T: std::fmt::Debug>(r: Result<T, Error>) -> StatusError {
    match r {
        Err(Error::Status(e)) => e,
        other => panic!("expected a Status error, got {other:?}"),
    }
}

/// Offset of the first occurrence of `needle` in `doc`.
fn at(doc: &[u8], needle: &str) -> usize {
    doc.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle:?} not in the document"))
}

// -- requests ---------------------------------------------------------------

/// Parses a request body with quick-xml (a strict parser) and returns each
/// element's name with its unescaped attributes, in document order.
fn parse_request(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event().expect("well-formed request") {
            XmlEvent::Start(e) | XmlEvent::Empty(e) => {
                let name = e.name().as_ref().to_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("well-formed attribute");
                        (
                            a.key.as_ref().to_owned(),
                            a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                                .unwrap()
                                .into_owned(),
                        )
                    })
                    .collect();
                out.push((name, attrs));
            }
            XmlEvent::Eof => return out,
            _ => {}
        }
    }
}

#[test]
fn get_system_info_body() {
    assert_eq!(
        Request::get_system_info().to_xml(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <RK7Query><RK7CMD CMD=\"GetSystemInfo\"/></RK7Query>\n"
    );
    assert_eq!(Request::get_system_info2().cmd(), "GetSystemInfo2");
}

#[test]
fn values_are_escaped_and_read_back_unchanged() {
    let nasty = "a&b<c>d\"e'f\tg\nh\r i «Ёлка» &amp; ]]>";
    let req = Request::new("Get\"Thing").attr("Name", nasty).child(
        Element::new("Filter")
            .attr("v", "<RK7CMD CMD=\"DeleteOrder\"/>")
            .attr("w", "1"),
    );
    let xml = req.to_xml();
    // Nothing of the values survives as markup.
    assert!(!xml.contains("<c>"), "{xml}");
    assert!(!xml.contains("DeleteOrder\""), "{xml}");
    assert!(xml.contains("&quot;") && xml.contains("&lt;") && xml.contains("&amp;amp;"));
    assert!(xml.contains("&#9;") && xml.contains("&#10;") && xml.contains("&#13;"));
    // Cyrillic goes as UTF-8, not as references.
    assert!(xml.contains("«Ёлка»"));
    let parsed = parse_request(&xml);
    let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["RK7Query", "RK7CMD", "Filter"]);
    assert_eq!(
        parsed[1].1,
        [
            ("CMD".to_owned(), "Get\"Thing".to_owned()),
            ("Name".to_owned(), nasty.to_owned())
        ]
    );
    assert_eq!(parsed[2].1[0].1, "<RK7CMD CMD=\"DeleteOrder\"/>");
}

#[test]
fn characters_xml_cannot_carry_become_replacement_characters() {
    let xml = Request::new("X")
        .attr("a", "x\u{0}y\u{1B}z\u{FFFF}")
        .to_xml();
    let parsed = parse_request(&xml);
    assert_eq!(parsed[1].1[1].1, "x\u{FFFD}y\u{FFFD}z\u{FFFD}");
}

#[test]
fn an_attribute_set_twice_is_written_once() {
    let xml = Request::new("X")
        .attr("a", "1")
        .int("a", 2)
        .flag("b", true)
        .to_xml();
    assert!(xml.contains(r#"<RK7CMD CMD="X" a="2" b="1"/>"#), "{xml}");
}

#[test]
fn get_order_list_attributes() {
    let xml = Request::get_order_list(&OrderListQuery::default()).to_xml();
    assert!(
        xml.contains(r#"<RK7CMD CMD="GetOrderList" onlyOpened="0"/>"#),
        "{xml}"
    );

    let q = OrderListQuery {
        need_idents: Some(true),
        need_codes: Some(false),
        need_names: Some(true),
        ..OrderListQuery::opened().changed_since(1234)
    };
    let parsed = parse_request(&Request::get_order_list(&q).to_xml());
    let attrs: Vec<(&str, &str)> = parsed[1]
        .1
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("CMD", "GetOrderList"),
            ("onlyOpened", "1"),
            ("needIdents", "1"),
            ("needCodes", "0"),
            ("needNames", "1"),
            ("lastversion", "1234"),
        ]
    );
}

#[test]
fn get_order_by_guid_sends_upper_case_in_braces() {
    let g = Guid::parse("763c7f09875a438ab6cb25f7d3f74741").unwrap();
    let xml = Request::get_order(&OrderKey::from(g)).to_xml();
    assert!(
        xml.contains(
            r#"<RK7CMD CMD="GetOrder"><Order guid="{763C7F09-875A-438A-B6CB-25F7D3F74741}"/></RK7CMD>"#
        ),
        "{xml}"
    );
    let xml = Request::get_order(&OrderKey::Visit {
        visit: 477823977,
        order_ident: 256,
    })
    .to_xml();
    assert!(
        xml.contains(r#"<Order visit="477823977" orderIdent="256"/>"#),
        "{xml}"
    );
}

#[test]
fn get_ref_data_attributes() {
    let xml = Request::get_ref_data(CASHES, &RefDataQuery::default()).to_xml();
    assert!(
        xml.contains(r#"<RK7CMD CMD="GetRefData" RefName="CASHES"/>"#),
        "{xml}"
    );
    let q = RefDataQuery {
        only_active: Some(true),
        prop_mask: Some("items.(Ident,Code,Name)".into()),
        offset: Some(100),
        item_count: Some(50),
    };
    let xml = Request::get_ref_data(EMPLOYEES, &q).to_xml();
    assert!(
        xml.contains(
            r#"RefName="EMPLOYEES" OnlyActive="1" PropMask="items.(Ident,Code,Name)" Offset="100" ItemCount="50"/>"#
        ),
        "{xml}"
    );
}

// -- Status -----------------------------------------------------------------

#[test]
fn every_status_value() {
    let cases = [
        ("Ok", Status::Ok),
        ("No changes", Status::NoChanges),
        ("Execution Started", Status::ExecutionStarted),
        ("Query Parse Error", Status::QueryParseError),
        ("Bad Query Parameters", Status::BadQueryParameters),
        ("Query Executing Error", Status::QueryExecutingError),
        ("Result Writing Error", Status::ResultWritingError),
        ("Something New", Status::Other("Something New".into())),
    ];
    for (text, want) in cases {
        assert_eq!(Status::parse(text), want);
        assert_eq!(want.as_str(), text);
        let doc = answer(text, "GetSystemInfo", "");
        let got = read_query_result(doc.as_bytes());
        if want.is_success() {
            assert_eq!(got.unwrap().status, want, "{text}");
        } else {
            let e = status_error(got);
            assert_eq!(e.status, want, "{text}");
            assert_eq!(e.cmd.as_deref(), Some("GetSystemInfo"));
            // An empty ErrorText is no text.
            assert_eq!(e.error_text, None);
        }
    }
    // Only Ok and No changes are successes.
    assert!(Status::Ok.is_success() && Status::NoChanges.is_success());
    assert!(!Status::ExecutionStarted.is_success());
    assert!(!Status::Other("Ok!".into()).is_success());
    // Tolerant of case and surrounding whitespace.
    assert_eq!(Status::parse(" no CHANGES "), Status::NoChanges);
    assert_eq!(Status::parse("ok"), Status::Ok);
}

#[test]
fn error_text_and_rk7_error_n_reach_the_typed_error() {
    let doc = r#"<RK7QueryResult Status="Query Executing Error" CMD="CreateOrder" ErrorText="Смена открыта слишком долго" RK7ErrorN="2133"/>"#;
    let e = status_error(read_query_result(doc.as_bytes()));
    assert_eq!(e.status, Status::QueryExecutingError);
    assert_eq!(e.error_text.as_deref(), Some("Смена открыта слишком долго"));
    assert_eq!(e.error_n, Some(StatusError::SHIFT_TOO_LONG));
    assert!(!e.is_shift_closing());
    let msg = Error::from(e).to_string();
    assert!(msg.contains("CreateOrder"), "{msg}");
    assert!(msg.contains("Query Executing Error"), "{msg}");
    assert!(msg.contains("Смена открыта слишком долго"), "{msg}");
    assert!(msg.contains("RK7ErrorN 2133"), "{msg}");

    let doc = r#"<RK7QueryResult Status="Query Executing Error" ErrorText="UCSERR(2172)" RK7ErrorN="2172"/>"#;
    let e = status_error(read_order_list(doc.as_bytes()));
    assert!(e.is_shift_closing());
    assert_eq!(e.cmd, None);
}

#[test]
fn a_refusal_is_reported_even_when_the_rest_is_broken() {
    // The data of an error answer is not read, and the header's values
    // never hide the Status.
    let doc = r#"<RK7QueryResult Status="Bad Query Parameters" RK7ErrorN="n/a" WorkTime="soon" DateTime="yesterday" ErrorText="no guid"><Order orderSum="1.5"><Broken"#;
    let e = status_error(read_order(doc.as_bytes()));
    assert_eq!(e.status, Status::BadQueryParameters);
    assert_eq!(e.error_n, None);
    assert_eq!(e.error_text.as_deref(), Some("no guid"));
}

#[test]
fn header_values_that_do_not_parse_are_kept_not_fatal() {
    let doc = r#"<RK7QueryResult Status="Ok" XmlVersion="x" RK7ErrorN="" DateTime="2020-02-12" Future="1"/>"#;
    let q = read_query_result(doc.as_bytes()).unwrap();
    assert_eq!(q.xml_version, None);
    assert_eq!(q.error_n, None);
    assert_eq!(q.date_time, Some(dt("2020-02-12T00:00:00")));
    assert_eq!(
        q.extra.attrs,
        [
            ("XmlVersion".to_owned(), "x".to_owned()),
            ("Future".to_owned(), "1".to_owned())
        ]
    );
}

#[test]
fn an_answer_without_status_is_unreadable() {
    let doc = br#"<RK7QueryResult CMD="GetSystemInfo"><SystemInfo/></RK7QueryResult>"#;
    let e = unreadable(read_system_info(doc));
    assert_eq!(e.kind, K::MissingAttribute);
    assert_eq!(e.path, "RK7QueryResult@Status");
    assert_eq!(e.offset, 0);
}

#[test]
fn the_generic_reader_keeps_the_data() {
    let doc = answer(
        "Ok",
        "GetWaiterList",
        r#"<Waiters><waiter ID="1" Code="7">Administrator</waiter></Waiters>"#,
    );
    let q = read_query_result(doc.as_bytes()).unwrap();
    assert_eq!(q.server_version.as_deref(), Some("7.6.5.92"));
    assert_eq!(q.xml_version, Some(246));
    assert_eq!(q.net_name.as_deref(), Some("MIDSERV"));
    assert_eq!(q.cmd.as_deref(), Some("GetWaiterList"));
    assert_eq!(q.error_text, None);
    assert_eq!(q.date_time, Some(dt("2020-02-12T20:28:51")));
    assert_eq!((q.work_time, q.processed), (Some(0), Some(1)));
    assert_eq!(q.extra.elements.len(), 1);
    let waiters = &q.extra.elements[0];
    assert_eq!(waiters.name, "Waiters");
    assert_eq!(waiters.children[0].text, "Administrator");
}

// -- not an answer, broken answers ----------------------------------------------

#[test]
fn bodies_that_are_not_an_answer() {
    let e = unreadable(read_query_result(b""));
    assert_eq!((e.kind, e.offset, e.path.as_str()), (K::NotAnAnswer, 0, ""));

    let doc = b"<!DOCTYPE html>\n<html><body>401 Unauthorized</body></html>";
    let e = unreadable(read_query_result(doc));
    assert_eq!(e.kind, K::NotAnAnswer);
    assert_eq!(e.offset, at(doc, "<html>"));
    assert!(e.to_string().contains("<RK7QueryResult>"), "{e}");

    // The notify event's root is not an answer either.
    let e = unreadable(read_order(br#"<a Situation="1"/>"#));
    assert_eq!(e.kind, K::NotAnAnswer);

    let e = unreadable(read_query_result(b"Unauthorized"));
    assert_eq!((e.kind, e.offset), (K::NotXml, 0));
    assert_eq!(e.found.as_deref(), Some("Unauthorized"));
}

#[test]
fn broken_xml_fails_with_its_position() {
    // Cut off in the middle of the data.
    let doc = answer(
        "Ok",
        "GetOrderList",
        r#"<Visit VisitID="1"><Orders><Order OrderID="1"/>"#,
    );
    let doc = doc.trim_end_matches("</RK7QueryResult>");
    let e = unreadable(read_order_list(doc.as_bytes()));
    assert_eq!(e.kind, K::Truncated, "{e}");
    assert_eq!(e.offset, doc.len());

    // A wrong end tag.
    let doc = answer(
        "Ok",
        "GetRefData",
        "<RK7Reference><Items></Itemz></RK7Reference>",
    );
    let e = unreadable(read_reference::<RefItem>(doc.as_bytes()));
    assert_eq!(e.kind, K::NotXml, "{e}");
    assert_eq!(e.offset, at(doc.as_bytes(), "</Itemz>"));

    // A broken attribute on the root.
    let doc = br#"<RK7QueryResult Status="Ok" CMD=GetOrder/>"#;
    let e = unreadable(read_order(doc));
    assert_eq!(e.kind, K::NotXml, "{e}");
    assert_eq!(e.path, "RK7QueryResult");
    assert_eq!(e.offset, at(doc, "GetOrder"));
}

#[test]
fn a_bad_value_says_which_attribute_and_where() {
    let doc = answer(
        "Ok",
        "GetOrderList",
        r#"<Visit VisitID="1"><Orders><Order OrderID="1" OrderSum="12.50"/></Orders></Visit>"#,
    );
    let e = unreadable(read_order_list(doc.as_bytes()));
    assert_eq!(e.kind, K::BadMoney);
    assert_eq!(e.path, "RK7QueryResult/Visit/Orders/Order@OrderSum");
    assert_eq!(e.offset, at(doc.as_bytes(), "12.50"));
    assert_eq!(e.found.as_deref(), Some("12.50"));
    let msg = Error::from(e).to_string();
    assert!(
        msg.starts_with("unreadable answer: bad money \"12.50\""),
        "{msg}"
    );
}

#[test]
fn a_success_without_the_commands_data_is_unreadable() {
    for (doc, element) in [
        (answer("Ok", "GetOrder", ""), "<Order>"),
        (answer("Ok", "GetSystemInfo", "<Other/>"), "<SystemInfo>"),
        (answer("No changes", "GetRefData", ""), "<RK7Reference>"),
    ] {
        let e = match element {
            "<Order>" => unreadable(read_order(doc.as_bytes())),
            "<SystemInfo>" => unreadable(read_system_info(doc.as_bytes())),
            _ => unreadable(read_reference::<Cash>(doc.as_bytes())),
        };
        assert_eq!(e.kind, K::MissingElement, "{e}");
        assert_eq!(e.path, "RK7QueryResult");
        assert_eq!(e.offset, at(doc.as_bytes(), "<RK7QueryResult"));
        assert!(e.detail.contains(element), "{e}");
    }
}

#[test]
fn the_http_status_matters_only_when_the_body_is_not_an_answer() {
    let refusal = r#"<RK7QueryResult Status="Query Parse Error" ErrorText="empty query"/>"#;
    // An answer is an answer, whatever the HTTP status.
    let e = status_error(read_http_answer(500, refusal.as_bytes(), read_query_result));
    assert_eq!(e.status, Status::QueryParseError);
    let ok = answer("Ok", "X", "");
    assert!(read_http_answer(200, ok.as_bytes(), read_query_result).is_ok());
    // Not an answer, with an error status: the HTTP status.
    match read_http_answer(401, b"Unauthorized", read_query_result) {
        Err(e @ Error::Http { status: 401 }) => {
            assert_eq!(e.to_string(), "HTTP 401 Unauthorized from the cash server")
        }
        other => panic!("{other:?}"),
    }
    match read_http_answer(404, b"", read_query_result) {
        Err(e @ Error::Http { status: 404, .. }) => {
            assert_eq!(e.to_string(), "HTTP 404 Not Found from the cash server")
        }
        other => panic!("{other:?}"),
    }
    // Not an answer with 200: unreadable.
    let e = unreadable(read_http_answer(200, b"<html/>", read_query_result));
    assert_eq!(e.kind, K::NotAnAnswer);
    // Whatever else answered is never quoted: neither its text nor what the
    // XML parser says about it.
    for body in ["token=s3cr3t-metrics", "<a>token=s3cr3t-metrics</b>"] {
        for status in [200, 500] {
            let e = read_http_answer(status, body.as_bytes(), read_query_result).unwrap_err();
            assert!(
                !format!("{e} {e:?}").contains("s3cr3t"),
                "{status} {body}: {e:?}"
            );
        }
    }
    // A broken answer stays a broken answer with an error status too.
    let broken = br#"<RK7QueryResult Status="Ok"><Visit VisitID="x"/></RK7QueryResult>"#;
    let e = unreadable(read_http_answer(500, broken, read_order_list));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::BadNumber, "RK7QueryResult/Visit@VisitID")
    );
    match read_http_answer(502, "x".repeat(1000).as_bytes(), read_query_result) {
        Err(e @ Error::Http { status: 502 }) => assert!(!e.to_string().contains("xx"), "{e}"),
        other => panic!("{other:?}"),
    }
}

// -- GetSystemInfo --------------------------------------------------------------

#[test]
fn system_info() {
    let doc = answer(
        "Ok",
        "GetSystemInfo2",
        r#"
  <SystemInfo SystemTime="3790700931046" ReqSysVer="2" NetName="MIDSERV" ProcessID="4788" ShiftDate="2020-02-12T00:00:00" RestCode="199990093" uptime="x">
    <CashGroup id="15002" code="15002" name="MM_MID"/>
    <Restaurant id="1001" code="1" name="Ресторан &quot;Ёлка&quot;"/>
    <BusinessPeriod id="1" name="Day"/>
    <CommonShift ShiftDate="2020-02-12T00:00:00" ShiftNum="42" ShiftStartTime="2020-02-12T09:01:02"/>
  </SystemInfo>"#,
    );
    let s = read_system_info(doc.as_bytes()).unwrap();
    assert_eq!(s.server_version.as_deref(), Some("7.6.5.92"));
    assert_eq!(s.xml_version, Some(246));
    assert_eq!(s.net_name.as_deref(), Some("MIDSERV"));
    assert_eq!(s.system_time.as_deref(), Some("3790700931046"));
    assert_eq!(s.req_sys_ver.as_deref(), Some("2"));
    assert_eq!(s.process_id, Some(4788));
    assert_eq!(
        s.rest_code.as_ref().map(|r| r.0.as_str()),
        Some("199990093")
    );
    assert_eq!(s.cash_group.as_ref().and_then(|c| c.id), Some(15002));
    assert_eq!(s.restaurant.as_ref().and_then(|r| r.code), Some(1));
    assert_eq!(s.restaurant_name(), Some("Ресторан \"Ёлка\""));
    assert_eq!(s.common_shift_date(), Some(&dt("2020-02-12T00:00:00")));
    assert_eq!(s.common_shift_num(), Some(42));
    let shift = s.common_shift.as_ref().unwrap();
    assert_eq!(shift.shift_start_time, Some(dt("2020-02-12T09:01:02")));
    // What the model does not type is kept.
    assert_eq!(s.extra.attrs, [("uptime".to_owned(), "x".to_owned())]);
    assert_eq!(s.extra.elements[0].name, "BusinessPeriod");
}

#[test]
fn system_info_with_attributes_missing() {
    // The public sample of GetSystemInfo: no shift, no restaurant.
    let doc = answer(
        "Ok",
        "GetSystemInfo",
        r#"<SystemInfo SystemTime="3790700931046" ReqSysVer="2" NetName="OA-01-REPS-000" ProcessID="4788"/>"#,
    );
    let s = read_system_info(doc.as_bytes()).unwrap();
    assert_eq!(s.net_name.as_deref(), Some("OA-01-REPS-000"));
    assert_eq!((s.common_shift_date(), s.common_shift_num()), (None, None));
    assert_eq!(
        (s.rest_code, s.restaurant, s.common_shift),
        (None, None, None)
    );

    // Bare, empty elements: all None, nothing fails.
    let s = read_system_info(
        br#"<RK7QueryResult Status="Ok"><SystemInfo RestCode="" ShiftDate=""/></RK7QueryResult>"#,
    )
    .unwrap();
    assert_eq!(s, SystemInfo::default());
}

#[test]
fn common_shift_beside_system_info_and_a_bare_date() {
    let doc = answer(
        "Ok",
        "GetSystemInfo2",
        r#"<SystemInfo ShiftDate="2020-02-11"/><CommonShift ShiftDate="2020-02-12" ShiftNum="7"/>"#,
    );
    let s = read_system_info(doc.as_bytes()).unwrap();
    assert_eq!(s.shift_date, Some(dt("2020-02-11T00:00:00")));
    // CommonShift wins for the shift's date.
    assert_eq!(s.common_shift_date(), Some(&dt("2020-02-12T00:00:00")));
    assert_eq!(s.common_shift_num(), Some(7));
}

#[test]
fn a_bad_date_in_system_info_is_located() {
    let doc = answer(
        "Ok",
        "GetSystemInfo",
        r#"<SystemInfo ShiftDate="12.02.2020"/>"#,
    );
    let e = unreadable(read_system_info(doc.as_bytes()));
    assert_eq!(e.kind, K::BadDateTime);
    assert_eq!(e.path, "RK7QueryResult/SystemInfo@ShiftDate");
    assert_eq!(e.offset, at(doc.as_bytes(), "12.02.2020"));
}

#[test]
fn windows_1251_answer() {
    let text = answer(
        "Ok",
        "GetSystemInfo",
        r#"<SystemInfo><Restaurant id="1" code="1" name="Кафе «Ёлка»"/></SystemInfo>"#,
    )
    .replace("encoding=\"utf-8\"", "encoding=\"windows-1251\"");
    let (bytes, _, bad) = encoding_rs::WINDOWS_1251.encode(&text);
    assert!(!bad);
    assert_ne!(&bytes[..], text.as_bytes(), "the sample must not be UTF-8");
    let s = read_system_info(&bytes).unwrap();
    assert_eq!(s.restaurant_name(), Some("Кафе «Ёлка»"));

    // Offsets of errors are offsets into the windows-1251 bytes.
    let text = answer(
        "Ok",
        "GetSystemInfo",
        r#"<SystemInfo NetName="Касса" ProcessID="пять"/>"#,
    )
    .replace("encoding=\"utf-8\"", "encoding=\"windows-1251\"");
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    let e = unreadable(read_system_info(&bytes));
    assert_eq!(e.kind, K::BadNumber);
    let (value, _, _) = encoding_rs::WINDOWS_1251.encode("пять");
    let offset = bytes
        .windows(value.len())
        .position(|w| w == &value[..])
        .unwrap();
    assert_eq!(e.offset, offset);

    // Bytes that are not UTF-8 without a declaration: a located encoding error.
    let e = unreadable(read_system_info(
        &bytes[bytes.iter().position(|&b| b == b'\n').unwrap() + 1..],
    ));
    assert_eq!(e.kind, K::BadEncoding);
}

// -- GetOrderList ---------------------------------------------------------------

const ORDER_LIST: &str = r#"
  <Visit VisitID="477823977" guid="{1C2F2D54-8E07-4B4B-8F60-8B22C0A6B0B1}" Finished="0" GuestsCount="2" PersistentComment="vip">
    <Guests count="2"><Guest GuestLabel="1"/></Guests>
    <Orders>
      <Order OrderID="256" guid="{763C7F09-875A-438A-B6CB-25F7D3F74741}" crc32="-1234567" Version="5" OrderName="8888888888" OrderSum="40000" ToPaySum="15000" PrepaySum="25000" TableID="1000259" TableCode="93" WaiterID="1" WaiterCode="7" CreateTime="2019-12-18T17:18:32" FinishTime="" Finished="0" Bill="1" paid="0" locked="1" url="http://code.ucs.ru/qr?id=A&amp;b=1" TableName="93" Future="x">
        <LockedByWaiter id="1"/>
      </Order>
      <Order OrderID="257" guid="{9ECCB1B5-97EE-4B88-9840-8568F05586D0}"/>
    </Orders>
  </Visit>
  <Visit VisitID="477823978" guid="{2C2F2D54-8E07-4B4B-8F60-8B22C0A6B0B1}" Finished="1">
    <Order OrderID="1"/>
  </Visit>
  <Unknown/>"#;

#[test]
fn order_list() {
    let doc = answer("Ok", "GetOrderList", ORDER_LIST)
        .replace("Processed=\"1\"", "Processed=\"1\" lastversion=\"9001\"");
    let list = read_order_list(doc.as_bytes()).unwrap();
    assert_eq!(list.last_version, Some(9001));
    assert!(!list.unchanged);
    assert_eq!(list.visits.len(), 2);
    let v = &list.visits[0];
    assert_eq!(v.visit_id, Some(477823977));
    assert_eq!(v.finished, Some(false));
    assert_eq!(v.guests_count, Some(2));
    assert_eq!(
        v.guid,
        Some(Guid::parse("{1C2F2D54-8E07-4B4B-8F60-8B22C0A6B0B1}").unwrap())
    );
    assert_eq!(
        v.extra.attrs,
        [("PersistentComment".to_owned(), "vip".to_owned())]
    );
    assert_eq!(v.extra.elements[0].name, "Guests");
    assert_eq!(v.orders.len(), 2);
    let o = &v.orders[0];
    assert_eq!(o.order_id, Some(256));
    assert_eq!(
        o.guid,
        Some(Guid::parse("{763C7F09-875A-438A-B6CB-25F7D3F74741}").unwrap())
    );
    assert_eq!((o.crc32, o.version), (Some(-1234567), Some(5)));
    assert_eq!(o.order_name.as_deref(), Some("8888888888"));
    assert_eq!(o.order_sum, Some(Kopecks(40000)));
    assert_eq!(o.to_pay_sum, Some(Kopecks(15000)));
    assert_eq!(o.prepay_sum, Some(Kopecks(25000)));
    assert_eq!((o.table_id, o.table_code), (Some(1000259), Some(93)));
    assert_eq!((o.waiter_id, o.waiter_code), (Some(1), Some(7)));
    assert_eq!(o.create_time, Some(dt("2019-12-18T17:18:32")));
    assert_eq!(o.finish_time, None);
    assert_eq!(
        (o.finished, o.bill, o.paid, o.locked),
        (Some(false), Some(true), Some(false), Some(true))
    );
    assert_eq!(o.url.as_deref(), Some("http://code.ucs.ru/qr?id=A&b=1"));
    assert_eq!(
        o.extra.attrs,
        [
            ("TableName".to_owned(), "93".to_owned()),
            ("Future".to_owned(), "x".to_owned())
        ]
    );
    assert_eq!(o.extra.elements[0].name, "LockedByWaiter");
    // Missing attributes are None.
    assert_eq!(
        v.orders[1],
        OrderListItem {
            order_id: Some(257),
            guid: Some(Guid::parse("{9ECCB1B5-97EE-4B88-9840-8568F05586D0}").unwrap()),
            ..OrderListItem::default()
        }
    );
    // An <Order> directly in <Visit> is taken too.
    assert_eq!(list.visits[1].orders[0].order_id, Some(1));
    let ids: Vec<(Option<i64>, Option<i64>)> = list
        .orders()
        .map(|(v, o)| (v.visit_id, o.order_id))
        .collect();
    assert_eq!(
        ids,
        [
            (Some(477823977), Some(256)),
            (Some(477823977), Some(257)),
            (Some(477823978), Some(1))
        ]
    );
}

#[test]
fn order_list_no_changes_and_empty() {
    let doc = r#"<RK7QueryResult Status="No changes" CMD="GetOrderList" lastversion="9001"/>"#;
    let list = read_order_list(doc.as_bytes()).unwrap();
    assert!(list.unchanged);
    assert_eq!(list.last_version, Some(9001));
    assert!(list.visits.is_empty());

    let doc =
        r#"<RK7QueryResult Status="Ok" CMD="GetOrderList" lastversion="9002"></RK7QueryResult>"#;
    let list = read_order_list(doc.as_bytes()).unwrap();
    assert!(!list.unchanged);
    assert_eq!(list.last_version, Some(9002));
    assert_eq!(list.orders().count(), 0);

    let doc = r#"<RK7QueryResult Status="Ok" lastversion="new"/>"#;
    let e = unreadable(read_order_list(doc.as_bytes()));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::BadNumber, "RK7QueryResult@lastversion")
    );
}

// -- GetOrder -------------------------------------------------------------------

const ORDER: &str = r#"<Order visit="477823977" orderIdent="256" guid="{763C7F09-875A-438A-B6CB-25F7D3F74741}" orderName="8888888888" version="3" crc32="99" orderSum="40000" unpaidSum="40000" discountSum="0" totalPieces="2" paid="0" finished="0" openTime="2019-12-18T17:18:32" newAttr="1">
<Creator id="1" code="7" name="Administrator"><Role id="100007" code="7" name="Administrators"/></Creator>
<Waiter id="1" code="7" name="Administrator"/>
<Table id="1000259" code="93" name="93"/>
<Guests count="1"><Guest guestLabel="1"/></Guests>
<ExternalProps><Prop name="source" value="site"/></ExternalProps>
<Session uni="2" line_guid="{39271E37-867D-41FF-99B8-59CB182323E9}" state="1" sessionID="2">
<Dish id="1001" code="12" name="Борщ" uni="3" line_guid="{49271E37-867D-41FF-99B8-59CB182323E9}" state="1" price="20000" amount="40000" quantity="2000"><Modi id="5" name="без сметаны"/></Dish>
<Pay id="1" code="1" name="Рубли" amount="10000" TransactionStatus="4"/>
</Session>
<Mystery x="1"/>
</Order>"#;

#[test]
fn get_order_reads_the_notify_model() {
    let doc = answer("Ok", "GetOrder", ORDER);
    let order = read_order(doc.as_bytes()).unwrap();
    // Exactly what the notify reader makes of the same <Order>.
    let event = format!(r#"<a Situation="3">{ORDER}</a>"#);
    assert_eq!(
        Some(&order),
        crate::read(event.as_bytes()).unwrap().order.as_ref()
    );
    assert_eq!(order.visit, Some(477823977));
    assert_eq!(order.order_ident, Some(256));
    assert_eq!(order.order_sum, Some(Kopecks(40000)));
    assert_eq!(order.open_time, Some(dt("2019-12-18T17:18:32")));
    let dish = &order.sessions[0].dishes[0];
    assert_eq!(dish.name.as_deref(), Some("Борщ"));
    assert_eq!(dish.quantity, Some(Thousandths(2000)));
    assert_eq!(dish.modis[0].name.as_deref(), Some("без сметаны"));
    assert_eq!(order.sessions[0].pays[0].amount, Some(Kopecks(10000)));
    assert_eq!(order.external_props[0].value.as_deref(), Some("site"));
    assert_eq!(order.extra.attrs, [("newAttr".to_owned(), "1".to_owned())]);
    assert_eq!(order.extra.elements[0].name, "Mystery");
}

#[test]
fn a_bad_value_in_an_order_is_located_in_the_answer() {
    let doc = answer(
        "Ok",
        "GetOrder",
        r#"<Order guid="{763C7F09-875A-438A-B6CB-25F7D3F74741}"><Session><Dish price="1,5"/></Session></Order>"#,
    );
    let e = unreadable(read_order(doc.as_bytes()));
    assert_eq!(e.kind, K::BadMoney);
    assert_eq!(e.path, "RK7QueryResult/Order/Session/Dish@price");
    assert_eq!(e.offset, at(doc.as_bytes(), "1,5"));
}

// -- GetRefData -----------------------------------------------------------------

#[test]
fn references() {
    let doc = answer(
        "Ok",
        "GetRefData",
        r#"
  <RK7Reference DataVersion="321" ClassName="TCashes" Name="CASHES" TotalItemCount="2" Extra="1">
    <Items>
      <Item Ident="15003" Code="1" Name="MM_CASH" GUIDString="{8E2A0C1B-0F0E-4C5B-9E0A-6A1B2C3D4E5F}" Status="rsActive" NetName="MM_CASH_169058"/>
      <Item Ident="15004" Code="2" Name="Бар"><Child/></Item>
      <NotAnItem/>
    </Items>
    <Other/>
  </RK7Reference>"#,
    );
    let r: Reference<Cash> = read_reference(doc.as_bytes()).unwrap();
    assert_eq!(r.data_version, Some(321));
    assert_eq!(r.class_name.as_deref(), Some("TCashes"));
    assert_eq!(r.name.as_deref(), Some("CASHES"));
    assert_eq!(r.total_item_count, Some(2));
    assert_eq!(r.extra.attrs, [("Extra".to_owned(), "1".to_owned())]);
    assert_eq!(r.extra.elements[0].name, "Other");
    assert_eq!(r.items.len(), 2);
    let c = &r.items[0];
    assert_eq!((c.ident, c.code), (Some(15003), Some(1)));
    assert_eq!(c.name.as_deref(), Some("MM_CASH"));
    assert_eq!(
        c.guid,
        Some(Guid::parse("{8E2A0C1B-0F0E-4C5B-9E0A-6A1B2C3D4E5F}").unwrap())
    );
    assert_eq!(c.status.as_deref(), Some("rsActive"));
    assert_eq!(
        c.extra.attrs,
        [("NetName".to_owned(), "MM_CASH_169058".to_owned())]
    );
    assert_eq!(
        r.items[1],
        Cash {
            ident: Some(15004),
            code: Some(2),
            name: Some("Бар".into()),
            extra: crate::Extra {
                elements: vec![crate::XmlElement {
                    name: "Child".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Cash::default()
        }
    );

    // The same answer as employees or restaurants: the same fields.
    let e: Reference<Employee> = read_reference(doc.as_bytes()).unwrap();
    assert_eq!(e.items[0].ident, Some(15003));
    let rs: Reference<Restaurant> = read_reference(doc.as_bytes()).unwrap();
    assert_eq!(rs.items[1].name.as_deref(), Some("Бар"));

    // An empty reference is empty, not an error.
    let doc = answer(
        "Ok",
        "GetRefData",
        r#"<RK7Reference Name="EMPLOYEES"><Items/></RK7Reference>"#,
    );
    let r: Reference<Employee> = read_reference(doc.as_bytes()).unwrap();
    assert!(r.items.is_empty());
    assert_eq!(r.total_item_count, None);
}

#[test]
fn a_bad_guid_in_a_reference_is_located() {
    let doc = answer(
        "Ok",
        "GetRefData",
        r#"<RK7Reference><Items><Item Ident="1" GUIDString="not-a-guid"/></Items></RK7Reference>"#,
    );
    let e = unreadable(read_reference::<RefItem>(doc.as_bytes()));
    assert_eq!(e.kind, K::BadGuid);
    assert_eq!(e.path, "RK7QueryResult/RK7Reference/Items/Item@GUIDString");
}
