//! The search agent's catalogue parser (`urn:snow:stats:1` `<catalogue/>`)
//! on arbitrary XML: it parses or is refused with a typed error, never a
//! panic, and within its limits; whatever parses serializes and parses
//! back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_client::stats::{catalogue_element, parse_catalogue, read_catalogue, MAX_CATALOGUE_ENTRIES, NS_STATS};
use snow_core::stats::{check_choice_name, MAX_CHOICE_NAME_BYTES};
use snow_xml::{parse_document, Limits, NS_CLIENT};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 8, max_attributes: 16, max_elements: 4096 };
    // Raw input, the same as a catalogue's children, and as an IQ reply.
    let children = [format!("<catalogue xmlns='{NS_STATS}'>").as_bytes(), data, b"</catalogue>"].concat();
    let reply = [
        format!("<iq xmlns='{NS_CLIENT}' type='result'><catalogue xmlns='{NS_STATS}'>").as_bytes(),
        data,
        b"</catalogue></iq>",
    ]
    .concat();
    for doc in [data, children.as_slice(), reply.as_slice()] {
        let Ok(el) = parse_document(doc, limits) else { continue };
        let _ = read_catalogue("search@lab.example/agent", &el);
        if let Ok(c) = parse_catalogue(&el) {
            assert!(c.entries() <= MAX_CATALOGUE_ENTRIES);
            for name in c.analyses.iter().filter_map(|a| a.name.as_deref()) {
                assert!(name.len() <= MAX_CHOICE_NAME_BYTES && check_choice_name(name).is_ok());
            }
            let xml = catalogue_element(&c).to_xml("");
            let again = parse_document(xml.as_bytes(), Limits::default()).expect("a serialized catalogue parses");
            assert_eq!(parse_catalogue(&again).expect("a parsed catalogue re-parses"), c);
        }
    }
});
