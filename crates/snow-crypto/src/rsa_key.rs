//! RSA key pairs, the only key type in Snow's PKI (the security policy
//! fixes RSA and X.509).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use zeroize::Zeroizing;

use crate::CryptoError;

/// RSA modulus sizes Snow generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBits {
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyBits {
    /// Maps a configured bit count to a supported size.
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            2048 => Some(KeyBits::Rsa2048),
            3072 => Some(KeyBits::Rsa3072),
            4096 => Some(KeyBits::Rsa4096),
            _ => None,
        }
    }
}

/// Generates a new RSA key; returns it as PKCS#8 DER (kept in zeroizing
/// memory, since it is the secret everything else protects).
pub fn generate(bits: KeyBits) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let size = match bits {
        KeyBits::Rsa2048 => KeySize::Rsa2048,
        KeyBits::Rsa3072 => KeySize::Rsa3072,
        KeyBits::Rsa4096 => KeySize::Rsa4096,
    };
    let kp = KeyPair::generate(size).map_err(CryptoError::internal)?;
    let der = kp.as_der().map_err(CryptoError::internal)?;
    Ok(Zeroizing::new(der.as_ref().to_vec()))
}

/// Loads a PKCS#8 RSA private key for signing.
pub fn load(pkcs8_der: &[u8]) -> Result<KeyPair, CryptoError> {
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8_der).map_err(|_| CryptoError::format("the key", "PKCS#8"))?;
    const RSA_ENCRYPTION: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(CryptoError::UnsupportedKey(key_kind(&info.algorithm.oid)));
    }
    KeyPair::from_pkcs8(pkcs8_der).map_err(|_| CryptoError::format("the key", "RSA PKCS#8"))
}

fn key_kind(oid: &pkcs8::ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.110" => "X25519".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        other => format!("non-RSA ({other})"),
    }
}

/// The PKCS#1 `RSAPublicKey` DER of a key pair: the same bytes a
/// certificate's subjectPublicKey bit string holds, so the two compare.
pub fn public_key_der(kp: &KeyPair) -> Vec<u8> {
    use aws_lc_rs::signature::KeyPair as _;
    kp.public_key().as_ref().to_vec()
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (what the certificates themselves use).
pub fn sign(kp: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).map_err(CryptoError::internal)?;
    Ok(sig)
}

/// Verifies a [`sign`] signature with a PKCS#1 public key.
pub fn verify(public_key_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der).verify(msg, sig).is_ok()
}
