//! What a failed s2s link says: in the log, words, not rustls' debug
//! names ("invalid peer certificate: UnknownIssuer"); in the bounce the
//! sender gets, the condition and a fixed text, nothing of the reason
//! (issue 17 item 7).

mod support;

use std::time::Duration;

use snow_xml::NS_CLIENT;
use support::{error_condition, next_message, Site};

const T: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_peer_certificate_from_an_untrusted_ca_is_refused_in_words() {
    let mut po = Site::with_domain("po.example");
    let mut lab = Site::with_domain("lab.example");
    // The PO knows the route but trusts only its own CA.
    po.s2s.routes.insert("lab.example".into(), lab.s2s_addr());
    po.s2s.federate_with.push("lab.example".into());
    po.add_user("1111111");
    let labuser = lab.add_user("5555555");
    let po_server = po.start().await;
    let lab_server = lab.start().await;
    let mut a = po.login(&po_server, "1111111").await.unwrap();
    a.send_chat(&labuser, "hei").await.unwrap();
    let e = next_message(&mut a).await;
    assert_eq!(error_condition(&e).as_deref(), Some("remote-server-not-found"), "{}", e.to_xml(NS_CLIENT));
    let text = e.child(NS_CLIENT, "error").and_then(|err| err.child(snow_xml::NS_STANZAS, "text")).map(|t| t.text());
    assert_eq!(text.as_deref(), Some("the remote server could not be reached"), "{}", e.to_xml(NS_CLIENT));
    po_server.shutdown(T).await;
    lab_server.shutdown(T).await;
}
