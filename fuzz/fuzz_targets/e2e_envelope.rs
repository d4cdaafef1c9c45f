//! XML Encryption envelopes (`EncryptedData` / `EncryptedKey` /
//! `KeyInfo`, snow_crypto::e2e) on arbitrary XML, opened as the test user
//! (`fixtures/`): the EncryptedKey count limit, the selection of the one
//! naming our certificate (X509IssuerSerial, X509Certificate, and with the
//! lenient policy KeyName and X509SubjectName), the OAEP parameters, and
//! with the key the whole decryption and the content's parse. Everything
//! ends in a plaintext or a typed error, never a panic, and a decryption
//! never returns more than it may.
//!
//! Byte 0 chooses the key: odd, the user's private key (the decryption
//! runs RSA when an EncryptedKey names us); even, no usable key, so a run
//! stops where RSA would start, after the selection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_client::signed;
use snow_crypto::e2e::{self, DecryptPolicy, E2eError, MAX_ENCRYPTED_KEYS, MAX_PLAINTEXT, MAX_RECIPIENTS};
use snow_xml::{parse_document, Limits, NS_CLIENT};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, xml)) = data.split_first() else { return };
    let key: &[u8] = if mode & 1 == 1 { snow_fuzz::USER_KEY } else { b"" };
    let cert = snow_fuzz::USER_DER;
    let limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 16, max_attributes: 16, max_elements: 1024 };
    let Ok(el) = parse_document(xml, limits) else { return };
    // The envelope itself, and the first EncryptedData child of a wrapper
    // (a message body, an alert).
    let envelope =
        if el.is(e2e::NS_XENC, "EncryptedData") { Some(&el) } else { el.child(e2e::NS_XENC, "EncryptedData") };
    if let Some(enc) = envelope {
        for max in [MAX_ENCRYPTED_KEYS, MAX_RECIPIENTS] {
            match e2e::encrypted_keys(enc, max) {
                Ok(keys) => assert!(!keys.is_empty() && keys.len() <= max),
                Err(E2eError::TooManyEncryptedKeys { found, max: m }) => assert!(found > m && m == max),
                Err(_) => {}
            }
        }
        for policy in [DecryptPolicy::SNOW, DecryptPolicy::FOREIGN, DecryptPolicy::BROADCAST] {
            match e2e::decrypt_with(enc, key, cert, &policy) {
                Ok(plain) => {
                    assert!(plain.len() <= MAX_PLAINTEXT);
                    assert!(!key.is_empty(), "decrypted without the private key");
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
    for policy in [DecryptPolicy::SNOW, DecryptPolicy::BROADCAST] {
        let mut copy = el.clone();
        let _ = e2e::decrypt_content_with(&mut copy, NS_CLIENT, key, cert, &policy);
    }
    // A chat message's body, as the client reads it: decrypted, then its
    // signed payload checked (the key directory's check needs a server,
    // so it is not reached here).
    if key.is_empty() {
        return;
    }
    let Some(body) = el.child(NS_CLIENT, "body") else { return };
    let mut copy = body.clone();
    if e2e::decrypt_content(&mut copy, NS_CLIENT, key, cert).is_err() {
        return;
    }
    let expect = signed::Expect {
        kind: signed::Kind::Chat,
        sender: "2222222@po.example",
        me: "1111111@po.example",
        answers: None,
    };
    let mut cache = nonces().lock().unwrap_or_else(|p| p.into_inner());
    for s in copy.children() {
        let _ = signed::open(s, &expect, &mut cache, snow_fuzz::now().unix_timestamp());
    }
});

/// The chat nonces of this fuzzing process, in the temporary directory.
fn nonces() -> &'static std::sync::Mutex<snow_core::nonce_cache::NonceCache> {
    static N: std::sync::OnceLock<std::sync::Mutex<snow_core::nonce_cache::NonceCache>> = std::sync::OnceLock::new();
    N.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("snow-fuzz-nonces-{}", std::process::id()));
        let cache = snow_core::nonce_cache::NonceCache::open(&path, 3600, 1000, snow_fuzz::now().unix_timestamp());
        std::sync::Mutex::new(cache.expect("a nonce cache in the temporary directory"))
    })
}
