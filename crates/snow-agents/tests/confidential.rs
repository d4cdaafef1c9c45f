//! Confidential component messages over real sockets on 127.0.0.1: the
//! echo agent, attached to `snow serve`'s component port with
//! `confidential = true` on both ends, through a relay that records every
//! byte of the (plain TCP) component link in both directions. A GP's chat
//! goes through the server's component filter to the agent and back, and
//! the link's bytes hold the stanzas' routing but never their content. A
//! component whose two ends disagree is refused with `not-authorized`,
//! saying which way.

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snow_agents::component::{ComponentLink, ComponentOptions, LinkAuth};
use snow_core::files::{write, Mode};
use snow_core::SiteHome;
use snow_crypto::msgauth::{keys::generate_line, Algorithm, KeyStore, Receiver, Sender};
use snow_server::{ComponentSettings, Server, ServerConfig};
use snow_xml::{Element, NS_CLIENT};
use support::{body, error_condition, next_message, Site};

const T: Duration = Duration::from_secs(10);
const SECRET_TEXT: &str = "Influensa A: 12 positive i 5401";

fn options(addr: SocketAddr, domain: &str, auth: Option<LinkAuth>) -> ComponentOptions {
    let secret = format!("{domain} secret, long enough");
    ComponentOptions { server: addr, domain: domain.into(), secret: secret.into(), auth, timeout: T }
}

/// A relay on 127.0.0.1 in front of `to`, keeping every byte it carries
/// (both directions) in `seen`.
async fn recording_relay(to: SocketAddr, seen: Arc<Mutex<Vec<u8>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((a, _)) = listener.accept().await else { return };
            let Ok(b) = tokio::net::TcpStream::connect(to).await else { return };
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            tokio::spawn(copy(ar, bw, Arc::clone(&seen)));
            tokio::spawn(copy(br, aw, Arc::clone(&seen)));
        }
    });
    addr
}

async fn copy(
    mut r: impl tokio::io::AsyncRead + Unpin,
    mut w: impl tokio::io::AsyncWrite + Unpin,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

fn holds(seen: &Mutex<Vec<u8>>, what: &str) -> bool {
    seen.lock().unwrap().windows(what.len()).any(|w| w == what.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_component_link_carries_no_plaintext() {
    let mut site = Site::new();
    site.add_user("1111111");
    let home = site.home();
    // echo and sealed: confidential at the server; plain: hmac only.
    let names = ["echo", "sealed", "plain"];
    let mut keys = generate_line("po.example", "k1", Algorithm::HmacSha256, 0).unwrap();
    for n in names {
        keys += &generate_line(n, "k1", Algorithm::HmacSha256, 0).unwrap();
    }
    write(&site.paths.msgauth_keys(), keys.as_bytes(), Mode::Private).unwrap();
    std::fs::create_dir_all(home.join("components")).unwrap();
    for n in names {
        let secret = format!("{n}.po.example secret, long enough");
        write(&home.join(format!("components/{n}.secret")), secret.as_bytes(), Mode::Private).unwrap();
    }
    let mut config = ServerConfig::for_home(
        &SiteHome::new(&home),
        "po.example".parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.settings.component_bind = "127.0.0.1:0".into();
    config.components = names
        .map(|n| ComponentSettings {
            domain: format!("{n}.po.example"),
            secret_file: format!("components/{n}.secret").into(),
            hmac: true,
            source: Some(n.into()),
            confidential: n != "plain",
        })
        .to_vec();
    let server = Server::start(config).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let direct = server.component_addr.unwrap();
    let addr = recording_relay(direct, Arc::clone(&seen)).await;

    // The echo agent, confidential, through the relay.
    let store = Arc::new(KeyStore::load(&site.paths.msgauth_keys(), 0).unwrap());
    let auth = LinkAuth {
        sender: Arc::new(Sender::new(Arc::clone(&store), "echo").unwrap().confidential(true)),
        receiver: Arc::new(Receiver::new(Arc::clone(&store)).confidential(true)),
        server_source: "po.example".into(),
    };
    let link = ComponentLink::connect(options(addr, "echo.po.example", Some(auth))).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let echo = tokio::spawn(snow_agents::echo::run(link, stopped));

    // A GP's chat goes to the agent and back, readable at both ends.
    let mut gp = site.login(&server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    gp.send_chat("echo.po.example", SECRET_TEXT).await.unwrap();
    let m = next_message(&mut gp).await;
    assert_eq!((m.attr("from"), body(&m).as_deref()), (Some("echo.po.example"), Some(SECRET_TEXT)));
    assert!(m.children().all(|c| c.name() != "encrypted" && c.name() != "auth"), "{}", m.to_xml(NS_CLIENT));

    // The component link, both ways: routing visible, content sealed.
    assert!(holds(&seen, "to='echo.po.example'"), "the way in is not on the link");
    assert!(holds(&seen, "to='1111111@po.example"), "the way back is not on the link");
    assert!(holds(&seen, "<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>"));
    assert!(!holds(&seen, "Influensa") && !holds(&seen, "<body"), "plaintext on the component link");

    // The two ends disagree (straight to the port, not through the
    // relay): a clear stanza to a confidential component entry, a sealed
    // one to an entry without it. Each refused with not-authorized, saying
    // which; the link reads the server's answer in the server's form.
    let to_gp = |id: &str| {
        Element::new(NS_CLIENT, "message")
            .with_attr("to", "1111111@po.example")
            .with_attr("id", id)
            .with_child(Element::new(NS_CLIENT, "body").with_text(SECRET_TEXT))
    };
    for (name, sealed, why) in
        [("sealed", false, "is not encrypted"), ("plain", true, "confidentiality is not on here")]
    {
        let domain = format!("{name}.po.example");
        let auth = LinkAuth {
            sender: Arc::new(Sender::new(Arc::clone(&store), name).unwrap().confidential(sealed)),
            receiver: Arc::new(Receiver::new(Arc::clone(&store)).confidential(!sealed)),
            server_source: "po.example".into(),
        };
        let mut link = ComponentLink::connect(options(direct, &domain, Some(auth))).await.unwrap();
        link.send(to_gp(name).with_attr("from", domain.clone())).await.unwrap();
        let e = link.next(T).await.unwrap();
        assert_eq!((e.attr("id"), error_condition(&e).as_deref()), (Some(name), Some("not-authorized")));
        let text = e.to_xml(NS_CLIENT);
        assert!(text.contains(why), "{name}: {text}");
    }
    assert!(gp.next_stanza(Duration::from_millis(500)).await.is_err(), "a refused message reached the user");

    stop.send(true).unwrap();
    assert_eq!(echo.await.unwrap().unwrap(), 1);
    server.shutdown(T).await;
}
