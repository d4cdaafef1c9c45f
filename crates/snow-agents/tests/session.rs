//! The concurrent IQ client (`snow_client::Session`) over a real server on
//! 127.0.0.1: an answer counts only when it comes from the entity asked
//! (RFC 6120 §8.1.2.1), so another user who learned a request's id cannot
//! answer it. (Here rather than in snow-client, whose tests cannot start a
//! server: snow-server depends on snow-client.)

#[path = "../../snow-server/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use snow_xml::stanza::iq_result;
use snow_xml::{Element, NS_CLIENT};
use support::Site;

const T: Duration = Duration::from_secs(10);
const NS_Q: &str = "urn:example:question";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_entity_asked_can_answer_a_request() {
    let mut site = Site::new();
    for hpnr in ["1111111", "2222222", "3333333"] {
        site.add_user(hpnr);
    }
    let server = site.start().await;
    let mut asker = site.login(&server, "1111111").await.unwrap().into_session();
    let attacker = site.login(&server, "2222222").await.unwrap().into_session();
    let mut responder = site.login(&server, "3333333").await.unwrap();
    let asker_jid = asker.jid().to_owned();
    let responder_jid = responder.jid().to_owned();

    // The asker asks the responder; the responder sees the request's id.
    let iq = asker.iq().clone();
    let question = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", responder_jid.clone())
        .with_child(Element::new(NS_Q, "query"));
    let asking = tokio::spawn(async move { iq.request(question).await });
    let request = responder.next_stanza(T).await.unwrap();
    let id = request.attr("id").unwrap().to_owned();
    assert_eq!(request.attr("from"), Some(asker_jid.as_str()));

    // The attacker answers first with the id: once as itself, once
    // claiming to be the responder (the server stamps its real address).
    support::forge_results(&attacker, &id, &asker_jid, &responder_jid, || {
        Element::new(NS_Q, "query").with_child(Element::new(NS_Q, "forged"))
    })
    .await;

    // Both reached the asker, and neither answered its request.
    for _ in 0..2 {
        let forged = asker.next_stanza(T).await.unwrap();
        assert_eq!(forged.attr("id"), Some(id.as_str()));
        assert!(forged.attr("from").is_some_and(|f| f.starts_with("2222222@")), "{}", forged.to_xml(NS_CLIENT));
    }

    // The real answer is.
    let genuine = iq_result(&request, Some(Element::new(NS_Q, "query").with_child(Element::new(NS_Q, "genuine"))));
    responder.send(&genuine).await.unwrap();
    let answer = asking.await.unwrap().unwrap();
    assert_eq!(answer.attr("from"), Some(responder_jid.as_str()));
    assert!(answer.child(NS_Q, "query").and_then(|q| q.child(NS_Q, "genuine")).is_some());

    // A request to our own account (no `to`) is answered by our server.
    let entries = asker.iq().lookup_keys(&["3333333@po.example"]).await.unwrap();
    assert_eq!(entries[0].status, "valid");
    asker.close().await.unwrap();
    server.shutdown(T).await;
}
