//! External components (XEP-0114): agents attached to this server under a
//! subdomain (`echo.po.example`). A component opens a
//! `jabber:component:accept` stream, proves the shared secret with the
//! handshake (hex SHA-1 of stream id ‖ secret), and then exchanges
//! stanzas for its domain. With `hmac = true` every stanza in both
//! directions carries a message-authentication tag (docs/architecture.md §6):
//! the server signs what it sends with its own source and verifies that
//! what arrives is signed by the component's declared source; a stanza
//! that fails is answered with `not-authorized`, logged and dropped.
//! With `confidential = true` as well, every stanza's content is also
//! encrypted both ways (`snow_crypto::msgauth::confidential`: AES-256-GCM,
//! the key derived from the same msgauth keys), so the plain-TCP link
//! shows only the stanzas' routing attributes; a clear stanza from such a
//! component, or a sealed one from a component without it, is refused the
//! same way, saying why.
//!
//! A component link presents no certificate (XEP-0114 has no TLS): the
//! shared secret of its `[[components]]` entry proves who it is. But an
//! agent running as a component has a certificate for its domain (the one
//! GPs encrypt to), listed in the key directory, and the link stands only
//! while that certificate does: the handshake is refused when the
//! directory lists it revoked, a CRL in force lists it, or its CA has no
//! current CRL (status unknown); a live link is closed with `<reset/>` when
//! a new CRL revokes it (`snow agent revoke`, here or pushed by the PO). A
//! component with no certificate in the directory has only its secret:
//! to keep it out, change or remove the secret (docs/architecture.md §4).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snow_crypto::msgauth::{self, KeyStore, Receiver, Sender};
use snow_xml::stanza::{error_reply, is_reply, Condition};
use snow_xml::{stream_error_xml, Element, Framed, FramedError, StreamEvent, StreamHeader, NS_CLIENT, NS_COMPONENT};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{gone, refuse, Accepting, Deadline, Refused, Step};
use crate::db::Db;
use crate::limits::{ConnectionSlot, RateLimiter, Verdict};
use crate::routing::{Origin, Router};
use crate::trust::{AuthError, Count, TrustStore};
use crate::ServerError;

/// A configured component and its message-authentication state, which
/// outlives connections (so a replay across a reconnect is still one).
pub(crate) struct Definition {
    secret: zeroize::Zeroizing<String>,
    /// `(signer for what we send, verifier for what it sends, its source)`.
    auth: Option<(Sender, Receiver, String)>,
}

/// Every configured component's secret and authentication state.
#[derive(Default)]
pub(crate) struct Components {
    defs: HashMap<String, Definition>,
}

impl Components {
    /// Reads the secrets and, if any component wants HMAC, the key store.
    pub(crate) fn load(config: &crate::ServerConfig) -> Result<Components, ServerError> {
        let mut defs = HashMap::new();
        let mut store: Option<Arc<KeyStore>> = None;
        // One replay window for all components, kept across restarts.
        let mut replay: Option<Arc<msgauth::ReplayState>> = None;
        for c in &config.components {
            let path = config.resolve(&c.secret_file);
            let secret = snow_core::files::read_limited(&path, 4096)
                .map_err(|e| ServerError::Config(format!("components: cannot read {}: {e}", path.display())))?;
            let secret = zeroize::Zeroizing::new(String::from_utf8_lossy(&secret).trim().to_owned());
            if secret.len() < 16 {
                return Err(ServerError::Config(format!(
                    "components: the secret in {} is shorter than 16 characters",
                    path.display()
                )));
            }
            let auth = if c.hmac {
                let s = match &store {
                    Some(s) => Arc::clone(s),
                    None => {
                        let path = config.resolve(&config.msgauth.keys);
                        let s = Arc::new(
                            KeyStore::load(&path, config.msgauth.overlap_secs)
                                .map_err(|e| ServerError::Config(format!("msgauth.keys: {e}")))?,
                        );
                        store = Some(Arc::clone(&s));
                        s
                    }
                };
                let ours = config.msgauth.source.clone().unwrap_or_else(|| config.domain.to_string());
                let theirs = c.source.clone().unwrap_or_else(|| c.domain.clone());
                if !s.knows(&theirs) {
                    return Err(ServerError::Config(format!("msgauth.keys has no key for source {theirs:?}")));
                }
                let sender = Sender::new(Arc::clone(&s), &ours)
                    .map_err(|e| ServerError::Config(format!("msgauth: {e} (this server signs as {ours:?})")))?
                    .confidential(c.confidential);
                let state = match &replay {
                    Some(r) => Arc::clone(r),
                    None => {
                        let path = msgauth::state_path(&config.resolve(&config.msgauth.keys), &ours);
                        let r = msgauth::ReplayState::open(&path, config.msgauth.window_secs)
                            .map_err(|e| ServerError::Config(format!("msgauth: {e}")))?;
                        Arc::clone(replay.insert(Arc::new(r)))
                    }
                };
                let receiver = Receiver::with_state(Arc::clone(&s), state).confidential(c.confidential);
                Some((sender, receiver, theirs))
            } else {
                None
            };
            defs.insert(c.domain.to_ascii_lowercase(), Definition { secret, auth });
        }
        Ok(Components { defs })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The configured domains (lower case).
    pub(crate) fn domains(&self) -> impl Iterator<Item = String> + '_ {
        self.defs.keys().cloned()
    }
}

/// What the component port needs.
pub(crate) struct ComponentPort {
    pub accepting: Accepting,
    pub components: Components,
    pub router: Arc<Router>,
    pub trust: Arc<TrustStore>,
    pub db: Db,
    pub idle: Duration,
    pub outbound_queue: usize,
    /// Stanzas per component (`[server] component_stanza_rate`).
    pub rate: RateLimiter,
}

/// Whether the component for `domain` may be attached: `Ok` when the key
/// directory has no certificate for it (its secret is its only
/// credential) or one that is valid there and in a current CRL. A
/// directory that cannot be read refuses (fail closed).
async fn standing(port: &ComponentPort, domain: &str) -> Result<(), AuthError> {
    let d = domain.to_owned();
    let entry = port.db.call(move |db| db.directory_entry(&d)).await.map_err(|e| {
        tracing::error!(%domain, error = %e, "cannot read the key directory: the component is refused");
        AuthError::Invalid("the key directory cannot be read".into())
    })?;
    match entry {
        None => Ok(()),
        Some(e) if !e.status.is_valid() => Err(AuthError::Revoked),
        Some(e) => port.trust.check_revocation_of(&e.der).map(|_| ()),
    }
}

/// A connection to the component port: the handshake within the
/// authentication deadline of accept, then the link.
pub(crate) async fn run(port: Arc<ComponentPort>, tcp: TcpStream, peer: SocketAddr, mut slot: ConnectionSlot) {
    let accepted = tokio::time::Instant::now();
    let result = match port.accepting.by(accepted, Deadline::Auth, handshake(&port, tcp)).await {
        Ok((f, domain)) => {
            slot.authenticated();
            serve(&port, f, domain).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(domain) => tracing::info!(%peer, %domain, "component disconnected"),
        Err(Refused::Gone(why)) => tracing::debug!(%peer, why, "component connection ended"),
        Err(Refused::Answered(why)) => tracing::warn!(%peer, why, "component refused"),
    }
}

/// The stream header and the handshake; the component's domain once its
/// secret is proven and its certificate stands.
async fn handshake(port: &ComponentPort, tcp: TcpStream) -> Step<(Framed<TcpStream>, String)> {
    let timeout = port.accepting.timeout;
    let mut f = Framed::new(tcp, port.accepting.limits);
    let id = snow_crypto::one_time_password::random_hex(16).map_err(|e| Refused::Gone(e.to_string()))?;
    let header = |from: Option<String>| {
        StreamHeader { from, id: Some(id.clone()), ..StreamHeader::default() }.to_xml(NS_COMPONENT)
    };
    let domain = match f.next_event(timeout).await {
        Ok(StreamEvent::Header(h)) => h.to.map(|d| d.to_ascii_lowercase()).unwrap_or_default(),
        Ok(_) => {
            return Err(refuse(
                &mut f,
                &format!("{}{}", header(None), stream_error_xml("bad-format", "expected a stream header")),
                "no header",
            )
            .await)
        }
        Err(e) => return Err(gone(e)),
    };
    let Some(def) = port.components.defs.get(&domain) else {
        let xml = format!("{}{}", header(None), stream_error_xml("host-unknown", "no such component here"));
        return Err(refuse(&mut f, &xml, "unknown component domain").await);
    };
    f.send(&header(Some(domain.clone()))).await.map_err(|e| Refused::Gone(e.to_string()))?;
    let proof = match f.next_event(timeout).await {
        Ok(StreamEvent::Stanza(el)) if el.is(NS_COMPONENT, "handshake") => el.text(),
        Ok(_) => {
            return Err(refuse(&mut f, &stream_error_xml("not-authorized", "handshake first"), "no handshake").await)
        }
        Err(e) => return Err(gone(e)),
    };
    if !snow_crypto::component_handshake::verify(&id, &def.secret, &proof) {
        return Err(refuse(&mut f, &stream_error_xml("not-authorized", "wrong handshake"), "wrong secret").await);
    }
    // Only after the secret: whoever does not know it learns nothing.
    if let Err(e) = standing(port, &domain).await {
        tracing::warn!(%domain, reason = %e, "component refused: its agent certificate does not stand");
        let text = match e {
            AuthError::Revoked => "this component's certificate has been revoked",
            _ => "this component's certificate cannot be checked now",
        };
        return Err(refuse(&mut f, &stream_error_xml("not-authorized", text), "certificate").await);
    }
    Ok((f, domain))
}

/// An authenticated component: attached to the component table while it
/// is connected.
async fn serve(port: &ComponentPort, mut f: Framed<TcpStream>, domain: String) -> Step<String> {
    let Some(def) = port.components.defs.get(&domain) else {
        return Err(Refused::Gone("no such component".into()));
    };
    let (tx, mut rx) = mpsc::channel::<Element>(port.outbound_queue);
    if !port.router.components.attach(&domain, tx) {
        return Err(
            refuse(&mut f, &stream_error_xml("conflict", "this component is already connected"), "duplicate").await
        );
    }
    f.send(&format!("<handshake xmlns='{NS_COMPONENT}'/>")).await.map_err(|e| Refused::Gone(e.to_string()))?;
    let confidential = def.auth.as_ref().is_some_and(|(s, _, _)| s.is_confidential());
    tracing::info!(%domain, hmac = def.auth.is_some(), confidential, "component connected");
    let result = pump(port, &domain, def, f, &mut rx).await;
    port.router.components.detach(&domain);
    result.map(|()| domain)
}

/// What woke the component's connection up.
enum Wake {
    Shutdown,
    /// A new CRL is in force.
    Crl,
    Out(Option<Element>),
    Read(Result<StreamEvent, FramedError>),
}

/// Moves stanzas both ways until the component goes away or its
/// certificate is revoked.
async fn pump(
    port: &ComponentPort,
    domain: &str,
    def: &Definition,
    mut f: Framed<TcpStream>,
    rx: &mut mpsc::Receiver<Element>,
) -> Step<()> {
    let mut shutdown = port.accepting.shutdown.clone();
    let mut crls = port.trust.subscribe();
    // A CRL put in force between the handshake and here.
    crls.mark_changed();
    loop {
        let wake = tokio::select! {
            _ = shutdown.changed() => Wake::Shutdown,
            Ok(()) = crls.changed() => Wake::Crl,
            out = rx.recv() => Wake::Out(out),
            ev = f.next_event(port.idle) => Wake::Read(ev),
        };
        match wake {
            Wake::Shutdown => {
                let _ = f.send(&stream_error_xml("system-shutdown", "the server is shutting down")).await;
                return Ok(());
            }
            Wake::Crl => {
                if let Err(AuthError::Revoked) = standing(port, domain).await {
                    let n = port.trust.count(Count::ClosedComponent);
                    tracing::warn!(%domain, closed = n, "component link closed: its certificate is revoked");
                    let _ = f.send(&stream_error_xml("reset", "this component's certificate has been revoked")).await;
                    return Err(Refused::Answered("certificate revoked".into()));
                }
            }
            Wake::Out(None) => return Ok(()),
            Wake::Out(Some(mut el)) => {
                el.rename_ns_deep(NS_CLIENT, NS_COMPONENT);
                if let Some((sender, _, _)) = &def.auth {
                    if let Err(e) = msgauth::stanza::sign(sender, &mut el) {
                        tracing::error!(%domain, error = %e, "cannot sign a stanza for the component: dropped");
                        continue;
                    }
                }
                // A component that stops reading is dropped after the idle time.
                match tokio::time::timeout(port.idle, f.send(&el.to_xml(NS_COMPONENT))).await {
                    Ok(Ok(())) => {}
                    _ => return Err(Refused::Gone("write failed or stalled".into())),
                }
            }
            Wake::Read(Ok(StreamEvent::Stanza(el))) => {
                if !inbound(port, domain, def, el).await {
                    let text = "too many stanzas from this component for too long";
                    let _ = f.send(&stream_error_xml("policy-violation", text)).await;
                    return Err(Refused::Answered("over its stanza rate".into()));
                }
            }
            Wake::Read(Ok(StreamEvent::End)) => {
                let _ = f.send("</stream:stream>").await;
                return Ok(());
            }
            Wake::Read(Ok(StreamEvent::Header(_))) => {
                let _ = f.send(&stream_error_xml("bad-format", "unexpected restart")).await;
                return Err(Refused::Answered("restart".into()));
            }
            Wake::Read(Err(FramedError::Timeout(_))) => {
                let _ = f.send(&stream_error_xml("connection-timeout", "idle for too long")).await;
                return Ok(());
            }
            Wake::Read(Err(FramedError::Xml(e))) => {
                let _ = f.send(&stream_error_xml(e.condition.name(), &e.detail)).await;
                return Err(Refused::Answered(e.to_string()));
            }
            Wake::Read(Err(_)) => return Ok(()),
        }
    }
}

/// A stanza from the component: within its rate, authenticated (if
/// configured), its `from` in the component's domain, then routed like a
/// local entity's. False when the component is over its rate for too long
/// (the link ends).
async fn inbound(port: &ComponentPort, domain: &str, def: &Definition, mut el: Element) -> bool {
    if el.ns() != NS_COMPONENT || !matches!(el.name(), "message" | "presence" | "iq") {
        return true;
    }
    match port.rate.check(domain) {
        Verdict::Pass => {}
        Verdict::Refuse => {
            if !is_reply(&el) {
                let text = "too many stanzas from this component; slow down";
                let mut err = error_reply(&el, Condition::PolicyViolation, Some(text));
                err.set_attr("from", port.router.domain().to_owned());
                let _ = port.router.components.try_send(domain, err);
            }
            return true;
        }
        Verdict::Disconnect => return false,
    }
    if let Some((_, receiver, source)) = &def.auth {
        let result = msgauth::stanza::verify(receiver, &mut el).and_then(|v| {
            if &v.source == source {
                Ok(v)
            } else {
                Err(msgauth::AuthError::UnknownSource(v.source))
            }
        });
        match result {
            Ok(v) => {
                if let Some((a, b)) = v.lost {
                    tracing::warn!(%domain, source = %v.source, first = a, last = b, "messages from the component were lost");
                }
            }
            Err(e) => {
                tracing::warn!(%domain, reason = %e, "stanza from component refused: message authentication failed");
                if !is_reply(&el) {
                    let mut err = error_reply(
                        &el,
                        Condition::NotAuthorized,
                        Some(&format!("message authentication failed: {e}")),
                    );
                    err.set_attr("from", port.router.domain().to_owned());
                    let _ = port.router.components.try_send(domain, err);
                }
                return true;
            }
        }
    }
    let from_ok = el.attr("from").and_then(crate::addr::Addr::parse).is_some_and(|a| a.domain == domain);
    if !from_ok {
        if !is_reply(&el) {
            let err = error_reply(&el, Condition::Forbidden, Some("'from' must be in the component's domain"));
            let _ = port.router.components.try_send(domain, err);
        }
        return true;
    }
    el.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
    Box::pin(port.router.submit(Origin::Component(domain.to_owned()), el)).await;
    true
}
