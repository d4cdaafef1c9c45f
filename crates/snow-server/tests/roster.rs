//! Contacts over real TLS through the client library (`IqClient::contacts`,
//! `add_contact`, `remove_contact`): a request waits as "pending in" in
//! the contact's roster and is delivered again at the next login, adding
//! each other is enough for both to see each other, removal stops
//! presence both ways at once, and the roster's size is limited.

mod support;

use std::time::Duration;

use snow_client::{ClientError, Contact, Session};
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const T: Duration = Duration::from_secs(10);

fn contact<'a>(all: &'a [Contact], jid: &str) -> &'a Contact {
    all.iter().find(|c| c.jid == jid).unwrap_or_else(|| panic!("{jid} not in {all:?}"))
}

/// The next presence from `from` (bare) of type `kind` (`None`: available).
async fn presence_from(s: &mut Session, from: &str, kind: Option<&str>) -> Element {
    loop {
        let el = s.next_stanza(T).await.unwrap_or_else(|e| panic!("no presence {kind:?} from {from}: {e}"));
        if el.name() == "presence" && el.attr("type") == kind && el.attr("from").is_some_and(|f| f.starts_with(from)) {
            return el;
        }
    }
}

/// Nothing but roster pushes and other noise arrives from `from` for a
/// while: no presence.
async fn no_presence_from(s: &mut Session, from: &str) {
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        if let Ok(el) = s.next_stanza(left).await {
            let bad = el.name() == "presence"
                && el.attr("type").is_none()
                && el.attr("from").is_some_and(|f| f.starts_with(from));
            assert!(!bad, "presence still arrives: {}", el.to_xml(NS_CLIENT));
        }
    }
}

#[tokio::test]
async fn adding_each_other_shares_presence_and_removing_stops_it() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let mut alice = site.login(&server, "1111111").await.unwrap().into_session();

    // Bob is offline: Alice's request waits for him.
    let added = alice.iq().add_contact(&b, Some("Dr Bob")).await.unwrap();
    assert!(added.asked && !added.approved && !added.was_contact);
    assert_eq!(added.contact.name.as_deref(), Some("Dr Bob"));
    assert!(added.contact.you_asked && !added.contact.you_see_them);

    let mut bob = site.login(&server, "2222222").await.unwrap().into_session();
    let pending = bob.iq().contacts().await.unwrap();
    let from_alice = contact(&pending, &a);
    assert!(from_alice.they_asked && !from_alice.you_asked && !from_alice.they_see_you, "{from_alice:?}");
    // At his initial presence the request is delivered (again, RFC 6121 §3.1.3).
    bob.iq().send_presence().await.unwrap();
    let req = presence_from(&mut bob, &a, Some("subscribe")).await;
    assert_eq!(req.attr("from"), Some(a.as_str()));
    alice.iq().send_presence().await.unwrap();

    // Bob adds Alice: her request is approved, his own is approved at once
    // (she asked him first), and each gets the other's presence.
    let added = bob.iq().add_contact(&a, None).await.unwrap();
    assert!(added.approved && added.asked && !added.was_contact, "her request made him no contact of hers");
    assert!(added.contact.you_see_them && added.contact.they_see_you && !added.contact.they_asked);
    presence_from(&mut bob, &a, None).await;
    presence_from(&mut alice, &b, None).await;
    let alice_view = alice.iq().contacts().await.unwrap();
    let bob_there = contact(&alice_view, &b);
    assert!(bob_there.you_see_them && bob_there.they_see_you && !bob_there.you_asked, "{bob_there:?}");

    // A presence change reaches the other side.
    alice
        .iq()
        .send(Element::new(NS_CLIENT, "presence").with_child(Element::new(NS_CLIENT, "show").with_text("away")))
        .await
        .unwrap();
    let away = presence_from(&mut bob, &a, None).await;
    assert_eq!(away.child(NS_CLIENT, "show").map(|s| s.text()).as_deref(), Some("away"));

    // Alice removes Bob: both stop seeing each other at once.
    assert!(alice.iq().remove_contact(&b).await.unwrap());
    presence_from(&mut bob, &a, Some("unavailable")).await;
    presence_from(&mut alice, &b, Some("unavailable")).await;
    assert!(alice.iq().contacts().await.unwrap().is_empty());
    let bob_view = bob.iq().contacts().await.unwrap();
    let alice_there = contact(&bob_view, &a);
    assert!(!alice_there.you_see_them && !alice_there.they_see_you && !alice_there.they_asked, "{alice_there:?}");
    alice.iq().send(Element::new(NS_CLIENT, "presence")).await.unwrap();
    no_presence_from(&mut bob, &a).await;
    assert!(!alice.iq().remove_contact(&b).await.unwrap(), "removed twice");
    server.shutdown(T).await;
}

#[tokio::test]
async fn cancelled_denied_and_refused_requests() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    let bob = site.login(&server, "2222222").await.unwrap().into_session();

    // Removing a contact whose request is only pending cancels it: Bob's
    // roster forgets Alice.
    alice.iq().add_contact(&b, None).await.unwrap();
    assert!(contact(&bob.iq().contacts().await.unwrap(), &a).they_asked);
    alice.iq().remove_contact(&b).await.unwrap();
    assert!(bob.iq().contacts().await.unwrap().is_empty());

    // Bob removes a request he does not want: Alice is told no.
    alice.iq().add_contact(&b, None).await.unwrap();
    bob.iq().remove_contact(&a).await.unwrap();
    let alice_view = alice.iq().contacts().await.unwrap();
    let bob_there = contact(&alice_view, &b);
    assert!(!bob_there.you_asked && !bob_there.you_see_them, "{bob_there:?}");

    // Unknown users, yourself, malformed JIDs.
    match alice.iq().add_contact("7777777@po.example", None).await {
        Err(e @ ClientError::NoKey { .. }) => {
            assert_eq!(e.to_string(), "no such user in the key directory: 7777777@po.example")
        }
        other => panic!("{other:?}"),
    }
    match alice.iq().add_contact(&a, None).await {
        Err(ClientError::Refused { condition, text, .. }) => {
            assert_eq!(condition, "not-allowed");
            assert_eq!(text.as_deref(), Some("you cannot be your own contact"));
        }
        other => panic!("{other:?}"),
    }
    let bad = alice.iq().request(snow_client::roster_set("bad jid@x", None, false)).await.unwrap();
    assert_eq!(support::error_condition(&bad).as_deref(), Some("bad-request"));
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_full_roster_is_refused_in_words() {
    let mut site = Site::new();
    site.add_user("1111111");
    let b = site.add_user("2222222");
    // 999 contacts already (written before the server starts), one more
    // by a roster set.
    {
        let db = snow_store::ServerDb::open(&snow_core::SiteHome::new(site.home()).server_db()).unwrap();
        for i in 1..1000 {
            let item = snow_store::RosterItem {
                contact: format!("{i:07}@elsewhere.example"),
                name: None,
                subscription: snow_store::Subscription::None,
                ask: false,
                groups: vec![],
            };
            db.put_roster_item("1111111@po.example", &item).unwrap();
        }
    }
    let server = site.start().await;
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    let r = alice.iq().request(snow_client::roster_set("0000000@elsewhere.example", None, false)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(alice.iq().contacts().await.unwrap().len(), 1000);
    match alice.iq().add_contact(&b, None).await {
        Err(ClientError::Refused { condition, text, .. }) => {
            assert_eq!(condition, "resource-constraint");
            assert_eq!(text.as_deref(), Some("your contact list is full (at most 1000 contacts)"));
        }
        other => panic!("{other:?}"),
    }
    // Renaming a contact already there still works.
    let r = alice.iq().request(snow_client::roster_set("0000007@elsewhere.example", Some("Dr Sju"), false)).await;
    assert_eq!(r.unwrap().attr("type"), Some("result"));
    server.shutdown(T).await;
}

/// Every stanza that arrives within `wait`.
async fn drain(s: &mut Session, wait: Duration) -> Vec<Element> {
    let until = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return out;
        }
        if let Ok(el) = s.next_stanza(left).await {
            out.push(el);
        }
    }
}

/// A request made while the contact was offline, then answered (the
/// contact adds the requester back) and the contact removed: nothing of it
/// shows later as a request waiting for an answer (RFC 6121 §3.1.3, §3.1.5:
/// the request is kept until answered, not after). The roster is its
/// record; no copy waits in offline storage to arrive late.
#[tokio::test]
async fn an_answered_request_never_arrives_late() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;

    // A asks while B is offline (short sessions, as the CLI's).
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    alice.iq().add_contact(&b, None).await.unwrap();
    alice.close().await.unwrap();
    // B adds A back without going online: both see each other.
    let bob = site.login(&server, "2222222").await.unwrap().into_session();
    let added = bob.iq().add_contact(&a, None).await.unwrap();
    assert!(added.contact.you_see_them && added.contact.they_see_you, "{added:?}");
    // B removes A.
    assert!(bob.iq().remove_contact(&a).await.unwrap());
    bob.close().await.unwrap();

    // B's next sessions go online: no request from A, now or later.
    for _ in 0..2 {
        let mut bob = site.login(&server, "2222222").await.unwrap().into_session();
        bob.iq().send_presence().await.unwrap();
        let got = drain(&mut bob, Duration::from_millis(800)).await;
        let phantom = got.iter().find(|el| {
            el.name() == "presence"
                && el.attr("type") == Some("subscribe")
                && el.attr("from").is_some_and(|f| f.starts_with(&a))
        });
        assert!(phantom.is_none(), "a request arrived after it was answered: {}", phantom.unwrap().to_xml(NS_CLIENT));
        assert!(bob.iq().contacts().await.unwrap().iter().all(|c| !c.they_asked));
        bob.close().await.unwrap();
    }

    // A request still unanswered is delivered at the contact's next
    // initial presence, once, from the roster.
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    alice.iq().remove_contact(&b).await.ok();
    alice.iq().add_contact(&b, None).await.unwrap();
    alice.close().await.unwrap();
    let mut bob = site.login(&server, "2222222").await.unwrap().into_session();
    bob.iq().send_presence().await.unwrap();
    let got = drain(&mut bob, Duration::from_millis(800)).await;
    let requests = got
        .iter()
        .filter(|el| {
            el.name() == "presence"
                && el.attr("type") == Some("subscribe")
                && el.attr("from").is_some_and(|f| f.starts_with(&a))
        })
        .count();
    assert_eq!(requests, 1, "the pending request, once");
    server.shutdown(T).await;
}

/// A contact whose certificate is revoked takes no stanzas, but removing
/// them still ends the subscriptions in both rosters: given a new
/// certificate later, they neither see the one who removed them nor are
/// listed as seen by them.
#[tokio::test]
async fn removing_a_revoked_contact_ends_the_subscription_both_ways() {
    let mut site = Site::new();
    let a = site.add_user("1111111");
    let b = site.add_user("2222222");
    let server = site.start().await;
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    let bob = site.login(&server, "2222222").await.unwrap().into_session();
    alice.iq().add_contact(&b, None).await.unwrap();
    let added = bob.iq().add_contact(&a, None).await.unwrap();
    assert!(added.contact.you_see_them && added.contact.they_see_you, "{added:?}");
    bob.close().await.unwrap();
    alice.close().await.unwrap();
    server.shutdown(T).await;

    // Bob is revoked; the server starts with its directory saying so.
    site.revoke("2222222");
    let server = site.start().await;
    let alice = site.login(&server, "1111111").await.unwrap().into_session();
    let reply = alice.iq().request(snow_client::key_lookup(&[&b])).await.unwrap();
    let entries = snow_client::key_entries(&reply).unwrap();
    assert!(entries.iter().any(|e| e.jid == b && e.status == "revoked"), "{entries:?}");
    assert!(alice.iq().remove_contact(&b).await.unwrap());
    alice.close().await.unwrap();
    server.shutdown(T).await;

    // Bob gets a new certificate.
    site.rekey("2222222");
    let server = site.start().await;
    let bob = site.login(&server, "2222222").await.unwrap().into_session();
    let view = bob.iq().contacts().await.unwrap();
    if let Some(alice_there) = view.iter().find(|c| c.jid == a) {
        assert!(!alice_there.you_see_them && !alice_there.they_see_you, "{alice_there:?}");
    }
    server.shutdown(T).await;
}
