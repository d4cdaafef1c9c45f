//! The search protocol's parsers (`urn:snow:stats:1`) on arbitrary XML: a
//! query or an answer parses or is refused with a typed error, never a
//! panic; whatever parses serializes and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_client::stats::{answer_element, parse_answer, parse_query, query_element, NS_STATS};
use snow_xml::{parse_document, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 16 * 1024, max_depth: 8, max_attributes: 16, max_elements: 700 };
    // Raw input, and the same wrapped so the stats namespace is in scope.
    let wrapped = [format!("<query xmlns='{NS_STATS}' ").as_bytes(), data].concat();
    for doc in [data, wrapped.as_slice()] {
        let Ok(el) = parse_document(doc, limits) else { continue };
        if let Ok(q) = parse_query(&el) {
            let back = parse_query(&query_element(&q)).expect("a parsed query re-parses");
            assert_eq!(back, q);
        }
        if let Ok(a) = parse_answer(&el) {
            let xml = answer_element(&a).to_xml("");
            let again = parse_document(xml.as_bytes(), Limits::default()).expect("serialized answer parses");
            assert_eq!(parse_answer(&again).expect("a parsed answer re-parses"), a);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let mid = (0..=s.len() / 2).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        let (a, b) = s.split_at(mid);
        let _ = snow_core::stats::Period::parse(a, b);
        let _ = snow_core::stats::Area::parse_loose(s);
        let _ = s.parse::<snow_core::stats::Count>();
    }
});
