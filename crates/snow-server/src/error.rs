//! Errors that stop the server from starting.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Crypto(#[from] snow_crypto::CryptoError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the CRL {path} is not valid: {reason}")]
    Crl { path: PathBuf, reason: String },
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] snow_store::StoreError),
}
