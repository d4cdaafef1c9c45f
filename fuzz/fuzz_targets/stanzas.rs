//! The public pieces of stanza handling on arbitrary XML:
//!
//! - addresses (`snow_core` `BareJid`, `Domain`, `AgentJid`) from every
//!   attribute: whatever parses prints and parses back equal;
//! - stanza and stream errors (`snow_xml::stanza::error_of`,
//!   `error_reply`, `PeerStreamError`): a reply made to any stanza carries
//!   the condition and text it was given;
//! - SASL EXTERNAL with an authzid: the `<auth/>` text decoded as the
//!   server's c2s does (Base64, UTF-8, `=` for none; that part of c2s is
//!   private) and checked by the public `TrustStore::authenticate` with
//!   the test user's certificate: it logs in only as that user;
//! - the client's readers of the server's replies: roster
//!   (`roster_contacts`), pubsub (`read_items`, `event_items`,
//!   `read_subscriptions`, `published_id`), each item opened as the test
//!   user (`alert::open`: decryption, the signature, its kind, signer and
//!   recipients, the detail against the item's publisher, kind and node,
//!   who may sign what, the nonce for the item; all but the key
//!   directory, which needs a server),
//!   disco#info and entity caps (`caps::DiscoInfo`, `caps::answer`).
//!
//! Nothing panics.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;
use snow_client::alert;
use snow_core::{AgentJid, BareJid, Domain};
use snow_xml::initiator::PeerStreamError;
use snow_xml::stanza::{self, Condition};
use snow_xml::{parse_document, Element, Limits, NS_DISCO_INFO, NS_SASL};

fn trust() -> &'static snow_server::trust::TrustStore {
    static READY: OnceLock<()> = OnceLock::new();
    let t = snow_fuzz::trust_store();
    READY.get_or_init(|| {
        t.install_crl(snow_fuzz::CRL_DER).expect("the fixture CRL is current and the CA's");
    });
    t
}

fn addresses(s: &str) {
    if let Ok(j) = s.parse::<BareJid>() {
        assert_eq!(j.to_string().parse::<BareJid>().as_ref(), Ok(&j), "{s:?}");
    }
    if let Ok(d) = s.parse::<Domain>() {
        assert_eq!(d.to_string().parse::<Domain>().as_ref(), Ok(&d), "{s:?}");
    }
    if let Ok(a) = s.parse::<AgentJid>() {
        assert_eq!(a.to_string().parse::<AgentJid>().as_ref(), Ok(&a), "{s:?}");
    }
    let _ = snow_core::alert::Alert::parse_node(s);
    let _ = snow_core::alert::valid_id(s);
    let _ = snow_store::Subscription::parse(s);
}

fn walk(el: &Element, budget: &mut usize) {
    for a in el.attrs() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        addresses(&a.value);
    }
    for c in el.children() {
        walk(c, budget);
    }
}

fn sasl_external(auth: &Element) {
    if auth.attr("mechanism") != Some("EXTERNAL") {
        return;
    }
    let text = auth.text();
    let text = text.trim();
    let authzid = if text.is_empty() || text == "=" {
        None
    } else {
        match base64::engine::general_purpose::STANDARD.decode(text).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(a) => Some(a),
            None => return,
        }
    };
    let chain = [CertificateDer::from(snow_fuzz::USER_DER)];
    let domain: Domain = snow_fuzz::DOMAIN.parse().expect("domain");
    if let Ok((jid, _)) = trust().authenticate(&chain, &domain, authzid.as_deref()) {
        assert_eq!(jid.to_string(), snow_fuzz::USER_JID);
        assert!(authzid.is_none() || authzid.as_deref() == Some(snow_fuzz::USER_JID), "{authzid:?}");
    }
}

fn items(list: Vec<alert::Item>) {
    let now = snow_fuzz::now().unix_timestamp();
    let mut cache = nonces().lock().unwrap_or_else(|p| p.into_inner());
    for item in list.iter().take(4) {
        let _ = snow_core::alert::Alert::parse_node(&item.node);
        if let Ok(c) = alert::open(item, snow_fuzz::identity(), snow_fuzz::USER_JID, &mut cache, now) {
            let a = c.alert;
            assert_eq!(a.author, item.publisher);
            assert_eq!(snow_core::alert::Alert::node(&a.analysis, &a.area), item.node);
        }
    }
}

/// The alert nonces of this fuzzing process, in the temporary directory.
fn nonces() -> &'static std::sync::Mutex<snow_core::nonce_cache::NonceCache> {
    static N: OnceLock<std::sync::Mutex<snow_core::nonce_cache::NonceCache>> = OnceLock::new();
    N.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("snow-fuzz-alert-nonces-{}", std::process::id()));
        let max_age = snow_client::signed::Kind::Alert.max_age_secs();
        let cache = snow_core::nonce_cache::NonceCache::open(&path, max_age, 1000, snow_fuzz::now().unix_timestamp());
        std::sync::Mutex::new(cache.expect("a nonce cache in the temporary directory"))
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 16, max_attributes: 32, max_elements: 1024 };
    let Ok(el) = parse_document(data, limits) else { return };
    walk(&el, &mut 64);

    let (condition, text) = stanza::error_of(&el);
    let _ = stanza::is_reply(&el);
    let c = Condition::from_name(&condition).unwrap_or(Condition::UndefinedCondition);
    let reply = stanza::error_reply(&el, c, text.as_deref());
    assert_eq!(stanza::error_of(&reply), (c.name().to_owned(), text.clone()));
    let _ = stanza::iq_result(&el, None);
    let e = PeerStreamError::from_element(&el);
    assert!(!e.to_string().is_empty());

    if el.is(NS_SASL, "auth") {
        sasl_external(&el);
    }

    if let Ok(contacts) = snow_client::roster_contacts(&el) {
        for c in contacts.iter().take(16) {
            addresses(&c.jid);
        }
    }
    if let Ok(list) = alert::read_items(snow_fuzz::DOMAIN, &el) {
        items(list);
    }
    items(alert::event_items(&el));
    let _ = alert::read_subscriptions(snow_fuzz::DOMAIN, &el, "jid");
    let _ = alert::read_subscriptions(snow_fuzz::DOMAIN, &el, "node");
    if let Ok(id) = alert::published_id(snow_fuzz::DOMAIN, &el) {
        assert!(snow_core::alert::valid_id(&id));
    }
    if let Some(q) = el.child(NS_DISCO_INFO, "query") {
        let info = snow_client::caps::DiscoInfo::from_query(q);
        let _ = info.verification_string();
        let _ = info.ver();
    }
    let _ = snow_client::caps::answer(&el, snow_fuzz::USER_JID);
});
