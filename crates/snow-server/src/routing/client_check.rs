//! The client check (`[server] client_check`, docs/architecture.md §4):
//! whether a client session has announced itself as the Snow client, and
//! what may pass before it has.
//!
//! A Snow client (the `snow` command, the snow app, the in-process search
//! agent: all log in through `snow_client`) announces itself with XEP-0115
//! entity capabilities, `<c xmlns='http://jabber.org/protocol/caps'
//! node='urn:snow:client' hash ver/>`, in a presence sent right after
//! resource binding to its own server's domain (for the server only: not
//! routed further, and it does not make the session available), and in
//! every broadcast presence. A session has announced itself once it sent
//! such a presence, broadcast or to the server's domain; a presence to
//! anyone else does not count. It stays announced until it ends.
//!
//! Before that, under `require`, only what is for the server itself
//! passes: presence to the server's domain, presence without `to` other
//! than available (an unavailable says nothing new), and IQs without
//! `to`, to the server's domain or to the sender's own bare JID (bind,
//! roster, disco, ping, the key directory, pubsub of the server's
//! domain…). Everything else — messages, IQs to anyone else, presence to
//! anyone else, and a broadcast available presence without the Snow caps
//! — is refused with `policy-violation` and [`REFUSAL`] (a result or an
//! error is dropped: they are never answered). Under `warn` it all passes,
//! and the first stanza `require` would refuse is logged once per session;
//! under `off` nothing is looked at.
//!
//! This is a convenience check, not a security boundary: the node is not
//! secret, and any client can send the same caps. It keeps the usual path
//! leading to the restricted client; it does not stop a determined user,
//! and nothing else in the server relies on it.

use std::sync::atomic::{AtomicBool, Ordering};

use snow_xml::Element;

use super::SessionHandle;
use crate::addr::Addr;
use crate::config::ClientCheck;

pub(crate) use snow_xml::{NS_CAPS, SNOW_CLIENT_NODE};
/// The text of every refusal: the sender learns what to use instead.
pub(crate) const REFUSAL: &str = "this server accepts only the Snow client (snow app, or the snow command)";

/// One session's standing with the check.
#[derive(Debug, Default)]
pub(crate) struct Announcement {
    /// Has sent a presence with the Snow caps, broadcast or to the server.
    announced: AtomicBool,
    /// Has been logged as not announced (at most once per session).
    logged: AtomicBool,
}

/// What to do with a session's stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Refuse with `policy-violation` and [`REFUSAL`] (a reply: drop).
    Refuse,
}

/// Judges a stanza from `session` (`to` already parsed) under `mode`;
/// `domain` is the server's. Records the announcement the stanza makes.
pub(crate) fn judge(
    mode: ClientCheck,
    session: &SessionHandle,
    el: &Element,
    to: Option<&Addr>,
    domain: &str,
) -> Verdict {
    if mode == ClientCheck::Off {
        return Verdict::Pass;
    }
    let mark = &session.client;
    if announces(el, to, domain) {
        mark.announced.store(true, Ordering::Release);
        return Verdict::Pass;
    }
    if mark.announced.load(Ordering::Acquire) || for_the_server(session, el, to, domain) {
        return Verdict::Pass;
    }
    let first = !mark.logged.swap(true, Ordering::AcqRel);
    match mode {
        ClientCheck::Require => {
            if first {
                tracing::info!(
                    jid = %session.full, stanza = el.name(),
                    "a client that has not announced itself as the Snow client is refused (client_check = require)"
                );
            }
            Verdict::Refuse
        }
        _ => {
            if first {
                tracing::warn!(
                    jid = %session.full, stanza = el.name(),
                    "a client that has not announced itself as the Snow client (XEP-0115 caps node urn:snow:client) \
                     talks to others; client_check = require would refuse it"
                );
            }
            Verdict::Pass
        }
    }
}

/// A presence with the Snow caps, broadcast or to the server's domain.
fn announces(el: &Element, to: Option<&Addr>, domain: &str) -> bool {
    el.name() == "presence"
        && matches!(el.attr("type"), None | Some("available"))
        && to.is_none_or(|a| is_server(a, domain))
        && el.children().any(|c| c.is(NS_CAPS, "c") && c.attr("node") == Some(SNOW_CLIENT_NODE))
}

/// What a session says to its own server, which passes unannounced.
fn for_the_server(session: &SessionHandle, el: &Element, to: Option<&Addr>, domain: &str) -> bool {
    match (el.name(), to) {
        ("presence", Some(a)) => is_server(a, domain),
        // An available presence without `to` is a broadcast to contacts.
        ("presence", None) => !matches!(el.attr("type"), None | Some("available")),
        ("iq", None) => true,
        ("iq", Some(a)) => is_server(a, domain) || (a.resource.is_none() && a.bare() == session.bare),
        _ => false,
    }
}

/// The server itself: its domain, with or without a resource.
fn is_server(a: &Addr, domain: &str) -> bool {
    a.local.is_none() && a.domain == domain
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow_xml::NS_CLIENT;

    const DOMAIN: &str = "po.example";

    fn session() -> std::sync::Arc<SessionHandle> {
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        SessionHandle::new("1111111@po.example".into(), "1111111@po.example/cli".into(), tx)
    }

    fn stanza(name: &'static str, to: Option<&str>, kind: Option<&str>) -> (Element, Option<Addr>) {
        let mut el = Element::new(NS_CLIENT, name);
        if let Some(t) = to {
            el.set_attr("to", t);
        }
        if let Some(k) = kind {
            el.set_attr("type", k);
        }
        (el, to.and_then(Addr::parse))
    }

    fn caps(node: &str) -> Element {
        Element::new(NS_CAPS, "c").with_attr("hash", "sha-1").with_attr("node", node.to_owned()).with_attr("ver", "x")
    }

    fn judge_all(mode: ClientCheck, s: &SessionHandle, cases: &[(Element, Option<Addr>)]) -> Vec<Verdict> {
        cases.iter().map(|(el, to)| judge(mode, s, el, to.as_ref(), DOMAIN)).collect()
    }

    /// What goes to someone else, or is a broadcast.
    fn to_others() -> Vec<(Element, Option<Addr>)> {
        vec![
            stanza("message", Some("2222222@po.example"), Some("chat")),
            stanza("message", None, Some("chat")),
            stanza("message", Some(DOMAIN), None),
            stanza("iq", Some("2222222@po.example/x"), Some("get")),
            stanza("iq", Some("1111111@po.example/other"), Some("get")),
            stanza("iq", Some("search.po.example"), Some("get")),
            stanza("iq", Some("lab.example"), Some("get")),
            stanza("presence", None, None),
            stanza("presence", Some("2222222@po.example"), Some("subscribe")),
            stanza("presence", Some("2222222@po.example/x"), None),
        ]
    }

    /// What is for the server itself.
    fn for_server() -> Vec<(Element, Option<Addr>)> {
        vec![
            stanza("iq", None, Some("get")),
            stanza("iq", Some(DOMAIN), Some("get")),
            stanza("iq", Some("po.example/res"), Some("set")),
            stanza("iq", Some("1111111@po.example"), Some("get")),
            stanza("presence", Some(DOMAIN), None),
            stanza("presence", None, Some("unavailable")),
        ]
    }

    #[test]
    fn require_lets_only_the_servers_own_stanzas_through_until_the_snow_caps() {
        let s = session();
        assert!(judge_all(ClientCheck::Require, &s, &for_server()).iter().all(|v| *v == Verdict::Pass));
        assert!(judge_all(ClientCheck::Require, &s, &to_others()).iter().all(|v| *v == Verdict::Refuse));
        // Another client's caps, or the Snow caps to someone else: no.
        let (mut p, to) = stanza("presence", None, None);
        p.push_child(caps("https://conversations.im"));
        assert_eq!(judge(ClientCheck::Require, &s, &p, to.as_ref(), DOMAIN), Verdict::Refuse);
        let (mut p, to) = stanza("presence", Some("2222222@po.example"), None);
        p.push_child(caps(SNOW_CLIENT_NODE));
        assert_eq!(judge(ClientCheck::Require, &s, &p, to.as_ref(), DOMAIN), Verdict::Refuse);
        // The Snow client's announcement to the server: everything passes.
        let (mut p, to) = stanza("presence", Some(DOMAIN), None);
        p.push_child(caps(SNOW_CLIENT_NODE));
        assert_eq!(judge(ClientCheck::Require, &s, &p, to.as_ref(), DOMAIN), Verdict::Pass);
        assert!(judge_all(ClientCheck::Require, &s, &to_others()).iter().all(|v| *v == Verdict::Pass));
    }

    #[test]
    fn a_broadcast_presence_with_the_snow_caps_announces_too() {
        let s = session();
        let (mut p, to) = stanza("presence", None, None);
        p.push_child(caps(SNOW_CLIENT_NODE));
        assert_eq!(judge(ClientCheck::Require, &s, &p, to.as_ref(), DOMAIN), Verdict::Pass);
        assert!(judge_all(ClientCheck::Require, &s, &to_others()).iter().all(|v| *v == Verdict::Pass));
    }

    #[test]
    fn warn_and_off_refuse_nothing() {
        for mode in [ClientCheck::Warn, ClientCheck::Off] {
            let s = session();
            assert!(judge_all(mode, &s, &to_others()).iter().all(|v| *v == Verdict::Pass));
            assert!(judge_all(mode, &s, &for_server()).iter().all(|v| *v == Verdict::Pass));
        }
        // warn logs once: the mark is set by the first stanza to others.
        let s = session();
        judge_all(ClientCheck::Warn, &s, &for_server());
        assert!(!s.client.logged.load(Ordering::Acquire));
        judge_all(ClientCheck::Warn, &s, &to_others());
        assert!(s.client.logged.load(Ordering::Acquire));
    }
}
