//! The c2s server on 127.0.0.1 over real TLS: certificate login, chat,
//! refusals, hostile input, slow readers, offline storage across restarts.

mod support;

use std::time::Duration;

use snow_client::ClientError;
use snow_xml::{Element, NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_VERSION};
use support::{body, error_condition, Site, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_users_log_in_with_certificates_and_chat() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let mut alice = site.login(&server, "1111111").await.unwrap();
    // Bob uses direct TLS (XEP-0368).
    let mut bob = snow_client::Client::connect(&site.options(&server, true), &site.identity("2222222")).await.unwrap();
    assert!(alice.jid().starts_with(&format!("{a}/")));
    assert!(bob.jid().starts_with(&format!("{b}/")));
    alice.send_presence().await.unwrap();
    bob.send_presence().await.unwrap();

    alice.send_chat(&b, "Influensa A: 12 positive i uke 47 — & <ok>").await.unwrap();
    let msg = loop {
        let el = bob.next_stanza(T).await.unwrap();
        if el.name() == "message" {
            break el;
        }
    };
    assert_eq!(body(&msg).as_deref(), Some("Influensa A: 12 positive i uke 47 — & <ok>"));
    assert_eq!(msg.attr("from"), Some(alice.jid()), "the server stamps the full JID of the sender");

    // A reply to the full JID.
    let alice_full = alice.jid().to_owned();
    bob.send_chat(&alice_full, "takk").await.unwrap();
    let reply = loop {
        let el = alice.next_stanza(T).await.unwrap();
        if el.name() == "message" {
            break el;
        }
    };
    assert_eq!(body(&reply).as_deref(), Some("takk"));
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    server.shutdown(T).await;
}

#[tokio::test]
async fn server_services_and_routing_errors() {
    let mut site = Site::new();
    site.add_user("1111111");
    // lab.example is routed to a closed port.
    site.s2s.routes.insert("lab.example".into(), format!("127.0.0.1:{}", support::free_port()));
    site.s2s.federate_with.push("lab.example".into());
    let server = site.start().await;
    let mut c = site.login(&server, "1111111").await.unwrap();

    // A message to nobody, to another domain, and to a malformed JID.
    c.send_chat("9999999@po.example", "hello?").await.unwrap();
    let e = c.next_stanza(T).await.unwrap();
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
    c.send_chat("someone@lab.example", "hello?").await.unwrap();
    let e = c.next_stanza(T).await.unwrap();
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"));
    c.send_raw("<message to='bad jid@x'><body>x</body></message>").await.unwrap();
    let e = c.next_stanza(T).await.unwrap();
    assert_eq!(error_condition(&e).as_deref(), Some("jid-malformed"));

    // The server's own services.
    let c = c.into_session();
    let iq = |payload: Element| {
        Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", DOMAIN).with_child(payload)
    };
    let r = c.iq().request(iq(Element::new(NS_PING, "ping"))).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let r = c.iq().request(iq(Element::new(NS_VERSION, "query"))).await.unwrap();
    assert_eq!(r.child(NS_VERSION, "query").unwrap().child(NS_VERSION, "name").unwrap().text(), "Snow");
    let r = c.iq().request(iq(Element::new(NS_DISCO_INFO, "query"))).await.unwrap();
    let q = r.child(NS_DISCO_INFO, "query").unwrap();
    assert!(q.children().any(|f| f.attr("var") == Some(NS_PING)));
    let r = c.iq().request(iq(Element::new("urn:example:unknown", "query"))).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
    server.shutdown(T).await;
}

#[tokio::test]
async fn revoked_and_foreign_certificates_are_refused() {
    let mut site = Site::new();
    site.add_user("1111111");
    site.add_user("3333333");
    site.revoke("3333333");
    let server = site.start().await;
    match site.login(&server, "3333333").await {
        Err(ClientError::AuthFailed { condition, text }) => {
            assert_eq!(condition, "not-authorized");
            assert_eq!(text.as_deref(), Some("your certificate has been revoked — contact the Snow administrator"));
        }
        other => panic!("revoked user got {:?}", other.map(|c| c.jid().to_owned())),
    }
    // Revocation while the server runs takes effect after a CRL reload.
    let ok = site.login(&server, "1111111").await.unwrap();
    ok.close().await.unwrap();
    site.revoke("1111111");
    server.reload_crl().unwrap();
    assert!(matches!(site.login(&server, "1111111").await, Err(ClientError::AuthFailed { .. })));

    // A user of another CA, even with the same domain in the certificate.
    let mut other = Site::new();
    other.add_user("4444444");
    let foreign = other.identity("4444444");
    let r = snow_client::Client::connect(&site.options(&server, false), &foreign).await;
    match r {
        Err(ClientError::AuthFailed { condition, text }) => {
            assert_eq!(condition, "not-authorized");
            assert!(text.is_some_and(|t| t.contains("not for this server")));
        }
        other => panic!("a foreign certificate got {:?}", other.map(|c| c.jid().to_owned())),
    }
    // A client whose key store trusts another CA: the refused server
    // certificate in words, not rustls' debug name.
    let mut opts = site.options(&server, false);
    opts.ca_der = other.ca.cert_der().to_vec();
    match snow_client::Client::connect(&opts, &foreign).await {
        Err(ClientError::Tls(text)) => {
            assert!(text.contains("the server's certificate was not issued by the CA in your key store"), "{text}");
            assert!(!text.contains("UnknownIssuer") && !text.contains("BadSignature"), "{text}");
        }
        other => panic!("a server of another CA was accepted: {:?}", other.map(|c| c.jid().to_owned())),
    }
    server.shutdown(T).await;
}

/// Opens a plaintext stream and returns everything the server answered to
/// `after_features`.
async fn plaintext_exchange(addr: std::net::SocketAddr, after_features: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = tokio::time::timeout(T, tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("<required/>"), "STARTTLS must be required");
    got.clear();
    tcp.write_all(after_features.as_bytes()).await.unwrap();
    loop {
        match tokio::time::timeout(T, tcp.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn plaintext_login_is_refused() {
    let mut site = Site::new();
    site.add_user("1111111");
    let server = site.start().await;
    let answer = plaintext_exchange(
        server.c2s_addr,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AHVzZXIAcGFzcw==</auth>",
    )
    .await;
    assert!(answer.contains("<encryption-required/>"), "{answer}");
    let answer = plaintext_exchange(server.c2s_addr, "<message to='1111111@po.example'><body>x</body></message>").await;
    assert!(answer.contains("<policy-violation"), "{answer}");
    server.shutdown(T).await;
}

async fn expect_stream_error(site: &Site, server: &snow_server::ServerHandle, payload: Vec<u8>, condition: &str) {
    let mut c = site.login(server, "1111111").await.unwrap();
    // Written in pieces: the server may close before it has read it all.
    for chunk in payload.chunks(64 * 1024) {
        if c.send_raw(std::str::from_utf8(chunk).unwrap()).await.is_err() {
            break;
        }
    }
    let got = loop {
        match c.next_stanza(T).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    match got {
        ClientError::StreamError { condition: c, .. } => assert_eq!(c, condition),
        other => panic!("expected <{condition}/>, got {other}"),
    }
}

#[tokio::test]
async fn hostile_xml_gets_a_stream_error_and_the_server_stays_healthy() {
    let mut site = Site::new();
    site.add_user("1111111");
    let server = site.start().await;
    let laughs = "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]><message><body>&lol1;</body></message>";
    expect_stream_error(&site, &server, laughs.as_bytes().to_vec(), "restricted-xml").await;
    let mut big = b"<message to='1111111@po.example'><body>".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    expect_stream_error(&site, &server, big, "policy-violation").await;
    expect_stream_error(&site, &server, "<a>".repeat(10_000).into_bytes(), "policy-violation").await;
    // Still serving.
    let c = site.login(&server, "1111111").await.unwrap().into_session();
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    let r = c.iq().request(ping).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_others_keep_working() {
    let mut site = Site::new();
    site.add_user("1111111");
    let sloth = site.add_user("2222222");
    site.add_user("3333333");
    site.settings.outbound_queue = 32;
    site.settings.stanza_rate = 100_000.0;
    site.settings.stanza_burst = 100_000.0;
    site.settings.account_stanza_rate = 100_000.0;
    site.settings.account_stanza_burst = 100_000.0;
    let server = site.start().await;
    let mut sender = site.login(&server, "1111111").await.unwrap();
    let mut slow = site.login(&server, "2222222").await.unwrap();
    slow.send_presence().await.unwrap();
    let other = site.login(&server, "3333333").await.unwrap().into_session();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The slow client never reads again. ~64 MiB is far beyond socket buffers.
    let text = "y".repeat(64 * 1024);
    let mut cut_off = false;
    for i in 0..1000 {
        sender.send_chat(&sloth, &text).await.unwrap();
        if i % 50 == 49 && server.open_connections() == 2 {
            cut_off = true;
            break;
        }
    }
    for _ in 0..100 {
        if server.open_connections() == 2 {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cut_off, "the slow reader is still connected ({} open)", server.open_connections());
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    let r = other.iq().request(ping).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    drop(slow);
    server.shutdown(T).await;
}

#[tokio::test]
async fn offline_messages_survive_a_restart_in_order_and_are_delivered_once() {
    let mut site = Site::new();
    site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let mut alice = site.login(&server, "1111111").await.unwrap();
    for i in 1..=3 {
        alice.send_chat(&b, &format!("offline {i}")).await.unwrap();
    }
    // A ping round trip: the messages were handled (and stored) before it.
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    let alice = alice.into_session();
    alice.iq().request(ping).await.unwrap();
    alice.close().await.unwrap();
    server.shutdown(T).await;

    let server = site.start().await;
    let mut bob = site.login(&server, "2222222").await.unwrap();
    bob.send_presence().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let el = bob.next_stanza(T).await.unwrap();
        if el.name() == "message" {
            assert!(el.child(snow_xml::NS_DELAY, "delay").is_some(), "offline messages carry a delay stamp");
            got.push(body(&el).unwrap());
        }
    }
    assert_eq!(got, ["offline 1", "offline 2", "offline 3"]);
    bob.close().await.unwrap();
    server.shutdown(T).await;

    let server = site.start().await;
    let mut bob = site.login(&server, "2222222").await.unwrap();
    bob.send_presence().await.unwrap();
    match bob.next_stanza(Duration::from_millis(700)).await {
        Err(ClientError::Framed(snow_xml::FramedError::Timeout(_))) => {}
        Ok(el) if el.name() == "presence" => {}
        other => panic!("delivered twice? {other:?}"),
    }
    server.shutdown(T).await;
}

#[tokio::test]
async fn presence_subscription_and_roster() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let mut alice = site.login(&server, "1111111").await.unwrap().into_session();
    let mut bob = site.login(&server, "2222222").await.unwrap().into_session();
    let roster_get = || {
        Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(snow_xml::NS_ROSTER, "query"))
    };
    alice.iq().request(roster_get()).await.unwrap();
    bob.iq().request(roster_get()).await.unwrap();
    alice.iq().send_presence().await.unwrap();
    bob.iq().send_presence().await.unwrap();

    alice
        .iq()
        .send(Element::new(NS_CLIENT, "presence").with_attr("to", b.clone()).with_attr("type", "subscribe"))
        .await
        .unwrap();
    let req = loop {
        let el = bob.next_stanza(T).await.unwrap();
        if el.name() == "presence" && el.attr("type") == Some("subscribe") {
            break el;
        }
    };
    assert_eq!(req.attr("from"), Some(a.as_str()));
    bob.iq()
        .send(Element::new(NS_CLIENT, "presence").with_attr("to", a.clone()).with_attr("type", "subscribed"))
        .await
        .unwrap();
    // Alice sees Bob's approval, a roster push with subscription 'to', and Bob's presence.
    let mut saw_push = false;
    let mut saw_presence = false;
    while !(saw_push && saw_presence) {
        let el = alice.next_stanza(T).await.unwrap();
        if el.name() == "iq" {
            if let Some(item) = el.child(snow_xml::NS_ROSTER, "query").and_then(|q| q.children().next()) {
                if item.attr("jid") == Some(b.as_str()) && item.attr("subscription") == Some("to") {
                    saw_push = true;
                }
            }
        }
        if el.name() == "presence" && el.attr("type").is_none() && el.attr("from").is_some_and(|f| f.starts_with(&b)) {
            saw_presence = true;
        }
    }
    let r = alice.iq().request(roster_get()).await.unwrap();
    let item = r.child(snow_xml::NS_ROSTER, "query").unwrap().children().next().unwrap().clone();
    assert_eq!(item.attr("subscription"), Some("to"));
    server.shutdown(T).await;
}

#[tokio::test]
async fn connection_limits_and_timeouts() {
    let mut site = Site::new();
    site.add_user("1111111");
    site.settings.max_connections_per_ip = 2;
    site.settings.idle_timeout_secs = 1;
    site.settings.negotiation_timeout_secs = 1;
    let server = site.start().await;
    let mut a = site.login(&server, "1111111").await.unwrap();
    // A second connection that never says anything.
    let mut silent = TcpStream::connect(server.c2s_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third from this address is refused outright.
    let r = site.login(&server, "1111111").await;
    assert!(r.is_err(), "a third connection from one IP was accepted");
    // The silent one is closed once negotiation times out.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, silent.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(n, 0, "the silent connection was not closed");
    // The logged-in one is closed after the idle timeout, with a stream error.
    match a.next_stanza(T).await {
        Err(ClientError::StreamError { condition, .. }) => assert_eq!(condition, "connection-timeout"),
        other => panic!("expected connection-timeout, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(site.login(&server, "1111111").await.is_ok(), "places are freed when connections end");
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_dropped() {
    let mut site = Site::new();
    site.add_user("1111111");
    site.settings.tls_handshake_timeout_secs = 1;
    let server = site.start().await;
    // Direct TLS port: connect and send nothing, not even a ClientHello.
    let mut tcp = TcpStream::connect(server.direct_tls_addr.unwrap()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, tcp.read(&mut buf)).await.expect("still open after the handshake timeout");
    assert_eq!(n.unwrap_or(0), 0);
    server.shutdown(T).await;
}
