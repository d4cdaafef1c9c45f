//! Whether a certificate from the key directory may be encrypted to
//! (docs/architecture.md §6, key lookup): the directory is the server's
//! word, and a server is not trusted with the end-to-end content, so the
//! client checks every certificate itself before it encrypts:
//!
//! - **chain**: signed by the CA in the user's key store;
//! - **validity**: now lies between notBefore and notAfter;
//! - **usage**: a user's or an agent's certificate, as snow-pki issues
//!   them: not a CA, key usage with keyEncipherment, extended key usage
//!   clientAuth and not serverAuth (a server certificate is refused);
//! - **revocation**: not listed in the CA's CRL, which the server sends
//!   with the lookup answer. The CRL itself must be signed by that CA,
//!   name it as issuer, and be current (thisUpdate not in the future,
//!   nextUpdate not passed). Without such a CRL the status is unknown,
//!   and unknown is refused ([`RecipientError::StatusUnknown`]).
//!
//! [`check`] does all four with an explicit time; [`check_now`] with the
//! clock.

use std::collections::HashSet;

use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{parse_x509_certificate, parse_x509_crl, X509Certificate};

use crate::cert::{hex, verify_issued_by, CertInfo};

/// How far a CRL's thisUpdate may lie ahead of our clock (clock skew).
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Why a directory certificate is not encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error("the certificate cannot be read ({0})")]
    Malformed(String),
    #[error("the certificate is not issued by the CA in your key store")]
    NotIssuedByCa,
    #[error("the certificate is not valid before {}", show(*.0))]
    NotYetValid(OffsetDateTime),
    #[error("the certificate expired on {}", show(*.0))]
    Expired(OffsetDateTime),
    #[error("the certificate is not for encrypting to a user or an agent: {0}")]
    WrongUsage(&'static str),
    #[error("the certificate names {}, not them", .0.as_deref().unwrap_or("no JID"))]
    NamesAnother(Option<String>),
    #[error("the key directory lists serial {listed}, but the certificate's is {certificate}")]
    SerialMismatch { listed: String, certificate: String },
    #[error("the certificate (serial {serial_hex}) is revoked in the CA's CRL")]
    Revoked { serial_hex: String },
    /// No current CRL signed by the CA: the certificate may be revoked.
    #[error(
        "its revocation status is unknown: {0}; nothing is encrypted without a current CRL signed by your CA \
         (tell the Snow administrator)"
    )]
    StatusUnknown(CrlProblem),
}

impl RecipientError {
    /// True when the certificate itself may be fine but its revocation
    /// status could not be established.
    pub fn is_status_unknown(&self) -> bool {
        matches!(self, RecipientError::StatusUnknown(_))
    }
}

/// Why a CRL does not establish revocation status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlProblem {
    #[error("the server sent no CRL")]
    Missing,
    #[error("the CRL cannot be read ({0})")]
    Unreadable(String),
    #[error("the CRL is not issued and signed by your CA")]
    NotFromCa,
    #[error("the CRL is not valid before {}", show(*.0))]
    NotYetValid(OffsetDateTime),
    #[error("the CRL expired on {} (its next update)", show(*.0))]
    Expired(OffsetDateTime),
    #[error("the CRL has no next update")]
    NoNextUpdate,
    #[error("the CRL has a critical extension Snow does not read")]
    CriticalExtension,
}

/// A CRL checked against the CA at one moment: its revoked serials.
#[derive(Debug, Clone)]
pub struct VerifiedCrl {
    revoked: HashSet<Vec<u8>>,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

impl VerifiedCrl {
    /// True if the serial (big-endian bytes, leading zeros or not) is listed.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(unpadded(serial))
    }
}

fn unpadded(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

fn parse_cert(der: &[u8]) -> Option<X509Certificate<'_>> {
    match parse_x509_certificate(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

/// Checks `crl_der` against the CA `ca_der` at `now`: issued by the CA,
/// signed with its key, thisUpdate ≤ now (with 5 minutes of clock skew) <
/// nextUpdate, no critical extension Snow does not read.
pub fn verify_crl(crl_der: &[u8], ca_der: &[u8], now: OffsetDateTime) -> Result<VerifiedCrl, CrlProblem> {
    let ca = parse_cert(ca_der).ok_or_else(|| CrlProblem::Unreadable("the CA certificate is not X.509".into()))?;
    let crl = match parse_x509_crl(crl_der) {
        Ok(([], crl)) => crl,
        _ => return Err(CrlProblem::Unreadable("not a DER X.509 CRL".into())),
    };
    let may_sign_crls = match ca.key_usage() {
        Ok(Some(ku)) => ku.value.crl_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    if !ca.is_ca() || !may_sign_crls || crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CrlProblem::NotFromCa);
    }
    crl.verify_signature(ca.public_key()).map_err(|_| CrlProblem::NotFromCa)?;
    if crl.extensions().iter().any(|e| {
        e.critical
            && matches!(
                e.parsed_extension(),
                ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. }
            )
    }) {
        return Err(CrlProblem::CriticalExtension);
    }
    let this_update = crl.last_update().to_datetime();
    let next_update = crl.next_update().ok_or(CrlProblem::NoNextUpdate)?.to_datetime();
    if this_update > now + CLOCK_SKEW {
        return Err(CrlProblem::NotYetValid(this_update));
    }
    if now >= next_update {
        return Err(CrlProblem::Expired(next_update));
    }
    let revoked = crl.iter_revoked_certificates().map(|r| unpadded(r.raw_serial()).to_vec()).collect();
    Ok(VerifiedCrl { revoked, this_update, next_update })
}

/// Checks the directory certificate `cert_der` at `now`: chain to
/// `ca_der`, validity, usage, and not revoked in `crl` (checked with
/// [`verify_crl`] against the same CA). Returns what it says.
pub fn check(
    cert_der: &[u8],
    ca_der: &[u8],
    crl: Result<&VerifiedCrl, &CrlProblem>,
    now: OffsetDateTime,
) -> Result<CertInfo, RecipientError> {
    let info = CertInfo::from_der(cert_der).map_err(|e| RecipientError::Malformed(e.to_string()))?;
    let cert = parse_cert(cert_der).ok_or_else(|| RecipientError::Malformed("not X.509".into()))?;
    verify_issued_by(cert_der, ca_der).map_err(|_| RecipientError::NotIssuedByCa)?;
    if now < info.not_before {
        return Err(RecipientError::NotYetValid(info.not_before));
    }
    if now > info.not_after {
        return Err(RecipientError::Expired(info.not_after));
    }
    check_usage(&cert)?;
    let crl = crl.map_err(|p| RecipientError::StatusUnknown(p.clone()))?;
    if crl.is_revoked(cert.raw_serial()) {
        return Err(RecipientError::Revoked { serial_hex: hex(cert.raw_serial()) });
    }
    Ok(info)
}

/// [`verify_crl`] and [`check`] now; `crl_der` is the CRL the directory
/// answered with (`None`: it sent none).
pub fn check_now(cert_der: &[u8], ca_der: &[u8], crl_der: Option<&[u8]>) -> Result<CertInfo, RecipientError> {
    let now = OffsetDateTime::now_utc();
    let crl = crl_der.ok_or(CrlProblem::Missing).and_then(|der| verify_crl(der, ca_der, now));
    check(cert_der, ca_der, crl.as_ref(), now)
}

/// A user's or agent's certificate as snow-pki issues them.
fn check_usage(cert: &X509Certificate<'_>) -> Result<(), RecipientError> {
    if cert.is_ca() {
        return Err(RecipientError::WrongUsage("it is a CA certificate"));
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_encipherment() => {}
        _ => return Err(RecipientError::WrongUsage("its key usage does not allow key encipherment")),
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.server_auth => {
            Err(RecipientError::WrongUsage("it is a server certificate, not a user's or an agent's"))
        }
        Ok(Some(eku)) if eku.value.client_auth => Ok(()),
        _ => Err(RecipientError::WrongUsage("it is not a user's or an agent's certificate (no client authentication)")),
    }
}

/// Two distinguished names in the string forms XML Signature tools write
/// (`CN=Snow CA po.example, O=Snow` from x509-parser, `O=Snow,CN=Snow CA
/// po.example` in RFC 4514 order from xmlsec1): the same attributes and
/// values, in the same or the reverse order, attribute types without case,
/// space around separators ignored.
pub fn same_dn(a: &str, b: &str) -> bool {
    let (a, b) = (rdns(a), rdns(b));
    match (a, b) {
        (Some(a), Some(b)) if !a.is_empty() => a == b || a.iter().rev().eq(b.iter()),
        _ => false,
    }
}

/// `TYPE=value` parts of a DN string, split at unescaped commas.
fn rdns(dn: &str) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            ',' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| {
            let (t, v) = p.split_once('=')?;
            let t = t.trim().to_ascii_uppercase();
            (!t.is_empty()).then(|| (t, v.trim().to_owned()))
        })
        .collect()
}

/// A time as people read it: `2026-03-01 12:00 UTC`.
fn show(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
        Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };
    use time::Duration;

    struct Ca {
        der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let kp = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "Snow CA po.example");
        p.distinguished_name.push(DnType::OrganizationName, "Snow");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&kp).unwrap();
        let der = cert.der().to_vec();
        Ca { der, issuer: Issuer::new(p, kp) }
    }

    fn params(serial: u8, days: (i64, i64)) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "1111111");
        p.serial_number = Some(SerialNumber::from_slice(&[0, serial]));
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(days.0);
        p.not_after = now + Duration::days(days.1);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    }

    fn issue(ca: &Ca, p: CertificateParams) -> Vec<u8> {
        let kp = KeyPair::generate().unwrap();
        p.signed_by(&kp, &ca.issuer).unwrap().der().to_vec()
    }

    fn crl(ca: &Ca, revoked: &[u8], this: i64, next: i64) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now + Duration::hours(this),
            next_update: now + Duration::hours(next),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[*s]),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca.issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    #[test]
    fn a_good_certificate_passes_and_each_fault_is_named() {
        let (ca, other) = (ca(), ca());
        let now = OffsetDateTime::now_utc();
        let good = issue(&ca, params(1, (-1, 30)));
        let current = crl(&ca, &[9], -1, 24);
        let crl_ok = verify_crl(&current, &ca.der, now).unwrap();
        assert!(check(&good, &ca.der, Ok(&crl_ok), now).is_ok());
        assert!(check_now(&good, &ca.der, Some(&current)).is_ok());

        let expired = issue(&ca, params(2, (-30, -1)));
        assert!(matches!(check(&expired, &ca.der, Ok(&crl_ok), now), Err(RecipientError::Expired(_))));
        let early = issue(&ca, params(3, (1, 30)));
        assert!(matches!(check(&early, &ca.der, Ok(&crl_ok), now), Err(RecipientError::NotYetValid(_))));
        let foreign = issue(&other, params(4, (-1, 30)));
        assert_eq!(check(&foreign, &ca.der, Ok(&crl_ok), now).unwrap_err(), RecipientError::NotIssuedByCa);

        let mut server = params(5, (-1, 30));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let mut sign_only = params(6, (-1, 30));
        sign_only.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut no_eku = params(7, (-1, 30));
        no_eku.extended_key_usages = vec![];
        let mut sub_ca = params(8, (-1, 30));
        sub_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        for p in [server, sign_only, no_eku, sub_ca] {
            let der = issue(&ca, p);
            assert!(matches!(check(&der, &ca.der, Ok(&crl_ok), now), Err(RecipientError::WrongUsage(_))));
        }

        let revoked = issue(&ca, params(9, (-1, 30)));
        assert_eq!(
            check(&revoked, &ca.der, Ok(&crl_ok), now).unwrap_err(),
            RecipientError::Revoked { serial_hex: "09".into() }
        );
    }

    #[test]
    fn revocation_status_is_unknown_without_a_current_crl_of_the_ca() {
        let (ca, other) = (ca(), ca());
        let now = OffsetDateTime::now_utc();
        let good = issue(&ca, params(1, (-1, 30)));
        assert_eq!(check_now(&good, &ca.der, None).unwrap_err(), RecipientError::StatusUnknown(CrlProblem::Missing));
        // Another CA's CRL, though its issuer name is the same.
        let forged = crl(&other, &[], -1, 24);
        assert_eq!(verify_crl(&forged, &ca.der, now).unwrap_err(), CrlProblem::NotFromCa);
        let stale = crl(&ca, &[], -48, -1);
        assert!(matches!(verify_crl(&stale, &ca.der, now), Err(CrlProblem::Expired(_))));
        let future = crl(&ca, &[], 2, 24);
        assert!(matches!(verify_crl(&future, &ca.der, now), Err(CrlProblem::NotYetValid(_))));
        assert!(matches!(verify_crl(b"garbage", &ca.der, now), Err(CrlProblem::Unreadable(_))));
        let mut flipped = crl(&ca, &[], -1, 24);
        let n = flipped.len();
        flipped[n - 10] ^= 1;
        assert_eq!(verify_crl(&flipped, &ca.der, now).unwrap_err(), CrlProblem::NotFromCa);
        for bad in [forged, stale, future, flipped] {
            let e = check_now(&good, &ca.der, Some(&bad)).unwrap_err();
            assert!(e.is_status_unknown(), "{e}");
            assert!(e.to_string().starts_with("its revocation status is unknown: "), "{e}");
        }
    }

    #[test]
    fn distinguished_names_in_either_order() {
        assert!(same_dn("CN=Snow CA po.example, O=Snow", "O=Snow,CN=Snow CA po.example"));
        assert!(same_dn("CN=Snow CA po.example, O=Snow", "cn=Snow CA po.example ,o = Snow"));
        assert!(same_dn("CN=a\\, b, O=Snow", "O=Snow,CN=a\\, b"));
        assert!(!same_dn("CN=Snow CA po.example, O=Snow", "CN=Snow CA evil.example, O=Snow"));
        assert!(!same_dn("CN=Snow CA po.example, O=Snow", "CN=Snow CA po.example"));
        assert!(!same_dn("CN=Snow CA po.example, O=Snow", "O=Snow, CN=Snow CA po.example, O=Snow"));
        assert!(!same_dn("", ""));
        assert!(!same_dn("garbage", "garbage"));
    }
}
