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
//!
//! A confidential sender seals the whole document (declaration, root
//! attributes, content: byte for byte); what travels is the root's name
//! around one `<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>`
//! with Base64 `nonce ‖ ciphertext ‖ tag` (the root's local name only, in
//! no namespace), then the two tags:
//!
//! ```xml
//! <shiporder><encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>…</encrypted><SourceDigest>…</SourceDigest><HMAC …>…</HMAC></shiporder>
//! ```
//!
//! The MAC covers that envelope; the receiver decrypts after it passes
//! and takes the document only if its root has the envelope's local name
//! ([`super::confidential`]).

use base64::Engine;
use snow_xml::{Element, Limits, Node};

use super::{confidential, valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

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
    if sender.is_confidential() {
        let mut draft = sender.draft()?;
        let sealed = draft.seal(Carrier::Xml, doc.as_bytes())?;
        // The envelope's root is in no namespace (the tags are read in
        // none): only the local name shows.
        let envelope = Element::new("", root.name().to_owned()).with_child(confidential::encrypted_element(&sealed));
        let t = draft.finish(Carrier::Xml, |m| m.update(canonical(&envelope).as_bytes()))?;
        return Ok(with_tags(&envelope.to_xml(""), &envelope, &t));
    }
    let t = sender.sign(Carrier::Xml, canonical(&root).as_bytes())?;
    Ok(with_tags(doc, &root, &t))
}

/// `doc` (whose root is `root`) with the tags of `t` as the root's last
/// children.
fn with_tags(doc: &str, root: &Element, t: &Tag) -> String {
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
        return format!("{open}>{tags}</{}>{tail}", root.name());
    }
    // A well-formed document that does not end in `/>` ends in an end tag.
    let end = body.rfind("</").unwrap_or(body.len());
    format!("{}{tags}{}{tail}", &body[..end], &body[end..])
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
    let envelope = parse(&original)?;
    let Some(sealed) = confidential::sealed_child(&envelope)? else {
        let verified = receiver.verify(Carrier::Xml, &tag, canonical(&envelope).as_bytes())?;
        return Ok((verified, original));
    };
    let (verified, plain) =
        receiver.verify_sealed(Carrier::Xml, &tag, |m| m.update(canonical(&envelope).as_bytes()), &sealed)?;
    let plain =
        String::from_utf8(plain).map_err(|_| AuthError::Malformed("the decrypted document is not UTF-8".into()))?;
    let root = parse(&plain)?;
    if root.name() != envelope.name() {
        return Err(AuthError::Malformed("the decrypted document's root is not the envelope's".into()));
    }
    Ok((verified, plain))
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
    fn the_confidential_xml_message_carrier() {
        crate::msgauth::tests::check_confidential_carrier(
            |s, i| {
                let w = sign(s, &ORDER.replace('N', &i.to_string())).unwrap();
                if s.is_confidential() {
                    assert!(w.starts_with("<shiporder><encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>"), "{w}");
                    assert!(!w.contains("889923"), "the root's attributes are sealed too: {w}");
                }
                w.into_bytes()
            },
            |r, w| verify(r, std::str::from_utf8(w).unwrap()).map(|(v, d)| (v, d.into_bytes())),
            |i| ORDER.replace('N', &i.to_string()).into_bytes(),
            |w| crate::msgauth::tests::flip_after(w, "alg='aes256-gcm'>"),
            "Synthetic Person",
        );
    }

    /// A namespaced root travels as its local name only, and comes back
    /// byte for byte; an envelope whose name is not the document's root
    /// is refused.
    #[test]
    fn a_confidential_document_keeps_its_namespace_and_root() {
        let s = crate::msgauth::tests::store();
        let tx = Sender::new(std::sync::Arc::clone(&s), "agent").unwrap().confidential(true);
        let rx = Receiver::new(s).confidential(true);
        let doc = "<?xml version='1.0'?><r:report xmlns:r='urn:example:report'><r:week>47</r:week></r:report>";
        let w = sign(&tx, doc).unwrap();
        assert!(w.starts_with("<report><encrypted ") && !w.contains("urn:example"), "{w}");
        assert_eq!(verify(&rx, &w).unwrap().1, doc);
        let renamed = sign(&tx, doc).unwrap().replace("<report>", "<order>").replace("</report>", "</order>");
        assert!(verify(&rx, &renamed).is_err());
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
