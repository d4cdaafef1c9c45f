//! An XML stream over an async byte stream: read until the next event,
//! write serialized XML. The one read loop of the project: the server's
//! transports, the client and the agents' component link all read through
//! [`Framed`] (both directions in one task) or its [`FramedReader`] half
//! (reading in a task of its own, after [`Framed::split`]).
//!
//! Reading is cancel-safe: [`FramedReader::next_event`] may be dropped at
//! its await point (a `select!` that took another branch) and nothing the
//! peer sent is lost, because state changes only after a read completed.
//!
//! An idle stream holds no read buffer: a read waits with a small buffer
//! inside the future, and a large one is kept only while the peer sends
//! faster than that buffer drains (an idle session must be cheap).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::initiator::PeerError;
use crate::{Element, Limits, StreamEvent, StreamParser, XmlError};

/// Why a framed stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum FramedError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("no data from the peer within {0:?}")]
    Timeout(Duration),
    #[error("XML error: {0}")]
    Xml(#[from] XmlError),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes a read waits with: enough for a typical stanza, small enough to
/// cost nothing while a connection is idle.
const SMALL_READ: usize = 512;
/// Bytes per read while the peer keeps the buffer full.
const READ_CHUNK: usize = 8192;

/// The parsing side of a stream: parser, events parsed but not yet
/// returned, and the read buffer while data is streaming in.
struct ReadState {
    parser: StreamParser,
    events: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// The parse error, returned once the events before it are taken.
    failed: Option<XmlError>,
    /// The last read filled its buffer: more is likely waiting (TLS may
    /// hold decrypted bytes the socket no longer signals), so read big.
    big: Option<Box<[u8]>>,
}

impl ReadState {
    fn new(limits: Limits) -> Self {
        ReadState {
            parser: StreamParser::new(limits),
            events: VecDeque::new(),
            scratch: Vec::new(),
            failed: None,
            big: None,
        }
    }

    /// Cancel-safe: the only await is the read, and nothing changes
    /// before it completes.
    async fn next_event<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        timeout: Duration,
    ) -> Result<StreamEvent, FramedError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            if let Some(e) = &self.failed {
                return Err(e.clone().into());
            }
            match self.big.take() {
                Some(mut buf) => {
                    let n = read_within(io, &mut buf, timeout).await?;
                    self.feed(&buf[..n]);
                    if n == buf.len() {
                        self.big = Some(buf);
                    }
                }
                None => {
                    // Likely a wait for the peer: the parser's scratch
                    // space is not needed meanwhile.
                    self.parser.release_buffers();
                    let mut small = [0u8; SMALL_READ];
                    let n = read_within(io, &mut small, timeout).await?;
                    self.feed(&small[..n]);
                    if n == small.len() {
                        self.big = Some(vec![0u8; READ_CHUNK].into_boxed_slice());
                    }
                }
            }
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let result = self.parser.feed(data, &mut self.scratch);
        self.events.extend(self.scratch.drain(..));
        if let Err(e) = result {
            // Events that came before the error are delivered first.
            self.failed = Some(e);
        }
    }

    fn reset(&mut self) {
        self.parser.reset();
        self.events.clear();
        self.failed = None;
    }
}

/// One read of at least one byte within `timeout`; end of stream is
/// [`FramedError::Closed`].
async fn read_within<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<usize, FramedError> {
    match tokio::time::timeout(timeout, io.read(buf)).await {
        Err(_) => Err(FramedError::Timeout(timeout)),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(0)) => Err(FramedError::Closed),
        Ok(Ok(n)) => Ok(n),
    }
}

/// An XML stream on `io`, parsed incrementally with limits; both
/// directions, for the negotiation (where the sides take turns) and for
/// loops that read and write from one task.
pub struct Framed<S> {
    io: S,
    state: ReadState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub fn new(io: S, limits: Limits) -> Self {
        Framed { io, state: ReadState::new(limits) }
    }

    /// The next event, reading as needed; each read must bring data within
    /// `timeout`. Cancel-safe.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<StreamEvent, FramedError> {
        self.state.next_event(&mut self.io, timeout).await
    }

    /// The next first-level element; the peer's `<stream:error>`, its
    /// closing tag and a stream restart become a [`PeerError`]. Cancel-safe.
    pub async fn next_element(&mut self, timeout: Duration) -> Result<Element, PeerError> {
        crate::initiator::element_of(self.next_event(timeout).await?)
    }

    /// Writes `xml` and flushes.
    pub async fn send(&mut self, xml: &str) -> std::io::Result<()> {
        self.io.write_all(xml.as_bytes()).await?;
        self.io.flush().await
    }

    /// Writes `xml` without flushing, to send several pieces in one
    /// flush ([`flush`](Self::flush)).
    pub async fn write(&mut self, xml: &str) -> std::io::Result<()> {
        self.io.write_all(xml.as_bytes()).await
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.io.flush().await
    }

    /// Starts a new stream on the same connection (after SASL success).
    pub fn reset(&mut self) {
        self.state.reset();
    }

    /// Splits into a reader and a writer for different tasks; what was
    /// already read and parsed stays with the reader.
    pub fn split(self) -> (FramedReader<ReadHalf<S>>, FramedWriter<WriteHalf<S>>) {
        let (rd, wr) = tokio::io::split(self.io);
        (FramedReader { io: rd, state: self.state }, FramedWriter { io: wr })
    }

    /// The underlying connection, for STARTTLS. Anything the peer sent
    /// after the element that ended the old layer is discarded, as RFC 6120
    /// §5.4.3.3 requires.
    pub fn into_inner(self) -> S {
        self.io
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}

/// The reading half of a stream: owns the parser, the events parsed but
/// not yet returned, and the read buffer, so no caller writes a read loop
/// of its own.
pub struct FramedReader<R> {
    io: R,
    state: ReadState,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    pub fn new(io: R, limits: Limits) -> Self {
        FramedReader { io, state: ReadState::new(limits) }
    }

    /// The next event, reading as needed; each read must bring data within
    /// `timeout`. Cancel-safe: dropping the future loses nothing.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<StreamEvent, FramedError> {
        self.state.next_event(&mut self.io, timeout).await
    }

    /// The next first-level element, as [`Framed::next_element`].
    pub async fn next_element(&mut self, timeout: Duration) -> Result<Element, PeerError> {
        crate::initiator::element_of(self.next_event(timeout).await?)
    }

    pub fn get_ref(&self) -> &R {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }
}

/// The writing half of a stream.
pub struct FramedWriter<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> FramedWriter<W> {
    pub fn new(io: W) -> Self {
        FramedWriter { io }
    }

    /// Writes `xml` and flushes.
    pub async fn send(&mut self, xml: &str) -> std::io::Result<()> {
        self.io.write_all(xml.as_bytes()).await?;
        self.io.flush().await
    }

    /// Writes `xml` without flushing (several pieces, one flush).
    pub async fn write(&mut self, xml: &str) -> std::io::Result<()> {
        self.io.write_all(xml.as_bytes()).await
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.io.flush().await
    }

    /// Flushes and shuts the write direction down (TLS close_notify).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initiator::PeerError;
    use tokio::io::{AsyncWriteExt, DuplexStream};

    const T: Duration = Duration::from_secs(5);
    const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        version='1.0'>";

    fn pair() -> (Framed<DuplexStream>, DuplexStream) {
        let (a, b) = tokio::io::duplex(1024 * 1024);
        (Framed::new(a, Limits::default()), b)
    }

    #[tokio::test]
    async fn split_reader_keeps_what_was_parsed_and_reads_big_stanzas() {
        let (mut f, mut peer) = pair();
        // The header and two stanzas arrive in one read; only the header is
        // taken before the split.
        peer.write_all(format!("{HEADER}<message id='1'/><message id='2'/>").as_bytes()).await.unwrap();
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        let (mut rd, mut wr) = f.split();
        // A stanza many times the small read buffer.
        let body = "x".repeat(100 * 1024);
        peer.write_all(format!("<message id='3'><body>{body}</body></message>").as_bytes()).await.unwrap();
        for id in ["1", "2", "3"] {
            assert_eq!(rd.next_element(T).await.unwrap().attr("id"), Some(id));
        }
        wr.send("<presence/>").await.unwrap();
        let mut got = [0u8; 11];
        tokio::io::AsyncReadExt::read_exact(&mut peer, &mut got).await.unwrap();
        assert_eq!(&got, b"<presence/>");
    }

    #[tokio::test]
    async fn reading_is_cancel_safe() {
        let (f, mut peer) = pair();
        let (mut rd, _wr) = f.split();
        peer.write_all(HEADER.as_bytes()).await.unwrap();
        assert!(matches!(rd.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        let stanza = format!("<message id='m'><body>{}</body></message>", "y".repeat(3000));
        let feeder = tokio::spawn(async move {
            // Dribbled in small pieces, so reads are cancelled mid-stanza.
            for piece in stanza.as_bytes().chunks(7) {
                peer.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            peer
        });
        let mut cancelled = 0;
        let el = loop {
            tokio::select! {
                biased;
                r = rd.next_element(T) => break r.unwrap(),
                // Always ready: the read is dropped whenever it is pending.
                _ = std::future::ready(()), if cancelled < 10_000 => cancelled += 1,
            }
        };
        assert_eq!(el.attr("id"), Some("m"));
        assert_eq!(el.children().next().map(|b| b.text().len()), Some(3000));
        assert!(cancelled > 0);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn events_before_garbage_come_first_then_the_error_stays() {
        let (mut f, mut peer) = pair();
        peer.write_all(format!("{HEADER}<message id='ok'/><<<").as_bytes()).await.unwrap();
        assert!(matches!(f.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        assert_eq!(f.next_element(T).await.unwrap().attr("id"), Some("ok"));
        for _ in 0..2 {
            match f.next_element(T).await {
                Err(PeerError::Framed(FramedError::Xml(e))) => {
                    assert_eq!(e.condition, crate::StreamErrorCondition::NotWellFormed)
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn silence_times_out_and_a_closed_peer_is_closed() {
        let (mut f, peer) = pair();
        let t = Duration::from_millis(50);
        assert!(matches!(f.next_event(t).await, Err(FramedError::Timeout(d)) if d == t));
        drop(peer);
        assert!(matches!(f.next_event(T).await, Err(FramedError::Closed)));
    }

    #[tokio::test]
    async fn a_stream_error_after_the_split_is_typed() {
        let (f, mut peer) = pair();
        let (mut rd, _wr) = f.split();
        peer.write_all(HEADER.as_bytes()).await.unwrap();
        peer.write_all(b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
            .await
            .unwrap();
        assert!(matches!(rd.next_event(T).await.unwrap(), StreamEvent::Header(_)));
        match rd.next_element(T).await {
            Err(PeerError::StreamError(e)) => assert_eq!((e.condition.as_str(), e.text), ("system-shutdown", None)),
            other => panic!("{other:?}"),
        }
    }
}
