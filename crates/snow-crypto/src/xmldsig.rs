//! W3C XML Signature (enveloped), in one fixed profile: what proves who
//! wrote a Snow payload (issue 20) and what `snow crypt sign|verify` make
//! and check for files.
//!
//! The profile, and nothing looser, is what [`verify_enveloped`] accepts:
//!
//! ```xml
//! <doc …>…content…
//!   <Signature xmlns='http://www.w3.org/2000/09/xmldsig#'>   (the root's last child, the only one)
//!     <SignedInfo>
//!       <CanonicalizationMethod Algorithm='http://www.w3.org/2001/10/xml-exc-c14n#'/>
//!       <SignatureMethod Algorithm='http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'/>
//!       <Reference URI=''>                                     (exactly one, the whole document)
//!         <Transforms>
//!           <Transform Algorithm='http://www.w3.org/2000/09/xmldsig#enveloped-signature'/>
//!           <Transform Algorithm='http://www.w3.org/2001/10/xml-exc-c14n#'/>
//!         </Transforms>
//!         <DigestMethod Algorithm='http://www.w3.org/2001/04/xmlenc#sha256'/>
//!         <DigestValue>base64 SHA-256</DigestValue>
//!       </Reference>
//!     </SignedInfo>
//!     <SignatureValue>base64 RSASSA-PKCS1-v1_5 SHA-256</SignatureValue>
//!     <KeyInfo><X509Data>
//!       <X509Certificate>signer (leaf)</X509Certificate> <X509Certificate>issuer…</X509Certificate>
//!     </X509Data></KeyInfo>
//!   </Signature>
//! </doc>
//! ```
//!
//! Refused: any other algorithm (HMAC, SHA-1, RSA-PSS, inclusive c14n,
//! XPath or XSLT transforms), an `InclusiveNamespaces` PrefixList (a
//! declaration used only in content is not carried by the canonical form;
//! Snow never needs it), a Reference to anything but the whole document,
//! `Object`, `Manifest`, `KeyName`, `KeyValue`, `RetrievalMethod`, more
//! than [`MAX_CERTIFICATES`] certificates, a leaf key that is not RSA of
//! 2048 to 8192 bits. An `Id` attribute is allowed where the schema has one.
//!
//! RSA-PSS is not used: xmlsec1 1.2 (Debian's command line) does not know
//! `xmldsig-more#sha256-rsa-MGF1`, so a PSS signature would not verify
//! there (issue 20 asks for PSS only if libxmlsec1 accepts it both ways).
//!
//! The signature is written with the dsig namespace as the default
//! namespace (`<Signature xmlns='…xmldsig#'>`), which XML Namespaces makes
//! the same element as `<ds:Signature xmlns:ds='…'>`: snow_xml's tree keeps
//! namespaces, not prefixes. Other tools' `ds:` documents verify with
//! [`verify_enveloped_xml`], which canonicalizes with the prefixes as
//! written.
//!
//! What a verification establishes is that the content was signed with
//! the key of the first certificate in KeyInfo. It does **not** check that
//! certificate's chain to a CA, its validity dates, usage or revocation:
//! the caller does (`e2e::recipient::check` with the site CA and CRL), as it
//! also decides whether that signer may have written this content.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rsa::PublicEncryptingKey;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use snow_xml::written::{element_count, parse_document_written, Written};
use snow_xml::{c14n, Element, Limits, Node};

use crate::cert::CertInfo;
use crate::Identity;

pub const NS_DSIG: &str = crate::e2e::NS_DSIG;
pub const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// Most certificates in KeyInfo: the leaf and a few issuers (Snow has one
/// CA; 4 leaves room for an intermediate without letting a signature carry
/// an arbitrary bundle to parse).
pub const MAX_CERTIFICATES: usize = 4;
/// Largest signed document (input bytes, or canonical content).
pub const MAX_SIGNED_BYTES: usize = crate::e2e::MAX_PLAINTEXT;
/// Deepest element nesting accepted (canonicalization recurses).
pub const MAX_DEPTH: usize = 64;
/// Most base64 characters of one certificate (a 16 KiB one is already huge).
const MAX_CERT_B64: usize = 16 * 1024;
/// Most base64 characters of a SignatureValue (8192-bit RSA is 1,368).
const MAX_SIGNATURE_B64: usize = 2048;
/// Most base64 characters of a DigestValue (SHA-256 is 44).
const MAX_DIGEST_B64: usize = 128;

/// What a valid signature proves, for the caller to check further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's certificate (DER): the first in KeyInfo, whose key
    /// verified the signature. Not checked against any CA.
    pub signer: Vec<u8>,
    /// Every certificate of KeyInfo, leaf first, as the signer sent them.
    pub chain: Vec<Vec<u8>>,
    /// The document without its Signature: exactly what was signed.
    pub content: Element,
}

/// Why a document could not be signed or its signature is not accepted,
/// and where (`at`: the path inside the Signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsigError {
    #[error("not a well-formed XML document: {0}")]
    Xml(String),
    #[error("{what} is larger than {max} bytes")]
    TooLarge { what: &'static str, max: usize },
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    #[error("the document is not signed (it has no ds:Signature)")]
    NoSignature,
    #[error("the document has {0} ds:Signature elements; exactly one is accepted")]
    SignatureCount(usize),
    #[error("the ds:Signature is not the last child of the root element")]
    NotLastChild,
    #[error("the document is already signed (it holds a ds:Signature)")]
    AlreadySigned,
    #[error("{at}: {found} is not part of the accepted signature profile")]
    Unexpected { at: String, found: String },
    #[error("{at}: {what} is missing")]
    Missing { at: String, what: &'static str },
    #[error("{at}: algorithm {found:?} is not accepted (only {expected})")]
    Algorithm { at: String, found: String, expected: &'static str },
    #[error("{at}: {found} References; exactly one is accepted")]
    ReferenceCount { at: String, found: usize },
    #[error("{at}: URI {found:?}; only URI=\"\" (the whole document) is accepted")]
    ReferenceUri { at: String, found: String },
    #[error("{at}: not base64, or too long")]
    Base64 { at: String },
    #[error("{at}: {found} certificates; at most {max} are accepted")]
    TooManyCertificates { at: String, found: usize, max: usize },
    #[error("the signer's certificate cannot be used: {0}")]
    Certificate(String),
    #[error("the signed content was changed (its digest does not match)")]
    DigestMismatch,
    #[error("the signature does not verify with the key of the signer's certificate")]
    BadSignature,
    #[error("cannot sign: {0}")]
    Signing(String),
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn ds(name: &'static str) -> Element {
    Element::new(NS_DSIG, name)
}

/// Signs `doc` with `identity` and returns it with the Signature of the
/// profile above appended as the root's last child: enveloped, exclusive
/// c14n, SHA-256, RSA-SHA256 (PKCS#1 v1.5), the identity's certificate
/// chain in KeyInfo. Serialize the result with `to_xml` (as Snow does) and
/// any XML Signature tool verifies it.
pub fn sign_enveloped(doc: &Element, identity: &Identity) -> Result<Element, DsigError> {
    check_depth(doc)?;
    if count_signatures(doc) > 0 {
        return Err(DsigError::AlreadySigned);
    }
    if identity.chain().len() > MAX_CERTIFICATES {
        return Err(DsigError::Signing(format!(
            "the key's chain has {} certificates; at most {MAX_CERTIFICATES} are sent",
            identity.chain().len()
        )));
    }
    let content = c14n::exclusive(doc);
    if content.len() > MAX_SIGNED_BYTES {
        return Err(DsigError::TooLarge { what: "the document", max: MAX_SIGNED_BYTES });
    }
    let digest_value = b64().encode(digest(&SHA256, content.as_bytes()));
    let algorithm = |name, alg: &'static str| ds(name).with_attr("Algorithm", alg);
    let signed_info = ds("SignedInfo")
        .with_child(algorithm("CanonicalizationMethod", ALG_EXC_C14N))
        .with_child(algorithm("SignatureMethod", ALG_RSA_SHA256))
        .with_child(
            ds("Reference")
                .with_attr("URI", "")
                .with_child(
                    ds("Transforms")
                        .with_child(algorithm("Transform", ALG_ENVELOPED))
                        .with_child(algorithm("Transform", ALG_EXC_C14N)),
                )
                .with_child(algorithm("DigestMethod", ALG_SHA256))
                .with_child(ds("DigestValue").with_text(digest_value)),
        );
    let signature =
        identity.sign(c14n::exclusive(&signed_info).as_bytes()).map_err(|e| DsigError::Signing(e.to_string()))?;
    let mut x509 = ds("X509Data");
    for cert in identity.chain() {
        x509.push_child(ds("X509Certificate").with_text(b64().encode(cert)));
    }
    let mut out = doc.clone();
    out.push_child(
        ds("Signature")
            .with_child(signed_info)
            .with_child(ds("SignatureValue").with_text(b64().encode(signature)))
            .with_child(ds("KeyInfo").with_child(x509)),
    );
    Ok(out)
}

/// Verifies the enveloped signature of a document as Snow writes and
/// reads them (a tree from snow_xml, canonicalized with the prefixes
/// `to_xml` writes: default namespaces). Checks the profile above, the
/// digest and the signature with the first certificate's RSA key; **not**
/// that certificate's chain, validity or revocation (the caller's part).
pub fn verify_enveloped(doc: &Element) -> Result<Verified, DsigError> {
    verify_with(doc, Canon::Tree)
}

/// [`verify_enveloped`] for a document as bytes (a file, another tool's
/// output): canonicalized with the namespace prefixes it was written with,
/// so `ds:`-prefixed signatures and prefixed content verify as their
/// signer computed them. At most [`MAX_SIGNED_BYTES`].
pub fn verify_enveloped_xml(bytes: &[u8]) -> Result<Verified, DsigError> {
    let (doc, written) = parse_signed(bytes)?;
    verify_with(&doc, Canon::Written(&written))
}

/// Parses a signed document with its written prefixes, with the limits
/// [`verify_enveloped_xml`] applies.
fn parse_signed(bytes: &[u8]) -> Result<(Element, Written), DsigError> {
    if bytes.len() > MAX_SIGNED_BYTES {
        return Err(DsigError::TooLarge { what: "the document", max: MAX_SIGNED_BYTES });
    }
    let limits =
        Limits { max_stanza_bytes: MAX_SIGNED_BYTES, max_depth: MAX_DEPTH, max_elements: 1 << 16, ..Limits::default() };
    parse_document_written(bytes, limits).map_err(|e| DsigError::Xml(e.detail))
}

/// How canonical forms are made: from the tree as Snow writes it, or with
/// the prefixes of the bytes it was read from.
#[derive(Clone, Copy)]
enum Canon<'a> {
    Tree,
    Written(&'a Written),
}

impl Canon<'_> {
    /// `index`: `el`'s document-order index (for written prefixes).
    fn exclusive(self, el: &Element, index: usize) -> Result<String, DsigError> {
        match self {
            Canon::Tree => Ok(c14n::exclusive(el)),
            Canon::Written(w) => c14n::exclusive_written(el, w, index)
                .ok_or_else(|| DsigError::Xml("the document's prefixes do not match its elements".into())),
        }
    }
}

fn verify_with(doc: &Element, canon: Canon<'_>) -> Result<Verified, DsigError> {
    check_depth(doc)?;
    match count_signatures(doc) {
        0 => return Err(DsigError::NoSignature),
        1 => {}
        n => return Err(DsigError::SignatureCount(n)),
    }
    let nodes = doc.nodes();
    let at = nodes
        .iter()
        .position(|n| matches!(n, Node::Element(e) if e.is(NS_DSIG, "Signature")))
        .ok_or(DsigError::NotLastChild)?;
    if !nodes[at + 1..].iter().all(|n| matches!(n, Node::Text(t) if is_space(t))) {
        return Err(DsigError::NotLastChild);
    }
    let Node::Element(signature) = &nodes[at] else { return Err(DsigError::NotLastChild) };
    let parts = read_profile(signature)?;

    let mut content = doc.clone();
    content.nodes_mut().remove(at);
    let canonical = canon.exclusive(&content, 0)?;
    if canonical.len() > MAX_SIGNED_BYTES {
        return Err(DsigError::TooLarge { what: "the signed content", max: MAX_SIGNED_BYTES });
    }
    if digest(&SHA256, canonical.as_bytes()).as_ref() != parts.digest.as_slice() {
        return Err(DsigError::DigestMismatch);
    }
    // The Signature follows every element of the content in document
    // order, and SignedInfo is its first child.
    let signed_info = canon.exclusive(parts.signed_info, element_count(&content) + 1)?;

    let leaf = &parts.certs[0];
    let info = CertInfo::from_der(leaf).map_err(|e| DsigError::Certificate(e.to_string()))?;
    let rsa = PublicEncryptingKey::from_der(&info.spki_der)
        .map_err(|_| DsigError::Certificate(format!("{} has no RSA key", info.subject)))?;
    let bits = rsa.key_size_bits();
    if !(2048..=8192).contains(&bits) {
        return Err(DsigError::Certificate(format!(
            "{}'s RSA key has {bits} bits; 2048 to 8192 are accepted",
            info.subject
        )));
    }
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &info.public_key)
        .verify(signed_info.as_bytes(), &parts.signature)
        .map_err(|_| DsigError::BadSignature)?;
    Ok(Verified { signer: leaf.clone(), chain: parts.certs, content })
}

/// The pieces of a Signature that passed the profile.
struct Parts<'a> {
    signed_info: &'a Element,
    digest: Vec<u8>,
    signature: Vec<u8>,
    certs: Vec<Vec<u8>>,
}

/// Checks `sig` against the profile, element by element, and decodes what
/// the verification needs. Nothing here costs more than reading the tree.
fn read_profile(sig: &Element) -> Result<Parts<'_>, DsigError> {
    let at = "Signature".to_owned();
    only_attrs(sig, &at, &["Id"])?;
    let [signed_info, value, key_info] = sequence(sig, &at, ["SignedInfo", "SignatureValue", "KeyInfo"])?;

    let at_si = format!("{at}/SignedInfo");
    only_attrs(signed_info, &at_si, &["Id"])?;
    let kids = ds_children(signed_info, &at_si)?;
    let references = kids.iter().filter(|k| k.name() == "Reference").count();
    if references != 1 {
        return Err(DsigError::ReferenceCount { at: at_si, found: references });
    }
    let [c14n_method, sig_method, reference] =
        sequence(signed_info, &at_si, ["CanonicalizationMethod", "SignatureMethod", "Reference"])?;
    algorithm(c14n_method, &format!("{at_si}/CanonicalizationMethod"), ALG_EXC_C14N)?;
    algorithm(sig_method, &format!("{at_si}/SignatureMethod"), ALG_RSA_SHA256)?;

    let at_ref = format!("{at_si}/Reference");
    only_attrs(reference, &at_ref, &["URI", "Id"])?;
    match reference.attr("URI") {
        Some("") => {}
        Some(other) => return Err(DsigError::ReferenceUri { at: at_ref, found: other.to_owned() }),
        None => return Err(DsigError::Missing { at: at_ref, what: "the URI attribute" }),
    }
    let [transforms, digest_method, digest_value] =
        sequence(reference, &at_ref, ["Transforms", "DigestMethod", "DigestValue"])?;
    let at_tr = format!("{at_ref}/Transforms");
    only_attrs(transforms, &at_tr, &[])?;
    let [enveloped, exc] = sequence(transforms, &at_tr, ["Transform", "Transform"])?;
    algorithm(enveloped, &format!("{at_tr}/Transform[1]"), ALG_ENVELOPED)?;
    algorithm(exc, &format!("{at_tr}/Transform[2]"), ALG_EXC_C14N)?;
    algorithm(digest_method, &format!("{at_ref}/DigestMethod"), ALG_SHA256)?;
    let at_dv = format!("{at_ref}/DigestValue");
    only_attrs(digest_value, &at_dv, &[])?;
    let digest = base64_of(digest_value, &at_dv, MAX_DIGEST_B64)?;
    if digest.len() != 32 {
        return Err(DsigError::Base64 { at: at_dv });
    }

    let at_sv = format!("{at}/SignatureValue");
    only_attrs(value, &at_sv, &["Id"])?;
    let signature = base64_of(value, &at_sv, MAX_SIGNATURE_B64)?;

    let at_ki = format!("{at}/KeyInfo");
    only_attrs(key_info, &at_ki, &["Id"])?;
    let [x509] = sequence(key_info, &at_ki, ["X509Data"])?;
    let at_x = format!("{at_ki}/X509Data");
    only_attrs(x509, &at_x, &[])?;
    let certs_el = ds_children(x509, &at_x)?;
    if let Some(other) = certs_el.iter().find(|c| c.name() != "X509Certificate") {
        return Err(DsigError::Unexpected { at: at_x, found: format!("ds:{}", other.name()) });
    }
    if certs_el.is_empty() {
        return Err(DsigError::Missing { at: at_x, what: "an X509Certificate" });
    }
    if certs_el.len() > MAX_CERTIFICATES {
        return Err(DsigError::TooManyCertificates { at: at_x, found: certs_el.len(), max: MAX_CERTIFICATES });
    }
    let mut certs = Vec::with_capacity(certs_el.len());
    for (i, c) in certs_el.iter().enumerate() {
        let at_c = format!("{at_x}/X509Certificate[{}]", i + 1);
        only_attrs(c, &at_c, &[])?;
        certs.push(base64_of(c, &at_c, MAX_CERT_B64)?);
    }
    Ok(Parts { signed_info, digest, signature, certs })
}

/// The element children of `el`, all in the dsig namespace, with nothing
/// but whitespace between them.
fn ds_children<'a>(el: &'a Element, at: &str) -> Result<Vec<&'a Element>, DsigError> {
    let mut out = Vec::new();
    for n in el.nodes() {
        match n {
            Node::Text(t) if is_space(t) => {}
            Node::Text(_) => return Err(DsigError::Unexpected { at: at.to_owned(), found: "text".into() }),
            Node::Element(e) if e.ns() == NS_DSIG => out.push(e),
            Node::Element(e) => {
                return Err(DsigError::Unexpected { at: at.to_owned(), found: format!("{{{}}}{}", e.ns(), e.name()) })
            }
        }
    }
    Ok(out)
}

/// Exactly the children `names`, in this order.
fn sequence<'a, const N: usize>(
    el: &'a Element,
    at: &str,
    names: [&'static str; N],
) -> Result<[&'a Element; N], DsigError> {
    let kids = ds_children(el, at)?;
    for (i, name) in names.iter().enumerate() {
        match kids.get(i) {
            Some(k) if k.name() == *name => {}
            Some(k) => {
                return Err(DsigError::Unexpected {
                    at: at.to_owned(),
                    found: format!("ds:{} (expected ds:{name})", k.name()),
                })
            }
            None => return Err(DsigError::Missing { at: at.to_owned(), what: name }),
        }
    }
    if let Some(extra) = kids.get(N) {
        return Err(DsigError::Unexpected { at: at.to_owned(), found: format!("ds:{}", extra.name()) });
    }
    kids.try_into().map_err(|_| DsigError::Missing { at: at.to_owned(), what: names[0] })
}

/// Only unqualified attributes among `allowed`.
fn only_attrs(el: &Element, at: &str, allowed: &[&str]) -> Result<(), DsigError> {
    match el.attrs().iter().find(|a| !a.ns.is_empty() || !allowed.contains(&&*a.name)) {
        Some(a) => Err(DsigError::Unexpected { at: at.to_owned(), found: format!("the attribute {}", a.name) }),
        None => Ok(()),
    }
}

/// An empty method element whose Algorithm is `expected` (no parameters:
/// no InclusiveNamespaces, HMACOutputLength, XPath…).
fn algorithm(el: &Element, at: &str, expected: &'static str) -> Result<(), DsigError> {
    only_attrs(el, at, &["Algorithm"])?;
    let found =
        el.attr("Algorithm").ok_or(DsigError::Missing { at: at.to_owned(), what: "the Algorithm attribute" })?;
    if found != expected {
        return Err(DsigError::Algorithm { at: at.to_owned(), found: found.to_owned(), expected });
    }
    if let Some(child) = ds_children(el, at)?.first() {
        return Err(DsigError::Unexpected {
            at: at.to_owned(),
            found: format!("ds:{} (no parameters are accepted)", child.name()),
        });
    }
    Ok(())
}

/// The base64 text of a leaf element (XML whitespace allowed inside), at
/// most `max` characters.
fn base64_of(el: &Element, at: &str, max: usize) -> Result<Vec<u8>, DsigError> {
    let bad = || DsigError::Base64 { at: at.to_owned() };
    let mut compact = String::new();
    for n in el.nodes() {
        let Node::Text(t) = n else {
            return Err(DsigError::Unexpected { at: at.to_owned(), found: "an element inside base64 text".into() });
        };
        for c in t.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')) {
            if compact.len() >= max {
                return Err(bad());
            }
            compact.push(c);
        }
    }
    if compact.is_empty() {
        return Err(DsigError::Missing { at: at.to_owned(), what: "the base64 value" });
    }
    b64().decode(compact).map_err(|_| bad())
}

fn is_space(t: &str) -> bool {
    t.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// Refuses a tree deeper than [`MAX_DEPTH`] before anything recurses.
fn check_depth(doc: &Element) -> Result<(), DsigError> {
    let mut stack = vec![(doc, 1usize)];
    while let Some((e, d)) = stack.pop() {
        if d > MAX_DEPTH {
            return Err(DsigError::TooDeep(MAX_DEPTH));
        }
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    Ok(())
}

/// Every ds:Signature in the tree, at any depth.
fn count_signatures(doc: &Element) -> usize {
    let mut n = 0;
    let mut stack = vec![doc];
    while let Some(e) = stack.pop() {
        if e.is(NS_DSIG, "Signature") {
            n += 1;
        }
        stack.extend(e.children());
    }
    n
}
