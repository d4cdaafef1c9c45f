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
    #[error("could not listen on {addr}: {source}{}", bind_advice(setting, source))]
    Bind { setting: &'static str, addr: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] snow_store::StoreError),
}

/// What to change when a listening address cannot be used.
fn bind_advice(setting: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (another program, perhaps another snow serve, uses it: stop it, or set {setting} in snow.toml to a free port)"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!(" (no network interface of this computer has that address: correct {setting} in snow.toml)")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!(" (ports below 1024 need privileges: set {setting} in snow.toml to a port above 1023)")
        }
        _ => format!(" (check {setting} in snow.toml)"),
    }
}
