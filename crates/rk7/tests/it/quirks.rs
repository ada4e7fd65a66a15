//! The imperfect forms real cash servers send, one test per quirk: each must
//! read to the same values as the clean form, because refusing them would
//! lose orders.

use rk7::{KdsState, Kopecks, Situation};

use crate::fixture;

/// A clean reference document the quirk tests compare against.
const CLEAN: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<a RestCode="199990093" DateTime="2019-12-18T17:18:33" Situation="11" seqnumber="13" name="Новый заказ" ShiftNum="1">
<Station id="15003" code="1" name="Касса 1"/>
<Order visit="477823977" orderIdent="256" version="0" crc32="0" orderSum="40000" persistentComment="" nonPersistentComment="">
<Table id="1000259" code="93" name="Стол 5"/>
</Order>
<Item ClassName="TOrder"/>
</a>
"#;

fn clean() -> rk7::Event {
    rk7::read(CLEAN.as_bytes()).unwrap()
}

#[test]
fn attributes_without_whitespace_between_them() {
    // The notify documentation's own new-order sample has
    // `version="0"crc32="0"` and `persistentComment=""nonPersistentComment=""`.
    let e = rk7::read(&fixture("seed001_new_order.xml")).unwrap();
    let o = e.order.unwrap();
    assert_eq!(o.version, Some(0));
    assert_eq!(o.crc32, Some(0));
    assert_eq!(o.persistent_comment.as_deref(), Some(""));
    assert_eq!(o.non_persistent_comment.as_deref(), Some(""));
    assert!(o.extra.attrs.is_empty(), "{:?}", o.extra.attrs);

    let squeezed = CLEAN
        .replace(r#""0" crc32"#, r#""0"crc32"#)
        .replace(r#""" nonPersistentComment"#, r#"""nonPersistentComment"#)
        .replace(r#""13" name"#, r#"'13'name"#);
    assert_ne!(squeezed, CLEAN);
    assert_eq!(rk7::read(squeezed.as_bytes()).unwrap(), clean());
}

#[test]
fn windows_1251_declared_and_sent_is_decoded() {
    let text = CLEAN.replace(r#"encoding="utf-8""#, r#"encoding="windows-1251""#);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&text);
    assert!(!unmappable);
    // One byte per Cyrillic letter: these really are cp1251 bytes, not UTF-8.
    assert!(std::str::from_utf8(&bytes).is_err());
    let e = rk7::read(&bytes).unwrap();
    assert_eq!(e.name.as_deref(), Some("Новый заказ"));
    assert_eq!(e.station.as_ref().unwrap().name.as_deref(), Some("Касса 1"));
    assert_eq!(e, clean());

    // Other labels of the same encoding, and single quotes.
    for decl in [r#"encoding='cp1251'"#, r#"encoding="WINDOWS-1251""#] {
        let text = CLEAN.replace(r#"encoding="utf-8""#, decl);
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
        assert_eq!(rk7::read(&bytes).unwrap(), clean(), "{decl}");
    }
}

#[test]
fn errors_in_a_windows_1251_document_point_at_the_original_byte() {
    let text = CLEAN
        .replace(r#"encoding="utf-8""#, r#"encoding="windows-1251""#)
        .replace(r#"orderSum="40000""#, r#"orderSum="400.00""#);
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    let err = rk7::read(&bytes).unwrap_err();
    assert_eq!(err.kind, rk7::ReadErrorKind::BadMoney);
    let at = bytes.windows(6).position(|w| w == b"400.00").unwrap();
    assert_eq!(err.offset, at);
    assert_eq!(err.path, "a/Order@orderSum");
}

#[test]
fn utf8_byte_order_mark() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(CLEAN.as_bytes());
    assert_eq!(rk7::read(&bytes).unwrap(), clean());

    // The BOM wins over a declaration that says otherwise.
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        CLEAN
            .replace(r#"encoding="utf-8""#, r#"encoding="windows-1251""#)
            .as_bytes(),
    );
    assert_eq!(rk7::read(&bytes).unwrap(), clean());
}

#[test]
fn utf16_with_byte_order_mark() {
    let text = CLEAN.replace(r#"encoding="utf-8""#, r#"encoding="utf-16""#);
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(rk7::read(&le).unwrap(), clean());
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(rk7::read(&be).unwrap(), clean());
}

#[test]
fn crlf_line_ends() {
    let crlf = CLEAN.replace('\n', "\r\n");
    assert!(crlf.contains("\r\n<Station"));
    assert_eq!(rk7::read(crlf.as_bytes()).unwrap(), clean());
    // Old Mac line ends too.
    let cr = CLEAN.replace('\n', "\r");
    assert_eq!(rk7::read(cr.as_bytes()).unwrap(), clean());
}

#[test]
fn whitespace_around_the_document_and_inside_values() {
    let padded = format!("\r\n \t{CLEAN}\r\n\r\n  ");
    assert_eq!(rk7::read(padded.as_bytes()).unwrap(), clean());

    // Padded typed values are trimmed; the text attributes stay as sent.
    let doc = r#"<a Situation=" 11 " seqnumber="	13
"><Order orderSum=" 40000" paid=" 1 " openTime=" 2019-12-18T17:18:32 "/></a>"#;
    let e = rk7::read(doc.as_bytes()).unwrap();
    assert_eq!(e.situation, Situation::NewOrder);
    assert_eq!(e.seqnumber, Some(13));
    let o = e.order.unwrap();
    assert_eq!(o.order_sum, Some(Kopecks(40000)));
    assert_eq!(o.paid, Some(true));
    assert_eq!(o.open_time, Some(crate::dt("2019-12-18T17:18:32")));

    // Whitespace around `=`.
    let doc = r#"<a Situation = "11" ><Item ClassName= 'TOrder' /></a>"#;
    let e = rk7::read(doc.as_bytes()).unwrap();
    assert_eq!(e.items[0].class_name.as_deref(), Some("TOrder"));
}

#[test]
fn trailing_bytes_after_the_root_are_ignored() {
    // The documentation's server-started and station-started samples end in
    // ` |`, the border of the table they were copied from; events must still
    // read.
    let e = rk7::read(&fixture("seed001_server_started.xml")).unwrap();
    assert_eq!(e.server.unwrap().id, Some(15002));
    let doc = format!("{CLEAN} |\n<!-- done -->");
    assert_eq!(rk7::read(doc.as_bytes()).unwrap(), clean());
}

#[test]
fn unknown_attributes_and_elements_are_kept() {
    let doc = r#"<a Situation="11" Version="7.6.5.12" RestCode="1">
<Station id="1" Zone="hall"/>
<Order visit="1" newAttr="x &amp; y">
<DeliveryBlock address="Ленина, 1"><Courier name="Иван"/>call first</DeliveryBlock>
</Order>
<Session><Dish id="5" code="7" futureFlag="1"><Allergen name="nuts"/></Dish></Session>
<Loyalty card="123"/>
</a>"#;
    let e = rk7::read(doc.as_bytes()).unwrap();
    assert_eq!(e.rest_code.as_ref().unwrap().0, "1");
    assert_eq!(e.extra.attrs, vec![("Version".into(), "7.6.5.12".into())]);
    assert_eq!(e.extra.elements.len(), 1);
    assert_eq!(e.extra.elements[0].name, "Loyalty");
    assert_eq!(
        e.extra.elements[0].attrs,
        vec![("card".into(), "123".into())]
    );
    let st = e.station.as_ref().unwrap();
    assert_eq!(st.extra.attrs, vec![("Zone".into(), "hall".into())]);

    let o = e.order.as_ref().unwrap();
    assert_eq!(o.extra.attrs, vec![("newAttr".into(), "x & y".into())]);
    let db = &o.extra.elements[0];
    assert_eq!(db.name, "DeliveryBlock");
    assert_eq!(db.attrs, vec![("address".into(), "Ленина, 1".into())]);
    assert_eq!(db.children[0].name, "Courier");
    assert_eq!(db.children[0].attrs, vec![("name".into(), "Иван".into())]);
    assert_eq!(db.text, "call first");

    let d = &e.sessions[0].dishes[0];
    assert_eq!(d.extra.attrs, vec![("futureFlag".into(), "1".into())]);
    assert_eq!(d.extra.elements[0].name, "Allergen");

    // Nothing is lost on the way back out.
    assert_eq!(rk7::read(&rk7::write(&e)).unwrap(), e);
}

#[test]
fn any_element_and_attribute_order() {
    let shuffled = r#"<?xml version="1.0" encoding="utf-8"?>
<a ShiftNum="1" name="Новый заказ" Situation="11" seqnumber="13" DateTime="2019-12-18T17:18:33" RestCode="199990093">
<Item ClassName="TOrder"/>
<Order nonPersistentComment="" orderSum="40000" crc32="0" version="0" persistentComment="" orderIdent="256" visit="477823977">
<Table name="Стол 5" code="93" id="1000259"/>
</Order>
<Station name="Касса 1" code="1" id="15003"/>
</a>"#;
    assert_eq!(rk7::read(shuffled.as_bytes()).unwrap(), clean());
}

#[test]
fn empty_item_in_every_form() {
    for doc in [
        r#"<a Situation="1"><Item/></a>"#,
        r#"<a Situation="1"><Item /></a>"#,
        r#"<a Situation="1"><Item></Item></a>"#,
        r#"<a Situation="1"><Item>
        </Item></a>"#,
    ] {
        let e = rk7::read(doc.as_bytes()).unwrap();
        assert_eq!(e.items, vec![rk7::Item::default()], "{doc}");
    }
    let e = rk7::read(br#"<a Situation="1"><Item/><Item ClassName="TOrder"/></a>"#).unwrap();
    assert_eq!(e.items.len(), 2);
    assert_eq!(e.items[1].class_name.as_deref(), Some("TOrder"));
}

#[test]
fn kdsstate_in_both_spellings() {
    let lower = br#"<a Situation="3"><Order kdsstate="ready"/><Session><Dish kdsstate="sent"/></Session></a>"#;
    let upper = br#"<a Situation="3"><Order KdsState="Ready"/><Session><Dish KdsState="SENT"/></Session></a>"#;
    let element = br#"<a Situation="3"><Order><KdsState>ready</KdsState></Order><Session><Dish><kdsstate> sent </kdsstate></Dish></Session></a>"#;
    for doc in [&lower[..], &upper[..], &element[..]] {
        let e = rk7::read(doc).unwrap();
        assert_eq!(
            e.order.as_ref().unwrap().kds_state,
            Some(KdsState::Ready),
            "{}",
            String::from_utf8_lossy(doc)
        );
        assert_eq!(e.sessions[0].dishes[0].kds_state, Some(KdsState::Sent));
        assert!(e.order.as_ref().unwrap().extra.is_empty());
    }
    // An empty value means "not sent to the kitchen"; a state we do not know
    // is kept as sent.
    let e = rk7::read(br#"<a Situation="3"><Order kdsstate=""/><Session><Dish KdsState="Cooking"/></Session></a>"#)
        .unwrap();
    assert_eq!(e.order.unwrap().kds_state, Some(KdsState::Empty));
    assert_eq!(
        e.sessions[0].dishes[0].kds_state,
        Some(KdsState::Other("Cooking".into()))
    );
}

#[test]
fn comments_cdata_and_entities() {
    let doc = r#"<?xml version="1.0"?>
<!-- from the test bench -->
<a Situation="3" name="Tom &amp; Jerry &#1055;&#x440;">
<!-- a comment inside -->
<Order visit="1" orderName="&lt;VIP&gt; &quot;A&quot; &apos;B&apos;"/>
<Note><![CDATA[<b>bold</b> & raw]]></Note>
</a>"#;
    let e = rk7::read(doc.as_bytes()).unwrap();
    assert_eq!(e.name.as_deref(), Some("Tom & Jerry Пр"));
    assert_eq!(
        e.order.as_ref().unwrap().order_name.as_deref(),
        Some(r#"<VIP> "A" 'B'"#)
    );
    assert_eq!(e.extra.elements[0].text, "<b>bold</b> & raw");
    assert_eq!(rk7::read(&rk7::write(&e)).unwrap(), e);

    // A comment splitting a text is not part of the text.
    let e = rk7::read(br#"<a Situation="3"><Note>ab<!-- x -->cd<?pi?>e</Note></a>"#).unwrap();
    assert_eq!(e.extra.elements[0].text, "abcde");
}

#[test]
fn flags_as_true_false_and_empty_typed_values() {
    let doc = br#"<a Situation="3" seqnumber=""><Order paid="true" finished="False" deleted="" orderSum=""/></a>"#;
    let e = rk7::read(doc).unwrap();
    assert_eq!(e.seqnumber, None);
    let o = e.order.unwrap();
    assert_eq!(
        (o.paid, o.finished, o.deleted),
        (Some(true), Some(false), None)
    );
    assert_eq!(o.order_sum, None);
}

#[test]
fn unknown_situation_code_is_kept() {
    let e = rk7::read(br#"<a Situation="77"/>"#).unwrap();
    assert_eq!(e.situation, Situation::Unknown(77));
    assert_eq!(e.situation.code(), 77);
    for code in [1, 3, 4, 5, 9, 10, 11, 12, 13, 14, 18, 21, 24] {
        let doc = format!(r#"<a Situation="{code}"/>"#);
        let s = rk7::read(doc.as_bytes()).unwrap().situation;
        assert!(!matches!(s, Situation::Unknown(_)), "{code}");
        assert_eq!(s.code(), code);
    }
}

#[test]
fn repeated_attributes_keep_the_first_and_the_rest() {
    // Not something a cash server sends, but not worth losing an event over:
    // the first value counts, the repeat is kept and written back.
    let doc = br#"<a Situation="3" Situation="4" zz="1" zz="2"><Order orderSum="100" orderSum="200"/></a>"#;
    let e = rk7::read(doc).unwrap();
    assert_eq!(e.situation, Situation::OrderChanged);
    assert_eq!(
        e.extra.attrs,
        vec![
            ("Situation".into(), "4".into()),
            ("zz".into(), "1".into()),
            ("zz".into(), "2".into())
        ]
    );
    let o = e.order.as_ref().unwrap();
    assert_eq!(o.order_sum, Some(Kopecks(100)));
    assert_eq!(o.extra.attrs, vec![("orderSum".into(), "200".into())]);
    assert_eq!(rk7::read(&rk7::write(&e)).unwrap(), e);
}
