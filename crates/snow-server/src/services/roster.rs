//! The roster (RFC 6121 §2) and the presence subscription state machine
//! (§3) for contacts on this server: roster get and set from a user about
//! their own account, roster pushes to the resources that asked for the
//! roster, and both sides' subscription states kept as the requests pass.
//! Subscriptions across sites are passed on; roster state for remote
//! contacts is not kept yet.

use std::sync::Arc;

use snow_store::{RosterItem, Subscription};
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT, NS_ROSTER};

use super::{Access, Cx, Event, Handled, IqRequest, IqRoute, Service};
use crate::addr::Addr;
use crate::db::Db;
use crate::routing::{BoxFuture, Destination, Origin, Router, SessionHandle};

/// Most groups kept per item, longest name kept.
const MAX_GROUPS: usize = 32;
const MAX_NAME_CHARS: usize = 256;

pub(crate) struct Roster {
    pub db: Db,
}

/// A subscription stanza's type (RFC 6121 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl Request {
    fn parse(kind: &str) -> Option<Request> {
        match kind {
            "subscribe" => Some(Request::Subscribe),
            "subscribed" => Some(Request::Subscribed),
            "unsubscribe" => Some(Request::Unsubscribe),
            "unsubscribed" => Some(Request::Unsubscribed),
            _ => None,
        }
    }

    /// The sender's item and the contact's (if the contact has one) after
    /// the request.
    fn apply(self, mine: &mut RosterItem, theirs: Option<&mut RosterItem>) {
        match self {
            Request::Subscribe => mine.ask = true,
            Request::Subscribed => {
                mine.subscription = mine.subscription.plus_from();
                if let Some(t) = theirs {
                    t.subscription = t.subscription.plus_to();
                    t.ask = false;
                }
            }
            Request::Unsubscribe => {
                mine.subscription = mine.subscription.minus_to();
                mine.ask = false;
                if let Some(t) = theirs {
                    t.subscription = t.subscription.minus_from();
                }
            }
            Request::Unsubscribed => {
                mine.subscription = mine.subscription.minus_from();
                if let Some(t) = theirs {
                    t.subscription = t.subscription.minus_to();
                    t.ask = false;
                }
            }
        }
    }
}

fn blank(contact: &str) -> RosterItem {
    RosterItem { contact: contact.to_owned(), name: None, subscription: Subscription::None, ask: false, groups: vec![] }
}

impl Service for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_ROSTER]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[
            IqRoute::get(NS_ROSTER, "query", Access::OwnAccount),
            IqRoute::set(NS_ROSTER, "query", Access::OwnAccount),
        ];
        ROUTES
    }

    fn iq<'a>(&'a self, cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move {
            let Some(me) = req.origin.session() else {
                return error_reply(req.iq, Condition::ServiceUnavailable, None);
            };
            if req.iq.attr("type") == Some("get") {
                me.interested.store(true, std::sync::atomic::Ordering::Release);
                let mut q = Element::new(NS_ROSTER, "query");
                for item in roster_of(&self.db, &me.bare).await {
                    q.push_child(item_element(&item));
                }
                return iq_result(req.iq, Some(q));
            }
            self.set(cx.router, me, req.iq, req.payload).await
        })
    }

    fn on<'a>(&'a self, cx: &'a Cx<'a>, event: &'a Event<'a>) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            let Event::Presence { session, stanza, to: Some(to), .. } = event else { return Handled::Ignored };
            let Some(request) = stanza.attr("type").and_then(Request::parse) else { return Handled::Ignored };
            self.subscription(cx.router, session, (*stanza).clone(), to, request).await;
            Handled::Done
        })
    }
}

impl Roster {
    async fn set(&self, router: &Arc<Router>, me: &Arc<SessionHandle>, iq: &Element, query: &Element) -> Element {
        let items: Vec<&Element> = query.children().filter(|c| c.is(NS_ROSTER, "item")).collect();
        let [item] = items.as_slice() else {
            return error_reply(iq, Condition::BadRequest, Some("a roster set carries exactly one item"));
        };
        let Some(contact) = item.attr("jid").and_then(Addr::parse).map(|a| a.bare()) else {
            return error_reply(iq, Condition::BadRequest, Some("the item needs a valid jid"));
        };
        let owner = me.bare.clone();
        if item.attr("subscription") == Some("remove") {
            let (o, c) = (owner.clone(), contact.clone());
            return match self.db.call(move |db| db.remove_roster_item(&o, &c)).await {
                Ok(true) => {
                    push(router, &owner, &blank(&contact), true).await;
                    iq_result(iq, None)
                }
                Ok(false) => error_reply(iq, Condition::ItemNotFound, None),
                Err(_) => error_reply(iq, Condition::InternalServerError, None),
            };
        }
        let groups: Vec<String> =
            item.children().filter(|g| g.is(NS_ROSTER, "group")).map(|g| g.text()).take(MAX_GROUPS).collect();
        let name = item.attr("name").map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>());
        let (o, c) = (owner.clone(), contact);
        let stored = self
            .db
            .call(move |db| {
                // Name and groups are the client's; subscription state is the server's.
                let mut it = db.roster_item(&o, &c)?.unwrap_or_else(|| blank(&c));
                it.name = name;
                it.groups = groups;
                db.put_roster_item(&o, &it)?;
                Ok(it)
            })
            .await;
        match stored {
            Ok(it) => {
                push(router, &owner, &it, false).await;
                iq_result(iq, None)
            }
            Err(_) => error_reply(iq, Condition::InternalServerError, None),
        }
    }

    /// RFC 6121 §3 for a request from `me` to `to`: both rosters updated
    /// and pushed, then the stanza routed to the contact (a request is
    /// kept offline if the contact is not online).
    async fn subscription(
        &self,
        router: &Arc<Router>,
        me: &Arc<SessionHandle>,
        mut el: Element,
        to: &Addr,
        request: Request,
    ) {
        // Subscription stanzas carry bare JIDs (RFC 6121 §3.1.2).
        el.set_attr("from", me.bare.clone());
        match router.resolve(to).await {
            Destination::Account(_) | Destination::Session(_) => {}
            // Another site's contact (or a component): passed on.
            Destination::Remote(_) | Destination::Component(_) => {
                router.route(Origin::Session(Arc::clone(me)), el).await;
                return;
            }
            Destination::Server | Destination::NoAccount => return,
        }
        let user = me.bare.clone();
        let contact = to.bare();
        if contact == user {
            return;
        }
        el.set_attr("to", contact.clone());
        let (u, c) = (user.clone(), contact.clone());
        let changed = self
            .db
            .call(move |db| {
                let mut mine = db.roster_item(&u, &c)?.unwrap_or_else(|| blank(&c));
                let mut theirs = db.roster_item(&c, &u)?;
                request.apply(&mut mine, theirs.as_mut());
                db.put_roster_item(&u, &mine)?;
                if let Some(t) = &theirs {
                    db.put_roster_item(&c, t)?;
                }
                Ok((mine, theirs))
            })
            .await;
        let (mine, theirs) = match changed {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "roster update failed");
                return;
            }
        };
        push(router, &user, &mine, false).await;
        if let Some(t) = &theirs {
            push(router, &contact, t, false).await;
        }
        router.route(Origin::Session(Arc::clone(me)), el).await;
        if request == Request::Subscribed {
            // The contact now sees the user's presence.
            for s in router.sessions.sessions(&user) {
                for c in router.sessions.sessions(&contact) {
                    if let Some(p) = s.last_presence_to(&c.full) {
                        router.route(Origin::Session(Arc::clone(&s)), p).await;
                    }
                }
            }
        }
    }
}

/// The roster of `bare` (empty if it cannot be read).
pub(super) async fn roster_of(db: &Db, bare: &str) -> Vec<RosterItem> {
    let b = bare.to_owned();
    db.call(move |db| db.roster(&b)).await.unwrap_or_default()
}

fn item_element(item: &RosterItem) -> Element {
    let mut e = Element::new(NS_ROSTER, "item")
        .with_attr("jid", item.contact.clone())
        .with_attr("subscription", item.subscription.as_str());
    if let Some(n) = &item.name {
        e.set_attr("name", n.clone());
    }
    if item.ask {
        e.set_attr("ask", "subscribe");
    }
    for g in &item.groups {
        e.push_child(Element::new(NS_ROSTER, "group").with_text(g.clone()));
    }
    e
}

/// Roster push (RFC 6121 §2.1.6) to every interested resource of
/// `owner`, through routing.
async fn push(router: &Arc<Router>, owner: &str, item: &RosterItem, removed: bool) {
    let mut it = item_element(item);
    if removed {
        it.set_attr("subscription", "remove");
    }
    let interested: Vec<String> = router
        .sessions
        .sessions(owner)
        .iter()
        .filter(|s| s.interested.load(std::sync::atomic::Ordering::Acquire))
        .map(|s| s.full.clone())
        .collect();
    for full in interested {
        let id = snow_crypto::one_time_password::random_hex(6).unwrap_or_default();
        let push = Element::new(NS_CLIENT, "iq")
            .with_attr("type", "set")
            .with_attr("id", format!("push-{id}"))
            .with_attr("from", owner.to_owned())
            .with_attr("to", full)
            .with_child(Element::new(NS_ROSTER, "query").with_child(it.clone()));
        router.route(Origin::Server, push).await;
    }
}
