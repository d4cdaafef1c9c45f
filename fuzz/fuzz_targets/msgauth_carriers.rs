//! The inbound message-authentication filters on arbitrary input: each
//! refuses with a typed error or accepts, never panics. Only a message
//! signed with the key store's key (the seeds, made by `examples/seeds.rs`)
//! can pass, and then only once: the same bytes again are a replay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::msgauth::{self, AuthError, KeyStore};

fn replayed<T>(again: Result<T, AuthError>) -> bool {
    matches!(again, Err(AuthError::Replay { .. }))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for rx in snow_fuzz::receivers() {
        if msgauth::text::verify(rx, text).is_ok() {
            assert!(replayed(msgauth::text::verify(rx, text)), "a text message authenticated twice");
        }
        if msgauth::xml_message::verify(rx, text).is_ok() {
            assert!(replayed(msgauth::xml_message::verify(rx, text)), "an XML message authenticated twice");
        }
        if let Ok(el) = snow_xml::parse_document(data, snow_xml::Limits::default()) {
            if msgauth::stanza::verify(rx, &mut el.clone()).is_ok() {
                assert!(replayed(msgauth::stanza::verify(rx, &mut el.clone())), "a stanza authenticated twice");
            }
            if msgauth::shim::verify(rx, &mut el.clone()).is_ok() {
                assert!(replayed(msgauth::shim::verify(rx, &mut el.clone())), "a shim authenticated twice");
            }
        }
    }
    if let Ok(store) = KeyStore::parse(text, 0) {
        for source in store.sources() {
            assert!(store.knows(source));
            let _ = store.signing_key(source, 0);
        }
    }
});
