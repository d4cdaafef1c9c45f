//! The key directory: the PO (master of the PKI) pushes key changes and
//! the CRL to a lab server (replica); clients look keys up at their own
//! server; a revocation at the PO locks the user out at the lab.

mod support;

use std::time::{Duration, Instant};

use snow_client::{key_lookup, ClientError, Session, NS_KEYS};
use snow_xml::{Element, NS_CLIENT};
use support::{next_message, Site};

const T: Duration = Duration::from_secs(20);

async fn lookup(c: &Session, jid: &str) -> Element {
    let r = c.iq().request(key_lookup(&[jid])).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(NS_CLIENT));
    let item = r.child(NS_KEYS, "query").unwrap().children().next().unwrap().clone();
    item
}

#[tokio::test]
async fn directory_replication_and_revocation_propagation() {
    let mut po = Site::with_domain("po.example");
    let gp = po.add_user("1111111");
    let labuser = po.add_user_at("5555555", "lab.example");
    let lab = po.replica("lab.example");
    po.s2s.replication_interval_ms = 200;
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;

    // The lab user logs in at the lab with a certificate from the PO's CA,
    // and finds the GP's certificate in the lab's directory.
    let l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().into_session();
    let deadline = Instant::now() + T;
    let item = loop {
        let item = lookup(&l, &gp).await;
        if item.attr("status") == Some("valid") || Instant::now() > deadline {
            break item;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(item.attr("status"), Some("valid"), "{}", item.to_xml(NS_KEYS));
    let der = base64_decode(&item.child(NS_KEYS, "certificate").unwrap().text());
    assert_eq!(der, po.identity("1111111").certificate());
    assert_eq!(lookup(&l, "4242424@po.example").await.attr("status"), Some("unknown"));
    l.close().await.unwrap();

    // The GP looks the lab user up at the PO.
    let g = po.login(&po_server, "1111111").await.unwrap().into_session();
    assert_eq!(lookup(&g, &labuser).await.attr("status"), Some("valid"));

    // Revoked at the PO: refused at the lab soon after.
    let revoked_at = Instant::now();
    po.revoke("5555555");
    let refused_after = loop {
        match po.login_at(&lab_server, "lab.example", "5555555").await {
            Err(ClientError::AuthFailed { .. }) => break revoked_at.elapsed(),
            Ok(c) => drop(c),
            Err(e) => panic!("unexpected: {e}"),
        }
        assert!(revoked_at.elapsed() < T, "revocation never reached the lab");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("revocation propagation PO -> lab: {} ms", refused_after.as_millis());
    assert_eq!(lookup(&g, &labuser).await.attr("status"), Some("revoked"));
    assert!(lookup(&g, &labuser).await.child(NS_KEYS, "certificate").is_none(), "a revoked certificate is not served");
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn a_replica_that_was_offline_catches_up() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    po.add_user_at("5555555", "lab.example");
    let lab = po.replica("lab.example");
    po.s2s.replication_interval_ms = 200;
    po.s2s.connect_timeout_secs = 2;
    // The PO runs while the lab is down; users are added and one revoked.
    let po_server = po.start().await;
    let late = po.add_user("2222222");
    po.revoke("1111111");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().into_session();
    let deadline = Instant::now() + T;
    loop {
        let a = lookup(&l, &late).await;
        let b = lookup(&l, "1111111@po.example").await;
        if a.attr("status") == Some("valid") && b.attr("status") == Some("revoked") {
            break;
        }
        assert!(Instant::now() < deadline, "the lab never caught up: {} {}", a.to_xml(NS_KEYS), b.to_xml(NS_KEYS));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap()
}

/// Three sites of one CA on loopback: the PO and two labs. Users chat
/// PO ↔ lab A and lab A ↔ lab B; a revocation at the PO reaches both labs;
/// lab A killed and restarted loses no message.
#[tokio::test]
async fn three_servers() {
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    po.s2s.connect_timeout_secs = 3;
    let gp = po.add_user("1111111");
    let a_user = po.add_user_at("5555555", "laba.example");
    let b_user = po.add_user_at("6666666", "labb.example");
    let mut lab_a = po.replica("laba.example");
    let mut lab_b = po.replica("labb.example");
    // The labs talk to each other directly, too (each lists the other).
    lab_a.s2s.routes.insert(lab_b.domain.clone(), lab_b.s2s.bind.clone());
    lab_b.s2s.routes.insert(lab_a.domain.clone(), lab_a.s2s.bind.clone());
    lab_a.s2s.federate_with.push(lab_b.domain.clone());
    lab_b.s2s.federate_with.push(lab_a.domain.clone());
    for lab in [&mut lab_a, &mut lab_b] {
        lab.s2s.connect_timeout_secs = 3;
    }
    let po_server = po.start().await;
    let a_server = po.start_replica(&lab_a.home, &lab_a.domain, lab_a.s2s.clone()).await;
    let b_server = po.start_replica(&lab_b.home, &lab_b.domain, lab_b.s2s.clone()).await;

    let mut g = po.login(&po_server, "1111111").await.unwrap();
    let mut a = po.login_at(&a_server, "laba.example", "5555555").await.unwrap();
    let mut b = po.login_at(&b_server, "labb.example", "6666666").await.unwrap();
    for c in [&mut g, &mut a, &mut b] {
        c.send_presence().await.unwrap();
    }
    g.send_chat(&a_user, "fra PO").await.unwrap();
    assert_eq!(support::body(&next_message(&mut a).await).as_deref(), Some("fra PO"));
    a.send_chat(&b_user, "fra lab A").await.unwrap();
    assert_eq!(support::body(&next_message(&mut b).await).as_deref(), Some("fra lab A"));
    b.send_chat(&gp, "fra lab B").await.unwrap();
    assert_eq!(support::body(&next_message(&mut g).await).as_deref(), Some("fra lab B"));

    // Lab A is killed; a message sent meanwhile comes back as an error
    // (never silently dropped); after the restart messages flow again.
    drop(a);
    a_server.shutdown(T).await;
    g.send_chat(&a_user, "mens lab A er nede").await.unwrap();
    let e = next_message(&mut g).await;
    assert_eq!(e.attr("type"), Some("error"), "{}", e.to_xml(NS_CLIENT));
    let a_server = po.start_replica(&lab_a.home, &lab_a.domain, lab_a.s2s.clone()).await;
    g.send_chat(&a_user, "etter omstart").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut a = po.login_at(&a_server, "laba.example", "5555555").await.unwrap();
    a.send_presence().await.unwrap();
    assert_eq!(support::body(&next_message(&mut a).await).as_deref(), Some("etter omstart"));
    let a = a.into_session();

    // Revoked at the PO: lab B refuses its login, lab A stops serving the key.
    let t0 = Instant::now();
    po.revoke("6666666");
    loop {
        if matches!(po.login_at(&b_server, "labb.example", "6666666").await, Err(ClientError::AuthFailed { .. })) {
            break;
        }
        assert!(t0.elapsed() < T, "lab B never refused the revoked user");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + T;
    loop {
        if lookup(&a, &b_user).await.attr("status") == Some("revoked") {
            break;
        }
        assert!(Instant::now() < deadline, "lab A's directory never saw the revocation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("revocation reached lab B's login and lab A's directory in {} ms", t0.elapsed().as_millis());
    for s in [po_server, a_server, b_server] {
        s.shutdown(T).await;
    }
}
