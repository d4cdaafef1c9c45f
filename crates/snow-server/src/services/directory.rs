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
//!     <certificate>base64 DER</certificate></item>
//!   <crl>base64 DER</crl></query></iq>
//! ```
//!
//! `<crl>` is this server's current CRL, when it has one: the client
//! checks each certificate against it and its CA before it encrypts.
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
//! The id is `keys-DOMAIN-SEQ-CRL`: the last change it carries (or the
//! replica's position) and the CRL number of the CRL it carries (0: none).
//! A new CRL alone (a server or agent revoked, `snow ca crl`) is pushed
//! too, without changes.
//!
//! A replica takes a push only from its `[s2s] master`, over an
//! authenticated s2s link (`Origin::Remote`), and only whole: every
//! certificate must be issued by the site CA, be a user's or an agent's,
//! and name exactly the entry's JID with the entry's serial; the CRL must
//! pass `TrustStore::install_crl` (signed by the site CA, its issuer, a
//! greater CRL number, current). Anything else refuses the whole push
//! (nothing applied), logged with the count of refusals so far
//! (`TrustStats::pushes_refused`).

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
use crate::trust::{Count, CrlChange, TrustStore};

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
    /// Pushes in flight, by peer.
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// A push not acknowledged yet.
struct InFlight {
    /// The CRL number it carries.
    crl: i64,
    /// Last sent at, and how many times without an acknowledgement.
    at: Instant,
    attempts: u32,
}

/// Where a replica's acknowledged CRL number is kept: a replication
/// cursor of its own (a domain has no ':').
fn crl_cursor(peer: &str) -> ReplicationCursor {
    ReplicationCursor::AckedBy(format!("crl:{peer}"))
}

/// A CRL number as a replication position (our CA counts from 1; a larger
/// number than fits counts as the largest).
fn crl_position(n: &x509_parser::num_bigint::BigUint) -> i64 {
    match n.to_u64_digits().as_slice() {
        [] => 0,
        [one] => i64::try_from(*one).unwrap_or(i64::MAX),
        _ => i64::MAX,
    }
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
                Event::IqReply { origin: Origin::Remote(domain), stanza }
                    if stanza.attr("id").is_some_and(|id| id.starts_with(&format!("keys-{domain}-"))) =>
                {
                    // A push failed: it is sent again later. A replica that
                    // refused it says why; one that cannot be reached is
                    // only noted.
                    let error = stanza.children().find(|c| c.name() == "error");
                    let condition = error.and_then(|e| e.children().find(|c| c.name() != "text")).map(|c| c.name());
                    let text = error.and_then(|e| e.children().find(|c| c.name() == "text")).map(|t| t.text());
                    let (condition, text) = (condition.unwrap_or("?"), text.as_deref().unwrap_or(""));
                    if condition.starts_with("remote-server-") {
                        tracing::debug!(replica = %domain, condition, "a key directory push could not be delivered");
                    } else {
                        tracing::warn!(replica = %domain, condition, text, "the replica refused a key directory push");
                    }
                    Handled::Done
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
        // The CRL goes with the answer: clients check revocation
        // themselves against their CA (issue 17 item 6). Read on the
        // blocking pool with the entries.
        let crl_path = self.crl.clone();
        let found = self
            .db
            .call(move |db| {
                let found = jids.iter().map(|j| Ok((j.clone(), db.directory_entry(j)?))).collect::<Result<Vec<_>, _>>();
                found.map(|f| (f, crl_der(&crl_path)))
            })
            .await;
        let Ok((found, crl)) = found else { return error_reply(iq, Condition::InternalServerError, None) };
        let mut q = Element::new(NS_KEYS, "query");
        for (jid, entry) in found {
            let mut item = Element::new(NS_KEYS, "item").with_attr("jid", jid);
            match entry {
                Some(e) => {
                    // The CRL in force has the last word: a certificate it
                    // revokes is revoked, whatever the feed said so far.
                    let revoked = e.status.is_valid() && self.trust.site_revokes_serial_hex(&e.serial_hex);
                    item.set_attr("status", if revoked { "revoked" } else { e.status.as_str() });
                    item.set_attr("serial", e.serial_hex.clone());
                    // A revoked certificate is reported, not served.
                    if e.status.is_valid() && !revoked {
                        item.push_child(Element::new(NS_KEYS, "certificate").with_text(b64().encode(&e.der)));
                    }
                }
                None => item.set_attr("status", "unknown"),
            }
            q.push_child(item);
        }
        if let Some(der) = crl {
            q.push_child(Element::new(NS_KEYS, "crl").with_text(b64().encode(der)));
        }
        iq_result(iq, Some(q))
    }

    /// Replica side: applies a push from the master, whole or not at all.
    async fn apply_push(&self, from_domain: &str, iq: &Element, update: &Element) -> Element {
        if self.master.as_deref() != Some(from_domain) {
            let why = format!(
                "{from_domain} is not this server's master ([s2s] master = {})",
                self.master.as_deref().unwrap_or("none")
            );
            return self.refuse(
                iq,
                from_domain,
                Condition::Forbidden,
                "this server does not replicate keys from you",
                &why,
            );
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
                None => {
                    return self.refuse(
                        iq,
                        from_domain,
                        Condition::BadRequest,
                        "malformed key change",
                        "a malformed item",
                    )
                }
            }
            if changes.len() > MAX_PUSH {
                let text = "too many key changes in one push";
                return self.refuse(iq, from_domain, Condition::BadRequest, text, text);
            }
        }
        // Every certificate is checked against the CA before anything is applied.
        for c in &changes {
            if let Err(why) = self.trust.check_directory_certificate(&c.der, &c.jid, &c.serial_hex) {
                let why = format!("the certificate for {} (change {}): {why}", c.jid, c.seq);
                return self.refuse(iq, from_domain, Condition::NotAcceptable, &why, &why);
            }
        }
        changes.sort_by_key(|c| c.seq);
        let crl = match update.child(NS_KEYS, "crl").map(|c| b64().decode(c.text().trim())) {
            Some(Ok(der)) => Some(der),
            Some(Err(_)) => {
                return self.refuse(iq, from_domain, Condition::BadRequest, "malformed CRL", "a malformed CRL")
            }
            None => None,
        };
        if let Some(der) = crl {
            match self.trust.install_crl(&der) {
                Ok(CrlChange::Installed(n)) => {
                    tracing::info!(master = from_domain, crl_number = %n, "pushed CRL in force")
                }
                Ok(CrlChange::Unchanged) => {}
                Err(e) => {
                    let why = format!("the CRL is refused: {e}");
                    return self.refuse(iq, from_domain, Condition::NotAcceptable, &why, &why);
                }
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

    /// A refused push: counted, logged with the count so far, answered.
    fn refuse(&self, iq: &Element, from: &str, condition: Condition, text: &str, why: &str) -> Element {
        let n = self.trust.count(Count::PushRefused);
        tracing::warn!(from, refused = n, "key directory push refused (nothing applied): {why}");
        error_reply(iq, condition, Some(text))
    }

    /// Master side: an IQ result for one of our pushes (true if it was one).
    async fn acknowledged(&self, from_domain: &str, id: &str) -> bool {
        let Some(rest) = id.strip_prefix(&format!("keys-{from_domain}-")) else { return false };
        let (upto, crl) = rest.split_once('-').unwrap_or((rest, "0"));
        let (Ok(upto), Ok(crl)) = (upto.parse::<i64>(), crl.parse::<i64>()) else { return false };
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(from_domain);
        let (cursor, crl_cursor) = (ReplicationCursor::AckedBy(from_domain.to_owned()), crl_cursor(from_domain));
        let saved = self
            .db
            .call(move |db| {
                db.set_replication_seq(&cursor, upto)?;
                if crl > db.replication_seq(&crl_cursor)? {
                    db.set_replication_seq(&crl_cursor, crl)?;
                }
                Ok::<_, snow_store::StoreError>(())
            })
            .await;
        if let Err(e) = saved {
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

    /// Brings the directory up to date with the CA database once, before
    /// the server accepts anyone: a server that has started knows every
    /// certificate issued before it started (a first lookup or contact
    /// request does not race the replication loop's first step).
    pub async fn catch_up(&self) {
        let Some(ca_db_path) = self.ca_db.clone() else { return };
        let ca = match tokio::task::spawn_blocking(move || snow_store::CaDb::open(&ca_db_path)).await {
            Ok(Ok(db)) => Arc::new(Mutex::new(db)),
            // The replication loop says why, and keeps trying.
            _ => return,
        };
        if let Err(e) = self.apply_local(&ca).await {
            tracing::error!(error = %e, "key directory: cannot read the CA database at startup");
        }
    }

    /// The CA database's changes since the last applied, into the directory
    /// (and the CRL reloaded after a revocation).
    async fn apply_local(&self, ca: &Arc<Mutex<snow_store::CaDb>>) -> Result<i64, String> {
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
                // The revocation's CRL, written before or soon after the
                // change (the file watcher catches a later one).
                self.trust.reload_crl().map_err(|e| e.to_string())?;
            }
        }
        Ok(last)
    }

    async fn replicate_once(&self, router: &Arc<Router>, ca: &Arc<Mutex<snow_store::CaDb>>) -> Result<(), String> {
        let last = self.apply_local(ca).await?;
        // The CRL in force goes with every push; a new one is pushed alone.
        let crl = self.trust.site_crl();
        let crl_number = crl.as_ref().map_or(0, |(_, n)| crl_position(n));
        for peer in &self.replicas {
            let (cursor, crl_cursor) = (ReplicationCursor::AckedBy(peer.clone()), crl_cursor(peer));
            let (acked, crl_acked) = self
                .db
                .call(move |db| {
                    Ok::<_, snow_store::StoreError>((db.replication_seq(&cursor)?, db.replication_seq(&crl_cursor)?))
                })
                .await
                .map_err(|e| e.to_string())?;
            if acked >= last && crl_acked >= crl_number {
                continue;
            }
            {
                let flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                // Waiting for an acknowledgement, unless a newer CRL is to go.
                if flight.get(peer).is_some_and(|f| f.at.elapsed() < push_retry(f.attempts) && f.crl >= crl_number) {
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
            let upto = changes.last().map_or(acked, |c| c.seq);
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
            if let Some((der, _)) = &crl {
                update.push_child(Element::new(NS_KEYS, "crl").with_text(b64().encode(der)));
            }
            let iq = Element::new(NS_CLIENT, "iq")
                .with_attr("type", "set")
                .with_attr("id", format!("keys-{peer}-{upto}-{crl_number}"))
                .with_attr("from", router.domain().to_owned())
                .with_attr("to", peer.clone())
                .with_child(update);
            {
                let mut flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                let attempts = flight.get(peer).map_or(0, |f| f.attempts) + 1;
                flight.insert(peer.clone(), InFlight { crl: crl_number, at: Instant::now(), attempts });
            }
            router.route(Origin::Server, iq).await;
        }
        Ok(())
    }
}

/// The DER of the CRL in the PEM file at `path` (the one this server
/// uses), if there is one.
fn crl_der(path: &std::path::Path) -> Option<Vec<u8>> {
    let text = std::fs::read(path).ok()?;
    let blocks = snow_crypto::pem::decode_all(&text, "crl").ok()?;
    blocks.into_iter().find(|(l, _)| l == "X509 CRL").map(|(_, der)| der)
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
