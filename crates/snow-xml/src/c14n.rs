//! Exclusive XML Canonicalization 1.0 without comments (W3C
//! `xml-exc-c14n`), of an element as the apex of its own document: what
//! message authentication signs, so that a stanza re-serialized on the way
//! (other quotes, attribute order, redundant namespace declarations) still
//! verifies.
//!
//! The tree keeps namespaces, not prefixes, so prefixes are fixed the way
//! [`Element::write_xml`] writes them: elements in default namespaces,
//! namespaced attributes as `xml:` or `a0:`, `a1:`… in order of
//! appearance. For a document written that way the output is byte for
//! byte what `xmllint --exc-c14n` prints (checked in `scripts/interop`).

use crate::element::{Element, Node};
use crate::NS_XML;

/// The canonical form of `el` and its subtree.
pub fn exclusive(el: &Element) -> String {
    let mut out = String::new();
    write(el, &mut out, &[("", "")]);
    out
}

/// `rendered`: namespace declarations in scope in the output, innermost last.
fn write(el: &Element, out: &mut String, rendered: &[(&str, &str)]) {
    let in_scope = |prefix: &str| rendered.iter().rev().find(|(p, _)| *p == prefix).map(|(_, u)| *u);
    // The prefixes this element's attributes use, as write_xml assigns them.
    let mut prefixes: Vec<(String, &str)> = Vec::new();
    for a in el.attrs() {
        if !a.ns.is_empty() && a.ns != NS_XML && !prefixes.iter().any(|(_, u)| *u == a.ns) {
            prefixes.push((format!("a{}", prefixes.len()), a.ns.as_str()));
        }
    }
    let prefix_of = |ns: &str| -> String {
        if ns == NS_XML {
            return "xml".into();
        }
        prefixes.iter().find(|(_, u)| *u == ns).map(|(p, _)| p.clone()).unwrap_or_default()
    };
    // Visibly utilized declarations not already rendered, sorted by prefix
    // (the default namespace first).
    let mut decls: Vec<(String, &str)> = Vec::new();
    if in_scope("") != Some(el.ns()) {
        decls.push((String::new(), el.ns()));
    }
    for (p, u) in &prefixes {
        if in_scope(p) != Some(*u) {
            decls.push((p.clone(), u));
        }
    }
    decls.sort();
    out.push('<');
    out.push_str(el.name());
    for (p, u) in &decls {
        out.push_str(if p.is_empty() { " xmlns" } else { " xmlns:" });
        out.push_str(p);
        out.push_str("=\"");
        push_attr(out, u);
        out.push('"');
    }
    let mut attrs: Vec<_> = el.attrs().iter().collect();
    attrs.sort_by(|a, b| (a.ns.as_str(), a.name.as_str()).cmp(&(b.ns.as_str(), b.name.as_str())));
    for a in attrs {
        out.push(' ');
        if !a.ns.is_empty() {
            out.push_str(&prefix_of(&a.ns));
            out.push(':');
        }
        out.push_str(&a.name);
        out.push_str("=\"");
        push_attr(out, &a.value);
        out.push('"');
    }
    out.push('>');
    let mut scope: Vec<(&str, &str)> = rendered.to_vec();
    scope.extend(decls.iter().map(|(p, u)| (p.as_str(), *u)));
    for n in el.nodes() {
        match n {
            Node::Element(c) => write(c, out, &scope),
            Node::Text(t) => push_text(out, t),
        }
    }
    out.push_str("</");
    out.push_str(el.name());
    out.push('>');
}

fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn push_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_document, Limits};

    fn c14n(xml: &str) -> String {
        exclusive(&parse_document(xml.as_bytes(), Limits::default()).unwrap())
    }

    #[test]
    fn serializations_of_one_stanza_agree() {
        let a = c14n("<message xmlns='jabber:client' to='b@x' from='a@x' type='chat'><body>1 &lt; 2 &amp; \"q\"</body></message>");
        let b = c14n(
            r#"<message type="chat" from="a@x" to="b@x" xmlns="jabber:client"><body xmlns="jabber:client">1 &lt; 2 &amp; &quot;q&quot;</body></message>"#,
        );
        assert_eq!(a, b);
        assert_eq!(
            a,
            r#"<message xmlns="jabber:client" from="a@x" to="b@x" type="chat"><body>1 &lt; 2 &amp; "q"</body></message>"#
        );
    }

    #[test]
    fn namespaces_are_declared_where_used_and_attributes_sorted() {
        let out = c14n(
            "<iq xmlns='jabber:client' type='get' id='1'><query xmlns='urn:x'><item xml:lang='no' b='2' a='&#9;&#10;'/></query><x xmlns=''/></iq>",
        );
        assert_eq!(
            out,
            "<iq xmlns=\"jabber:client\" id=\"1\" type=\"get\"><query xmlns=\"urn:x\"><item a=\"&#x9;&#xA;\" b=\"2\" \
             xml:lang=\"no\"></item></query><x xmlns=\"\"></x></iq>"
        );
    }

    #[test]
    fn what_write_xml_writes_canonicalizes_to_the_same() {
        let el = parse_document(
            b"<r xmlns='urn:r' xmlns:p='urn:p'><c p:k='v' xml:lang='en' t='&#9;&#10;&#13;'>t&#13;</c></r>",
            Limits::default(),
        )
        .unwrap();
        let again = parse_document(el.to_xml("").as_bytes(), Limits::default()).unwrap();
        assert_eq!(again, el, "write_xml keeps every character");
        assert_eq!(exclusive(&el), exclusive(&again));
        assert!(
            exclusive(&el)
                .contains("<c xmlns:a0=\"urn:p\" t=\"&#x9;&#xA;&#xD;\" xml:lang=\"en\" a0:k=\"v\">t&#xD;</c>"),
            "{}",
            exclusive(&el)
        );
    }
}
