//! Every registered server service announces its features in the server's
//! disco#info (XEP-0030), asked over a real TLS session, and the
//! announcement holds nothing no service registered.

mod support;

use std::collections::BTreeSet;

use snow_xml::{Element, NS_CLIENT, NS_DISCO_INFO};
use support::{Site, DOMAIN};

/// The server's disco#info features, asked by a logged-in user, and the
/// registry's `(service, features)` listing.
async fn announced() -> (Vec<String>, Vec<(&'static str, &'static [&'static str])>) {
    let mut site = Site::new();
    site.add_user("1111111");
    let server = site.start().await;
    let c = site.login(&server, "1111111").await.unwrap().into_session();
    let iq = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", DOMAIN)
        .with_child(Element::new(NS_DISCO_INFO, "query"));
    let answer = c.iq().request(iq).await.unwrap();
    assert_eq!(answer.attr("type"), Some("result"), "{}", answer.to_xml(NS_CLIENT));
    let features = answer
        .child(NS_DISCO_INFO, "query")
        .map(|q| q.children().filter(|f| f.is(NS_DISCO_INFO, "feature")))
        .into_iter()
        .flatten()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    let listing = server.services().to_vec();
    c.close().await.unwrap();
    server.shutdown(std::time::Duration::from_secs(5)).await;
    (features, listing)
}

/// The service `name` is registered and each of its features is announced.
async fn check(name: &str) {
    let (features, listing) = announced().await;
    let (_, own) = listing.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} is not registered"));
    for f in own.iter() {
        assert!(features.iter().any(|a| a == f), "{name}'s feature {f} is not in disco#info: {features:?}");
    }
}

macro_rules! every_service {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                check($name).await;
            }
        )*

        /// A service registered without a test here fails this one.
        #[tokio::test]
        async fn every_registered_service_is_tested_and_nothing_else_is_announced() {
            let (features, listing) = announced().await;
            let tested: BTreeSet<&str> = [$($name),*].into_iter().collect();
            let registered: BTreeSet<&str> = listing.iter().map(|(n, _)| *n).collect();
            assert_eq!(tested, registered);
            let derived: BTreeSet<&str> = listing.iter().flat_map(|(_, f)| f.iter().copied()).collect();
            let shown: BTreeSet<&str> = features.iter().map(String::as_str).collect();
            assert_eq!(shown, derived, "disco#info must list exactly the registered services' features");
            assert_eq!(features.len(), shown.len(), "a feature is listed twice: {features:?}");
        }
    };
}

every_service! {
    disco_announces_disco => "disco",
    disco_announces_ping => "ping",
    disco_announces_version => "version",
    disco_announces_legacy_session => "session",
    disco_announces_presence => "presence",
    disco_announces_roster => "roster",
    disco_announces_offline_storage => "offline",
    disco_announces_pubsub => "pubsub",
    disco_announces_the_key_directory => "key directory",
}
