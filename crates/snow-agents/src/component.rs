//! An agent's link to its server as an external component (XEP-0114).
//! With message authentication on, every stanza is signed on the way out
//! and verified and stripped on the way in, here, so agent code never
//! sees a tag (DESIGN.md §3.2); a stanza that fails is logged and dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snow_crypto::msgauth::{self, Receiver, Sender};
use snow_xml::{Element, Framed, FramedError, Limits, StreamEvent, StreamHeader, NS_CLIENT, NS_COMPONENT};
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
        f.send(&header.to_xml(NS_COMPONENT)).await.map_err(FramedError::Io)?;
        let id = match f.next_event(opts.timeout).await? {
            StreamEvent::Header(h) => h.id.ok_or_else(|| LinkError::Refused("the server sent no stream id".into()))?,
            StreamEvent::Stanza(e) => return Err(LinkError::Refused(describe(&e))),
            StreamEvent::End => return Err(LinkError::Refused("stream closed".into())),
        };
        let proof = snow_crypto::component_handshake::digest(&id, &opts.secret);
        f.send(&format!("<handshake>{proof}</handshake>")).await.map_err(FramedError::Io)?;
        match f.next_event(opts.timeout).await? {
            StreamEvent::Stanza(e) if e.is(NS_COMPONENT, "handshake") => {}
            StreamEvent::Stanza(e) => return Err(LinkError::Refused(describe(&e))),
            _ => return Err(LinkError::Refused("stream closed during the handshake".into())),
        }
        Ok(ComponentLink { framed: f, auth: opts.auth, domain: opts.domain })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Sends a stanza (in `jabber:client` terms), signed if configured.
    pub async fn send(&mut self, mut el: Element) -> Result<(), LinkError> {
        el.rename_ns_deep(NS_CLIENT, NS_COMPONENT);
        if let Some(a) = &self.auth {
            msgauth::stanza::sign(&a.sender, &mut el)?;
        }
        self.framed.send(&el.to_xml(NS_COMPONENT)).await.map_err(FramedError::Io)?;
        Ok(())
    }

    /// The next stanza that passes authentication, in `jabber:client`
    /// terms and without its tag.
    pub async fn next(&mut self, timeout: Duration) -> Result<Element, LinkError> {
        loop {
            let mut el = match self.framed.next_event(timeout).await? {
                StreamEvent::Stanza(e) if e.name() == "error" => return Err(LinkError::Refused(describe(&e))),
                StreamEvent::Stanza(e) => e,
                StreamEvent::End => return Err(FramedError::Closed.into()),
                StreamEvent::Header(_) => return Err(LinkError::Refused("unexpected stream restart".into())),
            };
            if let Some(a) = &self.auth {
                match msgauth::stanza::verify(&a.receiver, &mut el) {
                    Ok(v) if v.source == a.server_source => {
                        if let Some((first, last)) = v.lost {
                            tracing::warn!(first, last, "stanzas from the server were lost");
                        }
                    }
                    Ok(v) => {
                        tracing::warn!(source = %v.source, "stanza signed by an unexpected source: dropped");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(reason = %e, "stanza from the server failed authentication: dropped");
                        continue;
                    }
                }
            }
            el.rename_ns_deep(NS_COMPONENT, NS_CLIENT);
            return Ok(el);
        }
    }
}

fn describe(e: &Element) -> String {
    let cond = e.children().next().map(|c| c.name().to_owned()).unwrap_or_else(|| e.name().to_owned());
    let text = e.children().find(|c| c.name() == "text").map(|t| format!(" ({})", t.text())).unwrap_or_default();
    format!("{cond}{text}")
}
