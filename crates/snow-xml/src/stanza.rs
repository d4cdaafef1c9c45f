//! Stanza errors (RFC 6120 §8.3) and IQ results: building replies and
//! reading errors, for the server, the agents and the client alike.

use crate::{Element, NS_CLIENT, NS_STANZAS};

/// The error `type` RFC 6120 §8.3.3 gives each condition.
fn error_type(condition: &str) -> &'static str {
    match condition {
        "bad-request" | "jid-malformed" | "not-acceptable" | "policy-violation" => "modify",
        "forbidden" | "not-authorized" | "registration-required" | "subscription-required" => "auth",
        "resource-constraint" | "remote-server-timeout" => "wait",
        "internal-server-error" | "undefined-condition" => "cancel",
        _ => "cancel",
    }
}

/// The error reply to `stanza`: same name and id, addresses swapped,
/// `type='error'`, the original payload dropped (it may be large, and the
/// sender has it).
pub fn error_reply(stanza: &Element, condition: &str, text: Option<&str>) -> Element {
    let mut reply = Element::new(NS_CLIENT, stanza.name().to_owned());
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = stanza.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = stanza.attr("from") {
        reply.set_attr("to", to);
    }
    reply.set_attr("type", "error");
    let mut err = Element::new(NS_CLIENT, "error").with_attr("type", error_type(condition));
    err.push_child(Element::new(NS_STANZAS, condition.to_owned()));
    if let Some(t) = text {
        let mut te = Element::new(NS_STANZAS, "text").with_text(t);
        te.set_attr_ns(crate::NS_XML, "lang", "en");
        err.push_child(te);
    }
    reply.push_child(err);
    reply
}

/// An `<iq type='result'>` answering `iq`, with an optional payload.
pub fn iq_result(iq: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::new(NS_CLIENT, "iq").with_attr("type", "result");
    if let Some(id) = iq.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = iq.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = iq.attr("from") {
        reply.set_attr("to", to);
    }
    if let Some(p) = payload {
        reply.push_child(p);
    }
    reply
}

/// True for a type that must never be answered with an error (RFC 6120
/// §8.3.1: no error replies to errors, and none to IQ results).
pub fn is_reply(stanza: &Element) -> bool {
    matches!(stanza.attr("type"), Some("error") | Some("result"))
}

/// The condition and text of a stanza error (RFC 6120 §8.3).
pub fn error_of(stanza: &Element) -> (String, Option<String>) {
    let err = stanza.child(NS_CLIENT, "error");
    let of = |want_text: bool| {
        err.into_iter().flat_map(|e| e.children()).find(|c| c.ns() == NS_STANZAS && (c.name() == "text") == want_text)
    };
    let condition = of(false).map(|c| c.name().to_owned()).unwrap_or_else(|| "undefined-condition".into());
    (condition, of(true).map(Element::text))
}
