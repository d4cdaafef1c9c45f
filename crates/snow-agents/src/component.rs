//! An agent's link to its server as an external component (XEP-0114).
//! With message authentication on, every stanza is signed on the way out
//! and verified and stripped on the way in, here, so agent code never
//! sees a tag (docs/architecture.md §6); a stanza that fails is logged and dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snow_client::{ClientError, StanzaReader, StanzaWriter};
use snow_crypto::msgauth::{self, Receiver, Sender};
use snow_xml::initiator::{self, PeerError};
use snow_xml::{
    Element, Framed, FramedError, FramedReader, FramedWriter, Limits, StreamHeader, NS_CLIENT, NS_COMPONENT,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// Why the link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("the server refused the component: {0}")]
    Refused(String),
    #[error(transparent)]
    Framed(#[from] FramedError),
    #[error(transparent)]
    Auth(#[from] msgauth::AuthError),
}

/// Message authentication for one link: our signer, our verifier, and the
/// source the server signs as.
#[derive(Clone)]
pub struct LinkAuth {
    pub sender: Arc<Sender>,
    pub receiver: Arc<Receiver>,
    pub server_source: String,
}

#[derive(Clone)]
pub struct ComponentOptions {
    pub server: SocketAddr,
    /// The component's domain, e.g. `echo.po.example`.
    pub domain: String,
    pub secret: zeroize::Zeroizing<String>,
    pub auth: Option<LinkAuth>,
    pub timeout: Duration,
}

/// A connected component.
pub struct ComponentLink {
    framed: Framed<TcpStream>,
    auth: Option<LinkAuth>,
    domain: String,
}

impl ComponentLink {
    /// Opens the stream and proves the secret.
    pub async fn connect(opts: ComponentOptions) -> Result<ComponentLink, LinkError> {
        let tcp =
            TcpStream::connect(opts.server).await.map_err(|source| LinkError::Connect { addr: opts.server, source })?;
        let _ = tcp.set_nodelay(true);
        let mut f = Framed::new(tcp, Limits::default());
        let header = StreamHeader { to: Some(opts.domain.clone()), ..StreamHeader::default() };
        let theirs =
            initiator::open_stream(&mut f, &header, NS_COMPONENT, opts.timeout).await.map_err(|e| match e {
                PeerError::Closed => LinkError::Refused("stream closed".into()),
                e => e.into(),
            })?;
        let id = theirs.id.ok_or_else(|| LinkError::Refused("the server sent no stream id".into()))?;
        let proof = snow_crypto::component_handshake::digest(&id, &opts.secret);
        initiator::handshake(&mut f, &proof, opts.timeout).await.map_err(|e| match e {
            PeerError::Closed => LinkError::Refused("stream closed during the handshake".into()),
            e => e.into(),
        })?;
        Ok(ComponentLink { framed: f, auth: opts.auth, domain: opts.domain })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Sends a stanza (in `jabber:client` terms), signed if configured.
    pub async fn send(&mut self, el: Element) -> Result<(), LinkError> {
        let xml = outgoing(self.auth.as_ref(), el)?;
        self.framed.send(&xml).await.map_err(FramedError::Io)?;
        Ok(())
    }

    /// The next stanza that passes authentication, in `jabber:client`
    /// terms and without its tag.
    pub async fn next(&mut self, timeout: Duration) -> Result<Element, LinkError> {
        loop {
            let el = self.framed.next_element(timeout).await?;
            if let Some(el) = incoming(self.auth.as_ref(), el) {
                return Ok(el);
            }
        }
    }

    /// Splits into halves for a reader and a writer task (a
    /// [`snow_client::Session`]); each keeps its side of the message
    /// authentication.
    pub fn split(self) -> (ComponentReader, ComponentWriter) {
        let (rd, wr) = self.framed.split();
        (ComponentReader { rd, auth: self.auth.clone() }, ComponentWriter { wr, auth: self.auth })
    }
}

/// The receiving half of a split [`ComponentLink`].
pub struct ComponentReader {
    rd: FramedReader<ReadHalf<TcpStream>>,
    auth: Option<LinkAuth>,
}

/// The sending half of a split [`ComponentLink`].
pub struct ComponentWriter {
    wr: FramedWriter<WriteHalf<TcpStream>>,
    auth: Option<LinkAuth>,
}

impl StanzaReader for ComponentReader {
    async fn next_stanza(&mut self, timeout: Duration) -> Result<Element, ClientError> {
        loop {
            let el = self.rd.next_element(timeout).await.map_err(LinkError::from)?;
            if let Some(el) = incoming(self.auth.as_ref(), el) {
                return Ok(el);
            }
        }
    }
}

impl StanzaWriter for ComponentWriter {
    async fn send_stanza(&mut self, stanza: &Element) -> Result<(), ClientError> {
        let xml = outgoing(self.auth.as_ref(), stanza.clone())?;
        self.wr.send(&xml).await.map_err(FramedError::Io)?;
        Ok(())
    }

    async fn close(&mut self) -> Result<(), ClientError> {
        self.wr.send("</stream:stream>").await.map_err(FramedError::Io)?;
        Ok(())
    }
}

/// A timeout stays a timeout (a session waits on), anything else ends it.
impl From<LinkError> for ClientError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Framed(e) => ClientError::Framed(e),
            e => ClientError::Transport(Box::new(e)),
        }
    }
}

/// The peer's stream errors as refusals, in the words of the log.
impl From<PeerError> for LinkError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Framed(e) => LinkError::Framed(e),
            PeerError::Closed => LinkError::Framed(FramedError::Closed),
            PeerError::StreamError(e) => LinkError::Refused(e.to_string()),
            PeerError::Restarted => LinkError::Refused("unexpected stream restart".into()),
            e => LinkError::Refused(e.to_string()),
        }
    }
}

/// A stanza on its way to the server: in the component namespace,
/// signed if configured.
fn outgoing(auth: Option<&LinkAuth>, mut el: Element) -> Result<String, LinkError> {
    el.rename_ns_deep(NS_CLIENT, NS_COMPONENT);
    if let Some(a) = auth {
        msgauth::stanza::sign(&a.sender, &mut el)?;
    }
    Ok(el.to_xml(NS_COMPONENT))
}

/// A stanza from the server, verified and stripped of its tag, in
/// `jabber:client` terms; `None` (logged) if it fails authentication.
fn incoming(auth: Option<&LinkAuth>, mut el: Element) -> Option<Element> {
    if let Some(a) = auth {
        match msgauth::stanza::verify(&a.receiver, &mut el) {
            Ok(v) if v.source == a.server_source => {
                if let Some((first, last)) = v.lost {
                    tracing::warn!(first, last, "stanzas from the server were lost");
                }
            }
            Ok(v) => {
                tracing::warn!(source = %v.source, "stanza signed by an unexpected source: dropped");
                return None;
            }
            Err(e) => {
                tracing::warn!(reason = %e, "stanza from the server failed authentication: dropped");
                return None;
            }
        }
    }
    el.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
    Some(el)
}
