//! What the server does with each stanza a bound client sends: routing
//! (RFC 6121 §8), presence, roster, and the server's own IQ services.

use std::sync::Arc;

use snow_store::RosterItem;
use snow_xml::{
    Element, NS_CLIENT, NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_ROSTER, NS_SESSION, NS_VERSION,
};

use crate::addr::Addr;
use crate::router::{Outbound, SessionHandle};
use crate::server::Shared;
use crate::session::End;
use snow_xml::stanza::{error_reply, iq_result, is_reply};

/// Features announced in disco#info.
const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    NS_VERSION,
    NS_ROSTER,
    "msgoffline",
    "urn:xmpp:delay",
    snow_xml::NS_PUBSUB,
];

pub(crate) async fn handle_stanza(shared: &Arc<Shared>, me: &Arc<SessionHandle>, mut el: Element) -> Result<(), End> {
    if el.ns() != NS_CLIENT || !matches!(el.name(), "message" | "presence" | "iq") {
        return Err(End::StreamError("unsupported-stanza-type", format!("<{}/> is not a stanza", el.name())));
    }
    // The server, not the client, says who sent it (RFC 6120 §8.1.2.1).
    el.set_attr("from", me.full.clone());
    let to = match el.attr("to") {
        None => None,
        Some(t) => match Addr::parse(t) {
            Some(a) => Some(a),
            None => {
                if !is_reply(&el) {
                    reply(me, error_reply(&el, "jid-malformed", Some("the 'to' address is not a valid JID")));
                }
                return Ok(());
            }
        },
    };
    let origin = Origin::Local(me);
    match el.name() {
        "message" => route_message(shared, &origin, el, to).await,
        "presence" => presence(shared, me, el, to).await,
        _ => iq(shared, &origin, el, to).await,
    }
    Ok(())
}

/// A stanza that arrived over an authenticated s2s link from `domain`
/// (already checked: its `from` is of that domain; moved to `jabber:client`).
pub(crate) async fn handle_remote(shared: &Arc<Shared>, domain: &str, el: Element) {
    let origin = Origin::Remote(domain);
    let to = el.attr("to").and_then(Addr::parse);
    if let Some(to) = to.as_ref().filter(|a| shared.components.is_component(&a.domain)) {
        let domain = to.domain.clone();
        crate::component::deliver_or_bounce(shared, &domain, el, |b| origin.reply(shared, b));
        return;
    }
    let Some(to) = to.filter(|a| is_local(shared, a)) else {
        origin.reply(shared, error_reply(&el, "item-not-found", Some("this server does not relay")));
        return;
    };
    match el.name() {
        "message" => route_message(shared, &origin, el, Some(to)).await,
        "iq" if to.local.is_none() && el.attr("type") == Some("result") => {
            if let Some(id) = el.attr("id") {
                crate::directory::acknowledged(shared, domain, id).await;
            }
        }
        "iq" if to.local.is_none()
            && el.attr("type") == Some("set")
            && el.child(crate::directory::NS_KEYS, "update").is_some() =>
        {
            let update = el.child(crate::directory::NS_KEYS, "update").cloned().unwrap_or_else(|| Element::new("", ""));
            let answer = crate::directory::apply_push(shared, domain, &el, &update).await;
            origin.reply(shared, answer);
        }
        "iq" => iq(shared, &origin, el, Some(to)).await,
        "presence" if to.local.is_some() => {
            // Directed presence and subscription requests from remote
            // users reach the contact's available resources.
            let bare = to.bare();
            for s in shared.router.sessions(&bare) {
                if s.is_available() && to.resource.as_deref().is_none_or(|r| s.full == format!("{bare}/{r}")) {
                    s.send_xml(el.to_xml(NS_CLIENT));
                }
            }
        }
        _ => {}
    }
}

/// A stanza from a connected component (XEP-0114), already
/// authenticated and with its `from` in the component's domain.
pub(crate) async fn handle_component(shared: &Arc<Shared>, domain: &str, el: Element) {
    let origin = Origin::Component(domain);
    let to = match el.attr("to").map(Addr::parse) {
        Some(Some(a)) => a,
        _ => {
            if !is_reply(&el) {
                origin
                    .reply(shared, error_reply(&el, "jid-malformed", Some("a component's stanza needs a valid 'to'")));
            }
            return;
        }
    };
    match el.name() {
        "message" => route_message(shared, &origin, el, Some(to)).await,
        "iq" => iq(shared, &origin, el, Some(to)).await,
        _ if !is_local(shared, &to) => to_remote(shared, &origin, el, &to.domain),
        _ => {
            // Presence from a component to local users' resources.
            let bare = to.bare();
            for s in shared.router.sessions(&bare) {
                if to.resource.as_deref().is_none_or(|r| s.full == format!("{bare}/{r}")) {
                    s.send_xml(el.to_xml(NS_CLIENT));
                }
            }
        }
    }
}

/// Where a stanza came from, and so where its errors go back to.
pub(crate) enum Origin<'a> {
    Local(&'a Arc<SessionHandle>),
    Remote(&'a str),
    Component(&'a str),
    /// The server's own services (pubsub notifications): errors are dropped.
    Server,
}

/// Routes a message the server itself sends (from its domain) like any
/// other: to local sessions or offline storage, or over s2s.
pub(crate) async fn route_from_server(shared: &Arc<Shared>, el: Element) {
    let to = el.attr("to").and_then(Addr::parse);
    if to.is_some() {
        route_message(shared, &Origin::Server, el, to).await;
    }
}

impl Origin<'_> {
    fn reply(&self, shared: &Arc<Shared>, stanza: Element) {
        match self {
            Origin::Local(me) => {
                me.send_xml(stanza.to_xml(NS_CLIENT));
            }
            Origin::Remote(domain) => crate::s2s::send(shared, domain, stanza),
            Origin::Component(domain) => {
                crate::component::send(shared, domain, stanza);
            }
            Origin::Server => tracing::debug!("an error for a server-sent stanza: dropped"),
        }
    }
}

/// A stanza for another domain: a component of ours gets it directly;
/// local users' and components' go over s2s; this server does not relay
/// between other domains.
fn to_remote(shared: &Arc<Shared>, origin: &Origin<'_>, el: Element, domain: &str) {
    if shared.components.is_component(domain) {
        crate::component::deliver_or_bounce(shared, domain, el, |b| origin.reply(shared, b));
        return;
    }
    match origin {
        Origin::Local(_) | Origin::Component(_) | Origin::Server => crate::s2s::send(shared, domain, el),
        Origin::Remote(_) if !is_reply(&el) => {
            origin.reply(shared, error_reply(&el, "item-not-found", Some("this server does not relay")));
        }
        Origin::Remote(_) => {}
    }
}

fn reply(me: &SessionHandle, stanza: Element) {
    me.send_xml(stanza.to_xml(NS_CLIENT));
}

fn is_local(shared: &Shared, a: &Addr) -> bool {
    a.domain == shared.config.domain.as_str()
}

async fn account_exists(shared: &Arc<Shared>, bare: &str) -> bool {
    if !shared.router.sessions(bare).is_empty() {
        return true;
    }
    // An account exists once it has logged in here, or when the PO's key
    // directory lists a valid certificate for it (a lab's users before
    // their first login).
    let b = bare.to_owned();
    shared
        .db(move |db| Ok(db.account_exists(&b)? || db.directory_entry(&b)?.is_some_and(|e| e.status == "valid")))
        .await
        .unwrap_or(false)
}

async fn route_message(shared: &Arc<Shared>, origin: &Origin<'_>, el: Element, to: Option<Addr>) {
    let to = match (to, origin) {
        (Some(to), _) => to,
        // No 'to': the sender's own bare JID (RFC 6120 §10.3.1).
        (None, Origin::Local(me)) => match Addr::parse(&me.bare) {
            Some(a) => a,
            None => return,
        },
        (None, Origin::Remote(_) | Origin::Component(_) | Origin::Server) => return,
    };
    if shared.config.settings.require_e2e && has_clear_body(&el) {
        // Refused before anything is stored or forwarded.
        if !is_reply(&el) {
            origin.reply(
                shared,
                error_reply(
                    &el,
                    "policy-violation",
                    Some("this server requires end-to-end encryption (require_e2e): clear-text bodies are refused"),
                ),
            );
        }
        return;
    }
    if !is_local(shared, &to) {
        to_remote(shared, origin, el, &to.domain);
        return;
    }
    if to.local.is_none() {
        // Messages to the server itself: nothing here consumes them.
        return;
    }
    let bare = to.bare();
    let kind = el.attr("type").unwrap_or("normal").to_owned();
    // A full JID with a connected resource gets it directly.
    if let Some(res) = &to.resource {
        if let Some(s) = shared.router.session(&bare, &format!("{bare}/{res}")) {
            s.send_xml(el.to_xml(NS_CLIENT));
            return;
        }
    }
    if !account_exists(shared, &bare).await {
        if kind != "error" {
            origin.reply(shared, error_reply(&el, "service-unavailable", None));
        }
        return;
    }
    match kind.as_str() {
        "normal" | "chat" => {}
        "groupchat" => {
            origin.reply(shared, error_reply(&el, "service-unavailable", None));
            return;
        }
        _ => {
            // headline and error to an unknown resource: dropped (RFC 6121 §8.5.2.1.1).
            if to.resource.is_none() {
                deliver_available(shared, &bare, &el);
            }
            return;
        }
    }
    if !deliver_available(shared, &bare, &el) {
        store_offline(shared, origin, &bare, el).await;
    }
}

/// A chat or normal message whose body holds anything but one XML
/// Encryption `EncryptedData` (whitespace aside).
fn has_clear_body(el: &Element) -> bool {
    if !matches!(el.attr("type").unwrap_or("normal"), "chat" | "normal") {
        return false;
    }
    let Some(body) = el.child(NS_CLIENT, "body") else { return false };
    let encrypted = body.children().count() == 1
        && body.children().all(|c| c.is(snow_crypto::e2e::NS_XENC, "EncryptedData"))
        && body.text().trim().is_empty();
    !encrypted
}

/// Delivers to every available resource with non-negative priority;
/// false if there is none.
fn deliver_available(shared: &Shared, bare: &str, el: &Element) -> bool {
    let xml = el.to_xml(NS_CLIENT);
    let mut delivered = false;
    for s in shared.router.sessions(bare) {
        if s.is_available() && s.priority() >= 0 {
            delivered |= s.send_xml(xml.clone());
        }
    }
    delivered
}

/// XEP-0160: committed to the database before anything else happens.
async fn store_offline(shared: &Arc<Shared>, origin: &Origin<'_>, owner: &str, mut el: Element) {
    let now = time::OffsetDateTime::now_utc();
    let stamp =
        now.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    el.push_child(
        Element::new(NS_DELAY, "delay").with_attr("from", shared.config.domain.to_string()).with_attr("stamp", stamp),
    );
    let xml = el.to_xml(NS_CLIENT);
    let owner_s = owner.to_owned();
    match shared.db(move |db| db.store_offline(&owner_s, &xml, now.unix_timestamp())).await {
        Ok(Some(_)) => tracing::debug!(to = owner, "stored offline"),
        Ok(None) => {
            origin.reply(shared, error_reply(&el, "resource-constraint", Some("the recipient's offline store is full")))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store offline message");
            origin.reply(shared, error_reply(&el, "internal-server-error", None));
        }
    }
}

async fn presence(shared: &Arc<Shared>, me: &Arc<SessionHandle>, el: Element, to: Option<Addr>) {
    let kind = el.attr("type").unwrap_or("available").to_owned();
    match (to, kind.as_str()) {
        (None, "available") => {
            let priority = el
                .child(NS_CLIENT, "priority")
                .and_then(|p| p.text().trim().parse::<i32>().ok())
                .unwrap_or(0)
                .clamp(-128, 127);
            let initial = !me.is_available();
            me.set_available(true, priority);
            me.set_last_presence(Some(el.to_xml(NS_CLIENT)));
            broadcast(shared, me, &el).await;
            if initial {
                probe_contacts(shared, me).await;
                deliver_offline(shared, me).await;
            }
        }
        (None, "unavailable") => {
            me.set_available(false, 0);
            me.set_last_presence(None);
            broadcast(shared, me, &el).await;
        }
        (Some(to), "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
            subscription(shared, me, el, to, &kind).await;
        }
        (Some(to), "available" | "unavailable") if !is_local(shared, &to) => {
            to_remote(shared, &Origin::Local(me), el, &to.domain.clone())
        }
        // Directed presence.
        (Some(to), "available" | "unavailable") if is_local(shared, &to) && to.local.is_some() => {
            let bare = to.bare();
            for s in shared.router.sessions(&bare) {
                if to.resource.as_deref().is_none_or(|r| s.full == format!("{bare}/{r}")) {
                    s.send_xml(el.to_xml(NS_CLIENT));
                }
            }
        }
        // probe and error from clients, or malformed types: ignored.
        _ => {}
    }
}

/// Sends `el` (from `me`) to the user's other resources and to contacts
/// subscribed to the user's presence (subscription from/both).
async fn broadcast(shared: &Arc<Shared>, me: &Arc<SessionHandle>, el: &Element) {
    for s in shared.router.sessions(&me.bare) {
        if !Arc::ptr_eq(&s, me) && s.is_available() {
            let mut copy = el.clone();
            copy.set_attr("to", s.full.clone());
            s.send_xml(copy.to_xml(NS_CLIENT));
        }
    }
    for item in roster_of(shared, &me.bare).await {
        if matches!(item.subscription.as_str(), "from" | "both") {
            for s in shared.router.sessions(&item.contact) {
                if s.is_available() {
                    let mut copy = el.clone();
                    copy.set_attr("to", s.full.clone());
                    s.send_xml(copy.to_xml(NS_CLIENT));
                }
            }
        }
    }
}

/// On initial presence: the current presence of every contact the user is
/// subscribed to (answering the probes RFC 6121 §4.2.2 has the server send).
async fn probe_contacts(shared: &Arc<Shared>, me: &Arc<SessionHandle>) {
    for item in roster_of(shared, &me.bare).await {
        if matches!(item.subscription.as_str(), "to" | "both") {
            for s in shared.router.sessions(&item.contact) {
                if let Some(p) = s.last_presence() {
                    me.send_xml(p.replacen("<presence", &format!("<presence to='{}'", escape_attr(&me.full)), 1));
                }
            }
        }
    }
}

fn escape_attr(s: &str) -> String {
    let mut out = String::new();
    snow_xml::escape::push_escaped(&mut out, s);
    out
}

/// Hands stored messages to a session that just became available, oldest
/// first; each row is deleted by the writer once written to the socket.
async fn deliver_offline(shared: &Arc<Shared>, me: &Arc<SessionHandle>) {
    let owner = me.bare.clone();
    let msgs = match shared.db(move |db| db.offline_for(&owner)).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot read offline messages");
            return;
        }
    };
    for (id, xml) in msgs {
        if !me.send(Outbound::Xml { xml, offline_id: Some(id) }) {
            break;
        }
    }
}

/// Called when a session ends: others see it go unavailable.
pub(crate) async fn went_offline(shared: &Arc<Shared>, me: &Arc<SessionHandle>) {
    if me.is_available() {
        me.set_available(false, 0);
        let el =
            Element::new(NS_CLIENT, "presence").with_attr("type", "unavailable").with_attr("from", me.full.clone());
        broadcast(shared, me, &el).await;
    }
}

async fn roster_of(shared: &Arc<Shared>, bare: &str) -> Vec<RosterItem> {
    let b = bare.to_owned();
    shared.db(move |db| db.roster(&b)).await.unwrap_or_default()
}

fn item_element(item: &RosterItem) -> Element {
    let mut e = Element::new(NS_ROSTER, "item")
        .with_attr("jid", item.contact.clone())
        .with_attr("subscription", item.subscription.clone());
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

/// Roster push (RFC 6121 §2.1.6) to every interested resource of `owner`.
fn push_roster(shared: &Shared, owner: &str, item: &RosterItem, removed: bool) {
    let mut it = item_element(item);
    if removed {
        it.set_attr("subscription", "remove");
    }
    for s in shared.router.sessions(owner) {
        if s.interested.load(std::sync::atomic::Ordering::Acquire) {
            let id = snow_crypto::one_time_password::random_hex(6).unwrap_or_default();
            let push = Element::new(NS_CLIENT, "iq")
                .with_attr("type", "set")
                .with_attr("id", format!("push-{id}"))
                .with_attr("to", s.full.clone())
                .with_child(Element::new(NS_ROSTER, "query").with_child(it.clone()));
            s.send_xml(push.to_xml(NS_CLIENT));
        }
    }
}

/// The subscription state machine of RFC 6121 §3 for local contacts.
async fn subscription(shared: &Arc<Shared>, me: &Arc<SessionHandle>, mut el: Element, to: Addr, kind: &str) {
    if !is_local(shared, &to) {
        // Subscriptions across sites: passed on; roster state for remote
        // contacts is not kept yet.
        let mut el = el;
        el.set_attr("from", me.bare.clone());
        crate::s2s::send(shared, &to.domain.clone(), el);
        return;
    }
    if to.local.is_none() {
        return;
    }
    let user = me.bare.clone();
    let contact = to.bare();
    if contact == user || !account_exists(shared, &contact).await {
        return;
    }
    // Subscription stanzas carry bare JIDs (RFC 6121 §3.1.2).
    el.set_attr("from", user.clone());
    el.set_attr("to", contact.clone());
    let kind_s = kind.to_owned();
    let (u, c) = (user.clone(), contact.clone());
    let changed = shared
        .db(move |db| {
            let blank = |who: &str| RosterItem {
                contact: who.to_owned(),
                name: None,
                subscription: "none".into(),
                ask: false,
                groups: Vec::new(),
            };
            let mut mine = db.roster_item(&u, &c)?.unwrap_or_else(|| blank(&c));
            let mut theirs = db.roster_item(&c, &u)?;
            let sub = |s: &str, add: &str| -> String {
                match (s, add) {
                    ("none", "to") | ("to", "to") => "to",
                    ("from", "to") | ("both", "to") => "both",
                    ("none", "from") | ("from", "from") => "from",
                    ("to", "from") | ("both", "from") => "both",
                    (other, _) => other,
                }
                .into()
            };
            let drop_sub = |s: &str, gone: &str| -> String {
                match (s, gone) {
                    ("both", "to") => "from",
                    ("to", "to") => "none",
                    ("both", "from") => "to",
                    ("from", "from") => "none",
                    (other, _) => other,
                }
                .into()
            };
            match kind_s.as_str() {
                "subscribe" => mine.ask = true,
                "subscribed" => {
                    mine.subscription = sub(&mine.subscription, "from");
                    if let Some(t) = theirs.as_mut() {
                        t.subscription = sub(&t.subscription, "to");
                        t.ask = false;
                    }
                }
                "unsubscribe" => {
                    mine.subscription = drop_sub(&mine.subscription, "to");
                    mine.ask = false;
                    if let Some(t) = theirs.as_mut() {
                        t.subscription = drop_sub(&t.subscription, "from");
                    }
                }
                _ => {
                    mine.subscription = drop_sub(&mine.subscription, "from");
                    if let Some(t) = theirs.as_mut() {
                        t.subscription = drop_sub(&t.subscription, "to");
                        t.ask = false;
                    }
                }
            }
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
    push_roster(shared, &user, &mine, false);
    if let Some(t) = &theirs {
        push_roster(shared, &contact, t, false);
    }
    // Deliver to the contact, or keep it for them (requests must not be lost).
    let delivered = {
        let xml = el.to_xml(NS_CLIENT);
        let mut any = false;
        for s in shared.router.sessions(&contact) {
            if s.is_available() {
                any |= s.send_xml(xml.clone());
            }
        }
        any
    };
    if !delivered && kind == "subscribe" {
        store_offline(shared, &Origin::Local(me), &contact, el).await;
    }
    if kind == "subscribed" {
        // The contact now sees the user's presence.
        for s in shared.router.sessions(&user) {
            if let Some(p) = s.last_presence() {
                for c in shared.router.sessions(&contact) {
                    c.send_xml(p.replacen("<presence", &format!("<presence to='{}'", escape_attr(&c.full)), 1));
                }
            }
        }
    }
}

async fn iq(shared: &Arc<Shared>, origin: &Origin<'_>, el: Element, to: Option<Addr>) {
    let kind = el.attr("type").unwrap_or("");
    if !matches!(kind, "get" | "set" | "result" | "error") {
        origin.reply(shared, error_reply(&el, "bad-request", Some("an iq needs type get, set, result or error")));
        return;
    }
    let me = match origin {
        Origin::Local(me) => Some(*me),
        Origin::Remote(_) | Origin::Component(_) | Origin::Server => None,
    };
    let own_bare = me.map(|m| m.bare.as_str());
    let for_server = match &to {
        None => true,
        Some(a) => {
            is_local(shared, a) && (a.local.is_none() || (Some(a.bare().as_str()) == own_bare && a.resource.is_none()))
        }
    };
    if for_server {
        if is_reply(&el) {
            return;
        }
        let own_account = me.is_some() && to.as_ref().is_none_or(|a| a.local.is_some());
        // The key directory answers this site's users and components (an
        // agent looks up the GP it answers), not other servers.
        let directory = me.is_some() || matches!(origin, Origin::Component(_));
        origin.reply(shared, server_iq(shared, me, &el, own_account, directory).await);
        return;
    }
    let Some(to) = to else { return };
    if !is_local(shared, &to) {
        to_remote(shared, origin, el, &to.domain);
        return;
    }
    let bare = to.bare();
    if let Some(res) = &to.resource {
        if let Some(s) = shared.router.session(&bare, &format!("{bare}/{res}")) {
            s.send_xml(el.to_xml(NS_CLIENT));
            return;
        }
    }
    if !is_reply(&el) {
        // To another account's bare JID, or an absent resource: the server
        // answers for it (RFC 6121 §8.5.2.1.1, §8.5.3.2.1).
        origin.reply(shared, error_reply(&el, "service-unavailable", None));
    }
}

/// IQs the server answers itself.
async fn server_iq(
    shared: &Arc<Shared>,
    me: Option<&Arc<SessionHandle>>,
    el: &Element,
    own_account: bool,
    directory: bool,
) -> Element {
    let kind = el.attr("type").unwrap_or("");
    let payload = el.children().next();
    let (ns, name) = payload.map(|p| (p.ns(), p.name())).unwrap_or(("", ""));
    match (kind, ns, name) {
        ("get", NS_PING, "ping") => iq_result(el, None),
        ("set", NS_SESSION, "session") => iq_result(el, None),
        ("get", NS_VERSION, "query") => iq_result(
            el,
            Some(
                Element::new(NS_VERSION, "query")
                    .with_child(Element::new(NS_VERSION, "name").with_text("Snow"))
                    .with_child(Element::new(NS_VERSION, "version").with_text(env!("CARGO_PKG_VERSION"))),
            ),
        ),
        ("get", NS_DISCO_INFO, "query") if payload.is_some_and(|p| p.attr("node").is_none()) => {
            let mut q = Element::new(NS_DISCO_INFO, "query");
            if own_account {
                q.push_child(
                    Element::new(NS_DISCO_INFO, "identity")
                        .with_attr("category", "account")
                        .with_attr("type", "registered"),
                );
            } else {
                q.push_child(
                    Element::new(NS_DISCO_INFO, "identity")
                        .with_attr("category", "server")
                        .with_attr("type", "im")
                        .with_attr("name", "Snow"),
                );
                for f in FEATURES {
                    q.push_child(Element::new(NS_DISCO_INFO, "feature").with_attr("var", *f));
                }
            }
            iq_result(el, Some(q))
        }
        ("get", NS_DISCO_ITEMS, "query") => iq_result(el, Some(Element::new(NS_DISCO_ITEMS, "query"))),
        (_, snow_xml::NS_PUBSUB | snow_xml::NS_PUBSUB_OWNER, "pubsub") => match payload {
            Some(p) => crate::pubsub::handle(shared, el, p, el.attr("from").unwrap_or_default()).await,
            None => error_reply(el, "bad-request", None),
        },
        ("get", crate::directory::NS_KEYS, "query") if directory => match payload {
            Some(q) => crate::directory::lookup(shared, el, q).await,
            None => error_reply(el, "bad-request", None),
        },
        ("get", NS_ROSTER, "query") if own_account && me.is_some() => {
            let Some(me) = me else { return error_reply(el, "service-unavailable", None) };
            me.interested.store(true, std::sync::atomic::Ordering::Release);
            let mut q = Element::new(NS_ROSTER, "query");
            for item in roster_of(shared, &me.bare).await {
                q.push_child(item_element(&item));
            }
            iq_result(el, Some(q))
        }
        ("set", NS_ROSTER, "query") if own_account => match me {
            Some(me) => roster_set(shared, me, el).await,
            None => error_reply(el, "service-unavailable", None),
        },
        _ => error_reply(el, "service-unavailable", None),
    }
}

async fn roster_set(shared: &Arc<Shared>, me: &Arc<SessionHandle>, el: &Element) -> Element {
    let items: Vec<&Element> =
        el.children().next().map(|q| q.children().filter(|c| c.is(NS_ROSTER, "item")).collect()).unwrap_or_default();
    let [item] = items.as_slice() else {
        return error_reply(el, "bad-request", Some("a roster set carries exactly one item"));
    };
    let Some(contact) = item.attr("jid").and_then(Addr::parse).map(|a| a.bare()) else {
        return error_reply(el, "bad-request", Some("the item needs a valid jid"));
    };
    let owner = me.bare.clone();
    if item.attr("subscription") == Some("remove") {
        let (o, c) = (owner.clone(), contact.clone());
        return match shared.db(move |db| db.remove_roster_item(&o, &c)).await {
            Ok(true) => {
                let gone = RosterItem { contact, name: None, subscription: "none".into(), ask: false, groups: vec![] };
                push_roster(shared, &owner, &gone, true);
                iq_result(el, None)
            }
            Ok(false) => error_reply(el, "item-not-found", None),
            Err(_) => error_reply(el, "internal-server-error", None),
        };
    }
    let groups: Vec<String> = item.children().filter(|g| g.is(NS_ROSTER, "group")).map(|g| g.text()).take(32).collect();
    let name = item.attr("name").map(|n| n.chars().take(256).collect::<String>());
    let (o, c) = (owner.clone(), contact.clone());
    let stored = shared
        .db(move |db| {
            // Name and groups are the client's; subscription state is the server's.
            let mut it = db.roster_item(&o, &c)?.unwrap_or(RosterItem {
                contact: c.clone(),
                name: None,
                subscription: "none".into(),
                ask: false,
                groups: vec![],
            });
            it.name = name;
            it.groups = groups;
            db.put_roster_item(&o, &it)?;
            Ok(it)
        })
        .await;
    match stored {
        Ok(it) => {
            push_roster(shared, &owner, &it, false);
            iq_result(el, None)
        }
        Err(_) => error_reply(el, "internal-server-error", None),
    }
}
