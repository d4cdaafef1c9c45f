//! The XML-message carrier (the seed's "simple XML messages"): two
//! elements appended as the root's last children,
//!
//! ```xml
//! <shiporder>…<SourceDigest>BASE64(source)</SourceDigest><HMAC kid='…' epoch='…'
//!   seq='…' ts='…'>BASE64(mac)</HMAC></shiporder>
//! ```
//!
//! The MAC covers the exclusive canonical form of the document without
//! them and with formatting whitespace (whitespace-only text) removed, as
//! the seed asks. The tags are inserted into the document's text and cut
//! out again, so the receiver gets the sender's document byte for byte.

use base64::Engine;
use snow_xml::{Element, Limits, Node};

use super::{valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

/// Largest document: 16 MiB, 100,000 elements, 64 levels.
pub fn limits() -> Limits {
    Limits { max_stanza_bytes: 16 * 1024 * 1024, max_depth: 64, max_attributes: 64, max_elements: 100_000 }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn strip_formatting(el: &mut Element) {
    el.nodes_mut().retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
    for n in el.nodes_mut() {
        if let Node::Element(c) = n {
            strip_formatting(c);
        }
    }
}

fn canonical(doc: &Element) -> String {
    let mut d = doc.clone();
    strip_formatting(&mut d);
    snow_xml::c14n::exclusive(&d)
}

fn parse(doc: &str) -> Result<Element, AuthError> {
    snow_xml::parse_document(doc.as_bytes(), limits())
        .map_err(|e| AuthError::Malformed(format!("not a well-formed document: {}", e.detail)))
}

/// Outbound filter: `doc` with the two tag elements inside its root.
pub fn sign(sender: &Sender, doc: &str) -> Result<String, AuthError> {
    let root = parse(doc)?;
    let t = sender.sign(Carrier::Xml, canonical(&root).as_bytes())?;
    let tags = format!(
        "<SourceDigest>{}</SourceDigest><HMAC kid='{}' epoch='{}' seq='{}' ts='{}'>{}</HMAC>",
        b64().encode(&t.source),
        t.kid,
        t.epoch,
        t.seq,
        t.ts,
        t.mac_base64()
    );
    let body = doc.trim_end();
    let tail = &doc[body.len()..];
    if let Some(open) = body.strip_suffix("/>") {
        // `<root …/>`: the end tag appears.
        return Ok(format!("{open}>{tags}</{}>{tail}", root.name()));
    }
    let end = body.rfind("</").ok_or_else(|| AuthError::Malformed("no end tag".into()))?;
    Ok(format!("{}{tags}{}{tail}", &body[..end], &body[end..]))
}

/// Inbound filter: checks the tags and returns the document without them.
pub fn verify(receiver: &Receiver, doc: &str) -> Result<(Verified, String), AuthError> {
    let root = parse(doc)?;
    let kids: Vec<&Element> = root.children().collect();
    let [.., digest, hmac] = kids[..] else { return Err(AuthError::Missing) };
    if !digest.is("", "SourceDigest") || !hmac.is("", "HMAC") {
        return Err(AuthError::Missing);
    }
    let bad = |what: &str| AuthError::Malformed(format!("the {what} is malformed"));
    let source = b64()
        .decode(digest.text().trim())
        .ok()
        .and_then(|s| String::from_utf8(s).ok())
        .filter(|s| valid_name(s))
        .ok_or_else(|| bad("SourceDigest"))?;
    let attr = |n: &str| hmac.attr(n).ok_or_else(|| bad("HMAC element"));
    let kid = attr("kid")?;
    if !valid_name(kid) {
        return Err(bad("key id"));
    }
    let tag = Tag {
        source,
        kid: kid.to_owned(),
        epoch: attr("epoch")?.parse().map_err(|_| bad("epoch"))?,
        seq: attr("seq")?.parse().map_err(|_| bad("sequence"))?,
        ts: attr("ts")?.parse().map_err(|_| bad("time"))?,
        mac: Tag::decode_mac(&hmac.text())?,
    };
    // Cut the tags out of the text; what is left is what gets verified and
    // handed on, so the two cannot differ.
    let start = doc.rfind("<SourceDigest").ok_or(AuthError::Missing)?;
    let end = doc.rfind("</HMAC>").filter(|e| *e > start).ok_or(AuthError::Missing)? + "</HMAC>".len();
    let original = format!("{}{}", &doc[..start], &doc[end..]);
    let verified = receiver.verify(Carrier::Xml, &tag, canonical(&parse(&original)?).as_bytes())?;
    Ok((verified, original))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::check_carrier;

    const ORDER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<shiporder orderid=\"889923\">\n <orderperson>Synthetic Person</orderperson>\n <item><title>Empire</title><quantity>N</quantity></item>\n</shiporder>\n";

    #[test]
    fn the_xml_message_carrier() {
        check_carrier(
            |s, i| sign(s, &ORDER.replace('N', &i.to_string())).unwrap(),
            verify,
            |i| ORDER.replace('N', &i.to_string()),
        );
    }

    #[test]
    fn formatting_does_not_matter_and_empty_roots_work() {
        let s = crate::msgauth::tests::store();
        let tx = Sender::new(std::sync::Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(s);
        let signed = sign(&tx, ORDER).unwrap();
        // Reformatted on the way: whitespace between elements only.
        let squeezed = signed.replace("\n <", "<").replace(">\n</shiporder>", "></shiporder>");
        assert!(verify(&rx, &squeezed).is_ok());
        let (_, back) = verify(&rx, &sign(&tx, "<ping a='1'/>").unwrap()).unwrap();
        assert_eq!(back, "<ping a='1'></ping>");
    }
}
