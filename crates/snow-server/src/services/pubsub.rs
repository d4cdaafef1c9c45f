//! A publish-subscribe service (the part of XEP-0060 alerts need) at the
//! server's own domain: nodes per analysis and area (`alerts/INFA/5401`),
//! created when first used. GPs subscribe their bare JID; a publisher (the
//! lab's detection agent, or a GP) asks for the node's subscribers, encrypts
//! the alert to them end to end, and publishes it as an item; the service
//! stores the item and sends it to every subscriber in a notification
//! message (`type='normal'`, so offline subscribers get it at login).
//!
//! Policy: every entity the server has authenticated (its users and
//! components, and other sites' entities over s2s, which share this CA) may
//! subscribe itself, list a node's subscribers (a publisher needs them to
//! encrypt), and publish `urn:snow:alert:1` items; a node's items can be
//! read by its subscribers. The payloads are end-to-end encrypted: the
//! service sees node names, ids and who published, never the alert.

use std::sync::Arc;

use snow_store::PubsubItem;
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT, NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER};

use super::{Access, Cx, IqRequest, IqRoute, Service};
use crate::addr::Addr;
use crate::db::Db;
use crate::routing::{BoxFuture, Origin, Router};

/// Most items returned by one request.
const MAX_ITEMS: i64 = 200;
/// Most nodes one entity subscribes to.
const MAX_SUBSCRIPTIONS: usize = 500;

/// A node name: `alerts/ANALYSIS/AREA`, the analysis a code and the area a
/// county (2 digits), a municipality (4 digits) or `all`.
fn valid_node(n: &str) -> bool {
    let Some((analysis, area)) = n.strip_prefix("alerts/").and_then(|r| r.split_once('/')) else { return false };
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    snow_core::stats::check_analysis(analysis).is_ok() && (digits(area, 2) || digits(area, 4) || area == "all")
}

/// The alert service at the server's domain.
pub(crate) struct Pubsub {
    pub db: Db,
}

impl Service for Pubsub {
    fn name(&self) -> &'static str {
        "pubsub"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_PUBSUB]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[
            IqRoute::any(NS_PUBSUB, "pubsub", Access::Anyone),
            IqRoute::any(NS_PUBSUB_OWNER, "pubsub", Access::Anyone),
        ];
        ROUTES
    }
    fn iq<'a>(&'a self, cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move {
            let from = req.iq.attr("from").unwrap_or_default();
            handle(cx.router, &self.db, req.iq, req.payload, from).await
        })
    }
}

/// Answers a `<pubsub/>` IQ from `from` (the sender's JID, as the server
/// established it).
async fn handle(router: &Arc<Router>, db: &Db, el: &Element, payload: &Element, from: &str) -> Element {
    let Some(requester) = Addr::parse(from).map(|a| a.bare()) else {
        return error_reply(el, Condition::BadRequest, Some("no sender"));
    };
    let kind = el.attr("type").unwrap_or("");
    let Some(op) = payload.children().next() else {
        return error_reply(el, Condition::BadRequest, Some("an empty pubsub request"));
    };
    let node = op.attr("node").map(str::to_owned);
    let node_ok = || node.as_deref().filter(|n| valid_node(n)).map(str::to_owned);
    let bad_node =
        || error_reply(el, Condition::ItemNotFound, Some("no such node (alert nodes are alerts/ANALYSIS/AREA)"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let db_error = |e: snow_store::StoreError| {
        tracing::error!(error = %e, "pubsub store failed");
        error_reply(el, Condition::InternalServerError, None)
    };
    match (kind, payload.ns(), op.name()) {
        ("set", NS_PUBSUB, "subscribe") | ("set", NS_PUBSUB, "unsubscribe") => {
            let Some(node) = node_ok() else { return bad_node() };
            // Only one's own bare JID (XEP-0060 §6.1.3.3).
            let jid = op.attr("jid").and_then(Addr::parse).map(|a| a.bare());
            if jid.as_deref() != Some(requester.as_str()) {
                return error_reply(el, Condition::BadRequest, Some("subscribe your own bare JID"));
            }
            let subscribe = op.name() == "subscribe";
            let (n, j) = (node.clone(), requester.clone());
            let r = db
                .call(move |db| {
                    if !subscribe {
                        return db.unsubscribe(&n, &j);
                    }
                    if db.subscriptions_of(&j)?.len() >= MAX_SUBSCRIPTIONS && !db.subscribers(&n)?.contains(&j) {
                        return Ok(false);
                    }
                    db.subscribe(&n, &j, now).map(|_| true)
                })
                .await;
            match r {
                Err(e) => return db_error(e),
                Ok(false) if subscribe => {
                    return error_reply(
                        el,
                        Condition::ResourceConstraint,
                        Some("too many subscriptions (at most 500)"),
                    );
                }
                Ok(_) => {}
            }
            tracing::info!(%node, subscribe, "pubsub subscription changed");
            let state = if subscribe { "subscribed" } else { "none" };
            iq_result(
                el,
                Some(
                    Element::new(NS_PUBSUB, "pubsub").with_child(
                        Element::new(NS_PUBSUB, "subscription")
                            .with_attr("node", node)
                            .with_attr("jid", requester)
                            .with_attr("subscription", state),
                    ),
                ),
            )
        }
        ("get", NS_PUBSUB, "subscriptions") => {
            let j = requester.clone();
            match db.call(move |db| db.subscriptions_of(&j)).await {
                Ok(nodes) => {
                    let mut subs = Element::new(NS_PUBSUB, "subscriptions");
                    for n in nodes {
                        subs.push_child(
                            Element::new(NS_PUBSUB, "subscription")
                                .with_attr("node", n)
                                .with_attr("jid", requester.clone())
                                .with_attr("subscription", "subscribed"),
                        );
                    }
                    iq_result(el, Some(Element::new(NS_PUBSUB, "pubsub").with_child(subs)))
                }
                Err(e) => db_error(e),
            }
        }
        ("get", NS_PUBSUB_OWNER, "subscriptions") => {
            let Some(node) = node_ok() else { return bad_node() };
            let n = node.clone();
            match db.call(move |db| db.subscribers(&n)).await {
                Ok(jids) => {
                    let mut subs = Element::new(NS_PUBSUB_OWNER, "subscriptions").with_attr("node", node);
                    for j in jids {
                        subs.push_child(
                            Element::new(NS_PUBSUB_OWNER, "subscription")
                                .with_attr("jid", j)
                                .with_attr("subscription", "subscribed"),
                        );
                    }
                    iq_result(el, Some(Element::new(NS_PUBSUB_OWNER, "pubsub").with_child(subs)))
                }
                Err(e) => db_error(e),
            }
        }
        ("get", NS_PUBSUB, "items") => {
            let Some(node) = node_ok() else { return bad_node() };
            let max = op.attr("max_items").and_then(|m| m.parse::<i64>().ok()).unwrap_or(MAX_ITEMS).clamp(1, MAX_ITEMS);
            let (n, j) = (node.clone(), requester.clone());
            let r = db
                .call(move |db| {
                    let subscribed = db.subscribers(&n)?.contains(&j);
                    Ok(if subscribed { Some(db.items(&n, max)?) } else { None })
                })
                .await;
            match r {
                Ok(Some(items)) => {
                    let mut list = Element::new(NS_PUBSUB, "items").with_attr("node", node);
                    for it in items {
                        list.push_child(item_element(NS_PUBSUB, &it));
                    }
                    iq_result(el, Some(Element::new(NS_PUBSUB, "pubsub").with_child(list)))
                }
                Ok(None) => error_reply(el, Condition::Forbidden, Some("subscribe to the node to read its items")),
                Err(e) => db_error(e),
            }
        }
        ("set", NS_PUBSUB, "publish") => {
            let Some(node) = node_ok() else { return bad_node() };
            let items: Vec<&Element> = op.children().filter(|c| c.is(NS_PUBSUB, "item")).collect();
            let [item] = items.as_slice() else {
                return error_reply(el, Condition::BadRequest, Some("publish exactly one item"));
            };
            let Some(id) = item.attr("id").filter(|id| snow_core::alert::valid_id(id)) else {
                return error_reply(
                    el,
                    Condition::BadRequest,
                    Some("the item needs an id of 1 to 64 of A-Z a-z 0-9 - _"),
                );
            };
            let content: Vec<&Element> = item.children().collect();
            let [alert] = content.as_slice() else {
                return error_reply(el, Condition::BadRequest, Some("an item holds one alert"));
            };
            if alert.ns() != snow_core::alert::NS_ALERT {
                return error_reply(
                    el,
                    Condition::NotAcceptable,
                    Some("this service takes urn:snow:alert:1 items only"),
                );
            }
            let stored = PubsubItem {
                node: node.clone(),
                id: id.to_owned(),
                publisher: requester.clone(),
                payload: alert.to_xml(NS_CLIENT),
                published_at: now,
            };
            let for_db = stored.clone();
            let n = node.clone();
            let subscribers = match db
                .call(move |db| {
                    db.publish_item(&for_db)?;
                    db.subscribers(&n)
                })
                .await
            {
                Ok(s) => s,
                Err(e) => return db_error(e),
            };
            tracing::info!(%node, subscribers = subscribers.len(), "pubsub item published");
            notify(router, &stored, (*alert).clone(), &subscribers).await;
            iq_result(
                el,
                Some(
                    Element::new(NS_PUBSUB, "pubsub").with_child(
                        Element::new(NS_PUBSUB, "publish")
                            .with_attr("node", node)
                            .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", id.to_owned())),
                    ),
                ),
            )
        }
        _ => error_reply(
            el,
            Condition::FeatureNotImplemented,
            Some("this pubsub service does subscribe, items and publish"),
        ),
    }
}

/// `<item id publisher>payload</item>` in `ns`.
fn item_element(ns: &'static str, it: &PubsubItem) -> Element {
    let mut e = Element::new(ns, "item").with_attr("id", it.id.clone()).with_attr("publisher", it.publisher.clone());
    match snow_xml::parse_document(it.payload.as_bytes(), snow_xml::Limits::default()) {
        Ok(p) => e.push_child(p),
        Err(err) => tracing::error!(error = %err, node = %it.node, "a stored pubsub item does not parse"),
    }
    e
}

/// Sends the item to every subscriber, through the usual message routing
/// (offline storage for those not online, s2s for other sites' users).
async fn notify(router: &Arc<Router>, it: &PubsubItem, payload: Element, subscribers: &[String]) {
    let service = router.domain().to_owned();
    let item = Element::new(NS_PUBSUB_EVENT, "item")
        .with_attr("id", it.id.clone())
        .with_attr("publisher", it.publisher.clone())
        .with_child(payload);
    let event = Element::new(NS_PUBSUB_EVENT, "event")
        .with_child(Element::new(NS_PUBSUB_EVENT, "items").with_attr("node", it.node.clone()).with_child(item));
    for jid in subscribers {
        let msg = Element::new(NS_CLIENT, "message")
            .with_attr("from", service.clone())
            .with_attr("to", jid.clone())
            .with_attr("type", "normal")
            .with_child(event.clone());
        router.route(Origin::Server, msg).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_names() {
        assert!(super::valid_node("alerts/INFA/5401"));
        assert!(super::valid_node("alerts/SARS2/54") && super::valid_node("alerts/RSV/all"));
        assert!(!super::valid_node("alerts/"));
        assert!(!super::valid_node("alerts/INFA/540") && !super::valid_node("alerts/infa/5401"));
        assert!(!super::valid_node("alerts/INFA/5401/x"));
        assert!(!super::valid_node("other/INFA"));
        assert!(!super::valid_node("alerts/INFA 5401"));
    }
}
