//! The whole PKI life cycle through the library: CA init, user issue,
//! delivery, import into a key store, signing, revocation, CRL.

use snow_core::SiteHome;
use snow_core::{Domain, Hpnr};
use snow_crypto::cert::{verify_issued_by, CertInfo};
use snow_crypto::{pkcs12, rsa_key, CryptoError, FileKeyStore, Identity, KeyStore};
use snow_pki::{outbox, Ca, PkiError, PkiSettings, RevocationReason};

const CA_PASS: &str = "correct horse battery staple";

fn fast_settings() -> PkiSettings {
    // 2048-bit CA keys keep the tests quick; the default is 3072.
    PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() }
}

fn new_ca(dir: &std::path::Path) -> (SiteHome, Ca) {
    let paths = SiteHome::new(dir);
    let ca = Ca::init(&paths, &"po.example".parse::<Domain>().unwrap(), CA_PASS, &fast_settings()).unwrap();
    (paths, ca)
}

#[test]
fn issue_import_sign_verify_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, mut ca) = new_ca(dir.path());
    let hpnr: Hpnr = "9144889".parse().unwrap();
    let issued =
        ca.add_user(&hpnr, &"+4791234567".parse().unwrap(), &"gp@legekontor.example".parse().unwrap()).unwrap();
    assert_eq!(issued.jid.to_string(), "9144889@po.example");

    // The delivery: the e-mail carries the very p12, the SMS its password.
    let eml = std::fs::read_to_string(&issued.delivery.email).unwrap();
    assert!(eml.contains("To: <gp@legekontor.example>\r\n"));
    assert_eq!(outbox::attachment_of(&eml).unwrap(), issued.p12);
    let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
    assert!(sms.starts_with("To: +4791234567\n"));
    let password = outbox::password_of(&sms).unwrap();
    assert!(password.len() >= 16);
    assert!(!eml.contains(&password), "the password must not travel with the file");

    // Import: open the p12 with the one-time password, store under a passphrase.
    assert!(matches!(pkcs12::read(&issued.p12, "wrong-password-123", "p12"), Err(CryptoError::WrongPassword)));
    let contents = pkcs12::read(&issued.p12, &password, "p12").unwrap();
    assert_eq!(contents.chain.len(), 2, "user certificate and CA certificate");
    let identity = Identity::new(contents.key_pkcs8, contents.chain).unwrap();
    let store = FileKeyStore::new(dir.path().join("gp-keys"));
    store.save(&identity, "my personal passphrase", false).unwrap();
    assert!(matches!(store.save(&identity, "my personal passphrase", false), Err(CryptoError::KeyStoreExists(_))));
    assert!(matches!(store.unlock("not my passphrase"), Err(CryptoError::WrongPassphrase(_))));
    let identity = store.unlock("my personal passphrase").unwrap();

    // The imported key signs; the certificate verifies against the CA.
    let sig = identity.sign(b"positive influenza A, week 47").unwrap();
    let info = CertInfo::from_der(identity.certificate()).unwrap();
    assert!(rsa_key::verify(&info.public_key, b"positive influenza A, week 47", &sig));
    assert!(!rsa_key::verify(&info.public_key, b"negative influenza A, week 47", &sig));
    verify_issued_by(identity.certificate(), ca.cert_der()).unwrap();
    assert_eq!(info.jid(), Some("9144889@po.example"));
    assert!(info.subject.contains("CN=9144889"));
    assert!(!info.is_ca);

    // A certificate from another CA does not verify against ours.
    let other = tempfile::tempdir().unwrap();
    let (_, other_ca) = new_ca(other.path());
    assert!(verify_issued_by(identity.certificate(), other_ca.cert_der()).is_err());

    // Duplicate and unknown users.
    assert!(matches!(
        ca.add_user(&hpnr, &"+4791234567".parse().unwrap(), &"gp@legekontor.example".parse().unwrap()),
        Err(PkiError::Store(snow_store::StoreError::DuplicateUser(_)))
    ));
    assert!(matches!(
        ca.revoke_user(&"7777777".parse().unwrap(), RevocationReason::KeyCompromise),
        Err(PkiError::Store(snow_store::StoreError::UnknownUser(_)))
    ));

    // Revocation reaches the CRL with its reason code.
    let revoked = ca.revoke_user(&hpnr, RevocationReason::KeyCompromise).unwrap();
    let crl = crl_entries(&std::fs::read(revoked.crl).unwrap());
    assert_eq!(crl, vec![(info.serial_hex.clone(), Some(1))]);
    let users = snow_pki::list_users(&paths).unwrap();
    assert_eq!(users.len(), 1);
    assert!(users[0].revoked.is_some());

    // Re-key: a new certificate for the same JID; the user is active again.
    let rekeyed = ca.rekey_user(&hpnr).unwrap();
    assert_eq!(rekeyed.jid.to_string(), "9144889@po.example");
    assert_ne!(rekeyed.serial_hex, info.serial_hex);
    let sms = std::fs::read_to_string(&rekeyed.delivery.sms).unwrap();
    let c = pkcs12::read(&rekeyed.p12, &outbox::password_of(&sms).unwrap(), "p12").unwrap();
    verify_issued_by(&c.chain[0], ca.cert_der()).unwrap();
    let users = snow_pki::list_users(&paths).unwrap();
    assert_eq!((users[0].revoked, users[0].cert_serial.clone()), (None, rekeyed.serial_hex.clone()));
    // Re-keying an active user supersedes the current certificate.
    let again = ca.rekey_user(&hpnr).unwrap();
    let crl = crl_entries(&std::fs::read(paths.crl()).unwrap());
    assert!(crl.contains(&(info.serial_hex.clone(), Some(1))), "{crl:?}");
    assert!(crl.contains(&(rekeyed.serial_hex.clone(), Some(4))), "superseded: {crl:?}");
    assert!(!crl.iter().any(|(s, _)| *s == again.serial_hex));
}

/// Revoking or re-keying takes the user's unsent e-mail and SMS out of the
/// outbox, found by the user and certificate the files record; mailed
/// e-mails stay, and other users' deliveries are untouched.
#[test]
fn revocation_and_rekey_withdraw_unsent_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, mut ca) = new_ca(dir.path());
    let (phone, email) = ("+4791234567".parse().unwrap(), "gp@legekontor.example".parse().unwrap());
    let a: Hpnr = "1111111".parse().unwrap();
    let b: Hpnr = "2222222".parse().unwrap();
    let first = ca.add_user(&a, &phone, &email).unwrap();
    let other = ca.add_user(&b, &phone, &email).unwrap();
    let eml = std::fs::read_to_string(&first.delivery.email).unwrap();
    assert_eq!(
        outbox::recorded(&eml),
        Some(outbox::Recorded { user: "1111111@po.example".into(), certificate: first.serial_hex.clone() })
    );
    let sms = std::fs::read_to_string(&first.delivery.sms).unwrap();
    assert_eq!(outbox::recorded(&sms).unwrap().certificate, first.serial_hex);

    // Re-key: the old certificate's files go, the new ones stay.
    let second = ca.rekey_user(&a).unwrap();
    assert_eq!(second.withdrawn.emails, vec![first.delivery.email.clone()]);
    assert_eq!(second.withdrawn.sms, vec![first.delivery.sms.clone()]);
    assert!(!first.delivery.email.exists() && !first.delivery.sms.exists());
    assert!(second.delivery.email.exists() && second.delivery.sms.exists());

    // The new e-mail was mailed (moved to sent/); a file from an older
    // version, without the headers, is matched by its name.
    std::fs::create_dir_all(paths.email_sent()).unwrap();
    let sent = paths.email_sent().join(second.delivery.email.file_name().unwrap());
    std::fs::rename(&second.delivery.email, &sent).unwrap();
    let old = paths.sms_outbox().join("1000-1111111.txt");
    std::fs::write(
        &old,
        "To: +4791234567

Snow: the one-time password for the key file sent to your e-mail is X
",
    )
    .unwrap();

    let revoked = ca.revoke_user(&a, RevocationReason::AffiliationChanged).unwrap();
    assert!(!revoked.already_revoked);
    assert!(revoked.withdrawn.emails.is_empty(), "a mailed e-mail is the record: {:?}", revoked.withdrawn);
    assert_eq!(revoked.withdrawn.sms, vec![old.clone(), second.delivery.sms.clone()]);
    assert!(sent.exists());
    assert!(other.delivery.email.exists() && other.delivery.sms.exists(), "another user's delivery was touched");

    // A revocation cut short before its withdrawal: revoking again finishes
    // it; with nothing left, it is the old error.
    let late = paths.email_outbox().join("2000-1111111.eml");
    std::fs::write(&late, "From: x\r\nX-Snow-User: 1111111@po.example\r\nX-Snow-Certificate: 01\r\n\r\n").unwrap();
    let again = ca.revoke_user(&a, RevocationReason::AffiliationChanged).unwrap();
    assert!(again.already_revoked);
    assert_eq!(again.withdrawn.emails, vec![late]);
    assert!(matches!(
        ca.revoke_user(&a, RevocationReason::AffiliationChanged),
        Err(PkiError::Store(snow_store::StoreError::AlreadyRevoked(_)))
    ));
}

/// `(serial hex, reason code)` of each CRL entry, read with x509-parser,
/// after checking the CRL's signature against nothing but its structure.
fn crl_entries(pem_text: &[u8]) -> Vec<(String, Option<u8>)> {
    use x509_parser::prelude::*;
    let der = snow_crypto::pem::decode_all(pem_text, "crl").unwrap().remove(0).1;
    let (_, crl) = parse_x509_crl(&der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| {
            let serial = r.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
            let reason = r.reason_code().map(|(_, rc)| rc.0);
            (serial, reason)
        })
        .collect()
}

#[test]
fn ca_errors() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SiteHome::new(dir.path());
    let settings = fast_settings();
    assert!(matches!(Ca::open(&paths, CA_PASS, &settings), Err(PkiError::CaNotInitialised(_))));
    assert!(matches!(snow_pki::list_users(&paths), Err(PkiError::CaNotInitialised(_))));
    let domain: Domain = "po.example".parse().unwrap();
    assert!(matches!(Ca::init(&paths, &domain, "short", &settings), Err(PkiError::WeakPassphrase(_))));
    Ca::init(&paths, &domain, CA_PASS, &settings).unwrap();
    assert!(matches!(Ca::init(&paths, &domain, CA_PASS, &settings), Err(PkiError::CaExists(_))));
    assert!(matches!(Ca::open(&paths, "wrong passphrase!", &settings), Err(PkiError::WrongCaPassphrase)));
    let mut ca = Ca::open(&paths, CA_PASS, &settings).unwrap();
    let server = ca.issue_server(&domain, &[]).unwrap();
    let chain = snow_crypto::pem::certificates(&std::fs::read(&server.cert_path).unwrap(), "server").unwrap();
    let info = CertInfo::from_der(&chain[0]).unwrap();
    assert_eq!(info.dns_names, vec!["po.example"]);
    assert_eq!(info.xmpp_addrs, vec!["po.example"]);
    verify_issued_by(&chain[0], ca.cert_der()).unwrap();
}
