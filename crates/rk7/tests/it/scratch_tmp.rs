#[test]
fn scratch() {
    let cases: Vec<&[u8]> = vec![
        b"hello world",
        b"",
        b"  \r\n ",
        b"<?xml version=\"1.0\"?>",
        b"{\"a\":1}",
        b"<b Situation=\"1\"/>",
        b"<a Situation=\"eleven\"/>",
        b"<a name=\"x\"/>",
        b"<a Situation=\"3\"><Order orderSum=\"100.50\"/></a>",
        b"<a Situation=\"3\"><Session><Dish price=\"1e3\"/></Session></a>",
        b"<a Situation=\"3\"><Order><Station></Order></a>",
        b"<a Situation>",
        b"<a Situation=1/>",
        b"<a Situation=\"3\"><Order",
        b"<a Situation=\"3\"><Order visit=\"1\">",
        b"<a Situation=\"3\"><Order visit=\"1",
        b"<a Situation=\"3\"></b>",
        b"</a>",
        b"<a Situation=\"3\"/><a Situation=\"4\"/>",
        b"<a Situation=\"3\"/>trailing",
        b"<a Situation=\"3\">\xff</a>",
        b"<?xml version=\"1.0\" encoding=\"windows-1251\"?><a Situation=\"3\" name=\"\x98\"/>",
        b"<?xml version=\"1.0\" encoding=\"klingon\"?><a Situation=\"3\"/>",
        b"<!-- c --><a Situation=\"3\"/>",
        b"<a Situation=\"3\"><![CDATA[x]]></a>",
        b"text<a Situation=\"3\"/>",
        b"<a Situation=\"3\" Situation=\"4\"/>",
        b"<a Situation=\"3\"><Order>&bogus;</Order></a>",
        b"<a Situation=\"3\"><1Order/></a>",
        b"<a Situation=\"3\"><Order/ ></a>",
    ];
    for c in cases {
        eprintln!("{:?}\n   => {:?}", String::from_utf8_lossy(c), rk7::read(c).map(|_| ()));
    }
}
