//! Where a stanza goes: the one routing decision of the server
//! (RFC 6120 §10, RFC 6121 §8), and delivery there. Every transport hands
//! its stanzas to [`Router::submit`]; services send through
//! [`Router::route`]. No other module decides where a stanza goes.
//!
//! [`Router::resolve`] maps an address to a [`Destination`]; the rules
//! that depend on the stanza (message types, IQs for the server, presence
//! the server processes first, the no-relay rule for other servers'
//! stanzas, the clear-text policy in `e2e_policy`, the federation
//! allow-list in `federation`) are applied in `route`; the client check
//! (`client_check`) applies to a session's stanzas in `submit`, before
//! anything else sees them. What the server itself answers is behind
//! [`ServerSide`] (the service registry), and outgoing server-to-server
//! links behind [`RemoteLinks`], so this module imports neither services
//! nor transports.

mod client_check;
mod components;
pub(crate) mod e2e_policy;
mod federation;
mod sessions;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use components::ComponentTable;
pub(crate) use federation::Federation;
pub(crate) use sessions::{Outbound, SessionHandle, SessionTable};
use snow_xml::stanza::{error_reply, is_reply, Condition};
use snow_xml::{Element, NS_CLIENT, NS_DELAY};

use crate::addr::Addr;
use crate::config::ClientCheck;
use crate::db::Db;

/// A boxed future, for the trait objects at this module's boundary.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a stanza came from, and so where its errors go back to.
#[derive(Clone)]
pub(crate) enum Origin {
    /// A bound client session of this server.
    Session(Arc<SessionHandle>),
    /// Another server, authenticated as this domain over s2s.
    Remote(String),
    /// One of our external components.
    Component(String),
    /// The server itself (its services): errors for it are dropped.
    Server,
}

impl Origin {
    pub fn session(&self) -> Option<&Arc<SessionHandle>> {
        match self {
            Origin::Session(s) => Some(s),
            _ => None,
        }
    }
}

/// What an address names, seen from this server.
pub(crate) enum Destination {
    /// This server (its domain, with or without a resource).
    Server,
    /// A connected resource of a local account.
    Session(Arc<SessionHandle>),
    /// A local account, addressed by bare JID or by a resource that is
    /// not connected.
    Account(Addr),
    /// A local address with no account behind it.
    NoAccount,
    /// One of our external components (connected or not).
    Component(String),
    /// Another domain, reached over s2s.
    Remote(String),
}

/// Outgoing server-to-server links.
pub(crate) trait RemoteLinks: Send + Sync {
    /// Queues `el` for `domain`; what cannot be delivered comes back to
    /// its sender as a stanza error, routed like any other stanza.
    fn send(&self, router: &Arc<Router>, domain: &str, el: Element);
}

/// Why the server did not keep a stanza it had to keep (sent back to the
/// sender as a stanza error).
pub(crate) type Refusal = (Condition, &'static str);

/// What the server itself does with the stanzas it processes: the
/// service registry.
pub(crate) trait ServerSide: Send + Sync {
    /// Presence a local session addresses to its own server (initial and
    /// unavailable presence, RFC 6121 §4.2, §4.5) or that the server
    /// processes before routing (subscription requests, §3).
    fn presence<'a>(
        &'a self,
        router: &'a Arc<Router>,
        session: &'a Arc<SessionHandle>,
        el: Element,
        to: Option<Addr>,
    ) -> BoxFuture<'a, ()>;

    /// An IQ for the server, or for the sender's own account when
    /// `own_account`; the answer, or `None` for results and errors.
    fn iq<'a>(
        &'a self,
        router: &'a Arc<Router>,
        origin: &'a Origin,
        el: Element,
        own_account: bool,
    ) -> BoxFuture<'a, Option<Element>>;

    /// A message (or subscription request) for an account with no
    /// available resource: kept for later (XEP-0160), or refused.
    fn undeliverable<'a>(
        &'a self,
        router: &'a Arc<Router>,
        bare: &'a str,
        el: Element,
    ) -> BoxFuture<'a, Result<(), Refusal>>;

    /// A session has ended (and is no longer in the session table).
    fn session_ended<'a>(&'a self, router: &'a Arc<Router>, session: &'a Arc<SessionHandle>) -> BoxFuture<'a, ()>;
}

/// The policies routing applies (`[server] require_e2e` and
/// `client_check`, the `[s2s]` federation allow-list).
pub(crate) struct Policy {
    /// Only end-to-end encrypted content in messages (`e2e_policy`).
    pub require_e2e: bool,
    /// Whether sessions must announce the Snow client (`client_check`).
    pub client_check: ClientCheck,
    /// The other servers stanzas may go to.
    pub federation: Federation,
}

/// The text of every clear-text refusal.
const E2E_REFUSAL: &str =
    "this server requires end-to-end encryption (require_e2e): a message may carry one XML Encryption \
     EncryptedData and protocol elements, no clear text";

/// The legacy delay stamp (XEP-0091), stripped like XEP-0203's.
const NS_LEGACY_DELAY: &str = "jabber:x:delay";

/// The routing state: who is connected here, and the ways out.
pub(crate) struct Router {
    domain: String,
    require_e2e: bool,
    client_check: ClientCheck,
    federation: Federation,
    pub sessions: SessionTable,
    pub components: ComponentTable,
    remote: Arc<dyn RemoteLinks>,
    server: Arc<dyn ServerSide>,
    db: Db,
}

impl Router {
    pub fn new(
        domain: String,
        policy: Policy,
        components: ComponentTable,
        remote: Arc<dyn RemoteLinks>,
        server: Arc<dyn ServerSide>,
        db: Db,
    ) -> Self {
        let Policy { require_e2e, client_check, federation } = policy;
        Router {
            domain,
            require_e2e,
            client_check,
            federation,
            sessions: SessionTable::default(),
            components,
            remote,
            server,
            db,
        }
    }

    /// Whether `[server] require_e2e` is on (services apply it to what they
    /// store).
    pub fn requires_e2e(&self) -> bool {
        self.require_e2e
    }

    /// Whether stanzas may go to the other server `domain` (the federation
    /// allow-list).
    pub fn federates_with(&self, domain: &str) -> bool {
        self.federation.allows(domain)
    }

    /// A slot for connecting one outgoing s2s link: at most `[s2s]
    /// max_outbound_attempts` attempts run at once; hold it for the
    /// attempt.
    pub async fn connect_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.federation.connect_permit().await
    }

    /// The server's own domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `domain` is served here: ours or one of our components'.
    pub fn serves(&self, domain: &str) -> bool {
        domain == self.domain || self.components.is_component(domain)
    }

    /// What `to` names.
    pub async fn resolve(&self, to: &Addr) -> Destination {
        if to.domain != self.domain {
            if self.components.is_component(&to.domain) {
                return Destination::Component(to.domain.clone());
            }
            return Destination::Remote(to.domain.clone());
        }
        if to.local.is_none() {
            return Destination::Server;
        }
        let bare = to.bare();
        if let Some(res) = &to.resource {
            if let Some(s) = self.sessions.session(&bare, &format!("{bare}/{res}")) {
                return Destination::Session(s);
            }
        }
        if self.account_exists(&bare).await {
            Destination::Account(to.clone())
        } else {
            Destination::NoAccount
        }
    }

    /// A stanza from a transport, its `from` already set or checked by
    /// that transport. Presence the server processes goes to the
    /// services first; everything else is routed.
    pub async fn submit(self: &Arc<Self>, origin: Origin, mut el: Element) {
        if let Origin::Remote(domain) = &origin {
            if !self.federates_with(domain) {
                // A server outside the federation: nothing it sends is
                // taken, and nothing would go back to it.
                tracing::debug!(%domain, "a stanza from a server outside the federation: dropped");
                return;
            }
        }
        let to = match el.attr("to") {
            None => None,
            Some(t) => match Addr::parse(t) {
                Some(a) => Some(a),
                None => {
                    if !is_reply(&el) {
                        let err =
                            error_reply(&el, Condition::JidMalformed, Some("the 'to' address is not a valid JID"));
                        self.reply(&origin, err);
                    }
                    return;
                }
            },
        };
        if let Origin::Session(s) = &origin {
            // Checked once, before the server or anyone else sees it.
            let verdict = client_check::judge(self.client_check, s, &el, to.as_ref(), &self.domain);
            if verdict == client_check::Verdict::Refuse {
                if is_reply(&el) {
                    tracing::debug!(jid = %s.full, "a reply from a session that is not the Snow client: dropped");
                } else {
                    let err = error_reply(&el, Condition::PolicyViolation, Some(client_check::REFUSAL));
                    self.reply(&origin, err);
                }
                return;
            }
            // A client does not say when it sent something: a delay stamp
            // is the server's (offline storage adds the real one).
            if matches!(el.name(), "message" | "presence") {
                el.take_children(|c| c.is(NS_DELAY, "delay") || c.is(NS_LEGACY_DELAY, "x"));
            }
            if el.name() == "presence" && processed_by_server(&el, to.as_ref()) {
                self.server.presence(self, s, el, to).await;
                return;
            }
        }
        self.route_to(origin, el, to).await;
    }

    /// Routes a stanza (a service's, or one a service passes on for a
    /// session) without the server's presence processing.
    pub async fn route(self: &Arc<Self>, origin: Origin, el: Element) {
        match el.attr("to").map(Addr::parse) {
            Some(Some(to)) => self.route_to(origin, el, Some(to)).await,
            None => self.route_to(origin, el, None).await,
            Some(None) => tracing::debug!("a stanza with a malformed 'to' from a service: dropped"),
        }
    }

    async fn route_to(self: &Arc<Self>, origin: Origin, mut el: Element, to: Option<Addr>) {
        if matches!(origin, Origin::Server) {
            // An error the server generated (a stanza it could not send on
            // over s2s): the condition and a fixed text, never the reason.
            federation::sanitise_error(&mut el);
        }
        let kind = el.name().to_owned();
        let kind = kind.as_str();
        if kind == "iq" && !matches!(el.attr("type"), Some("get" | "set" | "result" | "error")) {
            let err = error_reply(&el, Condition::BadRequest, Some("an iq needs type get, set, result or error"));
            self.reply(&origin, err);
            return;
        }
        let to = match (to, &origin) {
            (Some(to), _) => to,
            // No 'to': the sender's own account (RFC 6120 §10.3).
            (None, Origin::Session(s)) if kind != "presence" => match Addr::parse(&s.bare) {
                Some(a) => a,
                None => return,
            },
            (None, Origin::Session(_)) => return,
            (None, _) => {
                if !is_reply(&el) {
                    self.reply(&origin, error_reply(&el, Condition::JidMalformed, Some("the stanza needs a 'to'")));
                }
                return;
            }
        };
        if kind == "message" && self.require_e2e {
            let server_error = matches!(origin, Origin::Server) && el.attr("type") == Some("error");
            if !server_error {
                // Refused before anything is stored or forwarded.
                e2e_policy::strip_error_detail(&mut el);
                if let Err(why) = e2e_policy::check(&el) {
                    if matches!(origin, Origin::Server) {
                        tracing::warn!(%why, to = el.attr("to").unwrap_or_default(), "a message of this server's own refused by require_e2e");
                    } else {
                        tracing::debug!(%why, from = el.attr("from").unwrap_or_default(), "clear text refused");
                    }
                    if !is_reply(&el) {
                        self.reply(&origin, error_reply(&el, Condition::PolicyViolation, Some(E2E_REFUSAL)));
                    }
                    return;
                }
            }
        }
        if matches!(origin, Origin::Remote(_)) && !self.serves(&to.domain) {
            if !is_reply(&el) {
                self.reply(&origin, error_reply(&el, Condition::ItemNotFound, Some("this server does not relay")));
            }
            return;
        }
        match (kind, self.resolve(&to).await) {
            (_, Destination::Component(domain)) => {
                if let Err(el) = self.components.try_send(&domain, el) {
                    if !is_reply(&el) {
                        let text = Some("the component is not connected");
                        self.reply(&origin, error_reply(&el, Condition::ServiceUnavailable, text));
                    }
                }
            }
            (_, Destination::Remote(domain)) => {
                if self.federates_with(&domain) {
                    self.remote.send(self, &domain, el);
                } else if !is_reply(&el) {
                    // Not on the allow-list: no link is opened.
                    tracing::debug!(%domain, "a stanza for a domain outside the federation refused");
                    let err = error_reply(&el, Condition::RemoteServerNotFound, Some(federation::NOT_FEDERATED));
                    self.reply(&origin, err);
                }
            }
            ("iq", Destination::Server) => self.server_iq(origin, el, false).await,
            ("iq", Destination::Account(a))
                if a.resource.is_none() && origin.session().is_some_and(|s| s.bare == a.bare()) =>
            {
                self.server_iq(origin, el, true).await
            }
            // Messages and presence to the server: nothing here consumes them.
            (_, Destination::Server) => {}
            (_, Destination::Session(s)) => {
                s.send_xml(el.to_xml(NS_CLIENT));
            }
            ("message", Destination::Account(a)) => self.message_to_account(&origin, &a, el).await,
            ("presence", Destination::Account(a)) => {
                if a.resource.is_some() {
                    // To a resource that is not connected: nobody to tell.
                    return;
                }
                let bare = a.bare();
                let delivered = self.to_available(&bare, &el, i32::MIN);
                // A local user's subscription request must not be lost
                // (RFC 6121 §3.1.3); other servers' and components'
                // presence is delivered to who is online only.
                let local = matches!(origin, Origin::Session(_));
                if !delivered && local && el.attr("type") == Some("subscribe") {
                    if let Err(refusal) = self.server.undeliverable(self, &bare, el.clone()).await {
                        self.refuse_undeliverable(&origin, &el, refusal);
                    }
                }
            }
            // A headline for no account (or a revoked one) is dropped, as
            // one for an account with nobody online is (RFC 6121 §8.5.1,
            // §8.5.2.2.1): the answer does not say which.
            ("message", Destination::NoAccount) if el.attr("type") == Some("headline") => {}
            // To another account's bare JID, an absent resource or no
            // account: the server answers (RFC 6121 §8.5.1, §8.5.2.1,
            // §8.5.3.2.1), the same error whether the account exists or not.
            ("message" | "iq", Destination::Account(_) | Destination::NoAccount) if !is_reply(&el) => {
                self.reply(&origin, error_reply(&el, Condition::ServiceUnavailable, None));
            }
            _ => {}
        }
    }

    async fn server_iq(self: &Arc<Self>, origin: Origin, el: Element, own_account: bool) {
        if let Some(answer) = self.server.iq(self, &origin, el, own_account).await {
            self.reply(&origin, answer);
        }
    }

    /// RFC 6121 §8.5.2.1 for a local account's bare JID (or a resource
    /// not connected).
    async fn message_to_account(self: &Arc<Self>, origin: &Origin, to: &Addr, el: Element) {
        let bare = to.bare();
        match el.attr("type").unwrap_or("normal") {
            "normal" | "chat" => {
                if !self.to_available(&bare, &el, 0) {
                    if let Err(refusal) = self.server.undeliverable(self, &bare, el.clone()).await {
                        self.refuse_undeliverable(origin, &el, refusal);
                    }
                }
            }
            "groupchat" => self.reply(origin, error_reply(&el, Condition::ServiceUnavailable, None)),
            // headline (and error) to an absent resource: dropped.
            _ => {
                if to.resource.is_none() {
                    self.to_available(&bare, &el, 0);
                }
            }
        }
    }

    /// A stanza for an account that could be neither delivered nor kept.
    /// Over a quota (`resource-constraint`: the recipient's or the
    /// sender's offline quota, the disk watermark) the sender is told so in
    /// words, so it can wait and try again; that says no more than the
    /// stored messages before it did (an account that does not exist gets
    /// an error at once). Anything else (the account's certificate revoked,
    /// a database error) gets `service-unavailable` without text, the
    /// answer for an account that does not exist, so the refusal says
    /// nothing about the account (RFC 6121 §8.5.1, §8.5.2.2.1). The reason
    /// is logged.
    fn refuse_undeliverable(self: &Arc<Self>, origin: &Origin, el: &Element, (condition, why): Refusal) {
        tracing::debug!(%condition, why, to = el.attr("to").unwrap_or_default(), "not delivered, not kept");
        if !is_reply(el) {
            let err = match condition {
                Condition::ResourceConstraint => error_reply(el, condition, Some(why)),
                _ => error_reply(el, Condition::ServiceUnavailable, None),
            };
            self.reply(origin, err);
        }
    }

    /// Sends to every available resource of `bare` with at least
    /// `min_priority`; false if there was none.
    fn to_available(&self, bare: &str, el: &Element, min_priority: i32) -> bool {
        let xml = el.to_xml(NS_CLIENT);
        let mut delivered = false;
        for s in self.sessions.sessions(bare) {
            if s.is_available() && s.priority() >= min_priority {
                delivered |= s.send_xml(xml.clone());
            }
        }
        delivered
    }

    /// Sends `el` back to where a stanza came from.
    pub fn reply(self: &Arc<Self>, origin: &Origin, el: Element) {
        match origin {
            Origin::Session(s) => {
                s.send_xml(el.to_xml(NS_CLIENT));
            }
            // Only to a server of the federation: a peer outside it that
            // reached us gets no link back.
            Origin::Remote(domain) if self.federates_with(domain) => self.remote.send(self, domain, el),
            Origin::Remote(domain) => tracing::debug!(%domain, "a reply for a server outside the federation: dropped"),
            Origin::Component(domain) => {
                let _ = self.components.try_send(domain, el);
            }
            Origin::Server => tracing::debug!("an error for a server-sent stanza: dropped"),
        }
    }

    /// A session has ended: it leaves the table, then the services learn
    /// of it (others see it go unavailable).
    pub async fn session_ended(self: &Arc<Self>, session: &Arc<SessionHandle>) {
        self.sessions.unregister(session);
        self.server.session_ended(self, session).await;
    }

    /// An account exists once it has logged in here, or when the PO's key
    /// directory lists a valid certificate for it (a lab's users before
    /// their first login); one whose certificate the directory lists as
    /// revoked does not (nothing is delivered to it or kept for it). A
    /// connected session stands until revocation ends it.
    async fn account_exists(&self, bare: &str) -> bool {
        if !self.sessions.sessions(bare).is_empty() {
            return true;
        }
        let b = bare.to_owned();
        self.db
            .call(move |db| match db.directory_entry(&b)? {
                Some(e) => Ok(e.status.is_valid()),
                None => db.account_exists(&b),
            })
            .await
            .unwrap_or(false)
    }
}

/// Presence its own server processes for a session (RFC 6121 §3, §4.2).
fn processed_by_server(el: &Element, to: Option<&Addr>) -> bool {
    let kind = el.attr("type").unwrap_or("available");
    match to {
        None => matches!(kind, "available" | "unavailable"),
        Some(_) => matches!(kind, "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed"),
    }
}
