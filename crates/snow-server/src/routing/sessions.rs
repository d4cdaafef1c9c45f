//! The connected sessions of this server, by bare and full JID, and
//! delivery to them through their bounded outbound queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use snow_xml::Element;
use tokio::sync::{mpsc, Notify};

use super::client_check::Announcement;

/// Something for a session's writer task.
#[derive(Debug)]
pub enum Outbound {
    /// Serialized XML. If it came from offline storage, its row is
    /// deleted once the client acknowledged it (stream management) or,
    /// without stream management, once the bytes are on the socket.
    /// `queued`: when routing gave it to the session (a message the
    /// client never had is routed again when the session ends, unless
    /// another resource had it then).
    Xml { xml: String, offline_id: Option<i64>, queued: Instant },
    /// Send this (a closing tag or stream error) and close the connection.
    Close(String),
}

/// The router's view of one bound session.
pub struct SessionHandle {
    pub bare: String,
    pub full: String,
    tx: mpsc::Sender<Outbound>,
    /// Has sent initial presence and not gone unavailable.
    available: AtomicBool,
    /// Since when it has been available (None: not available).
    available_since: Mutex<Option<Instant>>,
    priority: AtomicI32,
    /// Has fetched its roster (and so wants roster pushes, RFC 6121 §2.1.6).
    pub interested: AtomicBool,
    /// Signalled when the session must end (slow reader, replaced); a
    /// session waiting to be resumed ends too.
    pub kill: Notify,
    /// Signalled when the writer has taken from the queue ([`send_paced`]).
    ///
    /// [`send_paced`]: SessionHandle::send_paced
    drained: Notify,
    /// The last broadcast presence, for contacts who come online later.
    last_presence: Mutex<Option<Element>>,
    /// Whether it has announced the Snow client (`client_check`).
    pub(crate) client: Announcement,
}

impl SessionHandle {
    pub fn new(bare: String, full: String, tx: mpsc::Sender<Outbound>) -> Arc<Self> {
        Arc::new(SessionHandle {
            bare,
            full,
            tx,
            available: AtomicBool::new(false),
            available_since: Mutex::new(None),
            priority: AtomicI32::new(0),
            interested: AtomicBool::new(false),
            kill: Notify::new(),
            drained: Notify::new(),
            last_presence: Mutex::new(None),
            client: Announcement::default(),
        })
    }

    pub fn set_last_presence(&self, presence: Option<Element>) {
        *self.last_presence.lock().unwrap_or_else(|p| p.into_inner()) = presence;
    }

    /// The last broadcast presence, addressed to `to` (for a contact who
    /// comes online or subscribes later).
    pub fn last_presence_to(&self, to: &str) -> Option<Element> {
        let mut p = self.last_presence.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        p.set_attr("to", to.to_owned());
        Some(p)
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub fn set_available(&self, available: bool, priority: i32) {
        let mut since = self.available_since.lock().unwrap_or_else(|p| p.into_inner());
        match (available, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, _) => *since = None,
            (true, Some(_)) => {}
        }
        self.priority.store(priority, Ordering::Release);
        self.available.store(available, Ordering::Release);
    }

    /// Whether it was available, with a priority that takes messages to
    /// its bare JID, at `t` and ever since: then it had its own copy of
    /// such a message routed at `t` (RFC 6121 §8.5.2.1.1).
    pub fn took_bare_messages_at(&self, t: Instant) -> bool {
        let since = *self.available_since.lock().unwrap_or_else(|p| p.into_inner());
        self.priority() >= 0 && since.is_some_and(|s| s <= t)
    }

    pub fn priority(&self) -> i32 {
        self.priority.load(Ordering::Acquire)
    }

    /// Queues output for the session. A full queue means the client is not
    /// reading: the session is told to end rather than let memory grow.
    pub fn send(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(jid = %self.full, "outbound queue full: disconnecting slow reader");
                self.kill.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn send_xml(&self, xml: String) -> bool {
        self.send(Outbound::Xml { xml, offline_id: None, queued: Instant::now() })
    }

    /// Queues output, waiting for room instead of ending the session: for
    /// output the server paces itself (stored messages), which must not
    /// count against the client as a slow reader. It waits until half the
    /// queue is free, so it never fills more than half: the other half is
    /// for what routing sends meanwhile (an answer, a new message), which
    /// would otherwise find the queue full and end the session as a slow
    /// reader. False once the session has ended.
    pub async fn send_paced(&self, out: Outbound) -> bool {
        let half = (self.tx.max_capacity() / 2).max(1);
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check: a wake between the two counts.
            drained.as_mut().enable();
            if self.tx.is_closed() {
                return false;
            }
            if self.tx.capacity() >= half {
                break;
            }
            drained.await;
        }
        self.tx.send(out).await.is_ok()
    }

    /// The session's writer took from the queue (or the queue closed):
    /// paced senders look again.
    pub fn drained(&self) {
        self.drained.notify_waiters();
    }
}

/// All bound sessions of this server.
#[derive(Default)]
pub struct SessionTable {
    by_bare: Mutex<HashMap<String, Vec<Arc<SessionHandle>>>>,
}

impl SessionTable {
    /// Adds a session; an older session with the same full JID is told to
    /// end (RFC 6120 §7.7.2.2, the new one wins).
    pub fn register(&self, handle: Arc<SessionHandle>) {
        let mut map = self.by_bare.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(handle.bare.clone()).or_default();
        if let Some(pos) = list.iter().position(|h| h.full == handle.full) {
            let old = list.remove(pos);
            // Ended at once: it writes nothing more (the old connection is
            // most likely dead, and stored messages it has not written yet
            // stay stored for the new one).
            old.send(Outbound::Close(snow_xml::stream_error_xml("conflict", "replaced by a new connection")));
            old.kill.notify_one();
        }
        list.push(handle);
    }

    /// Removes the session, if it is still the registered one.
    pub fn unregister(&self, handle: &Arc<SessionHandle>) {
        let mut map = self.by_bare.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(&handle.bare) {
            list.retain(|h| !Arc::ptr_eq(h, handle));
            if list.is_empty() {
                map.remove(&handle.bare);
            }
        }
    }

    /// Every session of an account.
    pub fn sessions(&self, bare: &str) -> Vec<Arc<SessionHandle>> {
        self.by_bare.lock().unwrap_or_else(|p| p.into_inner()).get(bare).cloned().unwrap_or_default()
    }

    pub fn session(&self, bare: &str, full: &str) -> Option<Arc<SessionHandle>> {
        let map = self.by_bare.lock().unwrap_or_else(|p| p.into_inner());
        map.get(bare)?.iter().find(|h| h.full == full).cloned()
    }

    /// Every session, to say goodbye at shutdown.
    pub fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.by_bare.lock().unwrap_or_else(|p| p.into_inner()).values().flatten().cloned().collect()
    }
}
