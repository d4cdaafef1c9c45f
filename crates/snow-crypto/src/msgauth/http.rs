//! The HTTP/1.1 carrier: the seed's extension headers,
//!
//! ```text
//! $$ServerHash: BASE64(source)
//! $$Hmac: BASE64(mac)
//! $$Kid: key id      $$Epoch: …      $$Seq: …      $$Ts: …
//! ```
//!
//! on requests and responses. The MAC covers the method, path and query
//! and the body of a request, or the status and body of a response. The
//! inbound side checks and strips the headers; a request that fails gets
//! `401` with the reason in the body and never reaches the service.
//!
//! [`MsgAuthLayer`] is a `tower` layer for both sides: `server` verifies
//! requests and signs responses (axum, hyper servers), `client` signs
//! requests and verifies responses (hyper clients). Bodies are read
//! whole, up to [`MAX_BODY`].
//!
//! A confidential sender seals the body: it travels as the raw bytes
//! `nonce ‖ ciphertext ‖ tag` with the header `$$Enc: aes256-gcm`, and
//! the MAC covers the head and the sealed body. The method, path and
//! query, the status and every other header stay visible (put nothing
//! secret there); a `Content-Length` is set to the length actually sent
//! ([`super::confidential`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use super::{confidential, valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

/// Largest body authenticated (it is read whole).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub const H_SOURCE: HeaderName = HeaderName::from_static("$$serverhash");
pub const H_HMAC: HeaderName = HeaderName::from_static("$$hmac");
pub const H_KID: HeaderName = HeaderName::from_static("$$kid");
pub const H_EPOCH: HeaderName = HeaderName::from_static("$$epoch");
pub const H_SEQ: HeaderName = HeaderName::from_static("$$seq");
pub const H_TS: HeaderName = HeaderName::from_static("$$ts");
/// The confidentiality marker: `$$Enc: aes256-gcm` on a sealed body.
pub const H_ENC: HeaderName = HeaderName::from_static("$$enc");

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// What a request's MAC covers: this head, then the body.
pub fn request_head(parts: &http::request::Parts) -> String {
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("REQUEST\0{}\0{target}\0", parts.method)
}

/// What a response's MAC covers: this head, then the body.
pub fn response_head(parts: &http::response::Parts) -> String {
    format!("RESPONSE\0{}\0", parts.status.as_u16())
}

fn feed<'a>(head: &'a str, body: &'a [u8]) -> impl FnOnce(&mut super::Mac) + 'a {
    move |m| {
        m.update(head.as_bytes());
        m.update(body);
    }
}

fn put(headers: &mut HeaderMap, tag: &Tag) -> Result<(), AuthError> {
    let v = |s: String| HeaderValue::try_from(s).map_err(|_| AuthError::Malformed("header value".into()));
    headers.insert(H_SOURCE, v(b64().encode(&tag.source))?);
    headers.insert(H_HMAC, v(tag.mac_base64())?);
    headers.insert(H_KID, v(tag.kid.clone())?);
    headers.insert(H_EPOCH, v(tag.epoch.to_string())?);
    headers.insert(H_SEQ, v(tag.seq.to_string())?);
    headers.insert(H_TS, v(tag.ts.to_string())?);
    Ok(())
}

/// Reads the tag from `headers` and removes the headers; true if the
/// body is sealed (`$$Enc`).
fn take(headers: &mut HeaderMap) -> Result<(Tag, bool), AuthError> {
    if !headers.contains_key(H_HMAC) {
        return Err(AuthError::Missing);
    }
    let sealed = {
        let mut all = headers.get_all(&H_ENC).iter();
        match (all.next(), all.next()) {
            (None, _) => false,
            (Some(v), None) => {
                confidential::check_alg(v.to_str().ok())?;
                true
            }
            _ => return Err(AuthError::Malformed(format!("header {H_ENC} repeated"))),
        }
    };
    headers.remove(&H_ENC);
    let mut get = |h: HeaderName| -> Result<String, AuthError> {
        let mut all = headers.get_all(&h).iter();
        let (Some(v), None) = (all.next(), all.next()) else {
            return Err(AuthError::Malformed(format!("header {h} missing or repeated")));
        };
        let s = v.to_str().map_err(|_| AuthError::Malformed(format!("header {h} is not text")))?.to_owned();
        headers.remove(&h);
        Ok(s)
    };
    let bad = |what: &str| AuthError::Malformed(format!("header {what} is malformed"));
    let source = b64()
        .decode(get(H_SOURCE)?)
        .ok()
        .and_then(|s| String::from_utf8(s).ok())
        .filter(|s| valid_name(s))
        .ok_or_else(|| bad("$$ServerHash"))?;
    let mac = Tag::decode_mac(&get(H_HMAC)?)?;
    let kid = get(H_KID)?;
    if !valid_name(&kid) {
        return Err(bad("$$Kid"));
    }
    let tag = Tag {
        source,
        kid,
        epoch: get(H_EPOCH)?.parse().map_err(|_| bad("$$Epoch"))?,
        seq: get(H_SEQ)?.parse().map_err(|_| bad("$$Seq"))?,
        ts: get(H_TS)?.parse().map_err(|_| bad("$$Ts"))?,
        mac,
    };
    Ok((tag, sealed))
}

/// A `Content-Length` already there now says `len`.
fn fix_length(headers: &mut HeaderMap, len: usize) {
    if headers.contains_key(http::header::CONTENT_LENGTH) {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// Signs a message whose MAC head is `head`: the body to send (the same
/// one, or sealed for a confidential sender).
fn sign(sender: &Sender, head: &str, headers: &mut HeaderMap, body: Bytes) -> Result<Bytes, AuthError> {
    let mut draft = sender.draft()?;
    let body = if sender.is_confidential() {
        let sealed = Bytes::from(draft.seal(Carrier::Http, &body)?);
        headers.insert(H_ENC, HeaderValue::from_static(confidential::ALG));
        fix_length(headers, sealed.len());
        sealed
    } else {
        body
    };
    let tag = draft.finish(Carrier::Http, feed(head, &body))?;
    put(headers, &tag)?;
    Ok(body)
}

/// Verifies a message whose MAC head is `head`: the body to hand on (the
/// same one, or decrypted).
fn verify(
    receiver: &Receiver,
    head: &str,
    (tag, sealed): (Tag, bool),
    headers: &mut HeaderMap,
    body: Bytes,
) -> Result<(Verified, Bytes), AuthError> {
    if !sealed {
        return Ok((receiver.verify_with(Carrier::Http, &tag, feed(head, &body))?, body));
    }
    let (v, plain) = receiver.verify_sealed(Carrier::Http, &tag, feed(head, &body), &body)?;
    fix_length(headers, plain.len());
    Ok((v, Bytes::from(plain)))
}

/// Outbound filter for a request: adds the headers and returns the body to
/// send, sealed if the sender is confidential (the headers then say so).
pub fn sign_request(
    sender: &Sender,
    parts: &mut http::request::Parts,
    body: impl Into<Bytes>,
) -> Result<Bytes, AuthError> {
    let head = request_head(parts);
    sign(sender, &head, &mut parts.headers, body.into())
}

/// Inbound filter for a request: checks and removes the headers and
/// returns the body to hand on, decrypted if it was sealed.
pub fn verify_request(
    receiver: &Receiver,
    parts: &mut http::request::Parts,
    body: impl Into<Bytes>,
) -> Result<(Verified, Bytes), AuthError> {
    let tag = take(&mut parts.headers)?;
    verify(receiver, &request_head(parts), tag, &mut parts.headers, body.into())
}

/// Outbound filter for a response, as [`sign_request`].
pub fn sign_response(
    sender: &Sender,
    parts: &mut http::response::Parts,
    body: impl Into<Bytes>,
) -> Result<Bytes, AuthError> {
    let head = response_head(parts);
    sign(sender, &head, &mut parts.headers, body.into())
}

/// Inbound filter for a response, as [`verify_request`].
pub fn verify_response(
    receiver: &Receiver,
    parts: &mut http::response::Parts,
    body: impl Into<Bytes>,
) -> Result<(Verified, Bytes), AuthError> {
    let tag = take(&mut parts.headers)?;
    verify(receiver, &response_head(parts), tag, &mut parts.headers, body.into())
}

/// Which side of the connection the layer sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Verifies requests, signs responses.
    Server,
    /// Signs requests, verifies responses.
    Client,
}

/// The filter as a `tower` layer.
#[derive(Clone)]
pub struct MsgAuthLayer {
    sender: Arc<Sender>,
    receiver: Arc<Receiver>,
    side: Side,
}

impl MsgAuthLayer {
    pub fn server(sender: Arc<Sender>, receiver: Arc<Receiver>) -> Self {
        MsgAuthLayer { sender, receiver, side: Side::Server }
    }

    pub fn client(sender: Arc<Sender>, receiver: Arc<Receiver>) -> Self {
        MsgAuthLayer { sender, receiver, side: Side::Client }
    }
}

impl<S> tower_layer::Layer<S> for MsgAuthLayer {
    type Service = MsgAuth<S>;
    fn layer(&self, inner: S) -> MsgAuth<S> {
        MsgAuth { inner, layer: self.clone() }
    }
}

/// The service [`MsgAuthLayer`] wraps around another.
#[derive(Clone)]
pub struct MsgAuth<S> {
    inner: S,
    layer: MsgAuthLayer,
}

/// A failure of the wrapped service, or (client side) a response that did
/// not authenticate, or a body that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpAuthError<E> {
    #[error(transparent)]
    Inner(E),
    #[error("the response did not authenticate: {0}")]
    Auth(AuthError),
    #[error("cannot read the body: {0}")]
    Body(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn read_all<B>(body: B) -> Result<Bytes, String>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Limited::new(body, MAX_BODY).collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string())
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

impl<S, B, RB> tower_service::Service<Request<B>> for MsgAuth<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: http_body::Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = HttpAuthError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(HttpAuthError::Inner)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let body = match read_all(body).await {
                Ok(b) => b,
                Err(e) if layer.side == Side::Server => {
                    return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, format!("cannot read the request: {e}\n")))
                }
                Err(e) => return Err(HttpAuthError::Body(e)),
            };
            let body = match layer.side {
                Side::Server => match verify_request(&layer.receiver, &mut parts, body) {
                    Ok((_, body)) => body,
                    Err(e) => {
                        return Ok(plain(StatusCode::UNAUTHORIZED, format!("message authentication failed: {e}\n")))
                    }
                },
                Side::Client => sign_request(&layer.sender, &mut parts, body).map_err(HttpAuthError::Auth)?,
            };
            let resp = inner.call(Request::from_parts(parts, Full::new(body))).await.map_err(HttpAuthError::Inner)?;
            let (mut parts, body) = resp.into_parts();
            let body = read_all(body).await.map_err(HttpAuthError::Body)?;
            let body = match layer.side {
                Side::Server => sign_response(&layer.sender, &mut parts, body).map_err(HttpAuthError::Auth)?,
                Side::Client => verify_response(&layer.receiver, &mut parts, body).map_err(HttpAuthError::Auth)?.1,
            };
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::{check_carrier, check_confidential_carrier};

    fn request(i: u32) -> (http::request::Parts, Vec<u8>) {
        let (p, b) =
            Request::post(format!("/stats?week={i}")).body(format!("body {i}").into_bytes()).unwrap().into_parts();
        (p, b)
    }

    /// The wire form for the shared harness: the request's head and body
    /// as text.
    fn wire(parts: &http::request::Parts, body: &[u8]) -> String {
        let mut s = format!("{} {}\n", parts.method, parts.uri);
        for (k, v) in &parts.headers {
            s.push_str(&format!("{k}: {}\n", v.to_str().unwrap()));
        }
        s + "\n" + std::str::from_utf8(body).unwrap()
    }

    fn unwire(s: &str) -> (http::request::Parts, Vec<u8>) {
        let (head, body) = s.split_once("\n\n").unwrap();
        let mut lines = head.lines();
        let (method, uri) = lines.next().unwrap().split_once(' ').unwrap();
        let mut b = Request::builder().method(method).uri(uri);
        for l in lines {
            let (k, v) = l.split_once(": ").unwrap();
            b = b.header(k, v);
        }
        let (p, _) = b.body(()).unwrap().into_parts();
        (p, body.as_bytes().to_vec())
    }

    /// The wire form with a binary body: the head as text, the body raw.
    fn wire_bytes(parts: &http::request::Parts, body: &[u8]) -> Vec<u8> {
        let mut s = format!("{} {}\n", parts.method, parts.uri);
        for (k, v) in &parts.headers {
            s.push_str(&format!("{k}: {}\n", v.to_str().unwrap()));
        }
        let mut w = (s + "\n").into_bytes();
        w.extend_from_slice(body);
        w
    }

    fn unwire_bytes(w: &[u8]) -> (http::request::Parts, Vec<u8>) {
        let i = w.windows(2).position(|x| x == b"\n\n").unwrap();
        let (p, _) = unwire(std::str::from_utf8(&w[..i + 2]).unwrap());
        (p, w[i + 2..].to_vec())
    }

    fn secret_request(i: u32) -> (http::request::Parts, Vec<u8>) {
        let body = format!("Influensa A: {i} positive i 5401");
        let (p, b) = Request::post(format!("/stats?week={i}"))
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body.into_bytes())
            .unwrap()
            .into_parts();
        (p, b)
    }

    #[test]
    fn the_confidential_http_carrier() {
        check_confidential_carrier(
            |s, i| {
                let (mut p, b) = secret_request(i);
                let b = sign_request(s, &mut p, b).unwrap();
                if !s.is_confidential() {
                    assert!(!p.headers.contains_key(H_ENC));
                    return wire_bytes(&p, &b);
                }
                assert_eq!(p.headers[&H_ENC], "aes256-gcm");
                assert_eq!(p.headers[http::header::CONTENT_LENGTH], b.len().to_string().as_str());
                assert_eq!(p.headers[http::header::CONTENT_TYPE], "text/plain", "headers stay visible");
                assert_eq!(p.uri.path(), "/stats", "the path stays visible");
                wire_bytes(&p, &b)
            },
            |r, w| {
                let (mut p, b) = unwire_bytes(w);
                verify_request(r, &mut p, b).map(|(v, b)| (v, wire_bytes(&p, &b)))
            },
            |i| {
                let (p, b) = secret_request(i);
                wire_bytes(&p, &b)
            },
            |w| {
                let mut w = w.to_vec();
                let last = w.len() - 1;
                w[last] ^= 1;
                w
            },
            "Influensa",
        );
    }

    /// A response both ways, and the marker is refused on a receiver that
    /// does not expect it even when the headers are otherwise clear.
    #[test]
    fn a_confidential_response() {
        let s = crate::msgauth::tests::store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap().confidential(true);
        let rx = Receiver::new(Arc::clone(&s)).confidential(true);
        let (mut p, _) = Response::builder().status(200).body(()).unwrap().into_parts();
        let b = sign_response(&tx, &mut p, &b"week 47: 12 positive"[..]).unwrap();
        assert!(!crate::msgauth::tests::contains(&b, b"positive"));
        let mut q = p.clone();
        assert_eq!(&verify_response(&rx, &mut p, b.clone()).unwrap().1[..], b"week 47: 12 positive");
        assert!(!p.headers.contains_key(H_ENC) && !p.headers.contains_key(H_HMAC));
        let e = verify_response(&Receiver::new(s), &mut q, b).unwrap_err();
        assert!(matches!(e, AuthError::UnexpectedEncryption(_)), "{e:?}");
    }

    #[test]
    fn the_http_carrier() {
        check_carrier(
            |s, i| {
                let (mut p, b) = request(i);
                let b = sign_request(s, &mut p, b).unwrap();
                wire(&p, &b)
            },
            |r, w| {
                let (mut p, b) = unwire(w);
                verify_request(r, &mut p, b).map(|(v, b)| (v, wire(&p, &b)))
            },
            |i| {
                let (p, b) = request(i);
                wire(&p, &b)
            },
        );
    }
}
