//! End-to-end encryption with W3C XML Encryption 1.1 (docs/architecture.md §6).
//!
//! The content is encrypted once with a fresh AES-256-GCM key
//! (`xmlenc11#aes256-gcm`, CipherValue = IV[12] ‖ ciphertext ‖ tag[16], no
//! AAD); the key is wrapped with RSA-OAEP once per recipient, each in an
//! `EncryptedKey` naming the recipient's certificate by issuer and serial.
//! Key transport is `xmlenc11#rsa-oaep` with SHA-256 and MGF1-SHA-256 by
//! default, or `xmlenc#rsa-oaep-mgf1p` (SHA-1), which is all xmlsec1 1.2
//! understands; both are accepted on input.
//!
//! ```xml
//! <EncryptedData xmlns='http://www.w3.org/2001/04/xmlenc#' Type='…#Content'>
//!   <EncryptionMethod Algorithm='http://www.w3.org/2009/xmlenc11#aes256-gcm'/>
//!   <KeyInfo xmlns='http://www.w3.org/2000/09/xmldsig#'>
//!     <EncryptedKey xmlns='http://www.w3.org/2001/04/xmlenc#'>
//!       <EncryptionMethod Algorithm='…xmlenc11#rsa-oaep'>
//!         <DigestMethod xmlns='…xmldsig#' Algorithm='…xmlenc#sha256'/>
//!         <MGF xmlns='…xmlenc11#' Algorithm='…xmlenc11#mgf1sha256'/>
//!       </EncryptionMethod>
//!       <KeyInfo xmlns='…xmldsig#'><X509Data><X509IssuerSerial>
//!         <X509IssuerName>CN=…</X509IssuerName><X509SerialNumber>123…</X509SerialNumber>
//!       </X509IssuerSerial></X509Data></KeyInfo>
//!       <CipherData><CipherValue>base64</CipherValue></CipherData>
//!     </EncryptedKey> …one per recipient…
//!   </KeyInfo>
//!   <CipherData><CipherValue>base64(IV ‖ ciphertext ‖ tag)</CipherValue></CipherData>
//! </EncryptedData>
//! ```
//!
//! Decryption reads at most [`MAX_ENCRYPTED_KEYS`] EncryptedKeys and
//! refuses more before any RSA operation (a request with hundreds of them
//! would otherwise cost as many RSA decryptions). Which EncryptedKey it
//! tries is the [`DecryptPolicy`]: for Snow's own envelopes
//! ([`DecryptPolicy::SNOW`], what [`decrypt`] and [`decrypt_content`] use)
//! only the one that names our certificate, by `X509IssuerSerial` (issuer
//! and serial) or `X509Certificate`, so an EncryptedKey for someone else is
//! never tried and a message costs at most one RSA decryption. Files from
//! other XML Encryption tools ([`DecryptPolicy::FOREIGN`], `snow crypt
//! decrypt`) may name the key by `KeyName` or not at all: an unnamed
//! EncryptedKey is tried there, but only when none names our certificate.
//!
//! Before encrypting to a certificate from the key directory, a client
//! checks it with [`recipient`]: chain, validity, key usage, and
//! revocation by the CA's CRL.

pub mod recipient;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use base64::Engine;
use snow_xml::{Element, Limits, Node};
use zeroize::Zeroizing;

use crate::cert::CertInfo;

pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const ALG_AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
pub const ALG_RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
pub const ALG_RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
pub const ALG_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ALG_MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";
pub const ALG_MGF1_SHA256: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha256";
pub const TYPE_CONTENT: &str = "http://www.w3.org/2001/04/xmlenc#Content";

/// Most recipients one envelope is encrypted for, and the largest
/// plaintext.
pub const MAX_RECIPIENTS: usize = 256;
/// Most EncryptedKeys a decryption reads (Snow's requests and messages,
/// and `snow crypt decrypt`); more is refused before any RSA operation.
pub const MAX_ENCRYPTED_KEYS: usize = 16;
pub const MAX_PLAINTEXT: usize = 16 * 1024 * 1024;

/// Why encryption or decryption failed. Decryption never returns partial
/// output: either the whole, authenticated plaintext or one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E2eError {
    #[error("not an XML Encryption element: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("the message is not encrypted for this key")]
    NotForThisKey,
    #[error("the message was modified or damaged (authentication failed)")]
    Tampered,
    #[error("the recipient certificate cannot be used: {0}")]
    BadRecipient(String),
    #[error("{0} recipients; at most {MAX_RECIPIENTS}")]
    TooManyRecipients(usize),
    /// Refused before any RSA operation.
    #[error("{found} EncryptedKeys; at most {max} are accepted")]
    TooManyEncryptedKeys { found: usize, max: usize },
    #[error("the content is larger than {MAX_PLAINTEXT} bytes")]
    TooLarge,
    #[error("the decrypted content is not well-formed XML: {0}")]
    BadContent(String),
    #[error("cryptographic operation failed")]
    Internal,
}

/// How the content key is wrapped for each recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyTransport {
    /// `xmlenc11#rsa-oaep` with SHA-256 and MGF1-SHA-256.
    #[default]
    RsaOaepSha256,
    /// `xmlenc#rsa-oaep-mgf1p` with SHA-1 (for xmlsec1 1.2).
    RsaOaepMgf1pSha1,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn el(ns: &'static str, name: &'static str) -> Element {
    Element::new(ns, name)
}

/// Encrypts `plaintext` once for every certificate in `recipients` (DER).
/// The `EncryptedData` has no Type: the plaintext is opaque bytes (see
/// [`encrypt_content`] for XML content, Type Content).
pub fn encrypt(plaintext: &[u8], recipients: &[&[u8]], transport: KeyTransport) -> Result<Element, E2eError> {
    if recipients.is_empty() {
        return Err(E2eError::BadRecipient("no recipients".into()));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(E2eError::TooManyRecipients(recipients.len()));
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(E2eError::TooLarge);
    }
    let rng = SystemRandom::new();
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill(&mut key[..]).map_err(|_| E2eError::Internal)?;
    let mut iv = [0u8; 12];
    rng.fill(&mut iv).map_err(|_| E2eError::Internal)?;
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| E2eError::Internal)?);
    let mut buf = plaintext.to_vec();
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
        .map_err(|_| E2eError::Internal)?;
    let mut cipher_value = Vec::with_capacity(12 + buf.len());
    cipher_value.extend_from_slice(&iv);
    cipher_value.extend_from_slice(&buf);

    let mut key_info = el(NS_DSIG, "KeyInfo");
    for cert in recipients {
        key_info.push_child(encrypted_key(&key[..], cert, transport)?);
    }
    Ok(el(NS_XENC, "EncryptedData")
        .with_child(el(NS_XENC, "EncryptionMethod").with_attr("Algorithm", ALG_AES256_GCM))
        .with_child(key_info)
        .with_child(
            el(NS_XENC, "CipherData").with_child(el(NS_XENC, "CipherValue").with_text(b64().encode(cipher_value))),
        ))
}

fn encrypted_key(key: &[u8], cert_der: &[u8], transport: KeyTransport) -> Result<Element, E2eError> {
    let info = CertInfo::from_der(cert_der).map_err(|e| E2eError::BadRecipient(e.to_string()))?;
    let public = PublicEncryptingKey::from_der(&info.spki_der)
        .map_err(|_| E2eError::BadRecipient(format!("{} has no RSA key", info.subject)))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| E2eError::Internal)?;
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let (alg, method) = match transport {
        KeyTransport::RsaOaepSha256 => (
            &OAEP_SHA256_MGF1SHA256,
            el(NS_XENC, "EncryptionMethod")
                .with_attr("Algorithm", ALG_RSA_OAEP)
                .with_child(el(NS_DSIG, "DigestMethod").with_attr("Algorithm", ALG_SHA256))
                .with_child(el(NS_XENC11, "MGF").with_attr("Algorithm", ALG_MGF1_SHA256)),
        ),
        KeyTransport::RsaOaepMgf1pSha1 => (
            &OAEP_SHA1_MGF1SHA1,
            el(NS_XENC, "EncryptionMethod")
                .with_attr("Algorithm", ALG_RSA_OAEP_MGF1P)
                .with_child(el(NS_DSIG, "DigestMethod").with_attr("Algorithm", ALG_SHA1)),
        ),
    };
    let wrapped = oaep.encrypt(alg, key, &mut out, None).map_err(|_| E2eError::Internal)?;
    let issuer_serial = el(NS_DSIG, "X509IssuerSerial")
        .with_child(el(NS_DSIG, "X509IssuerName").with_text(info.issuer.clone()))
        .with_child(el(NS_DSIG, "X509SerialNumber").with_text(info.serial_decimal.clone()));
    Ok(el(NS_XENC, "EncryptedKey")
        .with_child(method)
        .with_child(el(NS_DSIG, "KeyInfo").with_child(el(NS_DSIG, "X509Data").with_child(issuer_serial)))
        .with_child(el(NS_XENC, "CipherData").with_child(el(NS_XENC, "CipherValue").with_text(b64().encode(wrapped)))))
}

fn cipher_value(parent: &Element) -> Result<Vec<u8>, E2eError> {
    let text = parent
        .child(NS_XENC, "CipherData")
        .and_then(|c| c.child(NS_XENC, "CipherValue"))
        .ok_or(E2eError::Malformed("no CipherData/CipherValue"))?
        .text();
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    b64().decode(compact).map_err(|_| E2eError::Malformed("CipherValue is not base64"))
}

/// The OAEP parameters an EncryptedKey names (only matched pairs).
fn oaep_of(method: &Element) -> Result<&'static OaepAlgorithm, E2eError> {
    let alg = method.attr("Algorithm").unwrap_or_default();
    let digest = method.child(NS_DSIG, "DigestMethod").and_then(|d| d.attr("Algorithm")).unwrap_or(ALG_SHA1);
    let mgf = method.child(NS_XENC11, "MGF").and_then(|m| m.attr("Algorithm")).unwrap_or(ALG_MGF1_SHA1);
    match (alg, digest, mgf) {
        (ALG_RSA_OAEP_MGF1P, ALG_SHA1, _) | (ALG_RSA_OAEP, ALG_SHA1, ALG_MGF1_SHA1) => Ok(&OAEP_SHA1_MGF1SHA1),
        (ALG_RSA_OAEP, ALG_SHA256, ALG_MGF1_SHA256) => Ok(&OAEP_SHA256_MGF1SHA256),
        (a, d, m) => Err(E2eError::UnsupportedAlgorithm(format!("{a} with digest {d} and {m}"))),
    }
}

/// Which EncryptedKeys a decryption tries, and how many it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptPolicy {
    /// Most EncryptedKeys in the envelope; more is
    /// [`E2eError::TooManyEncryptedKeys`], before any RSA operation.
    pub max_keys: usize,
    pub naming: Naming,
}

/// How an EncryptedKey must name the recipient to be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Only the first EncryptedKey that names our certificate: an
    /// `X509IssuerSerial` with its issuer and serial, or an
    /// `X509Certificate` with its DER. At most one RSA decryption.
    Certificate,
    /// As well a `KeyName` or `X509SubjectName` equal to our subject or
    /// JID; and when no EncryptedKey names us, each one that names nobody
    /// (no KeyInfo, or none Snow reads). An EncryptedKey that names
    /// someone else is never tried.
    Lenient,
}

impl DecryptPolicy {
    /// Snow's requests and messages (search requests and answers, chat).
    pub const SNOW: DecryptPolicy = DecryptPolicy { max_keys: MAX_ENCRYPTED_KEYS, naming: Naming::Certificate };
    /// Files from other XML Encryption tools (`snow crypt decrypt`).
    pub const FOREIGN: DecryptPolicy = DecryptPolicy { max_keys: MAX_ENCRYPTED_KEYS, naming: Naming::Lenient };
    /// An envelope encrypted to many (up to [`MAX_RECIPIENTS`]), opened
    /// with the one EncryptedKey that names our certificate: still at most
    /// one RSA decryption.
    pub const BROADCAST: DecryptPolicy = DecryptPolicy { max_keys: MAX_RECIPIENTS, naming: Naming::Certificate };
}

/// Whom an EncryptedKey names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Us,
    Other,
    Nobody,
}

/// Whom the EncryptedKey `ek` names, as `naming` reads names.
fn named(ek: &Element, info: &CertInfo, cert_der: &[u8], naming: Naming) -> Named {
    let Some(ki) = ek.child(NS_DSIG, "KeyInfo") else { return Named::Nobody };
    let us = |yes: bool| if yes { Named::Us } else { Named::Other };
    for data in ki.children().filter(|c| c.is(NS_DSIG, "X509Data")) {
        if let Some(cert) = data.child(NS_DSIG, "X509Certificate") {
            let compact: String = cert.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
            return us(b64().decode(compact).is_ok_and(|der| der == cert_der));
        }
        if let Some(is) = data.child(NS_DSIG, "X509IssuerSerial") {
            let serial = is.child(NS_DSIG, "X509SerialNumber").map(|s| s.text()).unwrap_or_default();
            let issuer = is.child(NS_DSIG, "X509IssuerName").map(|s| s.text()).unwrap_or_default();
            return us(same_serial(&serial, &info.serial_decimal) && recipient::same_dn(&issuer, &info.issuer));
        }
        if let Some(subject) = data.child(NS_DSIG, "X509SubjectName") {
            return us(naming == Naming::Lenient && recipient::same_dn(&subject.text(), &info.subject));
        }
    }
    if let Some(name) = ki.child(NS_DSIG, "KeyName") {
        let n = name.text();
        let n = n.trim();
        return us(naming == Naming::Lenient && (n == info.subject || info.xmpp_addrs.iter().any(|j| j == n)));
    }
    Named::Nobody
}

/// Decimal serial numbers, compared as numbers (leading zeros and
/// surrounding space aside).
fn same_serial(text: &str, decimal: &str) -> bool {
    let t = text.trim();
    let t = t.trim_start_matches('0');
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t == decimal.trim_start_matches('0')
}

/// The EncryptedKeys of an `EncryptedData`, refused if more than `max`:
/// what a request can be refused on before any RSA operation.
pub fn encrypted_keys(enc: &Element, max: usize) -> Result<Vec<&Element>, E2eError> {
    let keys: Vec<&Element> = enc
        .child(NS_DSIG, "KeyInfo")
        .map(|ki| ki.children().filter(|c| c.is(NS_XENC, "EncryptedKey")).collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(E2eError::Malformed("no EncryptedKey"));
    }
    if keys.len() > max {
        return Err(E2eError::TooManyEncryptedKeys { found: keys.len(), max });
    }
    Ok(keys)
}

/// Decrypts an `EncryptedData` with the recipient's key and certificate,
/// as Snow's own envelopes name their recipients ([`DecryptPolicy::SNOW`]).
pub fn decrypt(enc: &Element, key_pkcs8: &[u8], cert_der: &[u8]) -> Result<Zeroizing<Vec<u8>>, E2eError> {
    decrypt_with(enc, key_pkcs8, cert_der, &DecryptPolicy::SNOW)
}

/// Decrypts an `EncryptedData` with the recipient's key and certificate,
/// trying the EncryptedKeys `policy` allows. A key for someone else is
/// never tried; too many EncryptedKeys are refused before the private key
/// is even read.
pub fn decrypt_with(
    enc: &Element,
    key_pkcs8: &[u8],
    cert_der: &[u8],
    policy: &DecryptPolicy,
) -> Result<Zeroizing<Vec<u8>>, E2eError> {
    if !enc.is(NS_XENC, "EncryptedData") {
        return Err(E2eError::Malformed("the element is not xenc:EncryptedData"));
    }
    let alg = enc.child(NS_XENC, "EncryptionMethod").and_then(|m| m.attr("Algorithm")).unwrap_or_default();
    if alg != ALG_AES256_GCM {
        return Err(E2eError::UnsupportedAlgorithm(alg.to_owned()));
    }
    let keys = encrypted_keys(enc, policy.max_keys.min(MAX_RECIPIENTS))?;
    let info = CertInfo::from_der(cert_der).map_err(|e| E2eError::BadRecipient(e.to_string()))?;
    let naming: Vec<Named> = keys.iter().map(|k| named(k, &info, cert_der, policy.naming)).collect();
    let ours = keys.iter().zip(&naming).filter(|(_, n)| **n == Named::Us).map(|(k, _)| *k);
    let candidates: Vec<&Element> = match policy.naming {
        Naming::Certificate => ours.take(1).collect(),
        Naming::Lenient => {
            let ours: Vec<&Element> = ours.collect();
            if ours.is_empty() {
                keys.iter().zip(&naming).filter(|(_, n)| **n == Named::Nobody).map(|(k, _)| *k).collect()
            } else {
                ours
            }
        }
    };
    if candidates.is_empty() {
        return Err(E2eError::NotForThisKey);
    }
    let private =
        PrivateDecryptingKey::from_pkcs8(key_pkcs8).map_err(|_| E2eError::BadRecipient("not an RSA key".into()))?;
    let oaep = OaepPrivateDecryptingKey::new(private).map_err(|_| E2eError::Internal)?;
    let mut content_key = None;
    for ek in candidates {
        let method = ek.child(NS_XENC, "EncryptionMethod").ok_or(E2eError::Malformed("EncryptedKey without method"))?;
        let alg = oaep_of(method)?;
        let wrapped = cipher_value(ek)?;
        let mut out = Zeroizing::new(vec![0u8; oaep.key_size_bytes()]);
        if let Ok(k) = oaep.decrypt(alg, &wrapped, &mut out, None) {
            if k.len() == 32 {
                content_key = Some(Zeroizing::new(k.to_vec()));
                break;
            }
        }
    }
    let key = content_key.ok_or(E2eError::NotForThisKey)?;
    let data = cipher_value(enc)?;
    if data.len() < 12 + 16 {
        return Err(E2eError::Malformed("CipherValue is too short"));
    }
    if data.len() > MAX_PLAINTEXT + 28 {
        return Err(E2eError::TooLarge);
    }
    let (iv, rest) = data.split_at(12);
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| E2eError::Internal)?;
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).map_err(|_| E2eError::Internal)?);
    let mut buf = Zeroizing::new(rest.to_vec());
    let plain = aead.open_in_place(nonce, Aad::empty(), &mut buf).map_err(|_| E2eError::Tampered)?.len();
    buf.truncate(plain);
    Ok(buf)
}

/// Encrypts the children of `element` (serialized with `default_ns` as
/// their parent namespace) and replaces them with the `EncryptedData`.
pub fn encrypt_content(
    element: &mut Element,
    default_ns: &str,
    recipients: &[&[u8]],
    transport: KeyTransport,
) -> Result<(), E2eError> {
    let mut plaintext = Zeroizing::new(String::new());
    for n in element.nodes() {
        match n {
            Node::Element(e) => e.write_xml(&mut plaintext, default_ns),
            Node::Text(t) => snow_xml::escape::push_escaped(&mut plaintext, t),
        }
    }
    let mut enc = encrypt(plaintext.as_bytes(), recipients, transport)?;
    enc.set_attr("Type", TYPE_CONTENT);
    element.nodes_mut().clear();
    element.push_child(enc);
    Ok(())
}

/// The reverse of [`encrypt_content`]: finds the `EncryptedData` child of
/// `element`, decrypts it ([`DecryptPolicy::SNOW`]) and puts the content
/// back in its place.
pub fn decrypt_content(
    element: &mut Element,
    default_ns: &str,
    key_pkcs8: &[u8],
    cert_der: &[u8],
) -> Result<(), E2eError> {
    decrypt_content_with(element, default_ns, key_pkcs8, cert_der, &DecryptPolicy::SNOW)
}

/// [`decrypt_content`] with the EncryptedKeys `policy` allows.
pub fn decrypt_content_with(
    element: &mut Element,
    default_ns: &str,
    key_pkcs8: &[u8],
    cert_der: &[u8],
    policy: &DecryptPolicy,
) -> Result<(), E2eError> {
    let enc = element.child(NS_XENC, "EncryptedData").ok_or(E2eError::Malformed("no EncryptedData"))?;
    let plain = decrypt_with(enc, key_pkcs8, cert_der, policy)?;
    let text = std::str::from_utf8(&plain).map_err(|_| E2eError::BadContent("not UTF-8".into()))?;
    // Parsed as the content of a wrapper in the parent's namespace, with
    // the same limits as network input.
    let mut wrapped = String::with_capacity(text.len() + 64);
    wrapped.push_str("<w xmlns='");
    snow_xml::escape::push_escaped(&mut wrapped, default_ns);
    wrapped.push_str("'>");
    wrapped.push_str(text);
    wrapped.push_str("</w>");
    let limits = Limits { max_stanza_bytes: MAX_PLAINTEXT + 1024, ..Limits::default() };
    let parsed = snow_xml::parse_document(wrapped.as_bytes(), limits).map_err(|e| E2eError::BadContent(e.detail))?;
    let nodes = parsed.nodes().to_vec();
    *element.nodes_mut() = nodes;
    Ok(())
}
