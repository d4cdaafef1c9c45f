//! A publish-subscribe service (the part of XEP-0060 alerts need) at the
//! server's own domain: nodes per analysis and area (`alerts/INFA/5401`).
//! GPs subscribe their bare JID; a publisher (the lab's detection agent, or
//! a GP) asks for the node's subscribers, encrypts the alert to them end to
//! end, and publishes it as an item; the service stores the item and sends
//! it to every subscriber in a notification message (`type='normal'`, so
//! offline subscribers get it at login).
//!
//! Roles (docs/architecture.md §3, §6; `[pubsub]`):
//! - A node exists for every `[pubsub] analyses` code and every area of
//!   `[pubsub] areas` (every well-formed one when empty) and `all`; any
//!   other node is `item-not-found`.
//! - Every item is one `<alert xmlns='urn:snow:alert:1' kind='…'/>`; the
//!   kind is in clear (the content is end-to-end encrypted), else
//!   `not-acceptable`. Only the signal publishers (`[pubsub]
//!   signal_publishers`, default `search@R` and `search.R` for each
//!   `[s2s] replicas` R)
//!   publish `signal`s, each only for its analyses and under the signal's
//!   id (`INFA-5401-2026W47`), and nothing else; everyone else publishes
//!   only `confirmation` and `gp` (else `forbidden`).
//! - A GP publishes without an item id and the service assigns it
//!   (`gp-…`, `c-…`); a GP's id is accepted only for an item it published
//!   (a replacement), else `not-acceptable`. Nobody replaces or retracts an
//!   item another published (`forbidden`).
//! - A node keeps `max_items_per_publisher` items of one publisher (its own
//!   oldest expire) and `max_items_per_node` in all (the oldest expire); an
//!   item is at most `max_item_bytes` (else `resource-constraint`); each
//!   publisher has a token bucket of publications (`policy-violation` when
//!   empty). Nodes are not created by anyone: they are fixed by the
//!   configuration, so there is no quota of nodes per owner.
//! - A subscription is changed by its subscriber, or by a node owner
//!   (`[pubsub] owners`, pubsub#owner); anyone else is refused. A node's
//!   items are read by its subscribers; its subscriber list by anyone
//!   authenticated (a publisher encrypts to it).
//!
//! The service sees node names, ids, kinds and who published, never the
//! alert; the reader verifies the signed alert inside (issue 20: signed by
//! the publisher for the reader, of the clear kind, a signal by a lab's
//! agent and a GP's item by a GP, its nonce bound to the item, the
//! signer's certificate the key directory's) and that the kind, author
//! and node inside match (`snow_client::alert::open_item`).

use std::collections::HashMap;
use std::sync::Arc;

use snow_core::alert::{Alert, AlertKind, KIND_ATTR, NS_ALERT};
use snow_core::stats::Area;
use snow_store::server_db::{ItemCaps, Publication, Retraction};
use snow_store::PubsubItem;
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT, NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER};

use super::{Access, Cx, IqRequest, IqRoute, Service};
use crate::addr::Addr;
use crate::config::PubsubSettings;
use crate::db::Db;
use crate::limits::{Count, LimitCounters, Limited, RateLimiter, Verdict};
use crate::routing::{BoxFuture, Origin, Router};

/// XEP-0060's application-specific error conditions.
const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// Most items returned by one request.
const MAX_ITEMS: i64 = 200;
/// Most nodes one entity subscribes to.
const MAX_SUBSCRIPTIONS: usize = 500;
/// Which publication rate applies to a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rate {
    /// `[pubsub] publish_burst`, `publish_per_hour`.
    Gp,
    /// `[pubsub] signal_publish_burst`, `signal_publish_per_hour`.
    Signal,
}

/// Who may do what, from `[pubsub]`.
struct Policy {
    analyses: Vec<String>,
    /// Counties and municipalities with nodes; empty: every one.
    areas: Vec<String>,
    /// Bare JID → the analyses it signals.
    signal_publishers: HashMap<String, Vec<String>>,
    owners: Vec<String>,
    caps: ItemCaps,
    /// Largest item, bytes as stored.
    max_item_bytes: usize,
}

impl Policy {
    fn node_exists(&self, analysis: &str, area: &Area) -> bool {
        if !self.analyses.iter().any(|a| a == analysis) {
            return false;
        }
        match area {
            _ if self.areas.is_empty() => true,
            Area::All => true,
            Area::Municipality(m) => self.areas.contains(m),
            Area::County(c) => self.areas.iter().any(|a| a.starts_with(c.as_str())),
        }
    }
}

/// The alert service at the server's domain.
pub(crate) struct Pubsub {
    db: Db,
    policy: Policy,
    /// Publications per publisher, for GPs and for the signal publishers.
    gp_rate: RateLimiter,
    signal_rate: RateLimiter,
    counters: Arc<LimitCounters>,
}

/// A bare JID as routing writes it (domain in lower case), or as given.
fn normalized(jid: &str) -> String {
    Addr::parse(jid).map(|a| a.bare()).unwrap_or_else(|| jid.to_owned())
}

impl Pubsub {
    /// The service with `[pubsub]` and the PO's `[s2s] replicas` (the
    /// default signal publishers).
    pub fn new(db: Db, settings: &PubsubSettings, replicas: &[String], counters: Arc<LimitCounters>) -> Self {
        let signal_publishers: HashMap<String, Vec<String>> =
            settings.signal_publishers(replicas).into_iter().map(|(jid, a)| (normalized(&jid), a)).collect();
        let mut who: Vec<&String> = signal_publishers.keys().collect();
        who.sort();
        tracing::info!(signal_publishers = ?who, analyses = ?settings.node_analyses(), "pubsub: alert nodes and who signals on them");
        Pubsub {
            db,
            policy: Policy {
                analyses: settings.node_analyses(),
                areas: settings.areas.clone(),
                signal_publishers,
                owners: settings.owners.iter().map(|o| normalized(o)).collect(),
                caps: ItemCaps {
                    per_node: i64::from(settings.max_items_per_node),
                    per_publisher: i64::from(settings.max_items_per_publisher),
                },
                max_item_bytes: settings.max_item_bytes,
            },
            gp_rate: publications(settings.publish_burst, settings.publish_per_hour, &counters),
            signal_rate: publications(settings.signal_publish_burst, settings.signal_publish_per_hour, &counters),
            counters,
        }
    }

    /// Takes one publication of `jid` at `rate`; false when it has none left.
    fn admit(&self, jid: &str, rate: Rate) -> bool {
        let limiter = if rate == Rate::Signal { &self.signal_rate } else { &self.gp_rate };
        limiter.check(jid) == Verdict::Pass
    }
}

/// A publication rate: `burst` at once, `per_hour` sustained.
fn publications(burst: u32, per_hour: u32, counters: &Arc<LimitCounters>) -> RateLimiter {
    let rate = f64::from(per_hour.max(1)) / 3600.0;
    RateLimiter::new(Limited::Publisher, rate, f64::from(burst.max(1)), Arc::clone(counters))
}

impl Service for Pubsub {
    fn name(&self) -> &'static str {
        "pubsub"
    }
    fn features(&self) -> &'static [&'static str] {
        &[
            NS_PUBSUB,
            "http://jabber.org/protocol/pubsub#publish",
            "http://jabber.org/protocol/pubsub#retract-items",
            "http://jabber.org/protocol/pubsub#subscribe",
            "http://jabber.org/protocol/pubsub#retrieve-items",
            "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
            "http://jabber.org/protocol/pubsub#manage-subscriptions",
        ]
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
            let r = Request { el, op, requester, db: &self.db, service: self };
            let kind = el.attr("type").unwrap_or("");
            let result = match (kind, req.payload.ns(), op.name()) {
                ("set", NS_PUBSUB, "subscribe") => r.subscribe(true).await,
                ("set", NS_PUBSUB, "unsubscribe") => r.subscribe(false).await,
                ("get", NS_PUBSUB, "subscriptions") => r.own_subscriptions().await,
                ("get", NS_PUBSUB_OWNER, "subscriptions") => r.subscribers().await,
                ("set", NS_PUBSUB_OWNER, "subscriptions") => r.manage_subscriptions().await,
                ("get", NS_PUBSUB, "items") => r.items().await,
                ("set", NS_PUBSUB, "publish") => r.publish(cx.router).await,
                ("set", NS_PUBSUB, "retract") => r.retract(cx.router).await,
                _ => Err(Refused::new(
                    Condition::FeatureNotImplemented,
                    "this pubsub service does subscribe, items, publish and retract",
                )),
            };
            result.unwrap_or_else(|r| r.reply(el))
        })
    }
}

/// Why a request is refused: the stanza error, its text, and XEP-0060's
/// application-specific condition if one applies.
struct Refused {
    condition: Condition,
    text: &'static str,
    pubsub_error: Option<&'static str>,
}

impl Refused {
    fn new(condition: Condition, text: &'static str) -> Self {
        Refused { condition, text, pubsub_error: None }
    }
    fn with(mut self, pubsub_error: &'static str) -> Self {
        self.pubsub_error = Some(pubsub_error);
        self
    }
    fn reply(self, el: &Element) -> Element {
        let mut reply = error_reply(el, self.condition, Some(self.text));
        if let (Some(name), Some(err)) = (self.pubsub_error, reply.child_mut(NS_CLIENT, "error")) {
            err.push_child(Element::new(NS_PUBSUB_ERRORS, name));
        }
        reply
    }
}

/// A pubsub request being answered, or why not.
type Answer = Result<Element, Refused>;

struct Request<'a> {
    el: &'a Element,
    /// The operation: `<subscribe/>`, `<items/>`, `<publish/>`…
    op: &'a Element,
    requester: String,
    db: &'a Db,
    service: &'a Pubsub,
}

fn db_error(e: snow_store::StoreError) -> Refused {
    tracing::error!(error = %e, "pubsub store failed");
    Refused::new(Condition::InternalServerError, "the pubsub store failed")
}

/// The node of an operation: its name, analysis and area.
struct Node {
    name: String,
    analysis: String,
    area: Area,
}

impl Request<'_> {
    /// The operation's node, if it exists: a well-formed name of a
    /// configured analysis and area.
    fn node(&self) -> Result<Node, Refused> {
        let name = self.op.attr("node").unwrap_or_default();
        match Alert::parse_node(name) {
            Some((analysis, area)) if self.service.policy.node_exists(analysis, &area) => {
                Ok(Node { name: name.to_owned(), analysis: analysis.to_owned(), area })
            }
            _ => Err(Refused::new(
                Condition::ItemNotFound,
                "no such node (alert nodes are alerts/ANALYSIS/AREA for the configured analyses and areas)",
            )),
        }
    }

    fn result(&self, payload: Element) -> Answer {
        Ok(iq_result(self.el, Some(payload)))
    }

    fn is_owner(&self) -> bool {
        self.service.policy.owners.contains(&self.requester)
    }

    /// Subscribes or unsubscribes the requester's own bare JID (XEP-0060
    /// §6.1.3.1: another JID is `bad-request` + `invalid-jid`; §6.2.3.3:
    /// unsubscribing another is `forbidden`), at most
    /// [`MAX_SUBSCRIPTIONS`] nodes.
    async fn subscribe(&self, subscribe: bool) -> Answer {
        let node = self.node()?.name;
        let jid = self.op.attr("jid").and_then(Addr::parse).map(|a| a.bare());
        if jid.as_deref() != Some(self.requester.as_str()) {
            return Err(if subscribe {
                Refused::new(Condition::BadRequest, "subscribe your own bare JID").with("invalid-jid")
            } else {
                Refused::new(Condition::Forbidden, "only the subscriber or a node owner ends a subscription")
            });
        }
        if !self.change_subscription(&node, &self.requester, subscribe).await? {
            return Err(Refused::new(Condition::ResourceConstraint, "too many subscriptions (at most 500)"));
        }
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

    /// Subscribes or unsubscribes `jid`; false if it has too many
    /// subscriptions already.
    async fn change_subscription(&self, node: &str, jid: &str, subscribe: bool) -> Result<bool, Refused> {
        let (n, j) = (node.to_owned(), jid.to_owned());
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
        if done {
            tracing::info!(%node, subscribe, by_owner = jid != self.requester, "pubsub subscription changed");
        }
        Ok(done)
    }

    /// A node owner changes subscriptions (XEP-0060 §8.8.2):
    /// `<subscription jid subscription='subscribed|none'/>`…
    async fn manage_subscriptions(&self) -> Answer {
        let node = self.node()?.name;
        if !self.is_owner() {
            return Err(Refused::new(Condition::Forbidden, "only a node owner changes others' subscriptions"));
        }
        let mut changes = Vec::new();
        for s in self.op.children().filter(|c| c.is(NS_PUBSUB_OWNER, "subscription")) {
            let Some(jid) = s.attr("jid").and_then(Addr::parse).map(|a| a.bare()) else {
                return Err(Refused::new(Condition::BadRequest, "a subscription names a JID").with("invalid-jid"));
            };
            let subscribe = match s.attr("subscription") {
                Some("subscribed") => true,
                Some("none") => false,
                _ => return Err(Refused::new(Condition::BadRequest, "a subscription is subscribed or none")),
            };
            changes.push((jid, subscribe));
        }
        for (jid, subscribe) in changes {
            if !self.change_subscription(&node, &jid, subscribe).await? {
                return Err(Refused::new(Condition::ResourceConstraint, "too many subscriptions (at most 500)"));
            }
        }
        Ok(iq_result(self.el, None))
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
        let node = self.node()?.name;
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
        let node = self.node()?.name;
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
            .ok_or(Refused::new(Condition::Forbidden, "subscribe to the node to read its items"))?;
        let mut list = Element::new(NS_PUBSUB, "items").with_attr("node", node);
        for it in items {
            list.push_child(item_element(NS_PUBSUB, &it));
        }
        self.result(Element::new(NS_PUBSUB, "pubsub").with_child(list))
    }

    /// Checks who publishes what (see the module's roles), stores one alert
    /// item and notifies the node's subscribers.
    async fn publish(&self, router: &Arc<Router>) -> Answer {
        let node = self.node()?;
        let policy = &self.service.policy;
        let items: Vec<&Element> = self.op.children().filter(|c| c.is(NS_PUBSUB, "item")).collect();
        let [item] = items.as_slice() else {
            return Err(Refused::new(Condition::BadRequest, "publish exactly one item"));
        };
        let content: Vec<&Element> = item.children().collect();
        let [alert] = content.as_slice() else {
            return Err(Refused::new(Condition::BadRequest, "an item holds one alert").with("invalid-payload"));
        };
        if alert.ns() != NS_ALERT || alert.name() != "alert" {
            return Err(Refused::new(Condition::NotAcceptable, "this service takes urn:snow:alert:1 alerts only")
                .with("invalid-payload"));
        }
        let Some(kind) = alert.attr(KIND_ATTR).and_then(|k| k.parse::<AlertKind>().ok()) else {
            return Err(Refused::new(
                Condition::NotAcceptable,
                "the alert must say its kind in clear: kind='signal', 'confirmation' or 'gp'",
            )
            .with("invalid-payload"));
        };
        if router.requires_e2e() {
            if let Err(why) = crate::routing::e2e_policy::check_alert(alert) {
                tracing::info!(requester = %self.requester, %why, "a clear alert refused by require_e2e");
                return Err(Refused::new(
                    Condition::NotAcceptable,
                    "this server requires end-to-end encryption (require_e2e): an alert carries one EncryptedData",
                )
                .with("invalid-payload"));
            }
        }
        let chosen = item.attr("id");
        if chosen.is_some_and(|id| !snow_core::alert::valid_id(id)) {
            return Err(Refused::new(Condition::BadRequest, "an item id is 1 to 64 of A-Z a-z 0-9 - _"));
        }
        let signals = policy.signal_publishers.get(&self.requester);
        // Who publishes which kind, and under which id.
        let (id, replace_only, rate) = match (kind, signals) {
            (AlertKind::Signal, Some(analyses)) => {
                if !analyses.contains(&node.analysis) {
                    return Err(Refused::new(
                        Condition::Forbidden,
                        "this agent does not publish signals of the analysis",
                    ));
                }
                let Some(id) = chosen.filter(|id| Alert::is_signal_id(id, &node.analysis, &node.area)) else {
                    return Err(Refused::new(
                        Condition::NotAcceptable,
                        "a signal's item id is ANALYSIS-AREA-YYYYWww of its node",
                    ));
                };
                (id.to_owned(), false, Rate::Signal)
            }
            (AlertKind::Signal, None) => {
                return Err(Refused::new(Condition::Forbidden, "only the labs' detection agents publish signals"));
            }
            (_, Some(_)) => {
                return Err(Refused::new(Condition::Forbidden, "a detection agent publishes signals only"));
            }
            (_, None) => match chosen {
                Some(id) => (id.to_owned(), true, Rate::Gp),
                None => {
                    let random = snow_crypto::one_time_password::random_hex(8).map_err(|e| {
                        tracing::error!(error = %e, "no random item id");
                        Refused::new(Condition::InternalServerError, "no item id")
                    })?;
                    (format!("{}-{random}", kind.id_prefix()), false, Rate::Gp)
                }
            },
        };
        let payload = alert.to_xml(NS_CLIENT);
        if payload.len() > policy.max_item_bytes {
            let n = self.service.counters.add(Count::ItemTooBig);
            tracing::warn!(publisher = %self.requester, node = %node.name, bytes = payload.len(), refused = n, "pubsub item refused: too big");
            return Err(Refused::new(
                Condition::ResourceConstraint,
                "the item is larger than this service keeps ([pubsub] max_item_bytes)",
            )
            .with("payload-too-big"));
        }
        if !self.service.admit(&self.requester, rate) {
            tracing::warn!(publisher = %self.requester, node = %node.name, "pubsub publication refused: rate");
            return Err(Refused::new(Condition::PolicyViolation, "too many publications; try again later"));
        }
        let stored = PubsubItem {
            node: node.name.clone(),
            id: id.clone(),
            publisher: self.requester.clone(),
            payload,
            published_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let (for_db, n, caps) = (stored.clone(), node.name.clone(), policy.caps);
        let (outcome, subscribers) = self
            .db
            .call(move |db| {
                let outcome = db.publish_item(&for_db, replace_only, caps)?;
                Ok((outcome, db.subscribers(&n)?))
            })
            .await
            .map_err(db_error)?;
        match outcome {
            Publication::Stored | Publication::Replaced => {}
            Publication::NotYours => {
                tracing::warn!(publisher = %self.requester, node = %node.name, %id, "pubsub: refused to replace another publisher's item");
                return Err(Refused::new(Condition::Forbidden, "the item is another publisher's"));
            }
            Publication::NoSuchItem => {
                return Err(Refused::new(
                    Condition::NotAcceptable,
                    "item ids are assigned by the service: publish without an id (or with the id of your own item to replace it)",
                ));
            }
        }
        tracing::info!(node = %node.name, %kind, replaced = outcome == Publication::Replaced, subscribers = subscribers.len(), "pubsub item published");
        notify(router, &stored, item_event(&stored, (*alert).clone()), &subscribers).await;
        self.result(
            Element::new(NS_PUBSUB, "pubsub").with_child(
                Element::new(NS_PUBSUB, "publish")
                    .with_attr("node", node.name)
                    .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", id)),
            ),
        )
    }

    /// Deletes an item its publisher names (XEP-0060 §7.2); subscribers are
    /// told if the publisher asks (`notify='true'`).
    async fn retract(&self, router: &Arc<Router>) -> Answer {
        let node = self.node()?.name;
        let ids: Vec<&str> =
            self.op.children().filter(|c| c.is(NS_PUBSUB, "item")).filter_map(|i| i.attr("id")).collect();
        let [id] = ids.as_slice() else {
            return Err(Refused::new(Condition::BadRequest, "retract names one item id").with("item-required"));
        };
        let (n, i, p) = (node.clone(), (*id).to_owned(), self.requester.clone());
        let (outcome, subscribers) = self
            .db
            .call(move |db| {
                let outcome = db.retract_item(&n, &i, &p)?;
                Ok((outcome, db.subscribers(&n)?))
            })
            .await
            .map_err(db_error)?;
        match outcome {
            Retraction::Retracted => {}
            Retraction::NoSuchItem => return Err(Refused::new(Condition::ItemNotFound, "no such item")),
            Retraction::NotYours => {
                tracing::warn!(publisher = %self.requester, %node, id, "pubsub: refused to retract another publisher's item");
                return Err(Refused::new(Condition::Forbidden, "the item is another publisher's"));
            }
        }
        tracing::info!(%node, "pubsub item retracted");
        if matches!(self.op.attr("notify"), Some("true" | "1")) {
            let gone = PubsubItem {
                node: node.clone(),
                id: (*id).to_owned(),
                publisher: self.requester.clone(),
                payload: String::new(),
                published_at: 0,
            };
            let retract = Element::new(NS_PUBSUB_EVENT, "retract").with_attr("id", (*id).to_owned());
            notify(router, &gone, retract, &subscribers).await;
        }
        Ok(iq_result(self.el, None))
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

/// The event's `<item id publisher>payload</item>`.
fn item_event(it: &PubsubItem, payload: Element) -> Element {
    Element::new(NS_PUBSUB_EVENT, "item")
        .with_attr("id", it.id.clone())
        .with_attr("publisher", it.publisher.clone())
        .with_child(payload)
}

/// Sends `what` (an event `<item/>` or `<retract/>`) on the item's node to
/// every subscriber, through the usual message routing (offline storage
/// for those not online, s2s for other sites' users).
async fn notify(router: &Arc<Router>, it: &PubsubItem, what: Element, subscribers: &[String]) {
    let service = router.domain().to_owned();
    let event = Element::new(NS_PUBSUB_EVENT, "event")
        .with_child(Element::new(NS_PUBSUB_EVENT, "items").with_attr("node", it.node.clone()).with_child(what));
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
    use super::*;

    fn policy(areas: &[&str]) -> Policy {
        Policy {
            analyses: vec!["INFA".into(), "SARS2".into()],
            areas: areas.iter().map(|a| (*a).to_owned()).collect(),
            signal_publishers: HashMap::new(),
            owners: Vec::new(),
            caps: ItemCaps { per_node: 10, per_publisher: 5 },
            max_item_bytes: 1024,
        }
    }

    #[test]
    fn nodes_exist_for_configured_analyses_and_areas() {
        let any = policy(&[]);
        let exists = |p: &Policy, n: &str| {
            let (a, area) = Alert::parse_node(n).unwrap();
            p.node_exists(a, &area)
        };
        assert!(exists(&any, "alerts/INFA/5401") && exists(&any, "alerts/SARS2/all") && exists(&any, "alerts/INFA/03"));
        assert!(!exists(&any, "alerts/RSV/5401"));
        let listed = policy(&["5401", "03"]);
        assert!(exists(&listed, "alerts/INFA/5401") && exists(&listed, "alerts/INFA/54"));
        assert!(exists(&listed, "alerts/INFA/03") && exists(&listed, "alerts/INFA/all"));
        assert!(!exists(&listed, "alerts/INFA/5402") && !exists(&listed, "alerts/INFA/55"));
    }

    #[test]
    fn the_rate_refuses_past_the_burst() {
        let settings = PubsubSettings { publish_burst: 2, publish_per_hour: 1, ..PubsubSettings::default() };
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(snow_store::ServerDb::open(&dir.path().join("s.db")).unwrap());
        let p = Pubsub::new(db, &settings, &["lab.example".into()], Arc::default());
        let mut agents: Vec<&String> = p.policy.signal_publishers.keys().collect();
        agents.sort();
        assert_eq!(agents, ["search.lab.example", "search@lab.example"]);
        let rate = Rate::Gp;
        assert!(p.admit("a@x", rate) && p.admit("a@x", rate));
        assert!(!p.admit("a@x", rate));
        assert!(p.admit("b@x", rate), "another publisher has its own bucket");
    }
}
