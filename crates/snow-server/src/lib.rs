//! `snow serve`: the XMPP server every Snow site runs (DESIGN.md §1, §3).
//!
//! This crate holds the client-to-server side: TLS (STARTTLS on the c2s
//! port, direct TLS per XEP-0368 on another), SASL EXTERNAL with the
//! client certificate as the only login, resource binding, routing of
//! messages, presence and IQs, the basic services (disco, version, ping,
//! roster) and offline storage, with limits on everything a peer controls.

mod addr;
mod component;
pub mod config;
pub mod directory;
pub mod error;
mod lab_import;
mod limits;
mod pubsub;
mod router;
mod s2s;
mod server;
mod services;
mod session;
pub mod tls;
pub mod trust;

pub use config::{
    ComponentSettings, DetectionParams, DetectionSettings, LabServerSettings, MsgAuthSettings, S2sSettings,
    ServerConfig, ServerSettings,
};
pub use error::ServerError;
pub use server::{Server, ServerHandle};
