//! Only the browser that opened the one-time link, on this computer, may
//! use the app: each rule of `snow_app::guard` played by the attacker it
//! stops, over a real socket.

mod support;

use support::{open, request, start_app};

/// No Snow server is needed to be refused.
fn nowhere() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

#[tokio::test]
async fn without_the_one_time_link_nothing_is_served_and_the_link_works_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), nowhere(), vec![]).await;
    for path in ["/", "/setup", "/search", "/alerts", "/chat", "/events", "/alerts/list"] {
        let a = request(app.addr, "GET", path, &[], "").await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(a.body.contains("snow app"), "{path}: the refusal says how to get in: {}", a.body);
    }
    let a = request(app.addr, "GET", "/start?token=0000", &[], "").await;
    assert_eq!(a.status, 403);
    assert!(support::cookie(&a).is_none());
    let cookie = open(&app).await;
    assert!(cookie.starts_with(&format!("snow_app_{}=", app.addr.port())), "{cookie}");
    let path = app.url.split_once(&app.addr.port().to_string()).unwrap().1.to_owned();
    let again = request(app.addr, "GET", &path, &[], "").await;
    assert_eq!(again.status, 403, "the one-time link worked twice");
    // A cookie with another value is nobody's.
    let forged = format!("snow_app_{}=00", app.addr.port());
    assert_eq!(request(app.addr, "GET", "/", &[("Cookie", &forged)], "").await.status, 403);
    // The cookie lets the browser in: no key yet, so the first run.
    let a = request(app.addr, "GET", "/", &[("Cookie", &cookie)], "").await;
    assert_eq!((a.status, a.header("location")), (303, Some("/setup")));
    let set = request(app.addr, "GET", "/start?token=x", &[], "").await;
    assert_eq!(set.status, 403);
    app.shutdown().await;
}

#[tokio::test]
async fn a_foreign_host_is_refused_even_with_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), nowhere(), vec![]).await;
    let cookie = open(&app).await;
    let port = app.addr.port();
    // A page of evil.example whose name now points at 127.0.0.1.
    for host in
        [format!("evil.example:{port}"), "127.0.0.1".to_owned(), format!("127.0.0.1:{}", port + 1), String::new()]
    {
        let a = request(app.addr, "GET", "/setup", &[("Host", &host), ("Cookie", &cookie)], "").await;
        assert_eq!(a.status, 403, "Host {host:?}");
    }
    let a =
        request(app.addr, "GET", "/setup", &[("Host", &format!("localhost:{port}")), ("Cookie", &cookie)], "").await;
    assert_eq!(a.status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_change_needs_this_apps_origin_and_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), nowhere(), vec![]).await;
    let cookie = open(&app).await;
    let origin = format!("http://127.0.0.1:{}", app.addr.port());
    let page = request(app.addr, "GET", "/setup", &[("Cookie", &cookie)], "").await;
    let csrf = page.csrf().expect("the form carries the token");
    assert_eq!(csrf.len(), 64);
    let with = |path: &str| format!("{path}?csrf={csrf}");
    // No Origin, a foreign one, "null" (a sandboxed frame): refused.
    for o in [None, Some("http://evil.example"), Some("null"), Some("http://127.0.0.1:1")] {
        let mut h = vec![("Cookie", cookie.as_str())];
        if let Some(o) = o {
            h.push(("Origin", o));
        }
        let a = request(app.addr, "POST", &with("/lang"), &h, "lang=nb").await;
        assert_eq!(a.status, 403, "Origin {o:?}");
    }
    // The right Origin without the token, or with another: refused.
    for path in ["/lang".to_owned(), "/lang?csrf=".to_owned(), format!("/lang?csrf={}", "0".repeat(64))] {
        let a = request(app.addr, "POST", &path, &[("Cookie", &cookie), ("Origin", &origin)], "lang=nb").await;
        assert_eq!(a.status, 403, "{path}");
        assert!(a.body.contains("expired"), "{}", a.body);
    }
    // Both right: done, and the pages are in Norwegian now.
    let a = request(app.addr, "POST", &with("/lang"), &[("Cookie", &cookie), ("Origin", &origin)], "lang=nb").await;
    assert_eq!(a.status, 303, "{}", a.body);
    let page = request(app.addr, "GET", "/setup", &[("Cookie", &cookie)], "").await;
    assert!(page.body.contains("lang=\"nb\"") && page.body.contains("Kom i gang"), "{}", page.body);
    app.shutdown().await;
}

#[tokio::test]
async fn every_answer_carries_a_strict_policy_and_pages_have_no_inline_code() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(dir.path(), nowhere(), vec![]).await;
    let cookie = open(&app).await;
    for (path, c) in
        [("/setup", Some(cookie.as_str())), ("/", None), ("/assets/app.js", None), ("/assets/app.css", None)]
    {
        let h: Vec<(&str, &str)> = c.map(|c| vec![("Cookie", c)]).unwrap_or_default();
        let a = request(app.addr, "GET", path, &h, "").await;
        let csp = a.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"), "{path}: {csp}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{path}");
    }
    let page = request(app.addr, "GET", "/setup", &[("Cookie", &cookie)], "").await;
    // Everything from the app itself: no inline script or style, no CDN.
    assert!(
        !page.body.contains("<script>") && !page.body.contains(" style=") && !page.body.contains("http"),
        "{}",
        page.body
    );
    // Every input has a label.
    for id in ["file", "password", "passphrase", "passphrase2"] {
        assert!(page.body.contains(&format!("for=\"{id}\"")), "no label for {id}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_app_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let r = snow_app::start(snow_app::AppOptions {
        keystore: dir.path().join("k"),
        state_file: dir.path().join("s.json"),
        server_addr: nowhere(),
        direct_tls: false,
        labs: vec![],
        alert_service: None,
        min_passphrase_length: 12,
        bind: "0.0.0.0:0".parse().unwrap(),
        lang: snow_app::Lang::En,
    })
    .await;
    assert!(matches!(r, Err(snow_app::AppError::NotLoopback(_))));
}
