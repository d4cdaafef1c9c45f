//! The initiating side of stream negotiation (RFC 6120 §4–§6, XEP-0114),
//! written once for every initiator: the client's c2s login, the server's
//! outgoing s2s links and the agents' component link.
//!
//! Each step is a function over a [`Framed`] stream; the caller decides
//! the order (STARTTLS, TLS, SASL, bind; or the component handshake), does
//! the TLS handshake itself, and words the errors for its users. A typical
//! c2s or s2s login:
//!
//! ```no_run
//! # async fn login(tcp: tokio::net::TcpStream) -> Result<(), snow_xml::PeerError> {
//! use std::time::Duration;
//! use snow_xml::{initiator, Framed, Limits, StreamHeader, NS_CLIENT};
//! let t = Duration::from_secs(15);
//! let header = StreamHeader { to: Some("po.example".into()), version: Some("1.0".into()), ..Default::default() };
//! let mut f = Framed::new(tcp, Limits::default());
//! let (_, features) = initiator::open(&mut f, &header, NS_CLIENT, t).await?;
//! if features.offers_starttls() {
//!     initiator::starttls(&mut f, t).await?;
//!     let tcp = f.into_inner();
//!     // … TLS handshake on `tcp`, then a new Framed, open() again,
//!     // authenticate(), open() again …
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::framed::{Framed, FramedError};
use crate::{Element, StreamEvent, StreamHeader, NS_COMPONENT, NS_SASL, NS_STREAMS, NS_STREAM_ERRORS, NS_TLS};

/// A `<stream:error>` the peer sent (RFC 6120 §4.9): its condition (the
/// element name under `urn:ietf:params:xml:ns:xmpp-streams`, kept as sent
/// so an unknown one still reaches the log) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStreamError {
    pub condition: String,
    pub text: Option<String>,
}

impl PeerStreamError {
    /// Reads a `<stream:error>`; a missing condition is
    /// `undefined-condition` (§4.9.3.21).
    pub fn from_element(el: &Element) -> PeerStreamError {
        let condition = el
            .children()
            .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".into());
        let text = el.child(NS_STREAM_ERRORS, "text").map(Element::text);
        PeerStreamError { condition, text }
    }
}

impl std::fmt::Display for PeerStreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.condition)?;
        if let Some(t) = &self.text {
            write!(f, " ({t})")?;
        }
        Ok(())
    }
}

/// Why the peer's stream did not give what the initiator expected.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The connection, the XML or the clock failed.
    #[error(transparent)]
    Framed(#[from] FramedError),
    /// The peer sent `<stream:error>`.
    #[error("the peer closed the stream: {0}")]
    StreamError(PeerStreamError),
    /// The peer sent `</stream:stream>`.
    #[error("the peer closed the stream")]
    Closed,
    /// The peer opened a new stream inside the current one.
    #[error("unexpected stream header")]
    Restarted,
    /// Something else than the step expects (what, in a sentence).
    #[error("unexpected answer from the peer: {0}")]
    Unexpected(String),
    /// The answer to `<starttls/>` was not `<proceed/>` (its name).
    #[error("STARTTLS refused: <{0}>")]
    TlsRefused(String),
    /// SASL `<failure/>`: the condition (RFC 6120 §6.5) and text.
    #[error("authentication failed: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    AuthFailed { condition: String, text: Option<String> },
}

/// The first-level element in `ev`; a stream error, the stream's end or a
/// restart is a [`PeerError`].
pub fn element_of(ev: StreamEvent) -> Result<Element, PeerError> {
    match ev {
        StreamEvent::Stanza(el) if el.is(NS_STREAMS, "error") => {
            Err(PeerError::StreamError(PeerStreamError::from_element(&el)))
        }
        StreamEvent::Stanza(el) => Ok(el),
        StreamEvent::End => Err(PeerError::Closed),
        StreamEvent::Header(_) => Err(PeerError::Restarted),
    }
}

/// The peer's `<stream:features/>`, with the questions an initiator asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features(Element);

impl Features {
    pub fn element(&self) -> &Element {
        &self.0
    }

    /// STARTTLS (RFC 6120 §5) is offered.
    pub fn offers_starttls(&self) -> bool {
        self.0.child(NS_TLS, "starttls").is_some()
    }

    /// SASL `mechanism` (RFC 6120 §6) is offered.
    pub fn offers_mechanism(&self, mechanism: &str) -> bool {
        self.0
            .child(NS_SASL, "mechanisms")
            .is_some_and(|m| m.children().any(|c| c.is(NS_SASL, "mechanism") && c.text().trim() == mechanism))
    }

    /// Offers the child `{ns}name` (resource binding, say).
    pub fn offers(&self, ns: &str, name: &str) -> bool {
        self.0.child(ns, name).is_some()
    }
}

/// Sends our stream `header` (content namespace `content_ns`) and reads
/// the peer's header. For XEP-0114, whose streams have no features.
pub async fn open_stream<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    header: &StreamHeader,
    content_ns: &str,
    timeout: Duration,
) -> Result<StreamHeader, PeerError> {
    f.send(&header.to_xml(content_ns)).await.map_err(FramedError::Io)?;
    match f.next_event(timeout).await? {
        StreamEvent::Header(h) => Ok(h),
        other => Err(PeerError::Unexpected(format!("expected a stream header, got {other:?}"))),
    }
}

/// Reads the peer's `<stream:features/>`.
pub async fn read_features<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    timeout: Duration,
) -> Result<Features, PeerError> {
    let el = f.next_element(timeout).await?;
    if !el.is(NS_STREAMS, "features") {
        return Err(PeerError::Unexpected(format!("expected stream features, got <{}>", el.name())));
    }
    Ok(Features(el))
}

/// Opens a stream (RFC 6120 §4.2): our header, the peer's header and its
/// features. Called again after TLS and after SASL success.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    header: &StreamHeader,
    content_ns: &str,
    timeout: Duration,
) -> Result<(StreamHeader, Features), PeerError> {
    let theirs = open_stream(f, header, content_ns, timeout).await?;
    Ok((theirs, read_features(f, timeout).await?))
}

/// Asks for TLS (RFC 6120 §5.4.2) and waits for `<proceed/>`. Next, the
/// caller takes the connection ([`Framed::into_inner`]) for the TLS
/// handshake and opens a new stream over TLS.
pub async fn starttls<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    timeout: Duration,
) -> Result<(), PeerError> {
    f.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await.map_err(FramedError::Io)?;
    let answer = f.next_element(timeout).await?;
    if !answer.is(NS_TLS, "proceed") {
        return Err(PeerError::TlsRefused(answer.name().to_owned()));
    }
    Ok(())
}

/// SASL with one initial response (RFC 6120 §6.4.2): EXTERNAL (empty, or
/// the authorization identity an s2s link asserts) or PLAIN. On success
/// the parser is reset for the new stream the caller opens next.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    mechanism: &str,
    initial_response: &[u8],
    timeout: Duration,
) -> Result<(), PeerError> {
    // RFC 6120 §6.4.2: an empty initial response is sent as "=".
    let initial = if initial_response.is_empty() {
        "=".to_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(initial_response)
    };
    let mut auth = format!("<auth xmlns='{NS_SASL}' mechanism='");
    crate::escape::push_escaped(&mut auth, mechanism);
    auth.push_str("'>");
    auth.push_str(&initial);
    auth.push_str("</auth>");
    f.send(&auth).await.map_err(FramedError::Io)?;
    let answer = f.next_element(timeout).await?;
    if answer.is(NS_SASL, "failure") {
        let condition = answer
            .children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "failure".into());
        let text = answer.child(NS_SASL, "text").map(Element::text);
        return Err(PeerError::AuthFailed { condition, text });
    }
    if !answer.is(NS_SASL, "success") {
        return Err(PeerError::Unexpected(format!("unexpected <{}> after auth", answer.name())));
    }
    f.reset();
    Ok(())
}

/// The XEP-0114 handshake: sends `proof` (the hex digest of stream id and
/// secret) and waits for the empty `<handshake/>` that accepts it.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    proof: &str,
    timeout: Duration,
) -> Result<(), PeerError> {
    let mut xml = String::from("<handshake>");
    crate::escape::push_escaped(&mut xml, proof);
    xml.push_str("</handshake>");
    f.send(&xml).await.map_err(FramedError::Io)?;
    let answer = f.next_element(timeout).await?;
    if !answer.is(NS_COMPONENT, "handshake") {
        return Err(PeerError::Unexpected(format!("unexpected <{}> after the handshake", answer.name())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, NS_CLIENT, NS_SERVER};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const T: Duration = Duration::from_secs(5);

    fn header(to: &str) -> StreamHeader {
        StreamHeader { to: Some(to.into()), version: Some("1.0".into()), ..Default::default() }
    }

    /// A framed initiator and the raw peer end of an in-memory connection.
    fn pair() -> (Framed<DuplexStream>, DuplexStream) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Framed::new(a, Limits::default()), b)
    }

    /// Reads from the peer end until `needle` arrived; returns all of it.
    async fn read_until(peer: &mut DuplexStream, needle: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = tokio::time::timeout(T, peer.read(&mut buf)).await.expect("peer read timed out").unwrap();
            assert!(n > 0, "initiator closed; got {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    const PEER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' from='po.example' id='abc' version='1.0'>";

    #[tokio::test]
    async fn s2s_login_starttls_then_sasl_external_with_authzid() {
        let (mut f, mut peer) = pair();
        let server = tokio::spawn(async move {
            let hello = read_until(&mut peer, "<stream:stream").await;
            assert!(hello.contains("to='po.example'") && hello.contains("xmlns='jabber:server'"), "{hello}");
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            peer.write_all(b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").await.unwrap();
            read_until(&mut peer, "<starttls").await;
            peer.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.unwrap();
            // (TLS would start here; the test goes on in the clear.)
            read_until(&mut peer, "<stream:stream").await;
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            peer.write_all(b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>").await.unwrap();
            let auth = read_until(&mut peer, "</auth>").await;
            assert!(auth.contains("mechanism='EXTERNAL'>bGFiLmV4YW1wbGU=</auth>"), "{auth}");
            peer.write_all(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").await.unwrap();
            read_until(&mut peer, "<stream:stream").await;
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            peer.write_all(b"<stream:features/>").await.unwrap();
            peer
        });
        let h = StreamHeader { from: Some("lab.example".into()), ..header("po.example") };
        let (theirs, features) = open(&mut f, &h, NS_SERVER, T).await.unwrap();
        assert_eq!(theirs.id.as_deref(), Some("abc"));
        assert!(features.offers_starttls() && !features.offers_mechanism("EXTERNAL"));
        starttls(&mut f, T).await.unwrap();
        // (Here the caller runs the TLS handshake on f.into_inner().)
        let mut f = Framed::new(f.into_inner(), Limits::default());
        let (_, features) = open(&mut f, &h, NS_SERVER, T).await.unwrap();
        assert!(features.offers_mechanism("EXTERNAL") && !features.offers_mechanism("PLAIN"));
        authenticate(&mut f, "EXTERNAL", b"lab.example", T).await.unwrap();
        let (_, features) = open(&mut f, &h, NS_SERVER, T).await.unwrap();
        assert!(!features.offers_starttls());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_stream_error_is_typed_with_its_condition_and_text() {
        let (mut f, mut peer) = pair();
        tokio::spawn(async move {
            read_until(&mut peer, "<stream:stream").await;
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            peer.write_all(
                b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                  <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>not here</text></stream:error></stream:stream>",
            )
            .await
            .unwrap();
            peer
        });
        match open(&mut f, &header("elsewhere.example"), NS_CLIENT, T).await {
            Err(PeerError::StreamError(e)) => {
                assert_eq!(e, PeerStreamError { condition: "host-unknown".into(), text: Some("not here".into()) });
                assert_eq!(e.to_string(), "host-unknown (not here)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn starttls_refused_is_typed() {
        let (mut f, mut peer) = pair();
        tokio::spawn(async move {
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            read_until(&mut peer, "<starttls").await;
            peer.write_all(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.unwrap();
            peer
        });
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        match starttls(&mut f, T).await {
            Err(PeerError::TlsRefused(name)) => assert_eq!(name, "failure"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn sasl_failure_condition_and_text() {
        let (mut f, mut peer) = pair();
        tokio::spawn(async move {
            peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
            read_until(&mut peer, "</auth>").await;
            peer.write_all(
                b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>bad cert</text></failure>",
            )
            .await
            .unwrap();
            peer
        });
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        match authenticate(&mut f, "EXTERNAL", b"", T).await {
            Err(PeerError::AuthFailed { condition, text }) => {
                assert_eq!(condition, "not-authorized");
                assert_eq!(text.as_deref(), Some("bad cert"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_is_an_xml_error_and_silence_a_timeout() {
        let (mut f, mut peer) = pair();
        let _peer = tokio::spawn(async move {
            read_until(&mut peer, "<stream:stream").await;
            peer.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n<html>").await.unwrap();
            peer
        });
        match open(&mut f, &header("po.example"), NS_CLIENT, T).await {
            Err(PeerError::Framed(FramedError::Xml(e))) => assert!(!e.detail.is_empty()),
            other => panic!("{other:?}"),
        }
        let (mut f, peer) = pair();
        let started = tokio::time::Instant::now();
        match open(&mut f, &header("po.example"), NS_CLIENT, Duration::from_millis(100)).await {
            Err(PeerError::Framed(FramedError::Timeout(t))) => assert_eq!(t, Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < T);
        drop(peer);
        let (mut f, peer) = pair();
        drop(peer);
        assert!(matches!(
            open(&mut f, &header("po.example"), NS_CLIENT, T).await,
            Err(PeerError::Framed(FramedError::Io(_) | FramedError::Closed))
        ));
    }

    #[tokio::test]
    async fn component_handshake_accepted_and_refused() {
        let (mut f, mut peer) = pair();
        tokio::spawn(async move {
            let hello = read_until(&mut peer, "<stream:stream").await;
            assert!(hello.contains("jabber:component:accept"), "{hello}");
            peer.write_all(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='echo.po.example' id='s1'>").await.unwrap();
            let proof = read_until(&mut peer, "</handshake>").await;
            assert!(proof.contains("<handshake>c0ffee</handshake>"), "{proof}");
            peer.write_all(b"<handshake/>").await.unwrap();
            peer
        });
        let h = StreamHeader { to: Some("echo.po.example".into()), ..Default::default() };
        let theirs = open_stream(&mut f, &h, NS_COMPONENT, T).await.unwrap();
        assert_eq!(theirs.id.as_deref(), Some("s1"));
        handshake(&mut f, "c0ffee", T).await.unwrap();

        let (mut f, mut peer) = pair();
        tokio::spawn(async move {
            read_until(&mut peer, "<stream:stream").await;
            peer.write_all(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='s2'>").await.unwrap();
            read_until(&mut peer, "</handshake>").await;
            peer.write_all(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>").await.unwrap();
            peer
        });
        open_stream(&mut f, &h, NS_COMPONENT, T).await.unwrap();
        match handshake(&mut f, "bad", T).await {
            Err(PeerError::StreamError(e)) => assert_eq!(e.to_string(), "not-authorized"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_stream_end_and_a_restart_are_not_elements() {
        let (mut f, mut peer) = pair();
        peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
        peer.write_all(b"<message/>").await.unwrap();
        peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        assert_eq!(f.next_element(T).await.unwrap().name(), "message");
        // A second header inside the stream is not well-formed XMPP.
        assert!(f.next_element(T).await.is_err());

        let (mut f, mut peer) = pair();
        peer.write_all(PEER_HEADER.as_bytes()).await.unwrap();
        peer.write_all(b"</stream:stream>").await.unwrap();
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        assert!(matches!(f.next_element(T).await, Err(PeerError::Closed)));
    }
}
