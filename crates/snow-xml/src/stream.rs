//! The incremental XMPP stream parser.

use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, WithOptions};

use crate::error::{StreamErrorCondition as Cond, XmlError};
use crate::escape::push_escaped;
use crate::{Element, NS_STREAMS, NS_XML};

/// Limits on what one peer may make the parser hold. All configurable;
/// the defaults fit every legitimate stanza Snow exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest stanza (or stream header), in bytes as received.
    pub max_stanza_bytes: usize,
    /// Deepest nesting, counting `<stream:stream>` as 1 and a stanza as 2.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Most elements in one stanza.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_stanza_bytes: 256 * 1024, max_depth: 32, max_attributes: 64, max_elements: 4096 }
    }
}

/// The attributes of a `<stream:stream>` header (RFC 6120 §4.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
}

impl StreamHeader {
    /// The opening of a stream with content namespace `content_ns`,
    /// including the XML declaration.
    pub fn to_xml(&self, content_ns: &str) -> String {
        let mut out = String::from("<?xml version='1.0'?><stream:stream xmlns='");
        push_escaped(&mut out, content_ns);
        out.push_str("' xmlns:stream='");
        out.push_str(NS_STREAMS);
        out.push('\'');
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("id", &self.id),
            ("version", &self.version),
            ("xml:lang", &self.lang),
        ] {
            if let Some(v) = value {
                out.push(' ');
                out.push_str(name);
                out.push_str("='");
                push_escaped(&mut out, v);
                out.push('\'');
            }
        }
        out.push('>');
        out
    }
}

/// What the parser found in the bytes fed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened the stream.
    Header(StreamHeader),
    /// A complete first-level element: a stanza or a stream-level element
    /// such as `<starttls/>`, `<auth/>` or `<stream:error/>`.
    Stanza(Element),
    /// The peer closed the stream with `</stream:stream>`.
    End,
}

/// Size of the slices input is cut into, so limits are checked at least
/// this often whatever the size of the caller's buffer.
const SLICE: usize = 4096;

/// Turns stream bytes, in chunks of any size, into [`StreamEvent`]s.
///
/// After an error the parser stays failed (the stream must be closed);
/// after STARTTLS or SASL success the peer opens a fresh stream, so the
/// caller makes a new parser (or calls [`reset`](Self::reset)).
pub struct StreamParser {
    parser: Parser,
    limits: Limits,
    /// Open elements of the current stanza; `stack[0]` is the stanza.
    stack: Vec<Element>,
    /// 0 before the header, 1 inside the stream, more inside a stanza.
    depth: usize,
    /// Bytes consumed since the last stanza boundary.
    pending: usize,
    /// Elements started in the current stanza.
    elements: usize,
    /// Bytes consumed since the stream began.
    offset: u64,
    failed: Option<XmlError>,
    ended: bool,
    /// Parsing one standalone document instead of an XMPP stream.
    document: bool,
}

/// Parses one standalone XML document (an XML Encryption file, say) with
/// the same limits and refusals as a stream: the root element comes back
/// as the tree. `limits.max_stanza_bytes` bounds the whole document.
pub fn parse_document(bytes: &[u8], limits: Limits) -> Result<Element, XmlError> {
    let mut p = StreamParser::new(limits);
    p.document = true;
    p.depth = 1;
    let mut out = Vec::new();
    p.feed(bytes, &mut out)?;
    match out.into_iter().next() {
        Some(StreamEvent::Stanza(el)) => Ok(el),
        _ => Err(XmlError {
            condition: Cond::NotWellFormed,
            detail: "the document ends before its root element is closed".into(),
            offset: p.offset,
        }),
    }
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            parser: new_rxml(&limits),
            limits,
            stack: Vec::new(),
            depth: 0,
            pending: 0,
            elements: 0,
            offset: 0,
            failed: None,
            ended: false,
            document: false,
        }
    }

    /// Frees the parser's scratch buffers (rxml reserves up to the longest
    /// token on first use): a connection that waits for its peer should
    /// not hold them. Parsing goes on as before; they grow again on need.
    pub fn release_buffers(&mut self) {
        self.parser.release_temporaries();
        self.stack.shrink_to_fit();
    }

    /// Starts over for a new stream on the same connection.
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True once the peer has closed the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Parses `data`, appending every complete event to `out`. Events found
    /// before an error are still appended.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), XmlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.ended {
            return Ok(());
        }
        for piece in data.chunks(SLICE) {
            let mut buf = piece;
            loop {
                let before = buf.len();
                let result = self.parser.parse(&mut buf, false);
                let consumed = before - buf.len();
                self.offset += consumed as u64;
                self.pending += consumed;
                match result {
                    Ok(Some(ev)) => self.on_event(ev, out)?,
                    Ok(None) => break,
                    Err(EndOrError::NeedMoreData) => break,
                    Err(EndOrError::Error(e)) => {
                        let (cond, detail) = classify(&e);
                        return Err(self.fail(cond, detail));
                    }
                }
                self.check_budget()?;
                if self.ended {
                    return Ok(());
                }
            }
            self.check_budget()?;
        }
        Ok(())
    }

    fn check_budget(&mut self) -> Result<(), XmlError> {
        if self.pending > self.limits.max_stanza_bytes {
            let max = self.limits.max_stanza_bytes;
            return Err(self.fail(Cond::PolicyViolation, format!("stanza larger than {max} bytes")));
        }
        Ok(())
    }

    fn fail(&mut self, condition: Cond, detail: String) -> XmlError {
        let e = XmlError { condition, detail, offset: self.offset };
        self.failed = Some(e.clone());
        self.stack.clear();
        e
    }

    fn on_event(&mut self, ev: Event, out: &mut Vec<StreamEvent>) -> Result<(), XmlError> {
        match ev {
            Event::XmlDeclaration(..) => Ok(()),
            Event::StartElement(_, (ns, name), attrs) => {
                if self.depth == 0 {
                    if ns.as_str() != NS_STREAMS || name.as_str() != "stream" {
                        let cond = if name.as_str() == "stream" { Cond::InvalidNamespace } else { Cond::BadFormat };
                        return Err(self.fail(cond, format!("expected <stream:stream>, got <{}>", name.as_str())));
                    }
                    let mut h = StreamHeader::default();
                    for ((ans, aname), value) in attrs.into_iter() {
                        let v = Some(value.to_string());
                        match (ans.as_str(), aname.as_str()) {
                            ("", "to") => h.to = v,
                            ("", "from") => h.from = v,
                            ("", "id") => h.id = v,
                            ("", "version") => h.version = v,
                            (NS_XML, "lang") => h.lang = v,
                            _ => {}
                        }
                    }
                    self.depth = 1;
                    self.pending = 0;
                    out.push(StreamEvent::Header(h));
                    return Ok(());
                }
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    let max = self.limits.max_depth;
                    return Err(self.fail(Cond::PolicyViolation, format!("elements nested deeper than {max}")));
                }
                if attrs.len() > self.limits.max_attributes {
                    let max = self.limits.max_attributes;
                    return Err(self.fail(Cond::PolicyViolation, format!("more than {max} attributes on one element")));
                }
                self.elements += 1;
                if self.elements > self.limits.max_elements {
                    let max = self.limits.max_elements;
                    return Err(self.fail(Cond::PolicyViolation, format!("more than {max} elements in one stanza")));
                }
                let mut el = Element::new(ns.to_string(), name.to_string());
                for ((ans, aname), value) in attrs.into_iter() {
                    el.set_attr_ns(ans.as_str(), aname.as_str(), value.to_string());
                }
                self.stack.push(el);
                Ok(())
            }
            Event::EndElement(_) => {
                match self.stack.pop() {
                    Some(el) => {
                        self.depth -= 1;
                        match self.stack.last_mut() {
                            Some(parent) => parent.push_child(el),
                            None => {
                                self.pending = 0;
                                self.elements = 0;
                                out.push(StreamEvent::Stanza(el));
                                if self.document {
                                    self.ended = true;
                                }
                            }
                        }
                    }
                    None => {
                        self.depth = 0;
                        self.ended = true;
                        out.push(StreamEvent::End);
                    }
                }
                Ok(())
            }
            Event::Text(_, text) => {
                match self.stack.last_mut() {
                    Some(top) => top.push_text(text.as_str()),
                    None => {
                        if !text.chars().all(|c| c.is_ascii_whitespace()) {
                            return Err(self.fail(Cond::BadFormat, "text outside any stanza".into()));
                        }
                        // Whitespace keepalives between stanzas.
                        self.pending = 0;
                    }
                }
                Ok(())
            }
        }
    }
}

fn new_rxml(limits: &Limits) -> Parser {
    let opts = rxml::Options { max_token_length: limits.max_stanza_bytes.clamp(1024, 64 * 1024), ..Default::default() };
    Parser::with_options(opts)
}

/// Maps rxml's error to a stream-error condition.
fn classify(e: &rxml::Error) -> (Cond, String) {
    match e {
        rxml::Error::RestrictedXml(what) => (Cond::RestrictedXml, format!("{what} are not allowed in XMPP")),
        rxml::Error::UndeclaredEntity => {
            (Cond::RestrictedXml, "entity references other than the five predefined ones are not allowed".into())
        }
        // `<!` that does not start CDATA is a DOCTYPE, ENTITY or comment.
        rxml::Error::InvalidSyntax(m) if m.contains("cdata or comment") => {
            (Cond::RestrictedXml, "DTDs and comments are not allowed in XMPP".into())
        }
        other => (Cond::NotWellFormed, other.to_string()),
    }
}
