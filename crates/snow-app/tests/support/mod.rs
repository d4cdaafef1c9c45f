//! A plain HTTP/1.1 client over a real socket (what a browser or an
//! attacker's page sends, header by header) and the app started on
//! 127.0.0.1 with a key store in a temporary directory.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The CSRF token in the page's forms.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("csrf=")? + 5;
        Some(self.body[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect())
    }
}

/// One request; `headers` as written (Host included by the caller when
/// it matters, else the right one).
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Answer { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The session cookie (`name=value`) a `/start` answer sets.
pub fn cookie(a: &Answer) -> Option<String> {
    a.header("set-cookie").and_then(|c| c.split(';').next()).map(str::to_owned)
}

/// The app on a free port; its key store and state in `dir`.
pub async fn start_app(dir: &std::path::Path, server: SocketAddr, labs: Vec<String>) -> snow_app::RunningApp {
    snow_app::start(snow_app::AppOptions {
        keystore: dir.join("keystore"),
        state_file: dir.join("app-state.json"),
        server_addr: server,
        direct_tls: false,
        labs,
        alert_service: None,
        min_passphrase_length: 12,
        bind: "127.0.0.1:0".parse().unwrap(),
        lang: snow_app::Lang::En,
    })
    .await
    .unwrap()
}

/// Opens the app with its one-time link: the cookie.
pub async fn open(app: &snow_app::RunningApp) -> String {
    let path = app.url.split_once(&format!("{}", app.addr.port())).map(|(_, p)| p.to_owned()).unwrap();
    let a = request(app.addr, "GET", &path, &[], "").await;
    assert_eq!(a.status, 303, "{}", a.body);
    cookie(&a).expect("a session cookie")
}

/// A TCP relay between the app and the server whose links can be cut, as
/// a dropped network would (the server sees its connection end).
pub struct Relay {
    pub addr: SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<SocketAddr>>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = std::sync::Arc::default();
        let target = std::sync::Arc::new(std::sync::Mutex::new(target));
        let (l, t) = (std::sync::Arc::clone(&links), std::sync::Arc::clone(&target));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *t.lock().unwrap();
                let Ok(mut server) = tokio::net::TcpStream::connect(to).await else { continue };
                let link = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                l.lock().unwrap().push(link);
            }
        });
        Relay { addr, target, links, accept }
    }

    /// New links go to `target` (a restarted server).
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// Every link open now ends, both ways.
    pub fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
