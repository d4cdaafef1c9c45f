//! Certificates bound to their role (issue 17 item 3), played by the
//! attacker over a real s2s link with a certificate the CA really issued:
//! an agent's certificate (its xmppAddr is a domain) does not authenticate
//! that domain as a server; no peer may claim one of our own domains, even
//! with a server certificate that names it; a server certificate
//! authenticates only the domains in its SAN.

mod attacker;
mod support;

use std::time::Duration;

use attacker::Refusal;
use snow_core::SiteHome;
use support::Site;

const T: Duration = Duration::from_secs(15);

#[tokio::test]
async fn an_agent_certificate_never_authenticates_as_a_server() {
    let mut po = Site::with_domain("po.example");
    // Genuine agent certificates: one whose JID is a component domain
    // (xmppAddr search.lab.example), one that logs in like a user.
    let component = po.ca.issue_agent(&"search.lab.example".parse().unwrap()).unwrap();
    let client = po.ca.issue_agent(&"search@lab.example".parse().unwrap()).unwrap();
    let server = po.start().await;
    let addr = po.s2s_addr();

    let id = attacker::identity(&component.cert_path, &component.key_path);
    let r = attacker::connect(&addr, "search.lab.example", "po.example", id, po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())), "an agent certificate authenticated a domain");
    let id = attacker::identity(&client.cert_path, &client.key_path);
    let r = attacker::connect(&addr, "lab.example", "po.example", id, po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())));

    // A genuine server certificate for that domain does (the control).
    let (_dir, home) = po.replica_home("search.lab.example", &[]);
    let home = SiteHome::new(home);
    let id = attacker::identity(&home.server_cert("search.lab.example"), &home.server_key("search.lab.example"));
    attacker::connect(&addr, "search.lab.example", "po.example", id, po.ca.cert_der())
        .await
        .expect("a server certificate naming the domain authenticates it");
    server.shutdown(T).await;
}

#[tokio::test]
async fn no_peer_may_claim_our_own_domain_and_a_server_is_only_the_domains_it_names() {
    let mut po = Site::with_domain("po.example");
    // A genuine server certificate of another server that also names
    // po.example (as if it were its component).
    let evil = po.ca.issue_server(&"evil.example".parse().unwrap(), &["po.example".parse().unwrap()]).unwrap();
    let (_dir, lab_home) = po.replica_home("lab.example", &[]);
    let lab_home = SiteHome::new(lab_home);
    let server = po.start().await;
    let addr = po.s2s_addr();
    let evil_id = || attacker::identity(&evil.cert_path, &evil.key_path);

    let r = attacker::connect(&addr, "po.example", "po.example", evil_id(), po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Stream("invalid-from".into())), "a peer claimed our own domain");
    // The same certificate for its own domain is fine (the control).
    attacker::connect(&addr, "evil.example", "po.example", evil_id(), po.ca.cert_der())
        .await
        .expect("a server certificate authenticates its own domain");
    // The lab's certificate does not authenticate a domain it does not name.
    let lab_id = attacker::identity(&lab_home.server_cert("lab.example"), &lab_home.server_key("lab.example"));
    let r = attacker::connect(&addr, "other.example", "po.example", lab_id, po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())));
    server.shutdown(T).await;
}
