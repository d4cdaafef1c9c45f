//! Issue 17 items 2 and 3 in the CA: each kind of certificate is told
//! apart by its extended key usage (only a server's has serverAuth); a
//! server and an agent can be revoked; a re-issued server certificate
//! supersedes the old one; the CRL lists each with its reason.

use snow_core::{Domain, SiteHome};
use snow_pki::{Ca, PkiError, PkiSettings, RevocationReason};
use x509_parser::prelude::{parse_x509_certificate, parse_x509_crl};

const CA_PASS: &str = "correct horse battery staple";

fn new_ca(dir: &std::path::Path) -> (SiteHome, Ca) {
    let paths = SiteHome::new(dir);
    let settings = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    let ca = Ca::init(&paths, &"po.example".parse::<Domain>().unwrap(), CA_PASS, &settings).unwrap();
    (paths, ca)
}

fn first_cert(path: &std::path::Path) -> Vec<u8> {
    snow_crypto::pem::certificates(&std::fs::read(path).unwrap(), "cert").unwrap().remove(0)
}

/// (clientAuth, serverAuth, digitalSignature, keyEncipherment, CA)
fn usages(der: &[u8]) -> (bool, bool, bool, bool, bool) {
    let (_, cert) = parse_x509_certificate(der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    let ku = cert.key_usage().unwrap().unwrap().value;
    (eku.client_auth, eku.server_auth, ku.digital_signature(), ku.key_encipherment(), cert.is_ca())
}

/// The CRL's revoked serials (hex) with their reason codes.
fn crl_entries(paths: &SiteHome) -> Vec<(String, Option<u8>)> {
    let pem = std::fs::read(paths.crl()).unwrap();
    let der = snow_crypto::pem::decode_all(&pem, "crl").unwrap().remove(0).1;
    let (_, crl) = parse_x509_crl(&der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| {
            let serial: String = r.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
            (serial.trim_start_matches('0').to_owned(), r.reason_code().map(|(_, c)| c.0))
        })
        .collect()
}

fn norm(serial: &str) -> String {
    serial.trim_start_matches('0').to_owned()
}

#[test]
fn each_role_has_its_own_key_usages() {
    let dir = tempfile::tempdir().unwrap();
    let (_paths, mut ca) = new_ca(dir.path());
    let user = ca
        .add_user(&"9144889".parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap())
        .unwrap();
    let user_der = snow_crypto::pkcs12::read(
        &user.p12,
        &snow_pki::outbox::password_of(&std::fs::read_to_string(&user.delivery.sms).unwrap()).unwrap(),
        "p12",
    )
    .unwrap()
    .chain
    .remove(0);
    let agent = ca.issue_agent(&"search.po.example".parse().unwrap()).unwrap();
    let server = ca.issue_server(&"po.example".parse().unwrap(), &[]).unwrap();
    // clientAuth, serverAuth, digitalSignature, keyEncipherment, CA
    assert_eq!(usages(&user_der), (true, false, true, true, false), "user");
    assert_eq!(usages(&first_cert(&agent.cert_path)), (true, false, true, true, false), "agent");
    assert_eq!(usages(&first_cert(&server.cert_path)), (true, true, true, true, false), "server");
}

#[test]
fn servers_and_agents_are_revoked_and_a_new_server_certificate_supersedes_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, mut ca) = new_ca(dir.path());
    let lab: Domain = "lab.example".parse().unwrap();
    let first = ca.issue_server(&lab, &[]).unwrap();
    assert!(first.superseded.is_empty());
    let other = ca.issue_server(&"other.example".parse().unwrap(), &[]).unwrap();
    let second = ca.issue_server(&lab, &[]).unwrap();
    assert_eq!(second.superseded, std::slice::from_ref(&first.serial_hex));
    let superseded = Some(RevocationReason::Superseded.code());
    assert_eq!(crl_entries(&paths), [(norm(&first.serial_hex), superseded)]);

    let done = ca.revoke_server(&lab, RevocationReason::KeyCompromise).unwrap();
    assert_eq!(done.serials, std::slice::from_ref(&second.serial_hex));
    assert_eq!(done.crl, paths.crl());
    let entries = crl_entries(&paths);
    assert!(entries.contains(&(norm(&second.serial_hex), Some(RevocationReason::KeyCompromise.code()))), "{entries:?}");
    assert!(!entries.iter().any(|(s, _)| *s == norm(&other.serial_hex)), "another server was revoked");
    assert!(matches!(ca.revoke_server(&lab, RevocationReason::KeyCompromise), Err(PkiError::NothingToRevoke(_))));
    assert!(matches!(
        ca.revoke_server(&"never.example".parse().unwrap(), RevocationReason::Unspecified),
        Err(PkiError::NothingToRevoke(_))
    ));

    let jid = "search@lab.example".parse().unwrap();
    let agent = ca.issue_agent(&jid).unwrap();
    let done = ca.revoke_agent(&jid, RevocationReason::PrivilegeWithdrawn).unwrap();
    assert_eq!(done.serials, std::slice::from_ref(&agent.serial_hex));
    let code = Some(RevocationReason::PrivilegeWithdrawn.code());
    assert!(crl_entries(&paths).contains(&(norm(&agent.serial_hex), code)));
    assert!(matches!(ca.revoke_agent(&jid, RevocationReason::Unspecified), Err(PkiError::NothingToRevoke(_))));
    // The key feed carries the agent's revocation to the directories.
    let db = snow_store::CaDb::open(&paths.ca_db()).unwrap();
    let feed = db.key_changes_since(0, 100).unwrap();
    let last = feed.last().unwrap();
    assert_eq!((last.jid.as_str(), last.status.as_str()), ("search@lab.example", "revoked"));
}

#[test]
fn a_signed_crl_with_chosen_times_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, mut ca) = new_ca(dir.path());
    let before = std::fs::read(paths.crl()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let der = ca.signed_crl(now - time::Duration::days(10), now - time::Duration::days(1)).unwrap();
    let (_, crl) = parse_x509_crl(&der).unwrap();
    assert!(crl.next_update().unwrap().to_datetime() < now);
    assert_eq!(std::fs::read(paths.crl()).unwrap(), before);
}
