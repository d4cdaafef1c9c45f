//! Errors of the crypto layer, phrased for the person at the terminal.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong password (or the file is damaged)")]
    WrongPassword,
    /// The personal passphrase does not open a key store: named apart from
    /// a key file's one-time password, so the person knows which secret to retype.
    #[error("your personal passphrase does not open the key store at {0} (or its key file is damaged)")]
    WrongPassphrase(PathBuf),
    #[error("{what} is not a {expected} file (or it is damaged)")]
    Format { what: String, expected: &'static str },
    #[error("{what} demands too much work to open: {reason}")]
    TooCostly { what: String, reason: String },
    #[error("the file holds a {0} key; Snow uses RSA keys only")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyCertMismatch,
    #[error("the file holds no {0}")]
    Missing(&'static str),
    #[error("the certificate is not signed by this CA")]
    NotSignedBy,
    #[error("no key store at {0} (import a key first with `snow key import`)")]
    NoKeyStore(PathBuf),
    #[error("a key store already exists at {0} (use --force to replace it)")]
    KeyStoreExists(PathBuf),
    #[error("could not {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cryptographic operation failed: {0}")]
    Internal(String),
}

impl CryptoError {
    pub(crate) fn format(what: impl Into<String>, expected: &'static str) -> Self {
        CryptoError::Format { what: what.into(), expected }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        CryptoError::Internal(e.to_string())
    }

    pub(crate) fn io<'a>(action: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| CryptoError::Io { action, path: path.to_owned(), source }
    }
}
