//! Message authentication overhead: HMAC-SHA256 sign + verify through the
//! XMPP stanza filter (canonicalization included) and the HTTP filter, for
//! 256 B, 4 KiB and 64 KiB messages, next to raw aws-lc-rs HMAC over the
//! same bytes in the same run. Prints MB/s for each and the filter's share
//! of the raw throughput (target at 4 KiB: at least 70%); and the stanza
//! filter again with its replay window kept in a file (`ReplayState`, as
//! servers and agents run it), with the file writes that took.
//!
//! Then, at 4 KiB, each carrier MAC-only and confidential (AES-256-GCM
//! under the MAC, `msgauth::confidential`): sign (seal) + verify (open),
//! MB/s of plaintext, and the confidential share of the MAC-only figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snow_crypto::msgauth::{self, keys, Algorithm, KeyStore, Receiver, ReplayState, Sender};
use snow_xml::{Element, NS_CLIENT};

/// Bytes processed per second by `f` (which handles `bytes` per call).
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    (n as f64 * bytes as f64) / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let store =
        Arc::new(KeyStore::parse(&keys::generate_line("bench", "k1", Algorithm::HmacSha256, 0).unwrap(), 0).unwrap());
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{:>7}  {:>12}  {:>12}  {:>6}  {:>12}  {:>6}  {:>12}  {:>6}  {:>7}",
        "size", "raw MB/s", "stanza MB/s", "share", "http MB/s", "share", "kept MB/s", "share", "writes"
    );
    for size in [256usize, 4096, 65536] {
        let text: String = "Influensa A positive i 5401, uke 47. ".chars().cycle().take(size).collect();
        let raw = rate(size, || {
            let tag = aws_lc_rs::hmac::sign(&key, text.as_bytes());
            aws_lc_rs::hmac::verify(&key, text.as_bytes(), tag.as_ref()).unwrap();
        });
        let stanza = Element::new(NS_CLIENT, "message")
            .with_attr("to", "echo.po.example")
            .with_attr("from", "1111111@po.example/laptop")
            .with_attr("type", "chat")
            .with_child(Element::new(NS_CLIENT, "body").with_text(text.clone()));
        let tx = Sender::new(Arc::clone(&store), "bench").unwrap();
        // A wide window: the bench sends millions from one epoch in order.
        let rx = Receiver::new(Arc::clone(&store));
        // Signing appends the tag and verifying strips it, so the same
        // stanza goes round and round with no copying by the bench.
        let mut s = stanza.clone();
        let through_stanza = rate(size, || {
            msgauth::stanza::sign(&tx, &mut s).unwrap();
            msgauth::stanza::verify(&rx, &mut s).unwrap();
        });
        assert_eq!(s, stanza);
        let tx2 = Sender::new(Arc::clone(&store), "bench").unwrap();
        let rx2 = Receiver::new(Arc::clone(&store));
        let (parts, _) = http::Request::post("/stats?week=47").body(()).unwrap().into_parts();
        let mut p = parts.clone();
        let body = bytes::Bytes::from(text.clone());
        let through_http = rate(size, || {
            let b = msgauth::http::sign_request(&tx2, &mut p, body.clone()).unwrap();
            msgauth::http::verify_request(&rx2, &mut p, b).unwrap();
        });
        let tx3 = Sender::new(Arc::clone(&store), "bench").unwrap();
        let state = Arc::new(ReplayState::open(&dir.path().join(format!("{size}.state")), 300).unwrap());
        let rx3 = Receiver::with_state(Arc::clone(&store), Arc::clone(&state));
        let mut s = stanza.clone();
        let kept = rate(size, || {
            msgauth::stanza::sign(&tx3, &mut s).unwrap();
            msgauth::stanza::verify(&rx3, &mut s).unwrap();
        });
        println!(
            "{size:>7}  {raw:>12.0}  {through_stanza:>12.0}  {:>5.0}%  {through_http:>12.0}  {:>5.0}%  {kept:>12.0}  \
             {:>5.0}%  {:>7}",
            100.0 * through_stanza / raw,
            100.0 * through_http / raw,
            100.0 * kept / raw,
            state.writes()
        );
    }
    confidential(&store);
}

/// Sign + verify MB/s of one carrier at 4 KiB, with a fresh sender and
/// receiver, MAC-only or confidential.
fn carrier_rate(store: &Arc<KeyStore>, carrier: &str, sealed: bool, text: &str) -> f64 {
    let tx = Sender::new(Arc::clone(store), "bench").unwrap().confidential(sealed);
    let rx = Receiver::new(Arc::clone(store)).confidential(sealed);
    let size = text.len();
    match carrier {
        "stanza" | "shim" => {
            let stanza = Element::new(NS_CLIENT, "message")
                .with_attr("to", "echo.po.example")
                .with_attr("from", "1111111@po.example/laptop")
                .with_attr("type", "chat")
                .with_child(Element::new(NS_CLIENT, "body").with_text(text.to_owned()));
            let mut s = stanza.clone();
            let shim = carrier == "shim";
            let r = rate(size, || {
                if shim {
                    msgauth::shim::sign(&tx, &mut s).unwrap();
                    msgauth::shim::verify(&rx, &mut s).unwrap();
                } else {
                    msgauth::stanza::sign(&tx, &mut s).unwrap();
                    msgauth::stanza::verify(&rx, &mut s).unwrap();
                }
            });
            assert_eq!(s, stanza);
            r
        }
        "xml" => {
            let doc = format!("<report week='47'><text>{text}</text></report>");
            rate(size, || {
                let w = msgauth::xml_message::sign(&tx, &doc).unwrap();
                assert_eq!(msgauth::xml_message::verify(&rx, &w).unwrap().1.len(), doc.len());
            })
        }
        "text" => rate(size, || {
            let w = msgauth::text::sign(&tx, text).unwrap();
            assert_eq!(msgauth::text::verify(&rx, &w).unwrap().1.len(), size);
        }),
        _ => {
            let (mut p, _) = http::Request::post("/stats?week=47").body(()).unwrap().into_parts();
            let body = bytes::Bytes::from(text.to_owned());
            rate(size, || {
                let b = msgauth::http::sign_request(&tx, &mut p, body.clone()).unwrap();
                assert_eq!(msgauth::http::verify_request(&rx, &mut p, b).unwrap().1.len(), size);
            })
        }
    }
}

/// The confidential table: every carrier at 4 KiB.
fn confidential(store: &Arc<KeyStore>) {
    let text: String = "Influensa A positive i 5401, uke 47. ".chars().cycle().take(4096).collect();
    let key = aws_lc_rs::aead::RandomizedNonceKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap();
    let raw_gcm = rate(text.len(), || {
        let mut buf = text.as_bytes().to_vec();
        let nonce = key.seal_in_place_append_tag(aws_lc_rs::aead::Aad::from(b"aad"), &mut buf).unwrap();
        key.open_in_place(nonce, aws_lc_rs::aead::Aad::from(b"aad"), &mut buf).unwrap();
    });
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7u8; 32]);
    let raw_mac = rate(text.len(), || {
        let tag = aws_lc_rs::hmac::sign(&hkey, text.as_bytes());
        aws_lc_rs::hmac::verify(&hkey, text.as_bytes(), tag.as_ref()).unwrap();
    });
    println!();
    println!("4 KiB, sign + verify, MB/s of plaintext (raw aws-lc-rs: HMAC-SHA256 {raw_mac:.0}, AES-256-GCM seal + open {raw_gcm:.0})");
    println!("{:>7}  {:>12}  {:>17}  {:>6}", "carrier", "MAC-only", "confidential", "share");
    for carrier in ["stanza", "shim", "xml", "text", "http"] {
        let clear = carrier_rate(store, carrier, false, &text);
        let sealed = carrier_rate(store, carrier, true, &text);
        println!("{carrier:>7}  {clear:>12.0}  {sealed:>17.0}  {:>5.0}%", 100.0 * sealed / clear);
    }
}
