//! What a search says about data the lab does not have, over real sockets
//! (a GP at the PO, the lab's agent behind the lab server, s2s between
//! them): an area the lab never had a row for is refused by name; a
//! period outside the weeks the lab has data for is "no data", while a
//! week inside them without rows is a real zero; codes in any case are
//! understood.

mod lab_federation;

use lab_federation::{first_answer, query, Federation, Row, AGENT};
use snow_client::signed;
use snow_client::stats::{query_element, read_search_answer, NS_STATS};
use snow_client::ClientError;
use snow_core::stats::{Area, Count, Counts, Granularity, Sex, StatsAnswer, StatsError, StatsQuery};
use snow_xml::{Element, NS_CLIENT};

/// INFA in 5401: 2026-W10 12 tests (6 positive, 6 persons), W13 8 tests
/// (none positive). RSV in 1804: W12 6 tests. The lab's data covers
/// W10–W13; it knows 5401, 54, 1804 and 18.
fn lab_rows() -> Vec<Row<'static>> {
    let infa_w10 = (0..12).map(|i| ("INFA", "5401", 10, i < 6));
    let infa_w13 = (0..8).map(|_| ("INFA", "5401", 13, false));
    let rsv_w12 = (0..6).map(|_| ("RSV", "1804", 12, true));
    // Each test of a patient of its own.
    let rows = infa_w10.chain(infa_w13).chain(rsv_w12);
    rows.zip(1..).map(|((analysis, muni, week, positive), patient)| (analysis, muni, week, patient, positive)).collect()
}

/// Each bucket as (label, tested), `None` for no data.
fn tested(a: &StatsAnswer) -> Vec<(&str, Option<Count>)> {
    a.buckets.iter().map(|b| (b.label.as_str(), b.counts.map(|c| c.tested))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_areas_are_refused_by_name_and_periods_outside_the_data_are_no_data() {
    let f = Federation::start(4, lab_rows()).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());

    let muni = || Area::Municipality("5401".into());
    let answer = first_answer(gp, AGENT, &query(muni(), "2026-W08", "2026-W14"), identity, ca).await;
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
    let a = gp.iq().search(AGENT, &q, identity, ca).await.unwrap();
    assert_eq!(tested(&a), [("2025-W01/2025-W52", None)]);

    // Areas the lab never had a row for, in any analysis: refused by name,
    // and nothing more is said.
    for (area, text) in [
        (Area::Municipality("9999".into()), "area: no data for municipality 9999"),
        (Area::County("99".into()), "area: no data for county 99"),
        // County 54 is known, its municipality 5402 is not.
        (Area::Municipality("5402".into()), "area: no data for municipality 5402"),
    ] {
        match gp.iq().search(AGENT, &query(area.clone(), "2026-W10", "2026-W13"), identity, ca).await {
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
        let a = gp.iq().search(AGENT, &query(area.clone(), "2026-W12", "2026-W12"), identity, ca).await.unwrap();
        assert_eq!(tested(&a), [("2026-W12", Some(Count::Exact(0)))], "{area:?}");
    }

    // Codes in any case, as another client may send them: understood, and
    // answered in the one form.
    let agent_cert = gp.iq().certificate_of("search@lab.example", ca).await.unwrap();
    let mut q = query_element(&StatsQuery { sex: Some(Sex::Female), ..query(muni(), "2026-W10", "2026-W10") });
    for (attr, value) in [("analysis", "infa"), ("sex", "f"), ("granularity", "Week"), ("area", "Municipality:5401")] {
        q.set_attr(attr, value);
    }
    let signed_q = signed::sign(
        signed::Kind::SearchRequest,
        vec![snow_xml::Node::Element(q)],
        &["search@lab.example"],
        None,
        identity,
        snow_client::unix_now(),
    )
    .unwrap();
    let request = signed::RequestRef { id: "mixed-case-codes".into(), digest: signed::digest(&signed_q) };
    let mut search = Element::new(NS_STATS, "search").with_child(signed_q);
    snow_crypto::e2e::encrypt_content(
        &mut search,
        NS_STATS,
        &[agent_cert.as_slice()],
        snow_crypto::e2e::KeyTransport::default(),
    )
    .unwrap();
    let iq = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", AGENT)
        .with_attr("id", request.id.clone())
        .with_child(search);
    let reply = gp.iq().request_as_is(iq).await.unwrap();
    let a = read_search_answer(AGENT, &reply, identity, &agent_cert, &request).unwrap();
    assert_eq!(
        (a.query.analysis.as_str(), a.query.sex, a.query.granularity),
        ("INFA", Some(Sex::Female), Granularity::Week)
    );
    assert_eq!(tested(&a), [("2026-W10", Some(Count::Exact(12)))]);

    f.shutdown().await;
}
