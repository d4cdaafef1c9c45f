//! Snow's cryptography on one stack: aws-lc-rs for primitives, rcgen to make
//! certificates, x509-parser to read them, and the RustCrypto `pkcs8` /
//! `p12-keystore` crates for the password-protected file formats that must
//! interoperate with OpenSSL.

pub mod cert;
pub mod component_handshake;
pub mod cram_md5;
pub mod e2e;
pub mod error;
pub mod identity;
pub mod kdf_limits;
pub mod keystore;
pub mod msgauth;
pub mod one_time_password;
pub mod pem;
pub mod pkcs12;
pub mod pkcs8_file;
pub mod rsa_key;
pub mod tls_words;
pub mod xmldsig;

pub use cert::CertInfo;
pub use error::CryptoError;
pub use identity::Identity;
pub use keystore::{FileKeyStore, KeyStore};

/// Largest key, certificate or PKCS#12 file Snow will read. Real ones are a
/// few KiB; the limit keeps a wrong path from exhausting memory.
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;
