//! `snow key …`: the user's own key store.

use std::path::Path;

use anyhow::Context;
use snow_crypto::{pkcs12, pkcs8_file, Identity, KeyStore, MAX_KEY_FILE_BYTES};

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
            let pass = Source::personal_passphrase(&key).get_new()?;
            snow_client::keys::check_new_passphrase(&pass, ctx.config.pki.min_passphrase_length)?;
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
    let cert_bytes = match cert {
        Some(c) => Some(
            snow_core::files::read_limited(c, MAX_KEY_FILE_BYTES)
                .with_context(|| format!("cannot read {}", c.display()))?,
        ),
        None => None,
    };
    if !pkcs12::looks_like(&bytes) && !pkcs8_file::looks_like(&bytes) {
        // Before asking for a password that could not help.
        return Err(snow_client::keys::KeyFileError::NotAKeyFile { what }.into());
    }
    let password = Source::one_time_password(password_file).get()?;
    Ok(snow_client::keys::open_key_file(&bytes, cert_bytes.as_deref(), &password, &what)?)
}
