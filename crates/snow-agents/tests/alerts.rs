//! Outbreak alerts end to end on 127.0.0.1: the lab's detection agent finds
//! an outbreak in an import and publishes one alert on the PO's pubsub node
//! of that analysis and area, signed by the agent and encrypted to each
//! subscribed GP, who verifies it (signature, recipients, nonce, key
//! directory) before it is shown, at the PO and across the federation at
//! the lab; a restart of the agent sends nothing again; a GP's
//! confirmation reaches the other GP, verified too.

mod lab_federation;
mod log_capture;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lab_federation::support::Site;
use lab_federation::{import_rows, sites, start_agent, start_servers, wait_for_key};
use log_capture::Log;
use snow_agents::detect::DetectionConfig;
use snow_agents::{Attach, SearchAgent};
use snow_client::alert;
use snow_client::Session;
use snow_core::alert::{Alert, AlertKind};
use snow_core::nonce_cache::NonceCache;
use snow_core::stats::{Area, Count};
use snow_core::SiteHome;
use snow_lab::detect::{ears, Detector};
use snow_store::LabDb;

const NODE: &str = "alerts/INFA/5401";

/// Weeks 2026-W01..W20 in 5401: 2 positive tests a week, then 30 in W20.
fn import_outbreak(db_path: &std::path::Path) {
    let mut rows = Vec::new();
    let mut n = 0u32;
    for week in 1..=20u8 {
        let positives = if week == 20 { 30 } else { 2 };
        for _ in 0..positives + 3 {
            // Sample n, patient n.
            n += 1;
            rows.push(("INFA", "5401", week, n, n % (positives + 3) < positives));
        }
    }
    import_rows(db_path, "outbreak", "outbreak.csv", rows);
}

/// What a GP reads alerts with: its key, the CA, its record of alerts
/// received.
struct Reader {
    identity: snow_crypto::Identity,
    ca: Vec<u8>,
    nonces: Mutex<NonceCache>,
    _dir: tempfile::TempDir,
}

fn reader(po: &Site, hpnr: &str) -> Reader {
    let dir = tempfile::tempdir().unwrap();
    let nonces = Mutex::new(alert::open_nonces(&dir.path().join("alert-nonces")).unwrap());
    Reader { identity: po.identity(hpnr), ca: po.ca.cert_der().to_vec(), nonces, _dir: dir }
}

/// The next alert notification within `wait`, decrypted and verified
/// (`alert::open_item`: anything else fails the test with its reason).
async fn next_alert(c: &mut Session, wait: Duration, r: &Reader) -> Option<(alert::Item, Alert)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let Ok(el) = c.next_stanza(left).await else { return None };
        if let Some(item) = alert::event_items(&el).into_iter().next() {
            let a = alert::open_item(c.iq(), &item, &r.identity, &r.ca, &r.nonces)
                .await
                .unwrap_or_else(|e| panic!("{} {}: {e}", item.node, item.id));
            return Some((item, a));
        }
    }
}

fn agent(
    po: &Site,
    lab_home: &std::path::Path,
    server: std::net::SocketAddr,
) -> (SearchAgent, tokio::sync::watch::Sender<bool>) {
    let home = SiteHome::new(lab_home);
    let identity =
        snow_agents::load_identity(&home.agent_cert("search@lab.example"), &home.agent_key("search@lab.example"))
            .unwrap();
    let detection = DetectionConfig {
        service: "po.example".into(),
        recent_weeks: 1,
        default: Detector::Ears(ears::Params::new(ears::Method::C1)),
        per_analysis: HashMap::new(),
        poll: Duration::from_millis(200),
        said: Default::default(),
    };
    let attach = Attach::Client { server, domain: "lab.example".into() };
    start_agent(po, lab_home, attach, identity, 4, Some(detection))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outbreak_becomes_one_alert_per_subscriber_and_a_confirmation_reaches_the_others() {
    let log = Log::capture();
    let (mut po, lab) = sites(&[]);
    for gp in ["3333333", "4444444"] {
        po.add_user(gp);
    }
    let issued = po.ca.issue_agent(&"search@lab.example".parse().unwrap()).unwrap();
    let lab_home = SiteHome::new(&lab.home);
    std::fs::create_dir_all(lab_home.agents_dir()).unwrap();
    std::fs::copy(&issued.cert_path, lab_home.agent_cert("search@lab.example")).unwrap();
    std::fs::copy(&issued.key_path, lab_home.agent_key("search@lab.example")).unwrap();
    let (po_server, lab_server) = start_servers(&po, &lab).await;

    // Two GPs subscribe to INFA in 5401; a third subscribes to nothing.
    let (id1, id3) = (reader(&po, "1111111"), reader(&po, "3333333"));
    let mut gp1 = po.login(&po_server, "1111111").await.unwrap().into_session();
    let mut gp3 = po.login(&po_server, "3333333").await.unwrap().into_session();
    let mut gp4 = po.login(&po_server, "4444444").await.unwrap().into_session();
    for (c, jid) in [(&gp1, "1111111@po.example"), (&gp3, "3333333@po.example")] {
        let r = c.iq().request(alert::subscribe_iq("po.example", NODE, jid)).await.unwrap();
        assert_eq!(alert::read_subscriptions("po.example", &r, "jid").unwrap(), [jid]);
        c.iq().send_presence().await.unwrap();
    }
    gp4.iq().send_presence().await.unwrap();
    // Someone else's subscription is refused.
    let r = gp4.iq().request(alert::subscribe_iq("po.example", NODE, "1111111@po.example")).await.unwrap();
    assert!(alert::read_subscriptions("po.example", &r, "jid").is_err());
    // The agent encrypts with the GPs' keys from the lab's replica.
    let mut lab_gp = po.login_at(&lab_server, "lab.example", "2222222").await.unwrap().into_session();
    for jid in ["1111111@po.example", "3333333@po.example", "2222222@lab.example"] {
        wait_for_key(&lab_gp, jid).await;
    }
    // A GP at the lab subscribes at the PO's service across the federation.
    let r = lab_gp.iq().request(alert::subscribe_iq("po.example", NODE, "2222222@lab.example")).await.unwrap();
    assert_eq!(alert::read_subscriptions("po.example", &r, "jid").unwrap(), ["2222222@lab.example"]);
    lab_gp.iq().send_presence().await.unwrap();
    wait_for_key(&gp1, "search@lab.example").await;

    let (first, stop_first) = agent(&po, &lab.home, lab_server.c2s_addr);
    import_outbreak(&lab_home.lab_db());

    let wait = Duration::from_secs(30);
    let (item1, a1) = next_alert(&mut gp1, wait, &id1).await.expect("GP 1 got no alert");
    let (item3, a3) = next_alert(&mut gp3, wait, &id3).await.expect("GP 3 got no alert");
    assert_eq!((item1.node.as_str(), item1.publisher.as_str()), (NODE, "search@lab.example"));
    assert_eq!(a1, a3);
    // The lab's GP gets it over s2s from the PO's service.
    // Verified there against the lab's key directory (its replica).
    let (item2, a2) = next_alert(&mut lab_gp, wait, &reader(&po, "2222222")).await.expect("the lab's GP got no alert");
    assert_eq!((item2.publisher.as_str(), &a2), ("search@lab.example", &a1));
    assert_eq!((a1.kind, a1.id.as_str()), (AlertKind::Signal, "INFA-5401-2026W20"));
    assert_eq!((a1.analysis.as_str(), &a1.area), ("INFA", &Area::Municipality("5401".into())));
    assert_eq!((a1.observed, a1.algorithm.as_deref()), (Some(Count::Exact(30)), Some("EARS_C1")));
    assert!(a1.threshold.unwrap() < 30.0);
    assert_eq!(a1.series.as_deref(), Some("search@lab.example/agent"));
    // Encrypted: the item on the wire holds no clear alert.
    assert!(item3.payload.child(snow_crypto::e2e::NS_XENC, "EncryptedData").is_some());
    assert!(!item3.payload.to_xml("").contains("INFA-5401"), "the alert is not encrypted");
    // The GP who did not subscribe gets nothing; nobody gets a second one.
    assert!(next_alert(&mut gp4, Duration::from_secs(2), &reader(&po, "4444444")).await.is_none());

    // A restart of the agent sends nothing again.
    stop_first.send(true).unwrap();
    first.join().await;
    let (second, stop_second) = agent(&po, &lab.home, lab_server.c2s_addr);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(next_alert(&mut gp1, Duration::from_secs(2), &id1).await.is_none(), "an alert was repeated");
    let sent = LabDb::open(&lab_home.lab_db()).unwrap().sent_alerts().unwrap();
    let for_5401: Vec<_> = sent.iter().filter(|s| s.area == "5401").collect();
    assert_eq!(for_5401.len(), 1, "{sent:?}");
    assert_eq!(for_5401[0].recipients, 3);
    // The lab's log names the area as the GP writes it (one area syntax).
    let text = log.text();
    let sent_lines: Vec<&str> = text.lines().filter(|l| l.contains("outbreak alert sent")).collect();
    assert!(sent_lines.iter().any(|l| l.contains("area=5401 ")), "{text}");
    assert!(sent_lines.iter().all(|l| !l.contains("municipality:") && !l.contains("county:")), "{sent_lines:?}");

    // GP 1 confirms; GP 3 sees the confirmation.
    // The PO's service assigns the confirmation's id.
    let confirmation = Alert {
        id: String::new(),
        kind: AlertKind::Confirmation,
        confirms: Some(a1.id.clone()),
        text: Some("three cases in our practice this week".into()),
        author: "1111111@po.example".into(),
        ..a1.clone()
    };
    let ca = po.ca.cert_der().to_vec();
    let also = ["1111111@po.example", "search@lab.example"];
    let published = alert::publish(gp1.iq(), "po.example", &confirmation, &also, &id1.identity, &ca).await.unwrap();
    assert_eq!(published.recipients.len(), 4, "{published:?}");
    assert!(published.id.starts_with("c-"), "{published:?}");
    let (_, c) = next_alert(&mut gp3, wait, &id3).await.expect("GP 3 did not see the confirmation");
    assert_eq!((c.kind, c.confirms.as_deref()), (AlertKind::Confirmation, Some("INFA-5401-2026W20")));
    // Listing: GP 3 reads both, newest first, each checked against its publisher.
    // (Listed again after they were notified: the same items, no replay.)
    let got = alert::received(gp3.iq(), "po.example", &id3.identity, &ca, &id3.nonces, 50).await.unwrap();
    assert_eq!((got.unreadable, got.unverified.len()), (0, 0), "{:?}", got.unverified);
    assert_eq!(
        got.alerts.iter().map(|(_, a)| a.id.as_str()).collect::<Vec<_>>(),
        [published.id.as_str(), "INFA-5401-2026W20"]
    );

    stop_second.send(true).unwrap();
    second.join().await;
    po_server.shutdown(Duration::from_secs(5)).await;
    lab_server.shutdown(Duration::from_secs(5)).await;
}
