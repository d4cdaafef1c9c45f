//! The stream parser against real XMPP traffic shapes and hostile input.

use snow_xml::{Element, Limits, StreamErrorCondition, StreamEvent, StreamHeader, StreamParser, NS_CLIENT};

const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='po.example' version='1.0' xml:lang='nb'>";

fn parse_in_chunks(doc: &[u8], chunk: usize) -> (Vec<StreamEvent>, Result<(), snow_xml::XmlError>) {
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    for c in doc.chunks(chunk.max(1)) {
        if let Err(e) = p.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

fn stanzas(events: &[StreamEvent]) -> Vec<&Element> {
    events.iter().filter_map(|e| if let StreamEvent::Stanza(s) = e { Some(s) } else { None }).collect()
}

#[test]
fn header_stanzas_and_end_whatever_the_chunking() {
    let doc = format!(
        "{OPEN}<message to='9144889@po.example' type='chat'><body>hei &amp; h&#229;, &lt;3</body>\
         <thread>t1</thread></message> \n <iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\
         <presence/></stream:stream>"
    );
    let (reference, r) = parse_in_chunks(doc.as_bytes(), doc.len());
    r.unwrap();
    for chunk in [1, 2, 3, 7, 64, 4097] {
        let (events, r) = parse_in_chunks(doc.as_bytes(), chunk);
        r.unwrap();
        assert_eq!(events, reference, "chunk size {chunk}");
    }
    let StreamEvent::Header(h) = &reference[0] else { panic!("no header") };
    assert_eq!(h.to.as_deref(), Some("po.example"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("nb"));
    assert_eq!(reference.last(), Some(&StreamEvent::End));
    let s = stanzas(&reference);
    assert_eq!(s.len(), 3);
    assert!(s[0].is(NS_CLIENT, "message"));
    assert_eq!(s[0].child(NS_CLIENT, "body").unwrap().text(), "hei & hå, <3");
    assert!(s[1].child("urn:xmpp:ping", "ping").is_some());
}

#[test]
fn serialize_round_trip() {
    let doc = format!(
        "{OPEN}<message to='a@b' xml:lang='en'><body>x &lt; y &amp;&amp; &quot;q&quot; &apos;s&apos;</body>\
         <x xmlns='urn:snow:alert:1' xmlns:p='urn:p' p:level='2'><area code='5401'/></x></message>"
    );
    let (events, r) = parse_in_chunks(doc.as_bytes(), 5);
    r.unwrap();
    let original = stanzas(&events)[0].clone();
    let xml = original.to_xml(NS_CLIENT);
    assert!(!xml.contains("xmlns='jabber:client'"), "default namespace not repeated: {xml}");
    let again = format!("{OPEN}{xml}");
    let (events2, r) = parse_in_chunks(again.as_bytes(), 3);
    r.unwrap();
    assert_eq!(stanzas(&events2)[0], &original);
    // The same stanza written for a stream with another default namespace.
    let xml_s2s = original.to_xml("jabber:server");
    assert!(xml_s2s.starts_with("<message xmlns='jabber:client'"), "{xml_s2s}");
}

#[test]
fn header_serialization_parses_back() {
    let h = StreamHeader {
        from: Some("po.example".into()),
        to: Some("9144889@po.example".into()),
        id: Some("abc'd".into()),
        version: Some("1.0".into()),
        lang: Some("en".into()),
    };
    let (events, r) = parse_in_chunks(h.to_xml(NS_CLIENT).as_bytes(), 10);
    r.unwrap();
    assert_eq!(events, vec![StreamEvent::Header(h)]);
}

fn expect_error(doc: &[u8], chunk: usize, cond: StreamErrorCondition) -> snow_xml::XmlError {
    let (_, r) = parse_in_chunks(doc, chunk);
    let e = r.expect_err("accepted");
    assert_eq!(e.condition, cond, "{e}");
    e
}

#[test]
fn billion_laughs_is_restricted_xml() {
    let doc = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>\
               <stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>&lol2;";
    expect_error(doc.as_bytes(), 16, StreamErrorCondition::RestrictedXml);
    // The entity used without the DTD, inside a stanza.
    expect_error(
        format!("{OPEN}<message><body>&lol2;</body></message>").as_bytes(),
        16,
        StreamErrorCondition::RestrictedXml,
    );
}

#[test]
fn restricted_constructs() {
    for bad in ["<?php x?>", "<!-- hi -->", "<!DOCTYPE x>", "<message><!ENTITY x 'y'></message>"] {
        expect_error(format!("{OPEN}{bad}").as_bytes(), 4, StreamErrorCondition::RestrictedXml);
    }
}

#[test]
fn ten_mib_stanza_is_stopped_early() {
    let mut doc = format!("{OPEN}<message><body>").into_bytes();
    doc.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    let mut fed = 0usize;
    let mut err = None;
    for c in doc.chunks(16 * 1024) {
        fed += c.len();
        if let Err(e) = p.feed(c, &mut out) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("accepted a 10 MiB stanza");
    assert_eq!(e.condition, StreamErrorCondition::PolicyViolation);
    assert!(fed < 300 * 1024, "read {fed} bytes before refusing");
    // The parser stays failed.
    assert!(p.feed(b"</body></message>", &mut out).is_err());
}

#[test]
fn huge_start_tag_is_stopped_early() {
    let mut doc = format!("{OPEN}<message").into_bytes();
    for i in 0..200_000 {
        doc.extend(format!(" a{i}='x'").as_bytes());
    }
    expect_error(&doc, 64 * 1024, StreamErrorCondition::PolicyViolation);
}

#[test]
fn ten_thousand_deep_nesting() {
    let mut doc = format!("{OPEN}<message>").into_bytes();
    for _ in 0..10_000 {
        doc.extend(b"<x>");
    }
    let e = expect_error(&doc, 1000, StreamErrorCondition::PolicyViolation);
    assert!(e.detail.contains("deeper"), "{e}");
}

#[test]
fn attribute_and_element_counts() {
    let attrs: String = (0..65).map(|i| format!(" a{i}='v'")).collect();
    expect_error(format!("{OPEN}<message{attrs}/>").as_bytes(), 100, StreamErrorCondition::PolicyViolation);
    let limits = Limits { max_elements: 10, ..Limits::default() };
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    let many: String = "<b/>".repeat(10);
    let e = p.feed(format!("{OPEN}<message>{many}</message>").as_bytes(), &mut out).unwrap_err();
    assert_eq!(e.condition, StreamErrorCondition::PolicyViolation);
}

#[test]
fn limits_are_per_stanza_not_per_stream() {
    // Many stanzas that together exceed the stanza limit are fine.
    let limits = Limits { max_stanza_bytes: 1024, ..Limits::default() };
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    p.feed(OPEN.as_bytes(), &mut out).unwrap();
    let msg = format!("<message><body>{}</body></message> ", "z".repeat(500));
    for _ in 0..100 {
        p.feed(msg.as_bytes(), &mut out).unwrap();
    }
    // Whitespace keepalives for hours do not add up either.
    for _ in 0..10_000 {
        p.feed(b" ", &mut out).unwrap();
    }
    assert_eq!(out.len(), 101);
}

#[test]
fn not_a_stream() {
    expect_error(b"<html><body/></html>", 5, StreamErrorCondition::BadFormat);
    expect_error(b"<stream xmlns='jabber:client'/>", 5, StreamErrorCondition::InvalidNamespace);
    expect_error(format!("{OPEN}hello<a/>").as_bytes(), 5, StreamErrorCondition::BadFormat);
    expect_error(format!("{OPEN}<a></b>").as_bytes(), 5, StreamErrorCondition::NotWellFormed);
    expect_error(format!("{OPEN}<a x='1' x='2'/>").as_bytes(), 5, StreamErrorCondition::NotWellFormed);
    expect_error(format!("{OPEN}<p:a/>").as_bytes(), 5, StreamErrorCondition::NotWellFormed);
    expect_error(&[OPEN.as_bytes(), b"<a>\xff</a>"].concat(), 5, StreamErrorCondition::NotWellFormed);
}

#[test]
fn reset_starts_a_new_stream() {
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    p.feed(format!("{OPEN}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes(), &mut out).unwrap();
    p.reset();
    out.clear();
    p.feed(OPEN.as_bytes(), &mut out).unwrap();
    assert!(matches!(out[0], StreamEvent::Header(_)));
}

#[test]
fn standalone_documents() {
    let doc = b"<?xml version='1.0'?>\n<root xmlns='urn:x'><a b='1'>t&amp;</a></root>\n";
    let el = snow_xml::parse_document(doc, Limits::default()).unwrap();
    assert!(el.is("urn:x", "root"));
    assert_eq!(el.child("urn:x", "a").unwrap().text(), "t&");
    assert!(snow_xml::parse_document(b"<root><a>", Limits::default()).is_err());
    assert!(snow_xml::parse_document(b"<!DOCTYPE r><r/>", Limits::default()).is_err());
    let small = Limits { max_stanza_bytes: 1024, ..Limits::default() };
    let big = format!("<r>{}</r>", "x".repeat(5000));
    assert_eq!(
        snow_xml::parse_document(big.as_bytes(), small).unwrap_err().condition,
        StreamErrorCondition::PolicyViolation
    );
}
