//! Who may log in: certificates issued by the site CA, not revoked in the
//! current CRL, for client authentication, naming a JID of this domain.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rustls_pki_types::{CertificateDer, UnixTime};
use snow_core::{BareJid, Domain};
use webpki::{
    anchor_from_trusted_cert, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::ServerError;

/// Why a certificate login was refused (logged; the peer only learns
/// `not-authorized`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the certificate has been revoked")]
    Revoked,
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate was not issued by a trusted CA")]
    UnknownIssuer,
    #[error("certificate rejected: {0}")]
    Invalid(String),
    #[error("the certificate names no JID (id-on-xmppAddr)")]
    NoJid,
    #[error("the certificate names more than one JID")]
    SeveralJids,
    #[error("the certificate is not for {0}")]
    ForeignDomain(String),
    #[error("the authorization identity {authzid} differs from the certificate's JID {jid}")]
    AuthzidMismatch { authzid: String, jid: String },
}

impl AuthError {
    /// What the person logging in is told (in the SASL failure's text,
    /// which the `snow` client shows as it is): one sentence, what
    /// happened and what to do, never more than their own certificate's
    /// state.
    pub fn advice(&self) -> &'static str {
        match self {
            AuthError::Revoked => "your certificate has been revoked — contact the Snow administrator",
            AuthError::Expired => "your certificate has expired — ask the Snow administrator for a new one",
            AuthError::NotYetValid => {
                "your certificate is not valid yet — check the computer's clock, or contact the Snow administrator"
            }
            AuthError::NoCertificate => "log in with your Snow certificate (snow key import)",
            AuthError::UnknownIssuer => {
                "your certificate is not for this server (another CA issued it) — \
                 check the server address (--server) or your key store (--keystore)"
            }
            AuthError::ForeignDomain(_) => {
                "your certificate is not for this server (it names another domain) — \
                 check the server address (--server) or your key store (--keystore)"
            }
            _ => "your certificate was refused — contact the Snow administrator",
        }
    }

    fn from_webpki(e: webpki::Error) -> AuthError {
        match e {
            webpki::Error::CertRevoked => AuthError::Revoked,
            webpki::Error::CertExpired { .. } => AuthError::Expired,
            webpki::Error::CertNotValidYet { .. } => AuthError::NotYetValid,
            // A chain to another CA of the same name fails on the signature.
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => AuthError::UnknownIssuer,
            other => AuthError::Invalid(words(&other)),
        }
    }
}

/// A webpki error in words (its `Display` is its debug name).
fn words(e: &webpki::Error) -> String {
    match e {
        webpki::Error::BadDer | webpki::Error::BadDerTime => "the certificate is not well-formed".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for this use (extended key usage)".into()
        }
        webpki::Error::CaUsedAsEndEntity => "a CA certificate was presented as a user's".into(),
        webpki::Error::UnsupportedSignatureAlgorithmContext(_)
        | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "the certificate uses an unsupported signature algorithm".into()
        }
        other => {
            tracing::debug!(error = ?other, "certificate refused");
            "the certificate cannot be verified".into()
        }
    }
}

/// The site CA and its current CRL, and the CAs whose servers may federate.
pub struct TrustStore {
    ca: CertificateDer<'static>,
    peer_cas: Vec<CertificateDer<'static>>,
    crl_path: PathBuf,
    crl: RwLock<Option<OwnedCertRevocationList>>,
}

impl TrustStore {
    /// `peer_ca_paths` lists the CAs trusted for server-to-server links;
    /// empty means this site's CA only.
    pub fn load(ca_path: &Path, crl_path: &Path, peer_ca_paths: &[PathBuf]) -> Result<Self, ServerError> {
        let text = read(ca_path)?;
        let ca = CertificateDer::from(snow_crypto::pem::certificates(&text, &ca_path.display().to_string())?.remove(0));
        let mut peer_cas = Vec::new();
        for p in peer_ca_paths {
            for c in snow_crypto::pem::certificates(&read(p)?, &p.display().to_string())? {
                peer_cas.push(CertificateDer::from(c));
            }
        }
        if peer_cas.is_empty() {
            peer_cas.push(ca.clone());
        }
        let store = TrustStore { ca, peer_cas, crl_path: crl_path.to_owned(), crl: RwLock::new(None) };
        store.reload_crl()?;
        Ok(store)
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CAs whose servers may federate with this one.
    pub fn peer_cas(&self) -> &[CertificateDer<'static>] {
        &self.peer_cas
    }

    /// XEP-0178: a peer server's certificate must chain to a trusted CA, be
    /// valid for TLS client use (it is the initiating side) and name the
    /// domain the peer claims in its stream header.
    pub fn authenticate_peer(&self, chain: &[CertificateDer<'_>], domain: &str) -> Result<(), AuthError> {
        let leaf = chain.first().ok_or(AuthError::NoCertificate)?;
        let ee = EndEntityCert::try_from(leaf).map_err(AuthError::from_webpki)?;
        let anchors = self
            .peer_cas
            .iter()
            .map(|c| anchor_from_trusted_cert(c).map_err(AuthError::from_webpki))
            .collect::<Result<Vec<_>, _>>()?;
        let info = verify_client_chain(&ee, leaf, &anchors, &chain[1..], None)?;
        let names_domain = info.dns_names.iter().chain(info.xmpp_addrs.iter()).any(|n| n.eq_ignore_ascii_case(domain));
        if !names_domain {
            return Err(AuthError::ForeignDomain(domain.to_owned()));
        }
        Ok(())
    }

    /// Re-reads the CRL file (after `snow user revoke` or a push from the
    /// PO). A missing file means "nothing revoked yet"; a broken one is an
    /// error and the old CRL stays in force.
    pub fn reload_crl(&self) -> Result<(), ServerError> {
        if !self.crl_path.exists() {
            tracing::warn!(path = %self.crl_path.display(), "no CRL: no certificate is treated as revoked");
            return Ok(());
        }
        let text = read(&self.crl_path)?;
        let blocks = snow_crypto::pem::decode_all(&text, &self.crl_path.display().to_string())?;
        let der = blocks
            .into_iter()
            .find(|(l, _)| l == "X509 CRL")
            .map(|(_, d)| d)
            .ok_or_else(|| ServerError::Crl { path: self.crl_path.clone(), reason: "no X509 CRL block".into() })?;
        let crl = OwnedCertRevocationList::from_der(&der)
            .map_err(|e| ServerError::Crl { path: self.crl_path.clone(), reason: words(&e) })?;
        *self.crl.write().unwrap_or_else(|p| p.into_inner()) = Some(crl);
        Ok(())
    }

    /// Verifies a client's certificate chain for login and returns its JID.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &Domain,
        authzid: Option<&str>,
    ) -> Result<BareJid, AuthError> {
        let leaf = chain.first().ok_or(AuthError::NoCertificate)?;
        let ee = EndEntityCert::try_from(leaf).map_err(AuthError::from_webpki)?;
        let anchors = [anchor_from_trusted_cert(&self.ca).map_err(AuthError::from_webpki)?];
        let crl_guard = self.crl.read().unwrap_or_else(|p| p.into_inner());
        let crl = crl_guard.as_ref().map(|c| webpki::CertRevocationList::from(c.clone()));
        let crls: Vec<&webpki::CertRevocationList<'_>> = crl.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crls) {
            Ok(b) => Some(
                b.with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(UnknownStatusPolicy::Allow)
                    // A stale CRL must not lock every user out; the admin
                    // is warned at start and `snow ca crl` renews it.
                    .with_expiration_policy(ExpirationPolicy::Ignore)
                    .build(),
            ),
            Err(_) => None,
        };
        let info = verify_client_chain(&ee, leaf, &anchors, &chain[1..], revocation)?;
        let jid_text = match info.xmpp_addrs.as_slice() {
            [] => return Err(AuthError::NoJid),
            [one] => one.clone(),
            _ => return Err(AuthError::SeveralJids),
        };
        let jid: BareJid = jid_text.parse().map_err(|_| AuthError::NoJid)?;
        if jid.domain() != domain {
            return Err(AuthError::ForeignDomain(jid.to_string()));
        }
        if let Some(a) = authzid {
            if a != jid.to_string() {
                return Err(AuthError::AuthzidMismatch { authzid: a.to_owned(), jid: jid.to_string() });
            }
        }
        Ok(jid)
    }
}

/// Checks a TLS client's chain (clientAuth, now, optional revocation) and
/// decodes the leaf for its names.
fn verify_client_chain(
    ee: &EndEntityCert<'_>,
    leaf: &CertificateDer<'_>,
    anchors: &[rustls_pki_types::TrustAnchor<'_>],
    intermediates: &[CertificateDer<'_>],
    revocation: Option<webpki::RevocationOptions<'_>>,
) -> Result<snow_crypto::CertInfo, AuthError> {
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        UnixTime::now(),
        KeyUsage::client_auth(),
        revocation,
        None,
    )
    .map_err(AuthError::from_webpki)?;
    snow_crypto::CertInfo::from_der(leaf).map_err(|e| AuthError::Invalid(e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    snow_core::files::read_limited(path, snow_crypto::MAX_KEY_FILE_BYTES)
        .map_err(|source| ServerError::Read { path: path.to_owned(), source })
}
