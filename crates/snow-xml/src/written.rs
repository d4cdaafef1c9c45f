//! The namespace prefixes a document was written with.
//!
//! [`Element`] keeps namespaces, not prefixes, which is what routing and
//! every Snow reader want. But a signature made by another tool (xmlsec1,
//! a `ds:`-prefixed template) covers the exclusive canonical form of the
//! document *as written*, prefixes included: to verify it, the canonical
//! form must be rebuilt with the same prefixes
//! ([`crate::c14n::exclusive_written`]). [`parse_document_written`] reads
//! a document twice: once with the usual parser (all its limits and
//! refusals, giving the tree) and once without namespace resolution, to
//! note each element's and attribute's prefix, element by element in
//! document order.

use rxml::error::EndOrError;
use rxml::{Parse, RawEvent, RawParser, WithOptions};

use crate::error::{StreamErrorCondition as Cond, XmlError};
use crate::{parse_document, Element, Limits, NS_XML};

/// The prefixes of one element, as written: its own (`""` when it is in
/// the default namespace) and each namespaced attribute's, by namespace and
/// local name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenNames {
    pub prefix: String,
    /// `(namespace, local name, prefix)` of every attribute with a prefix
    /// other than `xml`.
    pub attrs: Vec<(String, String, String)>,
}

impl WrittenNames {
    /// The prefix the attribute `{ns}name` was written with.
    pub fn attr_prefix(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, l, _)| n == ns && l == name).map(|(_, _, p)| p.as_str())
    }
}

/// Every element's [`WrittenNames`], in document order (the root is 0, then
/// depth first): index `i` belongs to the `i`-th start tag of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    elements: Vec<WrittenNames>,
}

impl Written {
    /// The names of the element with document-order index `i`.
    pub fn get(&self, i: usize) -> Option<&WrittenNames> {
        self.elements.get(i)
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

/// Number of elements in `el`'s subtree, `el` included (its document-order
/// span). Iterative: any tree, however deep.
pub fn element_count(el: &Element) -> usize {
    let mut n = 0;
    let mut stack = vec![el];
    while let Some(e) = stack.pop() {
        n += 1;
        stack.extend(e.children());
    }
    n
}

/// [`parse_document`], and the prefixes the document was written with.
pub fn parse_document_written(bytes: &[u8], limits: Limits) -> Result<(Element, Written), XmlError> {
    let root = parse_document(bytes, limits)?;
    let written = prefixes(bytes, &limits)?;
    // Both passes read the same bytes; a difference would be a parser bug,
    // and it must not pass silently.
    if written.len() != element_count(&root) {
        return Err(XmlError {
            condition: Cond::NotWellFormed,
            detail: "the document's elements could not be matched with their prefixes".into(),
            offset: 0,
        });
    }
    Ok((root, written))
}

fn bad(detail: &str) -> XmlError {
    XmlError { condition: Cond::NotWellFormed, detail: detail.into(), offset: 0 }
}

/// An attribute as written: (prefix, local name, value).
type RawAttr = (String, String, String);

/// The raw pass: prefixes, resolved with our own scope stack.
fn prefixes(bytes: &[u8], limits: &Limits) -> Result<Written, XmlError> {
    let opts = rxml::Options { max_token_length: limits.max_stanza_bytes.clamp(1024, 64 * 1024), ..Default::default() };
    let mut parser = RawParser::with_options(opts);
    let mut buf = bytes;
    let mut out = Written::default();
    // Per open element: the declarations it made (prefix, uri).
    let mut scopes: Vec<Vec<(String, String)>> = Vec::new();
    // The element being opened: its prefix and raw attributes.
    let mut head: Option<(String, Vec<RawAttr>)> = None;
    let mut started = false;
    loop {
        let ev = match parser.parse(&mut buf, true) {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => return Err(bad("the document ends early")),
            Err(EndOrError::Error(e)) => return Err(bad(&e.to_string())),
        };
        match ev {
            RawEvent::XmlDeclaration(..) | RawEvent::Text(..) => {}
            RawEvent::ElementHeadOpen(_, (prefix, _)) => {
                head = Some((prefix.map(|p| p.to_string()).unwrap_or_default(), Vec::new()));
            }
            RawEvent::Attribute(_, (prefix, local), value) => {
                if let Some((_, attrs)) = head.as_mut() {
                    attrs.push((
                        prefix.map(|p| p.to_string()).unwrap_or_default(),
                        local.to_string(),
                        value.to_string(),
                    ));
                }
            }
            RawEvent::ElementHeadClose(_) => {
                let Some((prefix, attrs)) = head.take() else { return Err(bad("an element header out of place")) };
                let mut decls = Vec::new();
                for (p, l, v) in &attrs {
                    match (p.as_str(), l.as_str()) {
                        ("", "xmlns") => decls.push((String::new(), v.clone())),
                        ("xmlns", name) => decls.push((name.to_owned(), v.clone())),
                        _ => {}
                    }
                }
                scopes.push(decls);
                let resolve = |p: &str| -> Option<String> {
                    if p == "xml" {
                        return Some(NS_XML.to_owned());
                    }
                    scopes.iter().rev().flat_map(|s| s.iter().rev()).find(|(q, _)| q == p).map(|(_, u)| u.clone())
                };
                let mut names = WrittenNames { prefix, attrs: Vec::new() };
                for (p, l, _) in attrs {
                    if p.is_empty() || p == "xmlns" || p == "xml" {
                        continue;
                    }
                    let ns = resolve(&p).ok_or_else(|| bad("an attribute prefix that is not declared"))?;
                    names.attrs.push((ns, l, p));
                }
                out.elements.push(names);
                started = true;
            }
            RawEvent::ElementFoot(_) => {
                scopes.pop();
                if started && scopes.is_empty() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_noted_in_document_order() {
        let (root, w) = parse_document_written(
            b"<?xml version='1.0'?><p:r xmlns:p='urn:p' xmlns:q='urn:q'><c q:a='1' b='2' xml:lang='no'/><p:d xmlns='urn:d'><e/></p:d></p:r>",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(element_count(&root), 4);
        assert_eq!(w.len(), 4);
        assert_eq!(w.get(0).unwrap().prefix, "p");
        assert_eq!(w.get(1).unwrap().prefix, "");
        assert_eq!(w.get(1).unwrap().attr_prefix("urn:q", "a"), Some("q"));
        assert_eq!(w.get(2).unwrap().prefix, "p");
        assert_eq!(w.get(3).unwrap().prefix, "");
    }
}
