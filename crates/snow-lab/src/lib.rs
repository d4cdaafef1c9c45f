//! Lab data (docs/architecture.md §5): the lab's pseudonymising export, validation of
//! the files the lab pushes, their transactional import into weekly
//! aggregates, and the detector that refuses anything that looks like real
//! identities.

pub mod config;
pub mod detect;
pub mod export;
pub mod import;
pub mod nin;
pub mod ptable;
pub mod row;
pub mod synth;

pub use row::{LabSettings, Row, RowError};
