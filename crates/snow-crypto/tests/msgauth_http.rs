//! The HTTP filter as a tower layer on a real hyper server and client on
//! 127.0.0.1: signed requests pass and the service never sees the tags;
//! unsigned, changed and replayed requests get 401 with the reason; a
//! client refuses an unsigned response. Confidential on both sides: the
//! bodies cross the sockets sealed (a relay records every byte).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use snow_crypto::msgauth::http::{sign_request, HttpAuthError, MsgAuthLayer};
use snow_crypto::msgauth::{keys, Algorithm, AuthError, KeyStore, Receiver, Sender};
use tower_layer::Layer;
use tower_service::Service;

/// Answers with the request body and the names of any `$$` headers it saw.
#[derive(Clone)]
struct Echo;

impl<B> Service<Request<B>> for Echo
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(async move {
            let tags: Vec<String> =
                req.headers().keys().map(|k| k.to_string()).filter(|k| k.starts_with("$$")).collect();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{} | tags seen: {}", String::from_utf8_lossy(&body), tags.join(","));
            Ok(Response::new(Full::new(Bytes::from(text))))
        })
    }
}

/// A hyper HTTP/1 connection as a tower service.
#[derive(Clone)]
struct Client(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>);

impl Service<Request<Full<Bytes>>> for Client {
    type Response = Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        let c = Arc::clone(&self.0);
        Box::pin(async move { c.lock().await.send_request(req).await })
    }
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    Client(Arc::new(tokio::sync::Mutex::new(send)))
}

fn stores() -> (Arc<KeyStore>, Arc<KeyStore>) {
    // Each side knows both keys; each signs with its own.
    let text = keys::generate_line("po.example", "k1", Algorithm::HmacSha256, 0).unwrap()
        + &keys::generate_line("admin-client", "k1", Algorithm::HmacSha256, 0).unwrap();
    let s = Arc::new(KeyStore::parse(&text, 0).unwrap());
    (Arc::clone(&s), s)
}

async fn serve(store: Arc<KeyStore>, layered: bool) -> std::net::SocketAddr {
    serve_with(store, layered, false).await
}

async fn serve_with(store: Arc<KeyStore>, layered: bool, confidential: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = MsgAuthLayer::server(
        Arc::new(Sender::new(Arc::clone(&store), "po.example").unwrap().confidential(confidential)),
        Arc::new(Receiver::new(store).confidential(confidential)),
    );
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let io = TokioIo::new(tcp);
            let layer = layer.clone();
            tokio::spawn(async move {
                let b = hyper::server::conn::http1::Builder::new();
                if layered {
                    let svc = hyper_util::service::TowerToHyperService::new(layer.layer(Echo));
                    let _ = b.serve_connection(io, svc).await;
                } else {
                    let _ = b.serve_connection(io, hyper_util::service::TowerToHyperService::new(Echo)).await;
                }
            });
        }
    });
    addr
}

async fn text(r: Response<impl http_body::Body<Error = impl std::fmt::Debug>>) -> (StatusCode, String) {
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_layer_on_both_sides_over_real_sockets() {
    let (server_keys, client_keys) = stores();
    let addr = serve(server_keys, true).await;
    let tx = Arc::new(Sender::new(Arc::clone(&client_keys), "admin-client").unwrap());
    let rx = Arc::new(Receiver::new(Arc::clone(&client_keys)));
    let mut client = MsgAuthLayer::client(Arc::clone(&tx), Arc::clone(&rx)).layer(connect(addr).await);

    // Signed both ways; the service never sees the tags.
    let req = Request::post("/stats?week=47").body(Full::new(Bytes::from("INFA 5401"))).unwrap();
    let (status, body) = text(client.call(req).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "INFA 5401 | tags seen: "));

    // Without the layer: refused with the reason.
    let mut raw = connect(addr).await;
    let (status, body) = text(raw.call(Request::get("/").body(Full::default()).unwrap()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("carries no authentication"), "{body}");

    // Signed, then changed on the way; and the same signed request twice.
    let (mut parts, _) = Request::post("/x").body(()).unwrap().into_parts();
    sign_request(&tx, &mut parts, &b"original"[..]).unwrap();
    let changed = Request::from_parts(parts.clone(), Full::new(Bytes::from("changed!")));
    let (status, body) = text(raw.call(changed).await.unwrap()).await;
    assert!(status == StatusCode::UNAUTHORIZED && body.contains("does not match"), "{body}");
    let (mut parts, _) = Request::post("/y").body(()).unwrap().into_parts();
    sign_request(&tx, &mut parts, &b"once"[..]).unwrap();
    let first = text(raw.call(Request::from_parts(parts.clone(), Full::new(Bytes::from("once")))).await.unwrap()).await;
    assert_eq!(first.0, StatusCode::OK);
    let again = text(raw.call(Request::from_parts(parts, Full::new(Bytes::from("once")))).await.unwrap()).await;
    assert!(again.0 == StatusCode::UNAUTHORIZED && again.1.contains("replayed"), "{}", again.1);

    // A server without the filter: its answer is refused by the client.
    let plain = serve(Arc::clone(&client_keys), false).await;
    let mut client = MsgAuthLayer::client(tx, rx).layer(connect(plain).await);
    let r = client.call(Request::get("/").body(Full::<Bytes>::default()).unwrap()).await;
    assert!(matches!(r, Err(HttpAuthError::Auth(AuthError::Missing))), "{:?}", r.err());
}

/// A relay on 127.0.0.1 in front of `to`, keeping every byte it carries
/// (both directions) in `seen`.
async fn recording_relay(to: std::net::SocketAddr, seen: Arc<std::sync::Mutex<Vec<u8>>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (a, _) = listener.accept().await.unwrap();
            let b = tokio::net::TcpStream::connect(to).await.unwrap();
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            tokio::spawn(copy(ar, bw, Arc::clone(&seen)));
            tokio::spawn(copy(br, aw, Arc::clone(&seen)));
        }
    });
    addr
}

async fn copy(
    mut r: impl tokio::io::AsyncRead + Unpin,
    mut w: impl tokio::io::AsyncWrite + Unpin,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

fn seen_contains(seen: &std::sync::Mutex<Vec<u8>>, what: &str) -> bool {
    seen.lock().unwrap().windows(what.len()).any(|w| w == what.as_bytes())
}

#[tokio::test]
async fn confidential_bodies_cross_the_sockets_sealed() {
    let (server_keys, client_keys) = stores();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let addr = recording_relay(serve_with(server_keys, true, true).await, Arc::clone(&seen)).await;
    let tx = Arc::new(Sender::new(Arc::clone(&client_keys), "admin-client").unwrap().confidential(true));
    let rx = Arc::new(Receiver::new(Arc::clone(&client_keys)).confidential(true));
    let mut client = MsgAuthLayer::client(Arc::clone(&tx), Arc::clone(&rx)).layer(connect(addr).await);

    // The service and the caller see the plaintext; the sockets do not.
    let req = Request::post("/stats?week=47").body(Full::new(Bytes::from("Influensa A 5401"))).unwrap();
    let (status, body) = text(client.call(req).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Influensa A 5401 | tags seen: "));
    assert!(seen_contains(&seen, "POST /stats?week=47"), "the request line is visible");
    assert!(seen_contains(&seen, "$$enc: aes256-gcm"), "the marker is on the wire");
    assert!(!seen_contains(&seen, "Influensa"), "the plaintext crossed the socket");
    assert!(!seen_contains(&seen, "tags seen"), "the response's plaintext crossed the socket");

    // A clear request to the confidential server: 401, saying why.
    let mut raw = connect(addr).await;
    let (mut parts, _) = Request::post("/y").body(()).unwrap().into_parts();
    let clear_tx = Sender::new(Arc::clone(&client_keys), "admin-client").unwrap();
    let b = sign_request(&clear_tx, &mut parts, &b"clear"[..]).unwrap();
    let (status, body) = text(raw.call(Request::from_parts(parts, Full::new(b))).await.unwrap()).await;
    assert!(status == StatusCode::UNAUTHORIZED && body.contains("not encrypted"), "{body}");

    // A sealed request to a server without confidentiality: 401, saying
    // why (and the layered client refuses that unsigned answer).
    let plain_server = serve(Arc::clone(&client_keys), true).await;
    let mut raw = connect(plain_server).await;
    let (mut parts, _) = Request::post("/z").body(()).unwrap().into_parts();
    let b = sign_request(&tx, &mut parts, &b"sealed"[..]).unwrap();
    let (status, body) = text(raw.call(Request::from_parts(parts, Full::new(b))).await.unwrap()).await;
    assert!(status == StatusCode::UNAUTHORIZED && body.contains("confidentiality is not on here"), "{body}");
    let mut client = MsgAuthLayer::client(tx, rx).layer(connect(plain_server).await);
    let r = client.call(Request::post("/z").body(Full::new(Bytes::from("sealed"))).unwrap()).await;
    assert!(matches!(r, Err(HttpAuthError::Auth(AuthError::Missing))), "{:?}", r.err());
}
