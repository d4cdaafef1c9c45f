//! The concurrent IQ client: many requests in flight on one connection,
//! each answered by the reply with its id, from the entity it was sent to.
//!
//! A [`Session`] runs a connection (a logged-in [`Client`], or an agent's
//! component link) with a reader and a writer task: replies go to their
//! requests, every other stanza to [`Session::next_stanza`]. Its
//! [`IqClient`] is a cheap cloneable handle for any task: [`IqClient::send`]
//! queues a stanza, [`IqClient::request`] sends an IQ and awaits the
//! answer. A program that reads the connection itself feeds replies to an
//! `IqClient` with [`IqClient::dispatch_reply`].
//!
//! Replies are checked as RFC 6120 §8.1.2.1 allows them: a reply must
//! come from the JID the request went to (or, for a request without `to`,
//! from our own server on behalf of our account: no `from`, our bare or
//! full JID, or our domain). Otherwise anyone who guessed or saw an id
//! could answer someone else's request, a key lookup say, with their own
//! certificate. Ids are random, and at most [`MAX_PENDING`] requests wait
//! at once, so a stuck peer cannot make the table grow without end.
//!
//! [`Client`]: crate::Client

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snow_crypto::Identity;
use snow_xml::{Element, FramedError, NS_CLIENT, NS_SM};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::stream_management::Shared;
use crate::{
    checked_certificate, key_entries, key_lookup, roster_contacts, roster_get, roster_set, stats, subscription,
    ClientError, ConnectOptions, Contact, KeyEntry, Login,
};

/// Most requests waiting for answers on one connection.
pub const MAX_PENDING: usize = 1024;
/// Stanzas queued for sending; more wait ([`IqClient::send`]) or are
/// refused ([`IqClient::try_send`]).
const OUTBOUND: usize = 256;
/// Stanzas received and not yet taken by [`Session::next_stanza`]; more
/// are dropped (logged), so a session whose owner only makes requests
/// cannot stall on messages nobody reads.
const INBOUND: usize = 256;
/// How long the reader waits on a quiet connection before it just waits
/// again (the owner decides about keepalives).
const READ_IDLE: Duration = Duration::from_secs(3600);

/// Who we are on the connection: how requests are addressed and whose
/// answers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A logged-in client with its full JID: its server stamps `from`, and
    /// a request without `to` is for its own account.
    Client { jid: String },
    /// An external component (XEP-0114) at `domain`: it names itself as
    /// the sender and addresses its server's services (`server`, the
    /// server's domain) explicitly.
    Component { domain: String, server: String },
}

impl Origin {
    /// The address requests come from.
    pub fn jid(&self) -> &str {
        match self {
            Origin::Client { jid } => jid,
            Origin::Component { domain, .. } => domain,
        }
    }

    /// Stamps a request: a component's `from`, and `to` its server when
    /// the request names nobody.
    fn stamp(&self, iq: &mut Element) {
        if let Origin::Component { domain, server } = self {
            iq.set_attr("from", domain.clone());
            if iq.attr("to").is_none() {
                iq.set_attr("to", server.clone());
            }
        }
    }
}

/// Whose reply a request accepts (RFC 6120 §8.1.2.1).
#[derive(Debug, Clone)]
pub(crate) enum Expected {
    /// The entity the request was addressed to.
    Jid(String),
    /// Our server, on behalf of our account: no `from`, or one of these.
    OwnAccount([String; 3]),
}

impl Expected {
    /// For a request from `origin` addressed to `to`.
    pub(crate) fn reply_to(origin: &Origin, to: Option<&str>) -> Expected {
        match (to, origin) {
            (Some(to), _) => Expected::Jid(to.to_owned()),
            (None, Origin::Client { jid }) => {
                let bare = jid.split('/').next().unwrap_or(jid);
                let domain = bare.rsplit('@').next().unwrap_or(bare);
                Expected::OwnAccount([bare.to_owned(), jid.clone(), domain.to_owned()])
            }
            (None, Origin::Component { server, .. }) => Expected::Jid(server.clone()),
        }
    }

    pub(crate) fn accepts(&self, from: Option<&str>) -> bool {
        match (self, from) {
            (Expected::Jid(want), Some(from)) => same_jid(want, from),
            (Expected::Jid(_), None) => false,
            (Expected::OwnAccount(_), None) => true,
            (Expected::OwnAccount(ours), Some(from)) => ours.iter().any(|j| same_jid(j, from)),
        }
    }

    fn who(&self) -> &str {
        match self {
            Expected::Jid(j) => j,
            Expected::OwnAccount(_) => "the server",
        }
    }
}

/// JIDs compared as their parts are: local part and domain without case
/// (Snow's local parts are digits or ASCII names), the resource exactly.
pub(crate) fn same_jid(a: &str, b: &str) -> bool {
    let (a_bare, a_res) = a.split_once('/').map_or((a, None), |(x, r)| (x, Some(r)));
    let (b_bare, b_res) = b.split_once('/').map_or((b, None), |(x, r)| (x, Some(r)));
    a_bare.eq_ignore_ascii_case(b_bare) && a_res == b_res
}

struct Waiter {
    from: Expected,
    tx: oneshot::Sender<Element>,
}

struct Inner {
    out: mpsc::Sender<Element>,
    origin: Origin,
    timeout: Duration,
    pending: Mutex<HashMap<String, Waiter>>,
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends stanzas and makes IQ requests on one connection, from any number
/// of tasks at once. Clones share the connection and the requests.
#[derive(Clone)]
pub struct IqClient {
    inner: Arc<Inner>,
}

/// Takes a request out of the table however its future ends (answered,
/// timed out, or dropped by a `select!`).
struct Forget<'a> {
    inner: &'a Inner,
    id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.inner.pending().remove(&self.id);
    }
}

impl IqClient {
    /// A client whose stanzas go to `out` (the connection's writer);
    /// requests wait `timeout` for their answers.
    pub fn new(out: mpsc::Sender<Element>, origin: Origin, timeout: Duration) -> IqClient {
        IqClient { inner: Arc::new(Inner { out, origin, timeout, pending: Mutex::default() }) }
    }

    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// Our address on the connection (a client's full JID, a component's
    /// domain).
    pub fn jid(&self) -> &str {
        self.inner.origin.jid()
    }

    /// Queues a stanza, waiting while the writer is behind.
    pub async fn send(&self, stanza: Element) -> Result<(), ClientError> {
        self.inner.out.send(stanza).await.map_err(|_| ClientError::Disconnected)
    }

    /// Queues a stanza if there is room now, for code that must not wait
    /// (answering from a synchronous dispatch); a full queue is
    /// [`ClientError::TooManyRequests`], a closed one
    /// [`ClientError::Disconnected`].
    pub fn try_send(&self, stanza: Element) -> Result<(), ClientError> {
        self.inner.out.try_send(stanza).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ClientError::TooManyRequests(OUTBOUND),
            mpsc::error::TrySendError::Closed(_) => ClientError::Disconnected,
        })
    }

    /// Sends `iq` (a get or set; its id is replaced by a random one) and
    /// returns the answer: the result, or the error stanza for the caller
    /// to read. A component's request is stamped with its address, and
    /// addressed to its server when it names nobody.
    pub async fn request(&self, mut iq: Element) -> Result<Element, ClientError> {
        iq.set_attr("id", snow_crypto::one_time_password::random_hex(8)?);
        self.request_as_is(iq).await
    }

    /// [`request`](Self::request) for an IQ that carries its id already
    /// (a signed search names it: [`stats::search_request`]); the id must
    /// be unpredictable and not pending.
    pub async fn request_as_is(&self, mut iq: Element) -> Result<Element, ClientError> {
        let id = iq
            .attr("id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("a request without an id".into()))?;
        self.inner.origin.stamp(&mut iq);
        let from = Expected::reply_to(&self.inner.origin, iq.attr("to"));
        let who = from.who().to_owned();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.inner.pending();
            if pending.len() >= MAX_PENDING {
                return Err(ClientError::TooManyRequests(MAX_PENDING));
            }
            if pending.contains_key(&id) {
                return Err(ClientError::Protocol(format!("a request with id {id} is waiting already")));
            }
            pending.insert(id.clone(), Waiter { from, tx });
        }
        let _forget = Forget { inner: &self.inner, id };
        self.send(iq).await?;
        match tokio::time::timeout(self.inner.timeout, rx).await {
            Err(_) => Err(ClientError::NoAnswer { who, after: self.inner.timeout }),
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Gives a received stanza to the request it answers. Returns it if it
    /// answers none: not an IQ result or error, an unknown id, or a reply
    /// from someone else than the request went to (logged: a forgery or a
    /// confused peer; the request keeps waiting for the real answer).
    pub fn dispatch_reply(&self, stanza: Element) -> Option<Element> {
        if !(stanza.is(NS_CLIENT, "iq") && snow_xml::stanza::is_reply(&stanza)) {
            return Some(stanza);
        }
        let Some(id) = stanza.attr("id") else { return Some(stanza) };
        let mut pending = self.inner.pending();
        match pending.get(id) {
            Some(w) if w.from.accepts(stanza.attr("from")) => {
                if let Some(w) = pending.remove(id) {
                    drop(pending);
                    let _ = w.tx.send(stanza);
                }
                None
            }
            Some(w) => {
                tracing::warn!(
                    from = stanza.attr("from").unwrap_or(""),
                    expected = w.from.who(),
                    "an IQ reply from another entity than the one asked was ignored"
                );
                Some(stanza)
            }
            None => Some(stanza),
        }
    }

    /// Ends every waiting request with [`ClientError::Disconnected`], when
    /// the connection is gone and no answer can come.
    pub fn disconnected(&self) {
        self.inner.pending().clear();
    }

    /// The key directory's entries for `jids` (at most 50), from our
    /// server.
    pub async fn lookup_keys(&self, jids: &[&str]) -> Result<Vec<KeyEntry>, ClientError> {
        key_entries(&self.request(key_lookup(jids)).await?)
    }

    /// The certificate of `bare` from our server's key directory, checked
    /// by [`checked_certificate`]: listed as valid, issued by `ca_der`,
    /// within its validity, a user's or an agent's certificate for key
    /// encipherment, naming `bare`, and not revoked in the CA-signed,
    /// current CRL that comes with the answer (no such CRL: refused, status
    /// unknown). Fetched each time, never cached: a revoked certificate is
    /// refused from the next lookup on.
    pub async fn certificate_of(&self, bare: &str, ca_der: &[u8]) -> Result<Vec<u8>, ClientError> {
        checked_certificate(&self.lookup_keys(&[bare]).await?, bare, ca_der)
    }

    /// Announces availability (and so receives messages, stored ones
    /// first), with the Snow client's caps (XEP-0115, [`caps`](crate::caps)).
    pub async fn send_presence(&self) -> Result<(), ClientError> {
        self.send(crate::caps::presence()).await
    }

    /// Sends a chat message signed by us, then end-to-end encrypted for
    /// the recipient and for ourselves (so our own history stays
    /// readable): the signature binds the text to us, the recipient and
    /// ourselves, the time and a nonce ([`signed`](crate::signed), issue
    /// 20), so the receiver can tell a forgery or a replay. A revoked or
    /// unknown recipient certificate is refused.
    pub async fn send_encrypted_chat(
        &self,
        to: &str,
        text: &str,
        identity: &Identity,
        ca_der: &[u8],
    ) -> Result<(), ClientError> {
        let bare = to.split('/').next().unwrap_or(to);
        let cert = self.certificate_of(bare, ca_der).await?;
        let own = self.jid().split('/').next().unwrap_or_default().to_owned();
        let signed = crate::signed::sign(
            crate::signed::Kind::Chat,
            vec![snow_xml::Node::Text(text.to_owned())],
            &[bare, &own],
            None,
            identity,
            crate::unix_now(),
        )?;
        let mut body = Element::new(NS_CLIENT, "body").with_child(signed);
        snow_crypto::e2e::encrypt_content(
            &mut body,
            NS_CLIENT,
            &[cert.as_slice(), identity.certificate()],
            snow_crypto::e2e::KeyTransport::default(),
        )?;
        let msg = Element::new(NS_CLIENT, "message").with_attr("to", to).with_attr("type", "chat").with_child(body);
        self.send(msg).await
    }

    /// Your contacts (RFC 6121 roster), with the state of the presence
    /// subscriptions both ways and the requests waiting for an answer.
    pub async fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        roster_contacts(&self.request(roster_get()).await?)
    }

    /// Adds `jid` (a bare JID) to your contacts, or renames it: the roster
    /// item is set (`name`, else the name it had), a request to see their
    /// presence is sent unless you see it already, and their request to
    /// see yours, if they made one, is approved. A JID without a
    /// certificate in the key directory is no Snow user:
    /// [`ClientError::NoKey`] (`unknown`), nothing changed. A server
    /// refusal (a full contact list) is [`ClientError::Refused`].
    pub async fn add_contact(&self, jid: &str, name: Option<&str>) -> Result<ContactAdded, ClientError> {
        let known = self.lookup_keys(&[jid]).await?.iter().any(|e| same_jid(&e.jid, jid) && e.status != "unknown");
        if !known {
            return Err(ClientError::NoKey { jid: jid.to_owned(), status: "unknown".into() });
        }
        let before = self.contacts().await?.into_iter().find(|c| same_jid(&c.jid, jid));
        let name = name.map(str::to_owned).or_else(|| before.as_ref().and_then(|c| c.name.clone()));
        roster_contacts(&self.request(roster_set(jid, name.as_deref(), false)).await?)?;
        let approved = before.as_ref().is_some_and(|c| c.they_asked);
        if approved {
            self.send(subscription(jid, "subscribed")).await?;
        }
        let asked = !before.as_ref().is_some_and(|c| c.you_see_them);
        if asked {
            self.send(subscription(jid, "subscribe")).await?;
        }
        // The server takes a session's stanzas in order: this answer comes
        // after the requests above took effect.
        let contact = self
            .contacts()
            .await?
            .into_iter()
            .find(|c| same_jid(&c.jid, jid))
            .ok_or_else(|| ClientError::Protocol(format!("{jid} is not in the roster after adding it")))?;
        // An item that only held their request was no contact of yours.
        let was_contact = before
            .is_some_and(|c| c.you_see_them || c.they_see_you || c.you_asked || c.name.is_some() || !c.they_asked);
        Ok(ContactAdded { contact, approved, asked, was_contact })
    }

    /// Removes `jid` from your contacts; the server cancels the presence
    /// subscriptions both ways (RFC 6121 §2.5.2). Returns whether it was a
    /// contact.
    pub async fn remove_contact(&self, jid: &str) -> Result<bool, ClientError> {
        match roster_contacts(&self.request(roster_set(jid, None, true)).await?) {
            Ok(_) => Ok(true),
            Err(ClientError::Refused { condition, .. }) if condition == "item-not-found" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks a lab's search agent (`agent`: its full JID, or a component's
    /// domain) for statistics, end-to-end encrypted both ways (see
    /// [`stats`]). An agent with no certificate in the key directory is
    /// [`ClientError::UnknownLab`]. The answer is the reply with the
    /// request's id *from `agent`* ([`request`](Self::request)): another
    /// entity that learns the id cannot answer in its place.
    pub async fn search(
        &self,
        agent: &str,
        query: &snow_core::stats::StatsQuery,
        identity: &Identity,
        ca_der: &[u8],
    ) -> Result<snow_core::stats::StatsAnswer, ClientError> {
        let bare = agent.split('/').next().unwrap_or(agent);
        let cert = match self.certificate_of(bare, ca_der).await {
            Err(ClientError::NoKey { status, .. }) if status == "unknown" => {
                return Err(ClientError::UnknownLab { lab: lab_of(bare).to_owned(), agent: agent.to_owned() })
            }
            other => other?,
        };
        let (iq, request) = stats::search_request(agent, query, &cert, identity)?;
        let answer = self.request_as_is(iq).await?;
        stats::read_search_answer(agent, &answer, identity, &cert, &request)
    }

    /// Asks a lab's search agent (`agent`: its full JID, or a component's
    /// domain) for its catalogue: the analyses, areas with data, age
    /// groups, sexes, granularities and weeks of data a search may use
    /// (see [`stats`]). In clear text, unlike a search: it holds no
    /// personal data, so no certificate is looked up. The answer is the
    /// reply from `agent`, as for [`search`](Self::search); a malformed
    /// one is [`ClientError::BadAnswer`].
    pub async fn catalogue(&self, agent: &str) -> Result<snow_core::stats::Catalogue, ClientError> {
        let reply = self.request(stats::catalogue_request(agent)).await?;
        stats::read_catalogue(agent, &reply)
    }
}

/// What [`IqClient::add_contact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactAdded {
    /// The contact as your server now keeps it.
    pub contact: Contact,
    /// Their request to see your presence was approved.
    pub approved: bool,
    /// A request to see their presence was sent.
    pub asked: bool,
    /// They were a contact already (the name was set again), not only a
    /// request.
    pub was_contact: bool,
}

/// The lab a search agent serves: the domain of `search@lab.example`, or
/// the parent of a component's domain (`search.lab.example`).
fn lab_of(agent_bare: &str) -> &str {
    match agent_bare.split_once('@') {
        Some((_, domain)) => domain,
        None => match agent_bare.split_once('.') {
            Some((_, parent)) if parent.contains('.') => parent,
            _ => agent_bare,
        },
    }
}

/// The receiving side of a connection a [`Session`] runs on.
pub trait StanzaReader: Send + 'static {
    /// The next stanza within `timeout`; silence is
    /// `ClientError::Framed(FramedError::Timeout(_))`, any other error
    /// ends the session.
    fn next_stanza(&mut self, timeout: Duration) -> impl Future<Output = Result<Element, ClientError>> + Send;
}

/// The sending side of a connection a [`Session`] runs on.
pub trait StanzaWriter: Send + 'static {
    fn send_stanza(&mut self, stanza: &Element) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Ends the stream (`</stream:stream>`).
    fn close(&mut self) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// A connection run by a reader and a writer task, with an [`IqClient`]
/// for requests; stanzas that answer no request wait in
/// [`next_stanza`](Self::next_stanza). Dropping it stops the reader and
/// closes the stream.
///
/// A client session whose server offers XEP-0198 stream management
/// enables it: every stanza sent is kept until the server acknowledges
/// it, and the server keeps every stanza it sent until we do. When the
/// connection breaks ([`next_stanza`](Self::next_stanza) returns the
/// error, after the stanzas that came before it), [`resume`](Self::resume)
/// logs in again and takes up the same session: nothing lost, nothing
/// twice, the same [`IqClient`] (requests waiting for answers keep
/// waiting).
pub struct Session {
    iq: IqClient,
    inbound: mpsc::Receiver<Element>,
    reader: Option<JoinHandle<ClientError>>,
    writer: Option<JoinHandle<()>>,
    close: Option<oneshot::Sender<()>>,
    /// What the writer sends; outlives a connection, so a resumed session
    /// sends what was queued before.
    outbound: Arc<tokio::sync::Mutex<mpsc::Receiver<Element>>>,
    /// Stream management's counters, when enabled.
    sm: Option<Arc<Shared>>,
    timeout: Duration,
}

impl Session {
    /// Starts the tasks on `reader` and `writer`; `timeout` bounds the
    /// wait for each answer.
    pub fn start(reader: impl StanzaReader, writer: impl StanzaWriter, origin: Origin, timeout: Duration) -> Session {
        Self::start_with(reader, writer, origin, timeout, None)
    }

    /// Like [`start`](Self::start), with XEP-0198 stream management: the
    /// writer enables it (with resumption) before anything else.
    pub(crate) fn start_managed(
        reader: impl StanzaReader,
        writer: impl StanzaWriter,
        origin: Origin,
        timeout: Duration,
    ) -> Session {
        Self::start_with(reader, writer, origin, timeout, Some(Arc::default()))
    }

    fn start_with(
        reader: impl StanzaReader,
        writer: impl StanzaWriter,
        origin: Origin,
        timeout: Duration,
        sm: Option<Arc<Shared>>,
    ) -> Session {
        let (out, out_rx) = mpsc::channel(OUTBOUND);
        let (in_tx, inbound) = mpsc::channel(INBOUND);
        let (close, close_rx) = oneshot::channel();
        let iq = IqClient::new(out, origin, timeout);
        let outbound = Arc::new(tokio::sync::Mutex::new(out_rx));
        let first: Vec<Element> = sm.iter().map(|sm| sm.enable()).collect();
        let reader = tokio::spawn(read_loop(reader, iq.clone(), in_tx, sm.clone()));
        let writer = tokio::spawn(write_loop(writer, Arc::clone(&outbound), close_rx, sm.clone(), first));
        Session { iq, inbound, reader: Some(reader), writer: Some(writer), close: Some(close), outbound, sm, timeout }
    }

    /// The handle for sending and requests; clone it for other tasks.
    pub fn iq(&self) -> &IqClient {
        &self.iq
    }

    /// Our address on the connection.
    pub fn jid(&self) -> &str {
        self.iq.jid()
    }

    /// The next stanza that answers no request, within `timeout`
    /// (`ClientError::Framed(FramedError::Timeout(_))` if none came).
    /// When the connection has ended: why, once; then
    /// [`ClientError::Disconnected`].
    pub async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        match tokio::time::timeout(timeout, self.inbound.recv()).await {
            Err(_) => Err(FramedError::Timeout(timeout).into()),
            Ok(Some(el)) => Ok(el),
            Ok(None) => match self.reader.take() {
                Some(reader) => Err(reader.await.unwrap_or(ClientError::Disconnected)),
                None => Err(ClientError::Disconnected),
            },
        }
    }

    /// A stanza that already arrived, without waiting.
    pub fn try_next_stanza(&mut self) -> Option<Element> {
        self.inbound.try_recv().ok()
    }

    /// Whether the server allows this session to be resumed (XEP-0198):
    /// it offered stream management, and enabled it with resumption.
    pub fn resumable(&self) -> bool {
        self.sm.as_ref().is_some_and(|sm| sm.resumption().is_some())
    }

    /// After the connection broke, or when it seems dead: connects again
    /// (`opts`, `identity`, as for [`Client::connect`]) and resumes this
    /// session (XEP-0198 §5) instead of binding a new one. The server
    /// sends again what it had sent and we had not acknowledged; we send
    /// again what it had not acknowledged; the stanzas that arrived before
    /// the break stay first in [`next_stanza`](Self::next_stanza). The
    /// session's [`IqClient`] and its clones keep working.
    ///
    /// [`ClientError::NotResumed`]: the server would not (the session had
    /// expired after `sm_resume_secs`, it was never resumable, the server
    /// restarted); log in again with [`Client::connect`]. Stanzas the
    /// server kept for us are then in offline storage; what we sent and
    /// it never acknowledged is in
    /// [`take_unacknowledged`](Self::take_unacknowledged). Any other error
    /// (the network, still): try again later.
    ///
    /// [`Client::connect`]: crate::Client::connect
    pub async fn resume(&mut self, opts: &ConnectOptions, identity: &Identity) -> Result<(), ClientError> {
        self.resume_with(opts, &Login::Certificate(identity)).await
    }

    /// [`resume`](Self::resume), logging in as `login` says.
    pub async fn resume_with(&mut self, opts: &ConnectOptions, login: &Login<'_>) -> Result<(), ClientError> {
        let sm = self.sm.clone().ok_or_else(|| ClientError::NotResumed("no stream management".into()))?;
        let (previd, h) =
            sm.resumption().ok_or_else(|| ClientError::NotResumed("the server did not allow resumption".into()))?;
        let (mut f, features) = crate::authenticated(opts, login).await?;
        if !features.offers(NS_SM, "sm") {
            // What was unacknowledged stays for `take_unacknowledged`.
            return Err(ClientError::NotResumed("the server no longer offers stream management".into()));
        }
        let resume = Element::new(NS_SM, "resume").with_attr("previd", previd).with_attr("h", h.to_string());
        f.send(&resume.to_xml(NS_CLIENT)).await.map_err(FramedError::Io)?;
        let answer = f.next_element(opts.timeout).await?;
        if answer.is(NS_SM, "failed") {
            let condition = answer.children().next().map_or("failed", |c| c.name()).to_owned();
            let _ = f.send("</stream:stream>").await;
            self.stop_tasks().await;
            return Err(ClientError::NotResumed(condition));
        }
        if !answer.is(NS_SM, "resumed") {
            return Err(ClientError::Protocol(format!("<{}/> in answer to <resume/>", answer.name())));
        }
        let h = answer.attr("h").and_then(|h| h.trim().parse::<u32>().ok());
        let again = h
            .ok_or_else(|| "no 'h'".to_owned())
            .and_then(|h| sm.resumed(h))
            .map_err(|why| ClientError::Protocol(format!("a <resumed/> that does not add up: {why}")))?;
        self.stop_tasks().await;
        // What arrived before the break stays first.
        let (in_tx, inbound) = mpsc::channel(INBOUND);
        while let Ok(el) = self.inbound.try_recv() {
            let _ = in_tx.try_send(el);
        }
        self.inbound = inbound;
        let client =
            crate::Client { framed: f, jid: self.jid().to_owned(), timeout: self.timeout, stream_management: true };
        let (rd, wr) = client.split();
        let (close, close_rx) = oneshot::channel();
        self.reader = Some(tokio::spawn(read_loop(rd, self.iq.clone(), in_tx, Some(Arc::clone(&sm)))));
        self.writer =
            Some(tokio::spawn(write_loop(wr, Arc::clone(&self.outbound), close_rx, Some(Arc::clone(&sm)), again)));
        self.close = Some(close);
        Ok(())
    }

    /// The stanzas we sent that the server has not acknowledged (after
    /// [`ClientError::NotResumed`], those it may never have had), taken:
    /// the caller decides whether to send them again.
    pub fn take_unacknowledged(&mut self) -> Vec<Element> {
        self.sm.as_ref().map(|sm| sm.not_resumed()).unwrap_or_default()
    }

    /// Ends the old connection's tasks, if they still run, before a new
    /// connection takes over.
    async fn stop_tasks(&mut self) {
        self.close = None;
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        if let Some(w) = self.writer.take() {
            w.abort();
            // The queue is free once the writer is gone.
            let _ = w.await;
        }
    }

    /// Sends what is queued, closes the stream, and waits briefly for the
    /// peer's closing tag.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        if let Some(writer) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
        if let Some(mut reader) = self.reader.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut reader).await.is_err() {
                reader.abort();
            }
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The writer sees the close signal dropped and ends the stream.
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

async fn read_loop(
    mut rd: impl StanzaReader,
    iq: IqClient,
    inbound: mpsc::Sender<Element>,
    sm: Option<Arc<Shared>>,
) -> ClientError {
    let why = loop {
        match rd.next_stanza(READ_IDLE).await {
            Ok(el) => {
                if let Some(sm) = &sm {
                    if el.ns() == NS_SM {
                        sm.received_nonza(&el);
                        continue;
                    }
                }
                let handled = || sm.iter().for_each(|sm| sm.handled());
                let Some(el) = iq.dispatch_reply(el) else {
                    handled();
                    continue;
                };
                // A client answers disco#info about itself (XEP-0115's
                // check of the caps it announced); every other request
                // is its owner's to answer or refuse.
                if let Origin::Client { jid } = iq.origin() {
                    if let Some(answer) = crate::caps::answer(&el, jid) {
                        if let Err(e) = iq.try_send(answer) {
                            tracing::debug!(error = %e, "a disco#info answer was not sent");
                        }
                        handled();
                        continue;
                    }
                }
                if sm.is_some() {
                    // Under stream management a stanza counts as ours once
                    // it is queued for the owner, so the reader waits for
                    // room rather than drop one the server would then
                    // believe delivered.
                    if inbound.send(el).await.is_err() {
                        break ClientError::Disconnected;
                    }
                    handled();
                } else if let Err(mpsc::error::TrySendError::Full(el)) = inbound.try_send(el) {
                    tracing::warn!(name = el.name(), "a stanza nobody read was dropped");
                }
            }
            Err(ClientError::Framed(FramedError::Timeout(_))) => {}
            Err(e) => break e,
        }
    };
    // Requests of a session that can be resumed may still be answered.
    if sm.is_none_or(|sm| sm.resumption().is_none()) {
        iq.disconnected();
    }
    why
}

/// Sends `first` (stream management's `<enable/>`, or after a resumption
/// what the server had not acknowledged), then what is queued, until the
/// session closes (the stream is ended) or a write fails (the queue stays
/// for a resumed connection). Under stream management it keeps what it
/// sends until acknowledged, asks for an ack after each burst and answers
/// the server's requests.
async fn write_loop(
    mut wr: impl StanzaWriter,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Element>>>,
    mut close: oneshot::Receiver<()>,
    sm: Option<Arc<Shared>>,
    first: Vec<Element>,
) {
    let mut rx = queue.lock().await;
    for el in &first {
        if wr.send_stanza(el).await.is_err() {
            return;
        }
    }
    if let Some(r) = sm.as_ref().and_then(|sm| sm.request()) {
        if wr.send_stanza(&r).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            biased;
            () = ack_due(sm.as_deref()) => {
                if let Some(a) = sm.as_ref().and_then(|sm| sm.due_ack()) {
                    if wr.send_stanza(&a).await.is_err() {
                        return;
                    }
                }
            }
            el = rx.recv() => match el {
                Some(el) => {
                    if let Some(sm) = &sm {
                        sm.sending(&el);
                    }
                    if wr.send_stanza(&el).await.is_err() {
                        return;
                    }
                    if rx.is_empty() {
                        if let Some(r) = sm.as_ref().and_then(|sm| sm.request()) {
                            if wr.send_stanza(&r).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                None => break,
            },
            _ = &mut close => {
                while let Ok(el) = rx.try_recv() {
                    if let Some(sm) = &sm {
                        sm.sending(&el);
                    }
                    if wr.send_stanza(&el).await.is_err() {
                        return;
                    }
                }
                break;
            }
        }
    }
    // Our last ack: the server then routes nothing it sent us again.
    if let Some(a) = sm.as_ref().and_then(|sm| sm.final_ack()) {
        let _ = wr.send_stanza(&a).await;
    }
    let _ = wr.close().await;
}

/// Resolves when the server asked for an ack; never without stream
/// management.
async fn ack_due(sm: Option<&Shared>) {
    match sm {
        Some(sm) => sm.wake.notified().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iq(kind: &str, id: &str, from: Option<&str>) -> Element {
        let mut el = Element::new(NS_CLIENT, "iq").with_attr("type", kind.to_owned()).with_attr("id", id.to_owned());
        if let Some(f) = from {
            el.set_attr("from", f);
        }
        el
    }

    #[test]
    fn the_lab_of_an_agent() {
        assert_eq!(lab_of("search@lab.example"), "lab.example");
        assert_eq!(lab_of("search.lab.example"), "lab.example");
        assert_eq!(lab_of("lab.example"), "lab.example");
    }

    #[test]
    fn replies_count_only_from_the_entity_asked() {
        let client = Origin::Client { jid: "1111111@po.example/cli".into() };
        let to_agent = Expected::reply_to(&client, Some("search@lab.example/agent"));
        assert!(to_agent.accepts(Some("search@lab.example/agent")));
        assert!(to_agent.accepts(Some("SEARCH@Lab.Example/agent")));
        assert!(!to_agent.accepts(Some("search@lab.example/Agent")));
        assert!(!to_agent.accepts(Some("2222222@po.example/x")));
        assert!(!to_agent.accepts(Some("lab.example")));
        assert!(!to_agent.accepts(None));
        let own = Expected::reply_to(&client, None);
        for ok in [None, Some("1111111@po.example"), Some("1111111@po.example/cli"), Some("po.example")] {
            assert!(own.accepts(ok), "{ok:?}");
        }
        for bad in [Some("2222222@po.example"), Some("1111111@po.example/other"), Some("evil.example")] {
            assert!(!own.accepts(bad), "{bad:?}");
        }
        let component = Origin::Component { domain: "search.lab.example".into(), server: "lab.example".into() };
        let own = Expected::reply_to(&component, None);
        assert!(own.accepts(Some("lab.example")) && !own.accepts(None));
    }

    #[tokio::test]
    async fn requests_are_stamped_bounded_and_answered_by_id_and_sender() {
        let (out, mut rx) = mpsc::channel(8);
        let origin = Origin::Component { domain: "search.lab.example".into(), server: "lab.example".into() };
        let c = IqClient::new(out, origin, Duration::from_secs(5));
        let asking = tokio::spawn({
            let c = c.clone();
            async move { c.request(Element::new(NS_CLIENT, "iq").with_attr("type", "get")).await }
        });
        let sent = rx.recv().await.unwrap();
        assert_eq!((sent.attr("from"), sent.attr("to")), (Some("search.lab.example"), Some("lab.example")));
        let id = sent.attr("id").unwrap().to_owned();
        assert_eq!(id.len(), 16);
        // Wrong sender, unknown id, not a reply: all handed back.
        assert!(c.dispatch_reply(iq("result", &id, Some("evil.example"))).is_some());
        assert!(c.dispatch_reply(iq("result", "nope", Some("lab.example"))).is_some());
        assert!(c.dispatch_reply(iq("get", &id, Some("lab.example"))).is_some());
        assert!(c.dispatch_reply(iq("result", &id, Some("lab.example"))).is_none());
        let answer = asking.await.unwrap().unwrap();
        assert_eq!(answer.attr("from"), Some("lab.example"));
        assert!(c.inner.pending().is_empty());
    }

    #[tokio::test]
    async fn timeouts_disconnects_and_the_limit() {
        let (out, mut rx) = mpsc::channel(MAX_PENDING + 8);
        let c = IqClient::new(out, Origin::Client { jid: "a@b.example/r".into() }, Duration::from_millis(50));
        match c.request(iq("get", "", None)).await {
            Err(ClientError::NoAnswer { who, .. }) => assert_eq!(who, "the server"),
            other => panic!("{other:?}"),
        }
        assert!(c.inner.pending().is_empty(), "a timed-out request stays in the table");
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.request(iq("get", "", None).with_attr("to", "x@b.example")).await }
        });
        let _ = rx.recv().await;
        let _ = rx.recv().await;
        c.disconnected();
        assert!(matches!(waiting.await.unwrap(), Err(ClientError::Disconnected)));
        let slow = IqClient::new(c.inner.out.clone(), c.origin().clone(), Duration::from_secs(60));
        for i in 0..MAX_PENDING {
            slow.inner
                .pending()
                .insert(i.to_string(), Waiter { from: Expected::Jid("x".into()), tx: oneshot::channel().0 });
        }
        assert!(matches!(slow.request(iq("get", "", None)).await, Err(ClientError::TooManyRequests(MAX_PENDING))));
    }
}
