//! Server-to-server links (RFC 6120, XEP-0178): one outgoing connection per
//! pair of local and remote domain that we open, one incoming connection per
//! domain that opens to us. Both use mutual TLS; the peer is authenticated
//! with SASL EXTERNAL as the domain named in its certificate, which must
//! equal the stream's `from`. The local domains are the server's own and
//! those of its external components (a component's stanzas to another site
//! travel on a link from the component's domain, as in RFC 6120 §4.2, so
//! the certificate names the component domains too).
//!
//! The peer's certificate is checked by `trust::TrustStore::authenticate_server`
//! in both directions: a server's certificate (serverAuth) of a trusted CA,
//! naming the peer's domain, not revoked in a current CRL of its CA. No
//! peer may claim one of our own domains. When a new CRL is put in force,
//! every link checks its peer again and a revoked one is closed with
//! `<reset/>`. A replica whose revocation status is unknown (no current
//! CRL) still takes its master's link, for key directory pushes only, so
//! that the master's next push can bring it a current CRL.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::ServerName;
use snow_xml::{
    initiator, stream_error_xml, Element, Framed, FramedError, Limits, PeerError, StreamEvent, StreamHeader, NS_CLIENT,
    NS_SASL, NS_SERVER, NS_TLS,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use super::{gone, refuse, Accepting, Deadline, Step};
use crate::config::S2sSettings;
use crate::limits::{ConnectionSlot, RateLimiter, Verdict};
use crate::routing::{Origin, RemoteLinks, Router};
use crate::trust::{AuthError, CertRef, Count, PeerSide, TrustStore};
use snow_xml::stanza::{error_reply, is_reply, Condition};

/// An outgoing link's (local domain, remote domain).
type Pair = (String, String);

/// The outgoing links, by local and remote domain.
pub(crate) struct Links {
    cx: Arc<Outgoing>,
    queues: Arc<Queues>,
}

type Queues = Mutex<HashMap<Pair, mpsc::Sender<Element>>>;

/// The key directory's namespace (docs/architecture.md §6): all a
/// provisional link from the master may carry.
const NS_KEYS: &str = "urn:snow:keys:1";

/// What an outgoing link needs.
struct Outgoing {
    connector: TlsConnector,
    trust: Arc<TrustStore>,
    /// For `_xmpp-server._tcp` SRV records; `None` if the system's DNS
    /// configuration could not be read (then only routes and A/AAAA work).
    resolver: Option<hickory_resolver::TokioResolver>,
    settings: S2sSettings,
    limits: Limits,
    /// Each negotiation step's time limit.
    timeout: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Links {
    pub fn new(
        connector: TlsConnector,
        trust: Arc<TrustStore>,
        settings: S2sSettings,
        limits: Limits,
        timeout: Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let resolver = match hickory_resolver::TokioResolver::builder_tokio().and_then(|b| b.build()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver: s2s uses static routes and DOMAIN:5269 only");
                None
            }
        };
        let cx = Arc::new(Outgoing { connector, trust, resolver, settings, limits, timeout, shutdown });
        Links { cx, queues: Arc::default() }
    }
}

impl RemoteLinks for Links {
    /// Queues `el` (in `jabber:client` form) for `domain`, starting the
    /// link if there is none. A stanza from one of our components goes on
    /// a link from the component's domain, anything else on one from ours.
    /// A full queue bounces the stanza at once.
    fn send(&self, router: &Arc<Router>, domain: &str, el: Element) {
        let local = el
            .attr("from")
            .and_then(crate::addr::Addr::parse)
            .map(|a| a.domain)
            .filter(|d| router.components.is_component(d))
            .unwrap_or_else(|| router.domain().to_owned());
        let pair = (local, domain.to_owned());
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let tx = map.entry(pair.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.cx.settings.queue);
            let task = link_task(Arc::clone(&self.cx), Arc::clone(&self.queues), Arc::clone(router), pair.clone(), rx);
            tokio::spawn(task);
            tx
        });
        match tx.try_send(el) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(el)) => {
                drop(map);
                let text = "too many stanzas waiting for that server";
                bounce(router, el, Condition::ResourceConstraint, text);
            }
            Err(mpsc::error::TrySendError::Closed(el)) => {
                map.remove(&pair);
                drop(map);
                self.send(router, domain, el);
            }
        }
    }
}

/// Hands an undeliverable stanza back to routing as an error for its
/// sender (none for errors and results). The error is built here, so the
/// task that routes it holds only the small error, not the stanza.
fn bounce(router: &Arc<Router>, el: Element, condition: Condition, text: &str) {
    if is_reply(&el) {
        return;
    }
    let err = error_reply(&el, condition, Some(text));
    drop(el);
    let router = Arc::clone(router);
    tokio::spawn(async move { router.route(Origin::Server, err).await });
}

/// Where to connect for `domain`, best first: the static route if there is
/// one, else the `_xmpp-server._tcp` SRV targets (RFC 6120 §3.2.1, by
/// priority, then weight), else `domain:5269`.
async fn targets(cx: &Outgoing, domain: &str) -> Result<Vec<String>, String> {
    if let Some(route) = cx.settings.routes.get(domain) {
        return Ok(vec![route.clone()]);
    }
    let mut out = Vec::new();
    if let Some(resolver) = &cx.resolver {
        if let Ok(lookup) = resolver.srv_lookup(format!("_xmpp-server._tcp.{domain}.")).await {
            let mut srvs: Vec<_> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::SRV(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            // RFC 2782: a lone "." target says the service is not offered.
            if srvs.len() == 1 && srvs[0].target.is_root() {
                return Err(format!("{domain} does not accept server-to-server connections"));
            }
            srvs.sort_by_key(|s| (s.priority, std::cmp::Reverse(s.weight)));
            out.extend(srvs.iter().map(|s| format!("{}:{}", s.target.to_utf8().trim_end_matches('.'), s.port)));
        }
    }
    if out.is_empty() {
        out.push(format!("{domain}:5269"));
    }
    Ok(out)
}

/// Drives one outgoing link: connects when there is something to send,
/// sends, reconnects after a failure, bounces what cannot be sent in time,
/// and closes when idle.
async fn link_task(
    cx: Arc<Outgoing>,
    queues: Arc<Queues>,
    router: Arc<Router>,
    pair: Pair,
    mut rx: mpsc::Receiver<Element>,
) {
    let (local, domain) = (&pair.0, &pair.1);
    let mut shutdown = cx.shutdown.clone();
    let mut crls = cx.trust.subscribe();
    let s2s = &cx.settings;
    let connect_timeout = Duration::from_secs(s2s.connect_timeout_secs);
    let idle = Duration::from_secs(s2s.idle_timeout_secs.max(1));
    let mut pending: VecDeque<Element> = VecDeque::new();
    // Failures since the link was last up: the first is said at info (a
    // peer that is not up yet, e.g. a site restarted before its lab
    // server; the next stanza for it connects again), a failure that
    // lasts at warn.
    let mut failing = Failing::default();
    loop {
        if pending.is_empty() {
            match tokio::time::timeout(idle, rx.recv()).await {
                Ok(Some(el)) => pending.push_back(el),
                Ok(None) => return,
                Err(_) => {
                    // Idle: retire this link, handing on anything that raced in.
                    queues.lock().unwrap_or_else(|p| p.into_inner()).remove(&pair);
                    rx.close();
                    while let Ok(el) = rx.try_recv() {
                        router.route(Origin::Server, el).await;
                    }
                    return;
                }
            }
        }
        // At most [s2s] max_outbound_attempts links connect at once; the
        // wait for a slot counts against the connect timeout.
        let attempt = async {
            let _slot = router.connect_permit().await;
            connect(&cx, local, domain).await
        };
        let (mut link, cert) = match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(Ok(link)) => link,
            Ok(Err(why)) => {
                failing.log(domain, &why);
                drain_and_bounce(&router, &mut pending, &mut rx, Condition::RemoteServerNotFound, &why);
                continue;
            }
            Err(_) => {
                failing.log(domain, "the remote server did not answer in time");
                drain_and_bounce(
                    &router,
                    &mut pending,
                    &mut rx,
                    Condition::RemoteServerTimeout,
                    "the remote server did not answer in time",
                );
                continue;
            }
        };
        tracing::info!(%local, %domain, "s2s link up");
        failing = Failing::default();
        crls.borrow_and_update();
        // Send until the link breaks or goes idle.
        'up: loop {
            while let Some(el) = pending.front() {
                let mut copy = el.clone();
                copy.rename_ns_deep(NS_CLIENT, NS_SERVER);
                // A peer that stops reading is left after the idle time.
                match tokio::time::timeout(idle, link.send(&copy.to_xml(NS_SERVER))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(%domain, error = %e, "s2s link broke; reconnecting");
                        break 'up;
                    }
                    Err(_) => {
                        tracing::warn!(%domain, "s2s peer stopped reading; reconnecting");
                        break 'up;
                    }
                }
                pending.pop_front();
            }
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = link.send("</stream:stream>").await;
                    return;
                }
                el = rx.recv() => match el {
                    Some(el) => pending.push_back(el),
                    None => { let _ = link.send("</stream:stream>").await; return; }
                },
                Ok(()) = crls.changed() => {
                    if cx.trust.is_revoked(&cert) {
                        let n = cx.trust.count(Count::ClosedS2s);
                        tracing::warn!(
                            %domain, serial = %cert.serial_hex(), closed = n,
                            "outgoing s2s link closed: the peer's certificate is revoked in the new CRL"
                        );
                        let _ = link.send(&stream_error_xml("reset", "your certificate has been revoked")).await;
                        let _ = tokio::io::AsyncWriteExt::shutdown(link.get_mut()).await;
                        break 'up;
                    }
                }
                ev = link.next_event(idle) => match ev {
                    // The peer sends nothing on our link but errors or the close.
                    Ok(StreamEvent::Stanza(_)) => {}
                    Err(FramedError::Timeout(_)) => {
                        let _ = link.send("</stream:stream>").await;
                        break 'up;
                    }
                    _ => break 'up,
                },
            }
        }
    }
}

/// How long an outgoing link may keep failing before it is a warning.
const PERSISTENT_FAILURE: Duration = Duration::from_secs(30);

/// The failures of one outgoing link since it was last up, for the log:
/// one info line for the first (it may just not be up yet), a warning once
/// it has failed for [`PERSISTENT_FAILURE`], and then at the 2nd, 4th, 8th…
/// failure, not at every stanza that tries again.
#[derive(Debug, Default)]
struct Failing {
    count: u32,
    since: Option<std::time::Instant>,
    warned: bool,
}

impl Failing {
    fn log(&mut self, domain: &str, why: &str) {
        self.count += 1;
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        let lasting = since.elapsed() >= PERSISTENT_FAILURE;
        if self.count == 1 {
            tracing::info!(%domain, why, "s2s link failed; will retry when there is more to send");
        } else if lasting && (!self.warned || self.count.is_power_of_two()) {
            self.warned = true;
            let secs = since.elapsed().as_secs();
            tracing::warn!(%domain, why, failures = self.count, secs, "s2s link keeps failing");
        } else {
            tracing::debug!(%domain, why, failures = self.count, "s2s link failed again");
        }
    }
}

fn drain_and_bounce(
    router: &Arc<Router>,
    pending: &mut VecDeque<Element>,
    rx: &mut mpsc::Receiver<Element>,
    condition: Condition,
    text: &str,
) {
    while let Ok(el) = rx.try_recv() {
        pending.push_back(el);
    }
    for el in pending.drain(..) {
        bounce(router, el, condition, text);
    }
}

type Link = Framed<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens and authenticates an outgoing link from `local` (our domain or a
/// component's) to `domain`; returns it with the peer's certificate.
async fn connect(cx: &Outgoing, local: &str, domain: &str) -> Result<(Link, CertRef), String> {
    let ours = local.to_owned();
    let t = cx.timeout;
    let mut tcp = None;
    let mut tried = Vec::new();
    'targets: for target in targets(cx, domain).await? {
        let Ok(addrs) = tokio::net::lookup_host(&target).await else {
            tried.push(format!("{target} (no address)"));
            continue;
        };
        for a in addrs {
            if let Ok(s) = TcpStream::connect(a).await {
                tcp = Some(s);
                break 'targets;
            }
        }
        tried.push(target);
    }
    let tcp = tcp.ok_or_else(|| format!("cannot connect to {}", tried.join(", ")))?;
    let _ = tcp.set_nodelay(true);
    let limits = cx.limits;
    let header = StreamHeader {
        from: Some(ours.clone()),
        to: Some(domain.to_owned()),
        version: Some("1.0".into()),
        ..Default::default()
    };
    let mut f = Framed::new(tcp, limits);
    let (_, features) = initiator::open(&mut f, &header, NS_SERVER, t).await.map_err(|e| e.to_string())?;
    if !features.offers_starttls() {
        return Err("the remote server does not offer STARTTLS".into());
    }
    initiator::starttls(&mut f, t).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(domain.to_owned()).map_err(|e| e.to_string())?;
    let tls = cx.connector.connect(name, f.into_inner()).await.map_err(|e| tls_words(&e))?;
    // rustls checked the chain and the name; the role and revocation (the
    // CRL in force now) are checked here.
    let certs: Vec<_> = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
    let cert = cx
        .trust
        .authenticate_server(&certs, domain, PeerSide::Receiving)
        .map_err(|e| format!("the remote server's certificate is refused: {e}"))?;
    let mut f = Framed::new(tls, limits);
    let (_, features) = initiator::open(&mut f, &header, NS_SERVER, t).await.map_err(|e| e.to_string())?;
    if !features.offers_mechanism("EXTERNAL") {
        return Err("the remote server does not offer SASL EXTERNAL (does it trust our CA?)".into());
    }
    // XEP-0178: the authorization identity is the domain the link is from.
    match initiator::authenticate(&mut f, "EXTERNAL", ours.as_bytes(), t).await {
        Ok(()) => {}
        Err(PeerError::AuthFailed { condition, .. }) => {
            return Err(format!("the remote server refused our certificate (<{condition}>)"))
        }
        Err(e) => return Err(e.to_string()),
    }
    initiator::open(&mut f, &header, NS_SERVER, t).await.map_err(|e| e.to_string())?;
    Ok((f, cert))
}

/// A failed TLS handshake in words, for the log and the bounce.
fn tls_words(e: &std::io::Error) -> String {
    let peer = snow_crypto::tls_words::Peer {
        name: "the remote server",
        trusted: "a CA this server trusts ([s2s] trusted_cas)",
    };
    snow_crypto::tls_words::handshake_failure(e, &peer)
}

/// What incoming links need.
pub(crate) struct Incoming {
    pub accepting: Accepting,
    pub trust: Arc<TrustStore>,
    pub router: Arc<Router>,
    /// Seconds an incoming link may stay silent (twice the peer's idle time).
    pub idle: Duration,
    /// On a replica: the master, whose link is taken for key pushes only
    /// while revocation status is unknown.
    pub master: Option<String>,
    /// Stanzas per peer domain (`[s2s] stanza_rate`).
    pub peers: RateLimiter,
}

/// An incoming link from another server: TLS within the TLS deadline and
/// SASL within the authentication deadline of accept, then the link.
pub(crate) async fn run_incoming(s2s: Arc<Incoming>, tcp: TcpStream, peer: SocketAddr, mut slot: ConnectionSlot) {
    let accepted = tokio::time::Instant::now();
    let a = &s2s.accepting;
    let result = match a.by(accepted, Deadline::Auth, negotiate(&s2s, tcp, accepted)).await {
        Ok(link) => {
            slot.authenticated();
            serve_incoming(&s2s, link).await
        }
        Err(e) => Err(e),
    };
    super::log_end("incoming s2s link", peer, result);
}

/// An authenticated incoming link, before it carries stanzas.
struct IncomingLink {
    f: Framed<tokio_rustls::server::TlsStream<TcpStream>>,
    claimed: String,
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    cert: Option<CertRef>,
    /// A replica's master taken while revocation status is unknown: key
    /// directory pushes only.
    provisional: bool,
}

/// STARTTLS, then the handshake (by the TLS deadline).
async fn incoming_tls(s2s: &Incoming, tcp: TcpStream) -> Step<tokio_rustls::server::TlsStream<TcpStream>> {
    let a = &s2s.accepting;
    let components = Some(&s2s.router.components);
    let mut f = Framed::new(tcp, a.limits);
    let first = a
        .open_stream(&mut f, NS_SERVER, &format!("<starttls xmlns='{NS_TLS}'><required/></starttls>"), components)
        .await?;
    if let Some(ours) = first.from.as_deref().filter(|d| is_ours(s2s, d)) {
        return Err(claims_ours(&mut f, ours).await);
    }
    let el = a.next_element(&mut f).await?;
    if !el.is(NS_TLS, "starttls") {
        return Err(refuse(&mut f, &stream_error_xml("policy-violation", "STARTTLS is required"), "no STARTTLS").await);
    }
    f.send(&format!("<proceed xmlns='{NS_TLS}'/>")).await.map_err(gone)?;
    a.tls_accept(f.into_inner()).await
}

async fn negotiate(s2s: &Incoming, tcp: TcpStream, accepted: tokio::time::Instant) -> Step<IncomingLink> {
    let a = &s2s.accepting;
    let components = Some(&s2s.router.components);
    let tls = a.by(accepted, Deadline::Tls, incoming_tls(s2s, tcp)).await?;
    let certs = super::peer_certificates(&tls);
    let mut f = Framed::new(tls, a.limits);
    let mechanisms = format!("<mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>");
    let header = a.open_stream(&mut f, NS_SERVER, &mechanisms, components).await?;
    let Some(claimed) = header.from.map(|d| d.to_ascii_lowercase()) else {
        return Err(
            refuse(&mut f, &stream_error_xml("invalid-from", "a server stream needs a 'from'"), "no from").await
        );
    };
    if is_ours(s2s, &claimed) {
        return Err(claims_ours(&mut f, &claimed).await);
    }
    let failure = |cond: &str| format!("<failure xmlns='{NS_SASL}'><{cond}/></failure></stream:stream>");
    let auth = a.next_element(&mut f).await?;
    if !auth.is(NS_SASL, "auth") || auth.attr("mechanism") != Some("EXTERNAL") {
        return Err(refuse(&mut f, &failure("invalid-mechanism"), "not EXTERNAL").await);
    }
    let text = auth.text();
    let authzid = match text.trim() {
        "" | "=" => None,
        t => base64::engine::general_purpose::STANDARD.decode(t).ok().and_then(|b| String::from_utf8(b).ok()),
    };
    if authzid.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case(&claimed)) {
        return Err(refuse(&mut f, &failure("invalid-authzid"), "authzid differs from 'from'").await);
    }
    let mut provisional = false;
    let cert = match s2s.trust.authenticate_server(&certs, &claimed, PeerSide::Initiating) {
        Ok(cert) => Some(cert),
        Err(AuthError::StatusUnknown(p)) if s2s.master.as_deref() == Some(claimed.as_str()) => {
            tracing::warn!(
                domain = %claimed,
                "revocation status unknown ({p}): the master's link is taken for key directory pushes only, \
                 until its push brings a current CRL"
            );
            provisional = true;
            None
        }
        Err(e) => {
            tracing::warn!(domain = %claimed, reason = %e, "s2s peer refused");
            return Err(refuse(&mut f, &failure("not-authorized"), "peer certificate refused").await);
        }
    };
    f.send(&format!("<success xmlns='{NS_SASL}'/>")).await.map_err(gone)?;
    f.reset();
    a.open_stream(&mut f, NS_SERVER, "", components).await?;
    tracing::info!(domain = %claimed, "incoming s2s link authenticated");
    Ok(IncomingLink { f, claimed, certs, cert, provisional })
}

/// Takes an authenticated peer's stanzas, at its rate, until it closes or
/// its certificate is revoked.
async fn serve_incoming(s2s: &Incoming, link: IncomingLink) -> Step<String> {
    let IncomingLink { mut f, claimed, certs, mut cert, mut provisional } = link;
    let a = &s2s.accepting;
    let mut shutdown = a.shutdown.clone();
    let mut crls = s2s.trust.subscribe();
    // A CRL put in force since the check above.
    crls.mark_changed();
    loop {
        if *shutdown.borrow() {
            let _ =
                refuse(&mut f, &stream_error_xml("system-shutdown", "the server is shutting down"), "shutdown").await;
            return Ok(claimed);
        }
        let ev = tokio::select! {
            _ = shutdown.changed() => continue,
            Ok(()) = crls.changed() => {
                let revoked = cert.as_ref().is_some_and(|c| s2s.trust.is_revoked(c));
                let now = if revoked {
                    Err(AuthError::Revoked)
                } else if provisional {
                    s2s.trust.authenticate_server(&certs, &claimed, PeerSide::Initiating).map(Some)
                } else {
                    Ok(cert.clone())
                };
                match now {
                    Ok(c) => {
                        if provisional {
                            tracing::info!(domain = %claimed, "the master's link is fully authenticated now");
                        }
                        provisional = false;
                        cert = c;
                    }
                    Err(AuthError::StatusUnknown(_)) if provisional => {}
                    Err(e) => {
                        let n = s2s.trust.count(Count::ClosedS2s);
                        tracing::warn!(domain = %claimed, reason = %e, closed = n, "incoming s2s link closed");
                        let xml = stream_error_xml("reset", "your certificate has been revoked");
                        return Err(refuse(&mut f, &xml, "peer certificate revoked").await);
                    }
                }
                continue;
            }
            ev = f.next_event(s2s.idle) => ev,
        };
        match ev {
            Ok(StreamEvent::Stanza(mut el)) => {
                if el.ns() != NS_SERVER || !matches!(el.name(), "message" | "presence" | "iq") {
                    continue;
                }
                match s2s.peers.check(&claimed) {
                    Verdict::Pass => {}
                    Verdict::Refuse => {
                        let from_ok =
                            el.attr("from").and_then(crate::addr::Addr::parse).is_some_and(|a| a.domain == claimed);
                        if from_ok && !is_reply(&el) {
                            el.rename_ns_deep(NS_SERVER, NS_CLIENT);
                            let text = "too many stanzas from your server; slow down";
                            let err = error_reply(&el, Condition::PolicyViolation, Some(text));
                            s2s.router.reply(&Origin::Remote(claimed.clone()), err);
                        }
                        continue;
                    }
                    Verdict::Disconnect => {
                        let xml =
                            stream_error_xml("policy-violation", "too many stanzas from your server for too long");
                        return Err(refuse(&mut f, &xml, "over its stanza rate").await);
                    }
                }
                let key_push =
                    el.name() == "iq" && el.attr("type") == Some("set") && el.child(NS_KEYS, "update").is_some();
                if provisional && !key_push {
                    tracing::debug!(domain = %claimed, "stanza dropped: the link takes key directory pushes only");
                    continue;
                }
                let from_ok = el.attr("from").and_then(crate::addr::Addr::parse).is_some_and(|a| a.domain == claimed);
                if !from_ok {
                    return Err(refuse(
                        &mut f,
                        &stream_error_xml("invalid-from", "the 'from' is not of your domain"),
                        "invalid from",
                    )
                    .await);
                }
                el.rename_ns_deep(NS_SERVER, NS_CLIENT);
                Box::pin(s2s.router.submit(Origin::Remote(claimed.clone()), el)).await;
            }
            Ok(StreamEvent::End) => {
                let _ = f.send("</stream:stream>").await;
                return Ok(claimed);
            }
            Ok(StreamEvent::Header(_)) => {
                return Err(refuse(&mut f, &stream_error_xml("bad-format", "unexpected restart"), "restart").await);
            }
            Err(FramedError::Xml(e)) => {
                return Err(refuse(&mut f, &stream_error_xml(e.condition.name(), &e.detail), &e.to_string()).await);
            }
            Err(e) => return Err(gone(e)),
        }
    }
}

/// True if `domain` is ours: this server's or one of its components'.
fn is_ours(s2s: &Incoming, domain: &str) -> bool {
    let d = domain.to_ascii_lowercase();
    d == s2s.router.domain() || s2s.router.components.is_component(&d)
}

/// Refuses a peer that claims one of our own domains.
async fn claims_ours<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    domain: &str,
) -> super::Refused {
    tracing::warn!(domain, "s2s peer refused: it claims one of this server's own domains");
    refuse(f, &stream_error_xml("invalid-from", "that domain is served here"), "claims our own domain").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || out.clone()).finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&text).into_owned()
    }

    /// A peer not up yet (the README's restarted PO before its lab server)
    /// is an info line saying it will be tried again; a warning only once
    /// the link has failed for a while, and not at every attempt.
    #[test]
    fn a_first_failure_is_info_and_a_lasting_one_a_warning() {
        let why = "cannot connect to 127.0.0.1:5369";
        let mut failing = Failing::default();
        let log = logged(|| {
            failing.log("lab.example", why);
            failing.log("lab.example", why);
        });
        assert!(log.contains(" INFO ") && log.contains("s2s link failed; will retry"), "{log}");
        assert!(!log.contains("WARN"), "{log}");

        failing.since = std::time::Instant::now().checked_sub(PERSISTENT_FAILURE);
        // Failures 3 to 7: a warning at the first that lasts, then at 4
        // (and 8, 16, …), not at each.
        let log = logged(|| {
            for _ in 3..=7 {
                failing.log("lab.example", why);
            }
        });
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 2, "{log}");
        assert!(warnings[0].contains("s2s link keeps failing") && warnings[0].contains("failures=3"), "{log}");
        assert!(warnings[1].contains("failures=4"), "{log}");
    }
}
