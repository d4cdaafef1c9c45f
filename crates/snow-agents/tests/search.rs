//! The search agent in a federation on 127.0.0.1: a GP at the PO searches
//! the lab's statistics through the lab's agent, end-to-end encrypted, with
//! `require_e2e` on at both servers.

mod lab_federation;

use std::time::Duration;

use lab_federation::{
    agent_identity, first_answer, import_rows, log_in_gps, sites, start_agent, Federation, Row, AGENT,
};
use snow_agents::{Attach, SearchSettings};
use snow_client::stats::{read_search_answer, search_request, NS_STATS};
use snow_client::ClientError;
use snow_core::stats::{Area, Catalogue, Count, Counts, Granularity, IsoWeek, Sex, StatsQuery};
use snow_core::SiteHome;
use snow_xml::{Element, NS_CLIENT};

/// Week 2026-W02 in 5401: 12 tests, 7 positive, 6 persons; W03: 3 tests,
/// 2 positive (small: suppressed). County 54 also has 5402.
fn lab_rows() -> Vec<Row<'static>> {
    let mut rows = Vec::new();
    for i in 0..12 {
        // Patient 1 twice positive: 7 positive tests, 6 persons.
        rows.push(("INFA", "5401", 2, if i == 6 { 1 } else { i }, i < 7));
    }
    for i in 0..3 {
        rows.push(("INFA", "5401", 3, 100 + i, i < 2));
    }
    for i in 0..20 {
        rows.push(("INFA", "5402", 3, 200 + i, i < 10));
    }
    rows
}

/// INFA by week, 2026-W01 to W04.
fn query(area: Area) -> StatsQuery {
    lab_federation::query(area, "2026-W01", "2026-W04")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_searches_a_labs_statistics_across_the_federation() {
    let f = Federation::start(1, lab_rows()).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());

    let answer = first_answer(gp, AGENT, &query(Area::Municipality("5401".into())), identity, ca).await;
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
    let a = gp.iq().search(AGENT, &county, identity, ca).await.unwrap();
    let total = a.buckets[0].counts.unwrap();
    assert_eq!((a.buckets.len(), total.tested, total.positive), (1, Count::Exact(35), Count::Exact(19)));

    // SQL-looking and unknown parameters are refused before any SQL.
    for (analysis, field) in [("INFA' OR '1'='1", "analysis"), ("EBOLA", "analysis")] {
        let q = StatsQuery { analysis: analysis.into(), ..query(Area::All) };
        match gp.iq().search(AGENT, &q, identity, ca).await {
            Err(ClientError::Refused { condition, text, .. }) => {
                assert_eq!(condition, "bad-request");
                let text = text.unwrap_or_default();
                assert!(text.starts_with(field) && !text.contains(analysis), "{text}");
            }
            other => panic!("{analysis:?} was not refused: {other:?}"),
        }
    }
    let q = StatsQuery { age_group: Some("0-4) OR (1=1".into()), ..query(Area::All) };
    assert!(matches!(gp.iq().search(AGENT, &q, identity, ca).await, Err(ClientError::Refused { .. })));

    // A search in clear text is refused: requests must be encrypted.
    let clear = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", AGENT)
        .with_child(Element::new(NS_STATS, "search").with_child(snow_client::stats::query_element(&query(Area::All))));
    let reply = gp.iq().request(clear).await.unwrap();
    assert_eq!(snow_xml::stanza::error_of(&reply).0, "not-acceptable");

    // Ten searches at once: one runs, one waits, the rest are refused with
    // resource-constraint, and every one gets an answer or that refusal.
    let agent_cert = gp.iq().certificate_of("search@lab.example", ca).await.unwrap();
    // In one write, on a connection of its own.
    let mut burst = f.po.login(&f.po_server, "1111111").await.unwrap();
    let before = (f.agent.stats().accepted(), f.agent.stats().rejected());
    let mut batch = String::new();
    let mut requests = std::collections::HashMap::new();
    for _ in 0..10 {
        let (iq, request) = search_request(AGENT, &query(Area::All), &agent_cert, identity).unwrap();
        batch.push_str(&iq.to_xml(NS_CLIENT));
        requests.insert(request.id.clone(), request);
    }
    burst.send_raw(&batch).await.unwrap();
    let (mut answered, mut refused) = (0, 0);
    while answered + refused < 10 {
        let el = burst.next_stanza(Duration::from_secs(20)).await.unwrap();
        let Some(request) = el.attr("id").and_then(|id| requests.get(id)) else { continue };
        match read_search_answer(AGENT, &el, identity, &agent_cert, request) {
            Ok(_) => answered += 1,
            Err(ClientError::Refused { condition, .. }) if condition == "resource-constraint" => refused += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let stats = f.agent.stats();
    assert_eq!(stats.peak_running(), 1, "more than max_search_agents ran at once");
    assert_eq!((stats.accepted() - before.0, stats.rejected() - before.1), (answered, refused));
    assert!(refused >= 1 && answered >= 1, "answered {answered}, refused {refused}");

    f.shutdown().await;
}

/// The codes of the areas a catalogue lists, as a GP types them.
fn area_codes(c: &Catalogue) -> Vec<&str> {
    c.areas.iter().map(|a| a.area.code()).collect()
}

fn week(w: u8) -> IsoWeek {
    IsoWeek::new(2026, w).unwrap()
}

/// The choices a GP's search form offers, asked of the agent in clear
/// across the federation: the lab's analyses with their names, the areas
/// it has data for (county 54 with 5401 and 5402, nothing else), its age
/// groups, every sex and granularity, and the weeks of its data. A search
/// for each area listed is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gp_reads_the_labs_catalogue_across_the_federation() {
    let f = Federation::start(1, lab_rows()).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());
    // Once the agent is online.
    first_answer(gp, AGENT, &query(Area::All), identity, ca).await;

    let c = gp.iq().catalogue(AGENT).await.unwrap();
    let lab = SearchSettings::default().lab;
    assert_eq!(c.analyses.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), lab.analyses);
    assert_eq!(c.analyses[0].name.as_deref(), Some("Influensa A"));
    assert_eq!(area_codes(&c), ["54", "5401", "5402"]);
    assert_eq!(c.age_groups, lab.age_groups);
    assert_eq!(c.sexes, Sex::ALL);
    assert_eq!(c.granularities, Granularity::ALL);
    assert_eq!(c.coverage, Some((week(2), week(3))));
    for a in &c.areas {
        let q = query(a.area.clone());
        assert!(gp.iq().search(AGENT, &q, identity, ca).await.is_ok(), "{}", a.area.describe());
    }

    // In clear both ways, and the search queue is not involved.
    let before = f.agent.stats().accepted();
    let reply = gp.iq().request(snow_client::stats::catalogue_request(AGENT)).await.unwrap();
    let payload = reply.child(NS_STATS, "catalogue").unwrap();
    assert!(payload.child(snow_crypto::e2e::NS_XENC, "EncryptedData").is_none());
    assert_eq!(snow_client::stats::parse_catalogue(payload).unwrap(), c);
    assert_eq!(f.agent.stats().accepted(), before);

    f.shutdown().await;
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
    let (mut po, lab) = sites(&[COMPONENT]);
    let identity = agent_identity(&mut po, COMPONENT);
    import_rows(&SiteHome::new(&lab.home).lab_db(), "h", "test.csv", lab_rows());

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
        confidential: false,
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
    let attach = Attach::Component { options, server_domain: "lab.example".into() };
    let (agent, stop) = start_agent(&po, &lab.home, attach, identity, 4, None);

    let (gp, _lab_gp) = log_in_gps(&po, &po_server, &lab_server, COMPONENT).await;
    let identity = po.identity("1111111");
    let ca = po.ca.cert_der().to_vec();

    let answer = first_answer(&gp, COMPONENT, &query(Area::Municipality("5401".into())), &identity, &ca).await;
    let w02 = answer.buckets.iter().find(|b| b.label == "2026-W02").unwrap();
    let w02 = w02.counts.unwrap();
    assert_eq!((w02.tested, w02.positive, w02.persons), (Count::Exact(12), Count::Exact(7), Count::Exact(6)));
    assert!(agent.stats().accepted() >= 1);

    // Its catalogue over s2s; after another import (RSV in 1804, week 5)
    // it lists the new areas and weeks.
    let c = gp.iq().catalogue(COMPONENT).await.unwrap();
    assert_eq!((area_codes(&c), c.coverage), (vec!["54", "5401", "5402"], Some((week(2), week(3)))));
    // (Its own sample id: import_rows numbers samples from 1 in every file.)
    let mut db = snow_store::LabDb::open(&SiteHome::new(&lab.home).lab_db()).unwrap();
    let mut more = db.begin().unwrap();
    more.add(&snow_store::AggRow {
        sample_id: "more-1",
        patient: "p",
        analysis: "RSV",
        municipality: "1804",
        year: 2026,
        week: 5,
        age_group: "25-44",
        sex: "F",
        positive: true,
        record_key: 7,
    })
    .unwrap();
    more.commit("h2", "more.csv", 0).unwrap();
    let c = gp.iq().catalogue(COMPONENT).await.unwrap();
    assert_eq!(area_codes(&c), ["18", "1804", "54", "5401", "5402"]);
    assert_eq!(c.coverage, Some((week(2), week(5))));

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
