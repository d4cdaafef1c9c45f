//! PKCS#12 files: how a new user's key and certificate travel to them.
//!
//! Written as OpenSSL 3 writes them by default (PBES2 with PBKDF2-SHA256
//! and AES-256-CBC, HMAC-SHA256 MAC), so `openssl pkcs12` reads ours and
//! we read theirs.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12ImportPolicy, PrivateKey,
    PrivateKeyChain,
};
use zeroize::Zeroizing;

use crate::{cert, CryptoError};

/// PBKDF2 iterations for both the key bag and the MAC. The password is a
/// random 16+ character one-time password, so this guards against
/// brute force together with its length.
const ITERATIONS: u32 = 100_000;

/// Bundles a key and its certificate chain (leaf first) under `password`.
pub fn build(key_pkcs8: &[u8], chain: &[Vec<u8>], friendly_name: &str, password: &str) -> Result<Vec<u8>, CryptoError> {
    let leaf = chain.first().ok_or(CryptoError::Missing("certificate"))?;
    let key = PrivateKey::from_der(key_pkcs8).map_err(|_| CryptoError::format("the key", "PKCS#8"))?;
    let certs = chain
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|_| CryptoError::format("the certificate", "X.509 DER")))
        .collect::<Result<Vec<_>, _>>()?;
    // The local key id links key and certificate bags; the certificate's
    // SHA-256 is unique per certificate, which is what it must be.
    let local_key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref().to_vec();
    let mut store = KeyStore::new();
    store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(CryptoError::internal)
}

/// What a PKCS#12 file held: a PKCS#8 key and its chain, leaf first.
pub struct Contents {
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    pub chain: Vec<Vec<u8>>,
}

/// Opens a PKCS#12 file. A wrong password and a damaged file both fail the
/// MAC and are reported as [`CryptoError::WrongPassword`]; anything that is
/// not PKCS#12 at all is a format error.
pub fn read(bytes: &[u8], password: &str, what: &str) -> Result<Contents, CryptoError> {
    if !looks_like(bytes) {
        return Err(CryptoError::format(what, "PKCS#12"));
    }
    crate::kdf_limits::check(bytes, what)?;
    let store = KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Strict).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) | p12_keystore::error::Error::UnpadError => CryptoError::WrongPassword,
        p12_keystore::error::Error::UnsupportedEncryptionScheme => {
            CryptoError::format(what, "supported PKCS#12 (RC2/RC4-encrypted files are too weak; re-export with AES)")
        }
        _ => CryptoError::format(what, "PKCS#12"),
    })?;
    let (_, chain) = store.private_key_chain().ok_or(CryptoError::Missing("private key with its certificate"))?;
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        return Err(CryptoError::Missing("certificate"));
    }
    // Sanity: every certificate parses.
    for c in &certs {
        cert::CertInfo::from_der(c)?;
    }
    Ok(Contents { key_pkcs8: Zeroizing::new(chain.key().as_der().to_vec()), chain: certs })
}

/// True if `bytes` starts like a PKCS#12 PFX (DER `SEQUENCE { INTEGER 3, … }`).
pub fn looks_like(bytes: &[u8]) -> bool {
    use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag};
    let Ok((_, outer)) = Any::from_der(bytes) else { return false };
    if outer.tag() != Tag::Sequence {
        return false;
    }
    matches!(Any::from_der(outer.data), Ok((_, v)) if v.tag() == Tag::Integer && v.data == [3])
}
