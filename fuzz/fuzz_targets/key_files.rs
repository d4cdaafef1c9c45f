//! Every reader of key and certificate files, on arbitrary bytes: each must
//! return an error or a value, never panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::{cert::CertInfo, pem, pkcs12, pkcs8_file, rsa_key, Identity};

fuzz_target!(|data: &[u8]| {
    let _ = pem::decode_all(data, "input");
    let _ = pem::is_pem(data);
    let _ = CertInfo::from_der(data);
    let _ = rsa_key::load(data);
    if pkcs12::looks_like(data) {
        let _ = pkcs12::read(data, "password", "input");
    }
    if pkcs8_file::looks_like(data) {
        let _ = pkcs8_file::decrypt(data, "password", "input");
    }
    let _ = Identity::new(zeroize::Zeroizing::new(data.to_vec()), vec![data.to_vec()]);
});
