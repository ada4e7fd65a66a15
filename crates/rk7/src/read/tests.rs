//! The fast path against the general path.
//!
//! [`read`] trusts the fast path whenever it does not give up, so the one
//! property that matters is: if the fast path reads a document, the general
//! path reads the same document to the same event. The tests here check it
//! on the forms the fast path is meant to take (and that it really takes
//! them, or the speed-up would silently vanish), on forms it must leave to
//! the general path, and on every small mutation of the real samples.

use super::error::R;
use super::value::{eight_digits, parse_i64};
use super::*;

const FIXTURES: [&[u8]; 5] = [
    include_bytes!("../../tests/fixtures/seed001_new_order.xml"),
    include_bytes!("../../tests/fixtures/seed001_login.xml"),
    include_bytes!("../../tests/fixtures/seed001_server_started.xml"),
    include_bytes!("../../tests/fixtures/seed001_station_started.xml"),
    include_bytes!("../../tests/fixtures/fuzz/repeated_known_element.xml"),
];

/// Both paths over the same decoded text; `None` when decoding fails (no
/// parser runs then).
#[allow(clippy::type_complexity)]
fn both(bytes: &[u8]) -> Option<(R<Event>, R<Event>)> {
    let decoded = decode(bytes).ok()?;
    let run = |mode| {
        let mut ev = Event::new(Situation::Unknown(0));
        Parser::new(&decoded.text, &decoded.map, mode)
            .document(&mut ev)
            .map(|()| ev)
    };
    Some((run(Mode::Fast), run(Mode::General)))
}

/// The property: what the fast path reads, the general path reads the same.
/// Returns whether the fast path took the document.
fn agree(bytes: &[u8]) -> bool {
    let Some((fast, general)) = both(bytes) else {
        return false;
    };
    match fast {
        Ok(ev) => {
            match general {
                Ok(g) => assert_eq!(g, ev, "{:?}", String::from_utf8_lossy(bytes)),
                Err(e) => panic!(
                    "fast path read what the general path refuses ({e}): {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            }
            true
        }
        Err(_) => false,
    }
}

/// The document must be taken by the fast path (and agree).
fn fast_takes(doc: &str) -> Event {
    assert!(agree(doc.as_bytes()), "fast path gave up on {doc:?}");
    read(doc.as_bytes()).unwrap()
}

/// The document must be left to the general path; returns its result.
fn fast_leaves(doc: &str) -> Result<Event, ReadError> {
    assert!(!agree(doc.as_bytes()), "fast path took {doc:?}");
    read(doc.as_bytes())
}

#[test]
fn the_samples_take_the_fast_path() {
    for f in FIXTURES {
        assert!(agree(f), "{:?}", String::from_utf8_lossy(f));
    }
}

#[test]
fn plain_forms_take_the_fast_path() {
    // Attributes with no space between them, single quotes, `/>` with and
    // without a space, tabs and CRLF between attributes and elements.
    let ev = fast_takes(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<a Situation=\"3\"seqnumber='7'\r\n\tname=\"x\" >\r\n\
         <Order version=\"0\"crc32=\"0\" orderSum = \"100\" />\r\n<Item/><Item ClassName=\"TOrder\"/></a>",
    );
    assert_eq!(ev.seqnumber, Some(7));
    let o = ev.order.unwrap();
    assert_eq!((o.version, o.crc32), (Some(0), Some(0)));
    assert_eq!(o.order_sum, Some(Kopecks(100)));
    assert_eq!(ev.items.len(), 2);
    // No declaration at all, and whitespace before the root.
    fast_takes("\n  <a Situation=\"1\"/>");
}

#[test]
fn references_in_attributes_take_the_fast_path() {
    let ev = fast_takes(
        "<a Situation=\"1\" name=\"Tom &amp; Jerry &quot;&#1041;&#x411;&quot; &nbsp; &\" \
         seqnumber=\"&#49;2\" Unknown=\"a&lt;b\"/>",
    );
    assert_eq!(ev.name.as_deref(), Some("Tom & Jerry \"ББ\" &nbsp; &"));
    assert_eq!(ev.seqnumber, Some(12));
    assert_eq!(
        ev.extra.attrs,
        vec![("Unknown".to_owned(), "a<b".to_owned())]
    );
    // Markup characters inside quoted values do not end the tag.
    let ev = fast_takes("<a Situation=\"1\" name='a>b\"c/>'><Item/></a>");
    assert_eq!(ev.name.as_deref(), Some("a>b\"c/>"));
}

#[test]
fn non_ascii_names_take_the_fast_path() {
    let ev = fast_takes(
        "<a Situation=\"1\" Имя=\"Касса\"><Заказ номер=\"5\">текст</Заказ><Dish-x.y:z n1=\"2\"/></a>",
    );
    assert_eq!(ev.extra.attrs, vec![("Имя".into(), "Касса".into())]);
    let el = &ev.extra.elements[0];
    assert_eq!(el.name, "Заказ");
    assert_eq!(el.attrs, vec![("номер".into(), "5".into())]);
    assert_eq!(el.text, "текст");
    assert_eq!(ev.extra.elements[1].name, "Dish-x.y:z");
    // Long names cross the eight-byte steps of the name scan.
    let ev =
        fast_takes("<a Situation=\"1\" persistentComment9876543210=\"1\" АБВГДЕЖЗИЙКЛ=\"2\"/>");
    assert_eq!(ev.extra.attrs.len(), 2);
}

#[test]
fn text_and_kds_state_take_the_fast_path() {
    let ev = fast_takes(
        "<a Situation=\"3\"><Order><KdsState> Ready </KdsState><X>  a\r\nb  </X></Order>tail</a>",
    );
    let o = ev.order.unwrap();
    assert_eq!(o.kds_state, Some(KdsState::Ready));
    assert_eq!(o.extra.elements[0].text, "  a\r\nb  ");
    assert_eq!(ev.extra.text, "tail");
}

#[test]
fn unusual_forms_are_left_to_the_general_path() {
    // Each of these reads (the general path takes them); the fast path must
    // give up rather than guess.
    for doc in [
        "<a Situation=\"1\"><!-- c --><Item/></a>",
        "<a Situation=\"1\"><X><![CDATA[<b>]]></X></a>",
        "<a Situation=\"1\"><X>a &amp; b</X></a>",
        "<a Situation=\"1\"><Item/></a >",
        "<!DOCTYPE a><a Situation=\"1\"/>",
        "<?pi x?><a Situation=\"1\"/>",
        "<a Situation=\"1\"><?xml version=\"1.0\"?></a>",
        // A second byte order mark (the first is removed by decoding).
        "\u{FEFF}\u{FEFF}<a Situation=\"1\"/>",
    ] {
        fast_leaves(doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
    }
}

#[test]
fn errors_are_left_to_the_general_path() {
    for (doc, kind) in [
        ("<a Situation=\"x\"/>", ReadErrorKind::BadNumber),
        ("<a Situation=\"1\"><Item></a>", ReadErrorKind::NotXml),
        ("<a Situation=\"1\"><Item>", ReadErrorKind::Truncated),
        ("<a Situation=\"1\" b=\"1/>", ReadErrorKind::Truncated),
        ("<a Situation=\"1\" b/>", ReadErrorKind::NotXml),
        ("<a Situation=\"1\" b=1/>", ReadErrorKind::NotXml),
        ("<a Situation=\"1\" / >", ReadErrorKind::NotXml),
        ("<a Situation=\"1\"/ >", ReadErrorKind::NotXml),
        ("x<a Situation=\"1\"/>", ReadErrorKind::NotXml),
        ("<b/>", ReadErrorKind::NoRoot),
        ("", ReadErrorKind::NoRoot),
    ] {
        let e = fast_leaves(doc).expect_err(doc);
        assert_eq!(e.kind, kind, "{doc:?}: {e}");
    }
}

#[test]
fn other_encodings_take_the_fast_path_after_decoding() {
    let text =
        "<?xml version=\"1.0\" encoding=\"windows-1251\"?><a Situation=\"1\" name=\"Касса\"/>";
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
    assert!(agree(&bytes));
    assert_eq!(read(&bytes).unwrap().name.as_deref(), Some("Касса"));
}

/// Every single-byte insertion, deletion and replacement (with the bytes
/// that matter to the tokenizers) and every prefix of the samples: the two
/// paths must agree wherever the fast path reads.
#[test]
fn mutations_of_the_samples_agree() {
    const BYTES: &[u8] = b"<>/=\"'&?! x\xD0";
    let mut taken = 0usize;
    let mut total = 0usize;
    for f in FIXTURES {
        let mut check = |doc: &[u8]| {
            total += 1;
            taken += usize::from(agree(doc));
        };
        for i in 0..=f.len() {
            check(&f[..i]);
            for &c in BYTES {
                let mut d = f.to_vec();
                d.insert(i, c);
                check(&d);
                if i < f.len() {
                    d.remove(i);
                    d[i] = c;
                    check(&d);
                }
            }
            if i < f.len() {
                let mut d = f.to_vec();
                d.remove(i);
                check(&d);
            }
        }
    }
    // Most mutations land in values or whitespace and still read fast.
    assert!(taken * 4 > total, "fast path took {taken} of {total}");
}

/// The same property over a directory of inputs, e.g. the fuzz corpus:
/// `RK7_DIFF_DIR=$PWD/fuzz/corpus/read cargo test -p rk7 --lib -- --ignored`
/// from the workspace root (tests run in the crate directory, so the path
/// must be absolute).
#[test]
#[ignore]
fn a_directory_of_inputs_agrees() {
    let Ok(dir) = std::env::var("RK7_DIFF_DIR") else {
        return;
    };
    let mut taken = 0;
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        taken += usize::from(agree(&bytes));
        n += 1;
    }
    eprintln!("{n} inputs, fast path took {taken}");
}

#[test]
fn eight_digits_agrees_with_the_digit_loop() {
    let mut cases: Vec<String> = (0..=1000).map(|n: u32| n.to_string()).collect();
    for s in [
        "00000000", "99999999", "12345678", "01", "007", "9", "1234567", "87654321",
    ] {
        cases.push(s.into());
    }
    for s in [
        "1a",
        "/",
        ":",
        "12 ",
        " 12",
        "-1",
        "+1",
        "1.5",
        "\u{0}",
        "99999999x",
    ] {
        cases.push(s.into());
    }
    for c in 0u8..=255 {
        cases.push(String::from_utf8_lossy(&[b'1', c, b'2']).into_owned());
    }
    for s in cases {
        let b = s.as_bytes();
        if !(1..=8).contains(&b.len()) {
            continue;
        }
        let mut word = [0xAAu8; 8];
        word[..b.len()].copy_from_slice(b);
        let expected = if b.iter().all(u8::is_ascii_digit) {
            parse_i64(&s)
        } else {
            None
        };
        assert_eq!(
            eight_digits(u64::from_le_bytes(word), b.len()),
            expected,
            "{s:?}"
        );
    }
}

#[test]
fn window_edges_agree() {
    // Names and values of every length around the 16-byte window, with `&`
    // and `#` (a byte the borrowing zero-byte test would confuse with `"`)
    // at every place in the value.
    for name_len in 1..=18 {
        let name: String = "abcdefghijklmnopqrstuvwxyz"[..name_len].into();
        for value_len in 0..=20 {
            for special in ["x", "#", "&amp;", "&", "'", ">"] {
                for at in 0..=value_len {
                    let mut value: String = "v".repeat(value_len);
                    value.insert_str(at, special);
                    let doc = format!("<a Situation=\"1\" {name}=\"{value}\" z=\"1\"/>");
                    let ev = fast_takes(&doc);
                    let expected = value.replace("&amp;", "&");
                    assert_eq!(ev.extra.attrs[0], (name.clone(), expected), "{doc}");
                    // The same attribute at the very end of the input.
                    let doc = format!("<a Situation=\"1\"><X {name}=\"{value}\"/></a>");
                    fast_takes(&doc);
                }
            }
        }
    }
}
