//! Signed payloads played as an attacker would: a forged author, a replay
//! (also after a restart), the wrong kind, someone else's message, an
//! answer to another request, a stale one — each dropped with its reason.

use snow_client::signed::{self, Expect, Kind, RequestRef, Unverified};
use snow_core::nonce_cache::NonceCache;
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_xml::{Element, Node};

struct Site {
    _dir: tempfile::TempDir,
    gp1: Identity,
    gp2: Identity,
    /// GP 3 of another CA, with GP 1's address in its certificate.
    impostor: Identity,
    nonces: std::path::PathBuf,
}

fn user(ca: &mut Ca, hpnr: &str) -> Identity {
    let issued =
        ca.add_user(&hpnr.parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap()).unwrap();
    let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
    let c = pkcs12::read(&issued.p12, &outbox::password_of(&sms).unwrap(), "p12").unwrap();
    Identity::new(c.key_pkcs8, c.chain).unwrap()
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    let home = snow_core::SiteHome::new(dir.path().join("po"));
    let mut ca = Ca::init(&home, &"po.example".parse().unwrap(), "an admin passphrase", &pki).unwrap();
    let other = snow_core::SiteHome::new(dir.path().join("evil"));
    let mut evil = Ca::init(&other, &"po.example".parse().unwrap(), "another passphrase", &pki).unwrap();
    let (gp1, gp2, impostor) = (user(&mut ca, "1111111"), user(&mut ca, "2222222"), user(&mut evil, "1111111"));
    Site { nonces: dir.path().join("nonces"), _dir: dir, gp1, gp2, impostor }
}

const GP1: &str = "1111111@po.example";
const GP2: &str = "2222222@po.example";
const NOW: i64 = 1_800_000_000;

fn text(t: &str) -> Vec<Node> {
    vec![Node::Text(t.into())]
}

fn cache(site: &Site) -> NonceCache {
    NonceCache::open(&site.nonces, Kind::Chat.max_age_secs(), 10_000, NOW).unwrap()
}

fn expect<'a>(kind: Kind, sender: &'a str, me: &'a str) -> Expect<'a> {
    Expect { kind, sender, me, answers: None }
}

#[test]
fn a_genuine_chat_opens_once_even_across_a_restart() {
    let s = site();
    let mut nonces = cache(&s);
    let el = signed::sign(Kind::Chat, text("Hei kollega"), &[GP2, GP1], None, &s.gp1, NOW).unwrap();
    // Over the wire (and through offline storage) it is text.
    let el = snow_xml::parse_document(el.to_xml("jabber:client").as_bytes(), Default::default()).unwrap();
    let opened =
        signed::open(&el, &expect(Kind::Chat, "1111111@po.example/laptop", GP2), &mut nonces, NOW + 5).unwrap();
    assert_eq!((opened.from.as_str(), opened.content.text().as_str()), (GP1, "Hei kollega"));
    assert_eq!(opened.signer_cert, s.gp1.certificate());
    let again = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW + 6);
    assert!(matches!(again, Err(Unverified::Replayed)), "{again:?}");
    drop(nonces);
    let mut nonces = cache(&s);
    let again = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW + 60);
    assert!(matches!(again, Err(Unverified::Replayed)), "after a restart: {again:?}");
    // Days later, from offline storage: still taken (another message).
    let late = signed::sign(Kind::Chat, text("fra i går"), &[GP2], None, &s.gp1, NOW).unwrap();
    signed::open(&late, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW + 3 * 24 * 3600).unwrap();
}

#[test]
fn forged_misdirected_and_stale_payloads_are_dropped_with_their_reason() {
    let s = site();
    let mut nonces = cache(&s);
    // GP 2 signs a chat and a server on the way says it came from GP 1.
    let el = signed::sign(Kind::Chat, text("fra GP 1?"), &[GP1], None, &s.gp2, NOW).unwrap();
    let r = signed::open(&el, &expect(Kind::Chat, GP1, GP1), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::NotFromSender { .. })), "{r:?}");
    // A key of another CA whose certificate carries GP 1's address: the
    // signature holds and the JID matches; the caller's directory check
    // (signer_cert is not the directory's certificate for GP 1) drops it.
    let el = signed::sign(Kind::Chat, text("jeg er GP 1"), &[GP2], None, &s.impostor, NOW).unwrap();
    let opened = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW).unwrap();
    assert_ne!(opened.signer_cert, s.gp1.certificate());
    // Content changed after signing.
    let mut el = signed::sign(Kind::Chat, text("original"), &[GP2], None, &s.gp1, NOW).unwrap();
    el.child_mut(signed::NS_SIGNED, "content").unwrap().nodes_mut()[0] = Node::Text("endret".into());
    let r = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::Signature(_))), "{r:?}");
    // A chat to GP 1 alone, passed on to GP 2.
    let el = signed::sign(Kind::Chat, text("bare til deg"), &[GP1], None, &s.gp1, NOW).unwrap();
    let r = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::NotForUs(_))), "{r:?}");
    // An alert signed by a GP where a lab's alert is expected (the lab's
    // detection agent as the expected signer).
    let el = signed::sign(Kind::Alert, text("utbrudd"), &[GP2], None, &s.gp1, NOW).unwrap();
    let r = signed::open(&el, &expect(Kind::Alert, "search@lab.example", GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::NotFromSender { .. })), "{r:?}");
    // A GP alert offered as a chat.
    let el = signed::sign(Kind::GpAlert, text("klynge"), &[GP2], None, &s.gp1, NOW).unwrap();
    let r = signed::open(&el, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::WrongKind { .. })), "{r:?}");
    // Too old, or from too far in the future.
    let old = signed::sign(Kind::Chat, text("gammel"), &[GP2], None, &s.gp1, NOW - 61 * 24 * 3600).unwrap();
    let r = signed::open(&old, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::Time(_))), "{r:?}");
    let ahead = signed::sign(Kind::Chat, text("fremtid"), &[GP2], None, &s.gp1, NOW + 3600).unwrap();
    let r = signed::open(&ahead, &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::Time(_))), "{r:?}");
    // Not signed at all.
    let r = signed::open(&Element::new(signed::NS_SIGNED, "signed"), &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(r.is_err());
    let r = signed::open(&Element::new("jabber:client", "body"), &expect(Kind::Chat, GP1, GP2), &mut nonces, NOW);
    assert!(matches!(r, Err(Unverified::NotSigned)), "{r:?}");
}

#[test]
fn an_answer_is_taken_only_for_the_request_it_names() {
    let s = site();
    let mut nonces = cache(&s);
    // GP 2 plays the lab's agent here: what matters is the binding.
    let query = Element::new("urn:snow:stats:1", "query").with_attr("analysis", "INFA");
    let request = signed::sign(Kind::SearchRequest, vec![Node::Element(query)], &[GP2], None, &s.gp1, NOW).unwrap();
    let mine = RequestRef { id: "q1".into(), digest: signed::digest(&request) };
    let at_agent = signed::open(&request, &expect(Kind::SearchRequest, GP1, GP2), &mut nonces, NOW).unwrap();
    assert_eq!(at_agent.digest, mine.digest);
    let answer = |r: &RequestRef| signed::sign(Kind::SearchAnswer, text("12"), &[GP1], Some(r), &s.gp2, NOW).unwrap();
    let e = Expect { answers: Some(&mine), ..expect(Kind::SearchAnswer, GP2, GP1) };
    signed::open(&answer(&mine), &e, &mut nonces, NOW).unwrap();
    // An answer to another request (another digest, or another id) is dropped.
    let other = RequestRef { id: "q1".into(), digest: "0".repeat(64) };
    assert!(matches!(signed::open(&answer(&other), &e, &mut nonces, NOW), Err(Unverified::WrongRequest)));
    let other = RequestRef { id: "q2".into(), digest: mine.digest.clone() };
    assert!(matches!(signed::open(&answer(&other), &e, &mut nonces, NOW), Err(Unverified::WrongRequest)));
    // A search answer older than ten minutes is stale.
    let stale = signed::sign(Kind::SearchAnswer, text("12"), &[GP1], Some(&mine), &s.gp2, NOW - 601).unwrap();
    assert!(matches!(signed::open(&stale, &e, &mut nonces, NOW), Err(Unverified::Time(_))));
}
