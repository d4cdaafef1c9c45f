//! Pubsub roles over real sockets, each played by the attacking identity
//! (issue 17 item 1; docs/architecture.md §3 pubsub, §6 alert items): the
//! PO's alert service takes signals only from the lab's detection agent
//! (`search@lab.example`, logged in at the lab server, publishing over
//! s2s), a GP publishes only its own kinds on nodes that exist, under ids
//! the service assigns, and never replaces or retracts another's item; one
//! publisher's flood keeps everyone else's items; only the subscriber or a
//! node owner changes a subscription; the client shows an item only when
//! it verifies (issue 20: signed for the reader by its publisher, of the
//! kind in clear, the detail inside matching the item, a signal signed by
//! a lab's agent and a GP's item by a GP, not copied from another item,
//! the signer not revoked), else only why it was dropped; and under
//! `require_e2e` an alert in clear is not even stored.

mod lab_federation;

use std::time::Duration;

use std::sync::Mutex;

use lab_federation::support::{error_condition, Replica, Site};
use lab_federation::{agent_identity, sites, wait_for_key};
use snow_client::{alert, Client, ClientError, Session};
use snow_core::alert::{Alert, AlertKind, KIND_ATTR};
use snow_core::nonce_cache::NonceCache;
use snow_core::stats::{Area, Count, IsoWeek};
use snow_crypto::Identity;
use snow_server::config::PubsubSettings;
use snow_server::{Server, ServerConfig, ServerHandle};
use snow_xml::Element;

const PO: &str = "po.example";
const NODE: &str = "alerts/INFA/5401";
const AGENT: &str = "search@lab.example";
const GP1: &str = "1111111@po.example";
const GP3: &str = "3333333@po.example";
const OWNER: &str = "9999999@po.example";

/// The PO (with `pubsub` as its `[pubsub]`) and the lab server; the lab's
/// detection agent logged in at the lab server; GPs 1111111 and 3333333 at
/// the PO, both subscribed to [`NODE`], as is the agent; the identities
/// they sign with, and GP 1's and GP 3's records of alerts received.
struct World {
    po: Site,
    _lab: Replica,
    po_server: ServerHandle,
    lab_server: ServerHandle,
    agent: Session,
    gp1: Session,
    gp3: Session,
    ca: Vec<u8>,
    agent_id: Identity,
    id1: Identity,
    id3: Identity,
    nonces1: Mutex<NonceCache>,
    nonces3: Mutex<NonceCache>,
    _dir: tempfile::TempDir,
}

async fn world(pubsub: PubsubSettings) -> World {
    world_with(pubsub, false).await
}

/// [`world`] with `[server] require_e2e` at the PO as given.
async fn world_with(pubsub: PubsubSettings, require_e2e: bool) -> World {
    let (mut po, lab) = sites(&[]);
    po.settings.require_e2e = require_e2e;
    po.add_user("3333333");
    po.add_user("9999999");
    let agent_id = agent_identity(&mut po, AGENT);
    let mut config = ServerConfig::for_home(&po.paths, PO.parse().unwrap(), po.settings.clone(), po.s2s.clone());
    config.pubsub = pubsub;
    let po_server = Server::start(config).await.unwrap();
    let lab_server = po.start_replica(&lab.home, "lab.example", lab.s2s.clone()).await;
    let mut opts = po.options(&lab_server, false);
    opts.domain = "lab.example".into();
    let agent = Client::connect(&opts, &agent_id).await.unwrap().into_session();
    let gp1 = po.login(&po_server, "1111111").await.unwrap().into_session();
    let gp3 = po.login(&po_server, "3333333").await.unwrap().into_session();
    for jid in [GP1, GP3, AGENT] {
        wait_for_key(&agent, jid).await;
    }
    wait_for_key(&gp1, AGENT).await;
    for (s, jid) in [(&gp1, GP1), (&gp3, GP3), (&agent, AGENT)] {
        let r = s.iq().request(alert::subscribe_iq(PO, NODE, jid)).await.unwrap();
        assert_eq!(alert::read_subscriptions(PO, &r, "jid").unwrap(), [jid]);
    }
    let ca = po.ca.cert_der().to_vec();
    let (id1, id3) = (po.identity("1111111"), po.identity("3333333"));
    let dir = tempfile::tempdir().unwrap();
    let nonces = |name: &str| Mutex::new(alert::open_nonces(&dir.path().join(name)).unwrap());
    let (nonces1, nonces3) = (nonces("gp1-alert-nonces"), nonces("gp3-alert-nonces"));
    World { po, _lab: lab, po_server, lab_server, agent, gp1, gp3, ca, agent_id, id1, id3, nonces1, nonces3, _dir: dir }
}

impl World {
    async fn shutdown(self) {
        self.po_server.shutdown(Duration::from_secs(5)).await;
        self.lab_server.shutdown(Duration::from_secs(5)).await;
    }

    /// What GP 1 is shown of its nodes' items (`alert::received`).
    async fn shown_to_gp1(&self) -> alert::Received {
        alert::received(self.gp1.iq(), PO, &self.id1, &self.ca, &self.nonces1, 50).await.unwrap()
    }

    /// The items of `node` as GP 1 reads them: (id, publisher, payload).
    async fn items(&self, node: &str) -> Vec<(String, String, String)> {
        let r = self.gp1.iq().request(alert::items_iq(PO, node, 200)).await.unwrap();
        alert::read_items(PO, &r).unwrap().into_iter().map(|i| (i.id, i.publisher, i.payload.to_xml(""))).collect()
    }
}

fn signal(author: &str, week: u8) -> Alert {
    Alert {
        id: Alert::signal_id("INFA", &Area::Municipality("5401".into()), IsoWeek::new(2026, week).unwrap()),
        kind: AlertKind::Signal,
        analysis: "INFA".into(),
        area: Area::Municipality("5401".into()),
        week: IsoWeek::new(2026, week).unwrap(),
        observed: Some(Count::Exact(30)),
        threshold: Some(7.5),
        algorithm: Some("EARS_C1".into()),
        series: Some("search@lab.example/agent".into()),
        author: author.into(),
        issued: 1_780_000_000,
        confirms: None,
        text: None,
    }
}

fn gp_alert(author: &str, text: &str) -> Alert {
    Alert {
        id: String::new(),
        kind: AlertKind::Gp,
        observed: None,
        threshold: None,
        algorithm: None,
        series: None,
        text: Some(text.into()),
        ..signal(author, 20)
    }
}

/// The stanza error condition a publication was refused with.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Refused { condition, .. }) => condition,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The DER certificates of `jids` from `s`'s key directory, unchecked
/// (what an attacker encrypts to).
async fn certificates(s: &Session, jids: &[&str]) -> Vec<Vec<u8>> {
    s.iq().lookup_keys(jids).await.unwrap().into_iter().filter_map(|e| e.certificate).collect()
}

/// The next item notified to `s`.
async fn next_item(s: &mut Session) -> alert::Item {
    loop {
        let el = s.next_stanza(Duration::from_secs(20)).await.unwrap();
        if let Some(i) = alert::event_items(&el).into_iter().next() {
            return i;
        }
    }
}

/// A raw publication on `node` of `payload` as item `id` (or none).
async fn publish_raw(s: &Session, node: &str, id: Option<&str>, payload: Element) -> Element {
    s.iq().request(alert::publish_iq(PO, node, id, payload)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_publishing_a_signal_is_refused_and_the_agent_publishes_only_signals() {
    let w = world(PubsubSettings::default()).await;
    // Through the client, as itself.
    let forged = signal(GP1, 20);
    let r = alert::publish(w.gp1.iq(), PO, &forged, &[GP1], &w.id1, &w.ca).await;
    assert_eq!(refusal(r), "forbidden");
    // Raw, claiming the agent as author, under the agent's id.
    let certs = certificates(&w.gp1, &[GP1, GP3]).await;
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let sealed = alert::sealed(&signal(AGENT, 20), &w.id1, &[GP1, GP3], &refs, snow_client::unix_now()).unwrap();
    let r = publish_raw(&w.gp1, NODE, Some("INFA-5401-2026W20"), sealed.clone()).await;
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{}", r.to_xml(""));
    // And without an id.
    let r = publish_raw(&w.gp1, NODE, None, sealed).await;
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // An alert without its kind in clear is not taken at all.
    let r = publish_raw(&w.gp1, NODE, None, Element::new(snow_core::alert::NS_ALERT, "alert")).await;
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    assert!(w.items(NODE).await.is_empty());
    // The agent publishes its signal, and nothing else.
    let published = alert::publish(w.agent.iq(), PO, &signal(AGENT, 20), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    assert_eq!(published.id, "INFA-5401-2026W20");
    let r = alert::publish(w.agent.iq(), PO, &gp_alert(AGENT, "not mine to send"), &[AGENT], &w.agent_id, &w.ca).await;
    assert_eq!(refusal(r), "forbidden");
    // A signal under an id that is not its node's is refused.
    let r = alert::publish(
        w.agent.iq(),
        PO,
        &Alert { id: "INFA-5402-2026W20".into(), ..signal(AGENT, 20) },
        &[AGENT],
        &w.agent_id,
        &w.ca,
    )
    .await;
    assert_eq!(refusal(r), "not-acceptable");
    let items = w.items(NODE).await;
    assert_eq!(
        items.iter().map(|(id, p, _)| (id.as_str(), p.as_str())).collect::<Vec<_>>(),
        [("INFA-5401-2026W20", AGENT)]
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_can_neither_overwrite_nor_retract_anothers_item() {
    let w = world(PubsubSettings::default()).await;
    alert::publish(w.agent.iq(), PO, &signal(AGENT, 20), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    let before = w.items(NODE).await;
    assert_eq!(before.len(), 1);
    // GP 1 publishes its own kind under the agent's id.
    let certs = certificates(&w.gp1, &[GP1, GP3]).await;
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let mut fake = gp_alert(GP1, "all clear, ignore the signal");
    fake.id = "INFA-5401-2026W20".into();
    let sealed = alert::sealed(&fake, &w.id1, &[GP1, GP3], &refs, snow_client::unix_now()).unwrap();
    let r = publish_raw(&w.gp1, NODE, Some("INFA-5401-2026W20"), sealed).await;
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{}", r.to_xml(""));
    let r = alert::publish(w.gp1.iq(), PO, &fake, &[GP1], &w.id1, &w.ca).await;
    assert_eq!(refusal(r), "forbidden");
    // ... or retracts it.
    let r = w.gp1.iq().request(alert::retract_iq(PO, NODE, "INFA-5401-2026W20", true)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    assert_eq!(w.items(NODE).await, before, "the agent's item changed");
    // GP 3 cannot retract or replace GP 1's alert either; GP 1 can.
    let mine = alert::publish(w.gp1.iq(), PO, &gp_alert(GP1, "cluster"), &[GP1], &w.id1, &w.ca).await.unwrap();
    let r = w.gp3.iq().request(alert::retract_iq(PO, NODE, &mine.id, false)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let theirs = Alert { id: mine.id.clone(), ..gp_alert(GP3, "replaced") };
    assert_eq!(refusal(alert::publish(w.gp3.iq(), PO, &theirs, &[GP3], &w.id3, &w.ca).await), "forbidden");
    assert_eq!(w.items(NODE).await.len(), 2);
    let r = w.gp1.iq().request(alert::retract_iq(PO, NODE, &mine.id, false)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(""));
    assert_eq!(w.items(NODE).await, before);
    // The agent retracts its own.
    let r = w.agent.iq().request(alert::retract_iq(PO, NODE, "INFA-5401-2026W20", false)).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(""));
    assert!(w.items(NODE).await.is_empty());
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishing_on_a_node_that_does_not_exist_is_refused() {
    let mut only = std::collections::BTreeMap::new();
    only.insert(AGENT.to_owned(), vec!["INFA".to_owned()]);
    let settings = PubsubSettings {
        analyses: Some(vec!["INFA".into(), "SARS2".into()]),
        areas: vec!["5401".into()],
        signal_publishers: Some(only),
        ..PubsubSettings::default()
    };
    let w = world(settings).await;
    let on = |analysis: &str, area: Area| Alert { analysis: analysis.into(), area, ..gp_alert(GP1, "cluster") };
    // An analysis the PO has no nodes for, and an area outside [pubsub] areas.
    for (a, what) in [
        (on("NOPE", Area::Municipality("5401".into())), "unknown analysis"),
        (on("RSV", Area::Municipality("5401".into())), "analysis not configured"),
        (on("INFA", Area::Municipality("5402".into())), "area not configured"),
    ] {
        assert_eq!(
            refusal(alert::publish(w.gp1.iq(), PO, &a, &[GP1], &w.id1, &w.ca).await),
            "item-not-found",
            "{what}"
        );
    }
    let r = w.gp1.iq().request(alert::subscribe_iq(PO, "alerts/NOPE/5401", GP1)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    // The municipality's county and `all` exist.
    for area in [Area::Municipality("5401".into()), Area::County("54".into()), Area::All] {
        alert::publish(w.gp1.iq(), PO, &on("SARS2", area), &[GP1], &w.id1, &w.ca).await.unwrap();
    }
    // The agent signals only its analyses.
    let sars = Alert {
        id: Alert::signal_id("SARS2", &Area::Municipality("5401".into()), IsoWeek::new(2026, 20).unwrap()),
        analysis: "SARS2".into(),
        ..signal(AGENT, 20)
    };
    assert_eq!(refusal(alert::publish(w.agent.iq(), PO, &sars, &[AGENT], &w.agent_id, &w.ca).await), "forbidden");
    alert::publish(w.agent.iq(), PO, &signal(AGENT, 20), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_publishers_flood_does_not_push_out_anothers_items() {
    let settings = PubsubSettings {
        max_items_per_node: 20,
        max_items_per_publisher: 3,
        publish_burst: 100,
        ..PubsubSettings::default()
    };
    let w = world(settings).await;
    alert::publish(w.agent.iq(), PO, &signal(AGENT, 20), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    let gp3s = alert::publish(w.gp3.iq(), PO, &gp_alert(GP3, "a real cluster"), &[GP3], &w.id3, &w.ca).await.unwrap();
    // GP 1's flood: raw items (no encryption needed to flood).
    let mut flood = Vec::new();
    for _ in 0..30 {
        let payload = Element::new(snow_core::alert::NS_ALERT, "alert").with_attr(KIND_ATTR, "gp");
        let r = publish_raw(&w.gp1, NODE, None, payload).await;
        flood.push(alert::published_id(PO, &r).unwrap());
    }
    let items = w.items(NODE).await;
    let ids: Vec<&str> = items.iter().map(|(id, _, _)| id.as_str()).collect();
    assert!(ids.contains(&"INFA-5401-2026W20") && ids.contains(&gp3s.id.as_str()), "{ids:?}");
    let floods: Vec<&str> = items.iter().filter(|(_, p, _)| p == GP1).map(|(id, _, _)| id.as_str()).collect();
    // GP 1 keeps its newest 3, newest first.
    assert_eq!(floods, flood.iter().rev().take(3).map(String::as_str).collect::<Vec<_>>());
    assert_eq!(items.len(), 5);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publishers_rate_is_limited_without_stopping_others() {
    let settings = PubsubSettings { publish_burst: 3, publish_per_hour: 1, ..PubsubSettings::default() };
    let w = world(settings).await;
    for _ in 0..3 {
        alert::publish(w.gp1.iq(), PO, &gp_alert(GP1, "cluster"), &[GP1], &w.id1, &w.ca).await.unwrap();
    }
    let r = alert::publish(w.gp1.iq(), PO, &gp_alert(GP1, "cluster"), &[GP1], &w.id1, &w.ca).await;
    assert_eq!(refusal(r), "policy-violation");
    alert::publish(w.gp3.iq(), PO, &gp_alert(GP3, "cluster"), &[GP3], &w.id3, &w.ca).await.unwrap();
    alert::publish(w.agent.iq(), PO, &signal(AGENT, 20), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gps_item_id_is_assigned_by_the_service_and_a_chosen_one_refused() {
    let w = world(PubsubSettings::default()).await;
    let a = alert::publish(w.gp1.iq(), PO, &gp_alert(GP1, "cluster"), &[GP1, GP3], &w.id1, &w.ca).await.unwrap();
    assert!(a.id.starts_with("gp-") && a.id.len() == 19, "{}", a.id);
    let confirmation = Alert {
        kind: AlertKind::Confirmation,
        confirms: Some(a.id.clone()),
        text: Some("seen it too".into()),
        ..gp_alert(GP3, "")
    };
    let c = alert::publish(w.gp3.iq(), PO, &confirmation, &[GP3, GP1], &w.id3, &w.ca).await.unwrap();
    assert!(c.id.starts_with("c-") && c.id != a.id, "{}", c.id);
    // A chosen id is refused (not ignored), for an alert and a confirmation.
    for kind in [AlertKind::Gp, AlertKind::Confirmation] {
        let chosen = Alert { id: "gp-mine".into(), kind, confirms: Some(a.id.clone()), ..gp_alert(GP1, "x") };
        assert_eq!(refusal(alert::publish(w.gp1.iq(), PO, &chosen, &[GP1], &w.id1, &w.ca).await), "not-acceptable");
    }
    // Its own id is a replacement.
    let again = Alert { id: a.id.clone(), ..gp_alert(GP1, "cluster, now five families") };
    let r = alert::publish(w.gp1.iq(), PO, &again, &[GP1, GP3], &w.id1, &w.ca).await.unwrap();
    assert_eq!(r.id, a.id);
    let items = w.items(NODE).await;
    assert_eq!(items.iter().filter(|(id, _, _)| *id == a.id).count(), 1);
    // The reader sees the service's ids.
    let got = alert::received(w.gp3.iq(), PO, &w.id3, &w.ca, &w.nonces3, 50).await.unwrap();
    assert_eq!(got.not_shown(), 0, "{:?}", got.unverified);
    let shown: Vec<(&str, Option<&str>)> = got.alerts.iter().map(|(_, a)| (a.id.as_str(), a.text.as_deref())).collect();
    assert_eq!(shown, [(a.id.as_str(), Some("cluster, now five families")), (c.id.as_str(), Some("seen it too"))]);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_subscriber_or_a_node_owner_changes_a_subscription() {
    let settings = PubsubSettings { owners: vec![OWNER.into()], ..PubsubSettings::default() };
    let w = world(settings).await;
    let subscribers = |s: &Session| {
        let iq = s.iq().clone();
        async move {
            alert::read_subscriptions(PO, &iq.request(alert::subscribers_iq(PO, NODE)).await.unwrap(), "jid").unwrap()
        }
    };
    // GP 3 unsubscribes GP 1, subscribes GP 1 elsewhere, or uses the owner's request.
    let unsub = snow_xml::Element::new(snow_xml::NS_CLIENT, "iq")
        .with_attr("type", "set")
        .with_attr("to", PO)
        .with_child(Element::new(snow_xml::NS_PUBSUB, "pubsub").with_child(
            Element::new(snow_xml::NS_PUBSUB, "unsubscribe").with_attr("node", NODE).with_attr("jid", GP1),
        ));
    let r = w.gp3.iq().request(unsub.clone()).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{}", r.to_xml(""));
    let r = w.gp3.iq().request(alert::subscribe_iq(PO, "alerts/INFA/54", GP1)).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    let manage = |jid: &str, state: &str| {
        Element::new(snow_xml::NS_CLIENT, "iq").with_attr("type", "set").with_attr("to", PO).with_child(
            Element::new(snow_xml::NS_PUBSUB_OWNER, "pubsub").with_child(
                Element::new(snow_xml::NS_PUBSUB_OWNER, "subscriptions").with_attr("node", NODE).with_child(
                    Element::new(snow_xml::NS_PUBSUB_OWNER, "subscription")
                        .with_attr("jid", jid.to_owned())
                        .with_attr("subscription", state.to_owned()),
                ),
            ),
        )
    };
    let r = w.gp3.iq().request(manage(GP1, "none")).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let r = w.agent.iq().request(manage(GP1, "none")).await.unwrap();
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    assert_eq!(subscribers(&w.gp3).await, [GP1, GP3, AGENT]);
    // The node owner may; the subscriber may end their own.
    let owner = w.po.login(&w.po_server, "9999999").await.unwrap().into_session();
    let r = owner.iq().request(manage(GP1, "none")).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(""));
    assert_eq!(subscribers(&w.gp3).await, [GP3, AGENT]);
    let mine = Element::new(snow_xml::NS_CLIENT, "iq")
        .with_attr("type", "set")
        .with_attr("to", PO)
        .with_child(Element::new(snow_xml::NS_PUBSUB, "pubsub").with_child(
            Element::new(snow_xml::NS_PUBSUB, "unsubscribe").with_attr("node", NODE).with_attr("jid", GP3),
        ));
    let r = w.gp3.iq().request(mine).await.unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml(""));
    assert_eq!(subscribers(&w.gp1).await, [AGENT]);
    owner.close().await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_shows_an_item_only_when_kind_and_author_inside_match_the_publisher() {
    let w = world(PubsubSettings::default()).await;
    let mut gp1 = w.po.login(&w.po_server, "1111111").await.unwrap().into_session();
    gp1.iq().send_presence().await.unwrap();
    let certs = certificates(&w.gp3, &[GP1, GP3]).await;
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    // GP 3's genuine alert, then its replacements with forged insides,
    // each signed by GP 3 for GP 1 and GP 3.
    let genuine = alert::publish(w.gp3.iq(), PO, &gp_alert(GP3, "genuine"), &[GP3, GP1], &w.id3, &w.ca).await.unwrap();
    let item = next_item(&mut gp1).await;
    let shown = alert::open_item(gp1.iq(), &item, &w.id1, &w.ca, &w.nonces1).await.unwrap();
    assert_eq!((shown.text.as_deref(), shown.author.as_str()), (Some("genuine"), GP3));
    let forgeries = [
        // A signal "from the agent" wrapped as a GP alert: signed as a
        // signal (alert), which a GP alert never is.
        (Alert { id: genuine.id.clone(), ..signal(AGENT, 20) }, "gp", "it is a alert, where a gp-alert was expected"),
        // A signal in GP 3's own name, published as a GP alert.
        (Alert { id: genuine.id.clone(), ..signal(GP3, 20) }, "gp", "it is a alert, where a gp-alert was expected"),
        // GP 1's name inside GP 3's item.
        (
            Alert { id: genuine.id.clone(), ..gp_alert(GP1, "from GP 1, honestly") },
            "gp",
            "it does not match its item: the author inside is not the item's publisher",
        ),
        // A GP alert published as a confirmation.
        (
            Alert { id: genuine.id.clone(), ..gp_alert(GP3, "kind mismatch") },
            "confirmation",
            "it is a gp-alert, where a confirmation was expected",
        ),
        // Another node's analysis inside.
        (
            Alert { id: genuine.id.clone(), analysis: "SARS2".into(), ..gp_alert(GP3, "wrong node") },
            "gp",
            "it does not match its item: the analysis and area inside are not the node's",
        ),
    ];
    for (forged, clear_kind, why) in &forgeries {
        let mut sealed = alert::sealed(forged, &w.id3, &[GP1, GP3], &refs, snow_client::unix_now()).unwrap();
        sealed.set_attr(KIND_ATTR, *clear_kind);
        let r = publish_raw(&w.gp3, NODE, Some(&genuine.id), sealed).await;
        assert_eq!(r.attr("type"), Some("result"), "the service cannot see inside: {}", r.to_xml(""));
        // The notification reaches GP 1, who refuses it and says why.
        let item = next_item(&mut gp1).await;
        assert_eq!((item.id.as_str(), item.publisher.as_str()), (genuine.id.as_str(), GP3));
        assert!(alert::decrypt(&item.id, &item.payload, &w.id1).is_ok(), "it decrypts");
        match alert::open_item(gp1.iq(), &item, &w.id1, &w.ca, &w.nonces1).await {
            Err(e @ alert::Dropped::Unverified(_)) => {
                assert_eq!(e.to_string(), format!("unverified message dropped: {why}"), "{forged:?}")
            }
            other => panic!("{clear_kind} not dropped as unverified: {other:?}"),
        }
        let got = w.shown_to_gp1().await;
        assert!(got.alerts.is_empty() && got.unreadable == 0, "{:?}", got.alerts);
        assert_eq!(got.unverified.len(), 1);
        assert_eq!(got.unverified[0].2.to_string(), *why);
    }
    // The genuine one again is shown.
    let again = Alert { id: genuine.id.clone(), ..gp_alert(GP3, "genuine") };
    alert::publish(w.gp3.iq(), PO, &again, &[GP3, GP1], &w.id3, &w.ca).await.unwrap();
    let got = w.shown_to_gp1().await;
    assert_eq!((got.alerts.len(), got.not_shown()), (1, 0));
    assert_eq!((got.alerts[0].1.author.as_str(), got.alerts[0].1.kind), (GP3, AlertKind::Gp));
    gp1.close().await.unwrap();
    w.shutdown().await;
}

/// What GP 1 is shown now: the alerts' texts, and the reasons of those
/// dropped.
async fn shown(w: &World) -> (Vec<Option<String>>, Vec<String>) {
    let got = w.shown_to_gp1().await;
    assert_eq!(got.unreadable, 0);
    (got.alerts.iter().map(|(_, a)| a.text.clone()).collect(), got.unverified.iter().map(|u| u.2.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signal_is_shown_only_signed_by_a_labs_agent_and_a_gps_item_only_signed_by_a_gp() {
    // A PO service that lets GP 1 publish signals (a hostile or wrongly
    // configured service) and so takes the agent for anyone: the readers
    // still refuse what the signer may not sign.
    let mut only = std::collections::BTreeMap::new();
    only.insert(GP1.to_owned(), vec![]);
    let w = world(PubsubSettings { signal_publishers: Some(only), ..PubsubSettings::default() }).await;
    let mut gp3 = w.po.login(&w.po_server, "3333333").await.unwrap().into_session();
    gp3.iq().send_presence().await.unwrap();
    // GP 1 signs and publishes a signal in its own name; the service takes it.
    let published = alert::publish(w.gp1.iq(), PO, &signal(GP1, 20), &[GP1], &w.id1, &w.ca).await.unwrap();
    assert_eq!(published.id, "INFA-5401-2026W20");
    let why = format!("{GP1} may not sign a signal: a GP's certificate signed it, not a lab's detection agent's");
    let item = next_item(&mut gp3).await;
    match alert::open_item(gp3.iq(), &item, &w.id3, &w.ca, &w.nonces3).await {
        Err(alert::Dropped::Unverified(e)) => assert_eq!(e.to_string(), why),
        other => panic!("a GP's signal was not dropped: {other:?}"),
    }
    let got = alert::received(w.gp3.iq(), PO, &w.id3, &w.ca, &w.nonces3, 50).await.unwrap();
    assert!(got.alerts.is_empty(), "{:?}", got.alerts);
    assert_eq!(got.unverified.iter().map(|u| u.2.to_string()).collect::<Vec<_>>(), [why]);
    // The agent, no signal publisher here, sends a GP's alert and a
    // confirmation: the service takes them, the readers do not.
    let from_agent =
        alert::publish(w.agent.iq(), PO, &gp_alert(AGENT, "all clear"), &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    let c = Alert {
        kind: AlertKind::Confirmation,
        confirms: Some(published.id.clone()),
        ..gp_alert(AGENT, "confirmed by the lab")
    };
    alert::publish(w.agent.iq(), PO, &c, &[AGENT], &w.agent_id, &w.ca).await.unwrap();
    assert!(from_agent.id.starts_with("gp-"), "{from_agent:?}");
    let (texts, reasons) = shown(&w).await;
    assert!(texts.is_empty(), "{texts:?}");
    for want in [
        format!("{AGENT} may not sign a GP's alert: only a GP sends one"),
        format!("{AGENT} may not sign a confirmation: only a GP confirms an alert"),
    ] {
        assert!(reasons.contains(&want), "{want} not in {reasons:?}");
    }
    gp3.close().await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_not_signed_for_the_reader_is_dropped() {
    let w = world(PubsubSettings::default()).await;
    // GP 3 signs for itself alone and encrypts to GP 1 as well.
    let certs = certificates(&w.gp3, &[GP1, GP3]).await;
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let sealed = alert::sealed(&gp_alert(GP3, "not for GP 1"), &w.id3, &[GP3], &refs, snow_client::unix_now()).unwrap();
    let r = publish_raw(&w.gp3, NODE, None, sealed).await;
    alert::published_id(PO, &r).unwrap();
    assert_eq!(shown(&w).await, (vec![], vec![format!("it is not addressed to {GP1}")]));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_signed_alert_under_another_item_is_a_replay_and_listing_again_is_not() {
    let w = world(PubsubSettings::default()).await;
    let genuine = alert::publish(w.gp3.iq(), PO, &gp_alert(GP3, "cluster"), &[GP3, GP1], &w.id3, &w.ca).await.unwrap();
    // Listed once, twice: the same item each time.
    let once = (vec![Some("cluster".to_owned())], vec![]);
    assert_eq!(shown(&w).await, once);
    assert_eq!(shown(&w).await, once);
    // The item's sealed alert as stored, published again by its publisher
    // (as a service could copy it): a new item, the same signed alert.
    let r = w.gp1.iq().request(alert::items_iq(PO, NODE, 10)).await.unwrap();
    let stored = alert::read_items(PO, &r).unwrap().into_iter().find(|i| i.id == genuine.id).unwrap();
    let r = publish_raw(&w.gp3, NODE, None, stored.payload.clone()).await;
    let copy = alert::published_id(PO, &r).unwrap();
    assert_ne!(copy, genuine.id);
    let replay = (vec![Some("cluster".to_owned())], vec!["it was received before (a replay)".to_owned()]);
    assert_eq!(shown(&w).await, replay);
    let got = w.shown_to_gp1().await;
    assert_eq!((got.alerts[0].0.id.as_str(), got.unverified[0].1.as_str()), (genuine.id.as_str(), copy.as_str()));
    // Also after a restart, and in another process on the same record.
    let other = Mutex::new(alert::open_nonces(&w._dir.path().join("gp1-alert-nonces")).unwrap());
    let got = alert::received(w.gp1.iq(), PO, &w.id1, &w.ca, &other, 50).await.unwrap();
    assert_eq!((got.alerts.len(), got.unverified.len()), (1, 1));
    assert_eq!(got.alerts[0].0.id, genuine.id);
    // A reader who met the copy first takes the copy, then the original
    // is the replay: one of them is shown, never both.
    let fresh = tempfile::tempdir().unwrap();
    let first = Mutex::new(alert::open_nonces(&fresh.path().join("n")).unwrap());
    let got = alert::received(w.gp1.iq(), PO, &w.id1, &w.ca, &first, 50).await.unwrap();
    assert_eq!((got.alerts.len(), got.unverified.len()), (1, 1));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_signers_alert_is_dropped() {
    let mut w = world(PubsubSettings::default()).await;
    alert::publish(w.gp3.iq(), PO, &gp_alert(GP3, "cluster"), &[GP3, GP1], &w.id3, &w.ca).await.unwrap();
    assert_eq!(shown(&w).await, (vec![Some("cluster".to_owned())], vec![]));
    w.po.revoke("3333333");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !matches!(w.gp1.iq().certificate_of(GP3, &w.ca).await, Err(ClientError::NoKey { status, .. }) if status == "revoked")
    {
        assert!(std::time::Instant::now() < deadline, "the directory never said revoked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown(&w).await, (vec![], vec![format!("{GP3}'s certificate has been revoked")]));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_require_e2e_an_alert_in_clear_is_not_stored() {
    let w = world_with(PubsubSettings::default(), true).await;
    let detail = alert::detail_element(&gp_alert(GP1, "klartekst om en pasient"));
    let cert = certificates(&w.gp1, &[GP1]).await.remove(0);
    let sealed = alert::sealed(&gp_alert(GP1, "sealed"), &w.id1, &[GP1], &[&cert], snow_client::unix_now()).unwrap();
    let encrypted = sealed.children().next().cloned().unwrap();
    let clear_alert = |children: Vec<Element>| {
        let mut a = Element::new(snow_core::alert::NS_ALERT, "alert").with_attr(KIND_ATTR, "gp");
        for c in children {
            a.push_child(c);
        }
        a
    };
    for (payload, what) in [
        (clear_alert(vec![detail.clone()]), "the detail in clear"),
        (clear_alert(vec![encrypted.clone(), detail.clone()]), "clear text beside the EncryptedData"),
        (clear_alert(vec![]), "no EncryptedData at all"),
        (clear_alert(vec![encrypted.clone(), encrypted.clone()]), "two EncryptedData"),
    ] {
        let r = publish_raw(&w.gp1, NODE, None, payload).await;
        assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"), "{what}: {}", r.to_xml(""));
    }
    // The sealed alert is taken, and nothing in clear was stored.
    alert::publish(w.gp1.iq(), PO, &gp_alert(GP1, "sealed"), &[GP1], &w.id1, &w.ca).await.unwrap();
    let items = w.items(NODE).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items.iter().all(|(_, _, p)| !p.contains("klartekst")), "{items:?}");
    w.shutdown().await;
}
