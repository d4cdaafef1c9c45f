//! A signed stanza captured on a component link (XEP-0114 with message
//! authentication) cannot be played again after the server restarts: the
//! replay window is kept in `msgauth.DOMAIN.state` beside the key file
//! (docs/architecture.md §6), after a clean stop and after a crash.

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use snow_agents::component::{ComponentLink, ComponentOptions};
use snow_core::files::{write, Mode};
use snow_core::SiteHome;
use snow_crypto::msgauth::{keys::generate_line, state_path, Algorithm, KeyStore, Sender};
use snow_server::{ComponentSettings, Server, ServerConfig, ServerHandle};
use snow_xml::{Element, NS_CLIENT};
use support::{body, error_condition, next_message, Site};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "echo secret, long enough";

fn config(site: &Site) -> ServerConfig {
    let mut config = ServerConfig::for_home(
        &SiteHome::new(site.home()),
        "po.example".parse().unwrap(),
        site.settings.clone(),
        site.s2s.clone(),
    );
    config.settings.component_bind = "127.0.0.1:0".into();
    config.components = vec![ComponentSettings {
        domain: "echo.po.example".into(),
        secret_file: "components/echo.secret".into(),
        hmac: true,
        source: Some("echo".into()),
        confidential: false,
    }];
    config
}

/// The component's link, signing nothing itself: the test sends stanzas
/// it signed (and keeps) by hand, as an attacker on the link replays them.
async fn link(server: &ServerHandle) -> ComponentLink {
    let opts = ComponentOptions {
        server: server.component_addr.unwrap(),
        domain: "echo.po.example".into(),
        secret: SECRET.to_owned().into(),
        auth: None,
        timeout: T,
    };
    ComponentLink::connect(opts).await.unwrap()
}

/// Message `n` from the component to the GP, signed by `sender`.
fn signed(sender: &Sender, n: u32) -> Element {
    let mut m = Element::new(NS_CLIENT, "message")
        .with_attr("from", "echo.po.example")
        .with_attr("to", "1111111@po.example")
        .with_attr("id", format!("m{n}"))
        .with_child(Element::new(NS_CLIENT, "body").with_text(format!("m{n}")));
    snow_crypto::msgauth::stanza::sign(sender, &mut m).unwrap();
    m
}

/// Sends `m` again: the server refuses it as a replay (`not-authorized`
/// back on the link).
async fn replay_is_refused(link: &mut ComponentLink, m: &Element) {
    link.send(m.clone()).await.unwrap();
    let e = link.next(T).await.unwrap();
    let xml = e.to_xml(NS_CLIENT);
    assert_eq!((e.attr("id"), error_condition(&e).as_deref()), (m.attr("id"), Some("not-authorized")), "{xml}");
    assert!(xml.contains("replayed message"), "{xml}");
}

/// The GP gets exactly `ids`, in order.
async fn gp_gets(gp: &mut snow_client::Client, ids: impl IntoIterator<Item = u32>) {
    for n in ids {
        let m = next_message(gp).await;
        assert_eq!(body(&m), Some(format!("m{n}")));
    }
}

/// `(clean, last, reserved)` of the component's source in the state file.
fn recorded(path: &std::path::Path) -> (bool, u64, u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let clean = text.starts_with("snow-msgauth-replay/1 clean\n");
    let line = text.lines().find(|l| l.starts_with("echo ")).unwrap_or_else(|| panic!("{text}"));
    let f: Vec<&str> = line.split(' ').collect();
    (clean, f[2].parse().unwrap(), f[4].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_stanza_captured_before_a_restart_is_refused_after_it() {
    let mut site = Site::new();
    site.add_user("1111111");
    let home = site.home();
    let keys = generate_line("po.example", "k1", Algorithm::HmacSha256, 0).unwrap()
        + &generate_line("echo", "k1", Algorithm::HmacSha256, 0).unwrap();
    write(&site.paths.msgauth_keys(), keys.as_bytes(), Mode::Private).unwrap();
    write(&home.join("components/echo.secret"), SECRET.as_bytes(), Mode::Private).unwrap();
    let state = state_path(&site.paths.msgauth_keys(), "po.example");
    let store = Arc::new(KeyStore::load(&site.paths.msgauth_keys(), 0).unwrap());
    // The component keeps running (one epoch) while the server restarts.
    let echo = Sender::new(Arc::clone(&store), "echo").unwrap();

    let server = Server::start(config(&site)).await.unwrap();
    let mut gp = site.login(&server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    let mut component = link(&server).await;
    let captured: Vec<Element> = (1..=3).map(|n| signed(&echo, n)).collect();
    for m in &captured {
        component.send(m.clone()).await.unwrap();
    }
    gp_gets(&mut gp, 1..=3).await;
    replay_is_refused(&mut component, &captured[0]).await;

    // A clean restart: the exact window is written at the stop.
    drop(component);
    drop(gp);
    server.shutdown(T).await;
    let (clean, last, _) = recorded(&state);
    assert!(clean && last == 3, "the stop wrote the exact window");
    let server = Server::start(config(&site)).await.unwrap();
    let mut gp = site.login(&server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    let mut component = link(&server).await;
    for m in &captured {
        replay_is_refused(&mut component, m).await;
    }
    // The component that kept running loses nothing.
    component.send(signed(&echo, 4)).await.unwrap();
    gp_gets(&mut gp, [4]).await;

    // A burst, then a crash: the file as a kill -9 now would leave it.
    let burst: Vec<Element> = (5..=104).map(|n| signed(&echo, n)).collect();
    for m in &burst {
        component.send(m.clone()).await.unwrap();
    }
    gp_gets(&mut gp, 5..=104).await;
    let crashed = std::fs::read(&state).unwrap();
    let (clean, last, reserved) = recorded(&state);
    assert!(!clean && reserved >= 104, "everything taken is reserved: last {last}, reserved {reserved}");
    assert!(last < 104, "some of the burst was taken but not written one by one (last {last})");
    drop(component);
    drop(gp);
    server.shutdown(T).await;
    std::fs::write(&state, crashed).unwrap();

    let server = Server::start(config(&site)).await.unwrap();
    let mut gp = site.login(&server, "1111111").await.unwrap();
    gp.send_presence().await.unwrap();
    let mut component = link(&server).await;
    // Taken before the crash but never written one by one, and earlier.
    for m in [&burst[99], &burst[(last - 5) as usize], &burst[0], &captured[1]] {
        replay_is_refused(&mut component, m).await;
    }
    // A restarted component (a new epoch) is heard at once.
    let restarted = Sender::new(Arc::clone(&store), "echo").unwrap();
    component.send(signed(&restarted, 1)).await.unwrap();
    gp_gets(&mut gp, [1]).await;
    assert!(gp.next_stanza(Duration::from_millis(300)).await.is_err(), "a replay reached the GP");
    drop(component);
    server.shutdown(T).await;
}
