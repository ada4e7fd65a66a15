//! Inputs the fuzzer found, kept so the bugs stay fixed.
//!
//! Every file in `tests/fixtures/fuzz` must read without panicking and, when
//! it reads, survive `write` unchanged, exactly what the fuzz target checks.

use crate::fixture;

/// The fuzz target's property, for one input.
fn check(bytes: &[u8]) {
    if let Ok(event) = rk7::read(bytes) {
        let written = rk7::write(&event);
        let again = rk7::read(&written).unwrap_or_else(|e| {
            panic!(
                "unreadable output: {e}\n{}",
                String::from_utf8_lossy(&written)
            )
        });
        assert_eq!(again, event);
        assert_eq!(rk7::write(&again), written);
    }
}

#[test]
fn every_saved_fuzz_input_holds() {
    let dir = format!("{}/tests/fixtures/fuzz", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        check(&bytes);
        n += 1;
    }
    assert!(n > 0, "no fuzz inputs in {dir}");
}

/// Fuzz crash 1: a second `<Server>` is kept as an unknown element; the
/// writer used to put unknown elements before the named ones, so on reading
/// back the two Servers swapped places.
#[test]
fn a_repeated_known_element_keeps_its_place() {
    let bytes = fixture("fuzz/repeated_known_element.xml");
    let e = rk7::read(&bytes).unwrap();
    assert_eq!(e.server.as_ref().unwrap().code, Some(15002));
    assert_eq!(e.extra.elements.len(), 1);
    assert_eq!(e.extra.elements[0].name, "Server");
    check(&bytes);

    let doc = br#"<a Situation="1"><Server id="1"/><Server id="2"/></a>"#;
    let e = rk7::read(doc).unwrap();
    assert_eq!(e.server.as_ref().unwrap().id, Some(1));
    assert_eq!(e.extra.elements[0].attrs, vec![("id".into(), "2".into())]);
    check(doc);
}

/// Fuzz crash 2 (`crash-d2b637d4`, 12 bytes): a UTF-16BE byte order mark
/// followed by U+FEFF again. After decoding, the text started with U+FEFF;
/// quick-xml drops a leading U+FEFF without counting it in its positions, so
/// the reader sliced the text at positions 3 bytes off and panicked inside a
/// multi-byte character. Now the reader skips that character itself and the
/// junk that follows is refused as text outside any element, located at the
/// byte where it starts in the UTF-16 input.
#[test]
fn a_second_byte_order_mark_does_not_shift_positions() {
    let bytes = fixture("fuzz/utf16_bom_then_feff.bin");
    assert_eq!(bytes.len(), 12);
    let err = rk7::read(&bytes).unwrap_err();
    assert_eq!(err.kind, rk7::ReadErrorKind::NotXml);
    // BOM (2 bytes) + U+FEFF (2 bytes): the junk starts at byte 4.
    assert_eq!(err.offset, 4);
    assert_eq!(err.path, "");
    check(&bytes);

    // The same shape in UTF-8: two BOMs, then a good document. It reads,
    // and an error further in points at the right byte.
    let doc = b"\xEF\xBB\xBF\xEF\xBB\xBF<a Situation=\"1\"><Server id=\"7\"/></a>";
    let e = rk7::read(doc).unwrap();
    assert_eq!(e.server.unwrap().id, Some(7));
    let doc = b"\xEF\xBB\xBF\xEF\xBB\xBF<a Situation=\"x\"/>";
    let err = rk7::read(doc).unwrap_err();
    assert_eq!(err.kind, rk7::ReadErrorKind::BadNumber);
    assert_eq!(err.offset, doc.iter().position(|&b| b == b'x').unwrap());
    assert_eq!(err.path, "a@Situation");
}
