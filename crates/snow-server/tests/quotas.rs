//! Quotas over real TLS on 127.0.0.1 (issue 19): past a quota the sender
//! gets `resource-constraint` with a readable text, nothing is kept, and
//! the server goes on serving everyone else. Offline storage per recipient
//! (messages and bytes), per sender to one recipient and below the disk
//! watermark; roster size; pubsub item size.

mod support;

use std::time::Duration;

use snow_xml::{Element, NS_CLIENT, NS_STANZAS};
use support::{body, error_condition, next_message, until_pong, Site, DOMAIN};

const T: Duration = Duration::from_secs(10);

/// The text of a stanza error.
fn error_text(el: &Element) -> String {
    el.child(NS_CLIENT, "error").and_then(|e| e.child(NS_STANZAS, "text")).map(Element::text).unwrap_or_default()
}

/// The errors among `stanzas`: (id, condition, text).
fn errors(stanzas: &[Element]) -> Vec<(String, String, String)> {
    stanzas
        .iter()
        .filter(|e| e.attr("type") == Some("error"))
        .map(|e| (e.attr("id").unwrap_or_default().to_owned(), error_condition(e).unwrap_or_default(), error_text(e)))
        .collect()
}

/// Logs `hpnr` in, takes what is stored for it, and returns the ids.
async fn stored_for(site: &Site, server: &snow_server::ServerHandle, hpnr: &str) -> Vec<String> {
    let mut c = site.login(server, hpnr).await.unwrap();
    c.send_presence().await.unwrap();
    let mut ids = Vec::new();
    while let Ok(el) = c.next_stanza(Duration::from_millis(700)).await {
        if el.name() == "message" {
            ids.push(el.attr("id").unwrap_or_default().to_owned());
        }
    }
    c.close().await.unwrap();
    ids
}

#[tokio::test]
async fn past_the_recipients_offline_quota_the_sender_gets_resource_constraint_and_nothing_is_kept() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    let carol = site.add_user("3333333");
    let dave = site.add_user("4444444");
    site.settings.offline_max_messages = 5;
    site.settings.offline_max_bytes = 32 * 1024;
    let server = site.start().await;
    for h in ["2222222", "4444444"] {
        site.login(&server, h).await.unwrap().close().await.unwrap();
    }
    let mut carol_c = site.login(&server, "3333333").await.unwrap();
    carol_c.send_presence().await.unwrap();
    let mut alice = site.login(&server, "1111111").await.unwrap();

    // Bob's count: 5 kept, the 6th and 7th refused.
    for i in 0..7 {
        alice
            .send_raw(&format!("<message to='{bob}' type='chat' id='b{i}'><body>m{i}</body></message>"))
            .await
            .unwrap();
    }
    // Dave's bytes: three 10 KB messages fit in 32 KiB, the fourth does not.
    let big = "x".repeat(10 * 1024);
    for i in 0..4 {
        alice
            .send_raw(&format!("<message to='{dave}' type='chat' id='d{i}'><body>{big}</body></message>"))
            .await
            .unwrap();
    }
    let refused = errors(&until_pong(&mut alice).await);
    let ids: Vec<&str> = refused.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["b5", "b6", "d3"], "{refused:#?}");
    for (_, condition, text) in &refused {
        assert_eq!(condition, "resource-constraint");
        assert!(text.contains("the recipient has too many messages waiting"), "{text}");
    }

    // Everyone else is still served: Carol (online) gets Alice's message.
    alice.send_chat(&carol, "still here").await.unwrap();
    assert_eq!(body(&next_message(&mut carol_c).await).as_deref(), Some("still here"));
    let stats = server.limit_stats();
    assert_eq!(stats.offline_recipient_full, 3, "{stats:?}");

    // Nothing past the quota was kept.
    assert_eq!(stored_for(&site, &server, "2222222").await, ["b0", "b1", "b2", "b3", "b4"]);
    assert_eq!(stored_for(&site, &server, "4444444").await, ["d0", "d1", "d2"]);
    // Delivered, so there is room again.
    alice.send_raw(&format!("<message to='{bob}' type='chat' id='again'><body>x</body></message>")).await.unwrap();
    assert!(errors(&until_pong(&mut alice).await).is_empty());
    server.shutdown(T).await;
}

#[tokio::test]
async fn one_sender_cannot_fill_a_recipients_offline_store() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    site.add_user("3333333");
    site.settings.offline_max_per_sender = 3;
    let server = site.start().await;
    site.login(&server, "2222222").await.unwrap().close().await.unwrap();
    let mut alice = site.login(&server, "1111111").await.unwrap();
    for i in 0..5 {
        alice.send_raw(&format!("<message to='{bob}' type='chat' id='a{i}'><body>{i}</body></message>")).await.unwrap();
    }
    let refused = errors(&until_pong(&mut alice).await);
    assert_eq!(refused.len(), 2, "{refused:#?}");
    for (id, condition, text) in &refused {
        assert!(id == "a3" || id == "a4");
        assert_eq!(condition, "resource-constraint");
        assert!(text.contains("you have too many messages waiting for this recipient"), "{text}");
    }
    // Another sender still reaches Bob.
    let mut carol = site.login(&server, "3333333").await.unwrap();
    carol.send_raw(&format!("<message to='{bob}' type='chat' id='c0'><body>hei</body></message>")).await.unwrap();
    assert!(errors(&until_pong(&mut carol).await).is_empty(), "Carol's message is kept");
    assert_eq!(server.limit_stats().offline_sender_full, 2);
    assert_eq!(stored_for(&site, &server, "2222222").await, ["a0", "a1", "a2", "c0"]);
    server.shutdown(T).await;
}

/// The disk watermark, played by asking for more free space than any test
/// machine has (100 TB): the free space is read with statvfs on the file
/// system of `server.db`.
#[tokio::test]
async fn below_the_disk_watermark_nothing_is_kept_offline_and_online_chat_goes_on() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    let carol = site.add_user("3333333");
    site.settings.offline_min_free_mb = 100_000_000;
    let server = site.start().await;
    site.login(&server, "2222222").await.unwrap().close().await.unwrap();
    let mut carol_c = site.login(&server, "3333333").await.unwrap();
    carol_c.send_presence().await.unwrap();
    let mut alice = site.login(&server, "1111111").await.unwrap();
    alice.send_raw(&format!("<message to='{bob}' type='chat' id='low'><body>x</body></message>")).await.unwrap();
    let refused = errors(&until_pong(&mut alice).await);
    assert_eq!(refused.len(), 1, "{refused:#?}");
    let (id, condition, text) = &refused[0];
    assert_eq!((id.as_str(), condition.as_str()), ("low", "resource-constraint"));
    assert!(text.contains("short of disk space"), "{text}");
    alice.send_chat(&carol, "online still works").await.unwrap();
    assert_eq!(body(&next_message(&mut carol_c).await).as_deref(), Some("online still works"));
    assert_eq!(server.limit_stats().offline_disk_low, 1);
    assert!(stored_for(&site, &server, "2222222").await.is_empty());
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_full_roster_refuses_additions_and_subscription_requests() {
    let mut site = Site::new();
    site.add_user("1111111");
    let contacts: Vec<String> = ["2222222", "3333333", "4444444", "5555555"].iter().map(|h| site.add_user(h)).collect();
    site.settings.max_roster_items = 2;
    let server = site.start().await;
    for h in ["2222222", "3333333", "4444444", "5555555"] {
        site.login(&server, h).await.unwrap().close().await.unwrap();
    }
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    for c in &contacts[..2] {
        let r = alice.iq().request(snow_client::roster_set(c, None, false)).await.unwrap();
        assert_eq!(r.attr("type"), Some("result"));
    }
    let r = alice.iq().request(snow_client::roster_set(&contacts[2], None, false)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("resource-constraint"));
    assert!(error_text(&r).contains("your contact list is full (at most 2 contacts)"), "{}", error_text(&r));
    // A renaming of a contact already there still works.
    let r = alice.iq().request(snow_client::roster_set(&contacts[0], Some("Bob"), false)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));

    // A subscription request would need a new item: refused the same way.
    let mut again = site.login(&server, "1111111").await.unwrap();
    again.send(&snow_client::subscription(&contacts[3], "subscribe")).await.unwrap();
    let got = until_pong(&mut again).await;
    let e = got.iter().find(|e| e.name() == "presence" && e.attr("type") == Some("error")).expect("a presence error");
    assert_eq!(error_condition(e).as_deref(), Some("resource-constraint"));
    assert!(error_text(e).contains("your contact list is full"));
    assert_eq!(server.limit_stats().roster_full, 2);
    let r = alice.iq().request(snow_client::roster_get()).await.unwrap();
    let n = r.child(snow_xml::NS_ROSTER, "query").map(|q| q.children().count());
    assert_eq!(n, Some(2), "nothing added");
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_pubsub_item_over_the_size_quota_is_refused_and_not_stored() {
    const NODE: &str = "alerts/INFA/all";
    let mut site = Site::new();
    let gp = site.add_user("1111111");
    let mut config = snow_server::ServerConfig::for_home(
        &site.paths,
        DOMAIN.parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.pubsub.max_item_bytes = 2048;
    let server = snow_server::Server::start(config).await.unwrap();
    let c = site.login(&server, "1111111").await.unwrap().into_session();
    let r = c.iq().request(snow_client::alert::subscribe_iq(DOMAIN, NODE, &gp)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let alert = |text: String| {
        Element::new(snow_core::alert::NS_ALERT, "alert")
            .with_attr(snow_core::alert::KIND_ATTR, "gp")
            .with_child(Element::new(snow_core::alert::NS_ALERT, "note").with_text(text))
    };
    let r = c.iq().request(snow_client::alert::publish_iq(DOMAIN, NODE, None, alert("x".repeat(4000)))).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("resource-constraint"), "{}", r.to_xml(NS_CLIENT));
    assert!(error_text(&r).contains("max_item_bytes"), "{}", error_text(&r));
    let err = r.child(NS_CLIENT, "error").unwrap();
    assert!(err.child("http://jabber.org/protocol/pubsub#errors", "payload-too-big").is_some());
    let r = c.iq().request(snow_client::alert::publish_iq(DOMAIN, NODE, None, alert("small".into()))).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    let r = c.iq().request(snow_client::alert::items_iq(DOMAIN, NODE, 10)).await.unwrap();
    let items = snow_client::alert::read_items(DOMAIN, &r).unwrap();
    assert_eq!(items.len(), 1, "only the small item is stored");
    assert_eq!(server.limit_stats().item_too_big, 1);
    server.shutdown(T).await;
}
