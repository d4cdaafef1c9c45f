//! XML Signature verification (snow_crypto::xmldsig) on arbitrary input:
//! the profile checks, the base64 and certificate limits, both
//! canonicalizations (the tree as Snow writes it, and the prefixes as
//! written, `exclusive_written`), the digest and the RSA verification.
//! Everything ends in a `Verified` or a typed error, never a panic; what
//! verifies gives back no Signature and at most MAX_CERTIFICATES.
//!
//! Byte 0 chooses the work: odd, also sign the parsed tree with the test
//! user (`fixtures/`) and check that the signature verifies and gives the
//! tree back (an RSA signature per input, so only on half of them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::xmldsig::{self, Verified, MAX_CERTIFICATES, NS_DSIG};
use snow_xml::{c14n, parse_document, Limits};

fn check(v: &Verified) {
    assert!(!v.chain.is_empty() && v.chain.len() <= MAX_CERTIFICATES);
    assert_eq!(v.chain[0], v.signer);
    assert!(v.content.child(NS_DSIG, "Signature").is_none());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, xml)) = data.split_first() else { return };
    match xmldsig::verify_enveloped_xml(xml) {
        Ok(v) => check(&v),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 16, max_attributes: 16, max_elements: 1024 };
    let Ok(el) = parse_document(xml, limits) else { return };
    match xmldsig::verify_enveloped(&el) {
        Ok(v) => check(&v),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if mode & 1 == 0 {
        return;
    }
    // Whatever Snow can sign, it verifies, as a tree and as bytes.
    if let Ok(signed) = xmldsig::sign_enveloped(&el, snow_fuzz::identity()) {
        let text = signed.to_xml("");
        let big = Limits { max_stanza_bytes: 1 << 20, max_depth: 64, max_attributes: 64, max_elements: 1 << 16 };
        let back = parse_document(text.as_bytes(), big).expect("Snow's own output parses");
        let v = xmldsig::verify_enveloped(&back).expect("Snow's own signature verifies");
        assert_eq!(c14n::exclusive(&v.content), c14n::exclusive(&el));
        assert_eq!(v.signer, snow_fuzz::USER_DER);
        let v2 = xmldsig::verify_enveloped_xml(text.as_bytes()).expect("and from its bytes");
        assert_eq!(v2.content, v.content);
    }
});
