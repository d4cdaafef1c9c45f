//! `snow key …`: the user's own key store.

use std::path::Path;

use anyhow::{bail, Context};
use snow_crypto::{pem, pkcs12, pkcs8_file, CertInfo, Identity, KeyStore, MAX_KEY_FILE_BYTES};

use super::{show_time, Ctx};
use crate::cli::KeyCommand;
use crate::secrets::Source;

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Import { file, cert, password_file, key, force } => {
            let store = ctx.key_store(&key);
            if store.exists() && !force {
                return Err(snow_crypto::CryptoError::KeyStoreExists(store.dir().to_owned()).into());
            }
            let identity = open_key_file(&file, cert.as_deref(), password_file.as_deref())?;
            let min = ctx.config.pki.min_passphrase_length;
            let pass = Source::personal_passphrase(&key).get_new()?;
            if pass.chars().count() < min {
                bail!("your personal passphrase is too short: use at least {min} characters");
            }
            store.save(&identity, &pass, force)?;
            let info = identity.info();
            println!("Imported the key of {} into {}", info.jid().unwrap_or(&info.subject), store.dir().display());
            if !info.is_valid_at(time::OffsetDateTime::now_utc()) {
                eprintln!(
                    "warning: the certificate is not valid now (valid {} to {})",
                    show_time(info.not_before),
                    show_time(info.not_after)
                );
            }
            Ok(())
        }
        KeyCommand::Show { key } => {
            let store = ctx.key_store(&key);
            // The passphrase is checked, so `key show` also answers "is this
            // still my passphrase?" before a login fails on it.
            store.certificate_chain()?;
            let identity = store.unlock(&Source::personal_passphrase(&key).get()?)?;
            let info = identity.info();
            println!("Key store    {}", store.dir().display());
            println!("Subject      {}", info.subject);
            println!("JID          {}", info.jid().unwrap_or("(none)"));
            println!("Issuer       {}", info.issuer);
            println!("Serial       {}", info.serial_hex);
            println!("Valid from   {}", show_time(info.not_before));
            println!("Valid until  {}", show_time(info.not_after));
            println!("SHA-256      {}", info.fingerprint_sha256);
            Ok(())
        }
    }
}

/// Opens a .p12 or an encrypted PKCS#8 key (+ `--cert`) with its password.
fn open_key_file(file: &Path, cert: Option<&Path>, password_file: Option<&Path>) -> anyhow::Result<Identity> {
    let what = file.display().to_string();
    let bytes =
        snow_core::files::read_limited(file, MAX_KEY_FILE_BYTES).with_context(|| format!("cannot read {what}"))?;
    if pkcs12::looks_like(&bytes) {
        if cert.is_some() {
            bail!("{what} is a PKCS#12 file, which carries its own certificate: leave out --cert");
        }
        let password = Source::one_time_password(password_file).get()?;
        let contents = pkcs12::read(&bytes, &password, &what)
            .with_context(|| format!("cannot open {what} with the one-time password (the one in the SMS)"))?;
        return Identity::new(contents.key_pkcs8, contents.chain).with_context(|| format!("cannot use {what}"));
    }
    if pkcs8_file::looks_like(&bytes) {
        let Some(cert) = cert else {
            bail!("{what} is a PKCS#8 key, which holds no certificate: give the certificate with --cert PATH");
        };
        let cert_what = cert.display().to_string();
        let cert_bytes = snow_core::files::read_limited(cert, MAX_KEY_FILE_BYTES)
            .with_context(|| format!("cannot read {cert_what}"))?;
        let chain: Vec<Vec<u8>> = if pem::is_pem(&cert_bytes) {
            pem::certificates(&cert_bytes, &cert_what)?
        } else {
            CertInfo::from_der(&cert_bytes).with_context(|| format!("cannot read {cert_what}"))?;
            vec![cert_bytes]
        };
        let password = Source::one_time_password(password_file).get()?;
        let key = pkcs8_file::decrypt(&bytes, &password, &what)
            .with_context(|| format!("cannot open {what} with the key file's password"))?;
        return Identity::new(key, chain).with_context(|| format!("cannot use {what} with {cert_what}"));
    }
    bail!("{what} is neither a PKCS#12 (.p12) file nor an encrypted PKCS#8 key")
}
