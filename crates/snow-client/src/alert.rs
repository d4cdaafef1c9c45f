//! Outbreak alerts on the wire (`urn:snow:alert:1`) and the pubsub
//! (XEP-0060) requests that carry them, shared by GPs' clients and the
//! lab's detection agent.
//!
//! An alert is an item on the node of its analysis and area
//! (`alerts/INFA/5401`) at the PO's pubsub service (the PO's domain). The
//! item's content is end-to-end encrypted (XML Encryption,
//! docs/architecture.md §6) to every subscriber of the node when it is published, plus the
//! publisher itself:
//!
//! ```xml
//! <iq type='set' to='po.example'>
//!   <pubsub xmlns='http://jabber.org/protocol/pubsub'>
//!     <publish node='alerts/INFA/5401'>
//!       <item id='INFA-5401-2026W47'>
//!         <alert xmlns='urn:snow:alert:1'><EncryptedData …/></alert>
//! </item></publish></pubsub></iq>
//!
//! decrypted content:
//!   <detail id='INFA-5401-2026W47' kind='signal' analysis='INFA'
//!           area='municipality:5401' week='2026-W47' observed='12'
//!           threshold='7.53' algorithm='EARS_C2'
//!           series='search@lab.example/agent' author='search@lab.example'
//!           issued='1763780000'/>
//!   (kind: signal | confirmation | gp; observed: a count or <N under the
//!    disclosure threshold; confirms='ID' on a confirmation; <text/> holds
//!    a GP's text or comment, at most 2000 bytes)
//! ```
//!
//! The service notifies each subscriber with
//! `<message from='po.example'><event xmlns='…pubsub#event'><items node=…>
//! <item id=… publisher=…><alert …/></item></items></event></message>`.

use snow_core::alert::{Alert, MAX_TEXT, NS_ALERT};
use snow_core::stats::{Count, StatsError};
use snow_crypto::Identity;
use snow_xml::{Element, NS_CLIENT, NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER};

use crate::{checked_certificate, key_entries, key_lookup, ClientError, IqClient};

fn bad(field: &'static str, reason: &str) -> StatsError {
    StatsError { field, reason: reason.into() }
}

/// The clear-text `<detail/>` of an alert.
pub fn detail_element(a: &Alert) -> Element {
    let mut el = Element::new(NS_ALERT, "detail")
        .with_attr("id", a.id.clone())
        .with_attr("kind", a.kind.as_str())
        .with_attr("analysis", a.analysis.clone())
        .with_attr("area", a.area.to_string())
        .with_attr("week", a.week.to_string())
        .with_attr("author", a.author.clone())
        .with_attr("issued", a.issued.to_string());
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

/// Reads and checks a `<detail/>`.
pub fn parse_detail(el: &Element) -> Result<Alert, StatsError> {
    if !el.is(NS_ALERT, "detail") {
        return Err(bad("alert", "expected <detail xmlns='urn:snow:alert:1'/>"));
    }
    let need = |name: &'static str| el.attr(name).ok_or_else(|| bad(name, "is missing"));
    let text = el.child(NS_ALERT, "text").map(|t| t.text());
    if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(bad("text", "is too long"));
    }
    let a = Alert {
        id: need("id")?.to_owned(),
        kind: need("kind")?.parse()?,
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

/// `<alert/>` with the detail encrypted to `recipients` (DER certificates).
pub fn sealed(a: &Alert, recipients: &[&[u8]]) -> Result<Element, ClientError> {
    let mut el = Element::new(NS_ALERT, "alert").with_child(detail_element(a));
    snow_crypto::e2e::encrypt_content(&mut el, NS_ALERT, recipients, snow_crypto::e2e::KeyTransport::default())?;
    Ok(el)
}

/// Opens an `<alert/>` with our key. The alert's id must be the item's.
pub fn open(item_id: &str, el: &Element, identity: &Identity) -> Result<Alert, ClientError> {
    let bad = |why: String| ClientError::BadAnswer { who: format!("alert {item_id}"), why };
    if !el.is(NS_ALERT, "alert") {
        return Err(bad("not an urn:snow:alert:1 alert".into()));
    }
    let mut el = el.clone();
    snow_crypto::e2e::decrypt_content(&mut el, NS_ALERT, identity.key_pkcs8(), identity.certificate())?;
    let detail = el.child(NS_ALERT, "detail").ok_or_else(|| bad("no <detail/> inside".into()))?;
    let a = parse_detail(detail).map_err(|e| bad(e.to_string()))?;
    if a.id != item_id {
        return Err(bad("the alert's id is not the item's".into()));
    }
    Ok(a)
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

/// Publishes `alert` (a sealed `<alert/>`) as item `id` on `node`.
pub fn publish_iq(service: &str, node: &str, id: &str, alert: Element) -> Element {
    pubsub_iq(
        "set",
        service,
        NS_PUBSUB,
        Element::new(NS_PUBSUB, "publish")
            .with_attr("node", node.to_owned())
            .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", id.to_owned()).with_child(alert)),
    )
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
    /// Bare JIDs the alert was encrypted to.
    pub recipients: Vec<String>,
    /// Subscribers left out: no valid certificate in the key directory.
    pub skipped: Vec<(String, String)>,
}

/// Publishes `alert` on its node at `service`, encrypted to the node's
/// subscribers and `also` (the publisher itself, the author of a
/// confirmed alert). Every certificate comes from our server's key
/// directory and is checked against `ca_der`; a subscriber without a valid
/// one is left out and reported. Nothing is published if nobody is left.
pub async fn publish(
    r: &IqClient,
    service: &str,
    alert: &Alert,
    also: &[&str],
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
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let item = sealed(alert, &refs)?;
    check(service, &r.request(publish_iq(service, &node, &alert.id, item)).await?)?;
    Ok(out)
}

/// Every alert on the nodes we subscribe to that we can read, newest
/// first. Items not encrypted to us (published before we subscribed), and
/// items whose author is not who the service says published them, are
/// left out and counted.
pub async fn received(
    r: &IqClient,
    service: &str,
    identity: &Identity,
    per_node: u32,
) -> Result<(Vec<(Item, Alert)>, usize), ClientError> {
    let nodes = read_subscriptions(service, &r.request(my_subscriptions_iq(service)).await?, "node")?;
    let mut got = Vec::new();
    let mut unreadable = 0;
    for node in nodes {
        for item in read_items(service, &r.request(items_iq(service, &node, per_node)).await?)? {
            match open(&item.id, &item.payload, identity) {
                Ok(a) if item.publisher == a.author => got.push((item, a)),
                _ => unreadable += 1,
            }
        }
    }
    got.sort_by(|a, b| b.1.issued.cmp(&a.1.issued).then_with(|| b.1.id.cmp(&a.1.id)));
    Ok((got, unreadable))
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
        assert_eq!(parse_detail(&back).unwrap(), a);
        let mut el = detail_element(&a);
        el.set_attr("analysis", "INFA' OR 1=1");
        assert_eq!(parse_detail(&el).unwrap_err().field, "analysis");
        let mut el = detail_element(&a);
        el.set_attr("kind", "confirmation");
        assert_eq!(parse_detail(&el).unwrap_err().field, "confirms");
    }
}
