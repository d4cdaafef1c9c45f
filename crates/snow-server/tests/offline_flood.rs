//! Offline storage under attack, over real TLS on 127.0.0.1: a store fuller
//! than the session's outbound queue must be delivered, not end the
//! recipient's session at every login (found in review: a permanent
//! lockout any sender could cause, directly or through pubsub).

mod support;

use std::time::Duration;

use snow_xml::{Element, NS_CLIENT, NS_PING};
use support::{Site, DOMAIN};

const T: Duration = Duration::from_secs(10);

/// An account whose offline store holds more messages than
/// `[server] outbound_queue` can never come online: its initial presence
/// makes the offline service queue every stored message into the session's
/// own outbound queue from the session's own task (nothing drains it
/// meanwhile), the queue overflows, `kill` fires, and the session ends
/// before a single byte is written. The rows stay, so the next login ends
/// the same way: a permanent lockout any sender can cause (a local user, a
/// component, or a remote server over s2s, which has no stanza rate).
#[tokio::test]
async fn a_full_offline_store_must_not_lock_the_recipient_out() {
    let mut site = Site::new();
    site.add_user("1111111");
    let victim = site.add_user("2222222");
    // Defaults kept (outbound_queue = 1000) except the attacker's stanza
    // rates, only so that the test does not take 16 s at 50/s, and the
    // per-sender offline quota (1000), which would refuse the last one.
    site.settings.stanza_rate = 100_000.0;
    site.settings.stanza_burst = 100_000.0;
    site.settings.account_stanza_rate = 100_000.0;
    site.settings.account_stanza_burst = 100_000.0;
    site.settings.offline_max_per_sender = 10_000;
    let queue = site.settings.outbound_queue;
    let server = site.start().await;

    // The victim has logged in once (so the account exists), then left.
    let v = site.login(&server, "2222222").await.unwrap();
    v.close().await.unwrap();

    // The attacker: queue + 1 tiny messages while the victim is offline.
    let mut attacker = site.login(&server, "1111111").await.unwrap();
    let n = queue + 1;
    for i in 0..n {
        attacker.send_raw(&format!("<message to='{victim}' type='normal' id='m{i}'/>")).await.unwrap();
    }
    // A ping round trip: everything before it has been stored.
    let attacker = attacker.into_session();
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", DOMAIN);
    attacker.iq().request(ping.with_child(Element::new(NS_PING, "ping"))).await.unwrap();

    // The victim logs in and announces presence, as every client and the
    // search agent do: every stored message arrives, in order, and the
    // session stays up; a second login finds the store empty.
    let mut v = site.login(&server, "2222222").await.unwrap();
    v.send_presence().await.unwrap();
    let mut ids = Vec::new();
    while ids.len() < n {
        match v.next_stanza(T).await {
            Ok(el) if el.name() == "message" => ids.push(el.attr("id").unwrap_or_default().to_owned()),
            Ok(_) => {}
            Err(e) => panic!("the recipient's session ended after {} of {n} messages: {e}", ids.len()),
        }
    }
    assert_eq!(ids, (0..n).map(|i| format!("m{i}")).collect::<Vec<_>>(), "in the order they were sent");
    let v = v.into_session();
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    assert_eq!(v.iq().request(ping).await.unwrap().attr("type"), Some("result"), "still connected");
    v.close().await.unwrap();
    let mut again = site.login(&server, "2222222").await.unwrap();
    again.send_presence().await.unwrap();
    let mut outcomes: Vec<String> = Vec::new();
    while let Ok(el) = again.next_stanza(Duration::from_secs(1)).await {
        if el.name() == "message" {
            outcomes.push(format!("delivered twice: {}", el.attr("id").unwrap_or_default()));
        }
    }
    assert!(outcomes.is_empty(), "{outcomes:#?}");
    server.shutdown(T).await;
}

const NODE: &str = "alerts/INFA/all";

/// The same lockout, amplified through pubsub: anyone (a GP, a component,
/// another site) may publish, and every publish stores one notification in
/// the offline store of every subscriber who is not online. ~1000
/// publishes lock every offline subscriber of the node out at once.
#[tokio::test]
async fn publishing_to_a_node_must_not_lock_its_offline_subscribers_out() {
    let mut site = Site::new();
    site.add_user("1111111");
    let victims: Vec<String> = ["2222222", "3333333"].iter().map(|h| site.add_user(h)).collect();
    site.settings.stanza_rate = 100_000.0;
    site.settings.stanza_burst = 100_000.0;
    site.settings.account_stanza_rate = 100_000.0;
    site.settings.account_stanza_burst = 100_000.0;
    site.settings.offline_max_per_sender = 10_000;
    let n = site.settings.outbound_queue + 1;
    // The publisher's rate ([pubsub] publish_burst) lifted too: the
    // lockout is about the store, whatever the rate.
    let mut config = snow_server::ServerConfig::for_home(
        &site.paths,
        DOMAIN.parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.pubsub.publish_burst = n as u32;
    let server = snow_server::Server::start(config).await.unwrap();
    for (h, jid) in ["2222222", "3333333"].iter().zip(&victims) {
        let v = site.login(&server, h).await.unwrap().into_session();
        let r = v.iq().request(snow_client::alert::subscribe_iq(DOMAIN, NODE, jid)).await.unwrap();
        assert_eq!(r.attr("type"), Some("result"));
        v.close().await.unwrap();
    }
    let attacker = site.login(&server, "1111111").await.unwrap().into_session();
    for i in 0..n {
        let alert = Element::new(snow_core::alert::NS_ALERT, "alert").with_attr(snow_core::alert::KIND_ATTR, "gp");
        let r = attacker.iq().request(snow_client::alert::publish_iq(DOMAIN, NODE, None, alert)).await;
        assert_eq!(r.unwrap().attr("type"), Some("result"), "publication {i}");
    }
    let mut outcomes = Vec::new();
    for h in ["2222222", "3333333"] {
        let mut v = site.login(&server, h).await.unwrap();
        v.send_presence().await.unwrap();
        let mut got = 0;
        let end = loop {
            match v.next_stanza(T).await {
                Ok(el) if el.name() == "message" => {
                    got += 1;
                    if got == n {
                        break None;
                    }
                }
                Ok(_) => {}
                Err(e) => break Some(e),
            }
        };
        outcomes.push(format!("{h}: {got} of {n} delivered, end: {end:?}"));
    }
    assert!(outcomes.iter().all(|o| o.contains("end: None")), "{outcomes:#?}");
    server.shutdown(T).await;
}
