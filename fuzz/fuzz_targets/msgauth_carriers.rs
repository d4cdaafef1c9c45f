//! The inbound message-authentication filters on arbitrary input: each
//! refuses with a typed error or accepts, never panics; and nothing
//! random passes as authentic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use snow_crypto::msgauth::{self, KeyStore, Receiver};

fn receiver() -> &'static Receiver {
    static R: OnceLock<Receiver> = OnceLock::new();
    R.get_or_init(|| {
        let keys = "agent k1 hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQsIDMyIGJ5dGVzIQ== 0\n\
                    legacy k1 hmac-md5 bGVnYWN5IGtleSBvZiAxNiBieXRlcyE= 0\n";
        Receiver::new(Arc::new(KeyStore::parse(keys, 0).expect("keys")))
    })
}

fuzz_target!(|data: &[u8]| {
    let rx = receiver();
    let Ok(text) = std::str::from_utf8(data) else { return };
    assert!(msgauth::text::verify(rx, text).is_err(), "a random text authenticated");
    assert!(msgauth::xml_message::verify(rx, text).is_err(), "a random XML message authenticated");
    if let Ok(mut el) = snow_xml::parse_document(data, snow_xml::Limits::default()) {
        assert!(msgauth::stanza::verify(rx, &mut el.clone()).is_err());
        assert!(msgauth::shim::verify(rx, &mut el).is_err());
    }
    let _ = KeyStore::parse(text, 0);
});
