//! PEM text: the one place Snow turns DER into PEM and back.

use pkcs8::der::pem::LineEnding;

use crate::CryptoError;

/// PEM-encodes `der` under `label` (e.g. `CERTIFICATE`, `X509 CRL`).
pub fn encode(label: &'static str, der: &[u8]) -> Result<String, CryptoError> {
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der).map_err(CryptoError::internal)
}

/// Every PEM block in `text`, in order, as `(label, der)`. Text outside the
/// blocks (OpenSSL's "Bag Attributes" lines) is ignored.
pub fn decode_all(text: &[u8], what: &str) -> Result<Vec<(String, Vec<u8>)>, CryptoError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(text) {
        let block = block.map_err(|_| CryptoError::format(what, "PEM"))?;
        out.push((block.label, block.contents));
    }
    if out.is_empty() {
        return Err(CryptoError::format(what, "PEM"));
    }
    Ok(out)
}

/// True if `bytes` looks like PEM text rather than DER.
pub fn is_pem(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN ") || bytes.windows(11).take(4096).any(|w| w == b"-----BEGIN ")
}

/// The DER certificates in a PEM file, in order.
pub fn certificates(text: &[u8], what: &str) -> Result<Vec<Vec<u8>>, CryptoError> {
    let certs: Vec<_> =
        decode_all(text, what)?.into_iter().filter(|(l, _)| l == "CERTIFICATE").map(|(_, d)| d).collect();
    if certs.is_empty() {
        return Err(CryptoError::Missing("certificate"));
    }
    Ok(certs)
}
