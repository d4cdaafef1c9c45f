//! An XML stream over an async byte stream: read until the next event,
//! write serialized XML. Used by the server and the client alike for the
//! negotiation phase (STARTTLS, SASL, bind), where both sides take turns.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Limits, StreamEvent, StreamParser, XmlError};

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

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8192;

/// An XML stream on `io`, parsed incrementally with limits.
pub struct Framed<S> {
    io: S,
    parser: StreamParser,
    events: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    pending_error: Option<XmlError>,
    buf: Box<[u8]>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub fn new(io: S, limits: Limits) -> Self {
        Framed {
            io,
            parser: StreamParser::new(limits),
            events: VecDeque::new(),
            scratch: Vec::new(),
            pending_error: None,
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The next event, reading as needed; each read must bring data within
    /// `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<StreamEvent, FramedError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            if let Some(e) = self.pending_error.take() {
                return Err(e.into());
            }
            let n = match tokio::time::timeout(timeout, self.io.read(&mut self.buf)).await {
                Err(_) => return Err(FramedError::Timeout(timeout)),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(FramedError::Closed);
            }
            let result = self.parser.feed(&self.buf[..n], &mut self.scratch);
            self.events.extend(self.scratch.drain(..));
            if let Err(e) = result {
                // Events that came before the error are delivered first.
                self.pending_error = Some(e);
            }
        }
    }

    /// Writes `xml` and flushes.
    pub async fn send(&mut self, xml: &str) -> std::io::Result<()> {
        self.io.write_all(xml.as_bytes()).await?;
        self.io.flush().await
    }

    /// Starts a new stream on the same connection (after SASL success).
    pub fn reset(&mut self) {
        self.parser.reset();
        self.events.clear();
        self.pending_error = None;
    }

    /// Splits into the connection and the parser state, for the phase
    /// where reading and writing happen in different tasks.
    pub fn into_parts(self) -> (S, StreamParser, VecDeque<StreamEvent>) {
        (self.io, self.parser, self.events)
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
