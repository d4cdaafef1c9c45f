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
            let el = req.iq;
            // The sender's JID, as the server established it.
            let Some(requester) = el.attr("from").and_then(Addr::parse).map(|a| a.bare()) else {
                return error_reply(el, Condition::BadRequest, Some("no sender"));
            };
            let Some(op) = req.payload.children().next() else {
                return error_reply(el, Condition::BadRequest, Some("an empty pubsub request"));
            };
            let r = Request { el, op, requester, db: &self.db };
            let kind = el.attr("type").unwrap_or("");
            let result = match (kind, req.payload.ns(), op.name()) {
                ("set", NS_PUBSUB, "subscribe") => r.subscribe(true).await,
                ("set", NS_PUBSUB, "unsubscribe") => r.subscribe(false).await,
                ("get", NS_PUBSUB, "subscriptions") => r.own_subscriptions().await,
                ("get", NS_PUBSUB_OWNER, "subscriptions") => r.subscribers().await,
                ("get", NS_PUBSUB, "items") => r.items().await,
                ("set", NS_PUBSUB, "publish") => r.publish(cx.router).await,
                _ => Err((Condition::FeatureNotImplemented, "this pubsub service does subscribe, items and publish")),
            };
            result.unwrap_or_else(|(condition, text)| error_reply(el, condition, Some(text)))
        })
    }
}

/// A pubsub request being answered, or why not.
type Answer = Result<Element, (Condition, &'static str)>;

struct Request<'a> {
    el: &'a Element,
    /// The operation: `<subscribe/>`, `<items/>`, `<publish/>`…
    op: &'a Element,
    requester: String,
    db: &'a Db,
}

fn db_error(e: snow_store::StoreError) -> (Condition, &'static str) {
    tracing::error!(error = %e, "pubsub store failed");
    (Condition::InternalServerError, "the pubsub store failed")
}

impl Request<'_> {
    /// The operation's node, if it is a valid alert node.
    fn node(&self) -> Result<String, (Condition, &'static str)> {
        match self.op.attr("node").filter(|n| valid_node(n)) {
            Some(n) => Ok(n.to_owned()),
            None => Err((Condition::ItemNotFound, "no such node (alert nodes are alerts/ANALYSIS/AREA)")),
        }
    }

    fn result(&self, payload: Element) -> Answer {
        Ok(iq_result(self.el, Some(payload)))
    }

    /// Subscribes or unsubscribes the requester's own bare JID (XEP-0060
    /// §6.1.3.3), at most [`MAX_SUBSCRIPTIONS`] nodes.
    async fn subscribe(&self, subscribe: bool) -> Answer {
        let node = self.node()?;
        let jid = self.op.attr("jid").and_then(Addr::parse).map(|a| a.bare());
        if jid.as_deref() != Some(self.requester.as_str()) {
            return Err((Condition::BadRequest, "subscribe your own bare JID"));
        }
        let (n, j) = (node.clone(), self.requester.clone());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let done = self
            .db
            .call(move |db| {
                if !subscribe {
                    return db.unsubscribe(&n, &j).map(|_| true);
                }
                if db.subscriptions_of(&j)?.len() >= MAX_SUBSCRIPTIONS && !db.subscribers(&n)?.contains(&j) {
                    return Ok(false);
                }
                db.subscribe(&n, &j, now).map(|_| true)
            })
            .await
            .map_err(db_error)?;
        if !done {
            return Err((Condition::ResourceConstraint, "too many subscriptions (at most 500)"));
        }
        tracing::info!(%node, subscribe, "pubsub subscription changed");
        let state = if subscribe { "subscribed" } else { "none" };
        self.result(
            Element::new(NS_PUBSUB, "pubsub").with_child(
                Element::new(NS_PUBSUB, "subscription")
                    .with_attr("node", node)
                    .with_attr("jid", self.requester.clone())
                    .with_attr("subscription", state),
            ),
        )
    }

    /// The requester's own subscriptions.
    async fn own_subscriptions(&self) -> Answer {
        let j = self.requester.clone();
        let nodes = self.db.call(move |db| db.subscriptions_of(&j)).await.map_err(db_error)?;
        let mut subs = Element::new(NS_PUBSUB, "subscriptions");
        for n in nodes {
            subs.push_child(
                Element::new(NS_PUBSUB, "subscription")
                    .with_attr("node", n)
                    .with_attr("jid", self.requester.clone())
                    .with_attr("subscription", "subscribed"),
            );
        }
        self.result(Element::new(NS_PUBSUB, "pubsub").with_child(subs))
    }

    /// A node's subscribers (the owner namespace), which a publisher needs
    /// to encrypt to.
    async fn subscribers(&self) -> Answer {
        let node = self.node()?;
        let n = node.clone();
        let jids = self.db.call(move |db| db.subscribers(&n)).await.map_err(db_error)?;
        let mut subs = Element::new(NS_PUBSUB_OWNER, "subscriptions").with_attr("node", node);
        for j in jids {
            subs.push_child(
                Element::new(NS_PUBSUB_OWNER, "subscription")
                    .with_attr("jid", j)
                    .with_attr("subscription", "subscribed"),
            );
        }
        self.result(Element::new(NS_PUBSUB_OWNER, "pubsub").with_child(subs))
    }

    /// A node's newest items, for its subscribers only.
    async fn items(&self) -> Answer {
        let node = self.node()?;
        let max =
            self.op.attr("max_items").and_then(|m| m.parse::<i64>().ok()).unwrap_or(MAX_ITEMS).clamp(1, MAX_ITEMS);
        let (n, j) = (node.clone(), self.requester.clone());
        let items = self
            .db
            .call(move |db| {
                let subscribed = db.subscribers(&n)?.contains(&j);
                Ok(if subscribed { Some(db.items(&n, max)?) } else { None })
            })
            .await
            .map_err(db_error)?
            .ok_or((Condition::Forbidden, "subscribe to the node to read its items"))?;
        let mut list = Element::new(NS_PUBSUB, "items").with_attr("node", node);
        for it in items {
            list.push_child(item_element(NS_PUBSUB, &it));
        }
        self.result(Element::new(NS_PUBSUB, "pubsub").with_child(list))
    }

    /// Stores one alert item and notifies the node's subscribers.
    async fn publish(&self, router: &Arc<Router>) -> Answer {
        let node = self.node()?;
        let items: Vec<&Element> = self.op.children().filter(|c| c.is(NS_PUBSUB, "item")).collect();
        let [item] = items.as_slice() else { return Err((Condition::BadRequest, "publish exactly one item")) };
        let Some(id) = item.attr("id").filter(|id| snow_core::alert::valid_id(id)) else {
            return Err((Condition::BadRequest, "the item needs an id of 1 to 64 of A-Z a-z 0-9 - _"));
        };
        let content: Vec<&Element> = item.children().collect();
        let [alert] = content.as_slice() else { return Err((Condition::BadRequest, "an item holds one alert")) };
        if alert.ns() != snow_core::alert::NS_ALERT {
            return Err((Condition::NotAcceptable, "this service takes urn:snow:alert:1 items only"));
        }
        let stored = PubsubItem {
            node: node.clone(),
            id: id.to_owned(),
            publisher: self.requester.clone(),
            payload: alert.to_xml(NS_CLIENT),
            published_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let (for_db, n) = (stored.clone(), node.clone());
        let subscribers = self
            .db
            .call(move |db| {
                db.publish_item(&for_db)?;
                db.subscribers(&n)
            })
            .await
            .map_err(db_error)?;
        tracing::info!(%node, subscribers = subscribers.len(), "pubsub item published");
        notify(router, &stored, (*alert).clone(), &subscribers).await;
        self.result(
            Element::new(NS_PUBSUB, "pubsub").with_child(
                Element::new(NS_PUBSUB, "publish")
                    .with_attr("node", node)
                    .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", id.to_owned())),
            ),
        )
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
