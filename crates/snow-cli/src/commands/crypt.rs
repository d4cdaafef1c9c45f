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
//!
//! `snow crypt sign` signs with the key store's key as Snow signs its
//! messages (`snow_crypto::xmldsig`: enveloped, exclusive c14n,
//! RSA-SHA256, the certificate chain in KeyInfo). An XML file is signed as
//! a document (re-written with default namespaces, which is the same XML);
//! any other file, or any file with `--wrap`, is first put in a
//! `<signed-file xmlns='urn:snow:signed:1' name='NAME'>base64</signed-file>`
//! so its exact bytes are signed. `snow crypt verify` checks the signature
//! (Snow's profile only, prefixes as written, so xmlsec1's `ds:` documents
//! verify), then the signer's certificate: issued by the CA of the key
//! store, valid now, a user's or agent's, and not revoked when a CRL is
//! given or in the home (`ca/crl.pem`); without a CRL it says revocation
//! was not checked.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use snow_crypto::e2e::recipient::{self, CrlProblem, RecipientError};
use snow_crypto::e2e::{self, KeyTransport};
use snow_crypto::{pem, xmldsig, CertInfo, FileKeyStore, KeyStore};
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
        CryptCommand::Sign { key, wrap, out, file } => {
            let bytes = read(&file)?;
            let doc = if wrap || !looks_like_xml(&bytes) {
                signed_file(&file, &bytes)
            } else {
                let limits = Limits {
                    max_stanza_bytes: xmldsig::MAX_SIGNED_BYTES,
                    max_depth: xmldsig::MAX_DEPTH,
                    max_elements: 1 << 16,
                    ..Limits::default()
                };
                snow_xml::parse_document(&bytes, limits).with_context(|| {
                    format!(
                        "{} looks like XML but is not a well-formed document (--wrap signs its bytes)",
                        file.display()
                    )
                })?
            };
            let store = ctx.key_store(&key);
            let identity = store.unlock(&crate::secrets::Source::personal_passphrase(&key).get()?)?;
            let signed =
                xmldsig::sign_enveloped(&doc, &identity).with_context(|| format!("cannot sign {}", file.display()))?;
            let text = format!("<?xml version='1.0' encoding='UTF-8'?>\n{}\n", signed.to_xml(""));
            write_out(out.as_deref(), text.as_bytes())
        }
        CryptCommand::Verify { keystore, crl, out, file } => verify(ctx, keystore, crl, out.as_deref(), &file),
    }
}

/// The namespace of a file wrapped to be signed.
const NS_SIGNED_FILE: &str = "urn:snow:signed:1";

/// True if the file starts (after a byte-order mark and white space) with
/// `<`: it is signed as an XML document.
fn looks_like_xml(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
}

/// `<signed-file xmlns='urn:snow:signed:1' name='NAME'>base64</signed-file>`.
fn signed_file(path: &Path, bytes: &[u8]) -> Element {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Element::new(NS_SIGNED_FILE, "signed-file")
        .with_attr("name", name)
        .with_text(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn verify(
    ctx: &Ctx,
    keystore: Option<std::path::PathBuf>,
    crl: Option<std::path::PathBuf>,
    out: Option<&Path>,
    file: &Path,
) -> anyhow::Result<()> {
    let bytes = read(file)?;
    let v = xmldsig::verify_enveloped_xml(&bytes)
        .with_context(|| format!("the signature of {} is not accepted", file.display()))?;
    let ca = trusted_ca(ctx, keystore)?;
    let now = time::OffsetDateTime::now_utc();
    let crl_path = crl.or_else(|| Some(ctx.paths.crl()).filter(|p| p.exists()));
    let crl = match &crl_path {
        Some(p) => {
            let raw = read(p)?;
            let der = if pem::is_pem(&raw) {
                pem::decode_all(&raw, &p.display().to_string())?
                    .into_iter()
                    .find(|(l, _)| l == "X509 CRL")
                    .map(|(_, d)| d)
                    .with_context(|| format!("{} holds no X509 CRL", p.display()))?
            } else {
                raw
            };
            Some(recipient::verify_crl(&der, &ca, now))
        }
        None => None,
    };
    let status = crl.as_ref().map(|c| c.as_ref()).unwrap_or(Err(&CrlProblem::Missing));
    let info = match recipient::check(&v.signer, &ca, status, now) {
        Ok(info) => info,
        // No CRL given and none in the home: everything else was checked.
        Err(RecipientError::StatusUnknown(CrlProblem::Missing)) if crl.is_none() => CertInfo::from_der(&v.signer)?,
        Err(e) => bail!("the signer of {} is not accepted: {e}", file.display()),
    };
    let cn = info.subject.split(',').find_map(|p| p.trim().strip_prefix("CN=")).unwrap_or(&info.subject);
    let mut report = format!(
        "signature valid: signed by {cn} ({}), JID {}\ncertificate: serial {}, issued by {}, valid until {}\n",
        info.subject,
        info.jid().unwrap_or("none"),
        info.serial_hex,
        info.issuer,
        info.not_after.date()
    );
    match &crl {
        Some(Ok(c)) => report.push_str(&format!("revocation: not revoked (CRL of {})\n", c.this_update.date())),
        _ => report.push_str("revocation: not checked (no CRL: give --crl FILE, or put it in SNOW_HOME/ca/crl.pem)\n"),
    }
    let content = if v.content.is(NS_SIGNED_FILE, "signed-file") {
        let data = base64::engine::general_purpose::STANDARD
            .decode(v.content.text().split_ascii_whitespace().collect::<String>())
            .context("the signed-file's content is not base64")?;
        report.push_str(&format!(
            "content: the file {:?}, {} bytes\n",
            v.content.attr("name").unwrap_or_default(),
            data.len()
        ));
        data
    } else {
        report.push_str(&format!("content: an XML document <{}> in {:?}\n", v.content.name(), v.content.ns()));
        format!("<?xml version='1.0' encoding='UTF-8'?>\n{}\n", v.content.to_xml("")).into_bytes()
    };
    print!("{report}");
    if let Some(p) = out {
        write_out(Some(p), &content)?;
    }
    Ok(())
}

/// The CA certificate trusted for signers: the last certificate of the key
/// store's chain, or the site's own CA certificate when there is no key
/// store (at the PO).
fn trusted_ca(ctx: &Ctx, keystore: Option<std::path::PathBuf>) -> anyhow::Result<Vec<u8>> {
    let store = FileKeyStore::new(keystore.clone().unwrap_or_else(|| ctx.paths.keystore()));
    if keystore.is_some() || store.exists() {
        let chain = store.certificate_chain()?;
        return chain
            .into_iter()
            .skip(1)
            .last()
            .with_context(|| format!("the key store at {} holds no CA certificate", store.dir().display()));
    }
    let ca = ctx.paths.ca_cert();
    if !ca.exists() {
        bail!("no CA to check the signer against: import your key first (`snow key import`), or give --keystore DIR");
    }
    let raw = read(&ca)?;
    pem::certificates(&raw, &ca.display().to_string())?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", ca.display()))
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
