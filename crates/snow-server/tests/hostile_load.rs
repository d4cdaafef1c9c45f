//! Hostile load over real sockets on 127.0.0.1 (issue 19): rate limits per
//! account across its sessions, per source address for logins, per s2s
//! peer and per component; absolute pre-authentication deadlines against
//! slowloris; the cap on unauthenticated connections per address; the
//! plain component port on loopback only; a configuration with NaN,
//! negative or zero numbers refused with the key named.

mod attacker;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use attacker::Refusal;
use snow_client::{Client, ClientError};
use snow_xml::Element;
use support::{body, error_condition, next_message, until_pong, Site, DOMAIN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

/// The ids of the `policy-violation` errors among `stanzas`.
fn refused(stanzas: &[Element]) -> Vec<String> {
    stanzas
        .iter()
        .filter(|e| error_condition(e).as_deref() == Some("policy-violation"))
        .map(|e| e.attr("id").unwrap_or_default().to_owned())
        .collect()
}

/// One account, three sessions: the account's rate is shared by all
/// three, so the third session's stanzas are refused although it alone
/// sent no more than the first; persistent excess ends the session with a
/// stream error; another account is not touched.
#[tokio::test]
async fn an_accounts_rate_limit_holds_across_its_three_sessions() {
    let mut site = Site::new();
    site.add_user("1111111");
    let bob = site.add_user("2222222");
    site.add_user("3333333");
    // No per-connection pacing in the way; the account: 20 stanzas, and
    // (practically) no refill during the test.
    site.settings.stanza_rate = 10_000.0;
    site.settings.stanza_burst = 10_000.0;
    site.settings.account_stanza_rate = 0.001;
    site.settings.account_stanza_burst = 20.0;
    let server = site.start().await;
    let mut bob_c = site.login(&server, "2222222").await.unwrap();
    bob_c.send_presence().await.unwrap();
    // Each login announces the Snow client with one presence: 3 stanzas.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(site.login(&server, "1111111").await.unwrap());
    }
    let mut refusals = Vec::new();
    for (k, s) in sessions.iter_mut().enumerate() {
        for i in 0..10 {
            s.send_raw(&format!("<message to='{bob}' type='chat' id='s{k}-{i}'><body>{k}.{i}</body></message>"))
                .await
                .unwrap();
        }
        refusals.push(refused(&until_pong(s).await));
    }
    println!("refused per session: {refusals:?}");
    // 20 - 3 presences: session 0's ten messages and its ping pass, then
    // six of session 1's; the rest is refused, whichever session sent it.
    assert!(refusals[0].is_empty(), "{refusals:?}");
    assert_eq!(refusals[1], ["s1-6", "s1-7", "s1-8", "s1-9", "pong"]);
    assert_eq!(refusals[2].len(), 11, "every stanza of the third session: {refusals:?}");
    let mut delivered = Vec::new();
    while let Ok(el) = bob_c.next_stanza(Duration::from_millis(500)).await {
        if el.name() == "message" {
            delivered.push(el.attr("id").unwrap_or_default().to_owned());
        }
    }
    assert_eq!(delivered.len(), 16, "{delivered:?}");
    assert!(delivered.iter().all(|id| id.starts_with("s0-") || id.starts_with("s1-")));
    assert_eq!(server.limit_stats().account_refused, 16);

    // Persistent excess: more refused within a minute than the burst ends
    // the session that keeps on.
    let s = &mut sessions[2];
    let mut end = None;
    for i in 0..20 {
        if s.send_raw(&format!("<message to='{bob}' type='chat' id='x{i}'/>")).await.is_err() {
            break;
        }
    }
    while end.is_none() {
        match s.next_stanza(T).await {
            Ok(_) => {}
            Err(e) => end = Some(e),
        }
    }
    match end {
        Some(ClientError::StreamError { condition, text }) => {
            assert_eq!(condition, "policy-violation");
            assert!(text.unwrap_or_default().contains("too many stanzas from your account"));
        }
        other => panic!("expected a policy-violation stream error, got {other:?}"),
    }
    let stats = server.limit_stats();
    assert_eq!(stats.account_disconnected, 1, "{stats:?}");
    // Another account is not touched.
    let mut carol = site.login(&server, "3333333").await.unwrap();
    carol.send_chat(&bob, "fra Carol").await.unwrap();
    assert_eq!(body(&next_message(&mut bob_c).await).as_deref(), Some("fra Carol"));
    server.shutdown(T).await;
}

/// Connections to the client ports are login attempts, counted per source
/// address: past the rate a STARTTLS connection gets `policy-violation` in
/// words, a direct TLS connection is closed before the handshake.
#[tokio::test]
async fn login_attempts_per_source_address_are_limited() {
    let mut site = Site::new();
    site.add_user("1111111");
    site.settings.login_attempts_per_minute = 3;
    let server = site.start().await;
    for _ in 0..3 {
        site.login(&server, "1111111").await.unwrap().close().await.unwrap();
    }
    match site.login(&server, "1111111").await {
        Err(ClientError::StreamError { condition, text }) => {
            assert_eq!(condition, "policy-violation");
            assert_eq!(text.as_deref(), Some("too many login attempts from your address; try again in a minute"));
        }
        other => panic!("a fourth login within the minute: {:?}", other.map(|c| c.jid().to_owned())),
    }
    let direct = Client::connect(&site.options(&server, true), &site.identity("1111111")).await;
    assert!(direct.is_err(), "direct TLS is counted too");
    assert_eq!(server.limit_stats().logins_refused, 2);
    server.shutdown(T).await;
}

/// Writes `bytes` one byte every 5 s (the first at once) and reads
/// whatever comes, until the server closes the connection; returns when
/// that happened, counted from `t0` (the TCP connection).
async fn dribble<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: &[u8], t0: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    let mut next = tokio::time::Instant::from_std(t0);
    let mut sent = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                if sent < bytes.len() {
                    if s.write_all(&bytes[sent..=sent]).await.is_err() || s.flush().await.is_err() {
                        return t0.elapsed();
                    }
                    sent += 1;
                }
                next += Duration::from_secs(5);
            }
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            },
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return t0.elapsed();
        }
    }
}

/// A TLS client without a certificate, trusting the site's CA.
fn tls_connector(ca_der: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(ca_der.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Slowloris: 200 connections, each sending one byte every 5 s, on every
/// port and at both stages (before TLS, after TLS). Per-read timeouts (30
/// s here) never fire for them; the absolute deadlines from accept (TLS 2
/// s, authentication 3 s in this test) close every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_all_closed_by_their_deadlines() {
    const TLS: Duration = Duration::from_secs(2);
    const AUTH: Duration = Duration::from_secs(3);
    const EACH: usize = 40;
    let mut site = Site::new();
    site.settings.tls_handshake_timeout_secs = TLS.as_secs();
    site.settings.auth_deadline_secs = AUTH.as_secs();
    site.settings.negotiation_timeout_secs = 30;
    site.settings.max_connections_per_ip = 1000;
    site.settings.max_preauth_per_ip = 1000;
    site.settings.login_attempts_per_minute = 10_000;
    site.settings.component_bind = "127.0.0.1:0".into();
    let mut config = snow_server::ServerConfig::for_home(
        &site.paths,
        DOMAIN.parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.components.push(support::component(&site.home(), "echo.po.example", "a component secret of length"));
    let server = snow_server::Server::start(config).await.unwrap();
    let header = |ns: &str| {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='http://etherx.jabber.org/streams' \
             to='{DOMAIN}' version='1.0'>"
        )
        .into_bytes()
    };
    let client_hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let connector = tls_connector(site.ca.cert_der());
    let s2s_addr: std::net::SocketAddr = site.s2s_addr().parse().unwrap();
    // (what, port, bytes, TLS first?, its deadline)
    let kinds = [
        ("c2s STARTTLS, before TLS", server.c2s_addr, header("jabber:client"), false, TLS),
        ("c2s direct TLS, in the handshake", server.direct_tls_addr.unwrap(), client_hello, false, TLS),
        ("c2s direct TLS, after the handshake", server.direct_tls_addr.unwrap(), header("jabber:client"), true, AUTH),
        ("s2s, before TLS", s2s_addr, header("jabber:server"), false, TLS),
        (
            "component, before the handshake",
            server.component_addr.unwrap(),
            header("jabber:component:accept"),
            false,
            AUTH,
        ),
    ];
    let mut tasks = Vec::new();
    for (k, (_, addr, bytes, tls, _)) in kinds.iter().enumerate() {
        for _ in 0..EACH {
            let (addr, bytes, tls, connector) = (*addr, bytes.clone(), *tls, connector.clone());
            tasks.push(tokio::spawn(async move {
                // Before the connection: the server's accept is later.
                let t0 = Instant::now();
                let tcp = TcpStream::connect(addr).await.unwrap();
                let took = if tls {
                    let name = rustls_pki_types::ServerName::try_from(DOMAIN).unwrap();
                    let stream = connector.connect(name, tcp).await.unwrap();
                    dribble(stream, &bytes, t0).await
                } else {
                    dribble(tcp, &bytes, t0).await
                };
                (k, took)
            }));
        }
    }
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for t in tasks {
        let (k, took) = t.await.unwrap();
        by_kind[k].push(took);
    }
    let mut late = Vec::new();
    for ((what, _, _, _, deadline), times) in kinds.iter().zip(&mut by_kind) {
        times.sort();
        let ms = |d: &Duration| d.as_millis();
        println!(
            "{what}: {} connections closed after {} / {} / {} ms (min / median / max; deadline {} ms)",
            times.len(),
            ms(&times[0]),
            ms(&times[times.len() / 2]),
            ms(&times[times.len() - 1]),
            deadline.as_millis()
        );
        for t in times.iter() {
            if *t < *deadline || *t > *deadline + Duration::from_millis(1500) {
                late.push(format!("{what}: {} ms", t.as_millis()));
            }
        }
    }
    assert!(late.is_empty(), "closed before or well after the deadline: {late:#?}");
    let stats = server.limit_stats();
    assert_eq!((stats.tls_deadline_closed, stats.auth_deadline_closed), (3 * EACH as u64, 2 * EACH as u64));
    assert_eq!(server.open_connections(), 0);
    server.shutdown(T).await;
}

/// At most `max_preauth_per_ip` connections of one address may be
/// unauthenticated at once; authenticated sessions do not count.
#[tokio::test]
async fn unauthenticated_connections_per_address_are_capped() {
    let mut site = Site::new();
    site.add_user("1111111");
    site.settings.max_preauth_per_ip = 5;
    let server = site.start().await;
    let a = site.login(&server, "1111111").await.unwrap();
    let b = site.login(&server, "1111111").await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(server.c2s_addr).await.unwrap());
    }
    assert!(attacker::eventually(T, || server.open_connections() == 7).await, "the two sessions do not count");
    let t0 = Instant::now();
    let mut sixth = TcpStream::connect(server.c2s_addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(T, sixth.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() < Duration::from_secs(2), "refused at once, not at a deadline: {:?}", t0.elapsed());
    assert_eq!(server.limit_stats().preauth_refused, 1);
    assert!(site.login(&server, "1111111").await.is_err(), "a login is a new unauthenticated connection too");
    drop(silent.pop());
    assert!(attacker::eventually(T, || server.open_connections() == 6).await);
    let c = site.login(&server, "1111111").await.expect("a place is free again");
    drop((a, b, c));
    server.shutdown(T).await;
}

/// An external component over its rate gets `policy-violation` for each
/// stanza refused, then, keeping on, a stream error.
#[tokio::test]
async fn a_component_over_its_rate_is_refused_then_disconnected() {
    const ECHO: &str = "echo.po.example";
    const SECRET: &str = "the echo component's secret";
    let mut site = Site::new();
    let bob = site.add_user("2222222");
    site.settings.component_bind = "127.0.0.1:0".into();
    site.settings.component_stanza_rate = 0.001;
    site.settings.component_stanza_burst = 5.0;
    let mut config = snow_server::ServerConfig::for_home(
        &site.paths,
        DOMAIN.parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.components.push(support::component(&site.home(), ECHO, SECRET));
    let server = snow_server::Server::start(config).await.unwrap();
    let mut bob_c = site.login(&server, "2222222").await.unwrap();
    bob_c.send_presence().await.unwrap();
    let mut link = attacker::component(server.component_addr.unwrap(), ECHO, SECRET).await.unwrap();
    for i in 0..12 {
        let xml = format!(
            "<message xmlns='jabber:component:accept' from='bot@{ECHO}' to='{bob}' type='chat' id='c{i}'><body>{i}</body></message>"
        );
        if link.send(&xml).await.is_err() {
            break;
        }
    }
    let mut errors = 0;
    let end = loop {
        match link.next_element(T).await {
            Ok(el) if el.attr("type") == Some("error") => errors += 1,
            Ok(_) => {}
            Err(e) => break Refusal::from(e),
        }
    };
    assert_eq!(end, Refusal::Stream("policy-violation".into()));
    // The refusals before the last, as many as were written before the
    // stream error.
    assert!((1..=5).contains(&errors), "{errors} errors");
    let mut delivered = 0;
    while let Ok(el) = bob_c.next_stanza(Duration::from_millis(500)).await {
        delivered += usize::from(el.name() == "message");
    }
    assert_eq!(delivered, 5);
    let stats = server.limit_stats();
    assert_eq!((stats.component_refused, stats.component_disconnected), (6, 1), "{stats:?}");
    server.shutdown(T).await;
}

/// Another server over its rate on its incoming link: its stanzas past the
/// burst are refused, and the link is closed when it keeps on.
#[tokio::test]
async fn an_s2s_peer_over_its_rate_is_refused_then_disconnected() {
    let mut po = Site::with_domain("po.example");
    let gp = po.add_user("1111111");
    let lab = po.replica("lab.example");
    po.s2s.stanza_rate = 0.001;
    po.s2s.stanza_burst = 5.0;
    let server = po.start().await;
    let mut g = po.login(&server, "1111111").await.unwrap();
    g.send_presence().await.unwrap();
    let lab_home = snow_core::SiteHome::new(&lab.home);
    let id = attacker::identity(&lab_home.server_cert("lab.example"), &lab_home.server_key("lab.example"));
    let mut link = attacker::connect(&po.s2s_addr(), "lab.example", "po.example", id, po.ca.cert_der()).await.unwrap();
    for i in 0..12 {
        let xml = format!(
            "<message xmlns='jabber:server' from='5555555@lab.example' to='{gp}' type='chat' id='s{i}'><body>{i}</body></message>"
        );
        if link.send(&xml).await.is_err() {
            break;
        }
    }
    let (end, _) = attacker::closed_by_peer(&mut link, T).await;
    assert_eq!(end, Refusal::Stream("policy-violation".into()));
    let mut delivered = 0;
    while let Ok(el) = g.next_stanza(Duration::from_millis(500)).await {
        delivered += usize::from(el.name() == "message" && el.attr("type") == Some("chat"));
    }
    assert_eq!(delivered, 5);
    let stats = server.limit_stats();
    assert_eq!((stats.s2s_refused, stats.s2s_disconnected), (6, 1), "{stats:?}");
    server.shutdown(T).await;
}

/// The component port is plain TCP: anything but loopback is refused at
/// startup, naming the key.
#[tokio::test]
async fn a_plain_component_port_off_loopback_is_refused_at_startup() {
    let site = Site::new();
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let mut settings = site.settings.clone();
        settings.component_bind = bind.into();
        let mut config =
            snow_server::ServerConfig::for_home(&site.paths, DOMAIN.parse().unwrap(), settings, site.s2s.clone());
        config.components.push(support::component(&site.home(), "echo.po.example", "a component secret of length"));
        let e = snow_server::Server::start(config).await.err().expect("a public plain component port").to_string();
        assert!(e.contains("[server] component_bind") && e.contains("loopback"), "{e}");
        println!("{e}");
    }
}

/// No configuration panics the server: NaN, infinite, negative and zero
/// numbers are refused at startup, each with its key and range.
#[tokio::test]
async fn nan_negative_and_zero_settings_are_refused_at_startup_with_the_key_named() {
    let site = Site::new();
    let start = |f: &dyn Fn(&mut snow_server::ServerConfig)| {
        let mut config = snow_server::ServerConfig::for_home(
            &site.paths,
            DOMAIN.parse().unwrap(),
            site.settings.clone(),
            site.s2s.clone(),
        );
        f(&mut config);
        snow_server::Server::start(config)
    };
    type Change = dyn Fn(&mut snow_server::ServerConfig);
    let cases: [(&str, &Change); 6] = [
        ("[server] stanza_rate", &|c| c.settings.stanza_rate = f64::NAN),
        ("[server] account_stanza_burst", &|c| c.settings.account_stanza_burst = f64::INFINITY),
        ("[server] max_connections", &|c| c.settings.max_connections = 0),
        ("[s2s] stanza_rate", &|c| c.s2s.stanza_rate = -1.0),
        ("[pubsub] max_item_bytes", &|c| c.pubsub.max_item_bytes = 0),
        ("[msgauth] window_secs", &|c| c.msgauth.window_secs = -5),
    ];
    for (key, f) in cases {
        let e = start(f).await.err().unwrap_or_else(|| panic!("{key} was taken")).to_string();
        assert!(e.contains(key) && e.contains("it must be from"), "{e}");
    }
}
