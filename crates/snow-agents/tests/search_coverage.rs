//! What a search says about data the lab does not have, over real sockets
//! (a GP at the PO, the lab's agent behind the lab server, s2s between
//! them): an area the lab never had a row for is refused by name; a
//! period outside the weeks the lab has data for is "no data", while a
//! week inside them without rows is a real zero; codes in any case are
//! understood.

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use snow_agents::{AgentConfig, Attach, SearchAgent, SearchSettings};
use snow_client::stats::{query_element, read_search_answer, NS_STATS};
use snow_client::{ClientError, Session};
use snow_core::stats::{Area, Count, Counts, Granularity, Period, Sex, StatsAnswer, StatsError, StatsQuery};
use snow_core::SiteHome;
use snow_store::{AggRow, LabDb};
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const AGENT: &str = "search@lab.example/agent";

/// INFA in 5401: 2026-W10 12 tests (6 positive, 6 persons), W13 8 tests
/// (none positive). RSV in 1804: W12 6 tests. The lab's data covers
/// W10–W13; it knows 5401, 54, 1804 and 18.
fn load_lab_data(db_path: &std::path::Path) {
    let mut db = LabDb::open(db_path).unwrap();
    let mut imp = db.begin().unwrap();
    let mut n = 0u32;
    let mut add = |analysis: &str, muni: &str, week: u8, positive: bool| {
        n += 1;
        let (sample, patient) = (format!("{n:032x}"), format!("{n:064x}"));
        imp.add(&AggRow {
            sample_id: &sample,
            patient: &patient,
            analysis,
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
        add("INFA", "5401", 10, i < 6);
    }
    for _ in 0..8 {
        add("INFA", "5401", 13, false);
    }
    for _ in 0..6 {
        add("RSV", "1804", 12, true);
    }
    imp.commit("h", "test.csv", 0).unwrap();
}

fn query(area: Area, from: &str, to: &str) -> StatsQuery {
    StatsQuery {
        analysis: "INFA".into(),
        period: Period::parse(from, to).unwrap(),
        area,
        age_group: None,
        sex: None,
        granularity: Granularity::Week,
    }
}

/// Each bucket as (label, tested), `None` for no data.
fn tested(a: &StatsAnswer) -> Vec<(&str, Option<Count>)> {
    a.buckets.iter().map(|b| (b.label.as_str(), b.counts.map(|c| c.tested))).collect()
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
async fn unknown_areas_are_refused_by_name_and_periods_outside_the_data_are_no_data() {
    let mut po = Site::with_domain("po.example");
    po.settings.require_e2e = true;
    let lab = po.replica("lab.example");
    po.add_user("1111111");
    po.add_user_at("2222222", "lab.example");
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
            queue: 4,
            detection: None,
        },
        stopped,
    );

    let gp = po.login(&po_server, "1111111").await.unwrap().into_session();
    wait_for_key(&gp, "search@lab.example").await;
    let lab_gp = po.login_at(&lab_server, "lab.example", "2222222").await.unwrap().into_session();
    wait_for_key(&lab_gp, "1111111@po.example").await;
    let identity = po.identity("1111111");
    let ca = po.ca.cert_der().to_vec();

    // The agent logs in asynchronously: retry until it answers.
    let muni = || Area::Municipality("5401".into());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match gp.iq().search(AGENT, &query(muni(), "2026-W08", "2026-W14"), &identity, &ca).await {
            Ok(a) => break a,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the agent never answered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Before the lab's first week and after its last: no data. W11 and
    // W12 are inside its data with no INFA rows in 5401: real zeros.
    assert_eq!(
        tested(&answer),
        [
            ("2026-W08", None),
            ("2026-W09", None),
            ("2026-W10", Some(Count::Exact(12))),
            ("2026-W11", Some(Count::Exact(0))),
            ("2026-W12", Some(Count::Exact(0))),
            ("2026-W13", Some(Count::Exact(8))),
            ("2026-W14", None),
        ]
    );
    let w10 = answer.buckets[2].counts.unwrap();
    assert_eq!(w10, Counts { tested: Count::Exact(12), positive: Count::Exact(6), persons: Count::Exact(6) });
    // A whole period before the data, as a total: one bucket, no data.
    let q = StatsQuery { granularity: Granularity::Total, ..query(muni(), "2025-W01", "2025-W52") };
    let a = gp.iq().search(AGENT, &q, &identity, &ca).await.unwrap();
    assert_eq!(tested(&a), [("2025-W01/2025-W52", None)]);

    // Areas the lab never had a row for, in any analysis: refused by name,
    // and nothing more is said.
    for (area, text) in [
        (Area::Municipality("9999".into()), "area: no data for municipality 9999"),
        (Area::County("99".into()), "area: no data for county 99"),
        // County 54 is known, its municipality 5402 is not.
        (Area::Municipality("5402".into()), "area: no data for municipality 5402"),
    ] {
        match gp.iq().search(AGENT, &query(area.clone(), "2026-W10", "2026-W13"), &identity, &ca).await {
            Err(ClientError::Refused { condition, text: Some(got), .. }) => {
                assert_eq!((condition.as_str(), got.as_str()), ("bad-request", text));
                assert_eq!(StatsError::no_data_area(&got), Some(area));
            }
            other => panic!("{area:?} was not refused: {other:?}"),
        }
    }
    // Known is overall: 1804 (and county 18) only had RSV rows; INFA there
    // is zero inside the data, not a refusal.
    for area in [Area::Municipality("1804".into()), Area::County("18".into())] {
        let a = gp.iq().search(AGENT, &query(area.clone(), "2026-W12", "2026-W12"), &identity, &ca).await.unwrap();
        assert_eq!(tested(&a), [("2026-W12", Some(Count::Exact(0)))], "{area:?}");
    }

    // Codes in any case, as another client may send them: understood, and
    // answered in the one form.
    let agent_cert = gp.iq().certificate_of("search@lab.example", &ca).await.unwrap();
    let mut q = query_element(&StatsQuery { sex: Some(Sex::Female), ..query(muni(), "2026-W10", "2026-W10") });
    for (attr, value) in [("analysis", "infa"), ("sex", "f"), ("granularity", "Week"), ("area", "Municipality:5401")] {
        q.set_attr(attr, value);
    }
    let mut search = Element::new(NS_STATS, "search").with_child(q);
    snow_crypto::e2e::encrypt_content(
        &mut search,
        NS_STATS,
        &[agent_cert.as_slice()],
        snow_crypto::e2e::KeyTransport::default(),
    )
    .unwrap();
    let iq = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", AGENT).with_child(search);
    let reply = gp.iq().request(iq).await.unwrap();
    let a = read_search_answer(AGENT, &reply, &identity).unwrap();
    assert_eq!(
        (a.query.analysis.as_str(), a.query.sex, a.query.granularity),
        ("INFA", Some(Sex::Female), Granularity::Week)
    );
    assert_eq!(tested(&a), [("2026-W10", Some(Count::Exact(12)))]);

    stop.send(true).unwrap();
    agent.join().await;
    po_server.shutdown(Duration::from_secs(5)).await;
    lab_server.shutdown(Duration::from_secs(5)).await;
}
