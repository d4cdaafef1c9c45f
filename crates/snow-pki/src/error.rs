//! PKI errors: one sentence each, saying what to do next where it can.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no CA in {0} (create one with `snow ca init --domain DOMAIN`)")]
    CaNotInitialised(PathBuf),
    #[error("a CA already exists in {0}")]
    CaExists(PathBuf),
    #[error("wrong CA passphrase")]
    WrongCaPassphrase,
    #[error("the passphrase is too short: use at least {0} characters")]
    WeakPassphrase(usize),
    #[error(transparent)]
    Input(#[from] snow_core::InputError),
    #[error(transparent)]
    Store(#[from] snow_store::StoreError),
    #[error(transparent)]
    Crypto(#[from] snow_crypto::CryptoError),
    #[error("invalid setting: {0}")]
    Setting(String),
    #[error("could not {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0} has no valid certificate to revoke (revoked already, or never issued)")]
    NothingToRevoke(String),
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
}

impl PkiError {
    pub(crate) fn io<'a>(action: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| PkiError::Io { action, path: path.to_owned(), source }
    }
}
