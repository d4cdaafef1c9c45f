//! The basics every XMPP server answers: XEP-0199 ping, XEP-0092 software
//! version, and the legacy session establishment some clients still send
//! (RFC 3921 §3, announced as optional).

use snow_xml::stanza::iq_result;
use snow_xml::{Element, NS_PING, NS_SESSION, NS_VERSION};

use super::{Access, Cx, IqRequest, IqRoute, Service};
use crate::routing::BoxFuture;

/// XEP-0199: a ping is answered with an empty result.
pub(crate) struct Ping;

impl Service for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_PING]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[IqRoute::get(NS_PING, "ping", Access::Anyone)];
        ROUTES
    }
    fn iq<'a>(&'a self, _cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move { iq_result(req.iq, None) })
    }
}

/// XEP-0092: the server's name and version.
pub(crate) struct Version;

impl Service for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_VERSION]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[IqRoute::get(NS_VERSION, "query", Access::Anyone)];
        ROUTES
    }
    fn iq<'a>(&'a self, _cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move {
            let q = Element::new(NS_VERSION, "query")
                .with_child(Element::new(NS_VERSION, "name").with_text("Snow"))
                .with_child(Element::new(NS_VERSION, "version").with_text(env!("CARGO_PKG_VERSION")));
            iq_result(req.iq, Some(q))
        })
    }
}

/// RFC 3921 session establishment: a no-op kept for old clients.
pub(crate) struct LegacySession;

impl Service for LegacySession {
    fn name(&self) -> &'static str {
        "session"
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[IqRoute::set(NS_SESSION, "session", Access::Anyone)];
        ROUTES
    }
    fn iq<'a>(&'a self, _cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move { iq_result(req.iq, None) })
    }
}
