//! Round trips and hostile input for the key and certificate formats.

use snow_crypto::{cert::CertInfo, pem, pkcs12, pkcs8_file, rsa_key, CryptoError, FileKeyStore, Identity, KeyStore};
use zeroize::Zeroizing;

/// A self-signed RSA certificate for `key`, made with rcgen.
fn self_signed(key: &[u8]) -> Vec<u8> {
    let kp = rcgen::KeyPair::try_from(key).unwrap();
    let params = rcgen::CertificateParams::new(vec!["gp.example".to_owned()]).unwrap();
    params.self_signed(&kp).unwrap().der().to_vec()
}

#[test]
fn pkcs8_round_trip_and_wrong_passphrase() {
    let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
    let pem_text = pkcs8_file::encrypt_pem(&key, "passphrase one").unwrap();
    assert!(pem_text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(pkcs8_file::looks_like(pem_text.as_bytes()));
    let back = pkcs8_file::decrypt(pem_text.as_bytes(), "passphrase one", "k").unwrap();
    assert_eq!(&*back, &*key);
    assert!(matches!(pkcs8_file::decrypt(pem_text.as_bytes(), "passphrase two", "k"), Err(CryptoError::WrongPassword)));
}

#[test]
fn pkcs12_round_trip() {
    let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
    let cert = self_signed(&key);
    let p12 = pkcs12::build(&key, std::slice::from_ref(&cert), "gp", "one-time-password-123").unwrap();
    assert!(pkcs12::looks_like(&p12));
    let c = pkcs12::read(&p12, "one-time-password-123", "p12").unwrap();
    assert_eq!(&*c.key_pkcs8, &*key);
    assert_eq!(c.chain, vec![cert.clone()]);
    assert!(matches!(pkcs12::read(&p12, "one-time-password-124", "p12"), Err(CryptoError::WrongPassword)));
    // Every truncation is an error, never a panic.
    for n in (0..p12.len()).step_by(97) {
        assert!(pkcs12::read(&p12[..n], "one-time-password-123", "p12").is_err());
    }
}

#[test]
fn identity_refuses_a_foreign_key() {
    let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
    let other = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
    let cert = self_signed(&key);
    assert!(matches!(Identity::new(other, vec![cert.clone()]), Err(CryptoError::KeyCertMismatch)));
    let id = Identity::new(key, vec![cert]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeyStore::new(dir.path().join("ks"));
    store.save(&id, "a passphrase", false).unwrap();
    assert_eq!(store.certificate_chain().unwrap(), id.chain());
    assert_eq!(store.unlock("a passphrase").unwrap().key_pkcs8(), id.key_pkcs8());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ks/key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x82, 0xff, 0xff],
        vec![0x30, 0x03, 0x02, 0x01, 0x03],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!!!\n-----END ENCRYPTED PRIVATE KEY-----\n".to_vec(),
        (0..=255u8).cycle().take(5000).collect(),
    ];
    for input in &inputs {
        assert!(pkcs12::read(input, "pw", "x").is_err());
        assert!(pkcs8_file::decrypt(input, "pw", "x").is_err());
        assert!(CertInfo::from_der(input).is_err());
        let _ = pem::decode_all(input, "x");
        assert!(rsa_key::load(input).is_err());
        let _ = Identity::new(Zeroizing::new(input.clone()), vec![input.clone()]);
    }
}
