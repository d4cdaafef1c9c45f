//! Signed chats over real sockets (issue 20): what the receiver's
//! `snow_client::open_chat` shows of a forged, replayed, misdirected or
//! revoked chat, or one signed by an impostor's certificate: the reason,
//! never the text.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use snow_client::signed::{self, Kind};
use snow_client::{Body, Client, Session};
use snow_crypto::Identity;
use snow_xml::{Element, Node, NS_CLIENT};
use support::Site;

const T: Duration = Duration::from_secs(20);
const GP1: &str = "1111111@po.example";
const GP2: &str = "2222222@po.example";
const GP3: &str = "3333333@po.example";

/// A chat to GP 2 signed by `signer` for `to`, encrypted to `readers`, as
/// another client than Snow's could write it.
fn chat(signer: &Identity, to: &[&str], readers: &[&[u8]], text: &str) -> Element {
    let now = snow_client::unix_now();
    let signed = signed::sign(Kind::Chat, vec![Node::Text(text.into())], to, None, signer, now).unwrap();
    let mut body = Element::new(NS_CLIENT, "body").with_child(signed);
    snow_crypto::e2e::encrypt_content(&mut body, NS_CLIENT, readers, Default::default()).unwrap();
    Element::new(NS_CLIENT, "message").with_attr("to", GP2).with_attr("type", "chat").with_child(body)
}

/// The next chat message the session receives.
async fn next_chat(s: &mut Session) -> Element {
    loop {
        let el = s.next_stanza(T).await.unwrap();
        if el.name() == "message" && el.attr("type") != Some("error") {
            return el;
        }
    }
}

fn unverified(body: Option<Body>) -> String {
    match body {
        Some(Body::Unverified(why)) => why,
        other => panic!("expected unverified, got {other:?}"),
    }
}

#[tokio::test]
async fn forged_replayed_misdirected_and_revoked_chats_are_dropped_with_their_reason() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    po.add_user("2222222");
    po.add_user("3333333");
    let old_gp1 = po.identity("1111111");
    let server = po.start().await;
    let ca = po.ca.cert_der().to_vec();
    let (gp1, gp2, gp3) = (po.identity("1111111"), po.identity("2222222"), po.identity("3333333"));
    let dir = tempfile::tempdir().unwrap();
    let cache_path = dir.path().join("chat-nonces");
    let nonces = Mutex::new(snow_client::open_chat_nonces(&cache_path).unwrap());

    let mut rx = po.login(&server, "2222222").await.unwrap().into_session();
    rx.iq().send_presence().await.unwrap();
    let mut a: Client = po.login(&server, "1111111").await.unwrap();
    let readers = [gp2.certificate(), gp1.certificate()];
    let rx_iq = rx.iq().clone();
    let open = |m: Element| {
        let iq = rx_iq.clone();
        let (gp2, ca, nonces) = (&gp2, &ca, &nonces);
        async move { snow_client::open_chat(&iq, &m, gp2, ca, nonces).await }
    };

    // A genuine chat first: shown with its signer.
    let genuine = chat(&gp1, &[GP2, GP1], &readers, "Hei kollega");
    a.send(&genuine).await.unwrap();
    let first = next_chat(&mut rx).await;
    assert_eq!(open(first.clone()).await, Some(Body::Verified { text: "Hei kollega".into(), signer: GP1.into() }));

    // (b) The same stanza again (captured, sent by GP 1's connection as a
    // server or a man in the middle would): a replay.
    let mut replay = Element::new(NS_CLIENT, "message").with_attr("to", GP2).with_attr("type", "chat");
    replay.push_child(first.child(NS_CLIENT, "body").unwrap().clone());
    a.send(&replay).await.unwrap();
    let why = unverified(open(next_chat(&mut rx).await).await);
    assert!(why.contains("received before"), "{why}");
    // Also after a restart of the receiver: the cache is on disk.
    let reopened = Mutex::new(snow_client::open_chat_nonces(&cache_path).unwrap());
    let why = unverified(snow_client::open_chat(rx.iq(), &first, &gp2, &ca, &reopened).await);
    assert!(why.contains("received before"), "{why}");
    drop(reopened);

    // (a) GP 3's valid signature, delivered as from GP 1 (a server that
    // rewrites the sender; here GP 1's connection carries it).
    a.send(&chat(&gp3, &[GP2, GP3], &readers, "forged: 12 positive")).await.unwrap();
    let why = unverified(open(next_chat(&mut rx).await).await);
    assert_eq!(why, format!("it was signed as {GP3}, but came from {GP1}"));
    // An encrypted chat with no signature (an older or foreign client).
    let mut body = Element::new(NS_CLIENT, "body").with_text("unsigned: 12 positive");
    snow_crypto::e2e::encrypt_content(&mut body, NS_CLIENT, &readers, Default::default()).unwrap();
    a.send(&Element::new(NS_CLIENT, "message").with_attr("to", GP2).with_attr("type", "chat").with_child(body))
        .await
        .unwrap();
    assert_eq!(unverified(open(next_chat(&mut rx).await).await), "it is not signed");

    // (c) Signed for GP 3 (and GP 1), encrypted to GP 2: not for us.
    a.send(&chat(&gp1, &[GP3, GP1], &readers, "for someone else")).await.unwrap();
    assert_eq!(unverified(open(next_chat(&mut rx).await).await), format!("it is not addressed to {GP2}"));

    // Right from, wrong key: another CA's certificate naming GP 1 signs;
    // the signature holds, the key directory lists another certificate.
    let evil_home = snow_core::SiteHome::new(dir.path().join("evil"));
    let pki = snow_pki::PkiSettings { ca_key_bits: 2048, ..Default::default() };
    let mut evil = snow_pki::Ca::init(&evil_home, &"po.example".parse().unwrap(), "another passphrase", &pki).unwrap();
    let issued = evil
        .add_user(&"1111111".parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap())
        .unwrap();
    let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
    let p12 = snow_crypto::pkcs12::read(&issued.p12, &snow_pki::outbox::password_of(&sms).unwrap(), "p12").unwrap();
    let impostor = Identity::new(p12.key_pkcs8, p12.chain).unwrap();
    a.send(&chat(&impostor, &[GP2, GP1], &readers, "impostor: 12 positive")).await.unwrap();
    let why = unverified(open(next_chat(&mut rx).await).await);
    assert_eq!(why, format!("the signer's certificate is not the one the key directory lists for {GP1}"));

    // Right from, wrong key: GP 1's key is replaced; a chat signed with
    // the old one is not what the directory lists for GP 1 now.
    po.rekey("1111111");
    let deadline = std::time::Instant::now() + T;
    // The server's directory learns of the new certificate shortly.
    while rx.iq().certificate_of(GP1, &ca).await.ok().as_deref() == Some(old_gp1.certificate()) {
        assert!(std::time::Instant::now() < deadline, "the directory still lists the old key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Logged in with the new key (the old session may have been closed).
    let mut a = po.login(&server, "1111111").await.unwrap();
    a.send(&chat(&old_gp1, &[GP2, GP1], &readers, "old key")).await.unwrap();
    let why = unverified(open(next_chat(&mut rx).await).await);
    assert!(
        why == format!("the signer's certificate is not the one the key directory lists for {GP1}")
            || why == format!("{GP1}'s certificate has been revoked"),
        "{why}"
    );

    // (d) A revoked signer: GP 3's chat arrives, GP 3 is revoked before it
    // is read; the directory says so and it is dropped.
    let mut c = po.login(&server, "3333333").await.unwrap();
    c.send(&chat(&gp3, &[GP2, GP3], &[gp2.certificate(), gp3.certificate()], "from a revoked key")).await.unwrap();
    let from_revoked = next_chat(&mut rx).await;
    po.revoke("3333333");
    let deadline = std::time::Instant::now() + T;
    while !matches!(rx.iq().certificate_of(GP3, &ca).await, Err(snow_client::ClientError::NoKey { status, .. }) if status == "revoked")
    {
        assert!(std::time::Instant::now() < deadline, "the directory never said revoked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unverified(open(from_revoked).await), format!("{GP3}'s certificate has been revoked"));
    server.shutdown(T).await;
}
