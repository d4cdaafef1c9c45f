//! Client sessions (RFC 6120): STARTTLS or direct TLS (XEP-0368), SASL
//! EXTERNAL with the client certificate as the only login, resource
//! binding, then the bound session, which hands every stanza to routing
//! and writes what routing queues for it.
//!
//! A bound session is one task of its own (the negotiation's is gone by
//! then), reading through `snow_xml::Framed`, which holds no read buffer
//! and frees the parser's scratch space while the client is quiet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use snow_xml::stanza::{error_reply, is_reply, Condition};
use snow_xml::{
    stream_error_xml, Element, Framed, FramedError, StreamEvent, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_SM, NS_TLS,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::stream_management::{self, Handover, Resumable, Sm, SmSettings, Unacked};
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
    /// Stream management (`[server] sm_resume_secs`, `sm_max_unacked`).
    pub sm: SmSettings,
    /// The sessions a client may resume, by resumption id.
    pub resumable: Arc<Resumable<Link>>,
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
    then: Then,
}

/// How a login ends.
enum Then {
    /// A resource was bound: the answer to the bind request, written once
    /// the session is in the session table, so that a stanza for the new
    /// full JID, sent as soon as the client knows it, finds the session.
    Bind(String),
    /// The client resumed a session (XEP-0198) instead of binding: the
    /// connection goes to that session.
    Resume(stream_management::Claim<Link>),
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

    let features = format!(
        "<bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'><optional/></session>{}",
        stream_management::feature()
    );
    a.open_stream(&mut f, NS_CLIENT, &features, None).await?;
    let bare = jid.to_string();
    let (full, bind_iq) = loop {
        let iq = a.next_element(&mut f).await?;
        if iq.is(NS_SM, "resume") {
            match c2s.resumable.claim(&iq, &bare) {
                Ok(claim) => {
                    let full = claim.full.clone();
                    return Ok(Session { stream: f, bare, full, cert, then: Then::Resume(claim) });
                }
                // The client may bind instead (XEP-0198 §5).
                Err(failed) => {
                    f.send(&failed).await.map_err(gone)?;
                    continue;
                }
            }
        }
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
    tracing::info!(jid = %full, "session bound");
    Ok(Session { stream: f, bare, full, cert, then: Then::Bind(result.to_xml(NS_CLIENT)) })
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
    /// Silent for the idle time: close with this stream error. A session
    /// that may be resumed then waits for its client, as after `Gone`.
    Idle(String),
    /// The client came back on a new connection (XEP-0198 resumption),
    /// perhaps before this one was seen to break.
    Resume(Box<Handover<Link>>),
    /// Nobody resumed the session within its window (or the server shut
    /// down meanwhile).
    Expired,
}

/// The client's connection under a bound session; a resumption replaces
/// it.
pub(crate) struct Link {
    stream: Framed<TlsStream<TcpStream>>,
    /// The certificate it logged in with (matched against every CRL that
    /// arrives while it runs).
    cert: CertRef,
    /// Its place in the connection limits: held until the session ends,
    /// also while it waits to be resumed (so the limits count it, and a
    /// server shutting down waits for what it routes again).
    slot: ConnectionSlot,
}

/// The bound session: reads, parses and hands stanzas to routing, and
/// writes what routing queued, until one side ends it. `slot` holds the
/// connection's place in the limits until then. With stream management
/// and resumption, a broken connection leaves the session waiting for its
/// client (still in the session table: what routing sends it is queued)
/// for up to `sm_resume_secs`. A connection that resumes another session
/// only hands itself over to it.
async fn bound(c2s: Arc<C2s>, session: Session, slot: ConnectionSlot) {
    let Session { stream, bare, full, cert, then } = session;
    let mut link = Link { stream, cert, slot };
    let answer = match then {
        Then::Bind(answer) => answer,
        Then::Resume(claim) => {
            if let Err(mut link) = claim.hand_over(link) {
                // The session ended between the claim and now.
                let xml = format!("{}</stream:stream>", stream_management::failed("item-not-found"));
                let _ = tokio::time::timeout(Duration::from_secs(5), link.stream.send(&xml)).await;
            }
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(c2s.outbound_queue);
    let handle = SessionHandle::new(bare, full, tx);
    c2s.router.sessions.register(Arc::clone(&handle));
    // The bind result, before anything routing queued meanwhile.
    if !matches!(tokio::time::timeout(c2s.idle, link.stream.send(&answer)).await, Ok(Ok(()))) {
        c2s.router.session_ended(&handle).await;
        return;
    }
    let mut sm = Sm::Off;
    let mut link = Some(link);
    // The slot of a connection that broke, while the session waits.
    let mut held = None;
    let end = loop {
        let end = match link.as_mut() {
            Some(l) => serve(&c2s, &handle, l, &mut rx, &mut sm).await,
            None => detached(&c2s, &handle, &mut sm).await,
        };
        match end {
            // The old connection, if it is still open, is dropped.
            End::Resume(handover) => {
                let Handover { link: mut new, h } = *handover;
                match resume(&c2s, &mut new, &mut sm, h).await {
                    Ok(()) => {
                        tracing::info!(jid = %handle.full, "session resumed");
                        (link, held) = (Some(new), None);
                    }
                    Err(End::Gone) if sm.resumable() => (link, held) = (None, Some(new.slot)),
                    Err(end) => {
                        (link, held) = (Some(new), None);
                        break end;
                    }
                }
            }
            End::Gone | End::Idle(_) if sm.resumable() => {
                if let (End::Idle(xml), Some(l)) = (&end, link.as_mut()) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), l.stream.send(xml)).await;
                }
                if let Some(l) = link.take() {
                    held = Some(l.slot);
                }
                tracing::info!(
                    jid = %handle.full, window_secs = sm.window().as_secs(),
                    "connection lost: the session waits to be resumed"
                );
            }
            end => break end,
        }
    };
    c2s.router.session_ended(&handle).await;
    let managed = sm.is_on();
    let unacked = sm.take_unacked();
    if let Some(l) = link.as_mut() {
        let stream = &mut l.stream;
        match end {
            End::Close(xml) | End::Idle(xml) => {
                // Flush what is queued, then the goodbye; but not forever.
                // Under stream management nobody would acknowledge what
                // is queued: it is routed again below instead.
                let goodbye = async {
                    if !managed {
                        while let Ok(out) = rx.try_recv() {
                            if let Outbound::Xml { xml, .. } = out {
                                stream.write(&xml).await?;
                            }
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
            End::Gone | End::Killed | End::Resume(_) | End::Expired => {}
        }
    }
    route_again(&c2s, &handle, unacked, &mut rx).await;
    // The connection's place in the limits goes last.
    drop((link, held));
    tracing::info!(jid = %handle.full, "session ended");
}

/// A resumable session whose connection broke: waits for its client to
/// resume, for the session's window at most.
async fn detached(c2s: &C2s, handle: &SessionHandle, sm: &mut Sm<Link>) -> End {
    let mut shutdown = c2s.accepting.shutdown.clone();
    if *shutdown.borrow() {
        return End::Expired;
    }
    let window = sm.window();
    tokio::select! {
        biased;
        _ = handle.kill.notified() => End::Killed,
        _ = shutdown.changed() => End::Expired,
        h = sm.next_handover() => End::Resume(h),
        _ = tokio::time::sleep(window) => {
            tracing::info!(jid = %handle.full, "not resumed in time: the session ends");
            End::Expired
        }
    }
}

/// A connection that resumes the session: its `h` acknowledges what the
/// client had, then `<resumed/>` and everything else it had not
/// acknowledged, again, in order (XEP-0198 §5).
async fn resume(c2s: &C2s, link: &mut Link, sm: &mut Sm<Link>, h: u32) -> Result<(), End> {
    match sm.acknowledge(h) {
        Ok(acked) => delete_offline(c2s, acked).await,
        Err(e) => {
            tracing::warn!(error = %e, "resumption refused");
            let _ = tokio::time::timeout(Duration::from_secs(5), link.stream.send(&e.stream_error())).await;
            return Err(End::Gone);
        }
    }
    let again = sm.resumed();
    let ask = sm.ask();
    let stream = &mut link.stream;
    let write = async {
        for xml in again.iter().chain(&ask) {
            stream.write(xml).await?;
        }
        stream.flush().await
    };
    match tokio::time::timeout(c2s.idle, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::Gone),
    }
}

/// Routes again what the session was given and the client never had: under
/// stream management what it did not acknowledge, and in any case what
/// was still queued (never written), oldest first. A stored offline
/// message is not: its row is still there, for the next login. A message
/// goes where it would go now (another resource, or offline storage),
/// except one to the bare JID that another resource, available since
/// before it came, had too (RFC 6121 §8.5.2.1.1: not twice); an IQ
/// request is answered `service-unavailable`; presence and replies are
/// dropped. The session is out of the table by now.
async fn route_again(
    c2s: &Arc<C2s>,
    handle: &SessionHandle,
    unacked: VecDeque<Unacked>,
    rx: &mut mpsc::Receiver<Outbound>,
) {
    rx.close();
    handle.drained();
    let mut queued = Vec::new();
    while let Ok(out) = rx.try_recv() {
        if let Outbound::Xml { xml, offline_id, queued: at } = out {
            queued.push(Unacked { xml, offline_id, queued: at });
        }
    }
    let mut routed = 0;
    for u in unacked.into_iter().chain(queued) {
        if u.offline_id.is_some() {
            continue;
        }
        let Some(el) = reparse(&u.xml) else { continue };
        let el = match el.name() {
            "message" if el.attr("to") == Some(handle.full.as_str()) => el,
            "message" => {
                let others = c2s.router.sessions.sessions(&handle.bare);
                if others.iter().any(|s| s.took_bare_messages_at(u.queued)) {
                    continue;
                }
                el
            }
            "iq" if matches!(el.attr("type"), Some("get" | "set")) => {
                error_reply(&el, Condition::ServiceUnavailable, None)
            }
            _ => continue,
        };
        Box::pin(c2s.router.route(Origin::Server, el)).await;
        routed += 1;
    }
    if routed > 0 {
        tracing::info!(jid = %handle.full, routed, "stanzas the client did not have were routed again");
    }
}

/// A queued stanza back as an element: routing serialized it in
/// `jabber:client`, so it is parsed inside an element of that namespace.
fn reparse(xml: &str) -> Option<Element> {
    let doc = format!("<queued xmlns='{NS_CLIENT}'>{xml}</queued>");
    let limits = snow_xml::Limits {
        max_stanza_bytes: doc.len() + 1,
        max_depth: 128,
        max_attributes: 4096,
        max_elements: usize::MAX,
    };
    let root = snow_xml::parse_document(doc.as_bytes(), limits).ok()?;
    let first = root.children().next().cloned();
    first
}

/// Deletes offline messages the client had (written to it, or
/// acknowledged), all in one transaction.
async fn delete_offline(c2s: &C2s, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = c2s.db.call(move |db| db.delete_offline_many(&ids)).await {
        tracing::error!(error = %e, "cannot delete delivered offline messages");
    }
}

/// What woke the session up.
enum Wake {
    Killed,
    Shutdown,
    /// A new CRL is in force.
    Crl,
    /// The client resumed the session on a new connection.
    Resume(Box<Handover<Link>>),
    Out(Option<Outbound>),
    Read(Result<StreamEvent, FramedError>),
}

async fn serve(
    c2s: &Arc<C2s>,
    handle: &Arc<SessionHandle>,
    link: &mut Link,
    rx: &mut mpsc::Receiver<Outbound>,
    sm: &mut Sm<Link>,
) -> End {
    let Link { stream, cert, .. } = link;
    let mut bucket = TokenBucket::new(c2s.rate.0, c2s.rate.1);
    let mut shutdown = c2s.accepting.shutdown.clone();
    let mut crls = c2s.trust.subscribe();
    // A CRL put in force between the login and here.
    crls.mark_changed();
    let mut wrote = false;
    loop {
        if *shutdown.borrow() {
            return End::Close(stream_error_xml("system-shutdown", "the server is shutting down"));
        }
        // After a write, what the client sent meanwhile comes first if it
        // is there (its acks free the rows and the room to write more),
        // so a long delivery does not keep its input waiting.
        let ready = match wrote {
            true => tokio::time::timeout(Duration::ZERO, stream.next_event(c2s.idle)).await.ok().map(Wake::Read),
            false => None,
        };
        // Under stream management, nothing more is written while
        // `sm_max_unacked` stanzas wait for their ack.
        let room = sm.has_room();
        let wake = match ready {
            Some(wake) => wake,
            None => tokio::select! {
                biased;
                _ = handle.kill.notified() => Wake::Killed,
                _ = shutdown.changed() => Wake::Shutdown,
                Ok(()) = crls.changed() => Wake::Crl,
                h = sm.next_handover() => Wake::Resume(h),
                out = rx.recv(), if room => Wake::Out(out),
                ev = stream.next_event(c2s.idle) => Wake::Read(ev),
            },
        };
        wrote = matches!(wake, Wake::Out(Some(_)));
        // A stanza from the client counts for our acks once handled
        // (XEP-0198 §4); stream management's own elements do not.
        let counted = matches!(&wake, Wake::Read(Ok(StreamEvent::Stanza(el))) if el.ns() != NS_SM);
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
            Wake::Resume(h) => return End::Resume(h),
            Wake::Out(None) => return End::Gone,
            Wake::Out(Some(out)) => {
                // A client that stops reading blocks the write: its full
                // queue ends the session through `kill`, and a write that
                // makes no progress for the idle time ends it anyway.
                let end = tokio::select! {
                    biased;
                    _ = handle.kill.notified() => Some(End::Killed),
                    end = tokio::time::timeout(c2s.idle, write(c2s, stream, out, rx, sm)) => end.unwrap_or(Some(End::Gone)),
                };
                handle.drained();
                if let Some(end) = end {
                    return end;
                }
            }
            Wake::Read(Ok(StreamEvent::Stanza(el))) if el.ns() == NS_SM => {
                let wait = bucket.take();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if let Some(end) = managed(c2s, handle, stream, sm, &el).await {
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
                return End::Idle(stream_error_xml("connection-timeout", "idle for too long"));
            }
            Wake::Read(Err(FramedError::Xml(e))) => {
                // The stanzas before the error were handled already.
                tracing::warn!(jid = %handle.full, error = %e, "stream error");
                return End::Close(stream_error_xml(e.condition.name(), &e.detail));
            }
            Wake::Read(Err(_)) => return End::Gone,
        }
        if counted {
            sm.handled();
        }
    }
}

/// A stream management element from the client (XEP-0198): `<enable/>`,
/// an ack request, or an ack, whose offline messages leave the store.
async fn managed(
    c2s: &C2s,
    handle: &SessionHandle,
    stream: &mut Framed<TlsStream<TcpStream>>,
    sm: &mut Sm<Link>,
    el: &Element,
) -> Option<End> {
    let answer = match el.name() {
        "enable" => Some(sm.enable(el, c2s.sm, &c2s.resumable, &handle.bare, &handle.full)),
        "r" => Some(sm.ack().unwrap_or_else(|| stream_management::failed("unexpected-request"))),
        "a" => {
            match stream_management::h_of(el).and_then(|h| sm.acknowledge(h)) {
                Ok(acked) => delete_offline(c2s, acked).await,
                Err(e) => {
                    tracing::warn!(jid = %handle.full, error = %e, "bad acknowledgement");
                    return Some(End::Close(e.stream_error()));
                }
            }
            // What went out after the `<r/>` this answers.
            sm.ask()
        }
        "resume" => Some(stream_management::failed("unexpected-request")),
        other => {
            tracing::debug!(jid = %handle.full, element = other, "unknown stream management element ignored");
            None
        }
    };
    match answer {
        Some(xml) => match tokio::time::timeout(c2s.idle, stream.send(&xml)).await {
            Ok(Ok(())) => None,
            _ => Some(End::Gone),
        },
        None => None,
    }
}

/// Writes `first` and whatever else is queued (under stream management,
/// while fewer than `sm_max_unacked` wait for their ack), then flushes.
/// Without stream management, the offline messages written leave the
/// store after the flush, in one transaction; with it, an `<r/>` follows
/// what was written and they leave when the client acknowledges them.
async fn write(
    c2s: &C2s,
    stream: &mut Framed<TlsStream<TcpStream>>,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    sm: &mut Sm<Link>,
) -> Option<End> {
    let mut delivered = Vec::new();
    let mut closing = None;
    let mut next = Some(first);
    while let Some(out) = next.take() {
        match out {
            Outbound::Xml { xml, offline_id, queued } => {
                let written = stream.write(&xml).await.is_ok();
                // Under stream management it is kept, written or not.
                if let (Some(id), true) = (sm.wrote(xml, offline_id, queued), written) {
                    delivered.push(id);
                }
                if !written {
                    return Some(End::Gone);
                }
            }
            Outbound::Close(xml) => {
                closing = Some(xml);
                break;
            }
        }
        next = if sm.has_room() { rx.try_recv().ok() } else { None };
    }
    if let Some(r) = sm.ask() {
        if stream.write(&r).await.is_err() {
            return Some(End::Gone);
        }
    }
    if stream.flush().await.is_err() {
        return Some(End::Gone);
    }
    delete_offline(c2s, delivered).await;
    closing.map(End::Close)
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
