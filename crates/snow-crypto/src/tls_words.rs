//! A failed TLS handshake in words, for the person reading a log line, a
//! bounce or a client's error: rustls names certificate problems by their
//! debug names ("invalid peer certificate: Revoked", "received fatal
//! alert: UnknownCA"). One wording for the client and the server side.

/// Who the other side is and what to check when its CA is not trusted.
pub struct Peer<'a> {
    /// "the server", "the remote server".
    pub name: &'a str,
    /// The end of "…'s certificate was not issued by …" when its issuer is
    /// unknown, e.g. "a CA this server trusts ([s2s] trusted_cas)".
    pub trusted: &'a str,
}

/// `e`, an error of a TLS handshake with `peer`, in words.
pub fn handshake_failure(e: &std::io::Error, peer: &Peer<'_>) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) else {
        return format!("TLS handshake with {} failed: {e}", peer.name);
    };
    let name = peer.name;
    match tls {
        E::InvalidCertificate(c) => {
            let what = match c {
                C::Revoked => "has been revoked".to_owned(),
                C::Expired | C::ExpiredContext { .. } => "has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".to_owned(),
                C::UnknownIssuer => format!("was not issued by {}", peer.trusted),
                C::BadSignature => format!("was not issued by {}, but by another CA of the same name", peer.trusted),
                C::NotValidForName | C::NotValidForNameContext { .. } => "does not name its domain".to_owned(),
                C::BadEncoding => "is not well-formed".to_owned(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "is not for a server (extended key usage)".to_owned()
                }
                C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
                    "could not be checked: the CRL has expired".to_owned()
                }
                _ => "was refused".to_owned(),
            };
            format!("{name}'s certificate {what}")
        }
        E::AlertReceived(alert) => {
            let what = match alert {
                A::CertificateRevoked => "says our certificate has been revoked",
                A::CertificateExpired => "says our certificate has expired",
                A::UnknownCA => "does not trust our CA",
                A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown | A::AccessDenied => {
                    "refused our certificate"
                }
                A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity => {
                    "has no TLS version or cipher suite in common with us"
                }
                _ => "ended the TLS handshake with an alert",
            };
            format!("{name} {what}")
        }
        other => format!("TLS handshake with {name} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn certificate_problems_in_words_not_debug_names() {
        let peer = Peer { name: "the server", trusted: "the CA in your key store" };
        let e = io(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert_eq!(handshake_failure(&e, &peer), "the server's certificate was not issued by the CA in your key store");
        let e = io(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked));
        assert_eq!(handshake_failure(&e, &peer), "the server says our certificate has been revoked");
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(handshake_failure(&e, &peer).contains("reset"));
    }
}
