//! End-to-end encryption through the servers: the policy that refuses clear
//! text, and no clear text in what crosses the s2s link or is stored.

mod support;

use std::time::Duration;

use snow_client::Body;
use support::{error_condition, next_message, Site};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn require_e2e_refuses_clear_text_and_nothing_readable_is_stored_or_forwarded() {
    let mut po = Site::with_domain("po.example");
    po.settings.require_e2e = true;
    po.s2s.replication_interval_ms = 200;
    po.add_user("1111111");
    let labuser = po.add_user_at("5555555", "lab.example");
    let lab = po.replica("lab.example");
    let lab_home = lab.home.clone();
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let ca = po.ca.cert_der().to_vec();
    let gp = po.identity("1111111");

    // The lab user has logged in at the lab once, so the lab knows the
    // account whether or not the PO's directory push has arrived yet.
    po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().close().await.unwrap();
    let mut a = po.login(&po_server, "1111111").await.unwrap();
    // Clear text is refused by policy, with a text that names it.
    a.send_chat(&labuser, "klartekst: 12 positive").await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("policy-violation"));
    assert!(e.to_xml("").contains("require_e2e"), "{}", e.to_xml(""));

    // Encrypted, to a lab user who is offline: crosses the link, is stored.
    let a = a.into_session();
    let mut sent = false;
    for _ in 0..100 {
        match a.iq().send_encrypted_chat(&labuser, "hemmelig: 12 positive", &gp, &ca).await {
            Ok(()) => {
                sent = true;
                break;
            }
            // The lab user's key reaches the PO's directory within a moment.
            Err(snow_client::ClientError::NoKey { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // What the lab received over s2s is what it stored: no clear text.
    let db = snow_core::SiteHome::new(&lab_home).server_db();
    for f in [db.clone(), db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(!bytes.windows(9).any(|w| w == b"hemmelig:"), "clear text in the lab's {}", f.display());
        }
    }
    // Stored offline at the lab, after crossing the link: the signature
    // still verifies (the lab's directory lists the PO user's certificate).
    let mut b = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().into_session();
    b.iq().send_presence().await.unwrap();
    let m = loop {
        let el = b.next_stanza(T).await.unwrap();
        if el.name() == "message" {
            break el;
        }
    };
    assert!(!m.to_xml("").contains("hemmelig"));
    let dir = tempfile::tempdir().unwrap();
    let nonces = |name: &str| std::sync::Mutex::new(snow_client::open_chat_nonces(&dir.path().join(name)).unwrap());
    let verified = Some(Body::Verified { text: "hemmelig: 12 positive".into(), signer: "1111111@po.example".into() });
    let lab_nonces = nonces("lab");
    assert_eq!(snow_client::open_chat(b.iq(), &m, &po.identity("5555555"), &ca, &lab_nonces).await, verified);
    // The sender can read its own copy (signed by itself, for itself too);
    // an outsider cannot.
    assert_eq!(snow_client::open_chat(a.iq(), &m, &gp, &ca, &nonces("gp")).await, verified);
    let mut other = Site::new();
    other.add_user("9999999");
    let outsider = snow_client::open_chat(a.iq(), &m, &other.identity("9999999"), &ca, &nonces("other")).await;
    assert!(matches!(outsider, Some(Body::Unreadable(_))), "{outsider:?}");

    // A revoked recipient: the client refuses to encrypt for it.
    po.revoke("5555555");
    let deadline = std::time::Instant::now() + T;
    loop {
        match a.iq().send_encrypted_chat(&labuser, "etter tilbakekalling", &gp, &ca).await {
            Err(snow_client::ClientError::NoKey { status, .. }) if status == "revoked" => break,
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "still encrypting for a revoked certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}
