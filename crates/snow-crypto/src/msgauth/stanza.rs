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

use snow_xml::Element;

use super::{AuthError, Carrier, Receiver, Sender, Tag, Verified};

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
    let tag = sender.sign_with(Carrier::Stanza, |m| snow_xml::c14n::write_exclusive_stanza(stanza, m))?;
    stanza.push_child(tag_element(tag));
    Ok(())
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
    receiver.verify_with(Carrier::Stanza, &tag, |m| snow_xml::c14n::write_exclusive_stanza(stanza, m))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::msgauth::tests::store;
    use snow_xml::{NS_CLIENT, NS_COMPONENT};

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
        let mut got = snow_xml::parse_document(
            format!("<stream xmlns='{NS_COMPONENT}'>{wire}</stream>").as_bytes(),
            snow_xml::Limits::default(),
        )
        .unwrap()
        .children()
        .next()
        .unwrap()
        .clone();
        let v = verify(&rx, &mut got).unwrap();
        assert_eq!(v.source, "agent");
        got.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
        assert_eq!(got, original, "the receiver sees exactly what the sender's filter got");
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
