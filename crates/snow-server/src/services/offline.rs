//! Offline storage (XEP-0160): a message for an account with no available
//! resource is committed to the database, stamped with XEP-0203 delay,
//! before anything else happens, and handed to the account's first
//! session that becomes available, oldest first. A stored row is deleted
//! only once the client acknowledged it (XEP-0198 stream management, by
//! the session in `transport::c2s`), or, for a client without stream
//! management, once the session has put it on the socket; rows leave in
//! batches, one transaction each. So a crash or a broken connection
//! between the two loses nothing: what was not acknowledged is delivered
//! again at the next login. Nothing is kept for an
//! account whose certificate the key directory lists as revoked: the
//! sender is refused (routing answers every refusal here with
//! `service-unavailable`, as for an account that does not exist).
//!
//! Delivery is paced: a task of its own reads a page of rows at a time and
//! waits for room in the session's queue, so however many messages are
//! stored, the session neither overflows its queue (which would end it as
//! a slow reader before it wrote one, at every login) nor holds them all
//! in memory. The queue empties as fast as the client reads (and, under
//! stream management, acknowledges: a session writes nothing more while
//! `sm_max_unacked` stanzas wait for their ack), so the client's reading
//! sets the pace.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use snow_xml::stanza::Condition;
use snow_xml::{Element, NS_CLIENT, NS_DELAY, NS_PUBSUB_EVENT};

use snow_store::server_db::{OfflineLimits, OfflineStored};

use super::{Cx, Event, Handled, Service};
use crate::addr::Addr;
use crate::db::Db;
use crate::limits::{Count, LimitCounters};
use crate::routing::{BoxFuture, Outbound, SessionHandle};

pub(crate) struct Offline {
    db: Db,
    /// The server's domain, the `from` of the delay stamp.
    domain: String,
    /// Sessions being fed now (by handle address): one feeder each, or a
    /// session that goes unavailable and back would get rows twice.
    feeding: Arc<Mutex<HashSet<usize>>>,
    /// What may be kept ([`Offline::with_quota`]).
    quota: Option<(OfflineQuota, Arc<LimitCounters>)>,
}

impl Offline {
    pub fn new(db: Db, domain: String) -> Self {
        Offline { db, domain, feeding: Arc::default(), quota: None }
    }
}

/// The offline quotas (`[server] offline_*`): per recipient (messages and
/// bytes), per sender to one recipient, and the free space that must stay
/// on the database's file system.
#[derive(Debug, Clone)]
pub(crate) struct OfflineQuota {
    pub max_messages: u64,
    pub max_bytes: u64,
    pub max_per_sender: u64,
    /// 0: no disk watermark.
    pub min_free_bytes: u64,
    /// `server.db`, whose file system's free space is watched.
    pub database: std::path::PathBuf,
}

/// The readable texts of the quota refusals (`resource-constraint`).
const RECIPIENT_FULL: &str = "the recipient has too many messages waiting; try again when they have read them";
const SENDER_FULL: &str = "you have too many messages waiting for this recipient; wait until they have read them";
const DISK_LOW: &str = "the server is short of disk space and cannot keep messages for recipients who are offline now";

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
    /// Keeps messages within `quota`, counting refusals in `counters`.
    pub fn with_quota(mut self, quota: OfflineQuota, counters: Arc<LimitCounters>) -> Self {
        self.quota = Some((quota, counters));
        self
    }

    /// Keeps a message for `owner`, within the quotas: past one, nothing is
    /// kept and the sender gets `resource-constraint` with a text saying
    /// which (routing passes that condition on; everything else it answers
    /// as for an account that does not exist).
    async fn store(&self, owner: &str, mut el: Element) -> Handled {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        el.push_child(Element::new(NS_DELAY, "delay").with_attr("from", self.domain.clone()).with_attr("stamp", stamp));
        let xml = el.to_xml(NS_CLIENT);
        let owner_s = owner.to_owned();
        let sender = self.sender_of(&el);
        let quota = self.quota.as_ref().map(|(q, _)| q.clone());
        let stored = self.db.call(move |db| {
            if db.directory_entry(&owner_s)?.is_some_and(|e| !e.status.is_valid()) {
                return Ok(Stored::Revoked);
            }
            let Some(q) = quota else {
                return Ok(match db.store_offline(&owner_s, &xml, now.unix_timestamp())? {
                    Some(_) => Stored::Yes,
                    None => Stored::Full,
                });
            };
            // Checked here, on the blocking pool: statvfs touches the disk.
            if q.min_free_bytes > 0
                && crate::limits::free_bytes(&q.database).is_some_and(|free| free < q.min_free_bytes)
            {
                return Ok(Stored::DiskLow);
            }
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let limits = OfflineLimits {
                max_messages: as_i64(q.max_messages),
                max_bytes: as_i64(q.max_bytes),
                max_per_sender: as_i64(q.max_per_sender),
            };
            Ok(match db.store_offline_within(&owner_s, &sender, &xml, now.unix_timestamp(), limits)? {
                OfflineStored::Stored(_) => Stored::Yes,
                OfflineStored::RecipientFull => Stored::Full,
                OfflineStored::SenderFull => Stored::SenderFull,
            })
        });
        let refused = |count: Count, text: &'static str| {
            if let Some((_, counters)) = &self.quota {
                let n = counters.add(count);
                // The 1st, 2nd, 4th… and every 1000th: a flood must not flood the log.
                if n.is_power_of_two() || n % 1000 == 0 {
                    tracing::warn!(to = owner, refused = n, why = text, "offline message not kept: over a quota");
                }
            }
            Handled::Refused((Condition::ResourceConstraint, text))
        };
        match stored.await {
            Ok(Stored::Yes) => {
                tracing::debug!(to = owner, "stored offline");
                Handled::Done
            }
            Ok(Stored::Full) => refused(Count::OfflineRecipientFull, RECIPIENT_FULL),
            Ok(Stored::SenderFull) => refused(Count::OfflineSenderFull, SENDER_FULL),
            Ok(Stored::DiskLow) => refused(Count::OfflineDiskLow, DISK_LOW),
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

impl Offline {
    /// Who a message counts against for the per-sender quota: the sender
    /// as routing stamped it (a bare JID, or a domain for a server's or
    /// component's own stanzas), except that a pubsub notification from
    /// this server counts against the item's publisher, so one publisher's
    /// flood cannot take the place of everyone else's alerts.
    fn sender_of(&self, el: &Element) -> String {
        let from = el.attr("from").and_then(Addr::parse).map(|a| a.bare()).unwrap_or_default();
        if from != self.domain {
            return from;
        }
        el.child(NS_PUBSUB_EVENT, "event")
            .and_then(|e| e.child(NS_PUBSUB_EVENT, "items"))
            .and_then(|i| i.child(NS_PUBSUB_EVENT, "item"))
            .and_then(|i| i.attr("publisher"))
            .and_then(Addr::parse)
            .map_or(from, |a| a.bare())
    }
}

/// What became of a message to keep.
enum Stored {
    Yes,
    /// The recipient's quota (messages or bytes) is reached.
    Full,
    /// The sender's quota for this recipient is reached.
    SenderFull,
    /// The database's file system is below the free-space watermark.
    DiskLow,
    /// The key directory lists the recipient's certificate as revoked.
    Revoked,
}

/// Rows read from the store at a time.
const PAGE: usize = 64;

/// Queues the stored messages of `me`'s account, a page at a time, each
/// when the queue has room; ends with the session or the store. Rows are
/// read past the last one queued, not deleted here: the session deletes
/// them when the client has them, and a row it never confirms stays for
/// the next login.
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
            let queued = std::time::Instant::now();
            if !me.send_paced(Outbound::Xml { xml, offline_id: Some(id), queued }).await {
                return;
            }
        }
        if last {
            return;
        }
    }
}
