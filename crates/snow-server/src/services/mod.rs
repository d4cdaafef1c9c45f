//! The server's own services, each a module behind one [`Service`] trait:
//! a service registers the IQ payloads it answers (and who may ask), the
//! disco#info features it adds, and the events it wants. The
//! [`Registry`] dispatches to them and is all routing knows of them
//! (through [`ServerSide`]); disco#info lists the registry's features, so
//! a service cannot be answered without being announced, or the reverse.

mod basic;
pub(crate) mod directory;
mod disco;
mod offline;
mod presence;
mod pubsub;
mod roster;

use std::sync::Arc;

use snow_xml::stanza::{error_reply, is_reply, Condition};
use snow_xml::Element;

use crate::addr::Addr;
use crate::routing::{BoxFuture, Origin, Refusal, Router, ServerSide, SessionHandle};

pub(crate) use basic::{LegacySession, Ping, Version};
pub(crate) use directory::Directory;
pub(crate) use disco::Disco;
pub(crate) use offline::{Offline, OfflineQuota};
pub(crate) use presence::Presence;
pub(crate) use pubsub::Pubsub;
pub(crate) use roster::Roster;

/// Who may send a registered IQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any authenticated entity: local users, components, other servers.
    Anyone,
    /// This site's users and components (not other servers).
    Site,
    /// A local user about their own account (no 'to', or their bare JID).
    OwnAccount,
    /// Another server, over an authenticated s2s link.
    Peer,
}

impl Access {
    fn admits(self, origin: &Origin, own_account: bool) -> bool {
        match self {
            Access::Anyone => true,
            Access::Site => matches!(origin, Origin::Session(_) | Origin::Component(_)),
            Access::OwnAccount => own_account && origin.session().is_some(),
            Access::Peer => matches!(origin, Origin::Remote(_)),
        }
    }
}

/// One IQ payload a service answers: `<NAME xmlns='NS'/>` in an IQ of
/// type `kind` (`None`: get and set).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IqRoute {
    pub kind: Option<&'static str>,
    pub ns: &'static str,
    pub name: &'static str,
    pub access: Access,
}

impl IqRoute {
    pub const fn get(ns: &'static str, name: &'static str, access: Access) -> Self {
        IqRoute { kind: Some("get"), ns, name, access }
    }
    pub const fn set(ns: &'static str, name: &'static str, access: Access) -> Self {
        IqRoute { kind: Some("set"), ns, name, access }
    }
    pub const fn any(ns: &'static str, name: &'static str, access: Access) -> Self {
        IqRoute { kind: None, ns, name, access }
    }
}

/// An IQ request handed to the service that registered its payload.
pub(crate) struct IqRequest<'a> {
    pub origin: &'a Origin,
    /// The whole IQ, its `from` set by the transport.
    pub iq: &'a Element,
    /// Its first child, the payload the route matched.
    pub payload: &'a Element,
    /// Addressed to the sender's own account rather than to the server.
    pub own_account: bool,
}

/// Something that happened that services may act on.
pub(crate) enum Event<'a> {
    /// Presence a local session sent to its server (`to` is `None`) or a
    /// subscription stanza (`to` is the contact). `initial`: the first
    /// available presence of the session.
    Presence { session: &'a Arc<SessionHandle>, stanza: &'a Element, to: Option<&'a Addr>, initial: bool },
    /// A message or subscription request for an account with no
    /// available resource.
    Undeliverable { bare: &'a str, stanza: &'a Element },
    /// A result or error IQ addressed to the server.
    IqReply { origin: &'a Origin, stanza: &'a Element },
    /// A session has ended.
    SessionEnded(&'a Arc<SessionHandle>),
}

/// What a service did with an event.
pub(crate) enum Handled {
    /// Not this service's business.
    Ignored,
    /// Done; later services still see the event (except `Undeliverable`,
    /// which one service keeps).
    Done,
    /// Taken but refused (for `Undeliverable`: the sender is told why).
    Refused(Refusal),
}

/// What a service sees of the server while it works.
pub(crate) struct Cx<'a> {
    pub router: &'a Arc<Router>,
    /// Every registered service's disco#info features, in order.
    pub features: &'a [&'static str],
}

/// A server service.
pub(crate) trait Service: Send + Sync {
    /// For the log and the registry's listing.
    fn name(&self) -> &'static str;

    /// The disco#info features it adds to the server's.
    fn features(&self) -> &'static [&'static str] {
        &[]
    }

    /// The IQ payloads it answers.
    fn iqs(&self) -> &'static [IqRoute] {
        &[]
    }

    /// Answers a registered IQ.
    fn iq<'a>(&'a self, _cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move { error_reply(req.iq, Condition::ServiceUnavailable, None) })
    }

    /// Acts on an event.
    fn on<'a>(&'a self, _cx: &'a Cx<'a>, _event: &'a Event<'a>) -> BoxFuture<'a, Handled> {
        Box::pin(async { Handled::Ignored })
    }
}

/// The registered services, in order.
pub(crate) struct Registry {
    services: Vec<Arc<dyn Service>>,
    features: Vec<&'static str>,
}

impl Registry {
    pub fn new(services: Vec<Arc<dyn Service>>) -> Self {
        let mut features: Vec<&'static str> = Vec::new();
        for f in services.iter().flat_map(|s| s.features()) {
            if !features.contains(f) {
                features.push(f);
            }
        }
        Registry { services, features }
    }

    /// `(name, features)` of every service, for tests and the log.
    pub fn listing(&self) -> Vec<(&'static str, &'static [&'static str])> {
        self.services.iter().map(|s| (s.name(), s.features())).collect()
    }

    async fn fire(&self, router: &Arc<Router>, event: &Event<'_>, first_only: bool) -> Handled {
        let cx = Cx { router, features: &self.features };
        let mut outcome = Handled::Ignored;
        for s in &self.services {
            match s.on(&cx, event).await {
                Handled::Ignored => {}
                h if first_only => return h,
                h => outcome = h,
            }
        }
        outcome
    }

    fn route_for(&self, kind: &str, payload: &Element) -> Option<(&Arc<dyn Service>, IqRoute)> {
        self.services.iter().find_map(|s| {
            s.iqs()
                .iter()
                .find(|r| r.ns == payload.ns() && r.name == payload.name() && r.kind.is_none_or(|k| k == kind))
                .map(|r| (s, *r))
        })
    }
}

impl ServerSide for Registry {
    fn presence<'a>(
        &'a self,
        router: &'a Arc<Router>,
        session: &'a Arc<SessionHandle>,
        el: Element,
        to: Option<Addr>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let available = to.is_none() && matches!(el.attr("type"), None | Some("available"));
            let initial = available && !session.is_available();
            let event = Event::Presence { session, stanza: &el, to: to.as_ref(), initial };
            self.fire(router, &event, false).await;
        })
    }

    fn iq<'a>(
        &'a self,
        router: &'a Arc<Router>,
        origin: &'a Origin,
        el: Element,
        own_account: bool,
    ) -> BoxFuture<'a, Option<Element>> {
        Box::pin(async move {
            if is_reply(&el) {
                self.fire(router, &Event::IqReply { origin, stanza: &el }, false).await;
                return None;
            }
            let kind = el.attr("type").unwrap_or_default();
            let Some(payload) = el.children().next() else {
                return Some(error_reply(&el, Condition::ServiceUnavailable, None));
            };
            let Some((service, route)) = self.route_for(kind, payload) else {
                return Some(error_reply(&el, Condition::ServiceUnavailable, None));
            };
            if !route.access.admits(origin, own_account) {
                return Some(error_reply(&el, Condition::ServiceUnavailable, None));
            }
            let cx = Cx { router, features: &self.features };
            Some(service.iq(&cx, IqRequest { origin, iq: &el, payload, own_account }).await)
        })
    }

    fn undeliverable<'a>(
        &'a self,
        router: &'a Arc<Router>,
        bare: &'a str,
        el: Element,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            match self.fire(router, &Event::Undeliverable { bare, stanza: &el }, true).await {
                Handled::Done => Ok(()),
                Handled::Refused(r) => Err(r),
                Handled::Ignored => Err((Condition::ServiceUnavailable, "the recipient is not online")),
            }
        })
    }

    fn session_ended<'a>(&'a self, router: &'a Arc<Router>, session: &'a Arc<SessionHandle>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.fire(router, &Event::SessionEnded(session), false).await;
        })
    }
}
