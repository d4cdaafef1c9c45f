//! The XMPP stanza carrier: the tag is the stanza's last child,
//!
//! ```xml
//! <auth xmlns='urn:snow:msgauth:1' source='search' kid='2026-11'
//!       epoch='1763780000123456' seq='42' ts='1763780001' mac='base64'/>
//! ```
//!
//! and the MAC covers the exclusive canonical form of the stanza without
//! it. The stream namespace (`jabber:client`, `jabber:server`,
//! `jabber:component:accept`) is normalized first: it changes from hop to
//! hop while the stanza does not.
//!
//! A confidential sender ([`Sender::confidential`]) seals the stanza's
//! content first: its children become one
//! `<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>` holding
//! Base64 `nonce ‖ ciphertext ‖ tag`, and the MAC covers the stanza with
//! it; the stanza's own attributes (`to`, `from`, `type`, `id`) stay
//! visible for routing ([`super::confidential`]).

use snow_xml::Element;

use super::{confidential, AuthError, Carrier, Receiver, Sender, Tag, Verified};

pub const NS_MSGAUTH: &str = "urn:snow:msgauth:1";

/// The `<auth/>` element for `tag` (its strings move into the element).
fn tag_element(tag: Tag) -> Element {
    let mac = tag.mac_base64();
    Element::new(NS_MSGAUTH, "auth")
        .with_attr("source", tag.source)
        .with_attr("kid", tag.kid)
        .with_attr("epoch", tag.epoch.to_string())
        .with_attr("seq", tag.seq.to_string())
        .with_attr("ts", tag.ts.to_string())
        .with_attr("mac", mac)
}

/// Reads an `<auth/>` element, taking its strings.
fn parse_tag(mut el: Element) -> Result<Tag, AuthError> {
    let mut need = |name: &str| el.remove_attr(name).ok_or_else(|| AuthError::Malformed(format!("no {name}")));
    let source = need("source")?;
    let kid = need("kid")?;
    let (epoch, seq, ts, mac) = (need("epoch")?, need("seq")?, need("ts")?, need("mac")?);
    if !super::valid_name(&source) || !super::valid_name(&kid) {
        return Err(AuthError::Malformed("bad source or key id".into()));
    }
    let number = |name: &str, v: &str| -> Result<u64, AuthError> {
        v.parse().map_err(|_| AuthError::Malformed(format!("{name} is not a number")))
    };
    Ok(Tag {
        source,
        kid,
        epoch: number("epoch", &epoch)?,
        seq: number("seq", &seq)?,
        ts: ts.parse().map_err(|_| AuthError::Malformed("ts is not a number".into()))?,
        mac: Tag::decode_mac(&mac)?,
    })
}

/// Outbound filter: signs `stanza` and appends the tag (replacing one
/// already there).
pub fn sign(sender: &Sender, stanza: &mut Element) -> Result<(), AuthError> {
    strip(stanza);
    let tag = sign_content(sender, Carrier::Stanza, stanza)?;
    stanza.push_child(tag_element(tag));
    Ok(())
}

/// Signs `stanza` (no tag in it) for `carrier`; a confidential sender's
/// stanza first has its content sealed into one `<encrypted/>` child.
/// Shared with the SHIM carrier.
pub(crate) fn sign_content(sender: &Sender, carrier: Carrier, stanza: &mut Element) -> Result<Tag, AuthError> {
    let mut draft = sender.draft()?;
    if sender.is_confidential() {
        let content = confidential::take_content(stanza);
        let sealed = draft.seal(carrier, content.as_bytes())?;
        stanza.push_child(confidential::encrypted_element(&sealed));
    }
    draft.finish(carrier, |m| snow_xml::c14n::write_exclusive_stanza(stanza, m))
}

/// Verifies `stanza` (its tag taken off) against `tag` for `carrier`;
/// sealed content is decrypted back into the stanza after the MAC and the
/// replay window pass. Shared with the SHIM carrier.
pub(crate) fn verify_content(
    receiver: &Receiver,
    carrier: Carrier,
    tag: &Tag,
    stanza: &mut Element,
) -> Result<Verified, AuthError> {
    match confidential::sealed_child(stanza)? {
        None => receiver.verify_with(carrier, tag, |m| snow_xml::c14n::write_exclusive_stanza(stanza, m)),
        Some(sealed) => {
            let (v, content) =
                receiver.verify_sealed(carrier, tag, |m| snow_xml::c14n::write_exclusive_stanza(stanza, m), &sealed)?;
            confidential::restore_content(stanza, &content)?;
            Ok(v)
        }
    }
}

/// Removes every `<auth/>` child; returns the last one.
fn strip(stanza: &mut Element) -> Option<Element> {
    let is_tag = |n: &snow_xml::Node| matches!(n, snow_xml::Node::Element(e) if e.is(NS_MSGAUTH, "auth"));
    let mut found = None;
    while let Some(i) = stanza.nodes().iter().rposition(is_tag) {
        let n = stanza.nodes_mut().remove(i);
        if found.is_none() {
            if let snow_xml::Node::Element(e) = n {
                found = Some(e);
            }
        }
    }
    found
}

/// Inbound filter: checks and removes the tag, leaving the stanza exactly
/// as the sender's filter got it. A stanza with no tag, or more than one,
/// is refused.
pub fn verify(receiver: &Receiver, stanza: &mut Element) -> Result<Verified, AuthError> {
    let tags = stanza.children().filter(|c| c.is(NS_MSGAUTH, "auth")).count();
    if tags == 0 {
        return Err(AuthError::Missing);
    }
    if tags > 1 {
        return Err(AuthError::Malformed("more than one tag".into()));
    }
    let last_is_tag = stanza.children().last().is_some_and(|c| c.is(NS_MSGAUTH, "auth"));
    if !last_is_tag {
        return Err(AuthError::Malformed("the tag must be the last child".into()));
    }
    let tag_el = strip(stanza).ok_or(AuthError::Missing)?;
    let tag = parse_tag(tag_el)?;
    verify_content(receiver, Carrier::Stanza, &tag, stanza)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::msgauth::tests::store;
    use snow_xml::{NS_CLIENT, NS_COMPONENT};

    /// A stanza as the other side of a component stream reads it.
    fn received(wire: &str) -> Element {
        let doc = format!("<stream xmlns='{NS_COMPONENT}'>{wire}</stream>");
        snow_xml::parse_document(doc.as_bytes(), snow_xml::Limits::default())
            .unwrap()
            .children()
            .next()
            .unwrap()
            .clone()
    }

    fn message() -> Element {
        snow_xml::parse_document(
            b"<message xmlns='jabber:client' to='search@lab.example/agent' from='po.example' type='chat'><body>ping &amp; pong</body></message>",
            snow_xml::Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn round_trip_across_serializations_and_namespaces() {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(Arc::clone(&s));
        let original = message();
        let mut m = original.clone();
        sign(&tx, &mut m).unwrap();
        // On the wire in a component stream, re-parsed on the other side.
        let wire = m.to_xml(NS_COMPONENT);
        let mut got = received(&wire);
        let v = verify(&rx, &mut got).unwrap();
        assert_eq!(v.source, "agent");
        got.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
        assert_eq!(got, original, "the receiver sees exactly what the sender's filter got");
    }

    fn secret_message(i: u32) -> Element {
        Element::new(NS_CLIENT, "message")
            .with_attr("to", "1111111@po.example")
            .with_attr("from", "echo.po.example")
            .with_attr("type", "chat")
            .with_attr("id", format!("m{i}"))
            .with_child(Element::new(NS_CLIENT, "body").with_text(format!("Influensa A: {i} positive i 5401")))
            .with_child(Element::new("urn:example:x", "extra").with_attr("k", "v"))
    }

    /// [`secret_message`] as the receiver sees it: parsed (attributes in
    /// the parser's order).
    fn parsed(i: u32) -> Element {
        snow_xml::parse_document(secret_message(i).to_xml("").as_bytes(), snow_xml::Limits::default()).unwrap()
    }

    #[test]
    fn the_confidential_stanza_carrier() {
        crate::msgauth::tests::check_confidential_carrier(
            |s, i| {
                let mut m = secret_message(i);
                sign(s, &mut m).unwrap();
                m.to_xml("").into_bytes()
            },
            |r, w| {
                let mut m = snow_xml::parse_document(w, snow_xml::Limits::default()).unwrap();
                verify(r, &mut m).map(|v| (v, m.to_xml("").into_bytes()))
            },
            |i| parsed(i).to_xml("").into_bytes(),
            |w| crate::msgauth::tests::flip_after(w, "alg='aes256-gcm'>"),
            "Influensa",
        );
    }

    /// What a confidential stanza shows on the wire: its attributes, one
    /// `<encrypted/>` and the tag; and it crosses stream namespaces as a
    /// clear one does.
    #[test]
    fn a_confidential_stanza_shows_only_its_routing() {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap().confidential(true);
        let rx = Receiver::new(Arc::clone(&s)).confidential(true);
        let mut m = secret_message(1);
        m.rename_ns_deep(NS_CLIENT, NS_COMPONENT);
        sign(&tx, &mut m).unwrap();
        let kids: Vec<&str> = m.children().map(|c| c.name()).collect();
        assert_eq!(kids, ["encrypted", "auth"]);
        for (k, v) in [("to", "1111111@po.example"), ("from", "echo.po.example"), ("type", "chat"), ("id", "m1")] {
            assert_eq!(m.attr(k), Some(v));
        }
        let wire = m.to_xml(NS_COMPONENT);
        assert!(!wire.contains("urn:example:x") && !wire.contains("body"), "{wire}");
        let mut got = received(&wire);
        verify(&rx, &mut got).unwrap();
        assert_eq!(got.ns(), NS_COMPONENT);
        got.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
        assert_eq!(got, parsed(1));
        // Sealed content beside clear content is refused.
        let mut m = secret_message(2);
        sign(&tx, &mut m).unwrap();
        let tag = m.nodes_mut().pop();
        m.push_child(Element::new(NS_CLIENT, "body").with_text("added"));
        if let Some(snow_xml::Node::Element(t)) = tag {
            m.push_child(t);
        }
        assert!(matches!(verify(&rx, &mut m), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn every_attack_is_detected() {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(Arc::clone(&s));
        let mut signed = message();
        sign(&tx, &mut signed).unwrap();
        // A changed byte.
        let mut m = signed.clone();
        m.set_attr("to", "other@lab.example");
        assert!(matches!(verify(&rx, &mut m), Err(AuthError::BadMac(_))));
        // Accepted once, then a replay.
        assert!(verify(&rx, &mut signed.clone()).is_ok());
        assert!(matches!(verify(&rx, &mut signed.clone()), Err(AuthError::Replay { .. })));
        // A missing message: a gap.
        let mut skipped = message();
        sign(&tx, &mut skipped).unwrap();
        let mut next = message();
        sign(&tx, &mut next).unwrap();
        assert_eq!(verify(&rx, &mut next).unwrap().lost, Some((2, 2)));
        // An unknown source, a wrong key, no tag at all.
        let mut m = message();
        sign(&tx, &mut m).unwrap();
        let mut forged = m.clone();
        let auth = forged.nodes_mut().pop();
        if let Some(snow_xml::Node::Element(mut a)) = auth {
            a.set_attr("source", "intruder");
            forged.push_child(a);
        }
        assert!(matches!(verify(&rx, &mut forged), Err(AuthError::UnknownSource(_))));
        let other = Arc::new(
            crate::msgauth::KeyStore::parse(
                &crate::msgauth::keys::generate_line("agent", "k1", crate::msgauth::Algorithm::HmacSha256, 0).unwrap(),
                0,
            )
            .unwrap(),
        );
        let mut wrong = message();
        sign(&Sender::new(other, "agent").unwrap(), &mut wrong).unwrap();
        assert!(matches!(verify(&rx, &mut wrong), Err(AuthError::BadMac(_))));
        assert!(matches!(verify(&rx, &mut message()), Err(AuthError::Missing)));
    }
}
