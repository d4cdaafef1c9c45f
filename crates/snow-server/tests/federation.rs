//! Two sites, each with its own CA, federated over s2s on 127.0.0.1:
//! mutual TLS + SASL EXTERNAL (XEP-0178) in both directions.

mod support;

use std::time::Duration;

use snow_xml::NS_CLIENT;
use support::{body, error_condition, next_message, Site};

const T: Duration = Duration::from_secs(15);

#[tokio::test]
async fn users_of_two_sites_chat_across_the_link() {
    let mut po = Site::with_domain("po.example");
    let mut lab = Site::with_domain("lab.example");
    po.federate_with(&mut lab);
    let gp = po.add_user("1111111");
    let labuser = lab.add_user("5555555");
    let po_server = po.start().await;
    let lab_server = lab.start().await;

    let mut a = po.login(&po_server, "1111111").await.unwrap();
    let mut b = lab.login(&lab_server, "5555555").await.unwrap();
    a.send_presence().await.unwrap();
    b.send_presence().await.unwrap();

    a.send_chat(&labuser, "positive influensa A i 5401?").await.unwrap();
    let m = next_message(&mut b).await;
    assert_eq!(body(&m).as_deref(), Some("positive influensa A i 5401?"));
    assert_eq!(m.attr("from"), Some(a.jid()));
    b.send_chat(a.jid(), "ja, 12 denne uka").await.unwrap();
    let m = next_message(&mut a).await;
    assert_eq!(body(&m).as_deref(), Some("ja, 12 denne uka"));
    assert!(m.attr("from").unwrap().starts_with(&labuser));

    // A message to a lab user that does not exist comes back as an error.
    a.send_chat("7777777@lab.example", "hallo?").await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"), "{}", e.to_xml(NS_CLIENT));

    // An offline lab user gets it at the next login.
    b.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send_chat(&labuser, "lagret hos lab").await.unwrap();
    let _ = gp;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = lab.login(&lab_server, "5555555").await.unwrap();
    b.send_presence().await.unwrap();
    assert_eq!(body(&next_message(&mut b).await).as_deref(), Some("lagret hos lab"));

    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn unreachable_domains_and_restarts() {
    let mut po = Site::with_domain("po.example");
    let mut lab = Site::with_domain("lab.example");
    po.federate_with(&mut lab);
    po.s2s.routes.insert("gone.example".into(), format!("127.0.0.1:{}", support::free_port()));
    po.s2s.federate_with.push("gone.example".into());
    po.add_user("1111111");
    let labuser = lab.add_user("5555555");
    let po_server = po.start().await;
    let lab_server = lab.start().await;
    let mut a = po.login(&po_server, "1111111").await.unwrap();
    a.send_presence().await.unwrap();

    a.send_chat("x@gone.example", "er du der?").await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"));

    // The lab goes down: a message sent meanwhile is bounced, not lost silently.
    lab_server.shutdown(T).await;
    a.send_chat(&labuser, "mens lab er nede").await.unwrap();
    let e = next_message(&mut a).await;
    assert!(
        matches!(error_condition(&e).as_deref(), Some("remote-server-not-found" | "remote-server-timeout")),
        "{}",
        e.to_xml(NS_CLIENT)
    );
    // The lab comes back (same port): the link is re-established.
    let lab_server = lab.start().await;
    a.send_chat(&labuser, "etter omstart").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = lab.login(&lab_server, "5555555").await.unwrap();
    b.send_presence().await.unwrap();
    assert_eq!(body(&next_message(&mut b).await).as_deref(), Some("etter omstart"));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn an_untrusted_server_cannot_federate() {
    let mut po = Site::with_domain("po.example");
    let mut lab = Site::with_domain("lab.example");
    // The PO knows the route but trusts only its own CA.
    po.s2s.routes.insert("lab.example".into(), lab.s2s_addr());
    lab.s2s.routes.insert("po.example".into(), po.s2s_addr());
    po.s2s.federate_with.push("lab.example".into());
    lab.s2s.federate_with.push("po.example".into());
    lab.s2s.trusted_cas = vec![lab.paths.ca_cert(), po.paths.ca_cert()];
    po.add_user("1111111");
    let labuser = lab.add_user("5555555");
    let po_server = po.start().await;
    let lab_server = lab.start().await;
    let mut a = po.login(&po_server, "1111111").await.unwrap();
    a.send_chat(&labuser, "hei").await.unwrap();
    let e = next_message(&mut a).await;
    assert!(error_condition(&e).is_some(), "{}", e.to_xml(NS_CLIENT));
    // And the lab's link to the PO is refused at SASL by the PO.
    let mut b = lab.login(&lab_server, "5555555").await.unwrap();
    b.send_chat("1111111@po.example", "hei").await.unwrap();
    let e = next_message(&mut b).await;
    assert!(error_condition(&e).is_some(), "{}", e.to_xml(NS_CLIENT));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

/// Another site's user, over s2s, gets what every authenticated entity
/// gets (ping), but not this site's key directory, nor a key push (only
/// the configured master may push), nor another user's roster; and the
/// refused push changed nothing.
#[tokio::test]
async fn another_site_may_not_use_the_directory_push_keys_or_read_rosters() {
    use snow_client::{key_entries, key_lookup, NS_KEYS};
    use snow_xml::{Element, NS_PING, NS_ROSTER};

    let mut po = Site::with_domain("po.example");
    let mut lab = Site::with_domain("lab.example");
    po.federate_with(&mut lab);
    let gp = po.add_user("1111111");
    lab.add_user("5555555");
    let po_server = po.start().await;
    let lab_server = lab.start().await;
    let a = po.login(&po_server, "1111111").await.unwrap().into_session();
    let deadline = std::time::Instant::now() + T;
    while key_entries(&a.iq().request(key_lookup(&[&gp])).await.unwrap()).unwrap()[0].status != "valid" {
        assert!(std::time::Instant::now() < deadline, "the PO's directory never listed its own user");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let attacker = lab.login(&lab_server, "5555555").await.unwrap().into_session();
    let iq = |kind: &str, to: &str, payload: Element| {
        Element::new(NS_CLIENT, "iq").with_attr("type", kind).with_attr("to", to).with_child(payload)
    };
    let ping = attacker.iq().request(iq("get", "po.example", Element::new(NS_PING, "ping"))).await.unwrap();
    assert_eq!(ping.attr("type"), Some("result"), "the link works: {}", ping.to_xml(NS_CLIENT));

    let mut lookup = key_lookup(&[&gp]);
    lookup.set_attr("to", "po.example");
    let r = attacker.iq().request(lookup).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"), "{}", r.to_xml(NS_CLIENT));
    assert!(r.child(NS_KEYS, "query").is_none(), "no certificate leaked");

    let forged = Element::new(NS_KEYS, "update").with_child(
        Element::new(NS_KEYS, "item")
            .with_attr("seq", "999999")
            .with_attr("jid", gp.clone())
            .with_attr("status", "revoked")
            .with_attr("serial", "01")
            .with_child(Element::new(NS_KEYS, "certificate").with_text("AAAA")),
    );
    let r = attacker.iq().request(iq("set", "po.example", forged)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{}", r.to_xml(NS_CLIENT));
    let entries = key_entries(&a.iq().request(key_lookup(&[&gp])).await.unwrap()).unwrap();
    assert_eq!(entries[0].status, "valid", "the refused push changed the directory");

    let r = attacker.iq().request(iq("get", &gp, Element::new(NS_ROSTER, "query"))).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"), "{}", r.to_xml(NS_CLIENT));
    assert!(r.child(NS_ROSTER, "query").is_none());

    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}
