//! Offline storage (XEP-0160): a message for an account with no available
//! resource is committed to the database, stamped with XEP-0203 delay,
//! before anything else happens, and handed to the account's first
//! session that becomes available, oldest first. A stored row is deleted
//! only once the session's writer has put it on the socket.

use std::sync::Arc;

use snow_xml::stanza::Condition;
use snow_xml::{Element, NS_CLIENT, NS_DELAY};

use super::{Cx, Event, Handled, Service};
use crate::db::Db;
use crate::routing::{BoxFuture, Outbound, SessionHandle};

pub(crate) struct Offline {
    pub db: Db,
    /// The server's domain, the `from` of the delay stamp.
    pub domain: String,
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
                    self.deliver(session).await;
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
        match self.db.call(move |db| db.store_offline(&owner_s, &xml, now.unix_timestamp())).await {
            Ok(Some(_)) => {
                tracing::debug!(to = owner, "stored offline");
                Handled::Done
            }
            Ok(None) => Handled::Refused((Condition::ResourceConstraint, "the recipient's offline store is full")),
            Err(e) => {
                tracing::error!(error = %e, "cannot store offline message");
                Handled::Refused((Condition::InternalServerError, "the message could not be stored"))
            }
        }
    }

    /// Hands stored messages to a session that just became available.
    async fn deliver(&self, me: &Arc<SessionHandle>) {
        let owner = me.bare.clone();
        let msgs = match self.db.call(move |db| db.offline_for(&owner)).await {
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
}
