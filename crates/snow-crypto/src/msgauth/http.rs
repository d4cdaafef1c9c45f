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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use super::{valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

/// Largest body authenticated (it is read whole).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub const H_SOURCE: HeaderName = HeaderName::from_static("$$serverhash");
pub const H_HMAC: HeaderName = HeaderName::from_static("$$hmac");
pub const H_KID: HeaderName = HeaderName::from_static("$$kid");
pub const H_EPOCH: HeaderName = HeaderName::from_static("$$epoch");
pub const H_SEQ: HeaderName = HeaderName::from_static("$$seq");
pub const H_TS: HeaderName = HeaderName::from_static("$$ts");

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

/// Reads the tag from `headers` and removes the headers.
fn take(headers: &mut HeaderMap) -> Result<Tag, AuthError> {
    if !headers.contains_key(H_HMAC) {
        return Err(AuthError::Missing);
    }
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
    Ok(Tag {
        source,
        kid,
        epoch: get(H_EPOCH)?.parse().map_err(|_| bad("$$Epoch"))?,
        seq: get(H_SEQ)?.parse().map_err(|_| bad("$$Seq"))?,
        ts: get(H_TS)?.parse().map_err(|_| bad("$$Ts"))?,
        mac,
    })
}

pub fn sign_request(sender: &Sender, parts: &mut http::request::Parts, body: &[u8]) -> Result<(), AuthError> {
    let tag = sender.sign_with(Carrier::Http, feed(&request_head(parts), body))?;
    put(&mut parts.headers, &tag)
}

pub fn verify_request(
    receiver: &Receiver,
    parts: &mut http::request::Parts,
    body: &[u8],
) -> Result<Verified, AuthError> {
    let tag = take(&mut parts.headers)?;
    receiver.verify_with(Carrier::Http, &tag, feed(&request_head(parts), body))
}

pub fn sign_response(sender: &Sender, parts: &mut http::response::Parts, body: &[u8]) -> Result<(), AuthError> {
    let tag = sender.sign_with(Carrier::Http, feed(&response_head(parts), body))?;
    put(&mut parts.headers, &tag)
}

pub fn verify_response(
    receiver: &Receiver,
    parts: &mut http::response::Parts,
    body: &[u8],
) -> Result<Verified, AuthError> {
    let tag = take(&mut parts.headers)?;
    receiver.verify_with(Carrier::Http, &tag, feed(&response_head(parts), body))
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
            match layer.side {
                Side::Server => {
                    if let Err(e) = verify_request(&layer.receiver, &mut parts, &body) {
                        return Ok(plain(StatusCode::UNAUTHORIZED, format!("message authentication failed: {e}\n")));
                    }
                }
                Side::Client => sign_request(&layer.sender, &mut parts, &body).map_err(HttpAuthError::Auth)?,
            }
            let resp = inner.call(Request::from_parts(parts, Full::new(body))).await.map_err(HttpAuthError::Inner)?;
            let (mut parts, body) = resp.into_parts();
            let body = read_all(body).await.map_err(HttpAuthError::Body)?;
            match layer.side {
                Side::Server => sign_response(&layer.sender, &mut parts, &body).map_err(HttpAuthError::Auth)?,
                Side::Client => {
                    verify_response(&layer.receiver, &mut parts, &body).map_err(HttpAuthError::Auth)?;
                }
            }
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::check_carrier;

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

    #[test]
    fn the_http_carrier() {
        check_carrier(
            |s, i| {
                let (mut p, b) = request(i);
                sign_request(s, &mut p, &b).unwrap();
                wire(&p, &b)
            },
            |r, w| {
                let (mut p, b) = unwire(w);
                verify_request(r, &mut p, &b).map(|v| (v, wire(&p, &b)))
            },
            |i| {
                let (p, b) = request(i);
                wire(&p, &b)
            },
        );
    }
}
