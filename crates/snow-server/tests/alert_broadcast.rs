//! An alert reaches every subscriber of a node, often more than the 16
//! EncryptedKeys a message may carry: each of 40 subscribers opens it and
//! finds itself among the 40 it is signed for.

mod support;

use snow_client::alert;
use snow_core::alert::{Alert, AlertKind};
use snow_core::stats::{Area, IsoWeek};
use support::Site;

#[test]
fn an_alert_to_forty_subscribers_opens_for_each() {
    let mut site = Site::new();
    let hpnrs: Vec<String> = (0..40).map(|i| format!("10000{i:02}")).collect();
    for h in &hpnrs {
        site.add_user(h);
    }
    let identities: Vec<_> = hpnrs.iter().map(|h| site.identity(h)).collect();
    let certs: Vec<&[u8]> = identities.iter().map(|i| i.certificate()).collect();
    let a = Alert {
        id: "gp-0123456789abcdef".into(),
        kind: AlertKind::Gp,
        analysis: "INFA".into(),
        area: Area::Municipality("5401".into()),
        week: IsoWeek::new(2026, 47).unwrap(),
        observed: None,
        threshold: None,
        algorithm: None,
        series: None,
        author: format!("{}@po.example", hpnrs[0]),
        issued: 1_763_780_000,
        confirms: None,
        text: Some("Three families with influenza".into()),
    };
    // Signed by its author for all 40, then encrypted to them.
    let jids: Vec<String> = hpnrs.iter().map(|h| format!("{h}@po.example")).collect();
    let to: Vec<&str> = jids.iter().map(String::as_str).collect();
    let now = snow_client::unix_now();
    let sealed = alert::sealed(&a, &identities[0], &to, &certs, now).unwrap();
    let item = alert::Item {
        node: Alert::node(&a.analysis, &a.area),
        id: a.id.clone(),
        publisher: a.author.clone(),
        payload: sealed,
    };
    let dir = tempfile::tempdir().unwrap();
    for ((h, identity), me) in hpnrs.iter().zip(&identities).zip(&to) {
        // Each subscriber with its own record of alerts received.
        let mut nonces = alert::open_nonces(&dir.path().join(h)).unwrap();
        let opened =
            alert::open(&item, identity, me, &mut nonces, now).unwrap_or_else(|e| panic!("{h} cannot open it: {e}"));
        assert_eq!(opened.alert.text, a.text);
    }
}
