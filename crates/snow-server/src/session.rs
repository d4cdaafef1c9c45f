//! One client connection: stream negotiation (STARTTLS, SASL EXTERNAL,
//! bind), then the bound session's reader loop and writer task.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::CertificateDer;
use snow_xml::{
    stream_error_xml, Element, Framed, FramedError, StreamEvent, StreamHeader, StreamParser, NS_BIND, NS_CLIENT,
    NS_SASL, NS_SERVER, NS_SESSION, NS_TLS,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::limits::TokenBucket;
use crate::router::{Outbound, SessionHandle};
use crate::server::Shared;
use crate::services;

/// How a connection ended before binding, for the log.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Closed quietly (EOF, timeout, network error).
    Gone(String),
    /// We sent the closing bytes already.
    Answered(String),
}

pub(crate) type Step<T> = Result<T, Refused>;

pub(crate) async fn run_starttls(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    match starttls_then_login(&shared, tcp).await {
        Ok(()) => {}
        Err(Refused::Gone(why)) => tracing::debug!(%peer, why, "connection ended before login"),
        Err(Refused::Answered(why)) => tracing::info!(%peer, why, "connection refused"),
    }
}

pub(crate) async fn run_direct_tls(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let result = match tls_accept(&shared, tcp).await {
        Ok(tls) => login(&shared, tls).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {}
        Err(Refused::Gone(why)) => tracing::debug!(%peer, why, "connection ended before login"),
        Err(Refused::Answered(why)) => tracing::info!(%peer, why, "connection refused"),
    }
}

pub(crate) fn gone(e: FramedError) -> Refused {
    Refused::Gone(e.to_string())
}

/// Sends `xml`, then reports the connection as refused for `why`.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(f: &mut Framed<S>, xml: &str, why: &str) -> Refused {
    let _ = f.send(xml).await;
    let _ = f.get_mut().shutdown().await;
    Refused::Answered(why.to_owned())
}

/// Reads the peer's stream header and answers with ours and `features`.
pub(crate) async fn open_stream<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    f: &mut Framed<S>,
    ns: &str,
    features: &str,
) -> Step<StreamHeader> {
    let timeout = shared.config.negotiation_timeout();
    let domain = shared.config.domain.as_str();
    let ours = |host: &str, to: Option<String>| StreamHeader {
        from: Some(host.to_owned()),
        to,
        id: snow_crypto::one_time_password::random_hex(12).ok(),
        version: Some("1.0".into()),
        lang: Some("en".into()),
    };
    let header = match f.next_event(timeout).await {
        Ok(StreamEvent::Header(h)) => h,
        Ok(_) => {
            return Err(refuse(
                f,
                &format!(
                    "{}{}",
                    ours(domain, None).to_xml(ns),
                    stream_error_xml("bad-format", "expected a stream header")
                ),
                "no stream header",
            )
            .await)
        }
        Err(FramedError::Xml(e)) => {
            let xml = format!("{}{}", ours(domain, None).to_xml(ns), stream_error_xml(e.condition.name(), &e.detail));
            return Err(refuse(f, &xml, &e.to_string()).await);
        }
        Err(e) => return Err(gone(e)),
    };
    // Over s2s, the domains of our components are served here too.
    let to = header.to.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
    let host =
        if to == domain || (ns == NS_SERVER && shared.components.is_component(&to)) { to } else { String::new() };
    if host.is_empty() {
        let xml = format!(
            "{}{}",
            ours(domain, None).to_xml(ns),
            stream_error_xml("host-unknown", "this server serves another domain")
        );
        return Err(refuse(f, &xml, "wrong 'to' domain").await);
    }
    if header.version.as_deref() != Some("1.0") {
        let xml = format!(
            "{}{}",
            ours(domain, None).to_xml(ns),
            stream_error_xml("unsupported-version", "XMPP 1.0 is required")
        );
        return Err(refuse(f, &xml, "not XMPP 1.0").await);
    }
    let from = header.from.clone().filter(|f| crate::addr::Addr::parse(f).is_some());
    let xml = format!("{}<stream:features>{features}</stream:features>", ours(&host, from).to_xml(ns));
    f.send(&xml).await.map_err(|e| Refused::Gone(e.to_string()))?;
    Ok(header)
}

/// The next first-level element, or the right stream error.
pub(crate) async fn next_element<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    f: &mut Framed<S>,
) -> Step<Element> {
    match f.next_event(shared.config.negotiation_timeout()).await {
        Ok(StreamEvent::Stanza(el)) => Ok(el),
        Ok(StreamEvent::End) => Err(refuse(f, "</stream:stream>", "closed by peer").await),
        Ok(StreamEvent::Header(_)) => {
            Err(refuse(f, &stream_error_xml("bad-format", "unexpected stream restart"), "restart").await)
        }
        Err(FramedError::Xml(e)) => {
            Err(refuse(f, &stream_error_xml(e.condition.name(), &e.detail), &e.to_string()).await)
        }
        Err(e) => Err(gone(e)),
    }
}

async fn starttls_then_login(shared: &Arc<Shared>, tcp: TcpStream) -> Step<()> {
    let mut f = Framed::new(tcp, shared.config.limits());
    open_stream(shared, &mut f, NS_CLIENT, &format!("<starttls xmlns='{NS_TLS}'><required/></starttls>")).await?;
    let el = next_element(shared, &mut f).await?;
    if el.is(NS_SASL, "auth") {
        // Never authenticate over plaintext (RFC 6120 §5.3.1).
        let xml = format!("<failure xmlns='{NS_SASL}'><encryption-required/></failure></stream:stream>");
        return Err(refuse(&mut f, &xml, "plaintext login attempt").await);
    }
    if !el.is(NS_TLS, "starttls") {
        let xml = stream_error_xml("policy-violation", "STARTTLS is required before anything else");
        return Err(refuse(&mut f, &xml, "no STARTTLS").await);
    }
    f.send(&format!("<proceed xmlns='{NS_TLS}'/>")).await.map_err(|e| Refused::Gone(e.to_string()))?;
    let tls = tls_accept(shared, f.into_inner()).await?;
    login(shared, tls).await
}

pub(crate) async fn tls_accept(shared: &Shared, tcp: TcpStream) -> Step<TlsStream<TcpStream>> {
    let limit = Duration::from_secs(shared.config.settings.tls_handshake_timeout_secs.max(1));
    match tokio::time::timeout(limit, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(Refused::Gone(format!("TLS handshake failed: {e}"))),
        Err(_) => Err(Refused::Gone("TLS handshake timed out".into())),
    }
}

/// SASL EXTERNAL, then resource binding, then the bound session.
async fn login(shared: &Arc<Shared>, tls: TlsStream<TcpStream>) -> Step<()> {
    let certs: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let mut f = Framed::new(tls, shared.config.limits());
    open_stream(
        shared,
        &mut f,
        NS_CLIENT,
        &format!("<mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"),
    )
    .await?;
    let auth = next_element(shared, &mut f).await?;
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
    let jid = match shared.trust.authenticate(&certs, &shared.config.domain, authzid.as_deref()) {
        Ok(jid) => jid,
        Err(e) => {
            tracing::warn!(reason = %e, "certificate login refused");
            return Err(refuse(&mut f, &failure("not-authorized"), "certificate refused").await);
        }
    };
    f.send(&format!("<success xmlns='{NS_SASL}'/>")).await.map_err(|e| Refused::Gone(e.to_string()))?;
    f.reset();

    open_stream(
        shared,
        &mut f,
        NS_CLIENT,
        &format!("<bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'><optional/></session>"),
    )
    .await?;
    let bare = jid.to_string();
    let (full, bind_iq) = loop {
        let iq = next_element(shared, &mut f).await?;
        if !iq.is(NS_CLIENT, "iq") || iq.attr("type") != Some("set") {
            return Err(refuse(
                &mut f,
                &stream_error_xml("not-authorized", "bind a resource first"),
                "stanza before bind",
            )
            .await);
        }
        let Some(bind) = iq.child(NS_BIND, "bind") else {
            let err = snow_xml::stanza::error_reply(&iq, "not-allowed", Some("bind a resource first"));
            f.send(&err.to_xml(NS_CLIENT)).await.map_err(|e| Refused::Gone(e.to_string()))?;
            continue;
        };
        let wanted = bind.child(NS_BIND, "resource").map(|r| r.text()).unwrap_or_default();
        let resource = if wanted.trim().is_empty() {
            snow_crypto::one_time_password::random_hex(8).unwrap_or_else(|_| "snow".into())
        } else if wanted.len() > 256 || wanted.chars().any(char::is_control) {
            let err =
                snow_xml::stanza::error_reply(&iq, "bad-request", Some("resource too long or with control characters"));
            f.send(&err.to_xml(NS_CLIENT)).await.map_err(|e| Refused::Gone(e.to_string()))?;
            continue;
        } else {
            wanted.trim().to_owned()
        };
        break (format!("{bare}/{resource}"), iq);
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let account = bare.clone();
    if let Err(e) = shared.db(move |db| db.add_account(&account, now)).await {
        tracing::error!(error = %e, "cannot record account");
        return Err(refuse(&mut f, &stream_error_xml("internal-server-error", ""), "database").await);
    }
    let mut result = Element::new(NS_CLIENT, "iq").with_attr("type", "result");
    if let Some(id) = bind_iq.attr("id") {
        result.set_attr("id", id);
    }
    result.push_child(Element::new(NS_BIND, "bind").with_child(Element::new(NS_BIND, "jid").with_text(full.clone())));
    f.send(&result.to_xml(NS_CLIENT)).await.map_err(|e| Refused::Gone(e.to_string()))?;
    tracing::info!(jid = %full, "session bound");
    bound(Arc::clone(shared), f, bare, full).await;
    Ok(())
}

/// What ends a bound session.
pub(crate) enum End {
    /// Close with this stream error condition and text.
    StreamError(&'static str, String),
}

/// The bound session: a writer task drains the outbound queue to the
/// socket; this task reads, parses and handles stanzas.
async fn bound(shared: Arc<Shared>, f: Framed<TlsStream<TcpStream>>, bare: String, full: String) {
    let (io, parser, pending) = f.into_parts();
    let (rd, wr) = tokio::io::split(io);
    let (tx, rx) = mpsc::channel(shared.config.settings.outbound_queue);
    let handle = SessionHandle::new(bare, full, tx);
    shared.router.register(Arc::clone(&handle));
    let writer = tokio::spawn(writer_task(Arc::clone(&shared), wr, rx));
    let killed = reader_loop(&shared, &handle, rd, parser, pending).await;
    shared.router.unregister(&handle);
    services::went_offline(&shared, &handle).await;
    if killed {
        writer.abort();
    } else {
        // Let the writer flush the goodbye, but not forever.
        let abort = writer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), writer).await.is_err() {
            abort.abort();
        }
    }
    tracing::info!(jid = %handle.full, "session ended");
}

/// Returns true if the session was killed (slow reader or replaced).
async fn reader_loop(
    shared: &Arc<Shared>,
    handle: &Arc<SessionHandle>,
    mut rd: ReadHalf<TlsStream<TcpStream>>,
    mut parser: StreamParser,
    mut events: VecDeque<StreamEvent>,
) -> bool {
    let s = &shared.config.settings;
    let idle = Duration::from_secs(s.idle_timeout_secs.max(1));
    let mut bucket = TokenBucket::new(s.stanza_rate, s.stanza_burst);
    let mut shutdown = shared.shutdown.clone();
    let mut buf = vec![0u8; 8192];
    let mut scratch = Vec::new();
    let close = |xml: String| {
        handle.send(Outbound::Close(xml));
    };
    loop {
        while let Some(ev) = events.pop_front() {
            match ev {
                StreamEvent::Stanza(el) => {
                    let wait = bucket.take();
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    if let Err(End::StreamError(cond, text)) = services::handle_stanza(shared, handle, el).await {
                        close(stream_error_xml(cond, &text));
                        return false;
                    }
                }
                StreamEvent::End => {
                    close("</stream:stream>".into());
                    return false;
                }
                StreamEvent::Header(_) => {
                    close(stream_error_xml("bad-format", "unexpected stream restart"));
                    return false;
                }
            }
        }
        if *shutdown.borrow() {
            close(stream_error_xml("system-shutdown", "the server is shutting down"));
            return false;
        }
        tokio::select! {
            biased;
            _ = handle.kill.notified() => return true,
            _ = shutdown.changed() => {
                close(stream_error_xml("system-shutdown", "the server is shutting down"));
                return false;
            }
            r = tokio::time::timeout(idle, rd.read(&mut buf)) => match r {
                Err(_) => {
                    close(stream_error_xml("connection-timeout", "idle for too long"));
                    return false;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(n)) => {
                    let result = parser.feed(&buf[..n], &mut scratch);
                    events.extend(scratch.drain(..));
                    if let Err(e) = result {
                        // Handle what came before the error, then close.
                        while let Some(StreamEvent::Stanza(el)) = events.pop_front() {
                            let _ = services::handle_stanza(shared, handle, el).await;
                        }
                        tracing::warn!(jid = %handle.full, error = %e, "stream error");
                        close(stream_error_xml(e.condition.name(), &e.detail));
                        return false;
                    }
                }
            }
        }
    }
}

async fn writer_task(shared: Arc<Shared>, mut wr: WriteHalf<TlsStream<TcpStream>>, mut rx: mpsc::Receiver<Outbound>) {
    while let Some(out) = rx.recv().await {
        match out {
            Outbound::Xml { xml, offline_id } => {
                if wr.write_all(xml.as_bytes()).await.is_err() {
                    return;
                }
                if (offline_id.is_some() || rx.is_empty()) && wr.flush().await.is_err() {
                    return;
                }
                if let Some(id) = offline_id {
                    // Written to the socket: only now may it leave the store.
                    if let Err(e) = shared.db(move |db| db.delete_offline(id)).await {
                        tracing::error!(error = %e, "cannot delete delivered offline message");
                    }
                }
            }
            Outbound::Close(xml) => {
                let _ = wr.write_all(xml.as_bytes()).await;
                let _ = wr.flush().await;
                let _ = wr.shutdown().await;
                return;
            }
        }
    }
}
