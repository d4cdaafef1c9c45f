//! Revocation on every link (issue 17 item 2), over real sockets: a
//! revocation at the PO closes the revoked user's live sessions at the PO
//! and at the lab within 5 s with `<reset/>`; a revoked lab server is
//! refused both ways and its live links are closed; a revoked agent is
//! logged out, refused, and its directory entry revoked; a revoked agent's
//! component link is closed and refused at the lab; without a current
//! CRL (missing, expired) nobody logs in or federates, the administrator is
//! told why, and a replica whose CRL expired gets a current one from its
//! master.

mod attacker;
mod support;

use std::time::{Duration, Instant};

use attacker::Refusal;
use snow_client::{key_lookup, Client, ClientError, NS_KEYS};
use snow_crypto::Identity;
use snow_pki::RevocationReason;
use snow_server::trust::{CrlProblem, RevocationStatus};
use snow_xml::NS_CLIENT;
use support::{error_condition, next_message, Site};

const T: Duration = Duration::from_secs(20);
/// The promise: a live session or link whose certificate a new CRL revokes
/// is closed within this.
const PROMISE: Duration = Duration::from_secs(5);

/// Waits for the server to end the client's stream; its condition and how
/// long it took from `t0`.
async fn ended(c: &mut Client, t0: Instant) -> (String, Duration) {
    loop {
        match c.next_stanza(T).await {
            Ok(_) => continue,
            Err(ClientError::StreamError { condition, .. }) => return (condition, t0.elapsed()),
            Err(e) => panic!("the session ended without a stream error: {e}"),
        }
    }
}

/// The key directory's status for `jid`, as a GP looks it up.
async fn status(g: &snow_client::Session, jid: &str) -> Option<String> {
    let r = g.iq().request(key_lookup(&[jid])).await.unwrap();
    let q = r.child(NS_KEYS, "query")?;
    let status = q.children().find(|c| c.name() == "item").and_then(|i| i.attr("status")).map(str::to_owned);
    status
}

fn is_revoked_login(r: Result<Client, ClientError>) -> bool {
    matches!(r, Err(ClientError::AuthFailed { text: Some(t), .. }) if t.contains("has been revoked"))
}

#[tokio::test]
async fn revocation_closes_live_sessions_within_5_s_at_the_po_and_at_the_lab() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    po.add_user("2222222");
    po.add_user_at("5555555", "lab.example");
    po.add_user_at("6666666", "lab.example");
    let lab = po.replica("lab.example");
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let mut g = po.login(&po_server, "1111111").await.unwrap();
    let mut l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap();
    // Others stay.
    let mut h = po.login(&po_server, "2222222").await.unwrap();
    let mut m = po.login_at(&lab_server, "lab.example", "6666666").await.unwrap();
    h.send_presence().await.unwrap();
    m.send_presence().await.unwrap();

    let t0 = Instant::now();
    po.revoke("1111111");
    po.revoke("5555555");
    let (at_po, at_lab) = tokio::join!(ended(&mut g, t0), ended(&mut l, t0));
    println!("session closed at the PO after {} ms, at the lab after {} ms", at_po.1.as_millis(), at_lab.1.as_millis());
    assert_eq!(at_po.0, "reset");
    assert_eq!(at_lab.0, "reset");
    assert!(at_po.1 < PROMISE, "the PO took {:?}", at_po.1);
    assert!(at_lab.1 < PROMISE, "the lab took {:?}", at_lab.1);
    assert_eq!(po_server.trust_stats().closed_c2s, 1);
    assert_eq!(lab_server.trust_stats().closed_c2s, 1);
    // Refused at the next login, at both; the others' sessions go on.
    assert!(is_revoked_login(po.login(&po_server, "1111111").await));
    assert!(is_revoked_login(po.login_at(&lab_server, "lab.example", "5555555").await));
    h.send_chat("2222222@po.example", "still here").await.unwrap();
    assert_eq!(support::body(&next_message(&mut h).await).as_deref(), Some("still here"));
    m.send_chat("6666666@lab.example", "still here").await.unwrap();
    assert_eq!(support::body(&next_message(&mut m).await).as_deref(), Some("still here"));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn a_revoked_lab_server_is_refused_both_ways_and_its_live_links_closed_within_5_s() {
    let mut po = Site::with_domain("po.example");
    let gp = po.add_user("1111111");
    let labuser = po.add_user_at("5555555", "lab.example");
    let lab = po.replica("lab.example");
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    let mut g = po.login(&po_server, "1111111").await.unwrap();
    let mut l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap();
    g.send_presence().await.unwrap();
    l.send_presence().await.unwrap();
    // Both links up: PO -> lab and lab -> PO.
    g.send_chat(&labuser, "til lab").await.unwrap();
    assert_eq!(support::body(&next_message(&mut l).await).as_deref(), Some("til lab"));
    l.send_chat(&gp, "til PO").await.unwrap();
    assert_eq!(support::body(&next_message(&mut g).await).as_deref(), Some("til PO"));
    // And the attacker's own live link, with the lab server's key.
    let lab_home = snow_core::SiteHome::new(&lab.home);
    let lab_id = || attacker::identity(&lab_home.server_cert("lab.example"), &lab_home.server_key("lab.example"));
    let mut link =
        attacker::connect(&po.s2s_addr(), "lab.example", "po.example", lab_id(), po.ca.cert_der()).await.unwrap();

    let t0 = Instant::now();
    po.ca.revoke_server(&"lab.example".parse().unwrap(), RevocationReason::KeyCompromise).unwrap();
    let (condition, took) = attacker::closed_by_peer(&mut link, T).await;
    println!("the attacker's link closed after {} ms", took.as_millis());
    assert_eq!(condition, Refusal::Stream("reset".into()));
    assert!(took < PROMISE, "took {took:?}");
    // The lab's own links: its link to the PO and the PO's link to it.
    assert!(
        attacker::eventually(PROMISE.saturating_sub(t0.elapsed()), || po_server.trust_stats().closed_s2s >= 3).await,
        "the PO closed {} of the 3 links within 5 s",
        po_server.trust_stats().closed_s2s
    );

    // Refused both ways from now on: the PO does not take the lab's
    // certificate on the lab's links, nor on its own link to the lab.
    let r = attacker::connect(&po.s2s_addr(), "lab.example", "po.example", lab_id(), po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())));
    g.send_chat(&labuser, "er du der?").await.unwrap();
    let e = next_message(&mut g).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"), "{}", e.to_xml(NS_CLIENT));
    l.send_chat(&gp, "hallo?").await.unwrap();
    let e = next_message(&mut l).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"), "{}", e.to_xml(NS_CLIENT));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn a_revoked_agent_is_logged_out_refused_and_its_directory_entry_revoked() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    let issued = po.ca.issue_agent(&"search@po.example".parse().unwrap()).unwrap();
    let (chain, key) = attacker::identity(&issued.cert_path, &issued.key_path);
    let key = match key {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => zeroize::Zeroizing::new(k.secret_pkcs8_der().to_vec()),
        _ => unreachable!("snow-pki writes PKCS#8"),
    };
    let agent = Identity::new(key, chain.iter().map(|c| c.to_vec()).collect()).unwrap();
    po.s2s.replication_interval_ms = 200;
    let server = po.start().await;
    let mut a = Client::connect(&po.options(&server, false), &agent).await.unwrap();
    let g = po.login(&server, "1111111").await.unwrap().into_session();
    let deadline = Instant::now() + T;
    while status(&g, "search@po.example").await.as_deref() != Some("valid") {
        assert!(Instant::now() < deadline, "the directory never listed the agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t0 = Instant::now();
    po.ca.revoke_agent(&"search@po.example".parse().unwrap(), RevocationReason::PrivilegeWithdrawn).unwrap();
    let (condition, took) = ended(&mut a, t0).await;
    assert_eq!(condition, "reset");
    assert!(took < PROMISE, "took {took:?}");
    assert!(is_revoked_login(Client::connect(&po.options(&server, false), &agent).await));
    let deadline = Instant::now() + T;
    while status(&g, "search@po.example").await.as_deref() != Some("revoked") {
        assert!(Instant::now() < deadline, "the directory never revoked the agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_revoked_agent_component_link_is_closed_within_5_s_and_refused_at_the_lab() {
    const SEARCH: &str = "search.lab.example";
    const ECHO: &str = "echo.lab.example";
    const SECRET: &str = "the search component's secret";
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    po.add_user_at("5555555", "lab.example");
    let lab = po.replica_with_components("lab.example", &[SEARCH, ECHO]);
    // The search agent has its certificate for its domain; the echo
    // component has none (its secret is all it has).
    po.ca.issue_agent(&SEARCH.parse().unwrap()).unwrap();
    let po_server = po.start().await;
    let mut settings = po.settings.clone();
    settings.component_bind = "127.0.0.1:0".into();
    let mut config = snow_server::ServerConfig::for_home(
        &snow_core::SiteHome::new(&lab.home),
        lab.domain.parse().unwrap(),
        settings,
        lab.s2s.clone(),
    );
    config.components.push(support::component(&lab.home, SEARCH, SECRET));
    config.components.push(support::component(&lab.home, ECHO, "the echo component's secret"));
    let lab_server = snow_server::Server::start(config).await.unwrap();
    let addr = lab_server.component_addr.unwrap();
    // Once the lab's directory has the agent's certificate (pushed by the PO).
    let l = po.login_at(&lab_server, "lab.example", "5555555").await.unwrap().into_session();
    let deadline = Instant::now() + T;
    while status(&l, SEARCH).await.as_deref() != Some("valid") {
        assert!(Instant::now() < deadline, "the lab's directory never listed the search agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut search = attacker::component(addr, SEARCH, SECRET).await.expect("the search agent attaches");
    let mut echo = attacker::component(addr, ECHO, "the echo component's secret").await.expect("echo attaches");

    let t0 = Instant::now();
    po.ca.revoke_agent(&SEARCH.parse().unwrap(), RevocationReason::KeyCompromise).unwrap();
    let (condition, _) = attacker::closed_by_peer(&mut search, T).await;
    let took = t0.elapsed();
    println!("the lab closed the revoked agent's component link {} ms after the revocation", took.as_millis());
    assert_eq!(condition, Refusal::Stream("reset".into()));
    assert!(took < PROMISE, "took {took:?}");
    assert_eq!(lab_server.trust_stats().closed_components, 1);
    // The right secret no longer attaches it.
    let r = attacker::component(addr, SEARCH, SECRET).await;
    assert_eq!(r.err(), Some(Refusal::Stream("not-authorized".into())));
    // The component without a certificate stays attached.
    match echo.next_element(Duration::from_millis(500)).await {
        Err(snow_xml::initiator::PeerError::Framed(snow_xml::FramedError::Timeout(_))) => {}
        other => panic!("the echo component's link changed: {other:?}"),
    }
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}

#[tokio::test]
async fn without_a_current_crl_nobody_logs_in_or_federates() {
    let mut po = Site::with_domain("po.example");
    po.add_user("1111111");
    let (_dir, lab_home) = po.replica_home("lab.example", &[]);
    let lab_home = snow_core::SiteHome::new(lab_home);
    let lab_id = || attacker::identity(&lab_home.server_cert("lab.example"), &lab_home.server_key("lab.example"));
    std::fs::remove_file(po.paths.crl()).unwrap();
    let server = po.start().await;

    // Missing: status unknown, said so, refused.
    match server.revocation_status() {
        RevocationStatus::Unknown(CrlProblem::Missing(p)) => assert_eq!(p, po.paths.crl()),
        other => panic!("{other:?}"),
    }
    match po.login(&server, "1111111").await {
        Err(ClientError::AuthFailed { text: Some(t), .. }) => assert!(t.contains("cannot check certificates"), "{t}"),
        other => panic!("logged in without a CRL: {:?}", other.map(|c| c.jid().to_owned())),
    }
    let r = attacker::connect(&po.s2s_addr(), "lab.example", "po.example", lab_id(), po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())));
    assert!(server.trust_stats().refused_status_unknown >= 2);

    // The administrator signs a new one: in force within a second.
    po.ca.write_crl().unwrap();
    assert!(
        attacker::eventually(T, || matches!(server.revocation_status(), RevocationStatus::Current { .. })).await,
        "the new CRL was never put in force"
    );
    po.login(&server, "1111111").await.expect("a current CRL again");

    // Past its next update: unknown again.
    let now = time::OffsetDateTime::now_utc();
    let expired = po.ca.signed_crl(now - time::Duration::days(10), now - time::Duration::days(1)).unwrap();
    attacker::write_crl(&po.paths.crl(), &expired);
    assert!(
        attacker::eventually(T, || matches!(
            server.revocation_status(),
            RevocationStatus::Unknown(CrlProblem::Expired(_))
        ))
        .await
    );
    assert!(matches!(po.login(&server, "1111111").await, Err(ClientError::AuthFailed { .. })));
    let r = attacker::connect(&po.s2s_addr(), "lab.example", "po.example", lab_id(), po.ca.cert_der()).await;
    assert_eq!(r.err(), Some(Refusal::Sasl("not-authorized".into())));
    server.shutdown(T).await;
}

#[tokio::test]
async fn a_replica_whose_crl_expired_gets_a_current_one_from_its_master() {
    let mut po = Site::with_domain("po.example");
    po.s2s.replication_interval_ms = 200;
    po.add_user_at("5555555", "lab.example");
    let lab = po.replica("lab.example");
    // The lab was down while its CRL expired; the PO has a newer one.
    let now = time::OffsetDateTime::now_utc();
    let expired = po.ca.signed_crl(now - time::Duration::days(10), now - time::Duration::days(1)).unwrap();
    attacker::write_crl(&snow_core::SiteHome::new(&lab.home).crl(), &expired);
    po.ca.write_crl().unwrap();
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, &lab.domain, lab.s2s.clone()).await;
    assert!(
        matches!(lab_server.revocation_status(), RevocationStatus::Unknown(CrlProblem::Expired(_))),
        "{:?}",
        lab_server.revocation_status()
    );
    assert!(
        attacker::eventually(T, || matches!(lab_server.revocation_status(), RevocationStatus::Current { .. })).await,
        "the master's push never brought a current CRL"
    );
    po.login_at(&lab_server, "lab.example", "5555555").await.expect("a current CRL at the lab again");
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}
