//! The ways stanzas arrive and leave: client sessions (`c2s`), other
//! servers (`s2s`) and external components (`component`). Each owns its
//! negotiation and its read/write loop and hands every stanza to
//! routing. What the accepting side of a stream negotiation shares —
//! answering the peer's header with ours and the features, reading the
//! next negotiation element, refusing with the right stream error, the
//! TLS handshake — is here.

pub(crate) mod c2s;
pub(crate) mod component;
pub(crate) mod s2s;
pub(crate) mod stream_management;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use snow_xml::{stream_error_xml, Element, Framed, FramedError, Limits, StreamEvent, StreamHeader, NS_SERVER};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::limits::{Count, LimitCounters};
use crate::routing::ComponentTable;

/// What the accepting side of a stream needs to negotiate it.
pub(crate) struct Accepting {
    pub domain: String,
    pub limits: Limits,
    /// Each negotiation step's time limit.
    pub timeout: Duration,
    pub acceptor: TlsAcceptor,
    /// From accept: TLS established, and authentication done
    /// (`[server] tls_handshake_timeout_secs`, `auth_deadline_secs`).
    pub deadlines: (Duration, Duration),
    pub counters: Arc<LimitCounters>,
    pub shutdown: watch::Receiver<bool>,
}

/// Which pre-authentication deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    Tls,
    Auth,
}

/// How a connection ended before it was established, for the log.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Closed quietly (EOF, timeout, network error).
    Gone(String),
    /// We sent the closing bytes already.
    Answered(String),
}

pub(crate) type Step<T> = Result<T, Refused>;

pub(crate) fn gone(e: impl std::fmt::Display) -> Refused {
    Refused::Gone(e.to_string())
}

/// Sends `xml`, then reports the connection as refused for `why`.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(f: &mut Framed<S>, xml: &str, why: &str) -> Refused {
    let _ = f.send(xml).await;
    let _ = f.get_mut().shutdown().await;
    Refused::Answered(why.to_owned())
}

impl Accepting {
    /// Reads the peer's stream header and answers with ours and
    /// `features`. Over s2s (`ns` = `jabber:server`), the domains of our
    /// `components` are served too.
    pub async fn open_stream<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        f: &mut Framed<S>,
        ns: &str,
        features: &str,
        components: Option<&ComponentTable>,
    ) -> Step<StreamHeader> {
        let domain = self.domain.as_str();
        let ours = |host: &str, to: Option<String>| StreamHeader {
            from: Some(host.to_owned()),
            to,
            id: snow_crypto::one_time_password::random_hex(12).ok(),
            version: Some("1.0".into()),
            lang: Some("en".into()),
        };
        let refusal = |condition: &str, text: &str| {
            format!("{}{}", ours(domain, None).to_xml(ns), stream_error_xml(condition, text))
        };
        let header = match f.next_event(self.timeout).await {
            Ok(StreamEvent::Header(h)) => h,
            Ok(_) => {
                let xml = refusal("bad-format", "expected a stream header");
                return Err(refuse(f, &xml, "no stream header").await);
            }
            Err(FramedError::Xml(e)) => {
                let xml = refusal(e.condition.name(), &e.detail);
                return Err(refuse(f, &xml, &e.to_string()).await);
            }
            Err(e) => return Err(gone(e)),
        };
        let to = header.to.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
        let served = to == domain || (ns == NS_SERVER && components.is_some_and(|c| c.is_component(&to)));
        if !served {
            let xml = refusal("host-unknown", "this server serves another domain");
            return Err(refuse(f, &xml, "wrong 'to' domain").await);
        }
        if header.version.as_deref() != Some("1.0") {
            let xml = refusal("unsupported-version", "XMPP 1.0 is required");
            return Err(refuse(f, &xml, "not XMPP 1.0").await);
        }
        let from = header.from.clone().filter(|f| crate::addr::Addr::parse(f).is_some());
        let xml = format!("{}<stream:features>{features}</stream:features>", ours(&to, from).to_xml(ns));
        f.send(&xml).await.map_err(gone)?;
        Ok(header)
    }

    /// The next first-level element of the negotiation, or the right
    /// stream error.
    pub async fn next_element<S: AsyncRead + AsyncWrite + Unpin>(&self, f: &mut Framed<S>) -> Step<Element> {
        match f.next_event(self.timeout).await {
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

    /// The server side of the TLS handshake (its time is bounded by the
    /// TLS deadline the caller runs it under, [`Accepting::by`]).
    pub async fn tls_accept(&self, tcp: TcpStream) -> Step<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await.map_err(|e| Refused::Gone(format!("TLS handshake failed: {e}")))
    }

    /// Runs `step` (a part of the negotiation) to be done by `which`
    /// deadline after `accepted`: per-read timeouts alone let a peer that
    /// sends a byte now and then hold a connection forever, so the whole
    /// negotiation has one absolute deadline. Past it the connection is
    /// dropped (counted in `LimitStats`), whatever the step was doing.
    pub async fn by<T>(&self, accepted: Instant, which: Deadline, step: impl Future<Output = Step<T>>) -> Step<T> {
        let (tls, auth) = self.deadlines;
        let limit = if which == Deadline::Tls { tls } else { auth };
        match tokio::time::timeout_at(accepted + limit, step).await {
            Ok(r) => r,
            Err(_) => {
                let (count, what) = match which {
                    Deadline::Tls => (Count::TlsDeadline, "TLS"),
                    Deadline::Auth => (Count::AuthDeadline, "authentication"),
                };
                let n = self.counters.add(count);
                tracing::debug!(closed = n, "{what} not done within {} s of accept: closed", limit.as_secs());
                Err(Refused::Gone(format!("{what} not done within {} s of accept", limit.as_secs())))
            }
        }
    }

    /// Refuses a new stream at once with a stream error (`condition`,
    /// `text`): reads the peer's header (within the step timeout), answers
    /// with ours and the error, and closes.
    pub async fn refuse_stream<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        f: &mut Framed<S>,
        ns: &str,
        condition: &str,
        text: &str,
    ) -> Refused {
        let _ = f.next_event(self.timeout).await;
        let header =
            StreamHeader { from: Some(self.domain.clone()), version: Some("1.0".into()), ..StreamHeader::default() };
        let xml = format!("{}{}", header.to_xml(ns), stream_error_xml(condition, text));
        refuse(f, &xml, text).await
    }
}

/// The certificates the peer presented in the TLS handshake.
pub(crate) fn peer_certificates(tls: &TlsStream<TcpStream>) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    tls.get_ref().1.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect()).unwrap_or_default()
}

/// Logs how an incoming connection ended.
pub(crate) fn log_end(what: &str, peer: std::net::SocketAddr, result: Step<String>) {
    match result {
        Ok(who) => tracing::info!(%peer, %who, "{what} closed"),
        Err(Refused::Gone(why)) => tracing::debug!(%peer, why, "{what} ended"),
        Err(Refused::Answered(why)) => tracing::info!(%peer, why, "{what} refused"),
    }
}
