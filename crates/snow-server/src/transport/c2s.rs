//! Client sessions (RFC 6120): STARTTLS or direct TLS (XEP-0368), SASL
//! EXTERNAL with the client certificate as the only login, resource
//! binding, then the bound session, which hands every stanza to routing
//! and writes what routing queues for it.
//!
//! A bound session is one task of its own (the negotiation's is gone by
//! then), reading through `snow_xml::Framed`, which holds no read buffer
//! and frees the parser's scratch space while the client is quiet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use snow_xml::stanza::{error_reply, is_reply, Condition};
use snow_xml::{
    stream_error_xml, Element, Framed, FramedError, StreamEvent, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_TLS,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::{gone, refuse, Accepting, Deadline, Step};
use crate::db::Db;
use crate::limits::{ConnectionSlot, RateLimiter, TokenBucket, Verdict};
use crate::routing::{Origin, Outbound, Router, SessionHandle};
use crate::trust::{CertRef, Count, TrustStore};

/// What client sessions need.
pub(crate) struct C2s {
    pub accepting: Accepting,
    pub domain: snow_core::Domain,
    pub trust: Arc<TrustStore>,
    pub router: Arc<Router>,
    pub db: Db,
    /// Seconds of silence after which a session is closed.
    pub idle: Duration,
    /// Sustained stanzas per second, and the burst above it.
    pub rate: (f64, f64),
    /// Stanzas queued for a slow reader before it is disconnected.
    pub outbound_queue: usize,
    /// Stanzas per account, across its sessions (`[server]
    /// account_stanza_rate`).
    pub accounts: RateLimiter,
    /// Connections to the client ports per source address (`[server]
    /// login_attempts_per_minute`).
    pub logins: RateLimiter,
}

/// The refusal of a connection over the login attempts of its address.
const LOGIN_RATE: &str = "too many login attempts from your address; try again in a minute";
/// The refusal of a stanza over its account's rate, and the end of a
/// session whose account keeps on.
const ACCOUNT_RATE: &str = "too many stanzas from your account (all its sessions together); slow down";
const ACCOUNT_RATE_END: &str = "too many stanzas from your account for too long";

/// A connection to the STARTTLS port. TLS must be done within the TLS
/// deadline and the login (with resource binding) within the
/// authentication deadline of accept. Once logged in, the session runs as
/// a task of its own, so nothing of the negotiation stays in memory.
pub(crate) async fn run_starttls(c2s: Arc<C2s>, tcp: TcpStream, peer: SocketAddr, slot: ConnectionSlot) {
    let accepted = Instant::now();
    let a = &c2s.accepting;
    let result = if login_allowed(&c2s, peer) {
        let negotiation = async {
            let tls = a.by(accepted, Deadline::Tls, starttls(a, tcp)).await?;
            login(&c2s, tls).await
        };
        a.by(accepted, Deadline::Auth, negotiation).await
    } else {
        let mut f = Framed::new(tcp, a.limits);
        let refusal = async { Err(a.refuse_stream(&mut f, NS_CLIENT, "policy-violation", LOGIN_RATE).await) };
        a.by(accepted, Deadline::Tls, refusal).await
    };
    established(c2s, result, peer, slot);
}

/// A connection to the direct TLS port, with the same deadlines. Over the
/// login attempts of its address it is closed before the TLS handshake
/// (nothing can be said in XMPP before it).
pub(crate) async fn run_direct_tls(c2s: Arc<C2s>, tcp: TcpStream, peer: SocketAddr, slot: ConnectionSlot) {
    let accepted = Instant::now();
    let a = &c2s.accepting;
    let result = if login_allowed(&c2s, peer) {
        let negotiation = async {
            let tls = a.by(accepted, Deadline::Tls, a.tls_accept(tcp)).await?;
            login(&c2s, tls).await
        };
        a.by(accepted, Deadline::Auth, negotiation).await
    } else {
        Err(super::Refused::Answered(LOGIN_RATE.into()))
    };
    established(c2s, result, peer, slot);
}

/// Whether the address of `peer` may make one more login attempt.
fn login_allowed(c2s: &C2s, peer: SocketAddr) -> bool {
    c2s.logins.check(&peer.ip().to_string()) == Verdict::Pass
}

/// Starts the bound session of a login, or logs why there is none.
fn established(c2s: Arc<C2s>, result: Step<Session>, peer: SocketAddr, mut slot: ConnectionSlot) {
    match result {
        Ok(session) => {
            slot.authenticated();
            tokio::spawn(bound(c2s, session, slot));
        }
        Err(e) => log(peer, e),
    }
}

fn log(peer: SocketAddr, refused: super::Refused) {
    super::log_end("client connection", peer, Err(refused));
}

/// A logged-in session, ready to run: its stream, its bare and full JID,
/// and the certificate it logged in with (matched against every CRL that
/// arrives while it runs).
struct Session {
    stream: Framed<TlsStream<TcpStream>>,
    bare: String,
    full: String,
    cert: CertRef,
}

/// The stream before TLS: STARTTLS required before anything else, then
/// the handshake.
async fn starttls(a: &Accepting, tcp: TcpStream) -> Step<TlsStream<TcpStream>> {
    let mut f = Framed::new(tcp, a.limits);
    a.open_stream(&mut f, NS_CLIENT, &format!("<starttls xmlns='{NS_TLS}'><required/></starttls>"), None).await?;
    let el = a.next_element(&mut f).await?;
    if el.is(NS_SASL, "auth") {
        // Never authenticate over plaintext (RFC 6120 §5.3.1).
        let xml = format!("<failure xmlns='{NS_SASL}'><encryption-required/></failure></stream:stream>");
        return Err(refuse(&mut f, &xml, "plaintext login attempt").await);
    }
    if !el.is(NS_TLS, "starttls") {
        let xml = stream_error_xml("policy-violation", "STARTTLS is required before anything else");
        return Err(refuse(&mut f, &xml, "no STARTTLS").await);
    }
    f.send(&format!("<proceed xmlns='{NS_TLS}'/>")).await.map_err(gone)?;
    a.tls_accept(f.into_inner()).await
}

/// SASL EXTERNAL, then resource binding, then the bound session.
async fn login(c2s: &Arc<C2s>, tls: TlsStream<TcpStream>) -> Step<Session> {
    let certs = super::peer_certificates(&tls);
    let a = &c2s.accepting;
    let mut f = Framed::new(tls, a.limits);
    let mechanisms = format!("<mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>");
    a.open_stream(&mut f, NS_CLIENT, &mechanisms, None).await?;
    let auth = a.next_element(&mut f).await?;
    if !auth.is(NS_SASL, "auth") {
        return Err(
            refuse(&mut f, &stream_error_xml("not-authorized", "authenticate first"), "stanza before auth").await
        );
    }
    let failure = |cond: &str| format!("<failure xmlns='{NS_SASL}'><{cond}/></failure></stream:stream>");
    if auth.attr("mechanism") != Some("EXTERNAL") {
        return Err(refuse(&mut f, &failure("invalid-mechanism"), "mechanism other than EXTERNAL").await);
    }
    let text = auth.text();
    let text = text.trim();
    let authzid = if text.is_empty() || text == "=" {
        None
    } else {
        match base64::engine::general_purpose::STANDARD.decode(text).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(a) => Some(a),
            None => return Err(refuse(&mut f, &failure("incorrect-encoding"), "bad base64 authzid").await),
        }
    };
    let (jid, cert) = match c2s.trust.authenticate(&certs, &c2s.domain, authzid.as_deref()) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(reason = %e, "certificate login refused");
            // RFC 6120 §6.5: the failure may say why, for the person.
            let mut xml = format!("<failure xmlns='{NS_SASL}'><not-authorized/><text xml:lang='en'>");
            snow_xml::escape::push_escaped(&mut xml, e.advice());
            xml.push_str("</text></failure></stream:stream>");
            return Err(refuse(&mut f, &xml, "certificate refused").await);
        }
    };
    f.send(&format!("<success xmlns='{NS_SASL}'/>")).await.map_err(gone)?;
    f.reset();

    let features = format!("<bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'><optional/></session>");
    a.open_stream(&mut f, NS_CLIENT, &features, None).await?;
    let bare = jid.to_string();
    let (full, bind_iq) = loop {
        let iq = a.next_element(&mut f).await?;
        if !iq.is(NS_CLIENT, "iq") || iq.attr("type") != Some("set") {
            return Err(refuse(
                &mut f,
                &stream_error_xml("not-authorized", "bind a resource first"),
                "stanza before bind",
            )
            .await);
        }
        let Some(bind) = iq.child(NS_BIND, "bind") else {
            let err = error_reply(&iq, Condition::NotAllowed, Some("bind a resource first"));
            f.send(&err.to_xml(NS_CLIENT)).await.map_err(gone)?;
            continue;
        };
        let wanted = bind.child(NS_BIND, "resource").map(|r| r.text()).unwrap_or_default();
        let resource = if wanted.trim().is_empty() {
            snow_crypto::one_time_password::random_hex(8).unwrap_or_else(|_| "snow".into())
        } else if wanted.len() > 256 || wanted.chars().any(char::is_control) {
            let err = error_reply(&iq, Condition::BadRequest, Some("resource too long or with control characters"));
            f.send(&err.to_xml(NS_CLIENT)).await.map_err(gone)?;
            continue;
        } else {
            wanted.trim().to_owned()
        };
        break (format!("{bare}/{resource}"), iq);
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let account = bare.clone();
    if let Err(e) = c2s.db.call(move |db| db.add_account(&account, now)).await {
        tracing::error!(error = %e, "cannot record account");
        return Err(refuse(&mut f, &stream_error_xml("internal-server-error", ""), "database").await);
    }
    let mut result = Element::new(NS_CLIENT, "iq").with_attr("type", "result");
    if let Some(id) = bind_iq.attr("id") {
        result.set_attr("id", id);
    }
    result.push_child(Element::new(NS_BIND, "bind").with_child(Element::new(NS_BIND, "jid").with_text(full.clone())));
    f.send(&result.to_xml(NS_CLIENT)).await.map_err(gone)?;
    tracing::info!(jid = %full, "session bound");
    Ok(Session { stream: f, bare, full, cert })
}

/// Why a bound session ends.
enum End {
    /// The peer closed, went away, or a write failed: nothing more to say.
    Gone,
    /// Told to end (slow reader, replaced by a new session).
    Killed,
    /// Close with this stream error (or closing tag).
    Close(String),
    /// Close with this stream error, without writing anything queued: the
    /// certificate is revoked.
    Revoked(String),
}

/// The bound session: reads, parses and hands stanzas to routing, and
/// writes what routing queued, until one side ends it. `slot` holds the
/// connection's place in the limits until then.
async fn bound(c2s: Arc<C2s>, session: Session, slot: ConnectionSlot) {
    let _slot = slot;
    let Session { mut stream, bare, full, cert } = session;
    let (tx, mut rx) = mpsc::channel(c2s.outbound_queue);
    let handle = SessionHandle::new(bare, full, tx);
    c2s.router.sessions.register(Arc::clone(&handle));
    let end = serve(&c2s, &handle, &cert, &mut stream, &mut rx).await;
    c2s.router.session_ended(&handle).await;
    match end {
        End::Close(xml) => {
            // Flush what is queued, then the goodbye; but not forever.
            let goodbye = async {
                while let Ok(out) = rx.try_recv() {
                    if let Outbound::Xml { xml, .. } = out {
                        stream.write(&xml).await?;
                    }
                }
                stream.send(&xml).await?;
                stream.get_mut().shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), goodbye).await;
        }
        End::Revoked(xml) => {
            let goodbye = async {
                stream.send(&xml).await?;
                stream.get_mut().shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), goodbye).await;
        }
        End::Gone | End::Killed => {}
    }
    tracing::info!(jid = %handle.full, "session ended");
}

/// What woke the session up.
enum Wake {
    Killed,
    Shutdown,
    /// A new CRL is in force.
    Crl,
    Out(Option<Outbound>),
    Read(Result<StreamEvent, FramedError>),
}

async fn serve(
    c2s: &Arc<C2s>,
    handle: &Arc<SessionHandle>,
    cert: &CertRef,
    stream: &mut Framed<TlsStream<TcpStream>>,
    rx: &mut mpsc::Receiver<Outbound>,
) -> End {
    let mut bucket = TokenBucket::new(c2s.rate.0, c2s.rate.1);
    let mut shutdown = c2s.accepting.shutdown.clone();
    let mut crls = c2s.trust.subscribe();
    // A CRL put in force between the login and here.
    crls.mark_changed();
    loop {
        if *shutdown.borrow() {
            return End::Close(stream_error_xml("system-shutdown", "the server is shutting down"));
        }
        let wake = tokio::select! {
            biased;
            _ = handle.kill.notified() => Wake::Killed,
            _ = shutdown.changed() => Wake::Shutdown,
            Ok(()) = crls.changed() => Wake::Crl,
            out = rx.recv() => Wake::Out(out),
            ev = stream.next_event(c2s.idle) => Wake::Read(ev),
        };
        match wake {
            Wake::Killed => return End::Killed,
            Wake::Shutdown => return End::Close(stream_error_xml("system-shutdown", "the server is shutting down")),
            Wake::Crl => {
                if c2s.trust.is_revoked(cert) {
                    let n = c2s.trust.count(Count::ClosedC2s);
                    tracing::warn!(
                        jid = %handle.full, serial = %cert.serial_hex(), closed = n,
                        "session closed: its certificate is revoked in the new CRL"
                    );
                    // RFC 6120 §4.9.3.16, §13.7.2.3.
                    return End::Revoked(stream_error_xml("reset", "your certificate has been revoked"));
                }
            }
            Wake::Out(None) => return End::Gone,
            Wake::Out(Some(out)) => {
                // A client that stops reading blocks the write: its full
                // queue ends the session through `kill`, and a write that
                // makes no progress for the idle time ends it anyway.
                let end = tokio::select! {
                    biased;
                    _ = handle.kill.notified() => Some(End::Killed),
                    end = tokio::time::timeout(c2s.idle, write(c2s, stream, out, rx)) => end.unwrap_or(Some(End::Gone)),
                };
                if let Some(end) = end {
                    return end;
                }
            }
            Wake::Read(Ok(StreamEvent::Stanza(el))) => {
                let wait = bucket.take();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if let Err(end) = stanza(c2s, handle, el).await {
                    return end;
                }
            }
            Wake::Read(Ok(StreamEvent::End)) => return End::Close("</stream:stream>".into()),
            Wake::Read(Ok(StreamEvent::Header(_))) => {
                return End::Close(stream_error_xml("bad-format", "unexpected stream restart"));
            }
            Wake::Read(Err(FramedError::Timeout(_))) => {
                return End::Close(stream_error_xml("connection-timeout", "idle for too long"));
            }
            Wake::Read(Err(FramedError::Xml(e))) => {
                // The stanzas before the error were handled already.
                tracing::warn!(jid = %handle.full, error = %e, "stream error");
                return End::Close(stream_error_xml(e.condition.name(), &e.detail));
            }
            Wake::Read(Err(_)) => return End::Gone,
        }
    }
}

/// Writes `first` and whatever else is queued, then flushes; an offline
/// message leaves the store only once it is on the socket.
async fn write(
    c2s: &C2s,
    stream: &mut Framed<TlsStream<TcpStream>>,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
) -> Option<End> {
    let mut next = Some(first);
    while let Some(out) = next.take() {
        match out {
            Outbound::Xml { xml, offline_id } => {
                if stream.write(&xml).await.is_err() {
                    return Some(End::Gone);
                }
                if let Some(id) = offline_id {
                    if stream.flush().await.is_err() {
                        return Some(End::Gone);
                    }
                    if let Err(e) = c2s.db.call(move |db| db.delete_offline(id)).await {
                        tracing::error!(error = %e, "cannot delete delivered offline message");
                    }
                }
            }
            Outbound::Close(xml) => return Some(End::Close(xml)),
        }
        next = rx.try_recv().ok();
    }
    if stream.flush().await.is_err() {
        return Some(End::Gone);
    }
    None
}

/// One stanza from the client: checked, its `from` set by the server
/// (RFC 6120 §8.1.2.1), handed to routing.
async fn stanza(c2s: &Arc<C2s>, handle: &Arc<SessionHandle>, mut el: Element) -> Result<(), End> {
    if el.ns() != NS_CLIENT || !matches!(el.name(), "message" | "presence" | "iq") {
        let text = format!("<{}/> is not a stanza", el.name());
        return Err(End::Close(stream_error_xml("unsupported-stanza-type", &text)));
    }
    el.set_attr("from", handle.full.clone());
    match c2s.accounts.check(&handle.bare) {
        Verdict::Pass => {}
        Verdict::Refuse => {
            if !is_reply(&el) {
                let err = error_reply(&el, Condition::PolicyViolation, Some(ACCOUNT_RATE));
                c2s.router.reply(&Origin::Session(Arc::clone(handle)), err);
            }
            return Ok(());
        }
        Verdict::Disconnect => return Err(End::Close(stream_error_xml("policy-violation", ACCOUNT_RATE_END))),
    }
    // Boxed: the routing future is large, and an idle session should not
    // carry its space.
    Box::pin(c2s.router.submit(Origin::Session(Arc::clone(handle)), el)).await;
    Ok(())
}
