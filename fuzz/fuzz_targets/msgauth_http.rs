//! The message-authentication HTTP carrier (`snow_crypto::msgauth::http`):
//! the `$$ServerHash`, `$$Hmac`, `$$Kid`, `$$Epoch`, `$$Seq`, `$$Ts` headers
//! of a request and of a response, read and checked by `verify_request`
//! and `verify_response`. The input is the message as text: the first line
//! (`METHOD URI` for a request; the same line's leading number as a
//! response's status), `name: value` header lines, an empty line, the
//! body. Whatever the `http` crate builds from it is verified; it passes
//! only if signed with the target's key (the seeds), once, and then the
//! headers are gone. The confidential receivers take only a sealed body
//! (`$$Enc`), decrypted after the MAC; and the body round-trips through a
//! confidential sender and receiver, never in clear on the way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_crypto::msgauth::http::{request_head, response_head, sign_request, verify_request, verify_response, H_HMAC};
use snow_crypto::msgauth::AuthError;

fn replayed<T>(again: Result<T, AuthError>) -> bool {
    matches!(again, Err(AuthError::Replay { .. }))
}

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> =
        lines.take(64).filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim(), v.trim_start()))).collect();

    let (method, uri) = first.split_once(' ').unwrap_or(("GET", first));
    let status: u16 = first.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(200);
    for rx in snow_fuzz::receivers().into_iter().chain(snow_fuzz::confidential_receivers()) {
        if let Ok(r) = req_clone(method, uri, &headers) {
            let (mut parts, ()) = r.into_parts();
            let _ = request_head(&parts);
            if verify_request(rx, &mut parts, body.to_vec()).is_ok() {
                assert!(!parts.headers.contains_key(H_HMAC), "the tag was not taken off");
                let (mut again, ()) = req_clone(method, uri, &headers).expect("same request").into_parts();
                assert!(replayed(verify_request(rx, &mut again, body.to_vec())), "a request authenticated twice");
            }
        }
        if let Ok(r) = resp_clone(status, &headers) {
            let (mut parts, ()) = r.into_parts();
            let _ = response_head(&parts);
            if verify_response(rx, &mut parts, body.to_vec()).is_ok() {
                assert!(!parts.headers.contains_key(H_HMAC), "the tag was not taken off");
                let (mut again, ()) = resp_clone(status, &headers).expect("same response").into_parts();
                assert!(replayed(verify_response(rx, &mut again, body.to_vec())), "a response authenticated twice");
            }
        }
    }
    let (tx, rx) = snow_fuzz::confidential_pair();
    if let Ok(r) = req_clone(method, uri, &[]) {
        let (mut parts, ()) = r.into_parts();
        let sealed = sign_request(tx, &mut parts, body.to_vec()).expect("the pair's key signs");
        assert!(body.len() < 16 || !sealed.windows(body.len()).any(|w| w == body), "the body shows sealed");
        let (_, back) = verify_request(rx, &mut parts, sealed).expect("a sealed request verifies");
        assert_eq!(&back[..], body, "the HTTP carrier's round trip changed the body");
    }
});

fn req_clone(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Result<http::Request<()>> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(())
}

fn resp_clone(status: u16, headers: &[(&str, &str)]) -> http::Result<http::Response<()>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(())
}
