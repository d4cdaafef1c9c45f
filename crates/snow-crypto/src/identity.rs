//! A user's or server's identity: private key plus certificate chain.

use zeroize::Zeroizing;

use crate::{cert::CertInfo, rsa_key, CryptoError};

/// A private key with the certificate that names it (and the issuers
/// after it). Construction checks that the two belong together, so any
/// `Identity` can sign in the certificate's name.
pub struct Identity {
    key_pkcs8: Zeroizing<Vec<u8>>,
    chain: Vec<Vec<u8>>,
    info: CertInfo,
}

impl Identity {
    pub fn new(key_pkcs8: Zeroizing<Vec<u8>>, chain: Vec<Vec<u8>>) -> Result<Self, CryptoError> {
        let leaf = chain.first().ok_or(CryptoError::Missing("certificate"))?;
        let info = CertInfo::from_der(leaf)?;
        let kp = rsa_key::load(&key_pkcs8)?;
        if rsa_key::public_key_der(&kp) != info.public_key {
            return Err(CryptoError::KeyCertMismatch);
        }
        Ok(Identity { key_pkcs8, chain, info })
    }

    pub fn key_pkcs8(&self) -> &[u8] {
        &self.key_pkcs8
    }

    pub fn certificate(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The leaf certificate followed by its issuers, as DER.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// Signs with RSASSA-PKCS1-v1_5/SHA-256.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        rsa_key::sign(&rsa_key::load(&self.key_pkcs8)?, msg)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("subject", &self.info.subject).finish_non_exhaustive()
    }
}
