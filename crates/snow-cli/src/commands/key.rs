//! `snow key …`: the user's own key store.

use std::path::Path;

use anyhow::{bail, Context};
use snow_crypto::{pem, pkcs12, pkcs8_file, CertInfo, FileKeyStore, Identity, KeyStore, MAX_KEY_FILE_BYTES};

use super::{show_time, Ctx};
use crate::cli::KeyCommand;

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Import { file, cert, keystore, force } => {
            let store = FileKeyStore::new(keystore.unwrap_or_else(|| ctx.paths.keystore()));
            if store.exists() && !force {
                return Err(snow_crypto::CryptoError::KeyStoreExists(store.dir().to_owned()).into());
            }
            let identity = open_key_file(ctx, &file, cert.as_deref())?;
            let min = ctx.config.pki.min_passphrase_length;
            let pass = ctx.personal_passphrase().get_new()?;
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
        KeyCommand::Show { keystore } => {
            let store = FileKeyStore::new(keystore.unwrap_or_else(|| ctx.paths.keystore()));
            let chain = store.certificate_chain()?;
            let info = CertInfo::from_der(&chain[0])?;
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
fn open_key_file(ctx: &Ctx, file: &Path, cert: Option<&Path>) -> anyhow::Result<Identity> {
    let what = file.display().to_string();
    let bytes =
        snow_core::files::read_limited(file, MAX_KEY_FILE_BYTES).with_context(|| format!("cannot read {what}"))?;
    if pkcs12::looks_like(&bytes) {
        if cert.is_some() {
            bail!("{what} is a PKCS#12 file, which carries its own certificate: leave out --cert");
        }
        let password = ctx.one_time_password().get()?;
        let contents = pkcs12::read(&bytes, &password, &what).with_context(|| format!("cannot open {what}"))?;
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
        let password = ctx.one_time_password().get()?;
        let key = pkcs8_file::decrypt(&bytes, &password, &what).with_context(|| format!("cannot open {what}"))?;
        return Identity::new(key, chain).with_context(|| format!("cannot use {what} with {cert_what}"));
    }
    bail!("{what} is neither a PKCS#12 (.p12) file nor an encrypted PKCS#8 key")
}
