//! The search agent in a federation on 127.0.0.1: a GP at the PO searches
//! the lab's statistics through the lab's agent, end-to-end encrypted, with
//! `require_e2e` on at both servers.

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use snow_agents::{AgentConfig, Attach, SearchAgent, SearchSettings};
use snow_client::stats::{read_search_answer, search_request, NS_STATS};
use snow_client::{ClientError, Session};
use snow_core::stats::{Area, Count, Counts, Granularity, Period, StatsQuery};
use snow_core::SiteHome;
use snow_store::{AggRow, LabDb};
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const AGENT: &str = "search@lab.example/agent";

/// Week 2026-W02 in 5401: 12 tests, 7 positive, 6 persons; W03: 3 tests,
/// 2 positive (small: suppressed). County 54 also has 5402.
fn load_lab_data(db_path: &std::path::Path) {
    let mut db = LabDb::open(db_path).unwrap();
    let mut imp = db.begin().unwrap();
    let mut n = 0u32;
    let mut add = |muni: &str, week: u8, patient: u32, positive: bool| {
        n += 1;
        let (sample, patient) = (format!("{n:032x}"), format!("{patient:064x}"));
        imp.add(&AggRow {
            sample_id: &sample,
            patient: &patient,
            analysis: "INFA",
            municipality: muni,
            year: 2026,
            week,
            age_group: "25-44",
            sex: "F",
            positive,
        })
        .unwrap();
    };
    for i in 0..12 {
        // Patient 1 twice positive: 7 positive tests, 6 persons.
        add("5401", 2, if i == 6 { 1 } else { i }, i < 7);
    }
    for i in 0..3 {
        add("5401", 3, 100 + i, i < 2);
    }
    for i in 0..20 {
        add("5402", 3, 200 + i, i < 10);
    }
    imp.commit("h", "test.csv", 0).unwrap();
}

fn query(area: Area) -> StatsQuery {
    StatsQuery {
        analysis: "INFA".into(),
        period: Period::parse("2026-W01", "2026-W04").unwrap(),
        area,
        age_group: None,
        sex: None,
        granularity: Granularity::Week,
    }
}

async fn wait_for_key(c: &Session, jid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = c.iq().lookup_keys(&[jid]).await.unwrap();
        if e.first().is_some_and(|e| e.status == "valid") {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{jid} never reached the key directory");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_searches_a_labs_statistics_across_the_federation() {
    let mut po = Site::with_domain("po.example");
    po.settings.require_e2e = true;
    let lab = po.replica("lab.example");
    po.add_user("1111111");
    let gp_at_lab = po.add_user_at("2222222", "lab.example");
    let agent_cert = po.ca.issue_agent(&"search@lab.example".parse().unwrap()).unwrap();
    let identity = snow_agents::load_identity(&agent_cert.cert_path, &agent_cert.key_path).unwrap();
    load_lab_data(&SiteHome::new(&lab.home).lab_db());

    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, "lab.example", lab.s2s.clone()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent = SearchAgent::start(
        AgentConfig {
            attach: Attach::Client { server: lab_server.c2s_addr, domain: "lab.example".into() },
            ca_der: po.ca.cert_der().to_vec(),
            identity,
            lab_db: SiteHome::new(&lab.home).lab_db(),
            settings: SearchSettings::default(),
            workers: 1,
            queue: 1,
            detection: None,
        },
        stopped,
    );

    let gp = po.login(&po_server, "1111111").await.unwrap().into_session();
    wait_for_key(&gp, "search@lab.example").await;
    // The agent needs the GP's key from the lab's replica of the directory.
    let lab_gp = po.login_at(&lab_server, "lab.example", "2222222").await.unwrap().into_session();
    wait_for_key(&lab_gp, "1111111@po.example").await;
    let _ = gp_at_lab;
    let identity = po.identity("1111111");
    let ca = po.ca.cert_der().to_vec();

    // The agent logs in asynchronously: retry until it answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match gp.iq().search(AGENT, &query(Area::Municipality("5401".into())), &identity, &ca).await {
            Ok(a) => break a,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the agent never answered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let got: Vec<_> = answer.buckets.iter().map(|b| (b.label.as_str(), b.counts)).collect();
    let counts = |tested, positive, persons| Some(Counts { tested, positive, persons });
    assert_eq!(
        got,
        [
            // Before the lab's first week of data (W02): no data, not zero.
            ("2026-W01", None),
            ("2026-W02", counts(Count::Exact(12), Count::Exact(7), Count::Exact(6))),
            // 3 tested, 2 positive: below the threshold, never sent.
            ("2026-W03", counts(Count::Below(5), Count::Below(5), Count::Below(5))),
            // After its last week (W03).
            ("2026-W04", None),
        ]
    );
    assert_eq!(answer.threshold, 5);

    // A county sums its municipalities; a total is one bucket.
    let county = StatsQuery { granularity: Granularity::Total, ..query(Area::County("54".into())) };
    let a = gp.iq().search(AGENT, &county, &identity, &ca).await.unwrap();
    let total = a.buckets[0].counts.unwrap();
    assert_eq!((a.buckets.len(), total.tested, total.positive), (1, Count::Exact(35), Count::Exact(19)));

    // SQL-looking and unknown parameters are refused before any SQL.
    for (analysis, field) in [("INFA' OR '1'='1", "analysis"), ("EBOLA", "analysis")] {
        let q = StatsQuery { analysis: analysis.into(), ..query(Area::All) };
        match gp.iq().search(AGENT, &q, &identity, &ca).await {
            Err(ClientError::Refused { condition, text, .. }) => {
                assert_eq!(condition, "bad-request");
                let text = text.unwrap_or_default();
                assert!(text.starts_with(field) && !text.contains(analysis), "{text}");
            }
            other => panic!("{analysis:?} was not refused: {other:?}"),
        }
    }
    let q = StatsQuery { age_group: Some("0-4) OR (1=1".into()), ..query(Area::All) };
    assert!(matches!(gp.iq().search(AGENT, &q, &identity, &ca).await, Err(ClientError::Refused { .. })));

    // A search in clear text is refused: requests must be encrypted.
    let clear = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", AGENT)
        .with_child(Element::new(NS_STATS, "search").with_child(snow_client::stats::query_element(&query(Area::All))));
    let reply = gp.iq().request(clear).await.unwrap();
    assert_eq!(snow_xml::stanza::error_of(&reply).0, "not-acceptable");

    // Ten searches at once: one runs, one waits, the rest are refused with
    // resource-constraint, and every one gets an answer or that refusal.
    let agent_cert = gp.iq().certificate_of("search@lab.example", &ca).await.unwrap();
    // In one write, on a connection of its own.
    let mut burst = po.login(&po_server, "1111111").await.unwrap();
    let before = (agent.stats().accepted(), agent.stats().rejected());
    let mut batch = String::new();
    for i in 0..10 {
        let mut iq = search_request(AGENT, &query(Area::All), &agent_cert).unwrap();
        iq.set_attr("id", format!("burst-{i}"));
        batch.push_str(&iq.to_xml(NS_CLIENT));
    }
    burst.send_raw(&batch).await.unwrap();
    let (mut answered, mut refused) = (0, 0);
    while answered + refused < 10 {
        let el = burst.next_stanza(Duration::from_secs(20)).await.unwrap();
        if !el.attr("id").is_some_and(|id| id.starts_with("burst-")) {
            continue;
        }
        match read_search_answer(AGENT, &el, &identity) {
            Ok(_) => answered += 1,
            Err(ClientError::Refused { condition, .. }) if condition == "resource-constraint" => refused += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let stats = agent.stats();
    assert_eq!(stats.peak_running(), 1, "more than max_search_agents ran at once");
    assert_eq!((stats.accepted() - before.0, stats.rejected() - before.1), (answered, refused));
    assert!(refused >= 1 && answered >= 1, "answered {answered}, refused {refused}");

    stop.send(true).unwrap();
    agent.join().await;
    po_server.shutdown(Duration::from_secs(5)).await;
    lab_server.shutdown(Duration::from_secs(5)).await;
}

/// The same agent in a process of its own: attached to the lab server as
/// the external component `search.lab.example` with message
/// authentication on the component link, reached by the PO's GP over s2s
/// (a link from po.example to search.lab.example, and the answer on one
/// from search.lab.example back to po.example).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_search_agent_answers_as_a_component_across_the_federation() {
    use snow_agents::component::{ComponentOptions, LinkAuth};
    use snow_core::files::{write, Mode};
    use snow_crypto::msgauth::{keys::generate_line, Algorithm, KeyStore, Receiver, Sender};
    use std::sync::Arc;

    const COMPONENT: &str = "search.lab.example";
    let mut po = Site::with_domain("po.example");
    po.settings.require_e2e = true;
    let lab = po.replica_with_components("lab.example", &[COMPONENT]);
    po.add_user("1111111");
    po.add_user_at("2222222", "lab.example");
    let agent_cert = po.ca.issue_agent(&COMPONENT.parse().unwrap()).unwrap();
    let identity = snow_agents::load_identity(&agent_cert.cert_path, &agent_cert.key_path).unwrap();
    load_lab_data(&SiteHome::new(&lab.home).lab_db());

    // The lab server's component port, the shared secret and the keys.
    let keys = generate_line("lab.example", "k1", Algorithm::HmacSha256, 0).unwrap()
        + &generate_line("search", "k1", Algorithm::HmacSha256, 0).unwrap();
    write(&SiteHome::new(&lab.home).msgauth_keys(), keys.as_bytes(), Mode::Private).unwrap();
    write(&lab.home.join("search.secret"), b"search agent secret, long enough", Mode::Private).unwrap();
    let mut config = snow_server::ServerConfig::for_home(
        &SiteHome::new(&lab.home),
        "lab.example".parse().unwrap(),
        po.settings.clone(),
        lab.s2s.clone(),
    );
    config.settings.component_bind = "127.0.0.1:0".into();
    config.components = vec![snow_server::ComponentSettings {
        domain: COMPONENT.into(),
        secret_file: "search.secret".into(),
        hmac: true,
        source: Some("search".into()),
    }];
    let po_server = po.start().await;
    let lab_server = snow_server::Server::start(config).await.unwrap();

    let store = Arc::new(KeyStore::load(&SiteHome::new(&lab.home).msgauth_keys(), 0).unwrap());
    let options = ComponentOptions {
        server: lab_server.component_addr.unwrap(),
        domain: COMPONENT.into(),
        secret: "search agent secret, long enough".to_owned().into(),
        auth: Some(LinkAuth {
            sender: Arc::new(Sender::new(Arc::clone(&store), "search").unwrap()),
            receiver: Arc::new(Receiver::new(Arc::clone(&store))),
            server_source: "lab.example".into(),
        }),
        timeout: Duration::from_secs(10),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent = SearchAgent::start(
        AgentConfig {
            attach: Attach::Component { options, server_domain: "lab.example".into() },
            ca_der: po.ca.cert_der().to_vec(),
            identity,
            lab_db: SiteHome::new(&lab.home).lab_db(),
            settings: SearchSettings::default(),
            workers: 1,
            queue: 4,
            detection: None,
        },
        stopped,
    );

    let gp = po.login(&po_server, "1111111").await.unwrap().into_session();
    wait_for_key(&gp, COMPONENT).await;
    let lab_gp = po.login_at(&lab_server, "lab.example", "2222222").await.unwrap().into_session();
    wait_for_key(&lab_gp, "1111111@po.example").await;
    let identity = po.identity("1111111");
    let ca = po.ca.cert_der().to_vec();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match gp.iq().search(COMPONENT, &query(Area::Municipality("5401".into())), &identity, &ca).await {
            Ok(a) => break a,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the component agent never answered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let w02 = answer.buckets.iter().find(|b| b.label == "2026-W02").unwrap();
    let w02 = w02.counts.unwrap();
    assert_eq!((w02.tested, w02.positive, w02.persons), (Count::Exact(12), Count::Exact(7), Count::Exact(6)));
    assert!(agent.stats().accepted() >= 1);

    // A search in clear text is still refused by the agent.
    let clear = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", COMPONENT)
        .with_child(Element::new(NS_STATS, "search").with_child(snow_client::stats::query_element(&query(Area::All))));
    let reply = gp.iq().request(clear).await.unwrap();
    assert_eq!(snow_xml::stanza::error_of(&reply).0, "not-acceptable");

    stop.send(true).unwrap();
    agent.join().await;
    po_server.shutdown(Duration::from_secs(5)).await;
    lab_server.shutdown(Duration::from_secs(5)).await;
}
