//! The server's TLS configuration: TLS 1.2+, our certificate, and a
//! request for the client's certificate.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use crate::{ServerConfig, ServerError};

/// Asks every client for a certificate and checks that it holds the key
/// (the handshake signature), but leaves the trust decision to SASL
/// EXTERNAL, which checks the chain against the site CA and the *current*
/// CRL. That way a revoked or foreign certificate gets the XMPP answer
/// `<failure><not-authorized/>` instead of a bare TLS alert, and CRL
/// updates apply without rebuilding the TLS configuration.
#[derive(Debug)]
struct RequestClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's certificate chain and key, as rustls wants them.
fn own_identity(config: &ServerConfig) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let read = |p: &std::path::Path| {
        snow_core::files::read_limited(p, snow_crypto::MAX_KEY_FILE_BYTES)
            .map_err(|source| ServerError::Read { path: p.to_owned(), source })
    };
    let chain: Vec<CertificateDer<'static>> =
        snow_crypto::pem::certificates(&read(&config.server_cert)?, &config.server_cert.display().to_string())?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
    let key_blocks =
        snow_crypto::pem::decode_all(&read(&config.server_key)?, &config.server_key.display().to_string())?;
    let key = key_blocks
        .into_iter()
        .find(|(l, _)| l == "PRIVATE KEY")
        .map(|(_, d)| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(d)))
        .ok_or_else(|| ServerError::Config(format!("{} holds no PRIVATE KEY", config.server_key.display())))?;
    Ok((chain, key))
}

/// The TLS configuration for incoming connections (c2s and s2s).
pub fn server_config(config: &ServerConfig) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let (chain, key) = own_identity(config)?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = Arc::new(RequestClientCert { algorithms: provider.signature_verification_algorithms });
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// The TLS configuration for outgoing s2s links: the peer's certificate
/// must chain to a trusted CA and name the domain; ours is presented for
/// SASL EXTERNAL (XEP-0178).
pub fn client_config(
    config: &ServerConfig,
    peer_cas: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, ServerError> {
    let (chain, key) = own_identity(config)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in peer_cas {
        roots.add(ca.clone())?;
    }
    let provider = Arc::new(aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(cfg))
}
