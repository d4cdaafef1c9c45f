//! The inbound message-authentication filters on arbitrary input: each
//! refuses with a typed error or accepts, never panics. Only a message
//! signed with the key store's key (the seeds, made by `examples/seeds.rs`)
//! can pass, and then only once: the same bytes again are a replay. The
//! same for the confidential receivers (only a sealed message passes,
//! decrypted after its MAC), and a round trip of the input as plaintext
//! through the confidential text and XML carriers: what comes out is what
//! went in, and the sealed text never holds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::msgauth::{self, AuthError, KeyStore};

fn replayed<T>(again: Result<T, AuthError>) -> bool {
    matches!(again, Err(AuthError::Replay { .. }))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for rx in snow_fuzz::receivers().into_iter().chain(snow_fuzz::confidential_receivers()) {
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
    let (tx, rx) = snow_fuzz::confidential_pair();
    let sealed = msgauth::text::sign(tx, text).expect("the pair's key signs");
    let (_, back) = msgauth::text::verify(rx, &sealed).expect("a sealed text verifies");
    assert_eq!(back, text, "the text carrier's round trip changed the message");
    let ciphertext = sealed.split(':').next().unwrap_or_default();
    assert!(text.len() < 16 || !ciphertext.contains(text), "the plaintext shows in the sealed text");
    if let Ok(wire) = msgauth::xml_message::sign(tx, text) {
        let (_, back) = msgauth::xml_message::verify(rx, &wire).expect("a sealed document verifies");
        assert_eq!(back, text, "the XML carrier's round trip changed the document");
    }
    if let Ok(store) = KeyStore::parse(text, 0) {
        for source in store.sources() {
            assert!(store.knows(source));
            let _ = store.signing_key(source, 0);
        }
    }
});
