//! `snow crypt …`: the XML Encryption envelope on files, for operators and
//! for testing against xmlsec1.
//!
//! Encryption names each recipient's certificate by X509IssuerSerial, as
//! Snow's messages do, for at most 16 recipients (what any Snow decryption
//! reads). Decryption takes files from other tools too
//! ([`e2e::DecryptPolicy::FOREIGN`]): at most 16 EncryptedKeys, refused
//! before any RSA operation; the EncryptedKey that names our certificate
//! (X509IssuerSerial in either DN order, X509Certificate, X509SubjectName,
//! or a KeyName equal to our subject or JID) is tried; an EncryptedKey
//! that names nobody only when none names us; one that names someone else
//! never.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use snow_crypto::e2e::{self, KeyTransport};
use snow_crypto::{pem, KeyStore};
use snow_xml::{Element, Limits};

use super::Ctx;
use crate::cli::CryptCommand;

/// Largest file `snow crypt` reads.
const MAX_FILE: u64 = e2e::MAX_PLAINTEXT as u64 * 2;

pub fn run(ctx: &Ctx, cmd: CryptCommand) -> anyhow::Result<()> {
    match cmd {
        CryptCommand::Encrypt { to, key_transport, content, out, file } => {
            let transport = match key_transport.as_str() {
                "rsa-oaep" => KeyTransport::RsaOaepSha256,
                "rsa-oaep-mgf1p" => KeyTransport::RsaOaepMgf1pSha1,
                other => bail!("--key-transport must be rsa-oaep or rsa-oaep-mgf1p, not {other:?}"),
            };
            let mut certs = Vec::new();
            for path in &to {
                let bytes = read(path)?;
                if pem::is_pem(&bytes) {
                    certs.extend(pem::certificates(&bytes, &path.display().to_string())?.into_iter().take(1));
                } else {
                    certs.push(bytes);
                }
            }
            if certs.len() > e2e::MAX_ENCRYPTED_KEYS {
                bail!(
                    "{} recipients: at most {} (Snow reads no more EncryptedKeys than that)",
                    certs.len(),
                    e2e::MAX_ENCRYPTED_KEYS
                );
            }
            let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
            let plaintext = read(&file)?;
            let mut enc = e2e::encrypt(&plaintext, &refs, transport)?;
            if content {
                enc.set_attr("Type", e2e::TYPE_CONTENT);
            }
            let doc = format!("<?xml version='1.0' encoding='UTF-8'?>\n{}\n", enc.to_xml(""));
            write_out(out.as_deref(), doc.as_bytes())
        }
        CryptCommand::Decrypt { key, out, file } => {
            let limits = Limits { max_stanza_bytes: MAX_FILE as usize, max_depth: 64, ..Limits::default() };
            let doc = snow_xml::parse_document(&read(&file)?, limits)
                .with_context(|| format!("{} is not a well-formed XML document", file.display()))?;
            let enc = find(&doc).with_context(|| format!("{} holds no xenc:EncryptedData", file.display()))?;
            let store = ctx.key_store(&key);
            let identity = store.unlock(&crate::secrets::Source::personal_passphrase(&key).get()?)?;
            let plain =
                e2e::decrypt_with(enc, identity.key_pkcs8(), identity.certificate(), &e2e::DecryptPolicy::FOREIGN)
                    .with_context(|| format!("cannot decrypt {}", file.display()))?;
            write_out(out.as_deref(), &plain)
        }
    }
}

/// The first EncryptedData, depth first.
fn find(el: &Element) -> Option<&Element> {
    if el.is(e2e::NS_XENC, "EncryptedData") {
        return Some(el);
    }
    el.children().find_map(find)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    snow_core::files::read_limited(path, MAX_FILE).with_context(|| format!("cannot read {}", path.display()))
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(p) => snow_core::files::write(p, bytes, snow_core::files::Mode::Private)
            .with_context(|| format!("cannot write {}", p.display())),
        None => {
            let mut o = std::io::stdout();
            o.write_all(bytes)?;
            o.flush()?;
            Ok(())
        }
    }
}
