//! The site's certificate authority (docs/architecture.md §1, §6): it lives at the PO
//! server, issues user, server and agent certificates, revokes them and signs the
//! CRL, and delivers new users' keys through the outbox.

pub mod ca;
pub mod error;
pub mod outbox;
pub mod reason;
pub mod settings;

pub use ca::{ca_certificate, list_users, Ca, IssuedServer, IssuedUser, Revoked, RevokedCerts};
pub use error::PkiError;
pub use outbox::Withdrawn;
pub use reason::RevocationReason;
pub use settings::PkiSettings;
