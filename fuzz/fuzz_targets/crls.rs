//! CRLs on arbitrary bytes, through both public entries that read one:
//! the client's check of the CRL a key lookup came with
//! (`snow_crypto::e2e::recipient::verify_crl`, at a fixed time and at the
//! clock's, then `check` of the user's certificate against it), and the
//! server's CRL push (`snow_server::trust::TrustStore::install_crl`, what a
//! replica does with the PO's `<crl/>`). PEM input is decoded first, as
//! the files are. A CRL is taken only if the test CA signed it; nothing
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::e2e::recipient::{self, CrlProblem};

fn one(der: &[u8]) {
    let ca = snow_fuzz::CA_DER;
    let at = snow_fuzz::now();
    let mut taken = false;
    for now in [at, at + time::Duration::days(365 * 200), at - time::Duration::days(365)] {
        match recipient::verify_crl(der, ca, now) {
            Ok(c) => {
                assert!(c.this_update <= now + time::Duration::minutes(5) && now < c.next_update);
                let _ = c.is_revoked(&[]);
                let _ = c.is_revoked(&[0, 0, 1]);
                // The user's certificate against it (the certificate's own
                // checks cost RSA, so only with a CRL that was taken).
                let _ = recipient::check(snow_fuzz::USER_DER, ca, Ok(&c), now);
                taken = true;
            }
            Err(CrlProblem::NotFromCa) => {
                // Refused as another CA's: the same bytes are no CRL of ours at any time.
                assert!(recipient::verify_crl(der, ca, at).is_err());
            }
            Err(_) => {}
        }
    }
    if taken {
        let _ = recipient::check_now(snow_fuzz::OTHER_DER, ca, Some(der));
    }
    let _ = snow_fuzz::trust_store().install_crl(der);
}

fuzz_target!(|data: &[u8]| {
    one(data);
    if snow_crypto::pem::is_pem(data) {
        if let Ok(blocks) = snow_crypto::pem::decode_all(data, "input") {
            for (_, der) in blocks.iter().take(4) {
                one(der);
            }
        }
    }
});
