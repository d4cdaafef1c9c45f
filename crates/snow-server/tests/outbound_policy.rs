//! What a logged-in user can make the server do towards others (issue 17
//! item 7 and part of item 2), played over real sockets by that user:
//! open s2s connections only to the federation's domains, read no
//! internal error text, forge no delay stamp, learn nothing from the
//! error about whether an account exists, and leave no message for a
//! revoked account.

mod support;

use std::time::Duration;

use snow_client::{key_entries, key_lookup, Client};
use snow_xml::{Element, NS_CLIENT, NS_DELAY, NS_PING, NS_STANZAS};
use support::{error_condition, next_message, Site, DOMAIN};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(15);

fn chat(to: &str, id: &str, text: &str) -> Element {
    Element::new(NS_CLIENT, "message")
        .with_attr("to", to.to_owned())
        .with_attr("type", "chat")
        .with_attr("id", id.to_owned())
        .with_child(Element::new(NS_CLIENT, "body").with_text(text.to_owned()))
}

fn ping(to: &str, id: &str) -> Element {
    Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", to.to_owned())
        .with_attr("id", id.to_owned())
        .with_child(Element::new(NS_PING, "ping"))
}

/// The `<error/>` of an error stanza, as XML.
fn error_xml(e: &Element) -> String {
    e.child(NS_CLIENT, "error").map(|x| x.to_xml(NS_CLIENT)).unwrap_or_default()
}

fn error_text(e: &Element) -> Option<String> {
    e.child(NS_CLIENT, "error").and_then(|x| x.child(NS_STANZAS, "text")).map(|t| t.text())
}

/// The next stanza that is not presence.
async fn next_reply(c: &mut Client) -> Element {
    loop {
        let el = c.next_stanza(T).await.unwrap();
        if el.name() != "presence" {
            return el;
        }
    }
}

/// Whether anything connects to `listener` within `wait`.
async fn connected_within(listener: &TcpListener, wait: Duration) -> bool {
    tokio::time::timeout(wait, listener.accept()).await.is_ok()
}

#[tokio::test]
async fn a_domain_outside_the_federation_is_refused_without_a_connection_attempt() {
    let mut site = Site::new();
    site.add_user("1111111");
    // evil.example has a route (a listener the test watches) but is not
    // listed; listed.example is listed and routed to a listener too.
    let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    site.s2s.routes.insert("evil.example".into(), evil.local_addr().unwrap().to_string());
    site.s2s.routes.insert("listed.example".into(), listed.local_addr().unwrap().to_string());
    site.s2s.federate_with.push("listed.example".into());
    let server = site.start().await;
    let mut a = site.login(&server, "1111111").await.unwrap();

    for (what, el) in [
        ("a message", chat("x@evil.example", "m1", "hei")),
        ("a message to a component-like subdomain", chat("search.evil.example", "m2", "hei")),
        ("an iq", ping("evil.example", "i1")),
    ] {
        let id = el.attr("id").unwrap().to_owned();
        a.send(&el).await.unwrap();
        let e = next_reply(&mut a).await;
        assert_eq!(e.attr("id"), Some(id.as_str()), "{what}");
        assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"), "{what}: {}", error_xml(&e));
        assert_eq!(error_text(&e).as_deref(), Some("this server does not federate with that domain"), "{what}");
    }
    // A subscription request and a directed presence: no error (presence
    // is not answered), and no connection either.
    a.send(&Element::new(NS_CLIENT, "presence").with_attr("to", "x@evil.example").with_attr("type", "subscribe"))
        .await
        .unwrap();
    a.send(&Element::new(NS_CLIENT, "presence").with_attr("to", "x@evil.example")).await.unwrap();
    assert!(!connected_within(&evil, Duration::from_millis(1500)).await, "the server connected to evil.example");

    // The same through a listed domain does reach its listener: the watch
    // above would have seen a connection.
    a.send(&chat("x@listed.example", "m3", "hei")).await.unwrap();
    assert!(connected_within(&listed, T).await, "no connection to a listed domain");
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_failed_link_bounces_the_condition_and_a_fixed_text_only() {
    let mut site = Site::new();
    site.add_user("1111111");
    // Listed, routed to a port nobody listens on.
    let closed = format!("127.0.0.1:{}", support::free_port());
    site.s2s.routes.insert("lab.example".into(), closed.clone());
    site.s2s.federate_with.push("lab.example".into());
    // Listed, routed to a listener that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    site.s2s.routes.insert("silent.example".into(), silent_addr.clone());
    site.s2s.federate_with.push("silent.example".into());
    site.s2s.connect_timeout_secs = 1;
    let server = site.start().await;
    let mut a = site.login(&server, "1111111").await.unwrap();

    a.send(&chat("x@lab.example", "m1", "hei")).await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"), "{}", error_xml(&e));
    assert_eq!(error_text(&e).as_deref(), Some("the remote server could not be reached"));
    let port = closed.rsplit(':').next().unwrap();
    assert!(!e.to_xml(NS_CLIENT).contains(port) && !e.to_xml(NS_CLIENT).contains("connect to"));

    a.send(&ping("lab.example", "i1")).await.unwrap();
    let e = next_reply(&mut a).await;
    assert_eq!((e.attr("id"), error_condition(&e).as_deref()), (Some("i1"), Some("remote-server-not-found")));
    assert_eq!(error_text(&e).as_deref(), Some("the remote server could not be reached"));

    let accept = tokio::spawn(async move {
        let (tcp, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tcp);
    });
    a.send(&chat("x@silent.example", "m2", "hei")).await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-timeout"), "{}", error_xml(&e));
    assert_eq!(error_text(&e).as_deref(), Some("the remote server did not answer in time"));
    assert!(!e.to_xml(NS_CLIENT).contains(silent_addr.rsplit(':').next().unwrap()));
    accept.abort();
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_client_cannot_set_the_delay_stamp() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    let carol = site.add_user("3333333");
    let server = site.start().await;
    site.login(&server, "3333333").await.unwrap().close().await.unwrap();
    let mut b = site.login(&server, "2222222").await.unwrap();
    b.send_presence().await.unwrap();
    let mut a = site.login(&server, "1111111").await.unwrap();
    let forged = |to: &str, id: &str| {
        chat(to, id, "sendt i går")
            .with_child(
                Element::new(NS_DELAY, "delay").with_attr("stamp", "2001-01-01T00:00:00Z").with_attr("from", DOMAIN),
            )
            .with_child(Element::new("jabber:x:delay", "x").with_attr("stamp", "20010101T00:00:00"))
    };

    // Online: delivered without any stamp.
    a.send(&forged(&bob, "online")).await.unwrap();
    let m = next_message(&mut b).await;
    assert_eq!(m.attr("id"), Some("online"));
    assert!(m.child(NS_DELAY, "delay").is_none() && m.child("jabber:x:delay", "x").is_none(), "{}", m.to_xml(""));

    // Offline: stored with the server's stamp only.
    a.send(&forged(&carol, "offline")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = site.login(&server, "3333333").await.unwrap();
    c.send_presence().await.unwrap();
    let m = next_message(&mut c).await;
    assert_eq!(m.attr("id"), Some("offline"));
    let stamps: Vec<&Element> = m.children().filter(|x| x.is(NS_DELAY, "delay")).collect();
    assert_eq!(stamps.len(), 1, "{}", m.to_xml(""));
    assert_ne!(stamps[0].attr("stamp"), Some("2001-01-01T00:00:00Z"));
    assert!(m.child("jabber:x:delay", "x").is_none());
    server.shutdown(T).await;
}

#[tokio::test]
async fn unknown_offline_and_revoked_accounts_get_the_same_answer_and_nothing_is_kept_for_a_revoked_one() {
    let mut site = Site::new();
    site.s2s.replication_interval_ms = 100;
    site.add_user("1111111");
    let offline = site.add_user("2222222");
    let revoked = site.add_user("3333333");
    let server = site.start().await;
    // Both have logged in once: accounts of this server.
    site.login(&server, "2222222").await.unwrap().close().await.unwrap();
    site.login(&server, "3333333").await.unwrap().close().await.unwrap();
    let mut a = site.login(&server, "1111111").await.unwrap();

    // An IQ to an unknown and to an offline account: the same error.
    let unknown = format!("7777777@{DOMAIN}");
    let mut errors = Vec::new();
    for (n, to) in [&unknown, &offline, &format!("{offline}/gone"), &format!("{unknown}/gone")].iter().enumerate() {
        a.send(&ping(to, &format!("iq{n}"))).await.unwrap();
        let e = next_reply(&mut a).await;
        assert_eq!(e.attr("id"), Some(format!("iq{n}").as_str()));
        errors.push(error_xml(&e));
    }
    assert!(errors[0].contains("service-unavailable") && errors.iter().all(|x| *x == errors[0]), "{errors:?}");
    // A headline to either: dropped, no answer. A ping after them is the
    // next thing the attacker hears.
    for to in [&unknown, &offline] {
        let mut h = chat(to, "headline", "nyhet");
        h.set_attr("type", "headline");
        a.send(&h).await.unwrap();
    }
    a.send(&ping(DOMAIN, "after-headlines")).await.unwrap();
    let r = next_reply(&mut a).await;
    assert_eq!(r.attr("id"), Some("after-headlines"), "{}", r.to_xml(NS_CLIENT));

    // Revoke 3333333; the server's key directory learns it from the CA.
    site.revoke("3333333");
    let s = site.login(&server, "1111111").await.unwrap().into_session();
    let deadline = std::time::Instant::now() + T;
    while key_entries(&s.iq().request(key_lookup(&[&revoked])).await.unwrap()).unwrap()[0].status != "revoked" {
        assert!(std::time::Instant::now() < deadline, "the directory never listed the revocation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A message to the revoked account, bare or full: refused, with the
    // error an unknown account gets.
    let mut answers = Vec::new();
    for (id, to) in [("u", unknown.clone()), ("r", revoked.clone()), ("rf", format!("{revoked}/cli"))] {
        a.send(&chat(&to, id, "til en tilbakekalt konto")).await.unwrap();
        let e = next_message(&mut a).await;
        assert_eq!(e.attr("id"), Some(id));
        answers.push(error_xml(&e));
    }
    assert!(answers[0].contains("service-unavailable") && answers.iter().all(|x| *x == answers[0]), "{answers:?}");
    // An IQ too.
    a.send(&ping(&revoked, "iq-revoked")).await.unwrap();
    let e = next_reply(&mut a).await;
    assert_eq!(error_xml(&e), errors[0]);

    // The user gets a new certificate and logs in: nothing from the time
    // of the revoked one is waiting, only what was sent since.
    site.rekey("3333333");
    let deadline = std::time::Instant::now() + T;
    while key_entries(&s.iq().request(key_lookup(&[&revoked])).await.unwrap()).unwrap()[0].status != "valid" {
        assert!(std::time::Instant::now() < deadline, "the directory never listed the new certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.send(&chat(&revoked, "after-rekey", "velkommen tilbake")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut r = site.login(&server, "3333333").await.unwrap();
    r.send_presence().await.unwrap();
    let m = next_message(&mut r).await;
    assert_eq!(m.attr("id"), Some("after-rekey"), "{}", m.to_xml(NS_CLIENT));
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_server_outside_the_federation_is_not_heard_even_with_a_certificate_of_our_ca() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    let lab_user = po.add_user_at("5555555", "lab.example");
    let rogue_user = po.add_user_at("6666666", "rogue.example");
    // lab.example is the PO's replica (listed); rogue.example has a server
    // certificate from the same CA and lists the PO, but the PO does not
    // list it.
    let lab = po.replica("lab.example");
    let (_rogue_dir, rogue_home) = po.replica_home("rogue.example", &[]);
    let mut rogue_s2s = snow_server::S2sSettings {
        bind: format!("127.0.0.1:{}", support::free_port()),
        federate_with: vec!["po.example".into()],
        ..snow_server::S2sSettings::default()
    };
    rogue_s2s.routes.insert("po.example".into(), po.s2s_addr());
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, "lab.example", lab.s2s.clone()).await;
    let rogue_server = po.start_replica(&rogue_home, "rogue.example", rogue_s2s).await;

    let mut gp = po.login(&po_server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    let gp_jid = gp.jid().to_owned();
    let mut r = po.login_at(&rogue_server, "rogue.example", "6666666").await.unwrap();
    r.send(&chat(&gp_jid, "from-rogue", "klikk her")).await.unwrap();
    let mut l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap();
    l.send(&chat(&gp_jid, "from-lab", "hei fra lab")).await.unwrap();
    // The lab's message arrives; the rogue's, sent first, never does.
    let m = next_message(&mut gp).await;
    assert_eq!((m.attr("id"), m.attr("from").map(|f| f.starts_with(&lab_user))), (Some("from-lab"), Some(true)));
    let more = tokio::time::timeout(Duration::from_millis(1500), next_message(&mut gp)).await;
    assert!(more.is_err(), "another message arrived: {:?}", more.map(|e| e.to_xml(NS_CLIENT)));
    let _ = rogue_user;
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
    rogue_server.shutdown(T).await;
}

#[tokio::test]
async fn outgoing_connection_attempts_are_capped() {
    let mut site = Site::new();
    site.add_user("1111111");
    // Two listed domains routed to listeners that accept and never answer:
    // with one attempt at a time, the second domain is not even connected
    // to while the first attempt waits for its timeout.
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
    for (domain, l) in [("one.example", &first), ("two.example", &second)] {
        site.s2s.routes.insert(domain.into(), l.local_addr().unwrap().to_string());
        site.s2s.federate_with.push(domain.into());
    }
    site.s2s.max_outbound_attempts = 1;
    site.s2s.connect_timeout_secs = 3;
    let server = site.start().await;
    let mut a = site.login(&server, "1111111").await.unwrap();

    a.send(&chat("x@one.example", "m1", "hei")).await.unwrap();
    let (_held, _) =
        tokio::time::timeout(T, first.accept()).await.expect("the first domain was never connected to").unwrap();
    a.send(&chat("x@two.example", "m2", "hei")).await.unwrap();
    assert!(
        !connected_within(&second, Duration::from_millis(1500)).await,
        "a second connection attempt ran while the only slot was taken"
    );
    // Once the first attempt has timed out, its slot goes to the second.
    assert!(connected_within(&second, Duration::from_secs(10)).await, "the second domain was never connected to");
    server.shutdown(T).await;
}
