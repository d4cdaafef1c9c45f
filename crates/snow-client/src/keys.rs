//! The GP's own key: opening the key file the administrator sent, the
//! personal passphrase rule, and what a login needs from the key store.
//! `snow key import`, `snow chat …` and the GP app (`snow app`) all go
//! through here, so the same file is accepted or refused with the same
//! words everywhere.

use snow_core::BareJid;
use snow_crypto::{pem, pkcs12, pkcs8_file, CertInfo, CryptoError, Identity};

/// Why a key file, a passphrase or a key store cannot be used. The text
/// is shown to the GP as it is: what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{what} is a PKCS#12 file, which carries its own certificate: leave out the certificate")]
    CertWithP12 { what: String },
    #[error("{what} is a PKCS#8 key, which holds no certificate: give the certificate too")]
    CertMissing { what: String },
    #[error("{what} is neither a PKCS#12 (.p12) file nor an encrypted PKCS#8 key")]
    NotAKeyFile { what: String },
    #[error("cannot open {what} with the one-time password (the one in the SMS): {source}")]
    P12 { what: String, source: CryptoError },
    #[error("cannot open {what} with the key file's password: {source}")]
    Pkcs8 { what: String, source: CryptoError },
    #[error("cannot read the certificate {what}: {source}")]
    Certificate { what: String, source: CryptoError },
    #[error("cannot use {what}: {source}")]
    Unusable { what: String, source: CryptoError },
    #[error("your personal passphrase is too short: use at least {min} characters")]
    PassphraseTooShort { min: usize },
    #[error("the two passphrases differ: type the same one twice")]
    PassphrasesDiffer,
    #[error("your certificate names no JID")]
    NoJid,
    #[error("your certificate's JID is malformed")]
    BadJid,
    #[error("the key store holds no CA certificate to check the server with (re-import your .p12)")]
    NoCa,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Opens the key file the administrator sent: a .p12 with the one-time
/// password from the SMS, or an encrypted PKCS#8 key with its certificate
/// (PEM or DER) and the key file's password. `what` names the file in
/// errors.
pub fn open_key_file(bytes: &[u8], cert: Option<&[u8]>, password: &str, what: &str) -> Result<Identity, KeyFileError> {
    let what = what.to_owned();
    if pkcs12::looks_like(bytes) {
        if cert.is_some() {
            return Err(KeyFileError::CertWithP12 { what });
        }
        let contents =
            pkcs12::read(bytes, password, &what).map_err(|source| KeyFileError::P12 { what: what.clone(), source })?;
        return Identity::new(contents.key_pkcs8, contents.chain)
            .map_err(|source| KeyFileError::Unusable { what, source });
    }
    if pkcs8_file::looks_like(bytes) {
        let Some(cert) = cert else { return Err(KeyFileError::CertMissing { what }) };
        let cert_what = format!("for {what}");
        let chain: Vec<Vec<u8>> = if pem::is_pem(cert) {
            pem::certificates(cert, &cert_what)
                .map_err(|source| KeyFileError::Certificate { what: cert_what.clone(), source })?
        } else {
            CertInfo::from_der(cert).map_err(|source| KeyFileError::Certificate { what: cert_what.clone(), source })?;
            vec![cert.to_vec()]
        };
        let key = pkcs8_file::decrypt(bytes, password, &what)
            .map_err(|source| KeyFileError::Pkcs8 { what: what.clone(), source })?;
        return Identity::new(key, chain).map_err(|source| KeyFileError::Unusable { what, source });
    }
    Err(KeyFileError::NotAKeyFile { what })
}

/// The rule for a new personal passphrase (`[pki]
/// min_passphrase_length`): long enough, counted in characters.
pub fn check_new_passphrase(passphrase: &str, min: usize) -> Result<(), KeyFileError> {
    if passphrase.chars().count() < min {
        return Err(KeyFileError::PassphraseTooShort { min });
    }
    Ok(())
}

/// What a login needs from the key store's certificate chain, before the
/// key is unlocked: whose it is (and so which domain to log in to) and the
/// CA that must have signed the server's certificate.
#[derive(Debug, Clone)]
pub struct LoginTarget {
    pub jid: BareJid,
    pub ca_der: Vec<u8>,
}

impl LoginTarget {
    /// From the chain a key store holds (the user's certificate first).
    pub fn of(chain: &[Vec<u8>]) -> Result<LoginTarget, KeyFileError> {
        let first = chain.first().ok_or(KeyFileError::NoJid)?;
        let info = CertInfo::from_der(first)?;
        let jid: BareJid = info.jid().ok_or(KeyFileError::NoJid)?.parse().map_err(|_| KeyFileError::BadJid)?;
        let ca_der = chain
            .iter()
            .skip(1)
            .find(|c| CertInfo::from_der(c).is_ok_and(|i| i.is_ca))
            .cloned()
            .ok_or(KeyFileError::NoCa)?;
        Ok(LoginTarget { jid, ca_der })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_key_file_and_short_passphrases_are_refused() {
        assert!(matches!(open_key_file(b"hello", None, "x", "f.p12"), Err(KeyFileError::NotAKeyFile { .. })));
        assert!(matches!(open_key_file(&[], None, "x", "f.p12"), Err(KeyFileError::NotAKeyFile { .. })));
        assert!(matches!(check_new_passphrase("kort", 12), Err(KeyFileError::PassphraseTooShort { min: 12 })));
        // Characters, not bytes.
        assert!(check_new_passphrase("ææææææææææææ", 12).is_ok());
        assert!(matches!(LoginTarget::of(&[]), Err(KeyFileError::NoJid)));
    }
}
