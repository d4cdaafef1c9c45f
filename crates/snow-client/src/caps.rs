//! How a Snow client names itself: XEP-0115 entity capabilities and the
//! XEP-0030 disco#info they stand for (docs/architecture.md §6).
//!
//! Every login announces the Snow client to its server right after
//! resource binding ([`announcement`]: a presence to the server's domain,
//! for the server only), and every broadcast presence carries the same
//! `<c/>` ([`presence`]). A server with `[server] client_check = "require"`
//! lets a session talk to others only once it has seen the node
//! [`NODE`]: a convenience check that keeps users on the restricted
//! client, not a security boundary (anyone can send these bytes).
//!
//! The client answers disco#info about itself ([`answer`]), with or
//! without the caps node, so other entities can check the `ver` hash.
//! Everything here is computed from one description, [`DiscoInfo::snow`],
//! so the announced hash and the answer cannot drift apart.

use std::sync::OnceLock;

use base64::Engine;
use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_CLIENT, NS_DISCO_INFO, NS_XML};

pub use snow_xml::NS_CAPS;
/// The Snow client's caps node: the same for the `snow` command, the snow
/// app and the agents, whatever the version (a server's `client_check`
/// looks for it).
pub const NODE: &str = snow_xml::SNOW_CLIENT_NODE;
/// Data forms (XEP-0004), as extended disco#info (XEP-0128).
pub const NS_DATA: &str = "jabber:x:data";
/// The software information form (XEP-0232) that carries the version.
pub const FORM_SOFTWARE_INFO: &str = "urn:xmpp:dataforms:softwareinfo";

/// One disco#info identity (XEP-0030 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub category: String,
    /// The identity's `type`.
    pub kind: String,
    /// `xml:lang`, if any.
    pub lang: Option<String>,
    pub name: Option<String>,
}

/// One extended-information form (XEP-0128): its `FORM_TYPE` and its
/// other fields with their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub form_type: String,
    pub fields: Vec<(String, Vec<String>)>,
}

/// What an entity says about itself in disco#info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoInfo {
    pub identities: Vec<Identity>,
    pub features: Vec<String>,
    pub forms: Vec<Form>,
}

impl DiscoInfo {
    /// The Snow client: a `client/pc` named Snow, the features it
    /// handles, and its version in a software information form.
    pub fn snow() -> DiscoInfo {
        DiscoInfo {
            identities: vec![Identity {
                category: "client".into(),
                kind: "pc".into(),
                lang: None,
                name: Some("Snow".into()),
            }],
            features: vec![
                NS_CAPS.into(),
                NS_DISCO_INFO.into(),
                // Chat bodies end-to-end encrypted with XML Encryption.
                snow_crypto::e2e::NS_XENC.into(),
            ],
            forms: vec![Form {
                form_type: FORM_SOFTWARE_INFO.into(),
                fields: vec![
                    ("software".into(), vec!["Snow".into()]),
                    ("software_version".into(), vec![env!("CARGO_PKG_VERSION").into()]),
                ],
            }],
        }
    }

    /// Reads a disco#info `<query/>`. Identities without category or
    /// type, features without `var`, and forms without a hidden
    /// `FORM_TYPE` are left out (XEP-0115 §5.4 says such an answer must
    /// not be trusted; here it only feeds the hash).
    pub fn from_query(query: &Element) -> DiscoInfo {
        let identities = query
            .children()
            .filter(|c| c.is(NS_DISCO_INFO, "identity"))
            .filter_map(|i| {
                Some(Identity {
                    category: i.attr("category")?.to_owned(),
                    kind: i.attr("type")?.to_owned(),
                    lang: i.attr_ns(NS_XML, "lang").map(str::to_owned),
                    name: i.attr("name").map(str::to_owned),
                })
            })
            .collect();
        let features = query
            .children()
            .filter(|c| c.is(NS_DISCO_INFO, "feature"))
            .filter_map(|f| f.attr("var").map(str::to_owned))
            .collect();
        let forms = query
            .children()
            .filter(|c| c.is(NS_DATA, "x") && c.attr("type") == Some("result"))
            .filter_map(|x| {
                let values = |f: &Element| -> Vec<String> {
                    f.children().filter(|v| v.is(NS_DATA, "value")).map(Element::text).collect()
                };
                let fields: Vec<&Element> = x.children().filter(|f| f.is(NS_DATA, "field")).collect();
                let form_type = fields.iter().find(|f| f.attr("var") == Some("FORM_TYPE"))?;
                let form_type = values(form_type).into_iter().next()?;
                let fields = fields
                    .iter()
                    .filter_map(|f| match f.attr("var") {
                        Some("FORM_TYPE") | None => None,
                        Some(var) => Some((var.to_owned(), values(f))),
                    })
                    .collect();
                Some(Form { form_type, fields })
            })
            .collect();
        DiscoInfo { identities, features, forms }
    }

    /// The verification string S of XEP-0115 §5.1: identities sorted by
    /// category, type and xml:lang, each `category/type/lang/name<`;
    /// features sorted, each `var<`; forms sorted by FORM_TYPE, each
    /// `FORM_TYPE<` then its fields sorted by var, each `var<` and its
    /// values sorted, each `value<`. Sorting is by octets ("i;octet"),
    /// which is how Rust compares strings.
    pub fn verification_string(&self) -> String {
        let mut s = String::new();
        let mut identities: Vec<&Identity> = self.identities.iter().collect();
        identities.sort_by(|a, b| {
            (&a.category, &a.kind, a.lang.as_deref().unwrap_or(""), a.name.as_deref().unwrap_or("")).cmp(&(
                &b.category,
                &b.kind,
                b.lang.as_deref().unwrap_or(""),
                b.name.as_deref().unwrap_or(""),
            ))
        });
        for i in identities {
            let (lang, name) = (i.lang.as_deref().unwrap_or(""), i.name.as_deref().unwrap_or(""));
            s.push_str(&format!("{}/{}/{lang}/{name}<", i.category, i.kind));
        }
        let mut features: Vec<&String> = self.features.iter().collect();
        features.sort();
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        let mut forms: Vec<&Form> = self.forms.iter().collect();
        forms.sort_by(|a, b| a.form_type.cmp(&b.form_type));
        for form in forms {
            s.push_str(&form.form_type);
            s.push('<');
            let mut fields: Vec<&(String, Vec<String>)> = form.fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            for (var, values) in fields {
                s.push_str(var);
                s.push('<');
                let mut values: Vec<&String> = values.iter().collect();
                values.sort();
                for v in values {
                    s.push_str(v);
                    s.push('<');
                }
            }
        }
        s
    }

    /// The `ver` of XEP-0115 §5.1 with `hash='sha-1'`: base64 of the SHA-1
    /// of the verification string.
    pub fn ver(&self) -> String {
        let sha1 = snow_crypto::component_handshake::legacy_sha1(self.verification_string().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(sha1)
    }

    /// The disco#info `<query/>` (with `node`, when asked with one).
    pub fn query(&self, node: Option<&str>) -> Element {
        let mut q = Element::new(NS_DISCO_INFO, "query");
        if let Some(n) = node {
            q.set_attr("node", n);
        }
        for i in &self.identities {
            let mut el = Element::new(NS_DISCO_INFO, "identity")
                .with_attr("category", i.category.clone())
                .with_attr("type", i.kind.clone());
            if let Some(l) = &i.lang {
                el.set_attr_ns(NS_XML, "lang", l.clone());
            }
            if let Some(n) = &i.name {
                el.set_attr("name", n.clone());
            }
            q.push_child(el);
        }
        for f in &self.features {
            q.push_child(Element::new(NS_DISCO_INFO, "feature").with_attr("var", f.clone()));
        }
        for form in &self.forms {
            let field = |var: &str, values: &[String]| {
                let mut f = Element::new(NS_DATA, "field").with_attr("var", var.to_owned());
                for v in values {
                    f.push_child(Element::new(NS_DATA, "value").with_text(v.clone()));
                }
                f
            };
            let mut x = Element::new(NS_DATA, "x").with_attr("type", "result");
            x.push_child(field("FORM_TYPE", std::slice::from_ref(&form.form_type)).with_attr("type", "hidden"));
            for (var, values) in &form.fields {
                x.push_child(field(var, values));
            }
            q.push_child(x);
        }
        q
    }
}

/// The Snow client's description and its `ver`, computed once.
fn snow() -> &'static (DiscoInfo, String) {
    static SNOW: OnceLock<(DiscoInfo, String)> = OnceLock::new();
    SNOW.get_or_init(|| {
        let info = DiscoInfo::snow();
        let ver = info.ver();
        (info, ver)
    })
}

/// The Snow client's `ver`.
pub fn ver() -> &'static str {
    &snow().1
}

/// `node#ver`, the node a disco#info about these caps asks for.
pub fn caps_node() -> String {
    format!("{NODE}#{}", ver())
}

/// The Snow client's `<c xmlns='http://jabber.org/protocol/caps'
/// hash='sha-1' node='urn:snow:client' ver='…'/>`.
pub fn caps() -> Element {
    Element::new(NS_CAPS, "c").with_attr("hash", "sha-1").with_attr("node", NODE).with_attr("ver", ver())
}

/// A broadcast presence (available, no `to`) with the Snow caps.
pub fn presence() -> Element {
    Element::new(NS_CLIENT, "presence").with_child(caps())
}

/// The announcement sent right after resource binding: a presence with
/// the Snow caps to `domain`, the client's own server. It is for the
/// server only (not routed on), and it does not make the session
/// available: a client that only makes requests stays unseen.
pub fn announcement(domain: &str) -> Element {
    presence().with_attr("to", domain.to_owned())
}

/// The answer to a disco#info get about this client, addressed to `jid`
/// (our full JID; no `to` is the same): the Snow client's description,
/// without a node or for [`caps_node`]; another node is `item-not-found`
/// (XEP-0030 §7). `None` for any other stanza, which is left to its
/// owner (who answers what it does not know `service-unavailable`).
pub fn answer(stanza: &Element, jid: &str) -> Option<Element> {
    if !stanza.is(NS_CLIENT, "iq") || stanza.attr("type") != Some("get") {
        return None;
    }
    let query = stanza.child(NS_DISCO_INFO, "query")?;
    if stanza.attr("to").is_some_and(|to| !crate::session::same_jid(to, jid)) {
        return None;
    }
    match query.attr("node") {
        None => Some(iq_result(stanza, Some(snow().0.query(None)))),
        Some(node) if node == caps_node() => Some(iq_result(stanza, Some(snow().0.query(Some(node))))),
        Some(_) => Some(error_reply(stanza, Condition::ItemNotFound, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap()
    }

    /// XEP-0115 §5.2, the simple example (Exodus).
    #[test]
    fn xep_0115_simple_example() {
        let q = parse(
            "<query xmlns='http://jabber.org/protocol/disco#info' \
                    node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>\
               <identity category='client' name='Exodus 0.9.1' type='pc'/>\
               <feature var='http://jabber.org/protocol/caps'/>\
               <feature var='http://jabber.org/protocol/disco#info'/>\
               <feature var='http://jabber.org/protocol/disco#items'/>\
               <feature var='http://jabber.org/protocol/muc'/>\
             </query>",
        );
        let info = DiscoInfo::from_query(&q);
        assert_eq!(
            info.verification_string(),
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<\
             http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
        );
        assert_eq!(info.ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    /// XEP-0115 §5.3, the complex example (Psi): identities with
    /// xml:lang (sorted by it), features out of order, an extended form.
    #[test]
    fn xep_0115_complex_example() {
        let q = parse(
            "<query xmlns='http://jabber.org/protocol/disco#info' \
                    node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
               <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
               <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
               <feature var='http://jabber.org/protocol/disco#items'/>\
               <feature var='http://jabber.org/protocol/caps'/>\
               <feature var='http://jabber.org/protocol/muc'/>\
               <feature var='http://jabber.org/protocol/disco#info'/>\
               <x xmlns='jabber:x:data' type='result'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
                 <field var='ip_version'><value>ipv6</value><value>ipv4</value></field>\
                 <field var='os'><value>Mac</value></field>\
                 <field var='os_version'><value>10.5.1</value></field>\
                 <field var='software'><value>Psi</value></field>\
                 <field var='software_version'><value>0.11</value></field>\
               </x>\
             </query>",
        );
        let info = DiscoInfo::from_query(&q);
        assert_eq!(
            info.verification_string(),
            "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<\
             os_version<10.5.1<software<Psi<software_version<0.11<"
        );
        assert_eq!(info.ver(), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }

    #[test]
    fn the_snow_answer_hashes_to_the_announced_ver() {
        let info = DiscoInfo::snow();
        assert!(info.verification_string().starts_with("client/pc//Snow<"));
        assert!(info.verification_string().contains(&format!("software_version<{}<", env!("CARGO_PKG_VERSION"))));
        let c = caps();
        assert_eq!((c.attr("hash"), c.attr("node"), c.attr("ver")), (Some("sha-1"), Some(NODE), Some(ver())));
        let ask = |node: Option<String>, to: Option<&str>| {
            let mut q = Element::new(NS_DISCO_INFO, "query");
            if let Some(n) = node {
                q.set_attr("node", n);
            }
            let mut iq = Element::new(NS_CLIENT, "iq")
                .with_attr("type", "get")
                .with_attr("id", "d1")
                .with_attr("from", "2222222@po.example/x")
                .with_child(q);
            if let Some(t) = to {
                iq.set_attr("to", t);
            }
            iq
        };
        let me = "1111111@po.example/cli";
        for node in [None, Some(caps_node())] {
            // Sent over the wire and read back, as the asker sees it.
            let xml = answer(&ask(node.clone(), Some(me)), me).unwrap().to_xml(NS_CLIENT);
            let back = parse(&xml);
            assert_eq!((back.attr("type"), back.attr("id")), (Some("result"), Some("d1")));
            assert_eq!(back.attr("to"), Some("2222222@po.example/x"));
            let q = back.child(NS_DISCO_INFO, "query").unwrap();
            assert_eq!(q.attr("node").map(str::to_owned), node);
            assert_eq!(DiscoInfo::from_query(q), info);
            assert_eq!(DiscoInfo::from_query(q).ver(), ver());
        }
        assert!(answer(&ask(None, None), me).is_some(), "no 'to' is ours");
        let other = answer(&ask(Some(format!("{NODE}#old")), Some(me)), me).unwrap();
        assert_eq!(snow_xml::stanza::error_of(&other).0, "item-not-found");
        // Not ours to answer: left to the session's owner.
        assert!(answer(&ask(None, Some("2222222@po.example/x")), me).is_none());
        let ping =
            Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(snow_xml::NS_PING, "ping"));
        assert!(answer(&ping, me).is_none());
        let result = ask(None, Some(me)).with_attr("type", "result");
        assert!(answer(&result, me).is_none());
    }

    #[test]
    fn presences_carry_the_caps() {
        let p = announcement("po.example");
        assert_eq!((p.name(), p.attr("to"), p.attr("type")), ("presence", Some("po.example"), None));
        assert_eq!(p.child(NS_CAPS, "c").and_then(|c| c.attr("node")), Some(NODE));
        assert!(presence().attr("to").is_none() && presence().child(NS_CAPS, "c").is_some());
    }
}
