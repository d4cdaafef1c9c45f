//! The alert protocol's parsers (`urn:snow:alert:1` and the pubsub
//! answers and notifications that carry it) on arbitrary XML: an alert
//! parses or is refused with a typed error, never a panic; whatever parses
//! serializes and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_client::alert::{detail_element, event_items, parse_detail, read_items, read_subscriptions};
use snow_core::alert::NS_ALERT;
use snow_xml::{parse_document, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 16 * 1024, max_depth: 8, max_attributes: 16, max_elements: 700 };
    let wrapped = [format!("<detail xmlns='{NS_ALERT}' ").as_bytes(), data].concat();
    for doc in [data, wrapped.as_slice()] {
        let Ok(el) = parse_document(doc, limits) else { continue };
        // The item's id: the detail's own, or one the service assigned.
        let item_id = el.attr("id").unwrap_or("gp-0123456789abcdef").to_owned();
        if let Ok(a) = parse_detail(&el, &item_id) {
            let xml = detail_element(&a).to_xml("");
            let again = parse_document(xml.as_bytes(), Limits::default()).expect("a serialized alert parses");
            assert_eq!(parse_detail(&again, &a.id).expect("a parsed alert re-parses"), a);
        }
        let _ = event_items(&el);
        let _ = read_items("po.example", &el);
        let _ = read_subscriptions("po.example", &el, "jid");
    }
});
