//! The clear-text policy (`[server] require_e2e`, docs/architecture.md §4):
//! which messages this server stores or forwards when only end-to-end
//! encrypted content may pass.
//!
//! A message passes when everything it carries is in one of two groups:
//!
//! - **Content, sealed.** At most one XML Encryption `EncryptedData`
//!   (snow-crypto's `e2e`: `EncryptionMethod`, `ds:KeyInfo` with one or
//!   more `EncryptedKey`s, `CipherData`), in one of the places Snow puts
//!   it: alone in a `<body/>` (an encrypted chat message), directly in the
//!   message, or alone in the `<alert/>` of a pubsub notification's item
//!   (`<event><items node><item id publisher><alert kind>`, which the
//!   server's pubsub service sends). Inside it, text is allowed only where
//!   XML Encryption puts it: base64 cipher values, the recipient's issuer
//!   name and serial number.
//! - **Protocol, empty.** An explicit list of elements that carry no
//!   text: chat states (XEP-0085), receipts (XEP-0184), origin and stanza
//!   ids (XEP-0359), processing hints (XEP-0334), a delay stamp (XEP-0203),
//!   an empty `<thread/>`, a pubsub `<retract id/>`, and in a
//!   `type='error'` message its `<error/>` with the defined condition only
//!   ([`strip_error_detail`] removes the error's text first).
//!
//! Anything else is a violation: text directly in the message, a
//! `<subject/>`, thread text, a clear `<body/>` or one next to an
//! `EncryptedData`, XHTML-IM, out-of-band data, any element not on the
//! list, an `EncryptedData` in another namespace, without an
//! `EncryptedKey`, or with text where XML Encryption has none, and a
//! second `EncryptedData`. The same rule holds for every message type and
//! every address; only the server's own error bounces are exempt (routing
//! gives them a fixed text instead). Attributes are protocol values
//! (addresses, ids, the alert's kind) and are not read as content.

use base64::Engine;
use snow_crypto::e2e::{MAX_RECIPIENTS, NS_DSIG, NS_XENC, NS_XENC11};
use snow_xml::{Element, Node, NS_CLIENT, NS_DELAY, NS_PUBSUB_EVENT, NS_STANZAS, NS_XML};

/// Chat state notifications (XEP-0085).
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// Message delivery receipts (XEP-0184).
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
/// Unique and stable stanza ids (XEP-0359).
pub const NS_SID: &str = "urn:xmpp:sid:0";
/// Message processing hints (XEP-0334).
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// Snow's alert items (`snow_core::alert::NS_ALERT`).
const NS_ALERT: &str = snow_core::alert::NS_ALERT;

/// The smallest cipher value of content: a 12-byte IV and a 16-byte tag.
const MIN_CONTENT_BYTES: usize = 28;
/// The smallest wrapped key: RSA of at least 1024 bits.
const MIN_WRAPPED_KEY_BYTES: usize = 128;
/// The longest issuer name an `EncryptedKey` may name.
const MAX_ISSUER_NAME: usize = 1024;
/// The longest decimal serial number (20 octets are 49 digits).
const MAX_SERIAL_DIGITS: usize = 64;

/// Why a message was refused (for the log; the sender gets one fixed text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn violation<T>(why: impl Into<String>) -> Result<T, Violation> {
    Err(Violation(why.into()))
}

/// Whether `message` may be stored or forwarded under `require_e2e`.
pub(crate) fn check(message: &Element) -> Result<(), Violation> {
    no_text(message, "the message")?;
    let error_type = message.attr("type") == Some("error");
    let mut sealed = 0;
    for child in message.children() {
        sealed += top_level(child, error_type)?;
    }
    if sealed > 1 {
        return violation("more than one EncryptedData");
    }
    Ok(())
}

/// In a `type='error'` message, reduces each `<error/>` to its type and
/// defined condition: its `<text/>`, an application-specific condition and
/// anything inside the condition are free text a sender could fill.
pub(crate) fn strip_error_detail(message: &mut Element) {
    if message.attr("type") != Some("error") {
        return;
    }
    for node in message.nodes_mut() {
        if let Node::Element(err) = node {
            if err.is(NS_CLIENT, "error") {
                err.take_children(|c| c.ns() != NS_STANZAS || c.name() == "text");
                err.nodes_mut().retain(|n| matches!(n, Node::Element(_)));
                for n in err.nodes_mut() {
                    if let Node::Element(condition) = n {
                        condition.nodes_mut().clear();
                    }
                }
            }
        }
    }
}

/// A child of the message: how many `EncryptedData` it holds, or why it
/// may not pass.
fn top_level(c: &Element, error_type: bool) -> Result<usize, Violation> {
    match (c.ns(), c.name()) {
        (NS_CLIENT, "body") => {
            attrs(c, &[])?;
            sealed_wrapper(c, "the <body>")
        }
        (NS_XENC, "EncryptedData") => encrypted_data(c).map(|()| 1),
        (NS_PUBSUB_EVENT, "event") => event(c),
        (NS_CLIENT, "thread") => {
            if !c.text().trim().is_empty() {
                return violation("thread text");
            }
            empty(c, &["parent"])
        }
        (NS_CLIENT, "error") if error_type => error(c),
        (NS_CLIENT, "subject") => violation("a <subject>"),
        (NS_CHATSTATES, "active" | "composing" | "paused" | "inactive" | "gone") => empty(c, &[]),
        (NS_RECEIPTS, "request") => empty(c, &[]),
        (NS_RECEIPTS, "received") => empty(c, &["id"]),
        (NS_SID, "origin-id") => empty(c, &["id"]),
        (NS_SID, "stanza-id") => empty(c, &["id", "by"]),
        (NS_HINTS, "store" | "no-store" | "no-permanent-store" | "no-copy") => empty(c, &[]),
        (NS_DELAY, "delay") => empty(c, &["from", "stamp"]),
        (ns, name) => violation(format!("<{name} xmlns='{ns}'> is not allowed outside the encryption")),
    }
}

/// An element whose only content is one valid `EncryptedData`.
fn sealed_wrapper(c: &Element, what: &str) -> Result<usize, Violation> {
    no_text(c, what)?;
    let mut children = c.children();
    match (children.next(), children.next()) {
        (Some(enc), None) if enc.is(NS_XENC, "EncryptedData") => encrypted_data(enc).map(|()| 1),
        (Some(enc), None) if enc.name() == "EncryptedData" => {
            violation(format!("an EncryptedData in the namespace '{}' in {what}", enc.ns()))
        }
        // Nothing in it: nothing clear either.
        (None, _) => Ok(0),
        _ => violation(format!("{what} holds something other than one EncryptedData")),
    }
}

/// A pubsub notification (XEP-0060 §7.1.2.1, §7.2.2.1): one `<items/>`
/// with items that are empty or hold one sealed `<alert/>`, and retractions.
fn event(ev: &Element) -> Result<usize, Violation> {
    attrs(ev, &[])?;
    no_text(ev, "the <event>")?;
    let mut children = ev.children();
    let items = match (children.next(), children.next()) {
        (Some(items), None) if items.is(NS_PUBSUB_EVENT, "items") => items,
        _ => return violation("a pubsub <event> other than one <items>"),
    };
    attrs(items, &["node", "max_items"])?;
    no_text(items, "the <items>")?;
    let mut sealed = 0;
    for it in items.children() {
        match (it.ns(), it.name()) {
            (NS_PUBSUB_EVENT, "retract") => {
                empty(it, &["id"])?;
            }
            (NS_PUBSUB_EVENT, "item") => {
                attrs(it, &["id", "publisher", "node"])?;
                no_text(it, "an <item>")?;
                let mut payload = it.children();
                match (payload.next(), payload.next()) {
                    (None, _) => {}
                    (Some(alert), None) if alert.is(NS_ALERT, "alert") => {
                        sealed += sealed_wrapper(alert, "the <alert>")?;
                    }
                    _ => return violation("a pubsub item whose payload is not one sealed <alert>"),
                }
            }
            (_, name) => return violation(format!("<{name}> in a pubsub <items>")),
        }
    }
    Ok(sealed)
}

/// Whether an alert may be stored under `require_e2e` (a publish to the
/// pubsub service): the same rule as in a notification, one sealed
/// `EncryptedData` and nothing in clear but the kind, so nothing stored
/// reaches a subscriber in clear through a later items request.
pub(crate) fn check_alert(alert: &Element) -> Result<(), Violation> {
    sealed_wrapper(alert, "the <alert>").and_then(|n| match n {
        1 => Ok(()),
        _ => violation("an <alert> without its EncryptedData"),
    })
}

/// A stanza error (RFC 6120 §8.3.2) reduced by [`strip_error_detail`].
fn error(err: &Element) -> Result<usize, Violation> {
    attrs(err, &["type", "by"])?;
    no_text(err, "the <error>")?;
    for c in err.children() {
        if c.ns() != NS_STANZAS || c.name() == "text" {
            return violation("error text or an application-specific condition");
        }
        empty(c, &[])?;
    }
    Ok(0)
}

/// XML Encryption's `EncryptedData` as snow-crypto writes it: one
/// `EncryptionMethod`, one `ds:KeyInfo` with 1 to `MAX_RECIPIENTS`
/// `EncryptedKey`s, one `CipherData`; no other element and no text.
fn encrypted_data(enc: &Element) -> Result<(), Violation> {
    attrs(enc, &["Type", "Id", "MimeType", "Encoding"])?;
    no_text(enc, "the EncryptedData")?;
    let (mut methods, mut key_infos, mut ciphers) = (0, 0, 0);
    for c in enc.children() {
        match (c.ns(), c.name()) {
            (NS_XENC, "EncryptionMethod") => {
                methods += 1;
                empty(c, &["Algorithm"])?;
            }
            (NS_DSIG, "KeyInfo") => {
                key_infos += 1;
                attrs(c, &["Id"])?;
                no_text(c, "the KeyInfo")?;
                let mut keys = 0;
                for k in c.children() {
                    if !k.is(NS_XENC, "EncryptedKey") {
                        return violation(format!("<{}> in the EncryptedData's KeyInfo", k.name()));
                    }
                    encrypted_key(k)?;
                    keys += 1;
                }
                if keys == 0 {
                    return violation("an EncryptedData without EncryptedKey");
                }
                if keys > MAX_RECIPIENTS {
                    return violation("more EncryptedKeys than recipients allowed");
                }
            }
            (NS_XENC, "CipherData") => {
                ciphers += 1;
                cipher_data(c, MIN_CONTENT_BYTES)?;
            }
            (_, name) => return violation(format!("<{name}> in an EncryptedData")),
        }
    }
    if (methods, key_infos, ciphers) != (1, 1, 1) {
        return violation("an EncryptedData needs one EncryptionMethod, KeyInfo and CipherData");
    }
    Ok(())
}

/// One recipient's `EncryptedKey`: the key transport method (with its
/// digest and MGF), optionally who it is for (issuer and serial, or the
/// certificate), and the wrapped key.
fn encrypted_key(ek: &Element) -> Result<(), Violation> {
    attrs(ek, &["Id", "Recipient"])?;
    no_text(ek, "an EncryptedKey")?;
    let (mut methods, mut key_infos, mut ciphers) = (0, 0, 0);
    for c in ek.children() {
        match (c.ns(), c.name()) {
            (NS_XENC, "EncryptionMethod") => {
                methods += 1;
                attrs(c, &["Algorithm"])?;
                no_text(c, "an EncryptionMethod")?;
                for p in c.children() {
                    if !(p.is(NS_DSIG, "DigestMethod") || p.is(NS_XENC11, "MGF")) {
                        return violation(format!("<{}> in an EncryptedKey's EncryptionMethod", p.name()));
                    }
                    empty(p, &["Algorithm"])?;
                }
            }
            (NS_DSIG, "KeyInfo") => {
                key_infos += 1;
                recipient(c)?;
            }
            (NS_XENC, "CipherData") => {
                ciphers += 1;
                cipher_data(c, MIN_WRAPPED_KEY_BYTES)?;
            }
            (_, name) => return violation(format!("<{name}> in an EncryptedKey")),
        }
    }
    if methods != 1 || key_infos > 1 || ciphers != 1 {
        return violation("an EncryptedKey needs one EncryptionMethod and one CipherData");
    }
    Ok(())
}

/// `ds:KeyInfo/ds:X509Data` naming the recipient by issuer and serial
/// (what snow-crypto writes) or by the certificate itself. A `KeyName`
/// is free text and is not accepted.
fn recipient(ki: &Element) -> Result<(), Violation> {
    attrs(ki, &["Id"])?;
    no_text(ki, "an EncryptedKey's KeyInfo")?;
    for data in ki.children() {
        if !data.is(NS_DSIG, "X509Data") {
            return violation(format!("<{}> naming a recipient", data.name()));
        }
        attrs(data, &[])?;
        no_text(data, "X509Data")?;
        for d in data.children() {
            match (d.ns(), d.name()) {
                (NS_DSIG, "X509IssuerSerial") => {
                    attrs(d, &[])?;
                    no_text(d, "X509IssuerSerial")?;
                    let (mut names, mut serials) = (0, 0);
                    for part in d.children() {
                        attrs(part, &[])?;
                        if part.children().next().is_some() {
                            return violation("an element inside X509IssuerSerial's parts");
                        }
                        let text = part.text();
                        let text = text.trim();
                        match (part.ns(), part.name()) {
                            (NS_DSIG, "X509IssuerName") => {
                                names += 1;
                                if text.len() > MAX_ISSUER_NAME || !text.contains('=') {
                                    return violation("an X509IssuerName that is not a distinguished name");
                                }
                            }
                            (NS_DSIG, "X509SerialNumber") => {
                                serials += 1;
                                if text.is_empty()
                                    || text.len() > MAX_SERIAL_DIGITS
                                    || !text.bytes().all(|b| b.is_ascii_digit())
                                {
                                    return violation("an X509SerialNumber that is not a decimal number");
                                }
                            }
                            (_, name) => return violation(format!("<{name}> in X509IssuerSerial")),
                        }
                    }
                    if (names, serials) != (1, 1) {
                        return violation("X509IssuerSerial needs one issuer name and one serial number");
                    }
                }
                (NS_DSIG, "X509Certificate") => {
                    attrs(d, &[])?;
                    base64_text(d, 1)?;
                }
                (_, name) => return violation(format!("<{name}> in X509Data")),
            }
        }
    }
    Ok(())
}

/// `CipherData` with one `CipherValue` of at least `min` bytes of base64.
fn cipher_data(cd: &Element, min: usize) -> Result<(), Violation> {
    attrs(cd, &[])?;
    no_text(cd, "CipherData")?;
    let mut children = cd.children();
    match (children.next(), children.next()) {
        (Some(v), None) if v.is(NS_XENC, "CipherValue") => {
            attrs(v, &[])?;
            base64_text(v, min)
        }
        _ => violation("CipherData other than one CipherValue"),
    }
}

/// Text that is base64 (whitespace aside) of at least `min` bytes, and no
/// element.
fn base64_text(el: &Element, min: usize) -> Result<(), Violation> {
    if el.children().next().is_some() {
        return violation(format!("an element inside <{}>", el.name()));
    }
    let compact: String = el.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact) {
        Ok(bytes) if bytes.len() >= min => Ok(()),
        _ => violation(format!("<{}> is not base64 of the expected size", el.name())),
    }
}

/// No text (whitespace aside) directly inside `el`.
fn no_text(el: &Element, what: &str) -> Result<(), Violation> {
    let clear = el.nodes().iter().any(|n| matches!(n, Node::Text(t) if !t.trim().is_empty()));
    if clear {
        return violation(format!("text in {what}"));
    }
    Ok(())
}

/// An element with no content at all and only the attributes `allowed`
/// (and `xml:lang`).
fn empty(el: &Element, allowed: &[&str]) -> Result<usize, Violation> {
    attrs(el, allowed)?;
    if el.children().next().is_some() || !el.text().trim().is_empty() {
        return violation(format!("<{}> must be empty", el.name()));
    }
    Ok(0)
}

/// Only the attributes `allowed` (unqualified) and `xml:lang`.
fn attrs(el: &Element, allowed: &[&str]) -> Result<(), Violation> {
    for a in el.attrs() {
        let ok = if a.ns.is_empty() { allowed.contains(&a.name.as_ref()) } else { a.ns == NS_XML && a.name == "lang" };
        if !ok {
            return violation(format!("the attribute '{}' on <{}>", a.name, el.name()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real EncryptedData, as a client sends it (to a CA certificate:
    /// any RSA certificate will do, and a CA is what the dev-dependencies
    /// make).
    fn sealed() -> Element {
        use std::sync::OnceLock;
        static CERT: OnceLock<Vec<u8>> = OnceLock::new();
        let cert = CERT.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let home = snow_core::SiteHome::new(dir.path().join("home"));
            let pki = snow_pki::PkiSettings { ca_key_bits: 2048, ..snow_pki::PkiSettings::default() };
            let ca = snow_pki::Ca::init(&home, &"po.example".parse().unwrap(), "test passphrase 1", &pki).unwrap();
            ca.cert_der().to_vec()
        });
        let mut body = Element::new(NS_CLIENT, "body").with_text("hemmelig");
        let recipients = [cert.as_slice(), cert.as_slice()];
        snow_crypto::e2e::encrypt_content(&mut body, NS_CLIENT, &recipients, snow_crypto::e2e::KeyTransport::default())
            .unwrap();
        let enc = body.children().next().unwrap().clone();
        enc
    }

    fn message(kind: &str) -> Element {
        Element::new(NS_CLIENT, "message")
            .with_attr("to", "2222222@po.example")
            .with_attr("from", "1111111@po.example/cli")
            .with_attr("type", kind.to_owned())
    }

    fn body(enc: Element) -> Element {
        Element::new(NS_CLIENT, "body").with_child(enc)
    }

    fn refused(m: &Element) -> String {
        match check(m) {
            Err(v) => v.0,
            Ok(()) => panic!("accepted: {}", m.to_xml(NS_CLIENT)),
        }
    }

    #[test]
    fn one_encrypted_body_with_chat_state_receipt_and_ids_passes() {
        for kind in ["chat", "normal", "headline", "groupchat"] {
            let m = message(kind)
                .with_child(body(sealed()))
                .with_child(Element::new(NS_CHATSTATES, "active"))
                .with_child(Element::new(NS_RECEIPTS, "request"))
                .with_child(Element::new(NS_SID, "origin-id").with_attr("id", "abc"))
                .with_child(Element::new(NS_HINTS, "store"));
            check(&m).unwrap();
        }
        // Protocol alone: a chat state, a receipt.
        check(&message("chat").with_child(Element::new(NS_CHATSTATES, "composing"))).unwrap();
        check(&message("chat").with_child(Element::new(NS_RECEIPTS, "received").with_attr("id", "m1"))).unwrap();
        // The EncryptedData directly in the message.
        check(&message("chat").with_child(sealed())).unwrap();
        // Formatting whitespace is not text.
        let mut m = message("chat");
        m.push_text("\n  ");
        m.push_child(body(sealed()));
        check(&m).unwrap();
    }

    #[test]
    fn a_clear_body_next_to_an_encrypted_data_is_refused() {
        let m =
            message("chat").with_child(Element::new(NS_CLIENT, "body").with_text("12 positive")).with_child(sealed());
        assert!(refused(&m).contains("body"));
        // Clear text in the body beside the EncryptedData.
        let mut b = body(sealed());
        b.push_text("12 positive");
        assert!(refused(&message("chat").with_child(b)).contains("text"));
        // Two encrypted bodies.
        let m = message("chat").with_child(body(sealed())).with_child(body(sealed()));
        assert_eq!(refused(&m), "more than one EncryptedData");
        // A plain clear body, of every type.
        for kind in ["chat", "normal", "headline", "groupchat", "error"] {
            let m = message(kind).with_child(Element::new(NS_CLIENT, "body").with_text("klartekst"));
            refused(&m);
        }
    }

    #[test]
    fn headline_groupchat_and_error_messages_are_checked_too() {
        let clear = || Element::new(NS_CLIENT, "body").with_text("12 positive");
        refused(&message("headline").with_child(clear()));
        refused(&message("groupchat").with_child(clear()));
        let err = Element::new(NS_CLIENT, "error")
            .with_attr("type", "cancel")
            .with_child(Element::new(NS_STANZAS, "service-unavailable"));
        // An error with only its condition passes; with a clear body it does not.
        check(&message("error").with_child(err.clone())).unwrap();
        check(&message("error").with_child(body(sealed())).with_child(err.clone())).unwrap();
        refused(&message("error").with_child(clear()).with_child(err.clone()));
        // Error text is stripped, then the message passes.
        let mut m = message("error").with_child(
            err.clone()
                .with_child(Element::new(NS_STANZAS, "text").with_text("pasient 12345678901 positiv"))
                .with_child(Element::new("urn:example:app", "detail").with_text("mer")),
        );
        assert!(refused(&m).contains("error text"));
        strip_error_detail(&mut m);
        check(&m).unwrap();
        assert!(!m.to_xml(NS_CLIENT).contains("positiv"));
        // An <error> outside an error message is not protocol.
        refused(&message("chat").with_child(err));
    }

    #[test]
    fn subject_thread_text_xhtml_oob_and_unknown_elements_are_refused() {
        let m = message("chat").with_child(body(sealed()));
        let with = |c: Element| m.clone().with_child(c);
        assert!(refused(&with(Element::new(NS_CLIENT, "subject").with_text("utbrudd"))).contains("subject"));
        assert!(refused(&with(Element::new(NS_CLIENT, "thread").with_text("tråd-1"))).contains("thread"));
        let html = Element::new("http://jabber.org/protocol/xhtml-im", "html").with_child(
            Element::new("http://www.w3.org/1999/xhtml", "body")
                .with_child(Element::new("http://www.w3.org/1999/xhtml", "p").with_text("12 positive")),
        );
        assert!(refused(&with(html)).contains("html"));
        let oob = Element::new("jabber:x:oob", "x")
            .with_child(Element::new("jabber:x:oob", "url").with_text("https://example.org/rapport"));
        refused(&with(oob));
        refused(&with(Element::new("urn:example:private", "note").with_text("x")));
        refused(&with(Element::new("urn:example:private", "flag")));
        // An allowed protocol element holding text or a child.
        refused(&with(Element::new(NS_CHATSTATES, "active").with_text("skriver om 5401")));
        refused(&with(Element::new(NS_RECEIPTS, "request").with_child(Element::new(NS_CLIENT, "body"))));
        // An unknown attribute on an allowed element.
        refused(&with(Element::new(NS_CHATSTATES, "active").with_attr("note", "x")));
        // A thread id alone is text; an empty thread is not.
        check(&with(Element::new(NS_CLIENT, "thread"))).unwrap();
    }

    #[test]
    fn text_directly_in_the_message_is_refused() {
        let mut m = message("chat").with_child(body(sealed()));
        m.push_text("12 positive");
        assert!(refused(&m).contains("text in the message"));
    }

    #[test]
    fn an_encrypted_data_in_another_namespace_or_holding_clear_text_is_refused() {
        let fake = Element::new("urn:example:not-xenc", "EncryptedData").with_text("12 positive");
        assert!(refused(&message("chat").with_child(body(fake.clone()))).contains("namespace"));
        refused(&message("chat").with_child(fake));
        // The right namespace, but clear text inside.
        let clear = Element::new(NS_XENC, "EncryptedData").with_text("12 positive");
        refused(&message("chat").with_child(body(clear)));
        // A real one with text added at each level it could hide in.
        let mut e = sealed();
        e.push_text("12 positive");
        refused(&message("chat").with_child(body(e)));
        let mut e = sealed();
        e.push_child(Element::new(NS_XENC, "CipherReference").with_text("12 positive"));
        refused(&message("chat").with_child(body(e)));
        // A cipher value that is not base64, or too short to be ciphertext.
        for value in ["12 positive i 5401!", "MTIgcG9z"] {
            let e = rebuild(&sealed(), &|el: &mut Element| {
                if el.is(NS_XENC, "CipherValue") {
                    el.nodes_mut().clear();
                    el.push_text(value);
                }
            });
            refused(&message("chat").with_child(body(e)));
        }
        // No EncryptedKey.
        let e = rebuild(&sealed(), &|el: &mut Element| {
            if el.is(NS_DSIG, "KeyInfo") {
                el.take_children(|c| c.is(NS_XENC, "EncryptedKey"));
            }
        });
        assert!(refused(&message("chat").with_child(body(e))).contains("without EncryptedKey"));
        // A KeyName (free text) instead of issuer and serial.
        let e = rebuild(&sealed(), &|el: &mut Element| {
            if el.is(NS_DSIG, "X509Data") {
                *el = Element::new(NS_DSIG, "KeyName").with_text("12 positive");
            }
        });
        refused(&message("chat").with_child(body(e)));
        // Clear text as the issuer name.
        let e = rebuild(&sealed(), &|el: &mut Element| {
            if el.is(NS_DSIG, "X509IssuerName") {
                el.nodes_mut().clear();
                el.push_text("12 positive i Sandefjord");
            }
        });
        refused(&message("chat").with_child(body(e)));
    }

    /// A copy of `el` with `f` applied to every element, depth first.
    fn rebuild(el: &Element, f: &dyn Fn(&mut Element)) -> Element {
        let mut out = el.clone();
        fn walk(e: &mut Element, f: &dyn Fn(&mut Element)) {
            f(e);
            for n in e.nodes_mut() {
                if let Node::Element(c) = n {
                    walk(c, f);
                }
            }
        }
        walk(&mut out, f);
        out
    }

    #[test]
    fn the_servers_pubsub_notification_passes_and_a_clear_item_does_not() {
        let notification = |payload: Element| {
            message("normal").with_child(
                Element::new(NS_PUBSUB_EVENT, "event").with_child(
                    Element::new(NS_PUBSUB_EVENT, "items").with_attr("node", "alerts/INFA/5401").with_child(
                        Element::new(NS_PUBSUB_EVENT, "item")
                            .with_attr("id", "INFA-5401-2026W47")
                            .with_attr("publisher", "search@lab.example")
                            .with_child(payload),
                    ),
                ),
            )
        };
        let alert = Element::new(NS_ALERT, "alert").with_attr("kind", "signal").with_child(sealed());
        check(&notification(alert)).unwrap();
        let clear = Element::new(NS_ALERT, "alert")
            .with_attr("kind", "signal")
            .with_child(Element::new(NS_ALERT, "detail").with_attr("analysis", "INFA").with_text("12 positive"));
        refused(&notification(clear));
        refused(&notification(Element::new("urn:example:other", "entry").with_text("12 positive")));
        // A retraction notification carries no content.
        let retract = message("normal").with_child(
            Element::new(NS_PUBSUB_EVENT, "event").with_child(
                Element::new(NS_PUBSUB_EVENT, "items")
                    .with_attr("node", "alerts/INFA/5401")
                    .with_child(Element::new(NS_PUBSUB_EVENT, "retract").with_attr("id", "gp-1")),
            ),
        );
        check(&retract).unwrap();
    }
}
