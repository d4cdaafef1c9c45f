//! The `[pki]` section of `snow.toml`.

use serde::Deserialize;
use snow_crypto::rsa_key::KeyBits;

use crate::PkiError;

/// Key sizes, lifetimes and delivery settings of the CA. Every field has a
/// default, so an empty `[pki]` section (or none) is a working CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PkiSettings {
    pub ca_key_bits: u32,
    pub user_key_bits: u32,
    pub server_key_bits: u32,
    pub ca_validity_days: u32,
    pub user_validity_days: u32,
    pub server_validity_days: u32,
    pub crl_validity_days: u32,
    pub one_time_password_length: usize,
    pub min_passphrase_length: usize,
    /// Sender of key-delivery e-mails; default `snow-admin@<CA domain>`.
    pub email_from: Option<String>,
}

impl Default for PkiSettings {
    fn default() -> Self {
        PkiSettings {
            ca_key_bits: 3072,
            user_key_bits: 2048,
            server_key_bits: 2048,
            ca_validity_days: 3650,
            user_validity_days: 730,
            server_validity_days: 397,
            crl_validity_days: 7,
            one_time_password_length: 20,
            min_passphrase_length: 10,
            email_from: None,
        }
    }
}

impl PkiSettings {
    pub(crate) fn bits(what: &str, bits: u32) -> Result<KeyBits, PkiError> {
        KeyBits::from_bits(bits)
            .ok_or_else(|| PkiError::Setting(format!("{what} must be 2048, 3072 or 4096, not {bits}")))
    }

    /// Checks every value, so a bad config fails at start, not mid-issue.
    pub fn validate(&self) -> Result<(), PkiError> {
        Self::bits("pki.ca_key_bits", self.ca_key_bits)?;
        Self::bits("pki.user_key_bits", self.user_key_bits)?;
        Self::bits("pki.server_key_bits", self.server_key_bits)?;
        for (name, v) in [
            ("pki.ca_validity_days", self.ca_validity_days),
            ("pki.user_validity_days", self.user_validity_days),
            ("pki.server_validity_days", self.server_validity_days),
            ("pki.crl_validity_days", self.crl_validity_days),
        ] {
            if v == 0 || v > 36500 {
                return Err(PkiError::Setting(format!("{name} must be between 1 and 36500")));
            }
        }
        if self.one_time_password_length < snow_crypto::one_time_password::MIN_LENGTH {
            return Err(PkiError::Setting(format!(
                "pki.one_time_password_length must be at least {}",
                snow_crypto::one_time_password::MIN_LENGTH
            )));
        }
        if self.min_passphrase_length < 8 {
            return Err(PkiError::Setting("pki.min_passphrase_length must be at least 8".into()));
        }
        if let Some(from) = &self.email_from {
            from.parse::<snow_core::Email>().map_err(|e| PkiError::Setting(format!("pki.email_from: {e}")))?;
        }
        Ok(())
    }
}
