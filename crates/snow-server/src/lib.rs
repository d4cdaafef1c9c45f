//! `snow serve`: the XMPP server every Snow site runs (docs/architecture.md §1, §3).
//!
//! Layers, each importing only those below it (docs/architecture.md):
//!
//! - `server`: wires everything together, listeners and shutdown;
//! - `transport`: client sessions (`c2s`), other servers (`s2s`) and
//!   external components (`component`), each with its negotiation and
//!   read/write loop, handing every stanza to routing;
//! - `services`: what the server answers itself (disco, ping, version,
//!   presence, roster, offline storage, pubsub, key directory), behind
//!   one trait and a registry;
//! - `routing`: the one routing decision and delivery, the session and
//!   component tables;
//! - `db`, `trust`, `tls`, `limits`, `addr`, `config`: the leaves.

mod addr;
pub mod config;
mod db;
pub mod error;
mod limits;
mod routing;
mod server;
mod services;
pub mod tls;
mod transport;
pub mod trust;

pub use config::{ClientCheck, ComponentSettings, MsgAuthSettings, S2sSettings, ServerConfig, ServerSettings};
pub use error::ServerError;
pub use limits::LimitStats;
pub use server::{Server, ServerHandle};
