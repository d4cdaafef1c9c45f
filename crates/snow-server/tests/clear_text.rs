//! The clear-text policy (`[server] require_e2e`, issue 17 item 5), played
//! by a logged-in GP who tries to get clear text past it: every variant is
//! refused with `policy-violation` to a connected user's bare and full JID,
//! to an offline user (nothing stored), to another domain and to one of our
//! components; a message with only an EncryptedData, a chat state and a
//! receipt request passes.

mod support;

use std::time::Duration;

use snow_client::Client;
use snow_server::{Server, ServerConfig};
use snow_xml::{Element, NS_CLIENT, NS_STANZAS};
use support::{error_condition, next_message, Site, DOMAIN};

const T: Duration = Duration::from_secs(15);
const NS_XENC: &str = snow_crypto::e2e::NS_XENC;
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const NS_RECEIPTS: &str = "urn:xmpp:receipts";

/// A body encrypted for `recipients` (DER certificates), as a client sends it.
fn sealed_body(recipients: &[&[u8]]) -> Element {
    let mut body = Element::new(NS_CLIENT, "body").with_text("hemmelig: 12 positive");
    snow_crypto::e2e::encrypt_content(&mut body, NS_CLIENT, recipients, snow_crypto::e2e::KeyTransport::default())
        .unwrap();
    body
}

fn message(to: &str, kind: &str, id: &str) -> Element {
    Element::new(NS_CLIENT, "message")
        .with_attr("to", to.to_owned())
        .with_attr("type", kind.to_owned())
        .with_attr("id", id.to_owned())
}

/// Every way of slipping clear text past the policy, by name, addressed to `to`.
fn attacks(to: &str, sealed: &Element) -> Vec<(&'static str, Element)> {
    let clear = |t: &str| Element::new(NS_CLIENT, "body").with_text(t.to_owned());
    let enc = sealed.child(NS_XENC, "EncryptedData").unwrap().clone();
    let mut text_in_message = message(to, "chat", "text-in-message").with_child(sealed.clone());
    text_in_message.push_text("12 positive i 5401");
    let mut clear_beside = sealed.clone();
    clear_beside.push_text("12 positive i 5401");
    vec![
        (
            "a clear body next to an EncryptedData",
            message(to, "chat", "clear-beside").with_child(clear("12 positive")).with_child(enc.clone()),
        ),
        ("clear text inside the encrypted body", message(to, "chat", "clear-in-body").with_child(clear_beside)),
        ("a headline", message(to, "headline", "headline").with_child(clear("utbrudd i 5401"))),
        ("a normal message", message(to, "normal", "normal").with_child(clear("utbrudd i 5401"))),
        ("a groupchat message", message(to, "groupchat", "groupchat").with_child(clear("utbrudd i 5401"))),
        (
            "a subject",
            message(to, "chat", "subject")
                .with_child(Element::new(NS_CLIENT, "subject").with_text("INFA 5401: 12 positive"))
                .with_child(sealed.clone()),
        ),
        (
            "thread text",
            message(to, "chat", "thread")
                .with_child(Element::new(NS_CLIENT, "thread").with_text("pasient 12345678901"))
                .with_child(sealed.clone()),
        ),
        (
            "an EncryptedData in another namespace",
            message(to, "chat", "other-ns").with_child(
                Element::new(NS_CLIENT, "body")
                    .with_child(Element::new("urn:example:fake", "EncryptedData").with_text("12 positive")),
            ),
        ),
        (
            "an EncryptedData holding clear text",
            message(to, "chat", "xenc-clear").with_child(
                Element::new(NS_CLIENT, "body")
                    .with_child(Element::new(NS_XENC, "EncryptedData").with_text("12 positive")),
            ),
        ),
        (
            "XHTML-IM",
            message(to, "chat", "xhtml").with_child(sealed.clone()).with_child(
                Element::new("http://jabber.org/protocol/xhtml-im", "html").with_child(
                    Element::new("http://www.w3.org/1999/xhtml", "body")
                        .with_child(Element::new("http://www.w3.org/1999/xhtml", "p").with_text("12 positive")),
                ),
            ),
        ),
        (
            "out-of-band data",
            message(to, "chat", "oob").with_child(sealed.clone()).with_child(
                Element::new("jabber:x:oob", "x")
                    .with_child(Element::new("jabber:x:oob", "url").with_text("https://example.org/12-positive")),
            ),
        ),
        (
            "an unknown element",
            message(to, "chat", "unknown")
                .with_child(sealed.clone())
                .with_child(Element::new("urn:example:private", "note").with_text("12 positive")),
        ),
        ("text directly in the message", text_in_message),
    ]
}

/// Sends every attack to `to` and checks each is answered with
/// `policy-violation` (in order: the server answers in order).
async fn all_refused(attacker: &mut Client, to: &str, sealed: &Element) {
    for (what, el) in attacks(to, sealed) {
        let id = el.attr("id").unwrap().to_owned();
        attacker.send(&el).await.unwrap();
        let e = next_message(attacker).await;
        assert_eq!(e.attr("type"), Some("error"), "{what} to {to}: {}", e.to_xml(NS_CLIENT));
        assert_eq!(e.attr("id"), Some(id.as_str()), "{what} to {to}: {}", e.to_xml(NS_CLIENT));
        assert_eq!(error_condition(&e).as_deref(), Some("policy-violation"), "{what} to {to}: {}", e.to_xml(NS_CLIENT));
    }
    // An error message is never answered, but it is not let through either.
    let error = message(to, "error", "error-with-body")
        .with_child(Element::new(NS_CLIENT, "body").with_text("12 positive i 5401"))
        .with_child(
            Element::new(NS_CLIENT, "error")
                .with_attr("type", "cancel")
                .with_child(Element::new(NS_STANZAS, "service-unavailable")),
        );
    attacker.send(&error).await.unwrap();
    let mut error_text = message(to, "error", "error-with-text").with_child(
        Element::new(NS_CLIENT, "error")
            .with_attr("type", "cancel")
            .with_child(Element::new(NS_STANZAS, "undefined-condition"))
            .with_child(Element::new(NS_STANZAS, "text").with_text("pasient 12345678901 er positiv")),
    );
    error_text.set_attr("id", "error-with-text");
    attacker.send(&error_text).await.unwrap();
}

/// What a receiver gets first must be the one message that passes: any
/// attack that got through would come before it.
async fn first_is_the_allowed_one(receiver: &mut Client, id: &str) {
    loop {
        let m = next_message(receiver).await;
        // An error message whose text was stripped may pass; its text may not.
        if m.attr("id") == Some("error-with-text") {
            let xml = m.to_xml(NS_CLIENT);
            assert!(!xml.contains("12345678901"), "error text passed: {xml}");
            assert_eq!(error_condition(&m).as_deref(), Some("undefined-condition"), "{xml}");
            continue;
        }
        assert_eq!(m.attr("id"), Some(id), "something else came first: {}", m.to_xml(NS_CLIENT));
        assert!(m.child(NS_CHATSTATES, "active").is_some() && m.child(NS_RECEIPTS, "request").is_some());
        assert!(!m.to_xml(NS_CLIENT).contains("hemmelig"));
        return;
    }
}

fn allowed(to: &str, sealed: &Element, id: &str) -> Element {
    message(to, "chat", id)
        .with_child(sealed.clone())
        .with_child(Element::new(NS_CHATSTATES, "active"))
        .with_child(Element::new(NS_RECEIPTS, "request"))
}

#[tokio::test]
async fn every_clear_text_variant_is_refused_to_bare_full_offline_remote_and_component_addresses() {
    let mut site = Site::new();
    site.settings.require_e2e = true;
    site.settings.component_bind = "127.0.0.1:0".into();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    let carol = site.add_user("3333333");
    // A component of ours (not connected) and a federated domain (not up).
    site.s2s.routes.insert("lab.example".into(), format!("127.0.0.1:{}", support::free_port()));
    site.s2s.federate_with.push("lab.example".into());
    let mut config =
        ServerConfig::for_home(&site.paths, DOMAIN.parse().unwrap(), site.settings.clone(), site.s2s.clone());
    config.components.push(support::component(
        &site.home(),
        &format!("echo.{DOMAIN}"),
        "a component secret of some length",
    ));
    let server = Server::start(config).await.unwrap();

    // Carol has logged in once (an account), and is offline now.
    site.login(&server, "3333333").await.unwrap().close().await.unwrap();
    let mut b = site.login(&server, "2222222").await.unwrap();
    b.send_presence().await.unwrap();
    let bob_full = b.jid().to_owned();
    let mut attacker = site.login(&server, "1111111").await.unwrap();

    let certs = [site.identity("2222222"), site.identity("3333333"), site.identity("1111111")];
    let sealed = sealed_body(&[certs[0].certificate(), certs[1].certificate(), certs[2].certificate()]);
    for to in [bob.as_str(), bob_full.as_str(), carol.as_str(), "5555555@lab.example", "echo.po.example"] {
        all_refused(&mut attacker, to, &sealed).await;
    }

    // Only an EncryptedData, a chat state and a receipt request: delivered,
    // to the bare and the full JID, and kept for the offline user.
    attacker.send(&allowed(&bob, &sealed, "ok-bare")).await.unwrap();
    first_is_the_allowed_one(&mut b, "ok-bare").await;
    attacker.send(&allowed(&bob_full, &sealed, "ok-full")).await.unwrap();
    first_is_the_allowed_one(&mut b, "ok-full").await;
    attacker.send(&allowed(&carol, &sealed, "ok-offline")).await.unwrap();
    // Nothing came back to the attacker but the refusals already read.
    let ping = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("id", "ping-after")
        .with_attr("to", DOMAIN)
        .with_child(Element::new(snow_xml::NS_PING, "ping"));
    attacker.send(&ping).await.unwrap();
    let r = attacker.next_stanza(T).await.unwrap();
    assert_eq!(r.attr("id"), Some("ping-after"), "{}", r.to_xml(NS_CLIENT));

    let mut c = site.login(&server, "3333333").await.unwrap();
    c.send_presence().await.unwrap();
    first_is_the_allowed_one(&mut c, "ok-offline").await;
    server.shutdown(T).await;
}

#[tokio::test]
async fn without_require_e2e_clear_text_still_flows() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    let server = site.start().await;
    let mut b = site.login(&server, "2222222").await.unwrap();
    b.send_presence().await.unwrap();
    let mut a = site.login(&server, "1111111").await.unwrap();
    a.send(
        &message(&bob, "chat", "plain")
            .with_child(Element::new(NS_CLIENT, "subject").with_text("emne"))
            .with_child(Element::new(NS_CLIENT, "body").with_text("klartekst")),
    )
    .await
    .unwrap();
    let m = next_message(&mut b).await;
    assert_eq!(support::body(&m).as_deref(), Some("klartekst"));
    server.shutdown(T).await;
}
