//! The key directory on arbitrary XML, both ways:
//!
//! - the client's side of a lookup (`snow_client::key_entries` on the
//!   server's `<query xmlns='urn:snow:keys:1'>` answer, then
//!   `checked_certificate` of each entry against the test CA, with the CRL
//!   that came with the answer): a certificate is handed out only if it is
//!   the CA's, for the JID asked, not revoked in a current CRL of the CA;
//! - a replica's side of a push from the PO (`<update>`): the server's
//!   parser of it is private (`services/directory.rs`, `apply_push`), so
//!   this reads the items the same way (seq, jid, status, serial, the
//!   Base64 certificate) and feeds the public checks it makes,
//!   `TrustStore::check_directory_certificate` and `install_crl`.
//!
//! Nothing panics; nothing but the test user's and the other user's real
//! certificates passes the checks.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use snow_client::{checked_certificate, key_entries, NS_KEYS};
use snow_xml::{parse_document, Element, Limits};

fn b64(e: &Element) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(e.text().trim()).ok()
}

fn push(update: &Element) {
    let trust = snow_fuzz::trust_store();
    for item in update.children().filter(|c| c.name() == "item").take(200) {
        let change = (|| {
            let seq: i64 = item.attr("seq")?.parse().ok()?;
            let jid = item.attr("jid")?;
            let status = snow_store::KeyStatus::parse(item.attr("status")?)?;
            let serial = item.attr("serial")?;
            let der = b64(item.child(NS_KEYS, "certificate")?)?;
            Some((seq, jid, status, serial, der))
        })();
        let Some((_, jid, status, serial, der)) = change else { continue };
        assert_eq!(snow_store::KeyStatus::parse(status.as_str()), Some(status));
        if trust.check_directory_certificate(&der, jid, serial).is_ok() {
            assert!(snow_crypto::cert::verify_issued_by(&der, snow_fuzz::CA_DER).is_ok(), "{jid}: not the CA's");
        }
    }
    if let Some(der) = update.child(NS_KEYS, "crl").and_then(b64) {
        let _ = trust.install_crl(&der);
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 8, max_attributes: 16, max_elements: 512 };
    let Ok(el) = parse_document(data, limits) else { return };
    if let Ok(entries) = key_entries(&el) {
        for e in entries.iter().take(8) {
            if let Ok(cert) = checked_certificate(&entries, &e.jid, snow_fuzz::CA_DER) {
                let info = snow_crypto::CertInfo::from_der(&cert).expect("a checked certificate parses");
                assert_eq!(info.jid(), Some(e.jid.as_str()), "a certificate for another JID passed");
                assert_eq!(e.status, "valid");
            }
        }
    }
    if el.is(NS_KEYS, "update") {
        push(&el);
    }
    if let Some(update) = el.child(NS_KEYS, "update") {
        push(update);
    }
});
