//! Issue 17 item 6 over real sockets, played by the attacker:
//!
//! - the search agent refuses a request with 200 EncryptedKeys before any
//!   RSA operation, and never tries an EncryptedKey that names another
//!   certificate;
//! - a search answer counts only from the agent asked, not from anyone who
//!   learned the request's id;
//! - (issue 20) the agent answers only a fresh search signed by the asker
//!   for it, and the GP takes only the answer signed by the agent for its
//!   very request;
//! - a client refuses to encrypt to what a hostile key directory vouches
//!   for (a fake lab server on a real socket, the agent attached to it as a
//!   component): a revoked, expired, other CA's or wrong-usage
//!   certificate, a serial the directory misstates, another user's
//!   certificate, and any certificate when the CRL that comes with the
//!   answer is missing, stale or not the CA's.

mod lab_federation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab_federation::support::Site;
use lab_federation::{agent_identity, first_answer, log_in_gps, sites, start_servers, Federation, AGENT};
use snow_agents::component::{ComponentLink, ComponentOptions};
use snow_client::signed;
use snow_client::stats::{answer_element, search_request, NS_STATS};
use snow_client::{Client, ClientError, Origin, Session, NS_KEYS};
use snow_core::stats::{Area, Bucket, Count, Counts, StatsAnswer};
use snow_crypto::e2e::recipient::{CrlProblem, RecipientError};
use snow_crypto::e2e::{self, KeyTransport, NS_DSIG, NS_XENC};
use snow_crypto::CertInfo;
use snow_xml::stanza::{error_of, iq_result};
use snow_xml::{Element, NS_CLIENT};

const T: Duration = Duration::from_secs(20);

fn query() -> snow_core::stats::StatsQuery {
    lab_federation::query(Area::All, "2026-W02", "2026-W02")
}

/// The KeyInfo list of a search request's EncryptedData.
fn key_info(iq: &mut Element) -> &mut Element {
    iq.child_mut(NS_STATS, "search")
        .and_then(|s| s.child_mut(NS_XENC, "EncryptedData"))
        .and_then(|e| e.child_mut(NS_DSIG, "KeyInfo"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_refuses_200_encrypted_keys_and_never_tries_a_key_for_another_certificate() {
    let f = Federation::start(4, [("INFA", "5401", 2, 1, true)]).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());
    first_answer(gp, AGENT, &query(), identity, ca).await;
    let agent_cert = gp.iq().certificate_of("search@lab.example", ca).await.unwrap();

    // 200 EncryptedKeys (one, repeated): refused as it arrives, without a
    // place in the queue.
    let mut many = search_request(AGENT, &query(), &agent_cert, identity).unwrap().0;
    let ki = key_info(&mut many);
    let ek = ki.children().next().unwrap().clone();
    for _ in 1..200 {
        ki.push_child(ek.clone());
    }
    let accepted = f.agent.stats().accepted();
    let start = Instant::now();
    let reply = gp.iq().request(many).await.unwrap();
    println!("200-EncryptedKey search refused; round trip through both servers {:?}", start.elapsed());
    let (condition, text) = error_of(&reply);
    assert_eq!(condition, "not-acceptable");
    assert!(text.as_deref().unwrap_or_default().contains("at most 16 EncryptedKeys (this one has 200)"), "{text:?}");
    assert_eq!(f.agent.stats().accepted(), accepted, "the refused search took a place in the queue");

    // An EncryptedKey wrapped for the agent's key, but naming the GP's
    // certificate, or the agent's serial under another issuer, or nobody:
    // the agent would open it if it tried; it does not.
    let gp_cert = CertInfo::from_der(identity.certificate()).unwrap();
    for what in ["the GP's serial", "another issuer", "nobody"] {
        let mut misnamed = search_request(AGENT, &query(), &agent_cert, identity).unwrap().0;
        let ki = key_info(&mut misnamed);
        match what {
            "the GP's serial" => set_text(issuer_serial(ki), "X509SerialNumber", &gp_cert.serial_decimal),
            "another issuer" => set_text(issuer_serial(ki), "X509IssuerName", "CN=Snow CA evil.example, O=Snow"),
            _ => {
                ki.child_mut(NS_XENC, "EncryptedKey").unwrap().take_children(|c| c.is(NS_DSIG, "KeyInfo"));
            }
        }
        let reply = gp.iq().request(misnamed).await.unwrap();
        let (condition, text) = error_of(&reply);
        assert_eq!(condition, "not-acceptable", "{what}");
        assert!(text.as_deref().unwrap_or_default().contains("no EncryptedKey names it"), "{what}: {text:?}");
    }

    // The real thing is still answered.
    let a = gp.iq().search(AGENT, &query(), identity, ca).await.unwrap();
    assert_eq!(a.buckets[0].counts.unwrap().tested, Count::Below(5));
    f.shutdown().await;
}

/// The X509IssuerSerial of the first EncryptedKey in a KeyInfo list.
fn issuer_serial(ki: &mut Element) -> &mut Element {
    ki.child_mut(NS_XENC, "EncryptedKey")
        .and_then(|ek| ek.child_mut(NS_DSIG, "KeyInfo"))
        .and_then(|ki| ki.child_mut(NS_DSIG, "X509Data"))
        .and_then(|d| d.child_mut(NS_DSIG, "X509IssuerSerial"))
        .unwrap()
}

fn set_text(parent: &mut Element, name: &str, text: &str) {
    let el = parent.child_mut(NS_DSIG, name).unwrap();
    el.nodes_mut().clear();
    el.push_text(text.to_owned());
}

/// An answer encrypted to the GP with `tested` tests in 2026-W02.
fn answer_payload(tested: u64, gp_cert: &[u8]) -> Element {
    let mut payload = Element::new(NS_STATS, "search").with_child(answer_element(&answer_of(tested)));
    e2e::encrypt_content(&mut payload, NS_STATS, &[gp_cert], KeyTransport::default()).unwrap();
    payload
}

/// Both sites, GPs 1111111 (at the PO, logged in) and 3333333, and the
/// lab's agent played by the test: logged in at the lab server with the
/// agent's certificate.
struct PlayedAgent {
    po: Site,
    _lab: lab_federation::support::Replica,
    po_server: snow_server::ServerHandle,
    lab_server: snow_server::ServerHandle,
    agent: Client,
    agent_id: snow_crypto::Identity,
    gp: Session,
    _lab_gp: Session,
}

async fn played_agent() -> PlayedAgent {
    let (mut po, lab) = sites(&[]);
    po.add_user("3333333");
    let agent_id = agent_identity(&mut po, "search@lab.example");
    let (po_server, lab_server) = start_servers(&po, &lab).await;
    let mut opts = po.options(&lab_server, false);
    opts.domain = "lab.example".into();
    opts.resource = Some(snow_agents::AGENT_RESOURCE.into());
    let agent = Client::connect(&opts, &agent_id).await.unwrap();
    let (gp, _lab_gp) = log_in_gps(&po, &po_server, &lab_server, "search@lab.example").await;
    PlayedAgent { po, _lab: lab, po_server, lab_server, agent, agent_id, gp, _lab_gp }
}

/// The test plays the lab's agent (logged in with its certificate) and a
/// GP who learned the request's id answers first, as themself and
/// claiming to be the agent: neither answer is taken; the agent's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_answer_from_another_entity_with_the_right_id_is_ignored() {
    let PlayedAgent { po, _lab, po_server, lab_server, mut agent, agent_id, mut gp, _lab_gp } = played_agent().await;
    let attacker = po.login(&po_server, "3333333").await.unwrap().into_session();
    let gp_identity = po.identity("1111111");
    let ca = po.ca.cert_der().to_vec();

    let asking = tokio::spawn({
        let (iq, ca, identity) = (gp.iq().clone(), ca.clone(), clone_identity(&gp_identity));
        async move { iq.search(AGENT, &query(), &identity, &ca).await }
    });
    let request = loop {
        let el = agent.next_stanza(T).await.unwrap();
        if el.name() == "iq" && el.child(NS_STATS, "search").is_some() {
            break el;
        }
    };
    let id = request.attr("id").unwrap().to_owned();
    let gp_jid = request.attr("from").unwrap().to_owned();

    lab_federation::support::forge_results(&attacker, &id, &gp_jid, AGENT, || {
        answer_payload(999, gp_identity.certificate())
    })
    .await;
    for _ in 0..2 {
        let forged = gp.next_stanza(T).await.unwrap();
        assert_eq!(forged.attr("id"), Some(id.as_str()));
        assert!(forged.attr("from").is_some_and(|f| f.starts_with("3333333@po.example")), "{}", forged.to_xml(""));
    }
    assert!(!asking.is_finished(), "a forged answer was taken");

    let signed = signed_answer(12, gp_identity.certificate(), &agent_id, &request, "1111111@po.example");
    agent.send(&iq_result(&request, Some(signed))).await.unwrap();
    let answer = asking.await.unwrap().unwrap();
    assert_eq!(answer.buckets[0].counts.unwrap().tested, Count::Exact(12));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

/// `tested` tests in 2026-W02.
fn answer_of(tested: u64) -> StatsAnswer {
    StatsAnswer {
        query: query(),
        threshold: 5,
        max_noise: 0,
        buckets: vec![Bucket {
            label: "2026-W02".into(),
            counts: Some(Counts { tested: Count::Exact(tested), positive: Count::Exact(0), persons: Count::Exact(0) }),
        }],
    }
}

/// The answer the agent `agent_id` gives to `request` (as it arrived):
/// `tested` tests in 2026-W02, signed for `to` and naming the request,
/// encrypted to `gp_cert`.
fn signed_answer(
    tested: u64,
    gp_cert: &[u8],
    agent_id: &snow_crypto::Identity,
    request: &Element,
    to: &str,
) -> Element {
    let mut search = request.child(NS_STATS, "search").unwrap().clone();
    e2e::decrypt_content(&mut search, NS_STATS, agent_id.key_pkcs8(), agent_id.certificate()).unwrap();
    let asked = signed::only_signed(&search).unwrap();
    let request_ref = signed::RequestRef { id: request.attr("id").unwrap().into(), digest: signed::digest(asked) };
    let el = signed::sign(
        signed::Kind::SearchAnswer,
        vec![snow_xml::Node::Element(answer_element(&answer_of(tested)))],
        &[to],
        Some(&request_ref),
        agent_id,
        snow_client::unix_now(),
    )
    .unwrap();
    let mut payload = Element::new(NS_STATS, "search").with_child(el);
    e2e::encrypt_content(&mut payload, NS_STATS, &[gp_cert], KeyTransport::default()).unwrap();
    payload
}

fn clone_identity(i: &snow_crypto::Identity) -> snow_crypto::Identity {
    snow_crypto::Identity::new(zeroize::Zeroizing::new(i.key_pkcs8().to_vec()), i.chain().to_vec()).unwrap()
}

/// Certificates signed with the site CA's own key, as a hostile server
/// (or anyone who got such a certificate) would offer them.
struct CaKey {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl CaKey {
    fn of(site: &Site) -> CaKey {
        let pem = std::fs::read(site.paths.ca_key()).unwrap();
        let der = snow_crypto::pkcs8_file::decrypt(&pem, "test admin passphrase", "the CA key").unwrap();
        let kp = rcgen::KeyPair::try_from(&der[..]).unwrap();
        CaKey { issuer: rcgen::Issuer::from_ca_cert_der(&site.ca.cert_der().to_vec().into(), kp).unwrap() }
    }

    /// A certificate for `jid` valid from `from` to `to` days from now.
    fn issue(&self, jid: &str, from: i64, to: i64, server_like: bool) -> Vec<u8> {
        use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, jid.split('@').next().unwrap());
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "Snow");
        p.subject_alt_names = vec![rcgen::SanType::OtherName((
            snow_crypto::cert::OID_XMPP_ADDR_ARCS.to_vec(),
            rcgen::OtherNameValue::Utf8String(jid.to_owned()),
        ))];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from);
        p.not_after = now + time::Duration::days(to);
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        p.extended_key_usages =
            if server_like { vec![Eku::ServerAuth, Eku::ClientAuth] } else { vec![Eku::ClientAuth] };
        let key = snow_crypto::rsa_key::generate(snow_crypto::rsa_key::KeyBits::Rsa2048).unwrap();
        let kp = rcgen::KeyPair::try_from(&key[..]).unwrap();
        p.signed_by(&kp, &self.issuer).unwrap().der().to_vec()
    }

    /// A CRL of this CA, revoking nothing, valid from `from` to `to` hours
    /// from now.
    fn crl(&self, from: i64, to: i64) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now + time::Duration::hours(from),
            next_update: now + time::Duration::hours(to),
            crl_number: rcgen::SerialNumber::from_slice(&[0x7f, 0x7f]),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .der()
        .to_vec()
    }
}

/// What the hostile server's key directory answers: per JID the status,
/// the certificate and the serial it lists; and the CRL it sends along.
#[derive(Default)]
struct Lies {
    entries: HashMap<String, (&'static str, Vec<u8>, String)>,
    crl: Option<Vec<u8>>,
}

impl Lies {
    /// `jid` is valid with `der`, listed with `serial` or its own.
    fn vouch(&mut self, jid: &str, der: &[u8], serial: Option<&str>) {
        let serial = serial.map(str::to_owned).unwrap_or_else(|| CertInfo::from_der(der).unwrap().serial_hex);
        self.entries.insert(jid.to_owned(), ("valid", der.to_vec(), serial));
    }
}

/// A hostile lab server on 127.0.0.1, as its agent sees it through the
/// component port (XEP-0114, any secret): it answers key lookups with
/// `lies` and ignores everything else.
async fn hostile_server(lies: Arc<Mutex<Lies>>) -> std::net::SocketAddr {
    use snow_xml::{Framed, Limits, StreamEvent, StreamHeader, NS_COMPONENT};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut f = Framed::new(tcp, Limits::default());
        let StreamEvent::Header(h) = f.next_event(T).await.unwrap() else { panic!("no stream header") };
        let ours = StreamHeader { from: h.to, id: Some("hostile".into()), ..StreamHeader::default() };
        f.send(&ours.to_xml(NS_COMPONENT)).await.unwrap();
        f.next_element(T).await.unwrap();
        f.send("<handshake/>").await.unwrap();
        while let Ok(el) = f.next_element(Duration::from_secs(60)).await {
            let Some(q) = el.child(NS_KEYS, "query").filter(|_| el.attr("type") == Some("get")) else { continue };
            // Base64 as PEM's body (no base64 crate here).
            let b64 = |der: &[u8]| -> String {
                let pem = snow_crypto::pem::encode("X", der).unwrap();
                pem.lines().filter(|l| !l.starts_with("-----")).collect()
            };
            let mut answer = Element::new(NS_KEYS, "query");
            {
                let lies = lies.lock().unwrap();
                for jid in q.children().filter_map(|i| i.attr("jid")) {
                    let mut item = Element::new(NS_KEYS, "item").with_attr("jid", jid.to_owned());
                    match lies.entries.get(jid) {
                        Some((status, der, serial)) => {
                            item.set_attr("status", *status);
                            item.set_attr("serial", serial.clone());
                            item.push_child(Element::new(NS_KEYS, "certificate").with_text(b64(der)));
                        }
                        None => item.set_attr("status", "unknown"),
                    }
                    answer.push_child(item);
                }
                if let Some(crl) = &lies.crl {
                    answer.push_child(Element::new(NS_KEYS, "crl").with_text(b64(crl)));
                }
            }
            let mut reply = iq_result(&el, Some(answer));
            reply.rename_ns_deep(NS_CLIENT, NS_COMPONENT);
            if f.send(&reply.to_xml(NS_COMPONENT)).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// The key directory of a server that lies: it vouches for certificates
/// nothing may be encrypted to, and sends no CRL, a stale one or another
/// CA's. The client's own checks refuse each, by name. (The agent is the
/// client here, attached to the hostile server as a component; a GP's
/// client runs the same checks, `snow_client::checked_certificate`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_what_a_hostile_key_directory_vouches_for() {
    let mut site = Site::new();
    for hpnr in ["4444444", "8888888", "9999999"] {
        site.add_user(hpnr);
    }
    site.revoke("4444444");
    let mut other = Site::new(); // another CA, with the same name
    other.add_user("6666666");
    let ca_key = CaKey::of(&site);
    let identity = agent_identity(&mut site, "search.lab.example");
    let ca = site.ca.cert_der().to_vec();
    let current_crl = crl_of(&site);

    let mut lies = Lies { crl: Some(current_crl.clone()), ..Lies::default() };
    lies.vouch("8888888@po.example", site.identity("8888888").certificate(), None);
    // Revoked in the CA's CRL; the directory says valid.
    lies.vouch("4444444@po.example", site.identity("4444444").certificate(), None);
    lies.vouch("5555555@po.example", &ca_key.issue("5555555@po.example", -30, -1, false), None);
    lies.vouch("6666666@po.example", other.identity("6666666").certificate(), None);
    lies.vouch("7777777@po.example", &ca_key.issue("7777777@po.example", -1, 30, true), None);
    lies.vouch("9999999@po.example", site.identity("9999999").certificate(), Some("01"));
    // Another user's certificate under this JID.
    lies.vouch("2222222@po.example", site.identity("8888888").certificate(), None);
    let lies = Arc::new(Mutex::new(lies));
    let server = hostile_server(Arc::clone(&lies)).await;

    let link = ComponentLink::connect(ComponentOptions {
        server,
        domain: "search.lab.example".into(),
        secret: "any secret will do".to_owned().into(),
        auth: None,
        timeout: T,
    })
    .await
    .unwrap();
    let (rd, wr) = link.split();
    let origin = Origin::Component { domain: "search.lab.example".into(), server: "lab.example".into() };
    let session = Session::start(rd, wr, origin, T);
    let send = |to: &'static str| session.iq().send_encrypted_chat(to, "12 positive", &identity, &ca);
    send("8888888@po.example").await.unwrap();

    let refused = |r: Result<(), ClientError>| match r {
        Err(ClientError::BadKey { why, .. }) => why,
        other => panic!("not refused: {other:?}"),
    };
    assert!(matches!(refused(send("4444444@po.example").await), RecipientError::Revoked { .. }));
    assert!(matches!(refused(send("5555555@po.example").await), RecipientError::Expired(_)));
    assert_eq!(refused(send("6666666@po.example").await), RecipientError::NotIssuedByCa);
    assert!(matches!(refused(send("7777777@po.example").await), RecipientError::WrongUsage(_)));
    assert!(matches!(refused(send("9999999@po.example").await), RecipientError::SerialMismatch { .. }));
    assert!(matches!(refused(send("2222222@po.example").await), RecipientError::NamesAnother(_)));
    let words = send("5555555@po.example").await.unwrap_err().to_string();
    assert!(words.starts_with("cannot encrypt for 5555555@po.example: the certificate expired on "), "{words}");

    // The CRL that comes with the answer: missing, stale, another CA's.
    for (crl, problem) in
        [(None, "missing"), (Some(ca_key.crl(-48, -1)), "expired"), (Some(crl_of(&other)), "not from the CA")]
    {
        lies.lock().unwrap().crl = crl;
        match refused(send("8888888@po.example").await) {
            RecipientError::StatusUnknown(p) => match problem {
                "missing" => assert_eq!(p, CrlProblem::Missing),
                "expired" => assert!(matches!(p, CrlProblem::Expired(_)), "{p:?}"),
                _ => assert_eq!(p, CrlProblem::NotFromCa),
            },
            other => panic!("{problem}: {other:?}"),
        }
    }
    let words = send("8888888@po.example").await.unwrap_err().to_string();
    assert!(words.contains("its revocation status is unknown: the CRL is not issued and signed by your CA"), "{words}");
    lies.lock().unwrap().crl = Some(current_crl);
    send("8888888@po.example").await.unwrap();
    session.close().await.unwrap();
}

/// The CRL a site's CA wrote (DER).
fn crl_of(site: &Site) -> Vec<u8> {
    let pem = std::fs::read(site.paths.crl()).unwrap();
    snow_crypto::pem::decode_all(&pem, "crl").unwrap().into_iter().find(|(l, _)| l == "X509 CRL").unwrap().1
}

/// Issue 20 at the agent, over real sockets: a search is answered only
/// when it is signed by the asker, with the certificate the key directory
/// lists for them, for this agent, fresh, and never seen before. Each
/// refusal says why, and carries no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_answers_only_a_fresh_search_signed_by_the_asker_for_it() {
    let f = Federation::start(4, [("INFA", "5401", 2, 1, true)]).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());
    first_answer(gp, AGENT, &query(), identity, ca).await;
    let agent_cert = gp.iq().certificate_of("search@lab.example", ca).await.unwrap();
    let now = snow_client::unix_now();
    // A signed, encrypted request with its parts chosen by the attacker.
    let request = |signer: &snow_crypto::Identity, to: &str, ts: i64| {
        let el = signed::sign(
            signed::Kind::SearchRequest,
            vec![snow_xml::Node::Element(snow_client::stats::query_element(&query()))],
            &[to],
            None,
            signer,
            ts,
        )
        .unwrap();
        let mut search = Element::new(NS_STATS, "search").with_child(el);
        e2e::encrypt_content(&mut search, NS_STATS, &[agent_cert.as_slice()], KeyTransport::default()).unwrap();
        Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", AGENT).with_child(search)
    };
    let refused = |reply: &Element, why: &str| {
        let (condition, text) = error_of(reply);
        let text = text.unwrap_or_default();
        assert_eq!(condition, "not-acceptable", "{why}: {}", reply.to_xml(""));
        assert!(text.starts_with("unverified message dropped: ") && text.contains(why), "{why}: {text}");
        assert!(reply.child(NS_STATS, "search").is_none(), "a refusal carried an answer");
    };

    // Encrypted but not signed.
    let mut search = Element::new(NS_STATS, "search").with_child(snow_client::stats::query_element(&query()));
    e2e::encrypt_content(&mut search, NS_STATS, &[agent_cert.as_slice()], KeyTransport::default()).unwrap();
    let unsigned = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", AGENT).with_child(search);
    refused(&gp.iq().request(unsigned).await.unwrap(), "it is not signed");

    // The GP's own search, answered once; sent again (a new stanza id, the
    // same signed request) it is a replay.
    let (iq, asked) = search_request(AGENT, &query(), &agent_cert, identity).unwrap();
    let reply = gp.iq().request_as_is(iq.clone()).await.unwrap();
    snow_client::stats::read_search_answer(AGENT, &reply, identity, &agent_cert, &asked).unwrap();
    refused(&gp.iq().request(iq).await.unwrap(), "(a replay)");

    // Signed by another GP (2222222 at the lab), sent by 1111111.
    let other = f.po.identity("2222222");
    refused(
        &gp.iq().request(request(&other, "search@lab.example", now)).await.unwrap(),
        "it was signed as 2222222@lab.example, but came from 1111111@po.example",
    );
    // Signed for another agent.
    refused(
        &gp.iq().request(request(identity, "search@other.example", now)).await.unwrap(),
        "it is not addressed to search@lab.example",
    );
    // An hour old: searches are answered while the GP waits.
    refused(&gp.iq().request(request(identity, "search@lab.example", now - 3600)).await.unwrap(), "its time");
    // Signed with a certificate for 1111111@po.example from another CA: the
    // signature holds, but it is not the directory's certificate.
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue_home = snow_core::SiteHome::new(rogue_dir.path());
    let pki = snow_pki::PkiSettings { ca_key_bits: 2048, ..snow_pki::PkiSettings::default() };
    let mut rogue_ca = snow_pki::Ca::init(&rogue_home, &"po.example".parse().unwrap(), "rogue admin", &pki).unwrap();
    let issued = rogue_ca
        .add_user(&"1111111".parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap())
        .unwrap();
    let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
    let password = snow_pki::outbox::password_of(&sms).unwrap();
    let p12 = snow_crypto::pkcs12::read(&issued.p12, &password, "p12").unwrap();
    let rogue = snow_crypto::Identity::new(p12.key_pkcs8, p12.chain).unwrap();
    refused(
        &gp.iq().request(request(&rogue, "search@lab.example", now)).await.unwrap(),
        "not the one the key directory lists for 1111111@po.example",
    );

    // The real thing is still answered.
    let a = gp.iq().search(AGENT, &query(), identity, ca).await.unwrap();
    assert_eq!(a.buckets[0].counts.unwrap().tested, Count::Below(5));
    f.shutdown().await;
}

/// Issue 20 at the GP: the test plays the lab's agent (logged in with its
/// certificate) and answers the GP's searches wrongly in every way an
/// attacker on the path could. Only the answer signed by the agent for
/// this GP, naming this very request, is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_takes_only_the_answer_signed_by_the_agent_for_its_request() {
    let PlayedAgent { po, _lab, po_server, lab_server, mut agent, agent_id, gp, _lab_gp } = played_agent().await;
    let gp_identity = po.identity("1111111");
    let other_gp = po.identity("3333333");
    let gp_cert = gp_identity.certificate().to_vec();
    let ca = po.ca.cert_der().to_vec();
    let me = "1111111@po.example";

    // Asks once; the agent's side answers with `answer(request)`.
    let mut ask = async |answer: &mut dyn FnMut(&Element) -> Element| {
        let asking = tokio::spawn({
            let (iq, ca, identity) = (gp.iq().clone(), ca.clone(), clone_identity(&gp_identity));
            async move { iq.search(AGENT, &query(), &identity, &ca).await }
        });
        let request = loop {
            let el = agent.next_stanza(T).await.unwrap();
            if el.name() == "iq" && el.child(NS_STATS, "search").is_some() {
                break el;
            }
        };
        agent.send(&iq_result(&request, Some(answer(&request)))).await.unwrap();
        (request, asking.await.unwrap())
    };
    let dropped = |got: Result<StatsAnswer, ClientError>, why: &str| match got {
        Err(e @ ClientError::Unverified { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("unverified message dropped: ")
                    && text.contains(why)
                    && text.ends_with("(from search@lab.example)"),
                "{text}"
            );
        }
        other => panic!("{why}: not dropped: {other:?}"),
    };

    // The genuine answer.
    let mut first_answer = None;
    let (first, got) = ask(&mut |r| {
        let a = signed_answer(12, &gp_cert, &agent_id, r, me);
        first_answer = Some(a.clone());
        a
    })
    .await;
    assert_eq!(got.unwrap().buckets[0].counts.unwrap().tested, Count::Exact(12));
    let first_answer = first_answer.unwrap();

    // The first answer, replayed to the next request.
    let (_, got) = ask(&mut |_| first_answer.clone()).await;
    dropped(got, "it does not answer our request");
    // An answer with this request's id but the digest of the first.
    let (_, got) = ask(&mut |r| {
        let mut forged = first.clone();
        forged.set_attr("id", r.attr("id").unwrap());
        signed_answer(13, &gp_cert, &agent_id, &forged, me)
    })
    .await;
    dropped(got, "it does not answer our request");
    // Signed by another GP, not the agent.
    let (_, got) = ask(&mut |r| {
        let mut search = r.child(NS_STATS, "search").unwrap().clone();
        e2e::decrypt_content(&mut search, NS_STATS, agent_id.key_pkcs8(), agent_id.certificate()).unwrap();
        let digest = signed::digest(signed::only_signed(&search).unwrap());
        let request_ref = signed::RequestRef { id: r.attr("id").unwrap().into(), digest };
        let el = signed::sign(
            signed::Kind::SearchAnswer,
            vec![snow_xml::Node::Element(answer_element(&answer_of(14)))],
            &[me],
            Some(&request_ref),
            &other_gp,
            snow_client::unix_now(),
        )
        .unwrap();
        let mut payload = Element::new(NS_STATS, "search").with_child(el);
        e2e::encrypt_content(&mut payload, NS_STATS, &[gp_cert.as_slice()], KeyTransport::default()).unwrap();
        payload
    })
    .await;
    dropped(got, "it was signed as 3333333@po.example, but came from search@lab.example");
    // Signed for someone else.
    let (_, got) = ask(&mut |r| signed_answer(15, &gp_cert, &agent_id, r, "3333333@po.example")).await;
    dropped(got, "it is not addressed to 1111111@po.example");
    // Not signed at all.
    let (_, got) = ask(&mut |_| answer_payload(16, &gp_cert)).await;
    dropped(got, "it is not signed");

    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}
