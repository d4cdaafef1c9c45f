//! An alert reaches every subscriber of a node, often more than the 16
//! EncryptedKeys a message may carry: each of 40 subscribers opens it.

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
    let sealed = alert::sealed(&a, &certs).unwrap();
    for (h, identity) in hpnrs.iter().zip(&identities) {
        let opened = alert::open(&a.id, &sealed, identity).unwrap_or_else(|e| panic!("{h} cannot open it: {e}"));
        assert_eq!(opened.text, a.text);
    }
}
