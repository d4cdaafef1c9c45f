//! The key directory (`urn:snow:keys:1`, docs/architecture.md §6): clients ask their
//! own server for other users' certificates; the PO, master of the PKI,
//! pushes every key change and the current CRL to its replicas.
//!
//! Lookup (client → its server):
//!
//! ```xml
//! <iq type='get'><query xmlns='urn:snow:keys:1'><item jid='9144889@po.example'/></query></iq>
//! <iq type='result'><query xmlns='urn:snow:keys:1'>
//!   <item jid='9144889@po.example' status='valid|revoked|unknown' serial='hex'>
//!     <certificate>base64 DER</certificate></item></query></iq>
//! ```
//!
//! Push (PO → replica, over s2s), acknowledged by an IQ result:
//!
//! ```xml
//! <iq type='set' id='keys-lab.example-42'><update xmlns='urn:snow:keys:1'>
//!   <item seq='41' jid='…' status='valid' serial='hex'><certificate>…</certificate></item>
//!   <item seq='42' jid='…' status='revoked' serial='hex'><certificate>…</certificate></item>
//!   <crl>base64 DER</crl></update></iq>
//! ```
//!
//! Each change has the sequence number of the PO's feed; a replica applies
//! only changes beyond its position, so a push may repeat after a lost
//! acknowledgement and a replica that was offline catches up in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use snow_store::{KeyChange, KeyStatus, ReplicationCursor};
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT};
use tokio::sync::watch;

use super::{Access, Cx, Event, Handled, IqRequest, IqRoute, Service};
use crate::db::Db;
use crate::routing::{BoxFuture, Origin, Router};
use crate::trust::TrustStore;

pub const NS_KEYS: &str = "urn:snow:keys:1";
/// Most JIDs in one lookup, most changes in one push.
const MAX_LOOKUP: usize = 50;
const MAX_PUSH: usize = 200;
/// A push not acknowledged is sent again after 1 s, then after twice as
/// long each time, up to this: a replica that starts a moment after its
/// master gets its keys within a second or two, and one that is down is
/// not called every second.
const PUSH_RETRY_MAX: Duration = Duration::from_secs(30);

/// How long to wait for the acknowledgement of a push sent `attempts` times.
fn push_retry(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(PUSH_RETRY_MAX)
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The key directory: this server's copy, and replication (as the PO's
/// master or as a replica).
pub(crate) struct Directory {
    pub db: Db,
    pub trust: Arc<TrustStore>,
    /// Where the current CRL is kept (a replica writes pushed CRLs here).
    pub crl: PathBuf,
    /// On a replica: the PO domain allowed to push key changes.
    pub master: Option<String>,
    /// On the PO: the CA database whose key feed is replicated, and the
    /// servers it is pushed to.
    pub ca_db: Option<PathBuf>,
    pub replicas: Vec<String>,
    /// How often the CA database is checked for new changes.
    pub interval: Duration,
    /// Pushes in flight, by peer: (acknowledges up to, last sent at, times
    /// sent without an acknowledgement).
    in_flight: Mutex<HashMap<String, (i64, Instant, u32)>>,
}

impl Service for Directory {
    fn name(&self) -> &'static str {
        "key directory"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_KEYS]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        // The directory answers this site's users and components (an
        // agent looks up the GP it answers), not other servers; only
        // another server (the master) pushes.
        const ROUTES: &[IqRoute] =
            &[IqRoute::get(NS_KEYS, "query", Access::Site), IqRoute::set(NS_KEYS, "update", Access::Peer)];
        ROUTES
    }
    fn iq<'a>(&'a self, _cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move {
            match req.origin {
                Origin::Remote(domain) => self.apply_push(domain, req.iq, req.payload).await,
                _ => self.lookup(req.iq, req.payload).await,
            }
        })
    }
    fn on<'a>(&'a self, _cx: &'a Cx<'a>, event: &'a Event<'a>) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            match event {
                Event::IqReply { origin: Origin::Remote(domain), stanza } if stanza.attr("type") == Some("result") => {
                    match stanza.attr("id") {
                        Some(id) if self.acknowledged(domain, id).await => Handled::Done,
                        _ => Handled::Ignored,
                    }
                }
                _ => Handled::Ignored,
            }
        })
    }
}

impl Directory {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        trust: Arc<TrustStore>,
        crl: PathBuf,
        master: Option<String>,
        ca_db: Option<PathBuf>,
        replicas: Vec<String>,
        interval: Duration,
    ) -> Self {
        Directory { db, trust, crl, master, ca_db, replicas, interval, in_flight: Mutex::default() }
    }

    /// Answers a lookup from this server's directory.
    async fn lookup(&self, iq: &Element, query: &Element) -> Element {
        let jids: Vec<String> = query.children().filter_map(|i| i.attr("jid").map(str::to_owned)).collect();
        if jids.is_empty() || jids.len() > MAX_LOOKUP {
            return error_reply(iq, Condition::BadRequest, Some("ask for 1 to 50 JIDs"));
        }
        let found = self
            .db
            .call(move |db| jids.iter().map(|j| Ok((j.clone(), db.directory_entry(j)?))).collect::<Result<Vec<_>, _>>())
            .await;
        let Ok(found) = found else { return error_reply(iq, Condition::InternalServerError, None) };
        let mut q = Element::new(NS_KEYS, "query");
        for (jid, entry) in found {
            let mut item = Element::new(NS_KEYS, "item").with_attr("jid", jid);
            match entry {
                Some(e) => {
                    item.set_attr("status", e.status.as_str());
                    item.set_attr("serial", e.serial_hex.clone());
                    // A revoked certificate is reported, not served.
                    if e.status.is_valid() {
                        item.push_child(Element::new(NS_KEYS, "certificate").with_text(b64().encode(&e.der)));
                    }
                }
                None => item.set_attr("status", "unknown"),
            }
            q.push_child(item);
        }
        iq_result(iq, Some(q))
    }

    /// Replica side: applies a push from the master.
    async fn apply_push(&self, from_domain: &str, iq: &Element, update: &Element) -> Element {
        if self.master.as_deref() != Some(from_domain) {
            return error_reply(iq, Condition::Forbidden, Some("this server does not replicate keys from you"));
        }
        let mut changes = Vec::new();
        for item in update.children().filter(|c| c.name() == "item") {
            let parsed = (|| {
                Some(KeyChange {
                    seq: item.attr("seq")?.parse().ok()?,
                    jid: item.attr("jid")?.to_owned(),
                    status: KeyStatus::parse(item.attr("status")?)?,
                    serial_hex: item.attr("serial")?.to_owned(),
                    der: b64().decode(item.child(NS_KEYS, "certificate")?.text().trim()).ok()?,
                })
            })();
            match parsed {
                Some(c) => changes.push(c),
                None => return error_reply(iq, Condition::BadRequest, Some("malformed key change")),
            }
            if changes.len() > MAX_PUSH {
                return error_reply(iq, Condition::BadRequest, Some("too many key changes in one push"));
            }
        }
        changes.sort_by_key(|c| c.seq);
        let crl = match update.child(NS_KEYS, "crl").map(|c| b64().decode(c.text().trim())) {
            Some(Ok(der)) => Some(der),
            Some(Err(_)) => return error_reply(iq, Condition::BadRequest, Some("malformed CRL")),
            None => None,
        };
        if let Some(der) = crl {
            // Checked before it replaces the file: a CRL that does not parse
            // would leave the old one in force anyway.
            if webpki::OwnedCertRevocationList::from_der(&der).is_err() {
                return error_reply(iq, Condition::BadRequest, Some("the CRL does not parse"));
            }
            let pem = match snow_crypto::pem::encode("X509 CRL", &der) {
                Ok(p) => p,
                Err(_) => return error_reply(iq, Condition::InternalServerError, None),
            };
            if let Err(e) = snow_core::files::write(&self.crl, pem.as_bytes(), snow_core::files::Mode::Public) {
                tracing::error!(error = %e, "cannot write the pushed CRL");
                return error_reply(iq, Condition::InternalServerError, None);
            }
            if let Err(e) = self.trust.reload_crl() {
                tracing::error!(error = %e, "cannot load the pushed CRL");
            }
        }
        let cursor = ReplicationCursor::AppliedFrom(from_domain.to_owned());
        let n = changes.len();
        match self.db.call(move |db| db.apply_key_changes(&cursor, &changes)).await {
            Ok(pos) => {
                tracing::info!(master = from_domain, changes = n, position = pos, "key directory updated");
                iq_result(iq, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot apply key changes");
                error_reply(iq, Condition::InternalServerError, None)
            }
        }
    }

    /// Master side: an IQ result for one of our pushes (true if it was one).
    async fn acknowledged(&self, from_domain: &str, id: &str) -> bool {
        let Some(upto) = id.strip_prefix(&format!("keys-{from_domain}-")).and_then(|n| n.parse::<i64>().ok()) else {
            return false;
        };
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(from_domain);
        let cursor = ReplicationCursor::AckedBy(from_domain.to_owned());
        if let Err(e) = self.db.call(move |db| db.set_replication_seq(&cursor, upto)).await {
            tracing::error!(error = %e, "cannot record acknowledgement");
        }
        true
    }

    /// The master's loop: brings its own directory up to date with the CA
    /// database, reloads the CRL after revocations, and pushes to replicas.
    pub async fn replicate(self: Arc<Self>, router: Arc<Router>, mut shutdown: watch::Receiver<bool>) {
        let Some(ca_db_path) = self.ca_db.clone() else { return };
        // One connection for the server's life; `snow user …` writes through
        // its own (WAL allows both).
        let ca = match snow_store::CaDb::open(&ca_db_path) {
            Ok(db) => Arc::new(Mutex::new(db)),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the CA database: no key replication");
                return;
            }
        };
        loop {
            if let Err(e) = self.replicate_once(&router, &ca).await {
                tracing::error!(error = %e, "key replication step failed");
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn replicate_once(&self, router: &Arc<Router>, ca: &Arc<Mutex<snow_store::CaDb>>) -> Result<(), String> {
        let local =
            self.db.call(|db| db.replication_seq(&ReplicationCursor::AppliedLocal)).await.map_err(|e| e.to_string())?;
        let db = Arc::clone(ca);
        let (last, fresh) = tokio::task::spawn_blocking(move || -> Result<_, snow_store::StoreError> {
            let ca = db.lock().unwrap_or_else(|p| p.into_inner());
            Ok((ca.last_key_change()?, ca.key_changes_since(local, 10_000)?))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if !fresh.is_empty() {
            let revoked = fresh.iter().any(|c| c.status == KeyStatus::Revoked);
            self.db
                .call(move |db| db.apply_key_changes(&ReplicationCursor::AppliedLocal, &fresh))
                .await
                .map_err(|e| e.to_string())?;
            if revoked {
                // `snow user revoke` wrote the new CRL before the change was visible.
                self.trust.reload_crl().map_err(|e| e.to_string())?;
            }
        }
        for peer in &self.replicas {
            let cursor = ReplicationCursor::AckedBy(peer.clone());
            let acked = self.db.call(move |db| db.replication_seq(&cursor)).await.map_err(|e| e.to_string())?;
            if acked >= last {
                continue;
            }
            {
                let flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                if flight.get(peer).is_some_and(|(_, at, attempts)| at.elapsed() < push_retry(*attempts)) {
                    continue;
                }
            }
            let db = Arc::clone(ca);
            let changes = tokio::task::spawn_blocking(move || {
                db.lock().unwrap_or_else(|p| p.into_inner()).key_changes_since(acked, MAX_PUSH)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let Some(upto) = changes.last().map(|c| c.seq) else { continue };
            let mut update = Element::new(NS_KEYS, "update");
            for c in &changes {
                update.push_child(
                    Element::new(NS_KEYS, "item")
                        .with_attr("seq", c.seq.to_string())
                        .with_attr("jid", c.jid.clone())
                        .with_attr("status", c.status.as_str())
                        .with_attr("serial", c.serial_hex.clone())
                        .with_child(Element::new(NS_KEYS, "certificate").with_text(b64().encode(&c.der))),
                );
            }
            if let Ok(text) = std::fs::read(&self.crl) {
                if let Ok(blocks) = snow_crypto::pem::decode_all(&text, "crl") {
                    if let Some((_, der)) = blocks.into_iter().find(|(l, _)| l == "X509 CRL") {
                        update.push_child(Element::new(NS_KEYS, "crl").with_text(b64().encode(der)));
                    }
                }
            }
            let iq = Element::new(NS_CLIENT, "iq")
                .with_attr("type", "set")
                .with_attr("id", format!("keys-{peer}-{upto}"))
                .with_attr("from", router.domain().to_owned())
                .with_attr("to", peer.clone())
                .with_child(update);
            {
                let mut flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                let attempts = flight.get(peer).map_or(0, |f| f.2) + 1;
                flight.insert(peer.clone(), (upto, Instant::now(), attempts));
            }
            router.route(Origin::Server, iq).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn pushes_are_retried_soon_then_less_often() {
        let waits: Vec<u64> = (1..=8).map(|n| push_retry(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
