//! The key directory: the PO (master of the PKI) pushes key changes and
//! the CRL to a lab server (replica); clients look keys up at their own
//! server; a revocation at the PO locks the user out at the lab.

mod support;

use std::time::{Duration, Instant};

use snow_client::ClientError;
use snow_server::S2sSettings;
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const NS_KEYS: &str = "urn:snow:keys:1";
const T: Duration = Duration::from_secs(20);

async fn lookup(c: &mut snow_client::Client, jid: &str) -> Element {
    let q = Element::new(NS_KEYS, "query").with_child(Element::new(NS_KEYS, "item").with_attr("jid", jid));
    let (r, _) = c.request(Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(q)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(NS_CLIENT));
    let item = r.child(NS_KEYS, "query").unwrap().children().next().unwrap().clone();
    item
}

#[tokio::test]
async fn directory_replication_and_revocation_propagation() {
    let mut po = Site::with_domain("po.example");
    let gp = po.add_user("1111111");
    let labuser = po.add_user_at("5555555", "lab.example");
    let (_lab_dir, lab_home) = po.replica_home("lab.example");
    let lab_s2s_port = support::free_port();
    po.s2s.routes.insert("lab.example".into(), format!("127.0.0.1:{lab_s2s_port}"));
    po.s2s.replicas = vec!["lab.example".into()];
    po.s2s.replication_interval_ms = 200;
    let mut lab_s2s = S2sSettings {
        bind: format!("127.0.0.1:{lab_s2s_port}"),
        master: Some("po.example".into()),
        ..S2sSettings::default()
    };
    lab_s2s.routes.insert("po.example".into(), po.s2s_addr());
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab_home, "lab.example", lab_s2s).await;

    // The lab user logs in at the lab with a certificate from the PO's CA,
    // and finds the GP's certificate in the lab's directory.
    let mut l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap();
    let deadline = Instant::now() + T;
    let item = loop {
        let item = lookup(&mut l, &gp).await;
        if item.attr("status") == Some("valid") || Instant::now() > deadline {
            break item;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(item.attr("status"), Some("valid"), "{}", item.to_xml(NS_KEYS));
    let der = base64_decode(&item.child(NS_KEYS, "certificate").unwrap().text());
    assert_eq!(der, po.identity("1111111").certificate());
    assert_eq!(lookup(&mut l, "4242424@po.example").await.attr("status"), Some("unknown"));
    l.close().await.unwrap();

    // The GP looks the lab user up at the PO.
    let mut g = po.login(&po_server, "1111111").await.unwrap();
    assert_eq!(lookup(&mut g, &labuser).await.attr("status"), Some("valid"));

    // Revoked at the PO: refused at the lab soon after.
    let revoked_at = Instant::now();
    po.revoke("5555555");
    let refused_after = loop {
        match po.login_at(&lab_server, "lab.example", "5555555").await {
            Err(ClientError::AuthFailed(_)) => break revoked_at.elapsed(),
            Ok(c) => drop(c),
            Err(e) => panic!("unexpected: {e}"),
        }
        assert!(revoked_at.elapsed() < T, "revocation never reached the lab");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("revocation propagation PO -> lab: {} ms", refused_after.as_millis());
    assert_eq!(lookup(&mut g, &labuser).await.attr("status"), Some("revoked"));
    assert!(
        lookup(&mut g, &labuser).await.child(NS_KEYS, "certificate").is_none(),
        "a revoked certificate is not served"
    );
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn a_replica_that_was_offline_catches_up() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    po.add_user_at("5555555", "lab.example");
    let (_lab_dir, lab_home) = po.replica_home("lab.example");
    let lab_s2s_port = support::free_port();
    po.s2s.routes.insert("lab.example".into(), format!("127.0.0.1:{lab_s2s_port}"));
    po.s2s.replicas = vec!["lab.example".into()];
    po.s2s.replication_interval_ms = 200;
    po.s2s.connect_timeout_secs = 2;
    let mut lab_s2s = S2sSettings {
        bind: format!("127.0.0.1:{lab_s2s_port}"),
        master: Some("po.example".into()),
        ..S2sSettings::default()
    };
    lab_s2s.routes.insert("po.example".into(), po.s2s_addr());
    // The PO runs while the lab is down; users are added and one revoked.
    let po_server = po.start().await;
    let late = po.add_user("2222222");
    po.revoke("1111111");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let lab_server = po.start_replica(&lab_home, "lab.example", lab_s2s).await;
    let mut l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap();
    let deadline = Instant::now() + T;
    loop {
        let a = lookup(&mut l, &late).await;
        let b = lookup(&mut l, "1111111@po.example").await;
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
