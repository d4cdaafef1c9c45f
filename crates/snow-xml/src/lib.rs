//! XMPP's XML: an incremental stream parser with hard limits, a small
//! element tree for stanzas, and the serializer.
//!
//! Network bytes arrive in arbitrary chunks; [`StreamParser::feed`] turns
//! them into the stream header, whole stanzas and the stream end. Parsing
//! is done by `rxml`, which knows no DTDs, entities other than the five
//! predefined ones, or processing instructions; on top of it this crate
//! bounds stanza size, nesting depth, attributes per element and elements
//! per stanza, so no peer can make the server hold more than a known
//! amount of memory per connection.

pub mod c14n;
pub mod element;
pub mod error;
pub mod escape;
pub mod framed;
pub mod initiator;
pub mod stanza;
pub mod stream;
pub mod written;

pub use element::{Element, Node};
pub use error::{StreamErrorCondition, XmlError};
pub use framed::{Framed, FramedError, FramedReader, FramedWriter};
pub use initiator::{Features, PeerError, PeerStreamError};
pub use stream::{parse_document, Limits, StreamEvent, StreamHeader, StreamParser};

/// The namespace of `<stream:stream>` and stream-level elements.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// Content namespace of client-to-server streams.
pub const NS_CLIENT: &str = "jabber:client";
/// Content namespace of server-to-server streams.
pub const NS_SERVER: &str = "jabber:server";
/// Content namespace of external components (XEP-0114).
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// The namespace bound to the `xml:` prefix.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// STARTTLS (RFC 6120 §5).
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL (RFC 6120 §6).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// The legacy session establishment (RFC 3921), announced as optional.
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stanza error conditions (RFC 6120 §8.3).
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Stream error conditions (RFC 6120 §4.9).
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// XEP-0198 stream management (acks and resumption, client streams).
pub const NS_SM: &str = "urn:xmpp:sm:3";
/// XEP-0199 ping.
pub const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0030 service discovery.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0092 software version.
pub const NS_VERSION: &str = "jabber:iq:version";
/// XEP-0115 entity capabilities.
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
/// The caps node of the Snow client (the `snow` command and the app): what
/// `[server] client_check` looks for.
pub const SNOW_CLIENT_NODE: &str = "urn:snow:client";
/// RFC 6121 roster.
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// XEP-0203 delayed delivery (stamped on offline messages).
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// Publish-subscribe (XEP-0060): requests, owner requests, notifications.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// A complete `<stream:error>` followed by the stream close, ready to send.
pub fn stream_error_xml(condition: &str, text: &str) -> String {
    let mut out = format!("<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/>");
    if !text.is_empty() {
        out.push_str(&format!("<text xmlns='{NS_STREAM_ERRORS}' xml:lang='en'>"));
        escape::push_escaped(&mut out, text);
        out.push_str("</text>");
    }
    out.push_str("</stream:error></stream:stream>");
    out
}
