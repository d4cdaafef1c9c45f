//! Snow's SQLite storage. One database file per site, WAL mode, one writer;
//! every multi-step change is one transaction, so nothing is half-done after
//! a crash. Repositories here are the seam for another SQL store later.

pub mod audit_db;
pub mod ca_db;
pub mod lab_db;
mod migrate;
pub mod server_db;
mod values;

pub use audit_db::{AuditDb, AuditFilter, AuditedQuery, SearchRecord};
pub use ca_db::{CaDb, CertKind, CertRecord, KeyChange, Revocation, UserRecord};
pub use lab_db::{AggRow, CellKeys, LabDb, LabImport, SentAlert, Weekly, WeeklyFilter};
pub use server_db::{DirectoryEntry, PubsubItem, RosterItem, ServerDb};
pub use values::{KeyStatus, ReplicationCursor, Subscription};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database was written by a newer Snow (schema version {found}, this one knows up to {known})")]
    TooNew { found: i64, known: i64 },
    #[error("a user with HPNR {0} already exists")]
    DuplicateUser(String),
    #[error("no user with HPNR {0}")]
    UnknownUser(String),
    #[error("the user with HPNR {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("cannot create {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Invalid(String),
}
