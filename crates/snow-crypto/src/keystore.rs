//! Where a person's private key lives on their own machine.
//!
//! Today a directory of files; smart cards and PKCS#11 tokens come later
//! (the security policy's next step), which is why callers go through the
//! [`KeyStore`] trait.

use std::path::{Path, PathBuf};

use snow_core::files::{self, Mode};

use crate::{pem, pkcs8_file, CryptoError, Identity, MAX_KEY_FILE_BYTES};

/// A place that holds one identity, unlocked by a passphrase.
pub trait KeyStore {
    /// The certificate chain, leaf first; public, so no passphrase needed.
    fn certificate_chain(&self) -> Result<Vec<Vec<u8>>, CryptoError>;
    /// The identity, with the private key decrypted.
    fn unlock(&self, passphrase: &str) -> Result<Identity, CryptoError>;
}

/// A key store directory:
///
/// * `key.pem` — the private key, encrypted PKCS#8 (PBES2, scrypt +
///   AES-256-CBC) under the owner's personal passphrase; `openssl pkey
///   -in key.pem -passin …` reads it;
/// * `cert.pem` — the certificate, then the issuing CA certificate(s).
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    pub const KEY_FILE: &'static str = "key.pem";
    pub const CERT_FILE: &'static str = "cert.pem";

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileKeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn exists(&self) -> bool {
        self.dir.join(Self::KEY_FILE).exists()
    }

    /// Stores `identity` under `passphrase`. Refuses to replace an existing
    /// store unless `replace`. All files appear together or not at all: they
    /// are written into a fresh sibling directory that is then renamed.
    pub fn save(&self, identity: &Identity, passphrase: &str, replace: bool) -> Result<(), CryptoError> {
        if self.exists() && !replace {
            return Err(CryptoError::KeyStoreExists(self.dir.clone()));
        }
        let key_pem = pkcs8_file::encrypt_pem(identity.key_pkcs8(), passphrase)?;
        let mut cert_pem = String::new();
        for c in identity.chain() {
            cert_pem.push_str(&pem::encode("CERTIFICATE", c)?);
        }
        let parent = match self.dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(CryptoError::io("create", &parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".snow-keystore-")
            .tempdir_in(&parent)
            .map_err(CryptoError::io("create a directory in", &parent))?;
        let sp = staging.path();
        files::write(&sp.join(Self::KEY_FILE), key_pem.as_bytes(), Mode::Private)
            .map_err(CryptoError::io("write", &sp.join(Self::KEY_FILE)))?;
        files::write(&sp.join(Self::CERT_FILE), cert_pem.as_bytes(), Mode::Public)
            .map_err(CryptoError::io("write", &sp.join(Self::CERT_FILE)))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(sp, std::fs::Permissions::from_mode(0o700))
                .map_err(CryptoError::io("protect", sp))?;
        }
        if self.dir.exists() {
            // Move the old store aside first, so a failed rename keeps it.
            let old = parent.join(format!(".snow-keystore-old-{}", std::process::id()));
            std::fs::rename(&self.dir, &old).map_err(CryptoError::io("replace", &self.dir))?;
            let staged = staging.keep();
            std::fs::rename(&staged, &self.dir).map_err(CryptoError::io("create", &self.dir))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            let staged = staging.keep();
            std::fs::rename(&staged, &self.dir).map_err(CryptoError::io("create", &self.dir))?;
        }
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, CryptoError> {
        let p = self.dir.join(name);
        if !p.exists() {
            return Err(CryptoError::NoKeyStore(self.dir.clone()));
        }
        files::read_limited(&p, MAX_KEY_FILE_BYTES).map_err(CryptoError::io("read", &p))
    }
}

impl KeyStore for FileKeyStore {
    fn certificate_chain(&self) -> Result<Vec<Vec<u8>>, CryptoError> {
        let text = self.read(Self::CERT_FILE)?;
        pem::certificates(&text, &self.dir.join(Self::CERT_FILE).display().to_string())
    }

    fn unlock(&self, passphrase: &str) -> Result<Identity, CryptoError> {
        let chain = self.certificate_chain()?;
        let key_text = self.read(Self::KEY_FILE)?;
        let key = pkcs8_file::decrypt(&key_text, passphrase, &self.dir.join(Self::KEY_FILE).display().to_string())
            .map_err(|e| match e {
                CryptoError::WrongPassword => CryptoError::WrongPassphrase(self.dir.clone()),
                other => other,
            })?;
        Identity::new(key, chain)
    }
}
