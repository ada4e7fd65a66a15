//! Input that is really broken: one test per kind of damage, each checking
//! the typed error kind, the byte offset and the element path a person
//! needs to find the problem, and that nothing panics.

use rk7::{ReadError, ReadErrorKind as K};

use crate::fixture;

/// Reads `doc`, which must fail, and returns the error.
fn fails(doc: &[u8]) -> ReadError {
    match rk7::read(doc) {
        Ok(e) => panic!("read {:?} as {e:?}", String::from_utf8_lossy(doc)),
        Err(e) => e,
    }
}

/// Offset of the first occurrence of `needle` in `doc`.
fn at(doc: &[u8], needle: &str) -> usize {
    doc.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle:?} not in the document"))
}

#[test]
fn not_xml_at_all() {
    for doc in [
        &b"hello world"[..],
        br#"{"Situation": 11}"#,
        b"Situation=11&seq=1",
    ] {
        let e = fails(doc);
        assert_eq!(e.kind, K::NotXml, "{e}");
        assert_eq!(e.offset, 0);
        assert_eq!(e.path, "");
        assert_eq!(e.found.as_deref().map(str::as_bytes), Some(doc));
    }
    // Text before the root is refused where it starts.
    let doc = b"  junk<a Situation=\"1\"/>";
    let e = fails(doc);
    assert_eq!((e.kind, e.offset), (K::NotXml, 0));
    assert_eq!(e.found.as_deref(), Some("  junk"));
}

#[test]
fn empty_or_blank_body_has_no_root() {
    let e = fails(b"");
    assert_eq!((e.kind, e.offset, e.path.as_str()), (K::NoRoot, 0, ""));
    let e = fails(b" \r\n\t ");
    assert_eq!((e.kind, e.offset), (K::NoRoot, 5));
    let doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- nothing -->\n";
    let e = fails(doc);
    assert_eq!((e.kind, e.offset), (K::NoRoot, doc.len()));
}

#[test]
fn another_root_element() {
    let doc = b"<?xml version=\"1.0\"?>\n<Order visit=\"1\"/>";
    let e = fails(doc);
    assert_eq!(e.kind, K::NoRoot);
    assert_eq!(e.offset, at(doc, "<Order"));
    assert_eq!(e.path, "");
    assert!(e.to_string().contains("<Order>"), "{e}");
    // Element names are case-sensitive: `<A>` is not `<a>`.
    assert_eq!(fails(b"<A Situation=\"1\"/>").kind, K::NoRoot);
}

#[test]
fn truncated_documents() {
    let full = fixture("seed001_new_order.xml");
    // Cut inside the <Order> start tag (in an attribute value).
    let cut = &full[..at(&full, "orderName=") + 14];
    let e = fails(cut);
    assert_eq!(e.kind, K::Truncated, "{e}");
    assert_eq!(e.offset, at(&full, "<Order"));
    assert_eq!(e.path, "a");
    // Cut after a complete child: the open elements are named.
    let cut = &full[..at(&full, "<Guests")];
    let e = fails(cut);
    assert_eq!(e.kind, K::Truncated, "{e}");
    assert_eq!(e.offset, cut.len());
    assert_eq!(e.path, "a/Order");
    assert!(e.to_string().contains("<Order> is not closed"), "{e}");
    // Cut just before the root's end tag.
    let cut = &full[..at(&full, "</a>")];
    let e = fails(cut);
    assert_eq!(
        (e.kind, e.offset, e.path.as_str()),
        (K::Truncated, cut.len(), "a")
    );
}

#[test]
fn every_prefix_of_a_real_event_fails_cleanly() {
    let full = fixture("seed001_new_order.xml");
    let end = at(&full, "</a>") + 4;
    for n in 0..end {
        let e = fails(&full[..n]);
        assert!(
            matches!(e.kind, K::Truncated | K::NoRoot | K::NotXml),
            "prefix {n}: {e}"
        );
        assert!(
            e.offset <= n,
            "prefix {n}: offset {} beyond the end",
            e.offset
        );
    }
    rk7::read(&full[..end]).unwrap();
}

#[test]
fn non_numeric_situation() {
    let doc = br#"<a RestCode="1" Situation="eleven" seqnumber="1"/>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::BadNumber);
    assert_eq!(e.offset, at(doc, "eleven"));
    assert_eq!(e.path, "a@Situation");
    assert_eq!(e.found.as_deref(), Some("eleven"));
    assert_eq!(
        e.to_string(),
        format!(
            "bad number \"eleven\" at a@Situation (byte {}): expected an integer",
            e.offset
        )
    );
    // An empty Situation is as bad as a missing one: the event means nothing.
    let e = fails(br#"<a Situation=""/>"#);
    assert_eq!((e.kind, e.path.as_str()), (K::BadNumber, "a@Situation"));
}

#[test]
fn missing_situation() {
    let doc = b"<?xml version=\"1.0\"?><a RestCode=\"1\"><Item/></a>";
    let e = fails(doc);
    assert_eq!(e.kind, K::MissingAttribute);
    assert_eq!(e.offset, at(doc, "<a "));
    assert_eq!(e.path, "a@Situation");
}

#[test]
fn money_that_is_not_an_integer() {
    for bad in [
        "400.00", "400,00", "1e3", "", "0x10", "12 34", "--1", "+-1", "40000р",
    ] {
        if bad.is_empty() {
            continue; // empty means "not sent", see quirks
        }
        let doc = format!(
            r#"<a Situation="3"><Session uni="1"><Dish id="1" price="{bad}"/></Session></a>"#
        );
        let e = fails(doc.as_bytes());
        assert_eq!(e.kind, K::BadMoney, "{bad}: {e}");
        assert_eq!(e.offset, at(doc.as_bytes(), "price=") + 7, "{bad}");
        assert_eq!(e.path, "a/Session/Dish@price");
        assert_eq!(e.found.as_deref(), Some(bad));
    }
    // Money on the order itself, and beyond the range of i64.
    let doc = br#"<a Situation="3"><Order visit="1" orderSum="99999999999999999999"/></a>"#;
    let e = fails(doc);
    assert_eq!((e.kind, e.path.as_str()), (K::BadMoney, "a/Order@orderSum"));
    assert_eq!(e.offset, at(doc, "9999"));
    // Deep inside: a payment of a receipt in the order's session.
    let doc = br#"<a Situation="5"><Order><Session><PrintCheck><Pay amount="1.5"/></PrintCheck></Session></Order></a>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::BadMoney);
    assert_eq!(e.path, "a/Order/Session/PrintCheck/Pay@amount");
    assert_eq!(e.offset, at(doc, "1.5"));
}

#[test]
fn quantity_that_is_not_an_integer() {
    let doc =
        br#"<a Situation="3"><ChangeLog><Dish oldvalue="0" newvalue="1.000"/></ChangeLog></a>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::BadQuantity);
    assert_eq!(e.path, "a/ChangeLog/Dish@newvalue");
    assert_eq!(e.offset, at(doc, "1.000"));
}

#[test]
fn bad_ids_flags_dates_and_guids() {
    let cases: [(&[u8], K, &str, &str); 6] = [
        (
            br#"<a Situation="3"><Station id="A1"/></a>"#,
            K::BadNumber,
            "a/Station@id",
            "A1",
        ),
        (
            br#"<a Situation="3" seqnumber="-1"/>"#,
            K::BadNumber,
            "a@seqnumber",
            "-1",
        ),
        (
            br#"<a Situation="3"><Order paid="yes"/></a>"#,
            K::BadBool,
            "a/Order@paid",
            "yes",
        ),
        (
            br#"<a Situation="3" DateTime="18.12.2019 17:18:33"/>"#,
            K::BadDateTime,
            "a@DateTime",
            "18.12.2019 17:18:33",
        ),
        (
            br#"<a Situation="3"><Order openTime="2019-02-30T10:00:00"/></a>"#,
            K::BadDateTime,
            "a/Order@openTime",
            "2019-02-30T10:00:00",
        ),
        (
            br#"<a Situation="3"><Order guid="{763C7F09-875A-438A-B6CB}"/></a>"#,
            K::BadGuid,
            "a/Order@guid",
            "{763C7F09-875A-438A-B6CB}",
        ),
    ];
    for (doc, kind, path, found) in cases {
        let e = fails(doc);
        assert_eq!(e.kind, kind, "{e}");
        assert_eq!(e.path, path);
        assert_eq!(e.found.as_deref(), Some(found));
        assert_eq!(e.offset, at(doc, found));
    }
}

#[test]
fn mismatched_and_stray_end_tags() {
    let doc = br#"<a Situation="3"><Order><Station></Order></a>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::NotXml);
    assert_eq!(e.offset, at(doc, "</Order>"));
    assert_eq!(e.path, "a/Order/Station");
    let e = fails(b"</a>");
    assert_eq!((e.kind, e.offset, e.path.as_str()), (K::NotXml, 0, ""));
}

#[test]
fn attribute_syntax_errors() {
    let doc = br#"<a Situation="3"><Order visit orderIdent="1"/></a>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::NotXml);
    assert_eq!(e.offset, at(doc, "visit"));
    assert_eq!(e.path, "a/Order");
    assert!(e.detail.contains("visit has no value"), "{e}");

    let doc = br#"<a Situation=3/>"#;
    let e = fails(doc);
    assert_eq!((e.kind, e.offset, e.path.as_str()), (K::NotXml, 13, "a"));

    let doc = br#"<a Situation="3"><Item <x="1"/></a>"#;
    let e = fails(doc);
    assert_eq!(e.kind, K::NotXml);
}

#[test]
fn bytes_not_in_the_declared_encoding() {
    let doc = b"<a Situation=\"3\" name=\"\xD0\x9F\xFF\"/>";
    let e = fails(doc);
    assert_eq!(e.kind, K::BadEncoding);
    assert_eq!(e.offset, at(doc, "\u{41F}") + 2);
    // A UTF-8 BOM followed by bytes that are not UTF-8.
    let doc = b"\xEF\xBB\xBF<a Situation=\"3\" name=\"\xC0\"/>";
    let e = fails(doc);
    assert_eq!((e.kind, e.offset), (K::BadEncoding, doc.len() - 4));
    // An encoding nobody knows.
    let doc = br#"<?xml version="1.0" encoding="klingon"?><a Situation="1"/>"#;
    let e = fails(doc);
    assert_eq!((e.kind, e.offset), (K::BadEncoding, at(doc, "klingon")));
    // UTF-16 declared over ASCII bytes.
    let doc = br#"<?xml version="1.0" encoding="utf-16"?><a Situation="1"/>"#;
    assert_eq!(fails(doc).kind, K::BadEncoding);
}

#[test]
fn nesting_deeper_than_any_event() {
    let mut doc = String::from(r#"<a Situation="3">"#);
    for _ in 0..100 {
        doc.push_str("<X>");
    }
    for _ in 0..100 {
        doc.push_str("</X>");
    }
    doc.push_str("</a>");
    let e = fails(doc.as_bytes());
    assert_eq!(e.kind, K::TooDeep);
    // The first element beyond the limit of 40 levels (`a` is level 1).
    assert_eq!(e.offset, 17 + 39 * 3);
    assert_eq!(e.path.matches('/').count(), 39);
    // A million levels neither overflow the stack nor take long.
    let deep = "<a Situation=\"3\">".to_string() + &"<X>".repeat(1_000_000);
    assert_eq!(fails(deep.as_bytes()).kind, K::TooDeep);
}

#[test]
fn garbage_never_panics() {
    // Every single-byte corruption of a real event either reads or fails
    // with an error; none panics, and whatever reads survives the writer.
    let full = fixture("seed001_new_order.xml");
    let mut read = 0;
    for i in (0..full.len()).step_by(5) {
        for b in [b'<', b'>', b'"', b'&', b'=', 0xFF] {
            let mut doc = full.clone();
            doc[i] = b;
            if let Ok(e) = rk7::read(&doc) {
                read += 1;
                assert_eq!(rk7::read(&rk7::write(&e)).unwrap(), e);
            }
        }
    }
    assert!(read > 0);
}
