//! The roster (RFC 6121 §2) and the presence subscription state machine
//! (§3) for contacts on this server: roster get and set from a user about
//! their own account, roster pushes to the resources that asked for the
//! roster, and both sides' subscription states kept as the requests pass.
//! Subscriptions across sites are passed on; roster state for remote
//! contacts is not kept yet.
//!
//! What Snow adds to RFC 6121, for a client that is not online (`snow
//! contacts`):
//!
//! - **Pending in.** A request from a local user to a local contact puts
//!   the user in the contact's roster (subscription `none`, unless the
//!   contact's roster is full), and while the requester's own item still
//!   asks (`ask='subscribe'`, not yet `to`), the contact's roster shows it
//!   with `<pending-in xmlns='urn:snow:roster:1'/>`. The state lives in
//!   the requester's item, so cancelling, denying, approving or removing
//!   changes it in one place. At each initial presence the request is
//!   delivered again (RFC 6121 §3.1.3).
//! - **Pre-approval** (RFC 6121 §3.4), implied: a contact you asked to
//!   see, or see already, is approved at once when they ask to see you.
//!   Adding each other is enough for both to see each other.
//! - **Removal** cancels the subscriptions both ways (RFC 6121 §2.5.2):
//!   `unsubscribe` if you saw or asked, `unsubscribed` if they saw or
//!   asked, then the item goes.
//! - **Size.** A roster holds at most `[server] max_roster_items` contacts
//!   (1000); a roster set beyond it is refused with `resource-constraint`
//!   and a text in words, and so is a subscription request or approval
//!   that would need a new item in the sender's full roster (a presence
//!   error back to the sender).
//!
//! When a subscription ends, the side that no longer sees the other gets
//! `unavailable` from the other's available resources (RFC 6121 §3.2.2,
//! §3.3.3), so presence stops at once.

use std::sync::Arc;

use snow_store::{RosterItem, ServerDb, StoreError, Subscription};
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT, NS_ROSTER};

use super::{Access, Cx, Event, Handled, IqRequest, IqRoute, Service};
use crate::addr::Addr;
use crate::db::Db;
use crate::limits::{Count, LimitCounters};
use crate::routing::{BoxFuture, Destination, Origin, Router, SessionHandle};

/// Most groups kept per item, longest name kept.
const MAX_GROUPS: usize = 32;
const MAX_NAME_CHARS: usize = 256;
/// Snow's mark of a contact whose request to see the owner's presence is
/// not answered yet (`<pending-in/>` inside an item).
const NS_SNOW_ROSTER: &str = "urn:snow:roster:1";

pub(crate) struct Roster {
    pub db: Db,
    /// Most contacts in one roster (`[server] max_roster_items`).
    pub max_items: usize,
    /// Where refusals over `max_items` are counted.
    pub counters: Arc<LimitCounters>,
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

    fn as_str(self) -> &'static str {
        match self {
            Request::Subscribe => "subscribe",
            Request::Subscribed => "subscribed",
            Request::Unsubscribe => "unsubscribe",
            Request::Unsubscribed => "unsubscribed",
        }
    }
}

fn blank(contact: &str) -> RosterItem {
    RosterItem { contact: contact.to_owned(), name: None, subscription: Subscription::None, ask: false, groups: vec![] }
}

/// Whether `requester`'s item for the owner still asks: the owner has a
/// request to answer ("Pending In").
fn asks(requester_item: Option<&RosterItem>) -> bool {
    requester_item.is_some_and(|i| i.ask && !i.subscription.to_contact())
}

/// An item that says nothing: no subscription either way, no request, no
/// name, no group.
fn empty(i: &RosterItem) -> bool {
    i.subscription == Subscription::None && !i.ask && i.name.is_none() && i.groups.is_empty()
}

/// What one subscription stanza between two local users did.
#[derive(Debug, Default)]
struct Outcome {
    /// The sender's item after the request, if it changed.
    mine: Option<RosterItem>,
    /// The contact's item after the request, if it changed; `removed`
    /// when it went (an item that only held a request).
    theirs: Option<RosterItem>,
    theirs_removed: bool,
    /// Pass the stanza on to the contact.
    deliver: bool,
    /// The contact now sees the sender's presence (send it).
    contact_sees_sender: bool,
    /// The sender now sees the contact's presence: `subscribed` from the
    /// contact goes back to the sender, and the contact's presence.
    sender_sees_contact: bool,
    /// The contact stops seeing the sender (send `unavailable`).
    contact_stops_seeing: bool,
    /// The sender stops seeing the contact.
    sender_stops_seeing: bool,
    /// Nothing done: the sender's roster is full.
    sender_full: bool,
}

/// RFC 6121 §3 for `request` from `user` to `contact`, both local, in one
/// database call: reads both items, decides, writes what changed.
fn transition(
    db: &ServerDb,
    user: &str,
    contact: &str,
    request: Request,
    max_items: usize,
) -> Result<Outcome, StoreError> {
    let mine = db.roster_item(user, contact)?;
    let theirs = db.roster_item(contact, user)?;
    let mut out = Outcome::default();
    match request {
        Request::Subscribe => {
            if mine.as_ref().is_some_and(|m| m.subscription.to_contact()) {
                // Already subscribed: the contact's server answers for the
                // contact (RFC 6121 §3.1.3).
                out.sender_sees_contact = true;
                return Ok(out);
            }
            let mut m = match mine {
                Some(m) => m,
                None if db.roster_len(user)? >= max_items => {
                    tracing::info!(%user, "subscription request refused: the sender's roster is full");
                    out.sender_full = true;
                    return Ok(out);
                }
                None => blank(contact),
            };
            let pre_approved = theirs.as_ref().is_some_and(|t| t.ask || t.subscription.to_contact());
            if pre_approved {
                let mut t = theirs.unwrap_or_else(|| blank(user));
                t.subscription = t.subscription.plus_from();
                m.subscription = m.subscription.plus_to();
                m.ask = false;
                out.theirs = Some(t);
                out.sender_sees_contact = true;
            } else {
                m.ask = true;
                out.deliver = true;
                // The request is kept in the contact's roster as an item
                // (shown with <pending-in/>), if there is room.
                if theirs.is_none() && db.roster_len(contact)? < max_items {
                    out.theirs = Some(blank(user));
                }
            }
            out.mine = Some(m);
        }
        Request::Subscribed => {
            // Only an approval of a request (RFC 6121 §3.1.5).
            let Some(mut t) = theirs.filter(|t| asks(Some(t))) else { return Ok(out) };
            let mut m = match mine {
                Some(m) => m,
                None if db.roster_len(user)? >= max_items => {
                    tracing::info!(%user, "approval refused: the approver's roster is full");
                    out.sender_full = true;
                    return Ok(out);
                }
                None => blank(contact),
            };
            m.subscription = m.subscription.plus_from();
            t.subscription = t.subscription.plus_to();
            t.ask = false;
            out.mine = Some(m);
            out.theirs = Some(t);
            out.deliver = true;
            out.contact_sees_sender = true;
        }
        Request::Unsubscribe => {
            let Some(mut m) = mine.filter(|m| m.ask || m.subscription.to_contact()) else { return Ok(out) };
            let was_seeing = m.subscription.to_contact();
            m.subscription = m.subscription.minus_to();
            m.ask = false;
            if let Some(mut t) = theirs {
                t.subscription = t.subscription.minus_from();
                // An item that only held this request goes with it.
                out.theirs_removed = !was_seeing && empty(&t);
                out.theirs = Some(t);
            }
            out.mine = Some(m);
            out.deliver = true;
            out.sender_stops_seeing = was_seeing;
        }
        Request::Unsubscribed => {
            let was_seen = mine.as_ref().is_some_and(|m| m.subscription.from_contact());
            if !was_seen && !asks(theirs.as_ref()) {
                return Ok(out);
            }
            if let Some(mut m) = mine {
                m.subscription = m.subscription.minus_from();
                out.mine = Some(m);
            }
            if let Some(mut t) = theirs {
                t.subscription = t.subscription.minus_to();
                t.ask = false;
                out.theirs = Some(t);
            }
            out.deliver = true;
            out.contact_stops_seeing = was_seen;
        }
    }
    if let Some(m) = &out.mine {
        db.put_roster_item(user, m)?;
    }
    if let Some(t) = &out.theirs {
        if out.theirs_removed {
            db.remove_roster_item(contact, user)?;
        } else {
            db.put_roster_item(contact, t)?;
        }
    }
    Ok(out)
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
                let owner = me.bare.clone();
                let items = match self.db.call(move |db| with_requests(db, &owner)).await {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read a roster");
                        return error_reply(req.iq, Condition::InternalServerError, None);
                    }
                };
                let mut q = Element::new(NS_ROSTER, "query");
                for (item, pending_in) in &items {
                    let mut e = item_element(item);
                    if *pending_in {
                        e.push_child(Element::new(NS_SNOW_ROSTER, "pending-in"));
                    }
                    q.push_child(e);
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

/// The roster of `owner`, each item with whether its contact has asked to
/// see the owner's presence and waits for an answer.
fn with_requests(db: &ServerDb, owner: &str) -> Result<Vec<(RosterItem, bool)>, StoreError> {
    db.roster(owner)?
        .into_iter()
        .map(|item| {
            let pending_in = !item.subscription.from_contact() && asks(db.roster_item(&item.contact, owner)?.as_ref());
            Ok((item, pending_in))
        })
        .collect()
}

/// The contacts whose requests to see `owner`'s presence wait for an
/// answer (RFC 6121 §3.1.3: delivered again at each initial presence).
pub(super) async fn pending_requests(db: &Db, owner: &str) -> Vec<String> {
    let o = owner.to_owned();
    match db.call(move |db| with_requests(db, &o)).await {
        Ok(items) => items.into_iter().filter(|(_, p)| *p).map(|(i, _)| i.contact).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a roster");
            Vec::new()
        }
    }
}

impl Roster {
    async fn set(&self, router: &Arc<Router>, me: &Arc<SessionHandle>, iq: &Element, query: &Element) -> Element {
        let items: Vec<&Element> = query.children().filter(|c| c.is(NS_ROSTER, "item")).collect();
        let [item] = items.as_slice() else {
            return error_reply(iq, Condition::BadRequest, Some("a roster set carries exactly one item"));
        };
        let Some(addr) = item.attr("jid").and_then(Addr::parse) else {
            return error_reply(iq, Condition::BadRequest, Some("the item needs a valid jid"));
        };
        let contact = addr.bare();
        let owner = me.bare.clone();
        if contact == owner {
            return error_reply(iq, Condition::NotAllowed, Some("you cannot be your own contact"));
        }
        if item.attr("subscription") == Some("remove") {
            return self.remove(router, me, iq, &contact).await;
        }
        let groups: Vec<String> =
            item.children().filter(|g| g.is(NS_ROSTER, "group")).map(|g| g.text()).take(MAX_GROUPS).collect();
        let name = item.attr("name").map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>());
        let (o, c, max_items) = (owner.clone(), contact, self.max_items);
        let stored = self
            .db
            .call(move |db| {
                // Name and groups are the client's; subscription state is the server's.
                let roster = db.roster(&o)?;
                let full = roster.len() >= max_items;
                let mut it = match roster.into_iter().find(|i| i.contact == c) {
                    Some(it) => it,
                    None if full => return Ok(None),
                    None => blank(&c),
                };
                it.name = name;
                it.groups = groups;
                db.put_roster_item(&o, &it)?;
                Ok(Some(it))
            })
            .await;
        match stored {
            Ok(Some(it)) => {
                push(router, &owner, &it, false).await;
                iq_result(iq, None)
            }
            Ok(None) => {
                self.full(&owner);
                error_reply(iq, Condition::ResourceConstraint, Some(&self.full_text()))
            }
            Err(e) => {
                tracing::error!(error = %e, "roster update failed");
                error_reply(iq, Condition::InternalServerError, None)
            }
        }
    }

    /// RFC 6121 §2.5.2: the subscriptions are cancelled both ways (as far
    /// as they exist, requests included), then the item goes.
    async fn remove(&self, router: &Arc<Router>, me: &Arc<SessionHandle>, iq: &Element, contact: &str) -> Element {
        let (o, c) = (me.bare.clone(), contact.to_owned());
        let found = self.db.call(move |db| Ok((db.roster_item(&o, &c)?, db.roster_item(&c, &o)?))).await;
        let (mine, theirs) = match found {
            Ok((Some(mine), theirs)) => (mine, theirs),
            Ok((None, _)) => return error_reply(iq, Condition::ItemNotFound, Some("not in your roster")),
            Err(e) => {
                tracing::error!(error = %e, "roster read failed");
                return error_reply(iq, Condition::InternalServerError, None);
            }
        };
        if let Some(to) = Addr::parse(contact) {
            if mine.ask || mine.subscription.to_contact() {
                self.subscription(router, me, stanza(contact, Request::Unsubscribe), &to, Request::Unsubscribe).await;
            }
            if mine.subscription.from_contact() || asks(theirs.as_ref()) {
                self.subscription(router, me, stanza(contact, Request::Unsubscribed), &to, Request::Unsubscribed).await;
            }
        }
        let (o, c) = (me.bare.clone(), contact.to_owned());
        match self.db.call(move |db| db.remove_roster_item(&o, &c)).await {
            Ok(_) => {
                push(router, &me.bare, &blank(contact), true).await;
                iq_result(iq, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "roster update failed");
                error_reply(iq, Condition::InternalServerError, None)
            }
        }
    }

    /// RFC 6121 §3 for a request from `me` to `to`: both rosters updated
    /// and pushed, then the stanza routed to the contact (a request is
    /// kept offline if the contact is not online), and presence sent or
    /// withdrawn as the subscription now says.
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
        let reachable = match router.resolve(to).await {
            Destination::Account(_) | Destination::Session(_) => true,
            // Another site's contact (or a component): passed on.
            Destination::Remote(_) | Destination::Component(_) => {
                router.route(Origin::Session(Arc::clone(me)), el).await;
                return;
            }
            // A local account that takes no stanzas (its certificate is
            // revoked): a cancellation still ends the subscription in both
            // rosters, so no row goes on saying the contact sees (or is
            // seen by) someone who removed them — it would show their
            // presence again to a user issued a new certificate. It never
            // creates an item, so it writes nothing for an address that
            // never was an account.
            Destination::NoAccount if matches!(request, Request::Unsubscribe | Request::Unsubscribed) => false,
            Destination::Server | Destination::NoAccount => return,
        };
        let user = me.bare.clone();
        let contact = to.bare();
        if contact == user {
            return;
        }
        el.set_attr("to", contact.clone());
        let (u, c, max_items) = (user.clone(), contact.clone(), self.max_items);
        let out = match self.db.call(move |db| transition(db, &u, &c, request, max_items)).await {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(error = %e, "roster update failed");
                return;
            }
        };
        if out.sender_full {
            self.full(&user);
            let err = error_reply(&el, Condition::ResourceConstraint, Some(&self.full_text()));
            router.reply(&Origin::Session(Arc::clone(me)), err);
            return;
        }
        if let Some(m) = &out.mine {
            push(router, &user, m, false).await;
        }
        if let Some(t) = &out.theirs {
            push(router, &contact, t, out.theirs_removed).await;
        }
        if out.deliver && reachable {
            deliver_online(router, me, &contact, &el).await;
        }
        if out.sender_sees_contact {
            // The contact's server answers for the contact (pre-approved,
            // or subscribed already), then the contact's presence follows.
            let answer = Element::new(NS_CLIENT, "presence")
                .with_attr("type", "subscribed")
                .with_attr("from", contact.clone())
                .with_attr("to", user.clone());
            router.route(Origin::Server, answer).await;
            show_presence(router, &contact, &user).await;
        }
        if out.contact_sees_sender {
            show_presence(router, &user, &contact).await;
        }
        if out.sender_stops_seeing {
            hide_presence(router, &contact, &user).await;
        }
        if out.contact_stops_seeing {
            hide_presence(router, &user, &contact).await;
        }
    }
}

impl Roster {
    /// The refusal's text: what is full, and how full it may be.
    fn full_text(&self) -> String {
        format!("your contact list is full (at most {} contacts)", self.max_items)
    }

    /// Counts a refusal over the roster size.
    fn full(&self, owner: &str) {
        let n = self.counters.add(Count::RosterFull);
        tracing::info!(%owner, refused = n, "roster full: addition refused");
    }
}

/// A subscription stanza between local users goes to the contact's
/// available resources only, never to offline storage: between local users
/// the roster is the record of it (RFC 6121 §3.1.3). A request still
/// unanswered is delivered again at the contact's next initial presence
/// (`presence::requests_again`, from the roster); an answer or a
/// cancellation is in the contact's roster. A stored copy would arrive
/// late, after it was answered: a request approved (or withdrawn, or
/// followed by a removal) would show again as waiting for an answer.
async fn deliver_online(router: &Arc<Router>, me: &Arc<SessionHandle>, contact: &str, el: &Element) {
    for s in router.sessions.sessions(contact).into_iter().filter(|s| s.is_available()) {
        let mut copy = el.clone();
        copy.set_attr("to", s.full.clone());
        router.route(Origin::Session(Arc::clone(me)), copy).await;
    }
}

/// A subscription stanza from a session to `to`.
fn stanza(to: &str, request: Request) -> Element {
    Element::new(NS_CLIENT, "presence").with_attr("to", to.to_owned()).with_attr("type", request.as_str())
}

/// The current presence of `from`'s available resources to each of `to`'s
/// sessions.
async fn show_presence(router: &Arc<Router>, from: &str, to: &str) {
    for s in router.sessions.sessions(from) {
        for c in router.sessions.sessions(to) {
            if let Some(p) = s.last_presence_to(&c.full) {
                router.route(Origin::Session(Arc::clone(&s)), p).await;
            }
        }
    }
}

/// `unavailable` from `from`'s available resources to each of `to`'s
/// sessions: `to` no longer sees `from`.
async fn hide_presence(router: &Arc<Router>, from: &str, to: &str) {
    for s in router.sessions.sessions(from).into_iter().filter(|s| s.is_available()) {
        for c in router.sessions.sessions(to) {
            let gone = Element::new(NS_CLIENT, "presence")
                .with_attr("type", "unavailable")
                .with_attr("from", s.full.clone())
                .with_attr("to", c.full.clone());
            router.route(Origin::Session(Arc::clone(&s)), gone).await;
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
        it.remove_attr("ask");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `[server] max_roster_items`' default.
    const MAX_ITEMS: usize = 1000;

    fn db() -> (tempfile::TempDir, ServerDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = ServerDb::open(&dir.path().join("server.db")).unwrap();
        (dir, db)
    }

    fn sub(db: &ServerDb, owner: &str, contact: &str) -> Option<(Subscription, bool)> {
        db.roster_item(owner, contact).unwrap().map(|i| (i.subscription, i.ask))
    }

    const A: &str = "1111111@po.example";
    const B: &str = "2222222@po.example";

    #[test]
    fn a_request_is_pending_in_until_approved() {
        let (_d, db) = db();
        let out = transition(&db, A, B, Request::Subscribe, MAX_ITEMS).unwrap();
        assert!(out.deliver && !out.sender_sees_contact);
        assert_eq!(sub(&db, A, B), Some((Subscription::None, true)));
        assert_eq!(sub(&db, B, A), Some((Subscription::None, false)), "the request is kept in B's roster");
        assert!(with_requests(&db, B).unwrap()[0].1);
        assert!(!with_requests(&db, A).unwrap()[0].1);
        // An approval nobody asked for is ignored; this one was asked for.
        assert!(!transition(&db, A, B, Request::Subscribed, MAX_ITEMS).unwrap().deliver);
        let out = transition(&db, B, A, Request::Subscribed, MAX_ITEMS).unwrap();
        assert!(out.deliver && out.contact_sees_sender);
        assert_eq!(sub(&db, A, B), Some((Subscription::To, false)));
        assert_eq!(sub(&db, B, A), Some((Subscription::From, false)));
        assert!(!with_requests(&db, B).unwrap()[0].1);
        // B asks back: A asked B before, so it is approved at once.
        let out = transition(&db, B, A, Request::Subscribe, MAX_ITEMS).unwrap();
        assert!(out.sender_sees_contact && !out.deliver);
        assert_eq!(sub(&db, A, B), Some((Subscription::Both, false)));
        assert_eq!(sub(&db, B, A), Some((Subscription::Both, false)));
        // Asking again changes nothing.
        let out = transition(&db, B, A, Request::Subscribe, MAX_ITEMS).unwrap();
        assert!(out.sender_sees_contact && out.mine.is_none());
    }

    #[test]
    fn cancelling_a_request_takes_it_out_of_the_contacts_roster() {
        let (_d, db) = db();
        transition(&db, A, B, Request::Subscribe, MAX_ITEMS).unwrap();
        let out = transition(&db, A, B, Request::Unsubscribe, MAX_ITEMS).unwrap();
        assert!(out.theirs_removed && out.deliver && !out.sender_stops_seeing);
        assert_eq!(sub(&db, B, A), None);
        assert_eq!(sub(&db, A, B), Some((Subscription::None, false)));
        // Denying a request ends it; the denier's item stays.
        transition(&db, A, B, Request::Subscribe, MAX_ITEMS).unwrap();
        let out = transition(&db, B, A, Request::Unsubscribed, MAX_ITEMS).unwrap();
        assert!(out.deliver && !out.contact_stops_seeing);
        assert_eq!(sub(&db, A, B), Some((Subscription::None, false)));
        assert!(!with_requests(&db, B).unwrap()[0].1);
        // Nothing to cancel: nothing happens.
        assert!(!transition(&db, B, A, Request::Unsubscribed, MAX_ITEMS).unwrap().deliver);
        assert!(!transition(&db, B, A, Request::Unsubscribe, MAX_ITEMS).unwrap().deliver);
    }

    #[test]
    fn a_full_roster_keeps_no_request() {
        let (_d, db) = db();
        for i in 0..MAX_ITEMS {
            db.put_roster_item(B, &blank(&format!("{i}@po.example"))).unwrap();
        }
        let out = transition(&db, A, B, Request::Subscribe, MAX_ITEMS).unwrap();
        assert!(out.deliver, "the request still goes to B");
        assert_eq!(sub(&db, B, A), None);
        for i in 0..MAX_ITEMS {
            db.put_roster_item(A, &blank(&format!("x{i}@po.example"))).unwrap();
        }
        assert!(!transition(&db, A, "3333333@po.example", Request::Subscribe, MAX_ITEMS).unwrap().deliver);
    }
}
