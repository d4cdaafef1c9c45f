//! The message-property carrier: XEP-0131 Stanza Headers (SHIM), the XMPP
//! form of the seed's broker message properties,
//!
//! ```xml
//! <headers xmlns='http://jabber.org/protocol/shim'>
//!   <header name='Source'>search</header>
//!   <header name='HMAC'>base64</header>
//!   <header name='HMAC-Key-Id'>2026-11</header>
//!   <header name='HMAC-Epoch'>…</header><header name='HMAC-Seq'>…</header>
//!   <header name='HMAC-Time'>…</header>
//! </headers>
//! ```
//!
//! as the stanza's last child; the MAC covers the canonical stanza without
//! it (as the stanza carrier's does). A confidential sender seals the
//! stanza's content as the stanza carrier does: one
//! `<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>` child before
//! the headers ([`super::confidential`]).

use snow_xml::Element;

use super::{valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

pub const NS_SHIM: &str = "http://jabber.org/protocol/shim";

fn header(name: &str, value: String) -> Element {
    Element::new(NS_SHIM, "header").with_attr("name", name).with_text(value)
}

/// Outbound filter.
pub fn sign(sender: &Sender, stanza: &mut Element) -> Result<(), AuthError> {
    let t = super::stanza::sign_content(sender, Carrier::Shim, stanza)?;
    let mut h = Element::new(NS_SHIM, "headers");
    h.push_child(header("Source", t.source.clone()));
    h.push_child(header("HMAC", t.mac_base64()));
    h.push_child(header("HMAC-Key-Id", t.kid.clone()));
    h.push_child(header("HMAC-Epoch", t.epoch.to_string()));
    h.push_child(header("HMAC-Seq", t.seq.to_string()));
    h.push_child(header("HMAC-Time", t.ts.to_string()));
    stanza.push_child(h);
    Ok(())
}

/// Inbound filter: checks and removes the headers.
pub fn verify(receiver: &Receiver, stanza: &mut Element) -> Result<Verified, AuthError> {
    let last = stanza.children().last().filter(|c| c.is(NS_SHIM, "headers")).cloned().ok_or(AuthError::Missing)?;
    let get = |name: &str| -> Result<String, AuthError> {
        let mut values = last.children().filter(|h| h.is(NS_SHIM, "header") && h.attr("name") == Some(name));
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(v.text().trim().to_owned()),
            (None, _) => Err(AuthError::Missing),
            _ => Err(AuthError::Malformed(format!("header {name} twice"))),
        }
    };
    let bad = |what: &str| AuthError::Malformed(format!("header {what} is malformed"));
    let (source, kid) = (get("Source")?, get("HMAC-Key-Id")?);
    if !valid_name(&source) || !valid_name(&kid) {
        return Err(bad("Source or HMAC-Key-Id"));
    }
    let tag = Tag {
        source,
        kid,
        epoch: get("HMAC-Epoch")?.parse().map_err(|_| bad("HMAC-Epoch"))?,
        seq: get("HMAC-Seq")?.parse().map_err(|_| bad("HMAC-Seq"))?,
        ts: get("HMAC-Time")?.parse().map_err(|_| bad("HMAC-Time"))?,
        mac: Tag::decode_mac(&get("HMAC")?)?,
    };
    if let Some(i) =
        stanza.nodes().iter().rposition(|n| matches!(n, snow_xml::Node::Element(e) if e.is(NS_SHIM, "headers")))
    {
        stanza.nodes_mut().remove(i);
    }
    super::stanza::verify_content(receiver, Carrier::Shim, &tag, stanza)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::{check_carrier, check_confidential_carrier};

    fn message(i: u32) -> Element {
        Element::new(snow_xml::NS_CLIENT, "message")
            .with_attr("to", "echo.po.example")
            .with_child(Element::new(snow_xml::NS_CLIENT, "body").with_text(format!("echo {i}")))
    }

    #[test]
    fn the_confidential_shim_carrier() {
        check_confidential_carrier(
            |s, i| {
                let mut m = message(i);
                sign(s, &mut m).unwrap();
                let w = m.to_xml("");
                assert!(w.contains("<header name='HMAC-Epoch'>"), "{w}");
                assert_eq!(w.contains("<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>"), s.is_confidential());
                w.into_bytes()
            },
            |r, w| {
                let mut m = snow_xml::parse_document(w, snow_xml::Limits::default()).unwrap();
                verify(r, &mut m).map(|v| (v, m.to_xml("").into_bytes()))
            },
            |i| message(i).to_xml("").into_bytes(),
            |w| crate::msgauth::tests::flip_after(w, "alg='aes256-gcm'>"),
            "echo ",
        );
    }

    #[test]
    fn the_shim_carrier() {
        check_carrier(
            |s, i| {
                let mut m = message(i);
                sign(s, &mut m).unwrap();
                m.to_xml("")
            },
            |r, w| {
                let mut m = snow_xml::parse_document(w.as_bytes(), snow_xml::Limits::default()).unwrap();
                verify(r, &mut m).map(|v| (v, m.to_xml("")))
            },
            |i| message(i).to_xml(""),
        );
    }
}
