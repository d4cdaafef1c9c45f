//! An SMTP client (RFC 5321) for the PKI outbox: the key-delivery e-mails
//! go to the site's mail server over STARTTLS (RFC 3207), logging in with
//! AUTH CRAM-MD5 (RFC 2195, the seed's choice: the password never crosses
//! the wire) or PLAIN (RFC 4616, only inside TLS). Every reply is bounded
//! in length and count and every step in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line read, most lines in one reply.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 100;
/// Largest message sent.
pub const MAX_MESSAGE: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the mail server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("the mail server refused {stage}: {code} {text}")]
    Refused { stage: &'static str, code: u16, text: String },
    #[error("{0}")]
    Policy(String),
    #[error("the mail server's reply is malformed: {0}")]
    Malformed(String),
}

/// How to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// CRAM-MD5 if offered, else PLAIN (inside TLS only).
    Auto,
    CramMd5,
    Plain,
}

pub struct SmtpAuth {
    pub user: String,
    pub password: zeroize::Zeroizing<String>,
    pub mechanism: Mechanism,
}

pub struct SmtpOptions {
    pub addr: SocketAddr,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// Our name in EHLO.
    pub helo: String,
    /// Use STARTTLS (required unless false: then no PLAIN login either).
    pub starttls: bool,
    /// CA certificates (DER) that may have issued the server's certificate.
    pub roots: Vec<Vec<u8>>,
    pub auth: Option<SmtpAuth>,
    pub timeout: Duration,
}

/// One message: envelope sender, recipients, and the RFC 5322 text.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a [&'a str],
    pub data: &'a [u8],
}

struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

struct Conn<S> {
    io: BufReader<S>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let mut limited = (&mut self.io).take(MAX_LINE as u64 + 1);
            let n = tokio::time::timeout(self.timeout, limited.read_until(b'\n', &mut line))
                .await
                .map_err(|_| SmtpError::Timeout(self.timeout))??;
            if n == 0 {
                return Err(SmtpError::Malformed("the connection closed".into()));
            }
            if line.len() > MAX_LINE {
                return Err(SmtpError::Malformed("a reply line is too long".into()));
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
            let Some(code) = code else { return Err(SmtpError::Malformed(format!("no reply code in {line:?}"))) };
            let last = line.as_bytes().get(3).is_none_or(|b| *b == b' ');
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if lines.len() > MAX_LINES {
                return Err(SmtpError::Malformed("too many reply lines".into()));
            }
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), SmtpError> {
        let w = self.io.get_mut();
        tokio::time::timeout(self.timeout, async {
            w.write_all(line.as_bytes()).await?;
            w.write_all(b"\r\n").await?;
            w.flush().await
        })
        .await
        .map_err(|_| SmtpError::Timeout(self.timeout))??;
        Ok(())
    }

    /// Sends `line` and expects a reply in `ok`.
    async fn command(&mut self, stage: &'static str, line: &str, ok: &[u16]) -> Result<Reply, SmtpError> {
        self.send(line).await?;
        self.expect(stage, ok).await
    }

    async fn expect(&mut self, stage: &'static str, ok: &[u16]) -> Result<Reply, SmtpError> {
        let r = self.reply().await?;
        if ok.contains(&r.code) {
            Ok(r)
        } else {
            Err(SmtpError::Refused { stage, code: r.code, text: r.text() })
        }
    }

    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>, SmtpError> {
        let r = self.command("EHLO", &format!("EHLO {helo}"), &[250]).await?;
        Ok(r.lines.iter().skip(1).map(|l| l.to_ascii_uppercase()).collect())
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Sends one message.
pub async fn send(opts: &SmtpOptions, env: &Envelope<'_>) -> Result<(), SmtpError> {
    if env.data.len() > MAX_MESSAGE {
        return Err(SmtpError::Policy(format!("the message is larger than {MAX_MESSAGE} bytes")));
    }
    for a in std::iter::once(env.from).chain(env.to.iter().copied()) {
        if a.is_empty()
            || a.len() > 254
            || a.bytes().any(|b| b.is_ascii_control() || b == b'<' || b == b'>' || b == b' ')
        {
            return Err(SmtpError::Policy(format!("{a:?} is not a usable mail address")));
        }
    }
    let tcp = TcpStream::connect(opts.addr).await.map_err(|source| SmtpError::Connect { addr: opts.addr, source })?;
    let mut c = Conn { io: BufReader::new(tcp), timeout: opts.timeout };
    c.expect("the connection", &[220]).await?;
    let caps = c.ehlo(&opts.helo).await?;
    if !opts.starttls {
        return deliver(c, opts, env, &caps, false).await;
    }
    if !caps.iter().any(|l| l == "STARTTLS") {
        return Err(SmtpError::Policy("the mail server does not offer STARTTLS".into()));
    }
    c.command("STARTTLS", "STARTTLS", &[220]).await?;
    let tcp = c.io.into_inner();
    let mut roots = rustls::RootCertStore::empty();
    for r in &opts.roots {
        roots.add(CertificateDer::from(r.clone())).map_err(|e| SmtpError::Tls(e.to_string()))?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SmtpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(opts.server_name.clone()).map_err(|e| SmtpError::Tls(e.to_string()))?;
    let tls = tokio::time::timeout(opts.timeout, tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp))
        .await
        .map_err(|_| SmtpError::Timeout(opts.timeout))?
        .map_err(|e| SmtpError::Tls(e.to_string()))?;
    let mut c = Conn { io: BufReader::new(tls), timeout: opts.timeout };
    let caps = c.ehlo(&opts.helo).await?;
    deliver(c, opts, env, &caps, true).await
}

async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: Conn<S>,
    opts: &SmtpOptions,
    env: &Envelope<'_>,
    caps: &[String],
    tls: bool,
) -> Result<(), SmtpError> {
    if let Some(auth) = &opts.auth {
        let offered: Vec<&str> =
            caps.iter().filter_map(|l| l.strip_prefix("AUTH ")).flat_map(|m| m.split_whitespace()).collect();
        let cram = offered.contains(&"CRAM-MD5");
        let plain = offered.contains(&"PLAIN");
        let mech = match auth.mechanism {
            Mechanism::CramMd5 | Mechanism::Auto if cram => Mechanism::CramMd5,
            Mechanism::Plain | Mechanism::Auto if plain => Mechanism::Plain,
            m => {
                return Err(SmtpError::Policy(format!("the mail server does not offer {m:?} (it offers {offered:?})")))
            }
        };
        match mech {
            Mechanism::CramMd5 => {
                let r = c.command("AUTH CRAM-MD5", "AUTH CRAM-MD5", &[334]).await?;
                let challenge = b64()
                    .decode(r.lines.first().map(|l| l.trim()).unwrap_or(""))
                    .map_err(|_| SmtpError::Malformed("the CRAM-MD5 challenge is not Base64".into()))?;
                let answer = snow_crypto::cram_md5::response(&auth.user, auth.password.as_bytes(), &challenge);
                c.command("the CRAM-MD5 login", &b64().encode(answer), &[235]).await?;
            }
            _ => {
                if !tls {
                    return Err(SmtpError::Policy("AUTH PLAIN would send the password in clear: use STARTTLS".into()));
                }
                let token =
                    zeroize::Zeroizing::new(b64().encode(format!("\0{}\0{}", auth.user, auth.password.as_str())));
                c.command("the PLAIN login", &format!("AUTH PLAIN {}", token.as_str()), &[235]).await?;
            }
        }
    }
    c.command("the sender", &format!("MAIL FROM:<{}>", env.from), &[250]).await?;
    for to in env.to {
        c.command("the recipient", &format!("RCPT TO:<{to}>"), &[250, 251]).await?;
    }
    c.command("DATA", "DATA", &[354]).await?;
    let body = dot_stuff(env.data);
    let w = c.io.get_mut();
    tokio::time::timeout(c.timeout, async {
        w.write_all(&body).await?;
        w.write_all(b".\r\n").await?;
        w.flush().await
    })
    .await
    .map_err(|_| SmtpError::Timeout(c.timeout))??;
    c.expect("the message", &[250]).await?;
    let _ = c.command("QUIT", "QUIT", &[221]).await;
    Ok(())
}

/// CRLF line ends, a leading dot doubled (RFC 5321 §4.5.2), and a final
/// CRLF.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 50 + 2);
    let text = data.strip_suffix(b"\n").unwrap_or(data);
    for line in text.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_stuffing() {
        assert_eq!(super::dot_stuff(b"a\n.b\r\n..c\n"), b"a\r\n..b\r\n...c\r\n");
        assert_eq!(super::dot_stuff(b"x"), b"x\r\n");
    }
}
