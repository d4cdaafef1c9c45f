//! Replication that cannot be forged (issue 17 item 4), played by the
//! attacker over a real s2s link with the attacker's own identity: another
//! lab server of the same CA pushing keys; the master's identity (its
//! server key stolen, the CA key not) pushing an older CRL, a CRL of
//! another key, an expired CRL, and certificates not from the CA or not
//! for their entry. Each refusal is counted (`trust_stats`) and changes
//! nothing: the revoked user stays revoked.

mod attacker;
mod support;

use std::time::{Duration, Instant};

use snow_client::{key_lookup, ClientError, Session, NS_KEYS};
use snow_core::SiteHome;
use snow_crypto::CertInfo;
use snow_pki::{Ca, PkiSettings};
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const T: Duration = Duration::from_secs(20);

async fn lookup(c: &Session, jid: &str) -> Element {
    let r = c.iq().request(key_lookup(&[jid])).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(NS_CLIENT));
    let item = r.child(NS_KEYS, "query").unwrap().children().find(|c| c.name() == "item").unwrap().clone();
    item
}

async fn wait_status(c: &Session, jid: &str, status: &str) {
    let deadline = Instant::now() + T;
    loop {
        let item = lookup(c, jid).await;
        if item.attr("status") == Some(status) {
            return;
        }
        assert!(Instant::now() < deadline, "{jid} never became {status}: {}", item.to_xml(NS_KEYS));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CA of the same name (`Snow CA po.example`) with a key of its own.
fn impostor_ca(dir: &tempfile::TempDir) -> Ca {
    let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    Ca::init(&SiteHome::new(dir.path().join("impostor")), &"po.example".parse().unwrap(), "impostor passphrase", &pki)
        .unwrap()
}

/// The PO's own server certificate and key: what an attacker who stole
/// the PO server's key (not the CA's) holds.
fn po_identity(
    po: &Site,
) -> (Vec<rustls_pki_types::CertificateDer<'static>>, rustls_pki_types::PrivateKeyDer<'static>) {
    attacker::identity(&po.paths.server_cert("po.example"), &po.paths.server_key("po.example"))
}

#[tokio::test]
async fn a_push_from_a_server_that_is_not_the_master_is_refused() {
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    let gp = po.add_user("1111111");
    po.add_user_at("5555555", "lab.example");
    let mut lab = po.replica("lab.example");
    // The attacker: another server of the same CA, with its own genuine
    // server certificate, that the lab federates with (labs talk to each
    // other directly).
    let (_other_dir, other_home) = po.replica_home("other.example", &[]);
    lab.s2s.federate_with.push("other.example".into());
    let other = SiteHome::new(&other_home);
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().into_session();
    wait_status(&l, &gp, "valid").await;

    let id = attacker::identity(&other.server_cert("other.example"), &other.server_key("other.example"));
    let mut link = attacker::connect(&lab.s2s.bind, "other.example", "lab.example", id, po.ca.cert_der())
        .await
        .expect("the attacker's own certificate authenticates its own domain");
    let der = po.identity("1111111").certificate().to_vec();
    let serial = CertInfo::from_der(&der).unwrap().serial_hex;
    let before = lab_server.trust_stats().pushes_refused;
    let item = attacker::key_item(999_999, &gp, "revoked", &serial, &der);
    attacker::send(&mut link, &attacker::key_push("other.example", "lab.example", "keys-1", &item, None)).await;
    assert!(
        attacker::eventually(T, || lab_server.trust_stats().pushes_refused == before + 1).await,
        "the push from a server that is not the master was not refused"
    );
    assert_eq!(lookup(&l, &gp).await.attr("status"), Some("valid"), "the refused push changed the directory");
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn an_older_crl_a_crl_of_another_key_and_an_expired_crl_are_refused() {
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    po.add_user_at("5555555", "lab.example");
    po.add_user_at("6666666", "lab.example");
    let lab = po.replica("lab.example");
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let watcher = po.login_at(&lab_server, "lab.example", "6666666").await.unwrap().into_session();
    po.login_at(&lab_server, "lab.example", "5555555").await.expect("not revoked yet");

    // The CRL from before the revocation, kept by the attacker.
    let old_crl = attacker::crl_der(&po.paths.crl());
    po.revoke("5555555");
    wait_status(&watcher, "5555555@lab.example", "revoked").await;
    let t0 = Instant::now();
    while !matches!(po.login_at(&lab_server, "lab.example", "5555555").await, Err(ClientError::AuthFailed { .. })) {
        assert!(t0.elapsed() < T, "the revocation never reached the lab");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From now on the attacker speaks for the PO, with its server key.
    po_server.shutdown(T).await;
    let mut link = attacker::connect(&lab.s2s.bind, "po.example", "lab.example", po_identity(&po), po.ca.cert_der())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut impostor = impostor_ca(&dir);
    let mut foreign = Vec::new();
    for _ in 0..30 {
        // A CRL number far above the real one.
        foreign = impostor
            .signed_crl(time::OffsetDateTime::now_utc(), time::OffsetDateTime::now_utc() + time::Duration::days(7))
            .unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    let expired = po.ca.signed_crl(now - time::Duration::days(10), now - time::Duration::days(1)).unwrap();
    let cases: [(&str, &[u8]); 3] =
        [("an older CRL", &old_crl), ("a CRL signed by another key", &foreign), ("an expired CRL", &expired)];
    for (i, (what, crl)) in cases.into_iter().enumerate() {
        let before = lab_server.trust_stats();
        let push = attacker::key_push("po.example", "lab.example", &format!("keys-lab.example-{i}-0"), "", Some(crl));
        attacker::send(&mut link, &push).await;
        assert!(
            attacker::eventually(T, || lab_server.trust_stats().pushes_refused == before.pushes_refused + 1).await,
            "{what} was not refused"
        );
        assert_eq!(lab_server.trust_stats().crls_refused, before.crls_refused + 1, "{what}");
        // The revoked user stays revoked.
        match po.login_at(&lab_server, "lab.example", "5555555").await {
            Err(ClientError::AuthFailed { text, .. }) => assert_eq!(
                text.as_deref(),
                Some("your certificate has been revoked — contact the Snow administrator"),
                "{what}"
            ),
            Ok(_) => panic!("{what} un-revoked the user"),
            Err(e) => panic!("{what}: {e}"),
        }
        assert_eq!(lookup(&watcher, "5555555@lab.example").await.attr("status"), Some("revoked"), "{what}");
    }
    assert!(
        matches!(lab_server.revocation_status(), snow_server::trust::RevocationStatus::Current { .. }),
        "the lab kept its current CRL"
    );
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn pushed_certificates_must_be_the_cas_and_name_their_entry() {
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    let a = po.add_user("1111111");
    let b = po.add_user("2222222");
    po.add_user_at("6666666", "lab.example");
    let lab = po.replica("lab.example");
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let watcher = po.login_at(&lab_server, "lab.example", "6666666").await.unwrap().into_session();
    wait_status(&watcher, &b, "valid").await;
    let b_serial = lookup(&watcher, &b).await.attr("serial").unwrap().to_owned();
    po_server.shutdown(T).await;
    let mut link = attacker::connect(&lab.s2s.bind, "po.example", "lab.example", po_identity(&po), po.ca.cert_der())
        .await
        .unwrap();

    // A's genuine certificate as B's entry; an agent certificate for the
    // PO's search agent from a CA of the same name but another key; the
    // PO's server certificate as a directory entry.
    let a_der = po.identity("1111111").certificate().to_vec();
    let a_serial = CertInfo::from_der(&a_der).unwrap().serial_hex;
    let dir = tempfile::tempdir().unwrap();
    let mut impostor = impostor_ca(&dir);
    let forged = impostor.issue_agent(&"search@po.example".parse().unwrap()).unwrap();
    let forged_der = snow_crypto::pem::certificates(&std::fs::read(&forged.cert_path).unwrap(), "c").unwrap().remove(0);
    let server_der = snow_crypto::pem::certificates(&std::fs::read(po.paths.server_cert("po.example")).unwrap(), "c")
        .unwrap()
        .remove(0);
    let server_serial = CertInfo::from_der(&server_der).unwrap().serial_hex;
    let cases = [
        ("a certificate naming another JID", attacker::key_item(999_990, &b, "valid", &a_serial, &a_der)),
        (
            "a certificate not from the CA",
            attacker::key_item(999_991, "search@po.example", "valid", &forged.serial_hex, &forged_der),
        ),
        ("a server certificate", attacker::key_item(999_992, "po.example", "valid", &server_serial, &server_der)),
        ("a genuine certificate under another serial", attacker::key_item(999_993, &a, "valid", &b_serial, &a_der)),
    ];
    for (i, (what, item)) in cases.iter().enumerate() {
        let before = lab_server.trust_stats().pushes_refused;
        // A genuine item first: a push is taken whole or not at all.
        let genuine = attacker::key_item(999_980 + i as i64, &a, "revoked", &a_serial, &a_der);
        let push = attacker::key_push("po.example", "lab.example", &format!("k{i}"), &format!("{genuine}{item}"), None);
        attacker::send(&mut link, &push).await;
        assert!(
            attacker::eventually(T, || lab_server.trust_stats().pushes_refused == before + 1).await,
            "{what} was not refused"
        );
    }
    let entry = lookup(&watcher, &b).await;
    assert_eq!((entry.attr("status"), entry.attr("serial")), (Some("valid"), Some(b_serial.as_str())));
    assert_eq!(lookup(&watcher, &a).await.attr("status"), Some("valid"), "part of a refused push was applied");
    assert_eq!(lookup(&watcher, "search@po.example").await.attr("status"), Some("unknown"));
    assert_eq!(lookup(&watcher, "po.example").await.attr("status"), Some("unknown"));
    lab_server.shutdown(T).await;
}
