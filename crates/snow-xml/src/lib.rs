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

pub mod element;
pub mod error;
pub mod escape;
pub mod stream;

pub use element::{Element, Node};
pub use error::{StreamErrorCondition, XmlError};
pub use stream::{Limits, StreamEvent, StreamHeader, StreamParser};

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
