//! Which other servers this server talks to (docs/architecture.md §4), and
//! what its own error bounces may say.
//!
//! The allow-list is the key directory's master and replicas plus
//! `[s2s] federate_with`; a listed domain covers its subdomains (the
//! external components of that server, such as `search.lab.example`).
//! `[s2s.routes]` says where a domain is, not whether to talk to it: a
//! route alone does not list a domain. Routing refuses a stanza for any
//! other domain with `remote-server-not-found` before the s2s links see
//! it, so no connection is attempted; replies to another server go only to
//! a listed one. The number of outgoing links being connected at once is
//! capped by [`Federation::connect_permit`].
//!
//! Errors the server generates for a stanza it could not send on
//! (`transport::s2s` bounces) reach the sender with the condition and a
//! fixed text for it ([`fixed_text`]); the reason (an address, a TLS
//! failure) goes to the log only.

use std::collections::BTreeSet;
use std::sync::Arc;

use snow_xml::stanza::Condition;
use snow_xml::{Element, Node, NS_CLIENT, NS_STANZAS, NS_XML};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The text of the refusal for a domain not on the list.
pub(crate) const NOT_FEDERATED: &str = "this server does not federate with that domain";

/// The domains this server federates with, and the cap on connection
/// attempts.
pub(crate) struct Federation {
    domains: BTreeSet<String>,
    connecting: Arc<Semaphore>,
}

impl Federation {
    /// `domains` (any case), with at most `max_connecting` outgoing links
    /// being connected at once (at least 1).
    pub fn new(domains: impl IntoIterator<Item = String>, max_connecting: usize) -> Self {
        let domains = domains.into_iter().map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase()).collect();
        Federation { domains, connecting: Arc::new(Semaphore::new(max_connecting.max(1))) }
    }

    /// Whether stanzas may go to `domain`: a listed domain or a subdomain
    /// of one.
    pub fn allows(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        let mut suffix = domain.as_str();
        loop {
            if self.domains.contains(suffix) {
                return true;
            }
            match suffix.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => suffix = rest,
                _ => return false,
            }
        }
    }

    /// Waits for a slot to connect an outgoing link; the connection
    /// attempt holds it until it succeeds or fails.
    pub async fn connect_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.connecting).acquire_owned().await.ok()
    }
}

/// The only text an error the server generates for an unsendable stanza
/// may carry: one fixed sentence per condition, or none.
pub(crate) fn fixed_text(condition: Condition) -> Option<&'static str> {
    match condition {
        Condition::RemoteServerNotFound => Some("the remote server could not be reached"),
        Condition::RemoteServerTimeout => Some("the remote server did not answer in time"),
        Condition::ResourceConstraint => Some("too many stanzas are waiting for that server"),
        _ => None,
    }
}

/// Replaces the text of a server-generated stanza error with
/// [`fixed_text`] for its condition, and drops anything else a stanza
/// error may carry (application conditions, content of the condition).
pub(crate) fn sanitise_error(el: &mut Element) {
    if el.attr("type") != Some("error") {
        return;
    }
    let Some(err) = el.child_mut(NS_CLIENT, "error") else { return };
    let condition = err.children().find(|c| c.ns() == NS_STANZAS && c.name() != "text").map(|c| c.name().to_owned());
    err.take_children(|_| true);
    err.nodes_mut().retain(|n| !matches!(n, Node::Text(_)));
    let Some(name) = condition else {
        err.push_child(Element::new(NS_STANZAS, Condition::UndefinedCondition.name()));
        return;
    };
    let condition = Condition::from_name(&name).unwrap_or(Condition::UndefinedCondition);
    err.push_child(Element::new(NS_STANZAS, condition.name()));
    if let Some(text) = fixed_text(condition) {
        let mut t = Element::new(NS_STANZAS, "text").with_text(text);
        t.set_attr_ns(NS_XML, "lang", "en");
        err.push_child(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow_xml::stanza::{error_of, error_reply};

    #[test]
    fn listed_domains_and_their_subdomains_only() {
        let f = Federation::new(["Lab.Example".to_owned(), "xmpp.example.".to_owned()], 4);
        assert!(f.allows("lab.example") && f.allows("LAB.example") && f.allows("search.lab.example"));
        assert!(f.allows("xmpp.example") && f.allows("echo.xmpp.example"));
        assert!(!f.allows("evil.example") && !f.allows("example") && !f.allows("notlab.example"));
        assert!(!f.allows("lab.example.evil.example"));
        assert!(!Federation::new(Vec::new(), 1).allows("lab.example"));
    }

    #[tokio::test]
    async fn connection_attempts_are_capped() {
        let f = Federation::new(Vec::new(), 2);
        let a = f.connect_permit().await;
        let _b = f.connect_permit().await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), f.connect_permit()).await;
        assert!(third.is_err(), "a third attempt waits");
        drop(a);
        assert!(f.connect_permit().await.is_some());
    }

    #[test]
    fn bounce_texts_are_replaced_by_fixed_ones() {
        let msg =
            Element::new(NS_CLIENT, "message").with_attr("from", "a@po.example/x").with_attr("to", "b@lab.example");
        let mut e = error_reply(&msg, Condition::RemoteServerNotFound, Some("cannot connect to 127.0.0.1:5369"));
        sanitise_error(&mut e);
        assert_eq!(
            error_of(&e),
            ("remote-server-not-found".to_owned(), Some("the remote server could not be reached".to_owned()))
        );
        assert!(!e.to_xml(NS_CLIENT).contains("127.0.0.1"));
        let mut e = error_reply(&msg, Condition::InternalServerError, Some("database is locked"));
        e.child_mut(NS_CLIENT, "error").unwrap().push_child(Element::new("urn:x", "detail").with_text("secret"));
        sanitise_error(&mut e);
        assert_eq!(error_of(&e), ("internal-server-error".to_owned(), None));
        assert!(!e.to_xml(NS_CLIENT).contains("secret"));
    }
}
