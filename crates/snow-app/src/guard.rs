//! Who may use the app: only the browser that opened the one-time link
//! `snow app` printed, on this computer.
//!
//! - **One-time token.** `/start?token=…` works once: it becomes a session
//!   cookie (HttpOnly, SameSite=Strict, named after the port so two apps
//!   on one computer do not share it); every other page needs the cookie.
//! - **Host** must be `127.0.0.1:PORT` or `localhost:PORT`: a page of
//!   another site that rebinds its DNS name to 127.0.0.1 sends its own
//!   name and is refused (DNS rebinding).
//! - **Origin** must be this app's on every request that changes
//!   something (any method but GET and HEAD), and the request must carry
//!   the session's CSRF token in its query (`?csrf=…`; every form's action
//!   has it). One rule in one place, so no handler can forget it.
//! - **Headers** on every answer: a strict Content-Security-Policy (only
//!   the app's own script and style, no inline code, no frames, forms only
//!   to itself), no referrer to other sites, no sniffing, no caching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::texts::Lang;
use crate::AppState;

/// The browser session made from the one-time token.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub id: String,
    /// Goes into every form's action; a change without it is refused.
    pub csrf: String,
    pub lang: Lang,
}

/// Most browser sessions at once (each one-time link makes one).
const MAX_SESSIONS: usize = 16;

pub struct Guard {
    port: u16,
    token: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, WebSession>>,
    default_lang: Lang,
}

fn random() -> String {
    // 32 random bytes from the system's generator; if it fails, a token
    // nobody can guess is impossible and nobody gets in.
    snow_crypto::one_time_password::random_hex(32).unwrap_or_default()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && !a.is_empty() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    /// A guard for the app on `port`; the one-time token to print.
    pub fn new(port: u16, default_lang: Lang) -> (Guard, String) {
        let token = random();
        let guard = Guard { port, token: Mutex::new(Some(token.clone())), sessions: Mutex::default(), default_lang };
        (guard, token)
    }

    /// The cookie's name: per port, since cookies do not tell ports apart.
    pub fn cookie_name(&self) -> String {
        format!("snow_app_{}", self.port)
    }

    /// Spends the one-time token: a new browser session, or `None` if the
    /// token is wrong or was used.
    pub fn exchange(&self, token: &str) -> Option<WebSession> {
        let mut slot = self.token.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_deref() {
            Some(t) if same(t, token) => *slot = None,
            _ => return None,
        }
        let session = WebSession { id: random(), csrf: random(), lang: self.default_lang };
        if session.id.is_empty() || session.csrf.is_empty() {
            return None;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(session.id.clone(), session.clone());
        Some(session)
    }

    /// The session the request's cookie names.
    fn session(&self, headers: &HeaderMap) -> Option<WebSession> {
        let name = self.cookie_name();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .filter(|(k, _)| *k == name)
            .find_map(|(_, v)| sessions.get(v).cloned())
    }

    pub fn set_lang(&self, id: &str, lang: Lang) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            s.lang = lang;
        }
    }

    /// Forgets every browser session (the app was locked).
    pub fn end_sessions(&self) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else { return false };
        origin == format!("http://127.0.0.1:{}", self.port) || origin == format!("http://localhost:{}", self.port)
    }
}

/// The `csrf` parameter of a query string.
fn csrf_of(query: Option<&str>) -> Option<&str> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "csrf").map(|(_, v)| v)
}

/// The middleware: every request passes here first.
pub async fn check(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let guard = &app.guard;
    let t = guard.default_lang.texts();
    let mut response = if !guard.host_ok(req.headers()) {
        refuse(StatusCode::FORBIDDEN, t.wrong_host, guard.default_lang)
    } else if req.uri().path().starts_with("/assets/") || req.uri().path() == "/start" {
        next.run(req).await
    } else {
        match guard.session(req.headers()) {
            None => refuse(StatusCode::FORBIDDEN, t.denied_text, guard.default_lang),
            Some(s) => {
                let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
                let t = s.lang.texts();
                if changes && !guard.origin_ok(req.headers()) {
                    refuse(StatusCode::FORBIDDEN, t.bad_origin, s.lang)
                } else if changes && !csrf_of(req.uri().query()).is_some_and(|c| same(c, &s.csrf)) {
                    refuse(StatusCode::FORBIDDEN, t.bad_csrf, s.lang)
                } else {
                    req.extensions_mut().insert(s);
                    next.run(req).await
                }
            }
        }
    };
    secure(response.headers_mut());
    response
}

/// The headers every answer carries.
fn secure(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: with it Chromium sends `Origin: null` on form
    // posts, which the Origin check must refuse. `same-origin` sends
    // nothing to other sites and the real Origin to us.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(h, header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
}

/// A refusal the person at the browser can read.
fn refuse(status: StatusCode, why: &str, lang: Lang) -> Response {
    let t = lang.texts();
    (status, crate::pages::layout::bare(lang, t.denied_title, why)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_works_once_and_only_the_right_one() {
        let (g, token) = Guard::new(4000, Lang::En);
        assert!(g.exchange("wrong").is_none());
        assert!(g.exchange("").is_none());
        let s = g.exchange(&token).expect("the token");
        assert_eq!(s.csrf.len(), 64);
        assert!(g.exchange(&token).is_none(), "twice");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; snow_app_4000={}", s.id).parse().unwrap());
        assert!(g.session(&h).is_some());
        h.insert(header::COOKIE, format!("snow_app_4001={}", s.id).parse().unwrap());
        assert!(g.session(&h).is_none(), "another port's cookie");
    }

    #[test]
    fn hosts_and_origins_are_this_apps_only() {
        let (g, _) = Guard::new(4000, Lang::En);
        let with = |k: header::HeaderName, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(k, v.parse().unwrap());
            h
        };
        assert!(g.host_ok(&with(header::HOST, "127.0.0.1:4000")));
        assert!(g.host_ok(&with(header::HOST, "localhost:4000")));
        assert!(!g.host_ok(&with(header::HOST, "evil.example:4000")));
        assert!(!g.host_ok(&with(header::HOST, "127.0.0.1:4001")));
        assert!(!g.host_ok(&HeaderMap::new()));
        assert!(g.origin_ok(&with(header::ORIGIN, "http://127.0.0.1:4000")));
        assert!(!g.origin_ok(&with(header::ORIGIN, "http://evil.example")));
        assert!(!g.origin_ok(&with(header::ORIGIN, "null")));
        assert_eq!(csrf_of(Some("a=1&csrf=xyz")), Some("xyz"));
        assert_eq!(csrf_of(None), None);
    }
}
