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
            panic!("unreadable output: {e}\n{}", String::from_utf8_lossy(&written))
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
