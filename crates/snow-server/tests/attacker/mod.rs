//! The attacker's own s2s link: a raw server-to-server connection (STARTTLS,
//! mutual TLS, SASL EXTERNAL, XEP-0178) made with whatever certificate and
//! key the test gives it, claiming whatever domain the test says. It only
//! sends (an incoming link only receives); what it caused is seen in the
//! victim's state and counters. And a raw client ([`c2s`]): a user's
//! certificate logged in by a client that is not `snow_client`, so it says
//! nothing the test does not send.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use snow_xml::initiator::{self, PeerError};
use snow_xml::{Framed, Limits, StreamHeader, NS_SERVER};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

pub type Link = Framed<tokio_rustls::client::TlsStream<TcpStream>>;

/// How the victim refused the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A stream error, with its condition.
    Stream(String),
    /// A SASL failure, with its condition.
    Sasl(String),
    /// Anything else (the TLS handshake, the connection).
    Other(String),
}

impl From<PeerError> for Refusal {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::StreamError(s) => Refusal::Stream(s.condition),
            PeerError::AuthFailed { condition, .. } => Refusal::Sasl(condition),
            other => Refusal::Other(other.to_string()),
        }
    }
}

/// Certificate chain and key from the PEM files snow-pki writes for a
/// server or an agent.
pub fn identity(cert_pem: &Path, key_pem: &Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = snow_crypto::pem::certificates(&std::fs::read(cert_pem).unwrap(), "cert")
        .unwrap()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = snow_crypto::pem::decode_all(&std::fs::read(key_pem).unwrap(), "key")
        .unwrap()
        .into_iter()
        .find(|(l, _)| l == "PRIVATE KEY")
        .map(|(_, d)| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(d)))
        .unwrap();
    (chain, key)
}

/// Connects to `addr` as `from` (for `to`), presenting `identity`, and
/// authenticates with SASL EXTERNAL. `ca_der` is the CA the victim's
/// certificate must chain to.
pub async fn connect(
    addr: &str,
    from: &str,
    to: &str,
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    ca_der: &[u8],
) -> Result<Link, Refusal> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| Refusal::Other(e.to_string()))?;
    let header = StreamHeader {
        from: Some(from.to_owned()),
        to: Some(to.to_owned()),
        version: Some("1.0".into()),
        ..Default::default()
    };
    let mut f = Framed::new(tcp, Limits::default());
    initiator::open(&mut f, &header, NS_SERVER, T).await?;
    initiator::starttls(&mut f, T).await?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.0, identity.1)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(ServerName::try_from(to.to_owned()).unwrap(), f.into_inner())
        .await
        .map_err(|e| Refusal::Other(e.to_string()))?;
    let mut f = Framed::new(tls, Limits::default());
    initiator::open(&mut f, &header, NS_SERVER, T).await?;
    initiator::authenticate(&mut f, "EXTERNAL", from.as_bytes(), T).await?;
    initiator::open(&mut f, &header, NS_SERVER, T).await?;
    Ok(f)
}

/// A client login to `addr` (STARTTLS, TLS with `identity`'s certificate,
/// SASL EXTERNAL, resource binding) that sends nothing else: unlike
/// `snow_client::Client`, it does not announce the Snow client. Returns
/// the link and the bound full JID.
pub async fn c2s(
    addr: std::net::SocketAddr,
    domain: &str,
    identity: &snow_crypto::Identity,
    ca_der: &[u8],
) -> Result<(Link, String), Refusal> {
    use snow_xml::{Element, NS_BIND, NS_CLIENT};
    let tcp = TcpStream::connect(addr).await.map_err(|e| Refusal::Other(e.to_string()))?;
    let header = StreamHeader { to: Some(domain.to_owned()), version: Some("1.0".into()), ..Default::default() };
    let mut f = Framed::new(tcp, Limits::default());
    initiator::open(&mut f, &header, NS_CLIENT, T).await?;
    initiator::starttls(&mut f, T).await?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
    let chain = identity.chain().iter().cloned().map(CertificateDer::from).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8().to_vec()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(domain.to_owned()).unwrap(), f.into_inner())
        .await
        .map_err(|e| Refusal::Other(e.to_string()))?;
    let mut f = Framed::new(tls, Limits::default());
    initiator::open(&mut f, &header, NS_CLIENT, T).await?;
    initiator::authenticate(&mut f, "EXTERNAL", b"", T).await?;
    initiator::open(&mut f, &header, NS_CLIENT, T).await?;
    let bind = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "set")
        .with_attr("id", "bind")
        .with_child(Element::new(NS_BIND, "bind"));
    f.send(&bind.to_xml(NS_CLIENT)).await.map_err(|e| Refusal::Other(e.to_string()))?;
    let answer = f.next_element(T).await?;
    let jid = answer
        .child(NS_BIND, "bind")
        .and_then(|b| b.child(NS_BIND, "jid"))
        .map(Element::text)
        .ok_or_else(|| Refusal::Other(format!("no bound JID in {}", answer.to_xml(NS_CLIENT))))?;
    Ok((f, jid))
}

/// An external component's link (XEP-0114, plain TCP) to `addr` for
/// `domain`, proving `secret` with the handshake.
pub async fn component(addr: std::net::SocketAddr, domain: &str, secret: &str) -> Result<Framed<TcpStream>, Refusal> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| Refusal::Other(e.to_string()))?;
    let mut f = Framed::new(tcp, Limits::default());
    let header = StreamHeader { to: Some(domain.to_owned()), ..Default::default() };
    let theirs = initiator::open_stream(&mut f, &header, snow_xml::NS_COMPONENT, T).await?;
    let proof = snow_crypto::component_handshake::digest(&theirs.id.unwrap_or_default(), secret);
    initiator::handshake(&mut f, &proof, T).await?;
    Ok(f)
}

/// Sends raw XML on the link.
pub async fn send(link: &mut Link, xml: &str) {
    link.send(xml).await.unwrap();
}

/// Waits (at most `within`) for the victim to end the link; returns the
/// stream error's condition and how long it took. The link sends nothing
/// else on an incoming s2s stream.
pub async fn closed_by_peer<S>(link: &mut Framed<S>, within: Duration) -> (Refusal, Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let t0 = Instant::now();
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match link.next_element(left.max(Duration::from_millis(1))).await {
            Ok(_) => continue,
            Err(e) => return (Refusal::from(e), t0.elapsed()),
        }
    }
}

/// A key directory push (`urn:snow:keys:1` update) from `from` to `to`,
/// with `items` (XML) and a CRL (DER), in the `jabber:server` namespace.
pub fn key_push(from: &str, to: &str, id: &str, items: &str, crl: Option<&[u8]>) -> String {
    use base64::Engine;
    let crl =
        crl.map(|d| format!("<crl>{}</crl>", base64::engine::general_purpose::STANDARD.encode(d))).unwrap_or_default();
    format!(
        "<iq xmlns='jabber:server' type='set' id='{id}' from='{from}' to='{to}'>\
         <update xmlns='urn:snow:keys:1'>{items}{crl}</update></iq>"
    )
}

/// One pushed key change.
pub fn key_item(seq: i64, jid: &str, status: &str, serial: &str, der: &[u8]) -> String {
    use base64::Engine;
    format!(
        "<item seq='{seq}' jid='{jid}' status='{status}' serial='{serial}'><certificate>{}</certificate></item>",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Polls `f` until it is true, at most `within`; true if it became true.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The DER of the CRL in a PEM file.
pub fn crl_der(path: &Path) -> Vec<u8> {
    snow_crypto::pem::decode_all(&std::fs::read(path).unwrap(), "crl")
        .unwrap()
        .into_iter()
        .find(|(l, _)| l == "X509 CRL")
        .map(|(_, d)| d)
        .unwrap()
}

/// Writes `der` as the CRL file at `path`.
pub fn write_crl(path: &Path, der: &[u8]) {
    std::fs::write(path, snow_crypto::pem::encode("X509 CRL", der).unwrap()).unwrap();
}
