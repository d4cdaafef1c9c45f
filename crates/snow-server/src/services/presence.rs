//! Presence (RFC 6121 §4): a session's available and unavailable presence
//! goes to the user's other resources and to the contacts subscribed to
//! it; on initial presence the user gets the current presence of the
//! contacts they are subscribed to, and the subscription requests still
//! waiting for their answer (RFC 6121 §3.1.3: delivered again until
//! approved or denied); a session that ends is seen going unavailable.
//! Directed presence needs no service: routing delivers it.

use std::sync::Arc;

use snow_xml::{Element, NS_CLIENT};

use super::roster::{pending_requests, roster_of};
use super::{Cx, Event, Handled, Service};
use crate::db::Db;
use crate::routing::{BoxFuture, Origin, Router, SessionHandle};

pub(crate) struct Presence {
    pub db: Db,
}

impl Service for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn on<'a>(&'a self, cx: &'a Cx<'a>, event: &'a Event<'a>) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            match event {
                Event::Presence { session, stanza, to: None, initial } => {
                    if matches!(stanza.attr("type"), None | Some("available")) {
                        let priority = stanza
                            .child(NS_CLIENT, "priority")
                            .and_then(|p| p.text().trim().parse::<i32>().ok())
                            .unwrap_or(0)
                            .clamp(-128, 127);
                        session.set_available(true, priority);
                        session.set_last_presence(Some((*stanza).clone()));
                        broadcast(cx.router, &self.db, session, stanza).await;
                        if *initial {
                            probe_contacts(cx.router, &self.db, session).await;
                            requests_again(cx.router, &self.db, session).await;
                        }
                    } else {
                        session.set_available(false, 0);
                        session.set_last_presence(None);
                        broadcast(cx.router, &self.db, session, stanza).await;
                    }
                    Handled::Done
                }
                // A session replaced by a new one with the same full JID
                // is not seen going away: that JID is online.
                Event::SessionEnded(session) if session.is_available() && !replaced(cx.router, session) => {
                    session.set_available(false, 0);
                    let el = Element::new(NS_CLIENT, "presence")
                        .with_attr("type", "unavailable")
                        .with_attr("from", session.full.clone());
                    broadcast(cx.router, &self.db, session, &el).await;
                    Handled::Done
                }
                _ => Handled::Ignored,
            }
        })
    }
}

/// Sends `el` (from `me`) to the user's other available resources and to
/// the available resources of contacts subscribed to the user's presence,
/// each copy through routing.
async fn broadcast(router: &Arc<Router>, db: &Db, me: &Arc<SessionHandle>, el: &Element) {
    let mut to: Vec<String> = router
        .sessions
        .sessions(&me.bare)
        .iter()
        .filter(|s| !Arc::ptr_eq(s, me) && s.is_available())
        .map(|s| s.full.clone())
        .collect();
    for item in roster_of(db, &me.bare).await {
        if item.subscription.from_contact() {
            let contacts = router.sessions.sessions(&item.contact);
            to.extend(contacts.iter().filter(|s| s.is_available()).map(|s| s.full.clone()));
        }
    }
    for full in to {
        let mut copy = el.clone();
        copy.set_attr("to", full);
        router.route(Origin::Session(Arc::clone(me)), copy).await;
    }
}

/// On initial presence: the current presence of every contact the user is
/// subscribed to (answering the probes RFC 6121 §4.2.2 has the server send).
async fn probe_contacts(router: &Arc<Router>, db: &Db, me: &Arc<SessionHandle>) {
    for item in roster_of(db, &me.bare).await {
        if item.subscription.to_contact() {
            for s in router.sessions.sessions(&item.contact) {
                if let Some(p) = s.last_presence_to(&me.full) {
                    router.route(Origin::Session(Arc::clone(&s)), p).await;
                }
            }
        }
    }
}

/// On initial presence: each request to see the user's presence that is
/// not answered yet, as the requester sent it.
async fn requests_again(router: &Arc<Router>, db: &Db, me: &Arc<SessionHandle>) {
    for contact in pending_requests(db, &me.bare).await {
        let request = Element::new(NS_CLIENT, "presence")
            .with_attr("type", "subscribe")
            .with_attr("from", contact)
            .with_attr("to", me.full.clone());
        router.route(Origin::Server, request).await;
    }
}

/// Whether another session now holds `s`'s full JID.
fn replaced(router: &Router, s: &Arc<SessionHandle>) -> bool {
    router.sessions.session(&s.bare, &s.full).is_some_and(|now| !Arc::ptr_eq(&now, s))
}
