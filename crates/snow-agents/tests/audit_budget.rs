//! Issue 21 items 4 and 5 over real sockets (a GP at the PO, the lab's
//! agent behind the lab server): every search the agent is asked is
//! recorded at the lab — requester, parameters, time, cells answered, and
//! how it ended — and a GP past their budget per hour is refused
//! `policy-violation` with a readable text, the refusal recorded, while
//! another GP is still answered.

mod lab_federation;

use lab_federation::{first_answer, query, Federation, Row, AGENT};
use snow_agents::search::{Budget, SearchSettings};
use snow_client::ClientError;
use snow_core::stats::{Area, StatsQuery};
use snow_core::SiteHome;
use snow_store::{AuditDb, AuditFilter};

fn rows() -> Vec<Row<'static>> {
    (0..12).map(|i| ("INFA", "5401", 10, i, i < 6)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_are_audited_and_a_gp_past_the_budget_is_refused() {
    let settings = SearchSettings { budget: Budget { per_hour: 3, per_day: 10 }, ..SearchSettings::default() };
    let f = Federation::start_with(4, rows(), settings).await;
    let (gp, identity, ca) = (&f.gp, &f.identity, f.ca.as_slice());
    let started = snow_client::unix_now();
    let q = query(Area::Municipality("5401".into()), "2026-W09", "2026-W12");

    // Three answered (the first as soon as the agent is up).
    first_answer(gp, AGENT, &q, identity, ca).await;
    for _ in 0..2 {
        gp.iq().search(AGENT, &q, identity, ca).await.unwrap();
    }
    // A bad one: refused, recorded, not counted.
    let bad = StatsQuery { analysis: "EBOLA".into(), ..q.clone() };
    assert!(matches!(gp.iq().search(AGENT, &bad, identity, ca).await, Err(ClientError::Refused { .. })));
    // The fourth answered one is over the budget.
    match gp.iq().search(AGENT, &q, identity, ca).await {
        Err(ClientError::Refused { condition, text, .. }) => {
            assert_eq!(condition, "policy-violation");
            let text = text.unwrap_or_default();
            assert!(text.contains("at most 3 searches per hour") && text.contains("minutes"), "{text}");
        }
        other => panic!("the fourth search was not refused: {other:?}"),
    }
    let audit = AuditDb::open(&SiteHome::new(f.lab_home()).search_audit()).unwrap();
    let mine = audit.list(&AuditFilter { requester: Some("1111111@po.example"), ..Default::default() }).unwrap();
    let outcomes: Vec<&str> = mine.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["answered", "answered", "answered", "refused: bad-request", "refused: policy-violation (searches per hour)"]
    );
    for r in &mine {
        assert!(r.at >= started - 5 && r.at <= snow_client::unix_now(), "{r:?}");
        let p = r.query.as_ref().unwrap();
        assert_eq!(
            (p.period.as_str(), p.area.as_str(), p.granularity.as_str()),
            ("2026-W09..2026-W12", "municipality:5401", "week")
        );
    }
    assert_eq!(mine[0].query.as_ref().unwrap().analysis, "INFA");
    assert_eq!(mine[3].query.as_ref().unwrap().analysis, "EBOLA");
    // The lab's data covers week 10 only: one cell with counts.
    assert_eq!(mine.iter().map(|r| r.cells).collect::<Vec<_>>(), [1, 1, 1, 0, 0]);

    // Another GP has a budget of their own.
    let other = f.po.login_at(&f.lab_server, "lab.example", "2222222").await.unwrap().into_session();
    other.iq().search(AGENT, &q, &f.po.identity("2222222"), ca).await.unwrap();
    let theirs = audit.list(&AuditFilter { requester: Some("2222222@lab.example"), ..Default::default() }).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].outcome, "answered");
    f.shutdown().await;
}
