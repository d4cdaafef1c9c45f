//! The XMPP stream parser on arbitrary bytes in arbitrary chunks: it must
//! return events or a stream error, never panic, and never hold more than
//! its limits. Every stanza it yields must serialize and parse back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_xml::{Limits, StreamEvent, StreamParser, NS_CLIENT};

const OPEN: &[u8] = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let limits = Limits { max_stanza_bytes: 8192, max_depth: 16, max_attributes: 16, max_elements: 256 };
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    // Half the inputs get a valid stream header first, to reach stanza code.
    if chunk % 2 == 0 && p.feed(OPEN, &mut out).is_err() {
        return;
    }
    for c in rest.chunks(chunk) {
        if p.feed(c, &mut out).is_err() {
            break;
        }
    }
    for ev in out {
        if let StreamEvent::Stanza(s) = ev {
            let xml = s.to_xml(NS_CLIENT);
            let mut q = StreamParser::new(Limits::default());
            let mut back = Vec::new();
            q.feed(OPEN, &mut back).expect("header");
            q.feed(xml.as_bytes(), &mut back).expect("re-parse of serialized stanza");
            assert_eq!(back.get(1), Some(&StreamEvent::Stanza(s)), "round trip of {xml}");
        }
    }
});
