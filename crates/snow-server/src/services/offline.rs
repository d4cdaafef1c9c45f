//! Offline storage (XEP-0160): a message for an account with no available
//! resource is committed to the database, stamped with XEP-0203 delay,
//! before anything else happens, and handed to the account's first
//! session that becomes available, oldest first. A stored row is deleted
//! only once the session has put it on the socket. Nothing is kept for an
//! account whose certificate the key directory lists as revoked: the
//! sender is refused (routing answers every refusal here with
//! `service-unavailable`, as for an account that does not exist).
//!
//! Delivery is paced: a task of its own reads a page of rows at a time and
//! waits for room in the session's queue, so however many messages are
//! stored, the session neither overflows its queue (which would end it as
//! a slow reader before it wrote one, at every login) nor holds them all
//! in memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use snow_xml::stanza::Condition;
use snow_xml::{Element, NS_CLIENT, NS_DELAY};

use super::{Cx, Event, Handled, Service};
use crate::db::Db;
use crate::routing::{BoxFuture, Outbound, SessionHandle};

pub(crate) struct Offline {
    db: Db,
    /// The server's domain, the `from` of the delay stamp.
    domain: String,
    /// Sessions being fed now (by handle address): one feeder each, or a
    /// session that goes unavailable and back would get rows twice.
    feeding: Arc<Mutex<HashSet<usize>>>,
}

impl Offline {
    pub fn new(db: Db, domain: String) -> Self {
        Offline { db, domain, feeding: Arc::default() }
    }
}

impl Service for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }
    fn features(&self) -> &'static [&'static str] {
        &["msgoffline", NS_DELAY]
    }

    fn on<'a>(&'a self, _cx: &'a Cx<'a>, event: &'a Event<'a>) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            match event {
                Event::Undeliverable { bare, stanza } => self.store(bare, (*stanza).clone()).await,
                Event::Presence { session, initial: true, .. } => {
                    self.deliver(session);
                    Handled::Done
                }
                _ => Handled::Ignored,
            }
        })
    }
}

impl Offline {
    async fn store(&self, owner: &str, mut el: Element) -> Handled {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        el.push_child(Element::new(NS_DELAY, "delay").with_attr("from", self.domain.clone()).with_attr("stamp", stamp));
        let xml = el.to_xml(NS_CLIENT);
        let owner_s = owner.to_owned();
        let stored = self.db.call(move |db| {
            if db.directory_entry(&owner_s)?.is_some_and(|e| !e.status.is_valid()) {
                return Ok(Stored::Revoked);
            }
            Ok(match db.store_offline(&owner_s, &xml, now.unix_timestamp())? {
                Some(_) => Stored::Yes,
                None => Stored::Full,
            })
        });
        match stored.await {
            Ok(Stored::Yes) => {
                tracing::debug!(to = owner, "stored offline");
                Handled::Done
            }
            Ok(Stored::Full) => {
                Handled::Refused((Condition::ResourceConstraint, "the recipient's offline store is full"))
            }
            Ok(Stored::Revoked) => {
                tracing::info!(to = owner, "not stored: the recipient's certificate is revoked");
                Handled::Refused((Condition::ServiceUnavailable, "the recipient's certificate is revoked"))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store offline message");
                Handled::Refused((Condition::InternalServerError, "the message could not be stored"))
            }
        }
    }

    /// Starts handing stored messages to a session that just became
    /// available.
    fn deliver(&self, me: &Arc<SessionHandle>) {
        let key = Arc::as_ptr(me) as usize;
        if !self.feeding.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            return;
        }
        let (db, me, feeding) = (self.db.clone(), Arc::clone(me), Arc::clone(&self.feeding));
        tokio::spawn(async move {
            feed(db, me).await;
            feeding.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        });
    }
}

/// What became of a message to keep.
enum Stored {
    Yes,
    Full,
    /// The key directory lists the recipient's certificate as revoked.
    Revoked,
}

/// Rows read from the store at a time.
const PAGE: usize = 64;

/// Queues the stored messages of `me`'s account, a page at a time, each
/// when the queue has room; ends with the session or the store.
async fn feed(db: Db, me: Arc<SessionHandle>) {
    let mut after = 0;
    loop {
        let owner = me.bare.clone();
        let page = match db.call(move |db| db.offline_page(&owner, after, PAGE)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read offline messages");
                return;
            }
        };
        let last = page.len() < PAGE;
        for (id, xml) in page {
            after = id;
            if !me.send_paced(Outbound::Xml { xml, offline_id: Some(id) }).await {
                return;
            }
        }
        if last {
            return;
        }
    }
}
