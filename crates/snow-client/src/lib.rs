//! The Snow client library: connect to a Snow server with the user's
//! certificate (STARTTLS or direct TLS, SASL EXTERNAL, resource binding),
//! then send and receive stanzas; a [`Session`] makes requests concurrently
//! and, when the server offers XEP-0198 stream management, loses nothing
//! when its connection breaks: [`Session::resume`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use snow_core::nonce_cache::NonceCache;
use snow_crypto::Identity;

pub mod alert;
pub mod caps;
pub mod keys;
pub mod session;
pub mod signed;
pub mod smtp;
pub mod stats;
mod stream_management;
pub use session::{ContactAdded, IqClient, Origin, Session, StanzaReader, StanzaWriter};
use snow_xml::initiator::{self, PeerError};
use snow_xml::{
    Element, Features, Framed, FramedError, FramedReader, FramedWriter, Limits, StreamHeader, NS_BIND, NS_CLIENT,
    NS_ROSTER, NS_SM,
};
use tokio::io::{ReadHalf, WriteHalf};
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
    /// The server's text, when it gives one, is the whole message: a Snow
    /// server says what happened and what to do ("your certificate has
    /// been revoked — contact the Snow administrator").
    #[error("{}", match text { Some(t) => t.clone(), None => format!("the server refused the login ({condition})") })]
    AuthFailed { condition: String, text: Option<String> },
    #[error("the server closed the stream: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamError { condition: String, text: Option<String> },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error(transparent)]
    Framed(#[from] FramedError),
    #[error(transparent)]
    Crypto(#[from] snow_crypto::CryptoError),
    /// `status` is the key directory's: `unknown` (no such user) or
    /// `revoked`.
    #[error("{}", no_key(jid, status))]
    NoKey { jid: String, status: String },
    /// The search agent a lab is asked through has no certificate in the
    /// key directory: the lab is not one of this CA's sites (or its agent
    /// was never issued one).
    #[error("no such lab in the key directory: {lab} (its search agent {agent} has no certificate)")]
    UnknownLab { lab: String, agent: String },
    /// The key directory's certificate for `jid` did not pass the
    /// client's own checks (chain, validity, usage, revocation by the CA's
    /// CRL, the JID and serial the directory listed): nothing is encrypted
    /// for it.
    #[error("cannot encrypt for {jid}: {why}")]
    BadKey { jid: String, why: snow_crypto::e2e::recipient::RecipientError },
    #[error(transparent)]
    E2e(#[from] snow_crypto::e2e::E2eError),
    #[error("cannot sign the message: {0}")]
    Sign(#[from] signed::SignError),
    /// An alert is signed for the people it is encrypted to, and a signed
    /// payload names at most [`signed::MAX_RECIPIENTS`]: nothing was
    /// published.
    #[error("{node} has {count} subscribers with valid keys, more than the {max} an alert can be signed for: nothing was published")]
    TooManyRecipients { node: String, count: usize, max: usize },
    #[error("{who} refused: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused { who: String, condition: String, text: Option<String> },
    #[error("the answer from {who} is not valid: {why}")]
    BadAnswer { who: String, why: String },
    /// A signed payload that did not verify (issue 20): dropped, never
    /// shown as genuine.
    #[error("unverified message dropped: {why} (from {who})")]
    Unverified { who: String, why: signed::Unverified },
    #[error("no answer from {who} within {after:?}")]
    NoAnswer { who: String, after: Duration },
    #[error("too many requests are waiting for answers (at most {0})")]
    TooManyRequests(usize),
    #[error("the connection ended before the answer came")]
    Disconnected,
    /// [`Session::resume`] could not resume: log in again (a new
    /// session). What we had sent and the server had not acknowledged is
    /// in [`Session::take_unacknowledged`].
    #[error("the session could not be resumed ({0}): log in again")]
    NotResumed(String),
    /// A transport of another crate (an agent's component link) failed.
    #[error(transparent)]
    Transport(Box<dyn std::error::Error + Send + Sync>),
}

/// [`ClientError::NoKey`] in words.
fn no_key(jid: &str, status: &str) -> String {
    match status {
        "unknown" => format!("no such user in the key directory: {jid}"),
        "revoked" => format!("{jid}'s certificate has been revoked: nothing can be encrypted for them"),
        other => format!("cannot encrypt for {jid}: its certificate is {other} in the key directory"),
    }
}

/// The negotiation's errors in the words users have always seen.
impl From<PeerError> for ClientError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Framed(e) => ClientError::Framed(e),
            PeerError::StreamError(e) => ClientError::StreamError { condition: e.condition, text: e.text },
            PeerError::Closed => ClientError::StreamError { condition: "closed".into(), text: None },
            PeerError::Restarted => ClientError::Protocol("unexpected stream header".into()),
            PeerError::Unexpected(what) => ClientError::Protocol(what),
            PeerError::TlsRefused(name) => ClientError::Protocol(format!("STARTTLS refused: <{name}>")),
            PeerError::AuthFailed { condition, text } => ClientError::AuthFailed { condition, text },
        }
    }
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
    /// The serial the directory lists (hex), if it says.
    pub serial: Option<String>,
    /// The CA's CRL (DER) the directory answered with, the same for every
    /// entry of one answer; `None` if it sent none.
    pub crl: Option<Arc<Vec<u8>>>,
}

/// The IQ that asks our server's key directory for `jids` (at most 50).
pub fn key_lookup(jids: &[&str]) -> Element {
    let mut q = Element::new(NS_KEYS, "query");
    for j in jids {
        q.push_child(Element::new(NS_KEYS, "item").with_attr("jid", *j));
    }
    Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(q)
}

/// The entries of the directory's answer to [`key_lookup`], each with the
/// CRL that came with them (`<crl>` in the answer, docs/architecture.md §6).
pub fn key_entries(answer: &Element) -> Result<Vec<KeyEntry>, ClientError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |e: &Element| {
        let compact: String = e.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
        b64.decode(compact).ok()
    };
    if answer.attr("type") != Some("result") {
        return Err(ClientError::Protocol("the server did not answer the key lookup".into()));
    }
    let Some(q) = answer.child(NS_KEYS, "query") else { return Ok(Vec::new()) };
    let crl = q.child(NS_KEYS, "crl").and_then(decode).map(Arc::new);
    Ok(q.children()
        .filter(|i| i.is(NS_KEYS, "item"))
        .map(|i| KeyEntry {
            jid: i.attr("jid").unwrap_or_default().to_owned(),
            status: i.attr("status").unwrap_or("unknown").to_owned(),
            certificate: i.child(NS_KEYS, "certificate").and_then(decode),
            serial: i.attr("serial").map(str::to_owned),
            crl: crl.clone(),
        })
        .collect())
}

/// The certificate of `bare` among `entries`, checked before anything is
/// encrypted to it: listed as valid, then the client's own checks, since
/// the directory is only the server's word (`snow_crypto::e2e::recipient`):
/// issued by `ca_der`, within its validity, a user's or an agent's
/// certificate for key encipherment, naming `bare`, with the serial the
/// directory lists, and not revoked in the CA-signed, current CRL that
/// came with the answer. No such CRL: status unknown, refused.
pub fn checked_certificate(entries: &[KeyEntry], bare: &str, ca_der: &[u8]) -> Result<Vec<u8>, ClientError> {
    use snow_crypto::e2e::recipient::{self, RecipientError};
    let entry = entries
        .iter()
        .find(|e| e.jid == bare)
        .ok_or_else(|| ClientError::NoKey { jid: bare.to_owned(), status: "unknown".into() })?;
    let cert = match (entry.status.as_str(), &entry.certificate) {
        ("valid", Some(c)) => c.clone(),
        (status, _) => return Err(ClientError::NoKey { jid: bare.to_owned(), status: status.to_owned() }),
    };
    let bad = |why: RecipientError| ClientError::BadKey { jid: bare.to_owned(), why };
    let info = recipient::check_now(&cert, ca_der, entry.crl.as_deref().map(Vec::as_slice)).map_err(bad)?;
    if info.jid() != Some(bare) {
        return Err(bad(RecipientError::NamesAnother(info.jid().map(str::to_owned))));
    }
    if let Some(listed) = &entry.serial {
        let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_lowercase();
        if norm(listed) != norm(&info.serial_hex) {
            return Err(bad(RecipientError::SerialMismatch { listed: listed.clone(), certificate: info.serial_hex }));
        }
    }
    Ok(cert)
}

/// Snow's mark on a roster item (`<pending-in xmlns='urn:snow:roster:1'/>`
/// inside `<item/>`): the contact asked to see your presence and you have
/// not answered. RFC 6121 keeps this "Pending In" state on the server
/// only; a Snow server shows it in the roster so a client that is not
/// online (`snow contacts list`) can show and approve the request.
pub const NS_SNOW_ROSTER: &str = "urn:snow:roster:1";

/// One contact of your roster (RFC 6121 §2.1.2), as your server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub jid: String,
    pub name: Option<String>,
    /// You receive their presence (subscription `to` or `both`).
    pub you_see_them: bool,
    /// They receive yours (subscription `from` or `both`).
    pub they_see_you: bool,
    /// You asked to see their presence and they have not answered
    /// (`ask='subscribe'`).
    pub you_asked: bool,
    /// They asked to see your presence and you have not answered.
    pub they_asked: bool,
}

/// The roster get (RFC 6121 §2.1.3).
pub fn roster_get() -> Element {
    Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_ROSTER, "query"))
}

/// The roster set that adds `jid` or renames it (RFC 6121 §2.3), or with
/// `remove` takes it off the roster (§2.5).
pub fn roster_set(jid: &str, name: Option<&str>, remove: bool) -> Element {
    let mut item = Element::new(NS_ROSTER, "item").with_attr("jid", jid);
    if let Some(n) = name {
        item.set_attr("name", n);
    }
    if remove {
        item.set_attr("subscription", "remove");
    }
    Element::new(NS_CLIENT, "iq").with_attr("type", "set").with_child(Element::new(NS_ROSTER, "query").with_child(item))
}

/// A presence subscription stanza (RFC 6121 §3): `kind` is `subscribe`,
/// `subscribed`, `unsubscribe` or `unsubscribed`.
pub fn subscription(to: &str, kind: &str) -> Element {
    Element::new(NS_CLIENT, "presence").with_attr("to", to).with_attr("type", kind)
}

/// The contacts of a roster result, or of a roster push.
pub fn roster_contacts(answer: &Element) -> Result<Vec<Contact>, ClientError> {
    if answer.attr("type") == Some("error") {
        let (condition, text) = snow_xml::stanza::error_of(answer);
        return Err(ClientError::Refused { who: "your server".into(), condition, text });
    }
    let Some(q) = answer.child(NS_ROSTER, "query") else { return Ok(Vec::new()) };
    Ok(q.children()
        .filter(|i| i.is(NS_ROSTER, "item"))
        .filter_map(|i| {
            let sub = i.attr("subscription").unwrap_or("none");
            Some(Contact {
                jid: i.attr("jid")?.to_owned(),
                name: i.attr("name").filter(|n| !n.is_empty()).map(str::to_owned),
                you_see_them: matches!(sub, "to" | "both"),
                they_see_you: matches!(sub, "from" | "both"),
                you_asked: i.attr("ask") == Some("subscribe"),
                they_asked: i.child(NS_SNOW_ROSTER, "pending-in").is_some(),
            })
        })
        .collect())
}

/// A one-to-one chat message in clear text.
pub fn chat_message(to: &str, body: &str) -> Element {
    Element::new(NS_CLIENT, "message")
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new(NS_CLIENT, "body").with_text(body))
}

/// A received chat message's body and how it travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// End-to-end encrypted to us, authenticated (AES-GCM tag checked) and
    /// signed by `signer` (a bare JID, the stanza's sender): the signature,
    /// kind, recipients, time and nonce held ([`signed::open`]) and the
    /// signer's certificate is the key directory's valid one for them.
    Verified { text: String, signer: String },
    /// Sent in clear text: nothing proves who wrote it (shown as such).
    Clear(String),
    /// Encrypted, but not readable by us: why.
    Unreadable(String),
    /// Decrypted, but not shown: it is not proven to come from its sender,
    /// for us, once. The reason in words ("unverified message dropped:
    /// {reason}"); never the text, which may be a forgery.
    Unverified(String),
}

/// Opens the nonce cache of one-to-one chats at `path` (one per process
/// and identity: `snow chat` keeps `chat-nonces` in the key store's
/// directory, the GP app `app-nonces` beside its state file), with the
/// chat's clock window ([`signed::Kind::Chat`]).
pub fn open_chat_nonces(path: &std::path::Path) -> Result<NonceCache, snow_core::nonce_cache::NonceError> {
    NonceCache::open(path, signed::Kind::Chat.max_age_secs(), CHAT_NONCES, unix_now())
}

/// Chat nonces held at once: far more than a GP receives in the window.
pub const CHAT_NONCES: usize = 100_000;

/// The body of a one-to-one chat message, decrypted with `identity` and
/// its signature checked before anything is shown (issue 20): a signed
/// [`Kind::Chat`](signed::Kind::Chat) payload from the stanza's sender
/// (bare `from`; our own copies, signed by us, the same way) that names us
/// among its recipients, within the clock window, its nonce taken once in
/// `nonces`; then the signer's certificate must be the one the key
/// directory lists as valid for the sender ([`IqClient::certificate_of`]:
/// chain, validity and the CA's CRL, asked each time so a revocation
/// counts from the next message). `None` for a message without a body.
pub async fn open_chat(
    iq: &IqClient,
    message: &Element,
    identity: &Identity,
    ca_der: &[u8],
    nonces: &std::sync::Mutex<NonceCache>,
) -> Option<Body> {
    let body = message.child(NS_CLIENT, "body")?;
    if body.child(snow_crypto::e2e::NS_XENC, "EncryptedData").is_none() {
        return Some(Body::Clear(body.text()));
    }
    let mut copy = body.clone();
    // Snow's envelope: only the EncryptedKey naming our certificate is
    // tried, at most 16 read (docs/architecture.md §6).
    if let Err(e) =
        snow_crypto::e2e::decrypt_content(&mut copy, NS_CLIENT, identity.key_pkcs8(), identity.certificate())
    {
        return Some(Body::Unreadable(e.to_string()));
    }
    let unverified = |e: signed::Unverified| Some(Body::Unverified(e.to_string()));
    // Without a sender nothing can be checked: our server always stamps one.
    let Some(from) = message.attr("from") else {
        return unverified(signed::Unverified::NotFromSender { claimed: "?".into(), sender: "nobody".into() });
    };
    let sender = from.split('/').next().unwrap_or(from).to_owned();
    let me = iq.jid().split('/').next().unwrap_or_default().to_owned();
    let Some(signed_el) = signed::only_signed(&copy) else { return unverified(signed::Unverified::NotSigned) };
    let expect = signed::Expect { kind: signed::Kind::Chat, sender: &sender, me: &me, answers: None };
    // The guard is dropped before the directory is asked (an await).
    let opened = {
        let mut cache = nonces.lock().unwrap_or_else(|p| p.into_inner());
        signed::open(signed_el, &expect, &mut cache, unix_now())
    };
    let opened = match opened {
        Ok(o) => o,
        Err(e) => return unverified(e),
    };
    if let Err(e) = check_signer(iq, &sender, &opened.signer_cert, ca_der).await {
        return unverified(e);
    }
    Some(Body::Verified { text: opened.content.text(), signer: opened.from.to_ascii_lowercase() })
}

/// Whether `signer_cert` (from a payload [`signed::open`] accepted) is the
/// certificate the key directory lists as valid for `jid` now
/// ([`IqClient::certificate_of`]: chain, validity and the CA's CRL, asked
/// each time so a revocation counts from the next message).
pub async fn check_signer(
    iq: &IqClient,
    jid: &str,
    signer_cert: &[u8],
    ca_der: &[u8],
) -> Result<(), signed::Unverified> {
    let jid = jid.split('/').next().unwrap_or(jid).to_owned();
    match iq.certificate_of(&jid, ca_der).await {
        Ok(listed) if listed == signer_cert => Ok(()),
        Ok(_) => Err(signed::Unverified::NotDirectorys(jid)),
        Err(ClientError::NoKey { status, .. }) if status == "revoked" => Err(signed::Unverified::Revoked(jid)),
        Err(ClientError::NoKey { status, .. }) if status == "unknown" => Err(signed::Unverified::NotInDirectory(jid)),
        Err(ClientError::BadKey { why: snow_crypto::e2e::recipient::RecipientError::Revoked { .. }, .. }) => {
            Err(signed::Unverified::Revoked(jid))
        }
        // The directory's certificate failed our own checks: its reason,
        // not the encryption's wording of it.
        Err(ClientError::BadKey { why, .. }) => Err(signed::Unverified::Directory { jid, why: why.to_string() }),
        Err(e) => Err(signed::Unverified::Directory { jid, why: e.to_string() }),
    }
}

/// Unix seconds now (0 before 1970: every signed time is then ahead).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
    /// The server offered XEP-0198 stream management after login:
    /// [`Client::into_session`] enables it.
    stream_management: bool,
}

fn header(domain: &str) -> StreamHeader {
    StreamHeader { to: Some(domain.to_owned()), version: Some("1.0".into()), ..StreamHeader::default() }
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

/// Connects, secures the stream and logs in as `login` says: the stream
/// after authentication, and the features it offers (resource binding;
/// stream management, to enable after binding or to resume with).
async fn authenticated(
    opts: &ConnectOptions,
    login: &Login<'_>,
) -> Result<(Framed<TlsStream<TcpStream>>, Features), ClientError> {
    let t = opts.timeout;
    let tcp = TcpStream::connect(opts.addr).await.map_err(|source| ClientError::Connect { addr: opts.addr, source })?;
    let _ = tcp.set_nodelay(true);
    let header = header(&opts.domain);
    let tcp = if opts.direct_tls {
        tcp
    } else {
        let mut f = Framed::new(tcp, Limits::default());
        let (_, features) = initiator::open(&mut f, &header, NS_CLIENT, t).await?;
        if !features.offers_starttls() {
            return Err(ClientError::Protocol("the server does not offer STARTTLS".into()));
        }
        initiator::starttls(&mut f, t).await?;
        f.into_inner()
    };
    let name = ServerName::try_from(opts.domain.clone()).map_err(|e| ClientError::Tls(e.to_string()))?;
    let tls = tokio::time::timeout(t, tls_connector(opts, login)?.connect(name, tcp))
        .await
        .map_err(|_| ClientError::Tls("handshake timed out".into()))?
        .map_err(|e| {
            let peer = snow_crypto::tls_words::Peer { name: "the server", trusted: "the CA in your key store" };
            ClientError::Tls(snow_crypto::tls_words::handshake_failure(&e, &peer))
        })?;
    let mut f = Framed::new(tls, Limits::default());
    let (_, features) = initiator::open(&mut f, &header, NS_CLIENT, t).await?;
    let (mechanism, initial) = match login {
        // Empty authzid: the certificate names exactly one JID.
        Login::Certificate(_) => ("EXTERNAL", zeroize::Zeroizing::new(Vec::new())),
        Login::Plain { username, password } => {
            ("PLAIN", zeroize::Zeroizing::new(format!("\0{username}\0{password}").into_bytes()))
        }
    };
    if !features.offers_mechanism(mechanism) {
        return Err(ClientError::Protocol(format!("the server does not offer SASL {mechanism}")));
    }
    initiator::authenticate(&mut f, mechanism, &initial, t).await?;
    let (_, features) = initiator::open(&mut f, &header, NS_CLIENT, t).await?;
    Ok((f, features))
}

impl Client {
    /// Connects and logs in with `identity`'s certificate.
    pub async fn connect(opts: &ConnectOptions, identity: &Identity) -> Result<Client, ClientError> {
        Self::connect_with(opts, &Login::Certificate(identity)).await
    }

    /// Connects and logs in as `login` says.
    pub async fn connect_with(opts: &ConnectOptions, login: &Login<'_>) -> Result<Client, ClientError> {
        let t = opts.timeout;
        let (mut f, features) = authenticated(opts, login).await?;
        if !features.offers(NS_BIND, "bind") {
            return Err(ClientError::Protocol("the server does not offer resource binding".into()));
        }
        let mut bind = Element::new(NS_BIND, "bind");
        if let Some(r) = &opts.resource {
            bind.push_child(Element::new(NS_BIND, "resource").with_text(r.clone()));
        }
        let iq = Element::new(NS_CLIENT, "iq").with_attr("type", "set").with_attr("id", "bind-1").with_child(bind);
        f.send(&iq.to_xml(NS_CLIENT)).await.map_err(FramedError::Io)?;
        let answer = f.next_element(t).await?;
        let jid = answer
            .child(NS_BIND, "bind")
            .and_then(|b| b.child(NS_BIND, "jid"))
            .map(Element::text)
            .filter(|_| answer.attr("type") == Some("result"))
            .ok_or_else(|| ClientError::Protocol("resource binding failed".into()))?;
        let stream_management = features.offers(NS_SM, "sm");
        let mut client = Client { framed: f, jid, timeout: t, stream_management };
        // Say which client this is before anything else (a server with
        // `client_check = "require"` takes nothing else first).
        let domain = client.jid.split('/').next().and_then(|b| b.rsplit('@').next()).unwrap_or(&opts.domain);
        client.send(&caps::announcement(domain)).await?;
        Ok(client)
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

    /// Announces availability (and so receives messages, stored ones
    /// first), with the Snow client's caps (XEP-0115, [`caps`]).
    pub async fn send_presence(&mut self) -> Result<(), ClientError> {
        self.send(&caps::presence()).await
    }

    /// A one-to-one chat message in clear text.
    pub async fn send_chat(&mut self, to: &str, body: &str) -> Result<(), ClientError> {
        self.send(&chat_message(to, body)).await
    }

    /// The next stanza from the server within `timeout`.
    pub async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        Ok(self.framed.next_element(timeout).await?)
    }

    /// Splits into a reader and a writer that can be used from different
    /// tasks (for load tests and clients that send while they listen).
    pub fn split(self) -> (ClientReader, ClientWriter) {
        let (rd, wr) = self.framed.split();
        (ClientReader { rd }, ClientWriter { wr })
    }

    /// Hands the connection to a [`Session`]: a reader and a writer task,
    /// and an [`IqClient`] that makes requests concurrently. The
    /// negotiation timeout becomes the session's answer timeout.
    /// When the server offers stream management (XEP-0198), the session
    /// enables it, with resumption: see [`Session::resume`].
    pub fn into_session(self) -> Session {
        let origin = Origin::Client { jid: self.jid.clone() };
        let timeout = self.timeout;
        let managed = self.stream_management;
        let (rd, wr) = self.split();
        if managed {
            Session::start_managed(rd, wr, origin, timeout)
        } else {
            Session::start(rd, wr, origin, timeout)
        }
    }

    /// Whether the server offered stream management (XEP-0198).
    pub fn offers_stream_management(&self) -> bool {
        self.stream_management
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
    rd: FramedReader<ReadHalf<TlsStream<TcpStream>>>,
}

impl ClientReader {
    /// The next stanza within `timeout`.
    pub async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        Ok(self.rd.next_element(timeout).await?)
    }
}

/// The sending half of a split [`Client`].
pub struct ClientWriter {
    wr: FramedWriter<WriteHalf<TlsStream<TcpStream>>>,
}

impl ClientWriter {
    pub async fn send(&mut self, stanza: &Element) -> Result<(), ClientError> {
        self.send_raw(&stanza.to_xml(NS_CLIENT)).await
    }

    pub async fn send_raw(&mut self, xml: &str) -> Result<(), ClientError> {
        self.wr.send(xml).await.map_err(FramedError::Io)?;
        Ok(())
    }
}

impl StanzaReader for ClientReader {
    async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        ClientReader::next_stanza(self, timeout).await
    }
}

impl StanzaWriter for ClientWriter {
    async fn send_stanza(&mut self, stanza: &Element) -> Result<(), ClientError> {
        self.send(stanza).await
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.send_raw("</stream:stream>").await
    }
}
