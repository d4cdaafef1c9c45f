//! Outbreak alerts on the wire (`urn:snow:alert:1`) and the pubsub
//! (XEP-0060) requests that carry them, shared by GPs' clients and the
//! lab's detection agent.
//!
//! An alert is an item on the node of its analysis and area
//! (`alerts/INFA/5401`) at the PO's pubsub service (the PO's domain). The
//! item's content is end-to-end encrypted (XML Encryption,
//! docs/architecture.md §6) to every subscriber of the node when it is
//! published, plus the publisher itself; its kind stays in clear on the
//! `<alert/>` element so the service can check who publishes what:
//!
//! ```xml
//! <iq type='set' to='po.example'>
//!   <pubsub xmlns='http://jabber.org/protocol/pubsub'>
//!     <publish node='alerts/INFA/5401'>
//!       <item id='INFA-5401-2026W47'>
//!         <alert xmlns='urn:snow:alert:1' kind='signal'><EncryptedData …/></alert>
//! </item></publish></pubsub></iq>
//!
//! decrypted content (issue 20: signed, then encrypted; crate::signed):
//!   <signed xmlns='urn:snow:signed:1' kind='alert' from='search@lab.example'
//!           ts='1763780000' nonce='32-HEX'>
//!     <to jid='1111111@po.example'/>…   (everyone it is encrypted to)
//!     <content>
//!       <detail xmlns='urn:snow:alert:1' id='INFA-5401-2026W47'
//!               kind='signal' analysis='INFA' area='municipality:5401'
//!               week='2026-W47' observed='12' threshold='7.53'
//!               algorithm='EARS_C2' series='search@lab.example/agent'
//!               author='search@lab.example' issued='1763780000'/>
//!     </content>
//!     <ds:Signature>…</ds:Signature>
//!   </signed>
//!   (signed kind: alert for a signal, confirmation, gp-alert for a GP's
//!    alert; detail kind: signal | confirmation | gp; observed: a count or
//!    <N under the disclosure threshold; confirms='ID' on a confirmation;
//!    <text/> holds a GP's text or comment, at most 2000 bytes)
//! ```
//!
//! Only the lab's detection agent publishes signals, with the signal's id.
//! A GP publishes confirmations and its own alerts without an id: the
//! service assigns it (`gp-…`, `c-…`) and says it in the result
//! (`<publish><item id/></publish>`); the detail then carries no id. A GP
//! may publish again with the id of an item it published (a replacement)
//! and retract its own items, nothing else.
//!
//! The service notifies each subscriber with
//! `<message from='po.example'><event xmlns='…pubsub#event'><items node=…>
//! <item id=… publisher=…><alert …/></item></items></event></message>`.
//!
//! A reader takes an item only through [`open_item`] (or [`received`]),
//! which shows nothing it has not verified: the content decrypts to
//! exactly one `<signed>`; its signature holds; its signed kind is the
//! clear kind's; its signer is the item's publisher (as the service
//! authenticated it) and names us among its recipients; it is not older
//! than [`Kind::max_age_secs`](crate::signed::Kind::max_age_secs); the
//! detail inside agrees with the item (kind, author = publisher, the
//! node's analysis and area, the id); the signer may sign that kind (a
//! signal: a lab's detection agent, `search@LAB` or `search.LAB`, whose
//! certificate is no GP's; a confirmation or GP's alert: a GP's
//! certificate); its nonce is taken for this item ([`holder`]: read
//! again at every listing, while the same signed alert under another item
//! is a replay); and the signer's certificate is the one the key directory
//! lists as valid now ([`crate::check_signer`]). The nonces are kept in
//! `alert-nonces` ([`open_nonces`]).

use std::sync::Mutex;

use snow_core::alert::{Alert, AlertKind, KIND_ATTR, MAX_TEXT, NS_ALERT};
use snow_core::nonce_cache::{NonceCache, NonceError};
use snow_core::stats::{normalize_analysis, Area, Count, IsoWeek, StatsError};
use snow_crypto::Identity;
use snow_xml::{Element, Node, NS_CLIENT, NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER};

use crate::signed::{self, Kind, Unverified};
use crate::{checked_certificate, key_entries, key_lookup, ClientError, IqClient};

fn bad(field: &'static str, reason: &str) -> StatsError {
    StatsError { field, reason: reason.into() }
}

/// The clear-text `<detail/>` of an alert (without `id` while it has none:
/// a GP's alert before the service assigned one).
pub fn detail_element(a: &Alert) -> Element {
    let mut el = Element::new(NS_ALERT, "detail")
        .with_attr("kind", a.kind.as_str())
        .with_attr("analysis", a.analysis.clone())
        .with_attr("area", a.area.to_string())
        .with_attr("week", a.week.to_string())
        .with_attr("author", a.author.clone())
        .with_attr("issued", a.issued.to_string());
    if !a.id.is_empty() {
        el.set_attr("id", a.id.clone());
    }
    if let Some(o) = a.observed {
        el.set_attr("observed", o.to_string());
    }
    if let Some(t) = a.threshold {
        el.set_attr("threshold", format!("{t:?}"));
    }
    if let Some(v) = &a.algorithm {
        el.set_attr("algorithm", v.clone());
    }
    if let Some(v) = &a.series {
        el.set_attr("series", v.clone());
    }
    if let Some(v) = &a.confirms {
        el.set_attr("confirms", v.clone());
    }
    if let Some(t) = &a.text {
        el.push_child(Element::new(NS_ALERT, "text").with_text(t.clone()));
    }
    el
}

/// Reads and checks the `<detail/>` of item `item_id`. A signal names its
/// id, which must be the item's; a GP's alert or confirmation may leave it
/// out (the service assigned the item's id), or name the item's.
pub fn parse_detail(el: &Element, item_id: &str) -> Result<Alert, StatsError> {
    if !el.is(NS_ALERT, "detail") {
        return Err(bad("alert", "expected <detail xmlns='urn:snow:alert:1'/>"));
    }
    let need = |name: &'static str| el.attr(name).ok_or_else(|| bad(name, "is missing"));
    let text = el.child(NS_ALERT, "text").map(|t| t.text());
    if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(bad("text", "is too long"));
    }
    let kind: AlertKind = need("kind")?.parse()?;
    let id = match (el.attr("id"), kind) {
        (Some(id), _) if id == item_id => id,
        (Some(_), _) => return Err(bad("id", "is not the item's")),
        (None, AlertKind::Signal) => return Err(bad("id", "is missing")),
        (None, _) => item_id,
    };
    let a = Alert {
        id: id.to_owned(),
        kind,
        analysis: need("analysis")?.to_owned(),
        area: need("area")?.parse()?,
        week: need("week")?.parse()?,
        observed: el.attr("observed").map(str::parse::<Count>).transpose()?,
        threshold: el
            .attr("threshold")
            .map(|t| t.parse::<f64>().map_err(|_| bad("threshold", "must be a number")))
            .transpose()?,
        algorithm: el.attr("algorithm").map(str::to_owned),
        series: el.attr("series").map(str::to_owned),
        author: need("author")?.to_owned(),
        issued: need("issued")?.parse().map_err(|_| bad("issued", "must be a number"))?,
        confirms: el.attr("confirms").map(str::to_owned),
        text,
    };
    a.validate()?;
    if a.algorithm.as_ref().is_some_and(|s| s.len() > 64) || a.series.as_ref().is_some_and(|s| s.len() > 3071) {
        return Err(bad("alert", "an attribute is too long"));
    }
    Ok(a)
}

/// Alert nonces held at once: every alert, confirmation and GP's alert
/// read within the window ([`Kind::max_age_secs`]), far more than a GP's
/// nodes keep.
pub const ALERT_NONCES: usize = 100_000;

/// Opens the nonce cache of alerts at `path`, one per identity and
/// program, beside its chats' (`alert-nonces`: the GP app's beside its
/// `app-nonces`, `snow alert`'s in the key store's directory beside
/// `chat-nonces`), with the alerts' clock window; processes sharing it are
/// safe (`snow_core::nonce_cache`).
pub fn open_nonces(path: &std::path::Path) -> Result<NonceCache, NonceError> {
    NonceCache::open(path, Kind::Alert.max_age_secs(), ALERT_NONCES, crate::unix_now())
}

/// The signed kind of each alert kind: each is accepted only as its own.
pub fn signed_kind(kind: AlertKind) -> Kind {
    match kind {
        AlertKind::Signal => Kind::Alert,
        AlertKind::Confirmation => Kind::Confirmation,
        AlertKind::Gp => Kind::GpAlert,
    }
}

/// The nonce holder of an item (`snow_core::nonce_cache`): a digest of its
/// node and id, since both come from the service in any form, while the
/// cache's lines take a short token.
pub fn holder(node: &str, item_id: &str) -> String {
    snow_crypto::cert::sha256_hex(format!("{}\n{}", node, item_id).as_bytes())
}

/// `<alert kind/>` with the detail signed by `identity` (of the alert's
/// kind, for `to`: the bare JIDs of `recipients`) at `now`, then
/// encrypted to `recipients` (DER certificates); the kind also in clear,
/// for the service.
pub fn sealed(
    a: &Alert,
    identity: &Identity,
    to: &[&str],
    recipients: &[&[u8]],
    now: i64,
) -> Result<Element, ClientError> {
    let detail = Node::Element(detail_element(a));
    let signed = signed::sign(signed_kind(a.kind), vec![detail], to, None, identity, now)?;
    let mut el = Element::new(NS_ALERT, "alert").with_attr(KIND_ATTR, a.kind.as_str()).with_child(signed);
    snow_crypto::e2e::encrypt_content(&mut el, NS_ALERT, recipients, snow_crypto::e2e::KeyTransport::default())?;
    Ok(el)
}

/// Decrypts an `<alert/>` with our key: the element with its content in
/// clear (a `<signed>`, for a Snow client). This says nothing of who
/// wrote it: show only what [`open_item`] accepts.
pub fn decrypt(item_id: &str, el: &Element, identity: &Identity) -> Result<Element, ClientError> {
    if !el.is(NS_ALERT, "alert") {
        let why = "not an urn:snow:alert:1 alert".to_owned();
        return Err(ClientError::BadAnswer { who: format!("alert {item_id}"), why });
    }
    let mut el = el.clone();
    // An alert goes to every subscriber of a node, often more than the 16
    // EncryptedKeys of a message: opened as a broadcast, which still tries
    // only the EncryptedKey naming our certificate (one RSA decryption).
    let policy = snow_crypto::e2e::DecryptPolicy::BROADCAST;
    snow_crypto::e2e::decrypt_content_with(&mut el, NS_ALERT, identity.key_pkcs8(), identity.certificate(), &policy)?;
    Ok(el)
}

/// Why an item is not shown.
#[derive(Debug, thiserror::Error)]
pub enum Dropped {
    /// We cannot read it: not encrypted to us (published before we
    /// subscribed), or not an alert. Counted, not shown one by one.
    #[error("alert {item}: {why}")]
    Unreadable { item: String, why: String },
    /// Decrypted, but not proven to be what it says: shown as the reason
    /// ("unverified message dropped: …"), never its content.
    #[error("unverified message dropped: {0}")]
    Unverified(Unverified),
}

/// An item that passed every check but the key directory's.
#[derive(Debug, Clone)]
pub struct Checked {
    pub alert: Alert,
    /// The signer's certificate (DER), for [`crate::check_signer`].
    pub signer_cert: Vec<u8>,
}

/// Opens `item` for `me` (our bare JID) with our key and checks it (module
/// doc), all but the key directory's word on the signer's certificate
/// ([`open_item`] asks it): taking its nonce in `nonces` for this item.
pub fn open(item: &Item, identity: &Identity, me: &str, nonces: &mut NonceCache, now: i64) -> Result<Checked, Dropped> {
    let clear = decrypt(&item.id, &item.payload, identity)
        .map_err(|e| Dropped::Unreadable { item: item.id.clone(), why: e.to_string() })?;
    let unverified = Dropped::Unverified;
    let Some(signed_el) = signed::only_signed(&clear) else { return Err(unverified(Unverified::NotSigned)) };
    let not_its = |why: &str| Unverified::NotItsItem(why.to_owned());
    // The kind in clear is the one the service checked against the
    // publisher: the signed kind must be its.
    let kind: AlertKind = item
        .payload
        .attr(KIND_ATTR)
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| unverified(not_its("its kind in clear is not an alert kind")))?;
    let expect = signed::Expect { kind: signed_kind(kind), sender: &item.publisher, me, answers: None };
    let accept = |o: &signed::Opened| {
        let a = detail_of(&o.content, &item.id)?;
        if a.kind != kind {
            return Err(not_its("the kind inside is not the kind the item was published as"));
        }
        if a.author != item.publisher {
            return Err(not_its("the author inside is not the item's publisher"));
        }
        if Alert::node(&a.analysis, &a.area) != item.node {
            return Err(not_its("the analysis and area inside are not the node's"));
        }
        may_sign(kind, &o.from, &o.signer_cert)?;
        Ok(a)
    };
    let (opened, alert) = signed::open_held(signed_el, &expect, &holder(&item.node, &item.id), nonces, now, accept)
        .map_err(unverified)?;
    Ok(Checked { alert, signer_cert: opened.signer_cert })
}

/// The one `<detail/>` in a signed alert's `<content>`, read as item
/// `item_id`'s.
fn detail_of(content: &Element, item_id: &str) -> Result<Alert, Unverified> {
    let malformed = |why: String| Unverified::Malformed(why);
    let mut detail = None;
    for n in content.nodes() {
        match n {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Element(e) if detail.is_none() => detail = Some(e),
            _ => return Err(malformed("the content is not one alert".into())),
        }
    }
    let detail = detail.ok_or_else(|| malformed("the content is not one alert".into()))?;
    parse_detail(detail, item_id).map_err(|e| match e.field {
        "id" => Unverified::NotItsItem(format!("the id inside {}", e.reason)),
        _ => malformed(format!("the alert inside: {e}")),
    })
}

/// Whether `signer` (a bare JID, with its certificate) may sign an alert
/// of `kind`: a signal only a lab's detection agent, named as the PO's
/// service names the signal publishers by default (`search@LAB`,
/// `search.LAB`), with an agent's certificate; a confirmation or a GP's
/// alert only a GP (a user's certificate). The service checks the
/// publisher already; this holds also against a service that does not,
/// or is configured otherwise.
fn may_sign(kind: AlertKind, signer: &str, signer_cert: &[u8]) -> Result<(), Unverified> {
    let refuse = |kind: &'static str, why: &'static str| {
        Err(Unverified::WrongSigner { signer: signer.chars().take(256).collect(), kind, why })
    };
    let gp = is_user_certificate(signer_cert, signer);
    match kind {
        AlertKind::Signal if gp => refuse("signal", "a GP's certificate signed it, not a lab's detection agent's"),
        AlertKind::Signal if !is_detection_agent(signer) => {
            refuse("signal", "only a lab's detection agent (search@LAB or search.LAB) signs signals")
        }
        AlertKind::Signal => Ok(()),
        AlertKind::Confirmation if !gp => refuse("confirmation", "only a GP confirms an alert"),
        AlertKind::Gp if !gp => refuse("GP's alert", "only a GP sends one"),
        AlertKind::Confirmation | AlertKind::Gp => Ok(()),
    }
}

/// A lab's detection agent by the name the PO's service gives signal
/// publishers by default: `search@LAB` (logged in like a user) or
/// `search.LAB` (a component), LAB a domain.
pub fn is_detection_agent(jid: &str) -> bool {
    let lab = match jid.split_once('@') {
        Some((local, domain)) => (local.eq_ignore_ascii_case("search")).then_some(domain),
        None => jid.get(..7).filter(|p| p.eq_ignore_ascii_case("search.")).map(|_| &jid[7..]),
    };
    lab.is_some_and(|d| d.parse::<snow_core::Domain>().is_ok())
}

/// Opens an item the service returned or pushed and takes it only if it
/// is what it says ([`open`], then the key directory: the signer's
/// certificate must be the one it lists as valid for the publisher now,
/// [`crate::check_signer`]). Nonces go to `nonces` ([`open_nonces`]).
pub async fn open_item(
    iq: &IqClient,
    item: &Item,
    identity: &Identity,
    ca_der: &[u8],
    nonces: &Mutex<NonceCache>,
) -> Result<Alert, Dropped> {
    let checked = open_checked(iq, item, identity, nonces)?;
    crate::check_signer(iq, &item.publisher, &checked.signer_cert, ca_der).await.map_err(Dropped::Unverified)?;
    Ok(checked.alert)
}

/// [`open`] as `iq`'s user, now; the cache's guard is let go before any
/// await.
fn open_checked(
    iq: &IqClient,
    item: &Item,
    identity: &Identity,
    nonces: &Mutex<NonceCache>,
) -> Result<Checked, Dropped> {
    let me = iq.jid().split('/').next().unwrap_or_default().to_owned();
    let mut cache = nonces.lock().unwrap_or_else(|p| p.into_inner());
    open(item, identity, &me, &mut cache, crate::unix_now())
}

fn pubsub_iq(kind: &str, service: &str, ns: &'static str, op: Element) -> Element {
    Element::new(NS_CLIENT, "iq")
        .with_attr("type", kind.to_owned())
        .with_attr("to", service.to_owned())
        .with_child(Element::new(ns, "pubsub").with_child(op))
}

/// Subscribes `jid` (our bare JID) to `node`.
pub fn subscribe_iq(service: &str, node: &str, jid: &str) -> Element {
    pubsub_iq(
        "set",
        service,
        NS_PUBSUB,
        Element::new(NS_PUBSUB, "subscribe").with_attr("node", node.to_owned()).with_attr("jid", jid.to_owned()),
    )
}

/// Unsubscribes `jid` (our bare JID) from `node`.
pub fn unsubscribe_iq(service: &str, node: &str, jid: &str) -> Element {
    pubsub_iq(
        "set",
        service,
        NS_PUBSUB,
        Element::new(NS_PUBSUB, "unsubscribe").with_attr("node", node.to_owned()).with_attr("jid", jid.to_owned()),
    )
}

/// The analysis (in any case: `infa` is INFA) and the area of an alert
/// series, as a GP types them: `5401` or `54` (alerts are per municipality
/// or county, never `all`).
pub fn series_of(analysis: &str, area: &str) -> Result<(String, Area), StatsError> {
    let analysis = normalize_analysis(analysis)?;
    let words =
        "must be a municipality (4 digits, e.g. 5401) or a county (2 digits, e.g. 54); alerts are not sent for all";
    match Area::parse_loose(area) {
        Ok(a @ (Area::Municipality(_) | Area::County(_))) => Ok((analysis, a)),
        // The wire form (`county:54`): the refusal says what to type.
        Err(e) if area.parse::<Area>().is_ok_and(|a| a != Area::All) => Err(e),
        _ => Err(bad("area", words)),
    }
}

/// The nodes a GP subscribes to for a series: a municipality's and its
/// county's (a signal for the county concerns the municipality too).
pub fn subscription_nodes(analysis: &str, area: &Area) -> Vec<String> {
    let mut nodes = vec![Alert::node(analysis, area)];
    if let Area::Municipality(m) = area {
        if let Some(county) = m.get(..2) {
            nodes.push(Alert::node(analysis, &Area::County(county.to_owned())));
        }
    }
    nodes
}

/// A GP's text or comment fits in an alert.
pub fn check_text(text: Option<&str>) -> Result<(), StatsError> {
    if text.is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(bad("text", &format!("is longer than {MAX_TEXT} bytes")));
    }
    Ok(())
}

/// A GP's confirmation of `original` by `me` (bare JID) at `now` (Unix
/// seconds), to publish on the same node; the service assigns its id.
pub fn confirmation(original: &Alert, me: &str, comment: Option<String>, now: i64) -> Alert {
    Alert {
        id: String::new(),
        kind: AlertKind::Confirmation,
        confirms: Some(original.id.clone()),
        text: comment,
        author: me.to_owned(),
        issued: now,
        observed: None,
        threshold: None,
        algorithm: None,
        series: None,
        ..original.clone()
    }
}

/// A GP's own alert for a series, this week; the service assigns its id.
pub fn gp_alert(analysis: String, area: Area, text: String, me: &str, now: i64) -> Alert {
    let today = time::OffsetDateTime::from_unix_timestamp(now).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    Alert {
        id: String::new(),
        kind: AlertKind::Gp,
        analysis,
        area,
        week: IsoWeek::of(today.date()),
        observed: None,
        threshold: None,
        algorithm: None,
        series: None,
        author: me.to_owned(),
        issued: now,
        confirms: None,
        text: Some(text),
    }
}

/// Asks for the nodes we subscribe to.
pub fn my_subscriptions_iq(service: &str) -> Element {
    pubsub_iq("get", service, NS_PUBSUB, Element::new(NS_PUBSUB, "subscriptions"))
}

/// Asks for the subscribers of `node`.
pub fn subscribers_iq(service: &str, node: &str) -> Element {
    pubsub_iq(
        "get",
        service,
        NS_PUBSUB_OWNER,
        Element::new(NS_PUBSUB_OWNER, "subscriptions").with_attr("node", node.to_owned()),
    )
}

/// Asks for the newest `max` items of `node`.
pub fn items_iq(service: &str, node: &str, max: u32) -> Element {
    pubsub_iq(
        "get",
        service,
        NS_PUBSUB,
        Element::new(NS_PUBSUB, "items").with_attr("node", node.to_owned()).with_attr("max_items", max.to_string()),
    )
}

/// Publishes `alert` (a sealed `<alert/>`) on `node`: as item `id` (a
/// signal, or the replacement of an item of ours), or with no id, for the
/// service to assign (a GP's new alert or confirmation).
pub fn publish_iq(service: &str, node: &str, id: Option<&str>, alert: Element) -> Element {
    let mut item = Element::new(NS_PUBSUB, "item").with_child(alert);
    if let Some(id) = id {
        item.set_attr("id", id);
    }
    pubsub_iq(
        "set",
        service,
        NS_PUBSUB,
        Element::new(NS_PUBSUB, "publish").with_attr("node", node.to_owned()).with_child(item),
    )
}

/// Retracts (deletes) item `id` of `node`, one we published; with
/// `notify`, subscribers are told (XEP-0060 §7.2).
pub fn retract_iq(service: &str, node: &str, id: &str, notify: bool) -> Element {
    let mut op = Element::new(NS_PUBSUB, "retract")
        .with_attr("node", node.to_owned())
        .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", id.to_owned()));
    if notify {
        op.set_attr("notify", "true");
    }
    pubsub_iq("set", service, NS_PUBSUB, op)
}

/// The item id in the result of a publication (XEP-0060 §7.1.2).
pub fn published_id(service: &str, reply: &Element) -> Result<String, ClientError> {
    check(service, reply)?;
    reply
        .child(NS_PUBSUB, "pubsub")
        .and_then(|p| p.child(NS_PUBSUB, "publish"))
        .and_then(|p| p.child(NS_PUBSUB, "item"))
        .and_then(|i| i.attr("id"))
        .filter(|id| snow_core::alert::valid_id(id))
        .map(str::to_owned)
        .ok_or_else(|| ClientError::BadAnswer {
            who: service.to_owned(),
            why: "the publication names no item id".into(),
        })
}

/// A refusal in `reply` as an error naming `who`.
fn check(who: &str, reply: &Element) -> Result<(), ClientError> {
    if reply.attr("type") == Some("result") {
        return Ok(());
    }
    let (condition, text) = snow_xml::stanza::error_of(reply);
    Err(ClientError::Refused { who: who.to_owned(), condition, text })
}

/// The `jid`s (or `node`s) of the subscribed `<subscription/>` elements
/// in a reply (in `<subscriptions/>`, or one alone after a subscribe).
pub fn read_subscriptions(service: &str, reply: &Element, attr: &str) -> Result<Vec<String>, ClientError> {
    check(service, reply)?;
    let Some(pubsub) = reply.children().next() else { return Ok(Vec::new()) };
    let listed = pubsub.children().filter(|c| c.name() == "subscriptions").flat_map(|s| s.children());
    Ok(pubsub
        .children()
        .chain(listed)
        .filter(|s| s.name() == "subscription" && s.attr("subscription") == Some("subscribed"))
        .filter_map(|s| s.attr(attr).map(str::to_owned))
        .collect())
}

/// One item as the service returned or pushed it.
#[derive(Debug, Clone)]
pub struct Item {
    pub node: String,
    pub id: String,
    /// The publisher's bare JID, as the service authenticated it.
    pub publisher: String,
    pub payload: Element,
}

fn items_of(list: &Element, ns: &str) -> Vec<Item> {
    let node = list.attr("node").unwrap_or_default().to_owned();
    list.children()
        .filter(|i| i.is(ns, "item"))
        .filter_map(|i| {
            Some(Item {
                node: node.clone(),
                id: i.attr("id")?.to_owned(),
                publisher: i.attr("publisher").unwrap_or_default().to_owned(),
                payload: i.children().next()?.clone(),
            })
        })
        .collect()
}

/// The items in the reply to [`items_iq`].
pub fn read_items(service: &str, reply: &Element) -> Result<Vec<Item>, ClientError> {
    check(service, reply)?;
    Ok(reply
        .child(NS_PUBSUB, "pubsub")
        .and_then(|p| p.child(NS_PUBSUB, "items"))
        .map(|l| items_of(l, NS_PUBSUB))
        .unwrap_or_default())
}

/// The items of a pubsub notification message, if it is one.
pub fn event_items(message: &Element) -> Vec<Item> {
    message
        .child(NS_PUBSUB_EVENT, "event")
        .and_then(|e| e.child(NS_PUBSUB_EVENT, "items"))
        .map(|l| items_of(l, NS_PUBSUB_EVENT))
        .unwrap_or_default()
}

/// What a publication reached.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The item's id: the signal's, or the one the service assigned
    /// (empty if nothing was published).
    pub id: String,
    /// Bare JIDs the alert was encrypted to.
    pub recipients: Vec<String>,
    /// Subscribers left out: no valid certificate in the key directory.
    pub skipped: Vec<(String, String)>,
    /// Those of `recipients` who are GPs (users), not agents: a lab's
    /// detection agent subscribes to the nodes it publishes on, and is no
    /// one a GP's "how many others read this" should count.
    pub gps: Vec<String>,
}

/// Whether `cert_der` is a user's certificate for `jid`: the CA issues a
/// user's with subject CN = the HPNR and xmppAddr `HPNR@domain`, an
/// agent's with CN = its JID (docs/architecture.md §6, certificates). Both
/// are clientAuth, so the extended key usage cannot tell them apart.
pub fn is_user_certificate(cert_der: &[u8], jid: &str) -> bool {
    let Some((local, _)) = jid.split_once('@') else { return false };
    let Ok(info) = snow_crypto::cert::CertInfo::from_der(cert_der) else { return false };
    let cn = info.subject.split(',').map(str::trim).find_map(|rdn| rdn.strip_prefix("CN="));
    cn == Some(local) && local.parse::<snow_core::Hpnr>().is_ok_and(|h| h.as_str() == local)
}

/// Publishes `alert` on its node at `service`, signed by `identity` (the
/// publisher's, for the recipients) and encrypted to the node's
/// subscribers and `also` (the publisher itself, the author of a
/// confirmed alert). Every certificate comes from our server's key
/// directory and is checked against `ca_der`; a subscriber without a valid
/// one is left out and reported. Nothing is published if nobody is left,
/// or if more are left than a signed payload names
/// ([`ClientError::TooManyRecipients`]).
/// A signal is published as its id; a GP's alert or confirmation with an
/// empty id is published without one and [`Published::id`] is the id the
/// service assigned (a non-empty id replaces our own item of that id).
pub async fn publish(
    r: &IqClient,
    service: &str,
    alert: &Alert,
    also: &[&str],
    identity: &Identity,
    ca_der: &[u8],
) -> Result<Published, ClientError> {
    let node = Alert::node(&alert.analysis, &alert.area);
    let mut jids = read_subscriptions(service, &r.request(subscribers_iq(service, &node)).await?, "jid")?;
    jids.extend(also.iter().map(|s| (*s).to_owned()));
    jids.sort();
    jids.dedup();
    let mut out = Published::default();
    let mut certs = Vec::new();
    for chunk in jids.chunks(50) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let entries = key_entries(&r.request(key_lookup(&refs)).await?)?;
        for jid in chunk {
            match checked_certificate(&entries, jid, ca_der) {
                Ok(c) => {
                    if is_user_certificate(&c, jid) {
                        out.gps.push(jid.clone());
                    }
                    certs.push(c);
                    out.recipients.push(jid.clone());
                }
                Err(e) => out.skipped.push((jid.clone(), e.to_string())),
            }
        }
    }
    if certs.is_empty() {
        return Ok(out);
    }
    if out.recipients.len() > signed::MAX_RECIPIENTS {
        return Err(ClientError::TooManyRecipients { node, count: out.recipients.len(), max: signed::MAX_RECIPIENTS });
    }
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let to: Vec<&str> = out.recipients.iter().map(String::as_str).collect();
    let item = sealed(alert, identity, &to, &refs, crate::unix_now())?;
    let id = (!alert.id.is_empty()).then_some(alert.id.as_str());
    out.id = published_id(service, &r.request(publish_iq(service, &node, id, item)).await?)?;
    Ok(out)
}

/// What a listing brought.
#[derive(Debug, Default)]
pub struct Received {
    /// The alerts that passed every check ([`open_item`]), newest first.
    pub alerts: Vec<(Item, Alert)>,
    /// Items we cannot read: published before we subscribed (so not
    /// encrypted to us), or not alerts.
    pub unreadable: usize,
    /// Items read but not shown, each with why: (node, item id, reason;
    /// shown as "unverified message dropped: {reason}").
    pub unverified: Vec<(String, String, Unverified)>,
}

impl Received {
    /// Items not shown, for whatever reason.
    pub fn not_shown(&self) -> usize {
        self.unreadable + self.unverified.len()
    }
}

/// Every alert on the nodes we subscribe to, each checked as
/// [`open_item`] does; the key directory is asked once per signer's
/// certificate. Items we cannot read and items that fail a check are left
/// out and counted, the latter with their reasons.
pub async fn received(
    r: &IqClient,
    service: &str,
    identity: &Identity,
    ca_der: &[u8],
    nonces: &Mutex<NonceCache>,
    per_node: u32,
) -> Result<Received, ClientError> {
    let nodes = read_subscriptions(service, &r.request(my_subscriptions_iq(service)).await?, "node")?;
    let mut out = Received::default();
    // Signers whose certificate the directory confirmed during this listing.
    let mut valid: Vec<(String, Vec<u8>)> = Vec::new();
    for node in nodes {
        for item in read_items(service, &r.request(items_iq(service, &node, per_node)).await?)? {
            let checked = match open_checked(r, &item, identity, nonces) {
                Ok(c) => c,
                Err(Dropped::Unreadable { .. }) => {
                    out.unreadable += 1;
                    continue;
                }
                Err(Dropped::Unverified(why)) => {
                    out.unverified.push((item.node.clone(), item.id.clone(), why));
                    continue;
                }
            };
            let signer = (item.publisher.clone(), checked.signer_cert);
            if !valid.contains(&signer) {
                if let Err(why) = crate::check_signer(r, &signer.0, &signer.1, ca_der).await {
                    out.unverified.push((item.node.clone(), item.id.clone(), why));
                    continue;
                }
                valid.push(signer);
            }
            out.alerts.push((item, checked.alert));
        }
    }
    out.alerts.sort_by(|a, b| b.1.issued.cmp(&a.1.issued).then_with(|| b.1.id.cmp(&a.1.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow_core::alert::AlertKind;
    use snow_core::stats::{Area, IsoWeek};

    #[test]
    fn detail_round_trips_and_refuses_bad_values() {
        let a = Alert {
            id: "INFA-5401-2026W47".into(),
            kind: AlertKind::Signal,
            analysis: "INFA".into(),
            area: Area::Municipality("5401".into()),
            week: IsoWeek::new(2026, 47).unwrap(),
            observed: Some(Count::Exact(12)),
            threshold: Some(7.53),
            algorithm: Some("EARS_C2".into()),
            series: Some("search@lab.example/agent".into()),
            author: "search@lab.example".into(),
            issued: 1_763_780_000,
            confirms: None,
            text: Some("a & b < c".into()),
        };
        let xml = detail_element(&a).to_xml("");
        let back = snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap();
        assert_eq!(parse_detail(&back, &a.id).unwrap(), a);
        let mut el = detail_element(&a);
        el.set_attr("analysis", "INFA' OR 1=1");
        assert_eq!(parse_detail(&el, &a.id).unwrap_err().field, "analysis");
        let mut el = detail_element(&a);
        el.set_attr("kind", "confirmation");
        assert_eq!(parse_detail(&el, &a.id).unwrap_err().field, "confirms");
        // A signal's id is its own and must be the item's.
        assert_eq!(parse_detail(&detail_element(&a), "INFA-5401-2026W46").unwrap_err().field, "id");
        let mut el = detail_element(&a);
        el.remove_attr("id");
        assert_eq!(parse_detail(&el, &a.id).unwrap_err().field, "id");
    }

    #[test]
    fn a_gps_alert_takes_the_id_the_service_assigned() {
        let a = Alert {
            id: String::new(),
            kind: AlertKind::Gp,
            analysis: "INFA".into(),
            area: Area::County("54".into()),
            week: IsoWeek::new(2026, 5).unwrap(),
            observed: None,
            threshold: None,
            algorithm: None,
            series: None,
            author: "1111111@po.example".into(),
            issued: 1,
            confirms: None,
            text: Some("cluster".into()),
        };
        let el = detail_element(&a);
        assert_eq!(el.attr("id"), None);
        assert_eq!(parse_detail(&el, "gp-0123456789abcdef").unwrap().id, "gp-0123456789abcdef");
        // Replacing our own item: the id inside is the item's.
        let named = Alert { id: "gp-0123456789abcdef".into(), ..a };
        assert_eq!(parse_detail(&detail_element(&named), "gp-0123456789abcdef").unwrap(), named);
        assert_eq!(parse_detail(&detail_element(&named), "gp-fedcba9876543210").unwrap_err().field, "id");
    }

    #[test]
    fn the_service_gets_the_kind_in_clear_and_says_the_assigned_id() {
        let reply = pubsub_iq(
            "result",
            "po.example",
            NS_PUBSUB,
            Element::new(NS_PUBSUB, "publish")
                .with_attr("node", "alerts/INFA/54")
                .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", "gp-01")),
        );
        assert_eq!(published_id("po.example", &reply).unwrap(), "gp-01");
        let iq = publish_iq("po.example", "alerts/INFA/54", None, Element::new(NS_ALERT, "alert"));
        let item = iq
            .child(NS_PUBSUB, "pubsub")
            .and_then(|p| p.child(NS_PUBSUB, "publish"))
            .and_then(|p| p.child(NS_PUBSUB, "item"));
        assert_eq!(item.map(|i| i.attr("id")), Some(None));
    }
}
