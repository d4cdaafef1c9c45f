//! The echo agent attached to `snow serve` as an external component
//! (XEP-0114) with message authentication on every stanza, on 127.0.0.1.

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use snow_agents::component::{ComponentLink, ComponentOptions, LinkAuth, LinkError};
use snow_core::files::{write, Mode};
use snow_core::SiteHome;
use snow_crypto::msgauth::{keys::generate_line, Algorithm, KeyStore, Receiver, Sender};
use snow_server::{ComponentSettings, Server, ServerConfig};
use snow_xml::{Element, NS_CLIENT, NS_PING};
use support::{body, error_condition, next_message, Site};

const T: Duration = Duration::from_secs(10);

fn options(addr: std::net::SocketAddr, domain: &str, secret: &str, auth: Option<LinkAuth>) -> ComponentOptions {
    ComponentOptions { server: addr, domain: domain.into(), secret: secret.to_owned().into(), auth, timeout: T }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_agent_with_hmac_and_a_rogue_component() {
    let mut site = Site::new();
    site.add_user("1111111");
    let home = site.home();
    let keys = generate_line("po.example", "k1", Algorithm::HmacSha256, 0).unwrap()
        + &generate_line("echo", "k1", Algorithm::HmacSha256, 0).unwrap()
        + &generate_line("rogue", "k1", Algorithm::HmacMd5, 0).unwrap();
    write(&site.paths.msgauth_keys(), keys.as_bytes(), Mode::Private).unwrap();
    std::fs::create_dir_all(home.join("components")).unwrap();
    for name in ["echo", "rogue"] {
        write(
            &home.join(format!("components/{name}.secret")),
            format!("{name} secret, long enough").as_bytes(),
            Mode::Private,
        )
        .unwrap();
    }
    let mut config = ServerConfig::for_home(
        &SiteHome::new(&home),
        "po.example".parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.settings.component_bind = "127.0.0.1:0".into();
    config.components = ["echo", "rogue"]
        .map(|n| ComponentSettings {
            domain: format!("{n}.po.example"),
            secret_file: format!("components/{n}.secret").into(),
            hmac: true,
            source: Some(n.into()),
            confidential: false,
        })
        .to_vec();
    let server = Server::start(config).await.unwrap();
    let addr = server.component_addr.unwrap();

    // The echo agent, with the filters on both sides.
    let store = Arc::new(KeyStore::load(&site.paths.msgauth_keys(), 0).unwrap());
    let auth = LinkAuth {
        sender: Arc::new(Sender::new(Arc::clone(&store), "echo").unwrap()),
        receiver: Arc::new(Receiver::new(Arc::clone(&store))),
        server_source: "po.example".into(),
    };
    let link =
        ComponentLink::connect(options(addr, "echo.po.example", "echo secret, long enough", Some(auth))).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let echo = tokio::spawn(snow_agents::echo::run(link, stopped));

    // A client's message goes through and back; so does an IQ.
    let mut gp = site.login(&server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    gp.send_chat("echo.po.example", "ping 1").await.unwrap();
    let m = next_message(&mut gp).await;
    assert_eq!((m.attr("from"), body(&m).as_deref()), (Some("echo.po.example"), Some("ping 1")));
    assert!(m.children().all(|c| c.name() != "auth"), "the tag was not stripped: {}", m.to_xml(NS_CLIENT));
    let iq = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", "echo.po.example")
        .with_child(Element::new(NS_PING, "ping"));
    let mut gp = gp.into_session();
    let r = gp.iq().request(iq).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(NS_CLIENT));

    // A component that signs with the wrong key, or not at all: refused
    // with not-authorized, and nothing reaches the user.
    let mut rogue =
        ComponentLink::connect(options(addr, "rogue.po.example", "rogue secret, long enough", None)).await.unwrap();
    let other = Arc::new(KeyStore::parse(&generate_line("rogue", "k1", Algorithm::HmacMd5, 0).unwrap(), 0).unwrap());
    let wrong_key = Sender::new(other, "rogue").unwrap();
    let forged = |text: &str| {
        Element::new(NS_CLIENT, "message")
            .with_attr("from", "rogue.po.example")
            .with_attr("to", "1111111@po.example")
            .with_attr("id", text)
            .with_child(Element::new(NS_CLIENT, "body").with_text(text))
    };
    let mut signed_wrong = forged("wrong-key");
    snow_crypto::msgauth::stanza::sign(&wrong_key, &mut signed_wrong).unwrap();
    rogue.send(signed_wrong).await.unwrap();
    rogue.send(forged("untagged")).await.unwrap();
    for id in ["wrong-key", "untagged"] {
        let e = rogue.next(T).await.unwrap();
        assert_eq!((e.attr("id"), error_condition(&e).as_deref()), (Some(id), Some("not-authorized")));
        assert!(e.to_xml(NS_CLIENT).contains("message authentication failed"), "{}", e.to_xml(NS_CLIENT));
    }
    assert!(gp.next_stanza(Duration::from_millis(500)).await.is_err(), "a forged message reached the user");

    // The wrong secret never gets a stream.
    let e = ComponentLink::connect(options(addr, "echo.po.example", "not the secret at all", None)).await;
    assert!(matches!(&e, Err(LinkError::Refused(why)) if why.contains("not-authorized")), "{:?}", e.err());

    stop.send(true).unwrap();
    assert_eq!(echo.await.unwrap().unwrap(), 2);
    server.shutdown(T).await;
}
