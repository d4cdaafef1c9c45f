//! Why a stream was refused, as an RFC 6120 §4.9.3 stream-error condition
//! plus a sentence for the log.

use std::fmt;

/// The stream-error conditions the parser can decide on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorCondition {
    /// Not well-formed XML (RFC 6120 §4.9.3.13).
    NotWellFormed,
    /// A DTD, comment, processing instruction or undeclared entity (§4.9.3.18).
    RestrictedXml,
    /// A size, depth or count limit was exceeded (§4.9.3.14).
    PolicyViolation,
    /// The stream or stanza namespace is wrong (§4.9.3.10).
    InvalidNamespace,
    /// Well-formed XML that is not an XMPP stream (§4.9.3.1).
    BadFormat,
}

impl StreamErrorCondition {
    /// The element name under `urn:ietf:params:xml:ns:xmpp-streams`.
    pub fn name(self) -> &'static str {
        match self {
            StreamErrorCondition::NotWellFormed => "not-well-formed",
            StreamErrorCondition::RestrictedXml => "restricted-xml",
            StreamErrorCondition::PolicyViolation => "policy-violation",
            StreamErrorCondition::InvalidNamespace => "invalid-namespace",
            StreamErrorCondition::BadFormat => "bad-format",
        }
    }
}

impl fmt::Display for StreamErrorCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fatal problem in an XML stream: the condition to send back, what was
/// wrong, and the byte offset in the stream where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{condition} at byte {offset}: {detail}")]
pub struct XmlError {
    pub condition: StreamErrorCondition,
    pub detail: String,
    pub offset: u64,
}
