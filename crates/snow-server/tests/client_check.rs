//! The client check (`[server] client_check`, issue 18 item 6), over real
//! sockets: a client that does not announce the Snow client (XEP-0115 caps
//! node `urn:snow:client`) is refused with `policy-violation` and a text
//! naming the Snow client under `require`, once it talks to anyone but the
//! server; the Snow client (`snow_client`, which announces itself at login)
//! works; under `warn` and `off` both work. A convenience check, not a
//! security boundary: a client that sends the Snow caps itself passes.

mod attacker;
mod support;

use std::time::Duration;

use snow_client::caps::{self, DiscoInfo};
use snow_server::ClientCheck;
use snow_xml::{Element, NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_ROSTER, NS_VERSION};
use support::{body, error_condition, next_message, Site, DOMAIN};

const T: Duration = Duration::from_secs(15);
/// The refusal's text, as users read it.
const REFUSAL: &str = "this server accepts only the Snow client (snow app, or the snow command)";

type Raw = attacker::Link;

/// The next stanza named `name` on a raw link (others are skipped).
async fn next_named(raw: &mut Raw, name: &str) -> Element {
    loop {
        let el = raw.next_element(T).await.unwrap();
        if el.name() == name {
            return el;
        }
    }
}

async fn send(raw: &mut Raw, el: &Element) {
    raw.send(&el.to_xml(NS_CLIENT)).await.unwrap();
}

fn iq_get(id: &'static str, to: Option<&str>, payload: Element) -> Element {
    let mut iq = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("id", id).with_child(payload);
    if let Some(t) = to {
        iq.set_attr("to", t);
    }
    iq
}

fn chat(to: &str, id: &'static str, text: &str) -> Element {
    snow_client::chat_message(to, text).with_attr("id", id)
}

fn presence_with_caps(to: Option<&str>, node: &str) -> Element {
    let c = Element::new(caps::NS_CAPS, "c")
        .with_attr("hash", "sha-1")
        .with_attr("node", node.to_owned())
        .with_attr("ver", "forged=");
    let mut p = Element::new(NS_CLIENT, "presence").with_attr("id", "caps").with_child(c);
    if let Some(t) = to {
        p.set_attr("to", t);
    }
    p
}

/// A ping round trip for a `snow_client::Client`: everything routed to it
/// before has arrived when this returns; returns what came first.
async fn drain(c: &mut snow_client::Client) -> Vec<Element> {
    c.send(&iq_get("drain", None, Element::new(NS_PING, "ping"))).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let el = c.next_stanza(T).await.unwrap();
        if el.name() == "iq" && el.attr("id") == Some("drain") {
            return seen;
        }
        seen.push(el);
    }
}

/// What the site's users need: the receiver (2222222, a Snow client,
/// available), the raw client (1111111), another Snow client (3333333).
async fn site(mode: ClientCheck) -> (Site, snow_server::ServerHandle, snow_client::Client, Raw, String) {
    let mut site = Site::new();
    site.settings.client_check = mode;
    for u in ["1111111", "2222222", "3333333"] {
        site.add_user(u);
    }
    let server = site.start().await;
    let mut bob = site.login(&server, "2222222").await.unwrap();
    bob.send_presence().await.unwrap();
    drain(&mut bob).await;
    let (raw, raw_jid) =
        attacker::c2s(server.c2s_addr, DOMAIN, &site.identity("1111111"), site.ca.cert_der()).await.unwrap();
    (site, server, bob, raw, raw_jid)
}

#[tokio::test]
async fn require_refuses_a_client_that_does_not_announce_the_snow_client_and_the_snow_client_works() {
    let (site, server, mut bob, mut raw, _) = site(ClientCheck::Require).await;
    let bob_jid = bob.jid().to_owned();
    let bob_bare = "2222222@po.example";

    // What is for the server itself passes: ping, roster, the server's
    // disco#info, a presence to the server without caps.
    send(&mut raw, &Element::new(NS_CLIENT, "presence").with_attr("to", DOMAIN)).await;
    for iq in [
        iq_get("ping", None, Element::new(NS_PING, "ping")),
        iq_get("roster", None, Element::new(NS_ROSTER, "query")),
        iq_get("disco", Some(DOMAIN), Element::new(NS_DISCO_INFO, "query")),
    ] {
        send(&mut raw, &iq).await;
        let answer = next_named(&mut raw, "iq").await;
        assert_eq!(
            (answer.attr("id"), answer.attr("type")),
            (iq.attr("id"), Some("result")),
            "{}",
            answer.to_xml(NS_CLIENT)
        );
    }

    // Anything for someone else, and a broadcast presence without the
    // Snow caps (or with another client's): policy-violation, with the text.
    let refused = [
        chat(bob_bare, "m1", "from a client that is not Snow"),
        chat(&bob_jid, "m2", "to the full JID"),
        iq_get("v1", Some(&bob_jid), Element::new(NS_VERSION, "query")),
        Element::new(NS_CLIENT, "presence").with_attr("id", "p1"),
        presence_with_caps(None, "https://conversations.im"),
        // The Snow caps to someone else is no announcement either.
        presence_with_caps(Some(bob_bare), caps::NODE),
        Element::new(NS_CLIENT, "presence").with_attr("to", bob_bare).with_attr("type", "subscribe"),
    ];
    for el in &refused {
        send(&mut raw, el).await;
        let err = next_named(&mut raw, el.name()).await;
        let xml = err.to_xml(NS_CLIENT);
        assert_eq!(err.attr("type"), Some("error"), "{xml}");
        assert_eq!(err.attr("id"), el.attr("id"), "{xml}");
        assert_eq!(error_condition(&err).as_deref(), Some("policy-violation"), "{xml}");
        assert_eq!(snow_xml::stanza::error_of(&err).1.as_deref(), Some(REFUSAL), "{xml}");
    }
    // Nothing of it reached Bob.
    let seen = drain(&mut bob).await;
    assert!(seen.iter().all(|el| !el.attr("from").unwrap_or("").starts_with("1111111@")), "{seen:?}");

    // The Snow client logs in (and so announces itself): its chat is
    // delivered, and it answers disco#info about the caps it announced.
    let mut c = site.login(&server, "3333333").await.unwrap();
    c.send_presence().await.unwrap();
    c.send_chat(bob_bare, "from the Snow client").await.unwrap();
    assert_eq!(body(&next_message(&mut bob).await).as_deref(), Some("from the Snow client"));
    let c_jid = c.jid().to_owned();
    let mut c = c.into_session();
    let ask = Element::new(NS_DISCO_INFO, "query").with_attr("node", caps::caps_node());
    bob.send(&iq_get("caps", Some(&c_jid), ask)).await.unwrap();
    let answer = loop {
        let el = bob.next_stanza(T).await.unwrap();
        if el.attr("id") == Some("caps") {
            break el;
        }
    };
    assert_eq!(answer.attr("type"), Some("result"), "{}", answer.to_xml(NS_CLIENT));
    let q = answer.child(NS_DISCO_INFO, "query").unwrap();
    assert_eq!(q.attr("node").map(str::to_owned), Some(caps::caps_node()));
    assert_eq!(DiscoInfo::from_query(q).ver(), caps::ver(), "the answer hashes to the announced ver");
    // A request the client does not know is left to its owner (who
    // answers it, or not), not swallowed by the disco answer.
    bob.send(&iq_get("v2", Some(&c_jid), Element::new(NS_VERSION, "query"))).await.unwrap();
    let unknown = c.next_stanza(T).await.unwrap();
    assert_eq!((unknown.name(), unknown.attr("id")), ("iq", Some("v2")));

    // Not a security boundary: a client that sends the Snow caps itself,
    // to the server, passes from then on.
    send(&mut raw, &presence_with_caps(Some(DOMAIN), caps::NODE)).await;
    send(&mut raw, &chat(bob_bare, "m3", "with borrowed caps")).await;
    assert_eq!(body(&next_message(&mut bob).await).as_deref(), Some("with borrowed caps"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn warn_and_off_let_a_client_that_does_not_announce_the_snow_client_talk() {
    for mode in [ClientCheck::Warn, ClientCheck::Off] {
        let (site, server, mut bob, mut raw, raw_jid) = site(mode).await;
        let bob_jid = bob.jid().to_owned();
        send(&mut raw, &Element::new(NS_CLIENT, "presence")).await;
        send(&mut raw, &chat("2222222@po.example", "m1", "from a client that is not Snow")).await;
        let m = next_message(&mut bob).await;
        assert_eq!(body(&m).as_deref(), Some("from a client that is not Snow"), "{mode:?}");
        assert_eq!(m.attr("from"), Some(raw_jid.as_str()));
        send(&mut raw, &iq_get("v1", Some(&bob_jid), Element::new(NS_VERSION, "query"))).await;
        let iq = loop {
            let el = bob.next_stanza(T).await.unwrap();
            if el.name() == "iq" {
                break el;
            }
        };
        assert_eq!((iq.attr("id"), iq.attr("from")), (Some("v1"), Some(raw_jid.as_str())), "{mode:?}");
        // No refusal came back to the raw client.
        send(&mut raw, &iq_get("ping", None, Element::new(NS_PING, "ping"))).await;
        loop {
            let el = raw.next_element(T).await.unwrap();
            assert_ne!(el.attr("type"), Some("error"), "{mode:?}: {}", el.to_xml(NS_CLIENT));
            if el.attr("id") == Some("ping") {
                break;
            }
        }
        // And the Snow client, of course.
        let mut c = site.login(&server, "3333333").await.unwrap();
        c.send_chat("2222222@po.example", "from the Snow client").await.unwrap();
        assert_eq!(body(&next_message(&mut bob).await).as_deref(), Some("from the Snow client"), "{mode:?}");
    }
}
