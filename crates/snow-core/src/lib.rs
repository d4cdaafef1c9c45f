//! Snow's domain types, shared by every other crate.
//!
//! Everything here validates on construction, so a value of one of these
//! types is known-good wherever it travels: a `Hpnr` is always digits of the
//! right length, a `Domain` is always a usable DNS name.

pub mod alert;
pub mod contact;
pub mod csv;
pub mod files;
pub mod hpnr;
pub mod jid;
pub mod nonce_cache;
pub mod settings;
pub mod site_home;
pub mod spare_port;
pub mod stats;

pub use contact::{Email, Phone};
pub use hpnr::Hpnr;
pub use jid::{AgentJid, BareJid, Domain};
pub use site_home::SiteHome;

/// Why a value given by a person or a file was refused.
///
/// The messages are written for the person who typed the value: they say
/// which field was wrong and what a good one looks like, and they never echo
/// the value itself (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("malformed HPNR: {0}")]
    Hpnr(&'static str),
    #[error("malformed phone number: {0}")]
    Phone(&'static str),
    #[error("malformed e-mail address: {0}")]
    Email(&'static str),
    #[error("malformed domain name: {0}")]
    Domain(&'static str),
    #[error("malformed JID: {0}")]
    Jid(&'static str),
}
