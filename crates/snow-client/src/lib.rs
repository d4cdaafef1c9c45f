//! The Snow client library: connect to a Snow server with the user's
//! certificate (STARTTLS or direct TLS, SASL EXTERNAL, resource binding),
//! then send and receive stanzas.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use snow_crypto::Identity;

pub mod alert;
pub mod smtp;
pub mod stats;
use snow_xml::{
    Element, Framed, FramedError, Limits, StreamEvent, StreamHeader, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAMS,
    NS_STREAM_ERRORS, NS_TLS,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a connection or an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("the server refused the login ({0})")]
    AuthFailed(String),
    #[error("the server closed the stream: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamError { condition: String, text: Option<String> },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error(transparent)]
    Framed(#[from] FramedError),
    #[error(transparent)]
    Crypto(#[from] snow_crypto::CryptoError),
    #[error("cannot encrypt for {jid}: its certificate is {status} in the key directory")]
    NoKey { jid: String, status: String },
    #[error("the key directory returned a certificate for {jid} that is not valid: {why}")]
    BadKey { jid: String, why: String },
    #[error(transparent)]
    E2e(#[from] snow_crypto::e2e::E2eError),
    #[error("{who} refused: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused { who: String, condition: String, text: Option<String> },
    #[error("the answer from {who} is not valid: {why}")]
    BadAnswer { who: String, why: String },
}

/// The key directory namespace (`urn:snow:keys:1`).
pub const NS_KEYS: &str = "urn:snow:keys:1";

/// One answer of the key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub jid: String,
    /// `valid`, `revoked` or `unknown`.
    pub status: String,
    /// DER, only for valid certificates.
    pub certificate: Option<Vec<u8>>,
}

/// The IQ that asks our server's key directory for `jids` (at most 50).
pub fn key_lookup(jids: &[&str]) -> Element {
    let mut q = Element::new(NS_KEYS, "query");
    for j in jids {
        q.push_child(Element::new(NS_KEYS, "item").with_attr("jid", *j));
    }
    Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(q)
}

/// The entries of the directory's answer to [`key_lookup`].
pub fn key_entries(answer: &Element) -> Result<Vec<KeyEntry>, ClientError> {
    use base64::Engine;
    if answer.attr("type") != Some("result") {
        return Err(ClientError::Protocol("the server did not answer the key lookup".into()));
    }
    let Some(q) = answer.child(NS_KEYS, "query") else { return Ok(Vec::new()) };
    Ok(q.children()
        .map(|i| KeyEntry {
            jid: i.attr("jid").unwrap_or_default().to_owned(),
            status: i.attr("status").unwrap_or("unknown").to_owned(),
            certificate: i
                .child(NS_KEYS, "certificate")
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c.text().trim()).ok()),
        })
        .collect())
}

/// The certificate of `bare` among `entries`, checked: valid (not revoked
/// or unknown), issued by `ca_der`, naming `bare`.
pub fn checked_certificate(entries: &[KeyEntry], bare: &str, ca_der: &[u8]) -> Result<Vec<u8>, ClientError> {
    let entry = entries
        .iter()
        .find(|e| e.jid == bare)
        .ok_or_else(|| ClientError::NoKey { jid: bare.to_owned(), status: "unknown".into() })?;
    let cert = match (entry.status.as_str(), &entry.certificate) {
        ("valid", Some(c)) => c.clone(),
        (status, _) => return Err(ClientError::NoKey { jid: bare.to_owned(), status: status.to_owned() }),
    };
    let bad = |why: String| ClientError::BadKey { jid: bare.to_owned(), why };
    snow_crypto::cert::verify_issued_by(&cert, ca_der).map_err(|e| bad(e.to_string()))?;
    let info = snow_crypto::CertInfo::from_der(&cert).map_err(|e| bad(e.to_string()))?;
    if info.jid() != Some(bare) {
        return Err(bad(format!("it names {:?}", info.jid())));
    }
    Ok(cert)
}

/// A received chat message's body and how it travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// End-to-end encrypted to us and authenticated (AES-GCM tag checked).
    Encrypted(String),
    /// Sent in clear text.
    Clear(String),
    /// Encrypted, but not readable by us: why.
    Unreadable(String),
}

/// The body of a message stanza, decrypted with `identity` if encrypted.
pub fn read_body(message: &Element, identity: &Identity) -> Option<Body> {
    let body = message.child(NS_CLIENT, "body")?;
    if body.child(snow_crypto::e2e::NS_XENC, "EncryptedData").is_none() {
        return Some(Body::Clear(body.text()));
    }
    let mut copy = body.clone();
    match snow_crypto::e2e::decrypt_content(&mut copy, NS_CLIENT, identity.key_pkcs8(), identity.certificate()) {
        Ok(()) => Some(Body::Encrypted(copy.text())),
        Err(e) => Some(Body::Unreadable(e.to_string())),
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The server's address.
    pub addr: SocketAddr,
    /// The XMPP domain, also the name the server certificate must carry.
    pub domain: String,
    /// The CA certificate that issued the server's certificate (DER).
    pub ca_der: Vec<u8>,
    /// XEP-0368 direct TLS instead of STARTTLS.
    pub direct_tls: bool,
    /// Resource to ask for; the server picks one if `None`.
    pub resource: Option<String>,
    /// Limit for each step of the negotiation.
    pub timeout: Duration,
}

/// How to log in.
pub enum Login<'a> {
    /// SASL EXTERNAL with the user's certificate: Snow's only way.
    Certificate(&'a Identity),
    /// SASL PLAIN over TLS, for pointing the same tools at reference
    /// servers (Prosody) that use passwords.
    Plain { username: &'a str, password: &'a str },
}

/// A logged-in session.
pub struct Client {
    framed: Framed<TlsStream<TcpStream>>,
    jid: String,
    timeout: Duration,
}

fn header(domain: &str) -> String {
    StreamHeader { to: Some(domain.to_owned()), version: Some("1.0".into()), ..StreamHeader::default() }
        .to_xml(NS_CLIENT)
}

/// Reads the server's header and features.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    domain: &str,
    t: Duration,
) -> Result<Element, ClientError> {
    f.send(&header(domain)).await.map_err(FramedError::Io)?;
    match f.next_event(t).await? {
        StreamEvent::Header(_) => {}
        other => return Err(ClientError::Protocol(format!("expected a stream header, got {other:?}"))),
    }
    let features = next(f, t).await?;
    if !features.is(NS_STREAMS, "features") {
        return Err(ClientError::Protocol(format!("expected stream features, got <{}>", features.name())));
    }
    Ok(features)
}

/// The next element; a stream error becomes [`ClientError::StreamError`].
async fn next<S: AsyncRead + AsyncWrite + Unpin>(f: &mut Framed<S>, t: Duration) -> Result<Element, ClientError> {
    match f.next_event(t).await? {
        StreamEvent::Stanza(el) if el.is(NS_STREAMS, "error") => Err(stream_error(&el)),
        StreamEvent::Stanza(el) => Ok(el),
        StreamEvent::End => Err(ClientError::StreamError { condition: "closed".into(), text: None }),
        StreamEvent::Header(_) => Err(ClientError::Protocol("unexpected stream header".into())),
    }
}

fn stream_error(el: &Element) -> ClientError {
    let condition =
        el.children().find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text").map(|c| c.name().to_owned());
    let text = el.child(NS_STREAM_ERRORS, "text").map(Element::text);
    ClientError::StreamError { condition: condition.unwrap_or_else(|| "undefined-condition".into()), text }
}

fn tls_connector(opts: &ConnectOptions, login: &Login<'_>) -> Result<TlsConnector, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(opts.ca_der.clone())).map_err(|e| ClientError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let cfg = match login {
        Login::Certificate(identity) => {
            let chain: Vec<CertificateDer<'static>> =
                identity.chain().iter().cloned().map(CertificateDer::from).collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8().to_vec()));
            builder.with_client_auth_cert(chain, key).map_err(|e| ClientError::Tls(e.to_string()))?
        }
        Login::Plain { .. } => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(cfg)))
}

impl Client {
    /// Connects and logs in with `identity`'s certificate.
    pub async fn connect(opts: &ConnectOptions, identity: &Identity) -> Result<Client, ClientError> {
        Self::connect_with(opts, &Login::Certificate(identity)).await
    }

    /// Connects and logs in as `login` says.
    pub async fn connect_with(opts: &ConnectOptions, login: &Login<'_>) -> Result<Client, ClientError> {
        let t = opts.timeout;
        let tcp =
            TcpStream::connect(opts.addr).await.map_err(|source| ClientError::Connect { addr: opts.addr, source })?;
        let _ = tcp.set_nodelay(true);
        let tcp = if opts.direct_tls {
            tcp
        } else {
            let mut f = Framed::new(tcp, Limits::default());
            let features = open(&mut f, &opts.domain, t).await?;
            if features.child(NS_TLS, "starttls").is_none() {
                return Err(ClientError::Protocol("the server does not offer STARTTLS".into()));
            }
            f.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await.map_err(FramedError::Io)?;
            let answer = next(&mut f, t).await?;
            if !answer.is(NS_TLS, "proceed") {
                return Err(ClientError::Protocol(format!("STARTTLS refused: <{}>", answer.name())));
            }
            f.into_inner()
        };
        let name = ServerName::try_from(opts.domain.clone()).map_err(|e| ClientError::Tls(e.to_string()))?;
        let tls = tokio::time::timeout(t, tls_connector(opts, login)?.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Tls("handshake timed out".into()))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut f = Framed::new(tls, Limits::default());
        let features = open(&mut f, &opts.domain, t).await?;
        let mechanism = match login {
            Login::Certificate(_) => "EXTERNAL",
            Login::Plain { .. } => "PLAIN",
        };
        let offered = features
            .child(NS_SASL, "mechanisms")
            .is_some_and(|m| m.children().any(|c| c.name() == "mechanism" && c.text().trim() == mechanism));
        if !offered {
            return Err(ClientError::Protocol(format!("the server does not offer SASL {mechanism}")));
        }
        let initial = match login {
            // Empty authzid: the certificate names exactly one JID.
            Login::Certificate(_) => "=".to_owned(),
            Login::Plain { username, password } => {
                base64::engine::general_purpose::STANDARD.encode(format!("\0{username}\0{password}"))
            }
        };
        f.send(&format!("<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{initial}</auth>"))
            .await
            .map_err(FramedError::Io)?;
        let answer = next(&mut f, t).await?;
        if answer.is(NS_SASL, "failure") {
            let cond = answer.children().next().map(|c| c.name().to_owned()).unwrap_or_else(|| "failure".into());
            return Err(ClientError::AuthFailed(cond));
        }
        if !answer.is(NS_SASL, "success") {
            return Err(ClientError::Protocol(format!("unexpected <{}> after auth", answer.name())));
        }
        f.reset();
        let features = open(&mut f, &opts.domain, t).await?;
        if features.child(NS_BIND, "bind").is_none() {
            return Err(ClientError::Protocol("the server does not offer resource binding".into()));
        }
        let mut bind = Element::new(NS_BIND, "bind");
        if let Some(r) = &opts.resource {
            bind.push_child(Element::new(NS_BIND, "resource").with_text(r.clone()));
        }
        let iq = Element::new(NS_CLIENT, "iq").with_attr("type", "set").with_attr("id", "bind-1").with_child(bind);
        f.send(&iq.to_xml(NS_CLIENT)).await.map_err(FramedError::Io)?;
        let answer = next(&mut f, t).await?;
        let jid = answer
            .child(NS_BIND, "bind")
            .and_then(|b| b.child(NS_BIND, "jid"))
            .map(Element::text)
            .filter(|_| answer.attr("type") == Some("result"))
            .ok_or_else(|| ClientError::Protocol("resource binding failed".into()))?;
        Ok(Client { framed: f, jid, timeout: t })
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    pub async fn send(&mut self, stanza: &Element) -> Result<(), ClientError> {
        self.framed.send(&stanza.to_xml(NS_CLIENT)).await.map_err(|e| FramedError::Io(e).into())
    }

    /// Sends raw bytes (for tests of the server's defences).
    pub async fn send_raw(&mut self, xml: &str) -> Result<(), ClientError> {
        self.framed.send(xml).await.map_err(|e| FramedError::Io(e).into())
    }

    /// Announces availability (and so receives messages, stored ones first).
    pub async fn send_presence(&mut self) -> Result<(), ClientError> {
        self.send(&Element::new(NS_CLIENT, "presence")).await
    }

    /// A one-to-one chat message.
    pub async fn send_chat(&mut self, to: &str, body: &str) -> Result<(), ClientError> {
        let msg = Element::new(NS_CLIENT, "message")
            .with_attr("to", to)
            .with_attr("type", "chat")
            .with_child(Element::new(NS_CLIENT, "body").with_text(body));
        self.send(&msg).await
    }

    /// The next stanza from the server within `timeout`.
    pub async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        next(&mut self.framed, timeout).await
    }

    /// Sends an IQ and waits for its answer, setting aside nothing: other
    /// stanzas that arrive first are returned in the `Vec`.
    pub async fn request(&mut self, mut iq: Element) -> Result<(Element, Vec<Element>), ClientError> {
        let id = snow_crypto::one_time_password::random_hex(6)?;
        iq.set_attr("id", id.clone());
        self.send(&iq).await?;
        let mut other = Vec::new();
        loop {
            let el = self.next_stanza(self.timeout).await?;
            if el.is(NS_CLIENT, "iq") && el.attr("id") == Some(id.as_str()) {
                return Ok((el, other));
            }
            other.push(el);
        }
    }

    /// Splits into a reader and a writer that can be used from different
    /// tasks (for load tests and clients that send while they listen).
    pub fn split(self) -> (ClientReader, ClientWriter) {
        let (io, parser, events) = self.framed.into_parts();
        let (rd, wr) = tokio::io::split(io);
        (ClientReader { rd, parser, events, scratch: Vec::new(), buf: vec![0u8; 16 * 1024] }, ClientWriter { wr })
    }

    /// Asks this client's server for the certificates of `jids`.
    pub async fn lookup_keys(&mut self, jids: &[&str]) -> Result<Vec<KeyEntry>, ClientError> {
        let (r, _) = self.request(key_lookup(jids)).await?;
        key_entries(&r)
    }

    /// The certificate of `bare` from our server's key directory, checked:
    /// valid (not revoked or unknown), issued by `ca_der`, naming `bare`.
    /// Fetched each time (DESIGN.md §3.1: no long-lived cache).
    pub async fn certificate_of(&mut self, bare: &str, ca_der: &[u8]) -> Result<Vec<u8>, ClientError> {
        checked_certificate(&self.lookup_keys(&[bare]).await?, bare, ca_der)
    }

    /// Sends a chat message end-to-end encrypted for the recipient and for
    /// ourselves (so our own history stays readable). A revoked or unknown
    /// recipient certificate is refused.
    pub async fn send_encrypted_chat(
        &mut self,
        to: &str,
        text: &str,
        identity: &Identity,
        ca_der: &[u8],
    ) -> Result<(), ClientError> {
        let bare = to.split('/').next().unwrap_or(to);
        let cert = self.certificate_of(bare, ca_der).await?;
        let mut body = Element::new(NS_CLIENT, "body").with_text(text);
        snow_crypto::e2e::encrypt_content(
            &mut body,
            NS_CLIENT,
            &[cert.as_slice(), identity.certificate()],
            snow_crypto::e2e::KeyTransport::default(),
        )?;
        let msg = Element::new(NS_CLIENT, "message").with_attr("to", to).with_attr("type", "chat").with_child(body);
        self.send(&msg).await
    }

    /// Asks a lab's search agent (`agent`: its full JID) for statistics,
    /// end-to-end encrypted both ways (see [`stats`]).
    pub async fn search(
        &mut self,
        agent: &str,
        query: &snow_core::stats::StatsQuery,
        identity: &Identity,
        ca_der: &[u8],
    ) -> Result<snow_core::stats::StatsAnswer, ClientError> {
        let bare = agent.split('/').next().unwrap_or(agent);
        let cert = self.certificate_of(bare, ca_der).await?;
        let (answer, _) = self.request(stats::search_request(agent, query, &cert)?).await?;
        stats::read_search_answer(agent, &answer, identity)
    }

    /// Closes the stream politely.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.framed.send("</stream:stream>").await.map_err(FramedError::Io)?;
        // Wait briefly for the server's closing tag.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.framed.next_event(Duration::from_secs(2))).await;
        Ok(())
    }
}

/// The receiving half of a split [`Client`].
pub struct ClientReader {
    rd: tokio::io::ReadHalf<TlsStream<TcpStream>>,
    parser: snow_xml::StreamParser,
    events: std::collections::VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    buf: Vec<u8>,
}

impl ClientReader {
    /// The next stanza within `timeout`.
    pub async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        use tokio::io::AsyncReadExt;
        loop {
            match self.events.pop_front() {
                Some(StreamEvent::Stanza(el)) if el.is(NS_STREAMS, "error") => return Err(stream_error(&el)),
                Some(StreamEvent::Stanza(el)) => return Ok(el),
                Some(StreamEvent::End) => {
                    return Err(ClientError::StreamError { condition: "closed".into(), text: None })
                }
                Some(StreamEvent::Header(_)) => return Err(ClientError::Protocol("unexpected stream header".into())),
                None => {}
            }
            let n = tokio::time::timeout(timeout, self.rd.read(&mut self.buf))
                .await
                .map_err(|_| FramedError::Timeout(timeout))?
                .map_err(FramedError::Io)?;
            if n == 0 {
                return Err(FramedError::Closed.into());
            }
            let r = self.parser.feed(&self.buf[..n], &mut self.scratch);
            self.events.extend(self.scratch.drain(..));
            if let Err(e) = r {
                if self.events.is_empty() {
                    return Err(FramedError::Xml(e).into());
                }
            }
        }
    }
}

/// The sending half of a split [`Client`].
pub struct ClientWriter {
    wr: tokio::io::WriteHalf<TlsStream<TcpStream>>,
}

impl ClientWriter {
    pub async fn send(&mut self, stanza: &Element) -> Result<(), ClientError> {
        self.send_raw(&stanza.to_xml(NS_CLIENT)).await
    }

    pub async fn send_raw(&mut self, xml: &str) -> Result<(), ClientError> {
        use tokio::io::AsyncWriteExt;
        self.wr.write_all(xml.as_bytes()).await.map_err(FramedError::Io)?;
        self.wr.flush().await.map_err(FramedError::Io)?;
        Ok(())
    }
}
