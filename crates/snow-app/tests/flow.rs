//! The app against a real Snow server, over real sockets: the first run
//! imports the .p12 with the SMS password (and refuses a wrong one), the
//! sensitivity dialog holds back the first message of a conversation
//! until it is confirmed, a reply and an alert arrive while the app runs,
//! and a confirmation reaches the alert's author.

mod support;

use std::time::{Duration, Instant};

use snow_client::{alert, Body, Client, ConnectOptions};
use snow_core::stats::Area;
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_server::{S2sSettings, Server, ServerConfig, ServerSettings};
use support::{open, request, start_app, Answer, Relay};

const DOMAIN: &str = "po.example";
const PASS: &str = "a personal passphrase";

struct Gp {
    p12: Vec<u8>,
    password: String,
    jid: String,
}

fn add_gp(ca: &mut Ca, hpnr: &str) -> Gp {
    let issued =
        ca.add_user(&hpnr.parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap()).unwrap();
    let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
    Gp { p12: issued.p12, password: outbox::password_of(&sms).unwrap(), jid: issued.jid.to_string() }
}

fn identity(gp: &Gp) -> Identity {
    let c = pkcs12::read(&gp.p12, &gp.password, "p12").unwrap();
    Identity::new(c.key_pkcs8, c.chain).unwrap()
}

/// A multipart form as a browser sends it.
fn multipart(fields: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----snowtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if *name == "file" {
            body.extend_from_slice(
                b"Content-Disposition: form-data; name=\"file\"; filename=\"key.p12\"\r\nContent-Type: application/x-pkcs12\r\n\r\n",
            );
        } else {
            body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A raw POST with a binary body.
async fn post_bytes(addr: std::net::SocketAddr, path: &str, cookie: &str, kind: &str, body: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\
         Content-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        port = addr.port()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

/// A form POST from the app's own page.
async fn post(app: &snow_app::RunningApp, cookie: &str, csrf: &str, path: &str, body: &str) -> Answer {
    let sep = if path.contains('?') { '&' } else { '?' };
    let origin = format!("http://127.0.0.1:{}", app.addr.port());
    request(app.addr, "POST", &format!("{path}{sep}csrf={csrf}"), &[("Cookie", cookie), ("Origin", &origin)], body)
        .await
}

async fn get(app: &snow_app::RunningApp, cookie: &str, path: &str) -> Answer {
    request(app.addr, "GET", path, &[("Cookie", cookie)], "").await
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn form_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PO with two GPs and its server (clear text refused, as at a real site).
struct Site {
    _dir: tempfile::TempDir,
    ca: Ca,
    gp1: Gp,
    gp2: Gp,
    server: snow_server::ServerHandle,
    home: snow_core::SiteHome,
}

async fn start_server(home: &snow_core::SiteHome) -> snow_server::ServerHandle {
    let settings = ServerSettings {
        c2s_bind: "127.0.0.1:0".into(),
        direct_tls_bind: String::new(),
        require_e2e: true,
        ..ServerSettings::default()
    };
    let s2s = S2sSettings { bind: String::new(), ..S2sSettings::default() };
    Server::start(ServerConfig::for_home(home, DOMAIN.parse().unwrap(), settings, s2s)).await.unwrap()
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let paths = snow_core::SiteHome::new(dir.path().join("po"));
    let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    let mut ca = Ca::init(&paths, &DOMAIN.parse().unwrap(), "an admin passphrase", &pki).unwrap();
    ca.issue_server(&DOMAIN.parse().unwrap(), &[]).unwrap();
    let gp1 = add_gp(&mut ca, "1111111");
    let gp2 = add_gp(&mut ca, "2222222");
    let server = start_server(&paths).await;
    Site { _dir: dir, ca, gp1, gp2, server, home: paths }
}

/// The first run with GP 1's .p12 (the right SMS password): the cookie and
/// the page's CSRF token.
async fn first_run(app: &snow_app::RunningApp, gp: &Gp) -> (String, String) {
    let cookie = open(app).await;
    let csrf = get(app, &cookie, "/setup").await.csrf().unwrap();
    let (kind, body) = multipart(&[
        ("file", &gp.p12),
        ("password", gp.password.as_bytes()),
        ("passphrase", PASS.as_bytes()),
        ("passphrase2", PASS.as_bytes()),
    ]);
    let a = post_bytes(app.addr, &format!("/setup?csrf={csrf}"), &cookie, &kind, &body).await;
    assert_eq!((a.status, a.header("location")), (303, Some("/")), "{}", a.body);
    (cookie, csrf)
}

/// How GP 2's command-line client reaches the server.
fn client_options(ca: &Ca, server: &snow_server::ServerHandle) -> ConnectOptions {
    ConnectOptions {
        addr: server.c2s_addr,
        domain: DOMAIN.into(),
        ca_der: ca.cert_der().to_vec(),
        direct_tls: false,
        resource: None,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn first_run_dialog_chat_and_alerts_against_a_real_server() {
    let Site { _dir, ca, gp1, gp2, server, .. } = site().await;
    let app_dir = tempfile::tempdir().unwrap();
    let app = start_app(app_dir.path(), server.c2s_addr, vec![]).await;
    let cookie = open(&app).await;
    let page = get(&app, &cookie, "/setup").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf().unwrap();
    let setup = format!("/setup?csrf={csrf}");

    // The first run refuses a wrong SMS password and differing passphrases,
    // and keeps nothing.
    for (password, again, says) in [
        ("wrong-password", PASS, "one-time password"),
        (gp1.password.as_str(), "another passphrase", "differ"),
        (gp1.password.as_str(), "short", "differ"),
    ] {
        let (kind, body) = multipart(&[
            ("file", &gp1.p12),
            ("password", password.as_bytes()),
            ("passphrase", PASS.as_bytes()),
            ("passphrase2", again.as_bytes()),
        ]);
        let a = post_bytes(app.addr, &setup, &cookie, &kind, &body).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(a.body.contains(says), "{says}: {}", a.body);
        assert!(!app_dir.path().join("keystore").exists());
    }
    let (kind, body) = multipart(&[
        ("file", &gp1.p12),
        ("password", gp1.password.as_bytes()),
        ("passphrase", PASS.as_bytes()),
        ("passphrase2", PASS.as_bytes()),
    ]);
    let a = post_bytes(app.addr, &setup, &cookie, &kind, &body).await;
    assert_eq!((a.status, a.header("location")), (303, Some("/")), "{}", a.body);
    assert!(app_dir.path().join("keystore").exists());
    let home = get(&app, &cookie, "/").await;
    assert_eq!(home.header("location"), Some("/alerts"));
    let alerts = get(&app, &cookie, "/alerts").await;
    assert!(alerts.body.contains(&gp1.jid), "logged in as GP 1: {}", alerts.body);
    // The key never reaches the browser.
    assert!(!alerts.body.contains("PRIVATE KEY"));

    // GP 2 with the command-line client.
    let opts = client_options(&ca, &server);
    let id2 = identity(&gp2);
    let mut c2 = Client::connect(&opts, &id2).await.unwrap();
    c2.send_presence().await.unwrap();

    // A new conversation: the dialog first; nothing leaves before it.
    let conv = format!("/chat/with/{}", gp2.jid);
    let page = get(&app, &cookie, &conv).await;
    assert!(
        page.body.contains("id=\"sensitivity\"") && page.body.contains("data-confirmed=\"false\""),
        "{}",
        page.body
    );
    let a = post(&app, &cookie, &csrf, &format!("{conv}/send"), "text=Hei+kollega").await;
    assert_eq!(a.status, 409, "{}", a.body);
    match c2.next_stanza(Duration::from_millis(1500)).await {
        Err(snow_client::ClientError::Framed(snow_xml::FramedError::Timeout(_))) => {}
        Ok(el) if el.name() != "message" => {}
        other => panic!("something was sent before the dialog was confirmed: {other:?}"),
    }
    let a = post(&app, &cookie, &csrf, &format!("{conv}/confirm"), "").await;
    assert_eq!(a.status, 303);
    let a = post(&app, &cookie, &csrf, &format!("{conv}/send"), "text=Hei+kollega").await;
    assert_eq!(a.status, 303, "{}", a.body);
    let got = loop {
        let el = c2.next_stanza(Duration::from_secs(10)).await.unwrap();
        if el.name() == "message" {
            break el;
        }
    };
    // Signed by GP 1, then encrypted: GP 2 verifies it before showing it.
    let (session2, ca_der) = (c2.into_session(), ca.cert_der().to_vec());
    let nonces_dir = tempfile::tempdir().unwrap();
    let nonces = std::sync::Mutex::new(snow_client::open_chat_nonces(&nonces_dir.path().join("n")).unwrap());
    assert_eq!(
        snow_client::open_chat(session2.iq(), &got, &id2, &ca_der, &nonces).await,
        Some(Body::Verified { text: "Hei kollega".into(), signer: gp1.jid.to_string() })
    );

    // GP 2 answers (end to end): it shows in the conversation.
    session2.iq().send_encrypted_chat(&gp1.jid, "Hei tilbake", &id2, &ca_der).await.unwrap();
    eventually("the reply in the conversation", async || {
        get(&app, &cookie, &format!("{conv}/lines")).await.body.contains("Hei tilbake")
    })
    .await;
    // Its signature was checked: the app says the sender is verified
    // (once: GP 1's own line carries no mark).
    let lines = get(&app, &cookie, &format!("{conv}/lines")).await.body;
    assert_eq!(lines.matches("sender verified").count(), 1, "{lines}");

    // A chat GP 2 signed for someone else, encrypted to GP 1: the app says
    // it dropped it and why, never its text.
    let signed = snow_client::signed::sign(
        snow_client::signed::Kind::Chat,
        vec![snow_xml::Node::Text("not for GP 1".into())],
        &[&gp2.jid],
        None,
        &id2,
        snow_client::unix_now(),
    )
    .unwrap();
    let mut body = snow_xml::Element::new(snow_xml::NS_CLIENT, "body").with_child(signed);
    snow_crypto::e2e::encrypt_content(
        &mut body,
        snow_xml::NS_CLIENT,
        &[identity(&gp1).certificate()],
        Default::default(),
    )
    .unwrap();
    let forged = snow_xml::Element::new(snow_xml::NS_CLIENT, "message")
        .with_attr("to", gp1.jid.as_str())
        .with_attr("type", "chat")
        .with_child(body);
    session2.iq().send(forged).await.unwrap();
    let dropped = format!("unverified message dropped: it is not addressed to {}", gp1.jid);
    eventually("the dropped message's reason", async || {
        get(&app, &cookie, &format!("{conv}/lines")).await.body.contains(&dropped)
    })
    .await;
    assert!(!get(&app, &cookie, &format!("{conv}/lines")).await.body.contains("not for GP 1"));

    // Alerts: GP 1 subscribes in the app; GP 2's alert arrives; GP 1
    // confirms it; GP 2 sees the confirmation.
    let a = post(&app, &cookie, &csrf, "/alerts/subscribe", "analysis=infa&area=5401").await;
    assert_eq!(a.status, 303, "{}", a.body);
    session2.iq().request(alert::subscribe_iq(DOMAIN, "alerts/INFA/5401", &gp2.jid)).await.unwrap();
    let sent = alert::gp_alert("INFA".into(), Area::Municipality("5401".into()), "Klynge".into(), &gp2.jid, 1);
    let published = alert::publish(session2.iq(), DOMAIN, &sent, &[&gp2.jid], &id2, &ca_der).await.unwrap();
    assert!(published.recipients.contains(&gp1.jid), "{published:?}");
    eventually("the alert in the inbox", async || get(&app, &cookie, "/alerts/list").await.body.contains("Klynge"))
        .await;
    let detail = get(&app, &cookie, &format!("/alerts/{}", published.id)).await;
    assert!(detail.body.contains("Klynge"), "{}", detail.body);
    let comment = form_value("Ser det samme her");
    let a =
        post(&app, &cookie, &csrf, &format!("/alerts/{}/confirm", published.id), &format!("comment={comment}")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    // GP 2 verifies it (signed by GP 1 in the app) before showing it.
    let alert_nonces = std::sync::Mutex::new(alert::open_nonces(&nonces_dir.path().join("a")).unwrap());
    eventually("the confirmation at GP 2", async || {
        let got = alert::received(session2.iq(), DOMAIN, &id2, &ca_der, &alert_nonces, 50).await.unwrap();
        assert!(got.unverified.is_empty(), "{:?}", got.unverified);
        got.alerts.iter().any(|(_, a)| a.confirms.as_deref() == Some(published.id.as_str()) && a.author == gp1.jid)
    })
    .await;
    // Confirmed now, not new.
    let list = get(&app, &cookie, "/alerts/list?show=confirmed").await;
    assert!(list.body.contains("Klynge"), "{}", list.body);

    // An alert GP 2 signed for itself alone, encrypted to GP 1 as well and
    // published raw: the app says it dropped it and why, never its text.
    let own = alert::gp_alert("INFA".into(), Area::Municipality("5401".into()), "Ikke til GP 1".into(), &gp2.jid, 2);
    let id1 = identity(&gp1);
    let readers = [id1.certificate(), id2.certificate()];
    let sealed = alert::sealed(&own, &id2, &[&gp2.jid], &readers, snow_client::unix_now()).unwrap();
    let r = session2.iq().request(alert::publish_iq(DOMAIN, "alerts/INFA/5401", None, sealed)).await.unwrap();
    let forged_id = alert::published_id(DOMAIN, &r).unwrap();
    let dropped = format!("unverified message dropped: it is not addressed to {}", gp1.jid);
    eventually("the dropped alert's reason", async || {
        let body = get(&app, &cookie, "/alerts/list?show=all").await.body;
        body.contains(&dropped) && body.contains(&forged_id)
    })
    .await;
    assert!(!get(&app, &cookie, "/alerts/list?show=all").await.body.contains("Ikke til GP 1"));

    // Lock: the app logs out (its connection to the server closes) and
    // asks for the passphrase again; a wrong one is refused.
    let before = server.open_connections();
    let a = post(&app, &cookie, &csrf, "/lock", "").await;
    assert_eq!((a.status, a.header("location")), (303, Some("/unlock")));
    eventually("the locked app's connection closed", async || server.open_connections() < before).await;
    let a = post(&app, &cookie, &csrf, "/unlock", "passphrase=not+it").await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = post(&app, &cookie, &csrf, "/unlock", &format!("passphrase={}", form_value(PASS))).await;
    assert_eq!((a.status, a.header("location")), (303, Some("/")), "{}", a.body);
    assert_eq!(server.open_connections(), before);

    app.shutdown().await;
    server.shutdown(Duration::from_secs(10)).await;
}

/// The network drops under the app while a colleague writes: the app
/// resumes its session (XEP-0198, the same address), so the message sent
/// meanwhile shows once; when the server has restarted and cannot resume,
/// the app logs in again and the message sent meanwhile comes from
/// storage, also once.
#[tokio::test]
async fn a_dropped_connection_is_resumed_and_each_message_shows_once() {
    let Site { _dir, ca, gp1, gp2, server, home } = site().await;
    let relay = Relay::start(server.c2s_addr).await;
    let app_dir = tempfile::tempdir().unwrap();
    let app = start_app(app_dir.path(), relay.addr, vec![]).await;
    let (cookie, _csrf) = first_run(&app, &gp1).await;
    let live = app.state.live().expect("logged in");
    let address = live.iq().jid().to_owned();

    let opts = client_options(&ca, &server);
    let id2 = identity(&gp2);
    let gp2_session = Client::connect(&opts, &id2).await.unwrap().into_session();
    gp2_session.iq().send_presence().await.unwrap();
    let ca_der = ca.cert_der().to_vec();
    let conv = format!("/chat/with/{}", gp2.jid);
    let lines = async |text: &str| get(&app, &cookie, &format!("{conv}/lines")).await.body.matches(text).count();

    gp2_session.iq().send_encrypted_chat(&gp1.jid, "before the break", &id2, &ca_der).await.unwrap();
    eventually("the first message", async || lines("before the break").await == 1).await;

    relay.cut();
    eventually("the app knows it is offline", async || !live.online()).await;
    gp2_session.iq().send_encrypted_chat(&gp1.jid, "during the break", &id2, &ca_der).await.unwrap();
    eventually("the app back online", async || live.online()).await;
    eventually("the message sent during the break", async || lines("during the break").await == 1).await;
    assert_eq!(live.iq().jid(), address, "resumed: the same session, not a new login");
    // Nothing shows twice, even a little later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines("before the break").await, 1);
    assert_eq!(lines("during the break").await, 1);

    // The server restarts: no session to resume; the app logs in again and
    // the message written meanwhile arrives (from storage or live) once.
    drop(gp2_session);
    server.shutdown(Duration::from_secs(10)).await;
    let server = start_server(&home).await;
    relay.retarget(server.c2s_addr);
    relay.cut();
    let gp2_session = Client::connect(&client_options(&ca, &server), &id2).await.unwrap().into_session();
    gp2_session.iq().send_encrypted_chat(&gp1.jid, "after the restart", &id2, &ca_der).await.unwrap();
    eventually("the message sent over the restart", async || lines("after the restart").await == 1).await;
    assert!(live.online());
    assert_ne!(live.iq().jid(), address, "a new login after the restart");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for text in ["before the break", "during the break", "after the restart"] {
        assert_eq!(lines(text).await, 1, "{text}");
    }

    app.shutdown().await;
    server.shutdown(Duration::from_secs(10)).await;
}
