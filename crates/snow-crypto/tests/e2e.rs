//! XML Encryption envelope: round trips, tampering, wrong keys.

use snow_crypto::e2e::{self, DecryptPolicy, E2eError, KeyTransport};
use snow_crypto::rsa_key;
use snow_xml::{Element, Limits, NS_CLIENT};

struct Party {
    key: zeroize::Zeroizing<Vec<u8>>,
    cert: Vec<u8>,
}

fn party(name: &str) -> Party {
    let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
    let kp = rcgen::KeyPair::try_from(&key[..]).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
    // Unique per issuer, as a CA's serials are: a recipient is named by
    // issuer and serial.
    params.serial_number = Some(rcgen::SerialNumber::from_slice(name.as_bytes()));
    let cert = params.self_signed(&kp).unwrap().der().to_vec();
    Party { key, cert }
}

fn reparse(el: &Element) -> Element {
    snow_xml::parse_document(el.to_xml("").as_bytes(), Limits::default()).unwrap()
}

#[test]
fn round_trips_for_1_2_16_and_50_recipients() {
    let parties: Vec<Party> = (0..50).map(|i| party(&format!("p{i}"))).collect();
    for n in [1usize, 2, 16, 50] {
        // Snow's requests and messages carry at most 16 EncryptedKeys; an
        // envelope for more is opened as a broadcast (still one RSA
        // decryption: the EncryptedKey that names us).
        let policy = if n <= e2e::MAX_ENCRYPTED_KEYS { DecryptPolicy::SNOW } else { DecryptPolicy::BROADCAST };
        for transport in [KeyTransport::RsaOaepSha256, KeyTransport::RsaOaepMgf1pSha1] {
            let certs: Vec<&[u8]> = parties[..n].iter().map(|p| p.cert.as_slice()).collect();
            let msg = format!("Influensa A: {n} mottakere — æøå <&>");
            let enc = reparse(&e2e::encrypt(msg.as_bytes(), &certs, transport).unwrap());
            let key_infos = enc.child(e2e::NS_DSIG, "KeyInfo").unwrap().children().count();
            assert_eq!(key_infos, n, "one EncryptedKey per recipient");
            for p in &parties[..n] {
                assert_eq!(&*e2e::decrypt_with(&enc, &p.key, &p.cert, &policy).unwrap(), msg.as_bytes());
            }
            // Someone who is not a recipient cannot open it.
            if n < 50 {
                let outsider = &parties[49];
                assert_eq!(e2e::decrypt(&enc, &outsider.key, &outsider.cert), Err(E2eError::NotForThisKey));
            } else {
                assert_eq!(
                    e2e::decrypt(&enc, &parties[0].key, &parties[0].cert),
                    Err(E2eError::TooManyEncryptedKeys { found: 50, max: 16 })
                );
            }
        }
    }
}

#[test]
fn a_recipients_key_does_not_open_another_recipients_encrypted_key() {
    let (a, b) = (party("alice"), party("bob"));
    let enc = e2e::encrypt(b"hemmelig", &[&a.cert, &b.cert], KeyTransport::default()).unwrap();
    // Keep only Bob's EncryptedKey, then try Alice's key on it.
    let mut only_bob = enc.clone();
    let ki = only_bob.child_mut(e2e::NS_DSIG, "KeyInfo").unwrap();
    let mut first = true;
    ki.take_children(|_| std::mem::replace(&mut first, false));
    assert_eq!(e2e::decrypt(&only_bob, &a.key, &a.cert), Err(E2eError::NotForThisKey));
    assert_eq!(&*e2e::decrypt(&only_bob, &b.key, &b.cert).unwrap(), b"hemmelig");
}

#[test]
fn any_flipped_byte_is_detected_or_harmless() {
    let a = party("alice");
    let enc = e2e::encrypt(b"positive: 12", &[&a.cert], KeyTransport::default()).unwrap();
    let xml = enc.to_xml("");
    let mut detected = 0;
    for i in 0..xml.len() {
        let mut bytes = xml.as_bytes().to_vec();
        bytes[i] ^= 0x01;
        let Ok(parsed) = snow_xml::parse_document(&bytes, Limits::default()) else {
            detected += 1;
            continue;
        };
        match e2e::decrypt(&parsed, &a.key, &a.cert) {
            Err(_) => detected += 1,
            // A flip in an unauthenticated name (issuer text) changes nothing.
            Ok(p) => assert_eq!(&*p, b"positive: 12", "byte {i} changed the plaintext"),
        }
    }
    assert!(detected > xml.len() * 9 / 10, "only {detected} of {} flips detected", xml.len());
    // Every byte of the encrypted content itself is authenticated.
    let cv = enc.child(e2e::NS_XENC, "CipherData").unwrap().child(e2e::NS_XENC, "CipherValue").unwrap().text();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(cv).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x80;
        let mut e = enc.clone();
        let cvn = e.child_mut(e2e::NS_XENC, "CipherData").unwrap().child_mut(e2e::NS_XENC, "CipherValue").unwrap();
        cvn.nodes_mut().clear();
        cvn.push_text(base64::engine::general_purpose::STANDARD.encode(&bad));
        assert_eq!(e2e::decrypt(&e, &a.key, &a.cert), Err(E2eError::Tampered), "byte {i}");
    }
}

#[test]
fn malformed_input_is_a_typed_error() {
    let a = party("alice");
    let enc = e2e::encrypt(b"x", &[&a.cert], KeyTransport::default()).unwrap();
    let xml = enc.to_xml("");
    for cut in [10, xml.len() / 3, xml.len() / 2, xml.len() - 30] {
        let truncated = &xml[..cut];
        if let Ok(p) = snow_xml::parse_document(truncated.as_bytes(), Limits::default()) {
            assert!(e2e::decrypt(&p, &a.key, &a.cert).is_err());
        }
    }
    let bad_alg = xml.replace(e2e::ALG_AES256_GCM, "http://www.w3.org/2001/04/xmlenc#aes256-cbc");
    let p = snow_xml::parse_document(bad_alg.as_bytes(), Limits::default()).unwrap();
    assert!(matches!(e2e::decrypt(&p, &a.key, &a.cert), Err(E2eError::UnsupportedAlgorithm(_))));
    let no_keys = Element::new(e2e::NS_XENC, "EncryptedData")
        .with_child(Element::new(e2e::NS_XENC, "EncryptionMethod").with_attr("Algorithm", e2e::ALG_AES256_GCM));
    assert!(matches!(e2e::decrypt(&no_keys, &a.key, &a.cert), Err(E2eError::Malformed(_))));
    assert!(matches!(e2e::decrypt(&Element::new("urn:x", "y"), &a.key, &a.cert), Err(E2eError::Malformed(_))));
    let truncated_b64 = {
        let cv = enc.child(e2e::NS_XENC, "CipherData").unwrap().child(e2e::NS_XENC, "CipherValue").unwrap().text();
        xml.replace(&cv, &cv[..cv.len() - 3])
    };
    let p = snow_xml::parse_document(truncated_b64.as_bytes(), Limits::default()).unwrap();
    assert!(e2e::decrypt(&p, &a.key, &a.cert).is_err());
    assert!(matches!(e2e::encrypt(b"x", &[], KeyTransport::default()), Err(E2eError::BadRecipient(_))));
}

#[test]
fn message_body_content_round_trip() {
    let (a, b) = (party("alice"), party("bob"));
    let mut body = Element::new(NS_CLIENT, "body").with_text("Møte kl 14 <rom 3> & kaffe");
    e2e::encrypt_content(&mut body, NS_CLIENT, &[&a.cert, &b.cert], KeyTransport::default()).unwrap();
    assert!(body.text().is_empty(), "no clear text left");
    assert!(!body.to_xml(NS_CLIENT).contains("kaffe"));
    let mut received = snow_xml::parse_document(body.to_xml("").as_bytes(), Limits::default()).unwrap();
    e2e::decrypt_content(&mut received, NS_CLIENT, &b.key, &b.cert).unwrap();
    assert_eq!(received.text(), "Møte kl 14 <rom 3> & kaffe");
}
