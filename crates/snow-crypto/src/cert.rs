//! Reading X.509 certificates: the facts Snow shows and checks.

use aws_lc_rs::digest::{digest, SHA256};
use time::OffsetDateTime;
use x509_parser::der_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{parse_x509_certificate, X509Certificate};

use crate::CryptoError;

/// `id-on-xmppAddr` (RFC 6120 §13.7.1.4): the otherName SAN that carries a
/// JID in a certificate.
pub const OID_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// The same OID as rcgen wants it.
pub const OID_XMPP_ADDR_ARCS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// What a certificate says, decoded once so callers need no ASN.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Serial number, lower-case hex without separators.
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 over the DER, colon-separated upper-case hex (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub fingerprint_sha256: String,
    /// Every id-on-xmppAddr SAN, in order.
    pub xmpp_addrs: Vec<String>,
    /// Every dNSName SAN, in order.
    pub dns_names: Vec<String>,
    pub is_ca: bool,
    /// The subjectPublicKey bits (PKCS#1 `RSAPublicKey` for RSA).
    pub public_key: Vec<u8>,
    /// The whole SubjectPublicKeyInfo, DER (what encryption keys load from).
    pub spki_der: Vec<u8>,
    /// The serial number in decimal, as XML Signature's X509SerialNumber wants it.
    pub serial_decimal: String,
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let cert = parse(der)?;
        let mut xmpp_addrs = Vec::new();
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::OtherName(oid, value) if oid.to_id_string() == OID_XMPP_ADDR => {
                        if let Some(s) = other_name_utf8(value) {
                            xmpp_addrs.push(s);
                        }
                    }
                    GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_hex: hex(cert.raw_serial()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            fingerprint_sha256: fingerprint(der),
            xmpp_addrs,
            dns_names,
            is_ca,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            spki_der: cert.public_key().raw.to_vec(),
            serial_decimal: decimal(cert.raw_serial()),
        })
    }

    /// The user's JID: the first xmppAddr SAN.
    pub fn jid(&self) -> Option<&str> {
        self.xmpp_addrs.first().map(String::as_str)
    }

    pub fn is_valid_at(&self, t: OffsetDateTime) -> bool {
        self.not_before <= t && t <= self.not_after
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CryptoError> {
    match parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(CryptoError::format("the certificate", "X.509 DER")),
    }
}

/// Checks that `cert_der` carries a valid signature by the key of
/// `issuer_der`, and that the issuer is a CA. Validity dates and revocation
/// are the caller's business (they depend on "now" and on the CRL).
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), CryptoError> {
    let cert = parse(cert_der)?;
    let issuer = parse(issuer_der)?;
    let issuer_is_ca = matches!(issuer.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !issuer_is_ca || cert.issuer() != issuer.subject() {
        return Err(CryptoError::NotSignedBy);
    }
    cert.verify_signature(Some(issuer.public_key())).map_err(|_| CryptoError::NotSignedBy)
}

/// `[0] EXPLICIT UTF8String` of an otherName value.
fn other_name_utf8(value: &[u8]) -> Option<String> {
    let (_, outer) = Any::from_der(value).ok()?;
    if outer.class() != Class::ContextSpecific || outer.tag() != Tag(0) {
        return None;
    }
    let (_, inner) = Any::from_der(outer.data).ok()?;
    if inner.tag() != Tag::Utf8String {
        return None;
    }
    std::str::from_utf8(inner.data).ok().map(str::to_owned)
}

/// SHA-256 fingerprint in OpenSSL's notation.
pub fn fingerprint(der: &[u8]) -> String {
    let d = digest(&SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// SHA-256 of `bytes` in lower-case hex: digests carried in Snow's own
/// payloads (a signed answer names the request it answers by one).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// An unsigned big-endian integer in decimal.
pub fn decimal(bytes: &[u8]) -> String {
    let mut n: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if n.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !n.is_empty() {
        let mut rem = 0u32;
        let mut next = Vec::with_capacity(n.len());
        for &b in &n {
            let cur = rem * 256 + u32::from(b);
            let q = cur / 10;
            rem = cur % 10;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        digits.push(b'0' + rem as u8);
        n = next;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_serials() {
        assert_eq!(super::decimal(&[]), "0");
        assert_eq!(super::decimal(&[0, 0]), "0");
        assert_eq!(super::decimal(&[1, 0]), "256");
        assert_eq!(super::decimal(&[0xff; 8]), "18446744073709551615");
        assert_eq!(super::decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]), "18446744073709551616");
    }
}
