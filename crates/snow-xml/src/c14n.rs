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

/// Where canonical output goes: a `String`, or straight into a MAC.
pub trait Sink {
    fn put(&mut self, s: &str);
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// The canonical form of `el` and its subtree.
pub fn exclusive(el: &Element) -> String {
    let mut out = String::with_capacity(256 + text_len(el));
    write(el, &mut out, &[("", "")], &|ns: &str| -> &str { ns });
    out
}

/// [`exclusive_stanza`] into any sink (a MAC, without building a string).
pub fn write_exclusive_stanza<S: Sink>(el: &Element, sink: &mut S) {
    write(el, sink, &[("", "")], &stream_ns_as_client);
}

/// The canonical form of a stanza, with the stream namespace it travelled
/// in (`jabber:server`, `jabber:component:accept`) written as
/// `jabber:client`: it changes from hop to hop, the stanza does not.
pub fn exclusive_stanza(el: &Element) -> String {
    let mut out = String::with_capacity(256 + text_len(el));
    write(el, &mut out, &[("", "")], &stream_ns_as_client);
    out
}

/// The text in `el`'s subtree, to size the output once.
fn text_len(el: &Element) -> usize {
    el.nodes()
        .iter()
        .map(|n| match n {
            Node::Element(c) => 64 + text_len(c),
            Node::Text(t) => t.len(),
        })
        .sum()
}

fn stream_ns_as_client(ns: &str) -> &str {
    if same(ns, crate::NS_SERVER) || same(ns, crate::NS_COMPONENT) {
        crate::NS_CLIENT
    } else {
        ns
    }
}

/// String equality for the short names c14n compares over and over: the
/// same static constant is recognised by its address, and the rest is an
/// inline loop rather than a libc `memcmp` call (which dominated the
/// canonicalization of small stanzas).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.as_ptr() == b.as_ptr() || a.bytes().zip(b.bytes()).all(|(x, y)| x == y))
}

/// Attribute order: by namespace URI, then local name (inline, as `same`).
fn attr_before(a: &crate::element::Attr, b: &crate::element::Attr) -> bool {
    let ns = if same(&a.ns, &b.ns) { std::cmp::Ordering::Equal } else { a.ns.bytes().cmp(b.ns.bytes()) };
    ns.then_with(|| a.name.bytes().cmp(b.name.bytes())) == std::cmp::Ordering::Greater
}

/// `rendered`: namespace declarations in scope in the output, innermost
/// last; `norm`: how element namespaces are written.
fn write<S: Sink>(el: &Element, out: &mut S, rendered: &[(&str, &str)], norm: &dyn for<'a> Fn(&'a str) -> &'a str) {
    // `rendered[0]` is always the default namespace in scope; prefixed
    // declarations follow. Most stanzas declare nothing but default
    // namespaces, and that path allocates nothing.
    let default_in_scope = rendered.iter().rev().find(|(p, _)| p.is_empty()).map(|(_, u)| *u);
    let in_scope = |prefix: &str| rendered.iter().rev().find(|(p, _)| same(p, prefix)).map(|(_, u)| *u);
    // The prefixes this element's attributes use, as write_xml assigns them.
    let mut prefixes: Vec<(String, &str)> = Vec::new();
    for a in el.attrs() {
        if !a.ns.is_empty() && a.ns != NS_XML && !prefixes.iter().any(|(_, u)| *u == a.ns) {
            prefixes.push((format!("a{}", prefixes.len()), a.ns.as_str()));
        }
    }
    let prefix_of = |ns: &str| -> &str {
        if ns == NS_XML {
            return "xml";
        }
        prefixes.iter().find(|(_, u)| *u == ns).map(|(p, _)| p.as_str()).unwrap_or("")
    };
    // Visibly utilized declarations not already rendered: the default
    // namespace first, then prefixes in order.
    let ns = norm(el.ns());
    let new_default = (!default_in_scope.is_some_and(|d| same(d, ns))).then_some(ns);
    let mut decls: Vec<(&str, &str)> = Vec::new();
    for (p, u) in &prefixes {
        if in_scope(p) != Some(*u) {
            decls.push((p.as_str(), u));
        }
    }
    decls.sort();
    out.put("<");
    out.put(el.name());
    if let Some(u) = new_default {
        out.put(" xmlns=\"");
        push_attr(out, u);
        out.put("\"");
    }
    for (p, u) in &decls {
        out.put(" xmlns:");
        out.put(p);
        out.put("=\"");
        push_attr(out, u);
        out.put("\"");
    }
    // Attributes by (namespace, name); a few are ordered on the stack.
    let attrs = el.attrs();
    let mut order = [0usize; 16];
    let sorted: Vec<usize>;
    let order: &[usize] = if attrs.len() <= order.len() {
        for i in 0..attrs.len() {
            order[i] = i;
            let mut j = i;
            while j > 0 && attr_before(&attrs[order[j - 1]], &attrs[order[j]]) {
                order.swap(j - 1, j);
                j -= 1;
            }
        }
        &order[..attrs.len()]
    } else {
        let mut v: Vec<usize> = (0..attrs.len()).collect();
        v.sort_by(|a, b| (&attrs[*a].ns, &attrs[*a].name).cmp(&(&attrs[*b].ns, &attrs[*b].name)));
        sorted = v;
        &sorted
    };
    for &i in order {
        let a = &attrs[i];
        out.put(" ");
        if !a.ns.is_empty() {
            out.put(prefix_of(&a.ns));
            out.put(":");
        }
        out.put(&a.name);
        out.put("=\"");
        push_attr(out, &a.value);
        out.put("\"");
    }
    out.put(">");
    // A new scope only when something was declared.
    let scope: Vec<(&str, &str)>;
    let one: [(&str, &str); 1];
    let scope: &[(&str, &str)] = match (new_default, decls.is_empty()) {
        (None, true) => rendered,
        (Some(u), true) if rendered.len() == 1 => {
            one = [("", u)];
            &one
        }
        _ => {
            scope = rendered.iter().copied().chain(new_default.map(|u| ("", u))).chain(decls.iter().copied()).collect();
            &scope
        }
    };
    for n in el.nodes() {
        match n {
            Node::Element(c) => write(c, out, scope, norm),
            Node::Text(t) => push_text(out, t),
        }
    }
    out.put("</");
    out.put(el.name());
    out.put(">");
}

/// The exclusive canonical form of `el` with the prefixes the document was
/// written with (`written`, from [`crate::written::parse_document_written`];
/// `index` is `el`'s document-order index in it): what another signer
/// (xmlsec1, say) canonicalized. `None` when `written` does not describe
/// `el`'s subtree.
///
/// Namespace declarations follow the exclusive rule: a prefix (or the
/// default namespace) is declared on the first output element that uses
/// it, in an element name or an attribute name, unless the nearest output
/// ancestor already declared it with the same URI. No InclusiveNamespaces
/// PrefixList: declarations used only in content (QNames in text or
/// attribute values) are not carried.
pub fn exclusive_written(el: &Element, written: &crate::written::Written, index: usize) -> Option<String> {
    let mut out = String::with_capacity(256 + text_len(el));
    let mut next = index;
    let mut scope: Vec<(String, String)> = vec![(String::new(), String::new())];
    write_written(el, &mut out, &mut scope, written, &mut next)?;
    Some(out)
}

fn write_written(
    el: &Element,
    out: &mut String,
    scope: &mut Vec<(String, String)>,
    written: &crate::written::Written,
    next: &mut usize,
) -> Option<()> {
    let names = written.get(*next)?;
    *next += 1;
    let in_scope = |scope: &[(String, String)], p: &str| -> Option<String> {
        scope.iter().rev().find(|(q, _)| q == p).map(|(_, u)| u.clone())
    };
    // Visibly utilized namespaces: the element's, then its attributes'.
    let mut used: Vec<(&str, &str)> = vec![(names.prefix.as_str(), el.ns())];
    if names.prefix == "xml" || (!names.prefix.is_empty() && el.ns().is_empty()) {
        return None;
    }
    for a in el.attrs() {
        if a.ns.is_empty() || a.ns == NS_XML {
            continue;
        }
        let p = names.attr_prefix(&a.ns, &a.name)?;
        match used.iter().find(|(q, _)| *q == p) {
            Some((_, u)) if *u != a.ns => return None,
            Some(_) => {}
            None => used.push((p, a.ns.as_str())),
        }
    }
    let mut decls: Vec<(&str, &str)> =
        used.into_iter().filter(|(p, u)| in_scope(scope, p).as_deref() != Some(*u)).collect();
    decls.sort();
    out.push('<');
    if !names.prefix.is_empty() {
        out.push_str(&names.prefix);
        out.push(':');
    }
    out.push_str(el.name());
    for (p, u) in &decls {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        push_attr(out, u);
        out.push('"');
    }
    let mut attrs: Vec<&crate::element::Attr> = el.attrs().iter().collect();
    attrs.sort_by(|a, b| (&a.ns, &a.name).cmp(&(&b.ns, &b.name)));
    for a in attrs {
        out.push(' ');
        if a.ns == NS_XML {
            out.push_str("xml:");
        } else if !a.ns.is_empty() {
            out.push_str(names.attr_prefix(&a.ns, &a.name)?);
            out.push(':');
        }
        out.push_str(&a.name);
        out.push_str("=\"");
        push_attr(out, &a.value);
        out.push('"');
    }
    out.push('>');
    let depth = scope.len();
    scope.extend(decls.iter().map(|(p, u)| ((*p).to_owned(), (*u).to_owned())));
    for n in el.nodes() {
        match n {
            Node::Element(c) => write_written(c, out, scope, written, next)?,
            Node::Text(t) => push_text(out, t),
        }
    }
    scope.truncate(depth);
    out.push_str("</");
    if !names.prefix.is_empty() {
        out.push_str(&names.prefix);
        out.push(':');
    }
    out.push_str(el.name());
    out.push('>');
    Some(())
}

/// A byte table of `specials`, for the short-string path of [`clean`].
const fn table(specials: &[u8; 6]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = true;
        i += 1;
    }
    t
}

const TEXT_SPECIALS: [u8; 6] = *b"&<>\r\r\r";
const ATTR_SPECIALS: [u8; 6] = *b"&<\"\t\n\r";
static TEXT_TABLE: [bool; 256] = table(&TEXT_SPECIALS);
static ATTR_TABLE: [bool; 256] = table(&ATTR_SPECIALS);

/// True if `b` holds none of `specials`: a table lookup per byte for short
/// strings, SIMD (memchr) for long ones.
fn clean(b: &[u8], specials: &[u8; 6], table: &[bool; 256]) -> bool {
    if b.len() < 64 {
        return !b.iter().any(|&c| table[c as usize]);
    }
    let [a, b2, c, d, e, f] = *specials;
    let rest = if d == e && e == f { memchr::memchr(d, b) } else { memchr::memchr3(d, e, f, b) };
    memchr::memchr3(a, b2, c, b).is_none() && rest.is_none()
}

fn push_text<S: Sink>(out: &mut S, s: &str) {
    // Most text has nothing to escape and goes out whole.
    if clean(s.as_bytes(), &TEXT_SPECIALS, &TEXT_TABLE) {
        out.put(s);
        return;
    }
    escape_runs(out, s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '\r' => Some("&#xD;"),
        _ => None,
    });
}

fn push_attr<S: Sink>(out: &mut S, s: &str) {
    if clean(s.as_bytes(), &ATTR_SPECIALS, &ATTR_TABLE) {
        out.put(s);
        return;
    }
    escape_runs(out, s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '"' => Some("&quot;"),
        '\t' => Some("&#x9;"),
        '\n' => Some("&#xA;"),
        '\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Writes `s`, replacing the characters `escape` names, in runs.
fn escape_runs<S: Sink>(out: &mut S, s: &str, escape: impl Fn(char) -> Option<&'static str>) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if let Some(rep) = escape(c) {
            out.put(&s[start..i]);
            out.put(rep);
            start = i + c.len_utf8();
        }
    }
    out.put(&s[start..]);
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
    fn prefixes_as_written_are_kept() {
        let doc = "<p:r xmlns:p='urn:p' xmlns:q='urn:q' xmlns:unused='urn:u'><q:c b='2' q:a='&lt;' xml:lang='no'>\
                   <d xmlns='urn:d'><p:e/></d></q:c><f/></p:r>";
        let (el, written) = crate::written::parse_document_written(doc.as_bytes(), Limits::default()).unwrap();
        assert_eq!(
            exclusive_written(&el, &written, 0).unwrap(),
            "<p:r xmlns:p=\"urn:p\"><q:c xmlns:q=\"urn:q\" b=\"2\" xml:lang=\"no\" q:a=\"&lt;\"><d xmlns=\"urn:d\">\
             <p:e></p:e></d></q:c><f></f></p:r>"
        );
        // A subtree as the apex, by its document-order index.
        let c = el.children().next().unwrap();
        assert_eq!(
            exclusive_written(c, &written, 1).unwrap(),
            "<q:c xmlns:q=\"urn:q\" b=\"2\" xml:lang=\"no\" q:a=\"&lt;\"><d xmlns=\"urn:d\"><p:e xmlns:p=\"urn:p\"></p:e></d></q:c>"
        );
        // Unprefixed, it is what `exclusive` gives for the tree.
        let plain = "<r xmlns='urn:r'><c xmlns:a0='urn:q' a0:a='1'/><x xmlns=''/></r>";
        let (el, written) = crate::written::parse_document_written(plain.as_bytes(), Limits::default()).unwrap();
        assert_eq!(exclusive_written(&el, &written, 0).unwrap(), exclusive(&el));
        // A table that does not describe the tree.
        assert!(exclusive_written(&el, &written, 2).is_none());
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
