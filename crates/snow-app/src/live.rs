//! The GP's live connection to the Snow server, and what it brought: the
//! alerts of the areas subscribed to, conversations, contacts and their
//! presence. One task reads the connection and keeps this up to date; the
//! pages read it and send through the shared [`IqClient`]. When the
//! connection drops, the task resumes the session (XEP-0198: what was in
//! flight arrives once) or else logs in again (the key stays unlocked in
//! this process, never in the browser), and the pages say so meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use snow_client::alert::{self, Item};
use snow_client::keys::LoginTarget;
use snow_client::{Body, Client, ClientError, ConnectOptions, Contact, IqClient, Session};
use snow_core::alert::{Alert, AlertKind};
use snow_crypto::Identity;
use snow_xml::stanza::{error_reply, Condition};
use snow_xml::{Element, NS_CLIENT, NS_PUBSUB_EVENT};
use tokio::sync::broadcast;

use crate::AppOptions;

/// Lines kept per conversation, alerts kept in all.
const MAX_LINES: usize = 500;
const MAX_ALERTS: usize = 1000;
const MAX_CONVERSATIONS: usize = 500;
/// Alerts read per node at login.
const ALERTS_PER_NODE: u32 = 100;
/// Unverified alerts whose reasons are kept to show.
const MAX_UNVERIFIED: usize = 50;

/// What changed, sent to every open page (server-sent events).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `alert`, `message`, `presence` or `connection`.
    pub kind: &'static str,
    /// Who a message or presence is from (bare JID).
    pub from: Option<String>,
    pub new_alerts: usize,
    pub unread: usize,
    pub online: bool,
}

/// How one line of a conversation travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// End-to-end encrypted and signed; a received one's signature was
    /// verified (its signer is the conversation's other party, as
    /// `snow_client::open_chat` requires).
    Encrypted,
    /// Sent in clear text by the other side.
    Clear,
    /// Encrypted, but not to us or damaged.
    Unreadable,
    /// Our message came back as an error.
    Failed,
    /// Decrypted, but its signature, sender, recipients, time or nonce did
    /// not hold, or the key directory does not list the signer's
    /// certificate as valid: the text holds the reason, never the message.
    Unverified,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub mine: bool,
    pub text: String,
    pub kind: LineKind,
    /// Unix seconds.
    pub at: i64,
}

/// A conversation with one person.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub lines: VecDeque<Line>,
    /// The GP confirmed, in the dialog, that this conversation will hold
    /// nothing sensitive; nothing is sent before.
    pub confirmed: bool,
    pub unread: usize,
}

/// Where an alert stands for this GP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Confirmed,
    Dismissed,
}

/// An alert item dropped unverified: where it was and why.
#[derive(Debug, Clone)]
pub struct UnverifiedAlert {
    pub node: String,
    pub id: String,
    pub why: String,
}

#[derive(Default)]
pub struct LiveData {
    /// Newest first.
    pub alerts: Vec<(Item, Alert)>,
    /// Items we could not open (not encrypted to us).
    pub unreadable: usize,
    /// Items opened but not shown because a check failed (signature,
    /// signer, recipients, time, replay, key directory): newest first,
    /// each shown as "unverified message dropped: {why}", never its
    /// content.
    pub unverified: Vec<UnverifiedAlert>,
    pub subscriptions: Vec<String>,
    pub conversations: BTreeMap<String, Conversation>,
    pub contacts: Vec<Contact>,
    /// Bare JID → `show` (`available`, `away`, …) of those online.
    pub presence: HashMap<String, String>,
    /// Those who asked to see our presence since login.
    pub asking: Vec<String>,
}

pub struct Live {
    pub identity: Identity,
    pub target: LoginTarget,
    /// Our bare JID.
    pub me: String,
    /// The pubsub service of the alerts.
    pub service: String,
    iq: RwLock<IqClient>,
    online: AtomicBool,
    pub data: Mutex<LiveData>,
    /// Search catalogues per lab, with when they were asked.
    pub catalogues: Mutex<HashMap<String, (std::time::Instant, snow_core::stats::Catalogue)>>,
    dismissed: Arc<Mutex<HashSet<String>>>,
    events: broadcast::Sender<Event>,
    connect: ConnectOptions,
    /// Set when the GP locks the app: the task closes the stream and ends.
    stop: tokio::sync::watch::Sender<bool>,
    /// The chats' nonces taken (`app-nonces` beside the state file), so a
    /// replayed chat is dropped, also after the app restarted.
    nonces: std::sync::Mutex<snow_core::nonce_cache::NonceCache>,
    /// The alerts' (`alert-nonces` beside it): an alert is shown for its
    /// own item only, at every listing, and a copy under another item is
    /// dropped as a replay.
    alert_nonces: std::sync::Mutex<snow_core::nonce_cache::NonceCache>,
}

/// Why the app could not go online.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Without its record of the chats or alerts received, a replayed one
    /// could be shown as new: the app stays offline.
    #[error("cannot open the record of received messages: {0}")]
    Nonces(#[from] snow_core::nonce_cache::NonceError),
}

/// Where the app keeps the chats' nonces: `app-nonces` in the state
/// file's directory (the app's own, one per GP; `snow chat` keeps its own
/// in the key store).
pub fn nonces_path(opts: &AppOptions) -> std::path::PathBuf {
    beside_state(opts, "app-nonces")
}

/// Where the app keeps the alerts' nonces: `alert-nonces` beside
/// `app-nonces` (alerts have their own clock window and holders:
/// `snow_client::alert::open_nonces`).
pub fn alert_nonces_path(opts: &AppOptions) -> std::path::PathBuf {
    beside_state(opts, "alert-nonces")
}

fn beside_state(opts: &AppOptions, name: &str) -> std::path::PathBuf {
    match opts.state_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(name),
        _ => std::path::PathBuf::from(name),
    }
}

impl Live {
    /// Logs in with the unlocked key and starts the reading task.
    pub async fn start(
        opts: &AppOptions,
        identity: Identity,
        target: LoginTarget,
        dismissed: Arc<Mutex<HashSet<String>>>,
        events: broadcast::Sender<Event>,
    ) -> Result<Arc<Live>, StartError> {
        let nonces = std::sync::Mutex::new(snow_client::open_chat_nonces(&nonces_path(opts))?);
        let alert_nonces = std::sync::Mutex::new(alert::open_nonces(&alert_nonces_path(opts))?);
        let connect = ConnectOptions {
            addr: opts.server_addr,
            domain: target.jid.domain().to_string(),
            ca_der: target.ca_der.clone(),
            direct_tls: opts.direct_tls,
            resource: None,
            timeout: Duration::from_secs(15),
        };
        let client = Client::connect(&connect, &identity).await?;
        let me = target.jid.to_string();
        let service = opts.alert_service.clone().unwrap_or_else(|| target.jid.domain().to_string());
        let (session, iq) = begin(client).await?;
        let live = Arc::new(Live {
            identity,
            target,
            me,
            service,
            iq: RwLock::new(iq),
            online: AtomicBool::new(true),
            data: Mutex::default(),
            catalogues: Mutex::default(),
            dismissed,
            events,
            connect,
            stop: tokio::sync::watch::channel(false).0,
            nonces,
            alert_nonces,
        });
        live.reload().await;
        tokio::spawn(Arc::clone(&live).run(session));
        Ok(live)
    }

    /// Logs out for good (the app was locked or stops): the reading task
    /// closes the stream and ends, so nothing holds the unlocked key.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The connection's requester (the current one after a reconnect).
    pub fn iq(&self) -> IqClient {
        self.iq.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub fn data(&self) -> std::sync::MutexGuard<'_, LiveData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads contacts, subscriptions and alerts again (at login, after a
    /// reconnect). A failure leaves what was there.
    pub async fn reload(&self) {
        let iq = self.iq();
        match iq.contacts().await {
            Ok(c) => self.data().contacts = c,
            Err(e) => tracing::warn!(error = %e, "cannot read the contacts"),
        }
        self.reload_alerts().await;
    }

    /// Reads the subscriptions and the alerts on them again.
    pub async fn reload_alerts(&self) {
        let iq = self.iq();
        match iq.request(alert::my_subscriptions_iq(&self.service)).await {
            Ok(r) => match alert::read_subscriptions(&self.service, &r, "node") {
                Ok(nodes) => self.data().subscriptions = nodes,
                Err(e) => tracing::warn!(error = %e, "cannot read the subscriptions"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot read the subscriptions"),
        }
        let ca = &self.target.ca_der;
        match alert::received(&iq, &self.service, &self.identity, ca, &self.alert_nonces, ALERTS_PER_NODE).await {
            Ok(mut got) => {
                got.alerts.truncate(MAX_ALERTS);
                for (node, id, why) in &got.unverified {
                    tracing::warn!(node = %node, item = %id, reason = %why, "unverified message dropped");
                }
                let mut d = self.data();
                d.alerts = got.alerts;
                d.unreadable = got.unreadable;
                d.unverified = got
                    .unverified
                    .into_iter()
                    .take(MAX_UNVERIFIED)
                    .map(|(node, id, why)| UnverifiedAlert { node, id, why: why.to_string() })
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the alerts"),
        }
        self.tell("alert", None);
    }

    /// Where `a` stands for us.
    pub fn status(&self, d: &LiveData, a: &Alert) -> Status {
        if d.alerts.iter().any(|(_, c)| {
            c.kind == AlertKind::Confirmation && c.confirms.as_deref() == Some(a.id.as_str()) && c.author == self.me
        }) {
            Status::Confirmed
        } else if self.dismissed.lock().unwrap_or_else(|p| p.into_inner()).contains(&a.id) {
            Status::Dismissed
        } else {
            Status::New
        }
    }

    /// Alerts (not confirmations, not our own) still new to us.
    pub fn new_alerts(&self, d: &LiveData) -> usize {
        d.alerts
            .iter()
            .filter(|(_, a)| a.kind != AlertKind::Confirmation && a.author != self.me)
            .filter(|(_, a)| self.status(d, a) == Status::New)
            .count()
    }

    /// Tells every open page what changed.
    pub fn tell(&self, kind: &'static str, from: Option<String>) {
        let (new_alerts, unread) = {
            let d = self.data();
            (self.new_alerts(&d), d.conversations.values().map(|c| c.unread).sum())
        };
        let _ = self.events.send(Event { kind, from, new_alerts, unread, online: self.online() });
    }

    /// Adds a line to the conversation with `with` (made if new).
    pub fn add_line(&self, with: &str, line: Line) {
        let mut d = self.data();
        if !d.conversations.contains_key(with) && d.conversations.len() >= MAX_CONVERSATIONS {
            // The quietest conversation makes room.
            if let Some(oldest) = d
                .conversations
                .iter()
                .min_by_key(|(_, c)| c.lines.back().map(|l| l.at).unwrap_or(0))
                .map(|(k, _)| k.clone())
            {
                d.conversations.remove(&oldest);
            }
        }
        let c = d.conversations.entry(with.to_owned()).or_default();
        if !line.mine {
            c.unread += 1;
        }
        c.lines.push_back(line);
        while c.lines.len() > MAX_LINES {
            c.lines.pop_front();
        }
    }

    /// Reads the connection until it ends, then logs in again; until
    /// [`stop`](Self::stop).
    async fn run(self: Arc<Self>, mut session: Session) {
        let mut stop = self.stop.subscribe();
        loop {
            loop {
                let next = tokio::select! {
                    () = stopped(&mut stop) => {
                        let _ = session.close().await;
                        return;
                    }
                    next = session.next_stanza(Duration::from_secs(300)) => next,
                };
                match next {
                    Ok(el) => self.handle(el).await,
                    Err(ClientError::Framed(snow_xml::FramedError::Timeout(_))) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the connection to the Snow server ended");
                        break;
                    }
                }
            }
            self.online.store(false, Ordering::Relaxed);
            self.tell("connection", None);
            let resumed = match self.reconnect(&mut session, &mut stop).await {
                Some(resumed) => resumed,
                None => return,
            };
            self.online.store(true, Ordering::Relaxed);
            if !resumed {
                // A new session: what the server kept for us meanwhile is
                // in storage or in the lists, so read them again.
                self.reload().await;
            }
            self.tell("connection", None);
        }
    }

    /// After the connection broke: resumes the session (XEP-0198), so what
    /// was in flight either way arrives once; when the server will not
    /// (it restarted, the session expired), logs in afresh and sends again
    /// what it never acknowledged. Tries until it works, waiting longer each
    /// time; `Some(true)` resumed, `Some(false)` a new session, `None` the
    /// app was locked meanwhile.
    async fn reconnect(&self, session: &mut Session, stop: &mut tokio::sync::watch::Receiver<bool>) -> Option<bool> {
        let mut pause = Duration::from_secs(1);
        let mut resumable = session.resumable();
        loop {
            tokio::select! {
                () = stopped(stop) => return None,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(30));
            if resumable {
                match session.resume(&self.connect, &self.identity).await {
                    Ok(()) => {
                        tracing::info!("the session was resumed");
                        return Some(true);
                    }
                    Err(ClientError::NotResumed(why)) => {
                        tracing::info!(why = %why, "the session could not be resumed; logging in again");
                        resumable = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "resuming the session failed");
                        continue;
                    }
                }
            }
            match Client::connect(&self.connect, &self.identity).await {
                Ok(client) => match begin(client).await {
                    Ok((fresh, iq)) => {
                        let unacknowledged = session.take_unacknowledged();
                        *self.iq.write().unwrap_or_else(|p| p.into_inner()) = iq;
                        // The old session's tasks have ended with its connection.
                        drop(std::mem::replace(session, fresh));
                        for el in unacknowledged {
                            // Presence is sent anew by `begin`; answers to
                            // requests of a past session mean nothing now.
                            if el.name() == "message" {
                                if let Err(e) = session.iq().send(el).await {
                                    tracing::warn!(error = %e, "cannot send again a message the server had not acknowledged");
                                }
                            }
                        }
                        return Some(false);
                    }
                    Err(e) => tracing::warn!(error = %e, "logging in again failed"),
                },
                Err(e) => tracing::warn!(error = %e, "logging in again failed"),
            }
        }
    }

    /// One stanza that answers no request of ours.
    async fn handle(&self, el: Element) {
        let from_bare = el.attr("from").map(|f| f.split('/').next().unwrap_or(f).to_owned());
        match el.name() {
            "message" if el.child(NS_PUBSUB_EVENT, "event").is_some() => {
                if from_bare.as_deref() != Some(self.service.as_str()) {
                    return;
                }
                self.take_event(&el).await;
            }
            "message" if el.attr("type") == Some("error") => {
                let Some(from) = from_bare else { return };
                let (condition, _) = snow_xml::stanza::error_of(&el);
                self.add_line(&from, Line { mine: true, text: condition, kind: LineKind::Failed, at: now() });
                self.tell("message", Some(from));
            }
            "message" => {
                let Some(from) = from_bare else { return };
                let opened =
                    snow_client::open_chat(&self.iq(), &el, &self.identity, &self.target.ca_der, &self.nonces).await;
                let Some(body) = opened else { return };
                let (text, kind) = match body {
                    Body::Verified { text, .. } => (text, LineKind::Encrypted),
                    Body::Clear(t) => (t, LineKind::Clear),
                    Body::Unreadable(why) => (why, LineKind::Unreadable),
                    // The reason only: the text may be a forgery.
                    Body::Unverified(why) => {
                        tracing::warn!(from = %from, reason = %why, "unverified message dropped");
                        (why, LineKind::Unverified)
                    }
                };
                self.add_line(&from, Line { mine: false, text, kind, at: now() });
                self.tell("message", Some(from));
            }
            "presence" => {
                let Some(from) = from_bare else { return };
                if from == self.me {
                    return;
                }
                {
                    let mut d = self.data();
                    match el.attr("type") {
                        None => {
                            let show = el.child(NS_CLIENT, "show").map(|s| s.text()).unwrap_or_default();
                            let show = if show.is_empty() { "available".to_owned() } else { show };
                            d.presence.insert(from.clone(), show);
                        }
                        Some("unavailable") => {
                            d.presence.remove(&from);
                        }
                        Some("subscribe") if !d.asking.contains(&from) => d.asking.push(from.clone()),
                        _ => {}
                    }
                }
                if matches!(el.attr("type"), Some("subscribed" | "unsubscribed")) {
                    if let Ok(c) = self.iq().contacts().await {
                        self.data().contacts = c;
                    }
                }
                self.tell("presence", Some(from));
            }
            "iq" if matches!(el.attr("type"), Some("get" | "set")) => {
                // A roster push from our server: read the contacts again.
                if el.attr("type") == Some("set") && el.child(snow_xml::NS_ROSTER, "query").is_some() {
                    let _ = self.iq().send(snow_xml::stanza::iq_result(&el, None)).await;
                    if let Ok(c) = self.iq().contacts().await {
                        self.data().contacts = c;
                    }
                    self.tell("presence", None);
                    return;
                }
                let _ = self.iq().send(error_reply(&el, Condition::ServiceUnavailable, None)).await;
            }
            _ => {}
        }
    }

    /// New or retracted alerts in a pubsub notification, each verified
    /// before it is shown ([`alert::open_item`]); one that does not verify
    /// is shown as its reason only.
    async fn take_event(&self, el: &Element) {
        let iq = self.iq();
        let mut opened = Vec::new();
        for item in alert::event_items(el) {
            let r = alert::open_item(&iq, &item, &self.identity, &self.target.ca_der, &self.alert_nonces).await;
            opened.push((item, r));
        }
        let mut changed = false;
        {
            let mut d = self.data();
            for (item, r) in opened {
                match r {
                    Ok(a) => {
                        d.alerts.retain(|(i, _)| !(i.node == item.node && i.id == item.id));
                        d.alerts.insert(0, (item, a));
                        d.alerts.truncate(MAX_ALERTS);
                        changed = true;
                    }
                    Err(alert::Dropped::Unreadable { why, .. }) => {
                        tracing::debug!(error = %why, "an alert we cannot open");
                        d.unreadable += 1;
                    }
                    // The reason only: the content may be a forgery.
                    Err(alert::Dropped::Unverified(why)) => {
                        tracing::warn!(node = %item.node, item = %item.id, reason = %why, "unverified message dropped");
                        let dropped = UnverifiedAlert { node: item.node, id: item.id, why: why.to_string() };
                        d.unverified.insert(0, dropped);
                        d.unverified.truncate(MAX_UNVERIFIED);
                        changed = true;
                    }
                }
            }
            for (node, id) in retracted(el) {
                let before = d.alerts.len();
                d.alerts.retain(|(i, _)| !(i.node == node && i.id == id));
                changed |= d.alerts.len() != before;
            }
            d.alerts.sort_by(|a, b| b.1.issued.cmp(&a.1.issued).then_with(|| b.1.id.cmp(&a.1.id)));
        }
        if changed {
            self.tell("alert", None);
        }
    }
}

/// The retractions in a pubsub notification: `(node, id)`.
fn retracted(el: &Element) -> Vec<(String, String)> {
    let Some(event) = el.child(NS_PUBSUB_EVENT, "event") else { return Vec::new() };
    event
        .children()
        .filter(|c| c.name() == "items")
        .flat_map(|items| {
            let node = items.attr("node").unwrap_or_default().to_owned();
            items
                .children()
                .filter(|r| r.name() == "retract")
                .filter_map(move |r| r.attr("id").map(|id| (node.clone(), id.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Resolves once [`Live::stop`] was called (the guard of the value is
/// not held across the caller's awaits).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Presence out, then the session's tasks.
async fn begin(mut client: Client) -> Result<(Session, IqClient), ClientError> {
    client.send_presence().await?;
    let session = client.into_session();
    let iq = session.iq().clone();
    Ok((session, iq))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
