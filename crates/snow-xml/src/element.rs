//! A small XML element tree for stanzas, with namespaces resolved.
//!
//! Every element carries its namespace explicitly (never a prefix), so the
//! same stanza can be routed between client, server and component streams
//! whose default namespaces differ, and re-serialized correctly for each.

use std::borrow::Cow;

use crate::escape::push_escaped;
use crate::NS_XML;

/// An attribute: `ns` is empty for the usual unqualified attributes.
/// Names written by our own code are static and cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ns: String,
    pub name: Cow<'static, str>,
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element with its namespace, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    ns: Cow<'static, str>,
    name: Cow<'static, str>,
    attrs: Vec<Attr>,
    children: Vec<Node>,
}

impl Element {
    /// Static names (what our own code builds) cost no allocation.
    pub fn new(ns: impl Into<Cow<'static, str>>, name: impl Into<Cow<'static, str>>) -> Self {
        Element { ns: ns.into(), name: name.into(), attrs: Vec::new(), children: Vec::new() }
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if this is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// Moves the element (not its children) to another namespace; used when
    /// a stanza passes between stream types (`jabber:client` ↔ `jabber:server`).
    pub fn set_ns(&mut self, ns: impl Into<Cow<'static, str>>) {
        self.ns = ns.into();
    }

    /// Moves this element and every descendant in namespace `from` to
    /// `to`: a stanza's content namespace changes when it passes from a
    /// client stream (`jabber:client`) to a server stream (`jabber:server`)
    /// and back; payload namespaces are left alone.
    pub fn rename_ns_deep(&mut self, from: &str, to: &'static str) {
        if self.ns == from {
            self.ns = Cow::Borrowed(to);
        }
        for n in &mut self.children {
            if let Node::Element(e) = n {
                e.rename_ns_deep(from, to);
            }
        }
    }

    /// The value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns == ns && a.name == name).map(|a| a.value.as_str())
    }

    pub fn attrs(&self) -> &[Attr] {
        &self.attrs
    }

    /// Sets (or replaces) an unqualified attribute.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.set_attr_ns("", name, value)
    }

    pub fn set_attr_ns(&mut self, ns: &str, name: &str, value: impl Into<String>) {
        self.put_attr(ns, Cow::Owned(name.to_owned()), value.into());
    }

    fn put_attr(&mut self, ns: &str, name: Cow<'static, str>, value: String) {
        let wanted: &str = &name;
        match self.attrs.iter_mut().find(|a| *a.name == *wanted && a.ns == ns) {
            Some(a) => a.value = value,
            None => self.attrs.push(Attr { ns: ns.to_owned(), name, value }),
        }
    }

    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|a| a.ns.is_empty() && a.name == name)?;
        Some(self.attrs.remove(i).value)
    }

    /// Builder form of [`set_attr`](Self::set_attr), for the fixed names
    /// our own code writes (no allocation for the name).
    pub fn with_attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.put_attr("", Cow::Borrowed(name), value.into());
        self
    }

    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    pub fn push_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Some(Node::Text(t)) = self.children.last_mut() {
            t.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    pub fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }

    /// The child elements, in order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children().find(|e| e.is(ns, name))
    }

    pub fn child_mut(&mut self, ns: &str, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(ns, name) => Some(e),
            _ => None,
        })
    }

    /// Removes and returns every child element for which `f` is true.
    pub fn take_children(&mut self, mut f: impl FnMut(&Element) -> bool) -> Vec<Element> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.children.len());
        for n in std::mem::take(&mut self.children) {
            match n {
                Node::Element(e) if f(&e) => taken.push(e),
                other => kept.push(other),
            }
        }
        self.children = kept;
        taken
    }

    /// All text directly inside this element, concatenated.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Serializes the element as it would appear inside a stream whose
    /// default namespace is `default_ns`: an `xmlns` is written only where
    /// an element's namespace differs from its parent's.
    pub fn to_xml(&self, default_ns: &str) -> String {
        let mut out = String::new();
        self.write_xml(&mut out, default_ns);
        out
    }

    pub fn write_xml(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            // An attribute value: a tab or line feed must survive the
            // reader's normalization (found by fuzzing xmpp_stream).
            crate::escape::push_escaped_attr(out, &self.ns);
            out.push('\'');
        }
        let mut prefixes: Vec<&str> = Vec::new();
        for a in &self.attrs {
            out.push(' ');
            if a.ns == NS_XML {
                out.push_str("xml:");
            } else if !a.ns.is_empty() {
                let i = match prefixes.iter().position(|p| *p == a.ns) {
                    Some(i) => i,
                    None => {
                        prefixes.push(&a.ns);
                        let i = prefixes.len() - 1;
                        out.push_str(&format!("xmlns:a{i}='"));
                        crate::escape::push_escaped_attr(out, &a.ns);
                        out.push_str("' ");
                        i
                    }
                };
                out.push_str(&format!("a{i}:"));
            }
            out.push_str(&a.name);
            out.push_str("='");
            crate::escape::push_escaped_attr(out, &a.value);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_xml(out, &self.ns),
                Node::Text(t) => push_escaped(out, t),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse_document, Element, Limits};

    /// Namespace names are attribute values too: a tab, line feed or
    /// carriage return in one comes back unchanged (xmpp_stream fuzzing
    /// found a tab turned into a space).
    #[test]
    fn whitespace_in_namespace_names_survives_a_round_trip() {
        let ns = "urn:x\tab\ncd\ref 'q\" &<>";
        let mut el =
            Element::new(ns, "c").with_attr("v", "a\tb\nc\rd").with_child(Element::new("urn:y", "d").with_text("t\r"));
        el.set_attr_ns(ns, "at", "1");
        let xml = el.to_xml("jabber:client");
        let back = parse_document(xml.as_bytes(), Limits::default()).unwrap();
        assert_eq!(back, el, "{xml}");
    }
}
