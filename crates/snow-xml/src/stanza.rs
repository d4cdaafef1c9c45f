//! Stanza errors (RFC 6120 §8.3) and IQ results: building replies and
//! reading errors, for the server, the agents and the client alike.

use crate::{Element, NS_CLIENT, NS_STANZAS};

/// A stanza error condition (RFC 6120 §8.3.3): the closed set a peer may
/// send, so a typo cannot put a condition on the wire that no client
/// understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    /// Every condition, in RFC order.
    pub const ALL: [Condition; 22] = [
        Condition::BadRequest,
        Condition::Conflict,
        Condition::FeatureNotImplemented,
        Condition::Forbidden,
        Condition::Gone,
        Condition::InternalServerError,
        Condition::ItemNotFound,
        Condition::JidMalformed,
        Condition::NotAcceptable,
        Condition::NotAllowed,
        Condition::NotAuthorized,
        Condition::PolicyViolation,
        Condition::RecipientUnavailable,
        Condition::Redirect,
        Condition::RegistrationRequired,
        Condition::RemoteServerNotFound,
        Condition::RemoteServerTimeout,
        Condition::ResourceConstraint,
        Condition::ServiceUnavailable,
        Condition::SubscriptionRequired,
        Condition::UndefinedCondition,
        Condition::UnexpectedRequest,
    ];

    /// The element name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::Conflict => "conflict",
            Condition::FeatureNotImplemented => "feature-not-implemented",
            Condition::Forbidden => "forbidden",
            Condition::Gone => "gone",
            Condition::InternalServerError => "internal-server-error",
            Condition::ItemNotFound => "item-not-found",
            Condition::JidMalformed => "jid-malformed",
            Condition::NotAcceptable => "not-acceptable",
            Condition::NotAllowed => "not-allowed",
            Condition::NotAuthorized => "not-authorized",
            Condition::PolicyViolation => "policy-violation",
            Condition::RecipientUnavailable => "recipient-unavailable",
            Condition::Redirect => "redirect",
            Condition::RegistrationRequired => "registration-required",
            Condition::RemoteServerNotFound => "remote-server-not-found",
            Condition::RemoteServerTimeout => "remote-server-timeout",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::ServiceUnavailable => "service-unavailable",
            Condition::SubscriptionRequired => "subscription-required",
            Condition::UndefinedCondition => "undefined-condition",
            Condition::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error `type` RFC 6120 §8.3.3 gives the condition: whether the
    /// sender should retry, change the request, authenticate, or give up.
    pub fn error_type(self) -> &'static str {
        match self {
            Condition::BadRequest
            | Condition::JidMalformed
            | Condition::NotAcceptable
            | Condition::PolicyViolation
            | Condition::Redirect => "modify",
            Condition::Forbidden
            | Condition::NotAuthorized
            | Condition::RegistrationRequired
            | Condition::SubscriptionRequired => "auth",
            Condition::ResourceConstraint
            | Condition::RemoteServerTimeout
            | Condition::RecipientUnavailable
            | Condition::UnexpectedRequest => "wait",
            _ => "cancel",
        }
    }

    /// The condition named `name`, if it is one of RFC 6120's.
    pub fn from_name(name: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error reply to `stanza`: same name and id, addresses swapped,
/// `type='error'`, the original payload dropped (it may be large, and the
/// sender has it).
pub fn error_reply(stanza: &Element, condition: Condition, text: Option<&str>) -> Element {
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
    let mut err = Element::new(NS_CLIENT, "error").with_attr("type", condition.error_type());
    err.push_child(Element::new(NS_STANZAS, condition.name()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_round_trip_and_carry_their_type() {
        for c in Condition::ALL {
            assert_eq!(Condition::from_name(c.name()), Some(c));
        }
        assert_eq!(Condition::from_name("no-such-condition"), None);
        let iq = Element::new(NS_CLIENT, "iq").with_attr("id", "1").with_attr("from", "a@b.example");
        let e = error_reply(&iq, Condition::ResourceConstraint, Some("busy"));
        let err = e.child(NS_CLIENT, "error").map(|e| e.attr("type"));
        assert_eq!(err, Some(Some("wait")));
        assert_eq!(error_of(&e), ("resource-constraint".to_owned(), Some("busy".to_owned())));
    }
}
