//! Password-encrypted PKCS#8 private keys (RFC 5958 `EncryptedPrivateKeyInfo`
//! with PBES2), the format of the local key store and the CA key, readable
//! by `openssl pkey -passin`.

use pkcs8::der::Decode;
use zeroize::Zeroizing;

use crate::{pem, CryptoError};

/// PEM label of an encrypted PKCS#8 key.
pub const LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// Encrypts a PKCS#8 DER key with PBES2 (scrypt, AES-256-CBC; parameters
/// within OpenSSL 3's scrypt memory limit) and returns PEM text.
pub fn encrypt_pem(pkcs8_der: &[u8], passphrase: &str) -> Result<Zeroizing<String>, CryptoError> {
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8_der).map_err(|_| CryptoError::format("the key", "PKCS#8"))?;
    let doc = info.encrypt(passphrase.as_bytes()).map_err(CryptoError::internal)?;
    let text = pem::encode(LABEL, doc.as_bytes())?;
    Ok(Zeroizing::new(text))
}

/// Decrypts an encrypted PKCS#8 key given as PEM or DER; returns the
/// plain PKCS#8 DER. Supports what OpenSSL writes by default and with
/// `-v2 aes-256-cbc` or `-scrypt` (PBES2 with PBKDF2-HMAC-SHA1/SHA-2 or
/// scrypt, AES-CBC).
pub fn decrypt(bytes: &[u8], passphrase: &str, what: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let der = if pem::is_pem(bytes) {
        let blocks = pem::decode_all(bytes, what)?;
        match blocks.into_iter().find(|(l, _)| l == LABEL) {
            Some((_, d)) => d,
            None => return Err(CryptoError::format(what, "encrypted PKCS#8 key")),
        }
    } else {
        bytes.to_vec()
    };
    crate::kdf_limits::check(&der, what)?;
    let enc = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der)
        .map_err(|_| CryptoError::format(what, "encrypted PKCS#8 key"))?;
    let plain = enc.decrypt(passphrase.as_bytes()).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. })
        | pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }) => {
            CryptoError::format(what, "supported encrypted PKCS#8 key (PBES2 with AES)")
        }
        _ => CryptoError::WrongPassword,
    })?;
    // A wrong password that happens to give valid padding yields garbage.
    pkcs8::PrivateKeyInfoRef::try_from(plain.as_bytes()).map_err(|_| CryptoError::WrongPassword)?;
    Ok(Zeroizing::new(plain.as_bytes().to_vec()))
}

/// True if `bytes` holds an encrypted PKCS#8 key (PEM or DER).
pub fn looks_like(bytes: &[u8]) -> bool {
    if pem::is_pem(bytes) {
        return pem::decode_all(bytes, "").map(|b| b.iter().any(|(l, _)| l == LABEL)).unwrap_or(false);
    }
    pkcs8::EncryptedPrivateKeyInfoRef::from_der(bytes).is_ok()
}
